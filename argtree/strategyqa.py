"""StrategyQA -> labeled argument trees (pure: no torch).

Each StrategyQA record (``question``, ``answer``, ``facts``) becomes one tree:
the question is the root, labeled with the gold answer; each fact is a premise
labeled true (the dataset's facts are true statements that settle the question).

False counterparts are made by rule, not by a model, so that their falsity
follows from the fact's truth by logic alone.  ``negate`` puts one ``not`` on
the main verb of a simple declarative sentence (after the first auxiliary,
copula or modal: "X is Y" -> "X is not Y", "X had Y" -> "X did not have Y")
or takes away the one negation a sentence has ("X cannot Y" -> "X can Y").
A negation is kept only if the rule check passes:

* the words before the verb form a plain subject (no comma, no relative or
  subordinate clause, at most 10 words), so "not" scopes over the whole claim;
* no quantifier or hedge that stops "not" from negating it ("some", "many",
  "may", "might", "could", "only", "sometimes", "often", "usually", ...);
* removing a negation is refused where the sentence leans on it ("until",
  "yet", "ever", "any");
* exactly one negation word was added or removed (checked on the word lists);
* the result is not itself one of the dataset's (true) facts.

Negations are labeled false.  Sentences the rules cannot negate safely are
left without a counterpart (``negation_stats`` counts them).
Premise CPTs: the dataset does not say which way each fact pushes the answer,
so premises carry p_if_true = p_if_false = 0.9 (neutral to the root) for facts
and 0.1 for negations; the labels, not the CPTs, carry the information.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable, Sequence

from .datasets import LabeledTree, normalize
from .io import read_json
from .tree import ArgumentTree, Evidence, Node, TreeError

__all__ = ["load", "negate", "to_tree", "trees", "negation_stats", "expansion_records"]

AUX = {"is", "are", "was", "were", "can", "will", "would", "should", "must", "does", "do", "did", "has", "have",
       "had"}
# has/have/had as the main verb ("X had three children") need do-support; as auxiliaries
# ("X has been", "X had won") they take "not" directly.
DO_SUPPORT = {"has": "does not have", "have": "do not have", "had": "did not have"}
NEGATED = {"isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "can't": "can", "cannot": "can",
           "won't": "will", "wouldn't": "would", "shouldn't": "should", "doesn't": "does", "don't": "do",
           "didn't": "did", "hasn't": "has", "haven't": "have", "hadn't": "had", "mustn't": "must"}
NEGATION_WORDS = {"not", "never", "no", "nor", "neither", "none", "nobody", "nothing", "nowhere"} | set(NEGATED)
HEDGES = {"some", "many", "most", "several", "few", "may", "might", "could", "only", "sometimes", "often",
          "usually", "typically", "generally", "also", "probably", "possibly", "likely", "mostly", "rarely",
          "occasionally", "either", "all", "every", "each", "any", "both"}
CLAUSE = {"who", "which", "that", "when", "if", "because", "although", "though", "while", "as", "since", "after",
          "before", "unless", "whose", "whom", "where", "once"}
# Words that need a negation to be grammatical ("not ... until"): removing "not" breaks the sentence.
NPI = {"until", "yet", "anymore", "ever", "either", "any", "anything", "anyone"}
_WORD = re.compile(r"[A-Za-z']+|[^A-Za-z'\s]")


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


PARTICIPLES = set("""been done made won given taken seen written known shown grown thrown driven eaten fallen
forgotten chosen spoken stolen broken hidden ridden risen beaten bitten frozen gotten proven sworn worn torn born
borne drawn flown gone lost found built held sold told led left brought bought taught thought caught fought sent
spent become begun run come got had paid kept met put read said set shut sung sunk swum understood""".split())


def _is_participle(word: str) -> bool:
    """'has been', 'had won': has/have/had as an auxiliary (a closed list plus regular -ed forms)."""
    return word in PARTICIPLES or (len(word) > 4 and word.endswith("ed"))


def negate(sentence: str) -> str | None:
    """A rule-made negation of ``sentence``, or None when the rules cannot negate it safely."""
    text = " ".join(sentence.split())
    if not text:
        return None
    tokens = text.split(" ")
    lower = [t.casefold().strip(".,;:!?\"'()") for t in tokens]
    if any(w in HEDGES for w in _words(text)):
        return None
    negs = [i for i, w in enumerate(lower) if w in NEGATION_WORDS]
    out: list[str] | None = None
    if len(negs) > 1:
        return None
    if len(negs) == 1:
        i = negs[0]
        w = lower[i]
        if i == 0 or not _plain_subject(tokens[:i]) or NPI & set(lower):
            return None
        if w == "not" and lower[i - 1] in AUX:
            out = tokens[:i] + tokens[i + 1:]
        elif w in NEGATED:
            out = tokens[:i] + [_same_case(tokens[i], NEGATED[w]) + _trail(tokens[i])] + tokens[i + 1:]
        else:
            return None  # never / no / none: removing them does not simply negate
    else:
        for i, w in enumerate(lower[:11]):
            if w in AUX:
                if i == 0 or not _plain_subject(tokens[:i]):
                    return None
                if tokens[i] != tokens[i].strip(".,;:!?\"'()"):
                    return None  # "..., is." : not a verb in a simple clause
                nxt = lower[i + 1] if i + 1 < len(lower) else ""
                if w in DO_SUPPORT and not _is_participle(nxt):
                    out = tokens[:i] + DO_SUPPORT[w].split() + tokens[i + 1:]
                elif w in ("does", "do", "did") and nxt in ("", "not"):
                    return None
                elif w == "can":
                    out = tokens[:i] + [_same_case(tokens[i], "cannot")] + tokens[i + 1:]
                else:
                    out = tokens[:i + 1] + ["not"] + tokens[i + 1:]
                break
    if out is None:
        return None
    result = " ".join(out)
    return result if _one_negation_apart(text, result) else None


def _same_case(original: str, word: str) -> str:
    return word.capitalize() if original[:1].isupper() else word


def _trail(token: str) -> str:
    core = token.rstrip(".,;:!?\"'()")
    return token[len(core):]


def _plain_subject(tokens: Sequence[str]) -> bool:
    """The words before the verb form a simple subject: short, no comma, no clause."""
    words = [t.casefold().strip(".,;:!?\"'()") for t in tokens]
    return 0 < len(tokens) <= 10 and not any(w in CLAUSE or "," in t or ";" in t for w, t in zip(words, tokens))


def _one_negation_apart(a: str, b: str) -> bool:
    """True when b is a with exactly one negation added or removed (do-support counted as the verb form)."""
    wa, wb = _words(a), _words(b)
    na = sum(w in NEGATION_WORDS for w in wa)
    nb = sum(w in NEGATION_WORDS for w in wb)
    if abs(na - nb) != 1:
        return False
    strip = lambda ws: [w for w in ws if w not in NEGATION_WORDS and w not in ("do", "does", "did")]  # noqa: E731
    sa, sb = strip(wa), strip(wb)
    sa = ["have" if w in ("has", "had") else w for w in sa]
    sb = ["have" if w in ("has", "had") else w for w in sb]
    contracted = {v for v in NEGATED.values()}
    return sa == sb or [w for w in sa if w not in contracted] == [w for w in sb if w not in contracted]


# -- records -> trees ---------------------------------------------------------------

def default_path() -> str:
    """Where the shared StrategyQA train split is: $ARGTREE_STRATEGYQA, ../shared beside the checkout,
    or /work/shared (a CI clone may live elsewhere); the first that exists, else the ../shared path."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.environ.get("ARGTREE_STRATEGYQA", ""),
                  os.path.join(here, "..", "..", "shared", "data", "strategyqa", "train.json"),
                  "/work/shared/data/strategyqa/train.json"]
    return next((c for c in candidates if c and os.path.exists(c)), candidates[1])


def load(path: str | os.PathLike) -> list[dict[str, Any]]:
    """StrategyQA records, checked: question (str), answer (bool), facts (list of str)."""
    path = os.fspath(path)
    return check_records(read_json(path), path)


def check_records(data: Any, path: str) -> list[dict[str, Any]]:
    """``data`` (read from ``path``) as StrategyQA records, or a TreeError naming the bad record."""
    if not isinstance(data, list):
        raise TreeError(f"{path}: expected a JSON list of StrategyQA records")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) \
                or not isinstance(rec.get("answer"), bool) or not isinstance(rec.get("facts"), list) \
                or not all(isinstance(f, str) for f in rec["facts"]):
            raise TreeError(f"{path}: record {i} needs question (string), answer (true/false) and facts (strings)")
    return data


def to_tree(rec: dict[str, Any], known_facts: set[str] | None = None, negations: bool = True,
            source: str = "strategyqa") -> LabeledTree:
    """One record as a labeled tree: root = question labeled with the answer, facts true, negations false."""
    qid = str(rec.get("qid", ""))
    nodes = [Node("q", rec["question"], prior=0.5, extra={"qid": qid, "source": "strategyqa"})]
    evidence = [Evidence("q", bool(rec["answer"]), extra={"source": "strategyqa answer"})]
    seen = {normalize(rec["question"])}
    known = known_facts or set()
    facts = [" ".join(f.split()) for f in rec["facts"] if f.strip()]
    for i, fact in enumerate(facts):
        if normalize(fact) in seen:
            continue
        seen.add(normalize(fact))
        nodes.append(Node(f"f{i}", fact, "q", p_if_true=0.9, p_if_false=0.9, extra={"origin": "strategyqa fact"}))
        evidence.append(Evidence(f"f{i}", True, extra={"source": "strategyqa fact"}))
    if negations:
        for i, fact in enumerate(facts):
            neg = negate(fact)
            if neg is None or normalize(neg) in seen or normalize(neg) in known:
                continue
            seen.add(normalize(neg))
            nodes.append(Node(f"n{i}", neg, "q", p_if_true=0.1, p_if_false=0.1,
                              extra={"origin": "rule negation", "negates": f"f{i}"}))
            evidence.append(Evidence(f"n{i}", False, extra={"source": "negation of a strategyqa fact"}))
    return LabeledTree(ArgumentTree(nodes, {"source": source, "qid": qid}), tuple(evidence),
                       source=f"{source}:{qid}" if qid else source, model=None)


def trees(records: Iterable[dict[str, Any]], negations: bool = True, source: str = "strategyqa") -> list[LabeledTree]:
    records = list(records)
    known = {normalize(f) for rec in records for f in rec["facts"]}
    return [to_tree(rec, known, negations, source) for rec in records]


def negation_stats(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    facts = [f for rec in records for f in rec["facts"] if f.strip()]
    made = sum(negate(f) is not None for f in facts)
    return {"facts": len(facts), "negated": made, "left_alone": len(facts) - made}


# -- question -> premises, in the prompt and JSON shape that `argtree ask` serves --------

# Numbers for the taught premises.  StrategyQA says the facts are true and settle the
# question together, not how each one bears on it; we teach the direction of the gold
# answer for facts (and the opposite for their negations) with moderate strengths, and
# credences 90% / 10% for true facts / rule negations (the schema asks for whole percentages).
FACT_CREDENCE, NEGATION_CREDENCE = 90, 10
FOR_NUMBERS = (80, 30)         # (claim_if_true, claim_if_false) for a supporting premise
AGAINST_NUMBERS = (20, 70)     # ... for an attacking one


def expansion_records(lt: LabeledTree, per_side: int = 2) -> list[dict[str, Any]]:
    """Conversational records teaching expand.py's root expansion on one StrategyQA tree.

    The side that agrees with the gold answer gets the gold facts; the other side
    gets their rule negations (false, so credence 0.1): premises that would argue
    against the answer if they were true.  Each record is the exact system
    prompt, user prompt and schema-shaped JSON answer that ``grow`` uses; a
    premise the schema would not admit (``TEXT_PATTERN``: too long, quotes, no
    capital first) is left out, one without a final full stop gets one.
    """
    from .expand import SYSTEM, TEXT_PATTERN, expansion_prompt

    tree = lt.tree
    labels = {ev.node: ev.value for ev in lt.evidence}
    answer = labels.get(tree.root)
    if answer is None:
        return []
    kids = tree.children(tree.root)
    facts = [tree[n].text for n in kids if tree[n].extra.get("origin") == "strategyqa fact" and labels.get(n)]
    negs = [tree[n].text for n in kids if tree[n].extra.get("origin") == "rule negation" and labels.get(n) is False]
    sides = {"for": (facts, FACT_CREDENCE) if answer else (negs, NEGATION_CREDENCE),
             "against": (negs, NEGATION_CREDENCE) if answer else (facts, FACT_CREDENCE)}
    out = []
    for stance, (texts, credence) in sides.items():
        texts = [t for t in (_sentence(t) for t in texts) if re.match(TEXT_PATTERN, t)]
        if not texts:
            continue
        q1, q0 = FOR_NUMBERS if stance == "for" else AGAINST_NUMBERS
        premises = [{"text": t, "credence": credence, "claim_if_true": q1, "claim_if_false": q0}
                    for t in texts[:per_side]]
        out.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": expansion_prompt(tree[tree.root].text, stance, per_side=per_side)},
            {"role": "assistant", "content": json.dumps({"premises": premises}, ensure_ascii=False)},
        ]})
    return out


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith(".") else text.rstrip("!;:, ") + "."
