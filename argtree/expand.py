"""Prompts, parsing and guards for growing a tree: node -> prompts, model text -> premises.

Pure: no model calls here (``argtree.grow`` calls the backend).  One
expansion of a node asks the model twice, once for premises that SUPPORT
the claim and once for premises that ATTACK it, so every expanded node is
argued from both sides even when the model leans one way.

Elicitation (DESIGN.md).  For each premise the model gives, as whole
percentages (below),

* ``credence``        c  = P(premise),
* ``claim_if_true``   q1 = P(claim | premise),
* ``claim_if_false``  q0 = P(claim | not premise).

They define a joint over (claim, premise) whose claim marginal is
pi = q1 c + q0 (1 - c); Bayes' rule gives the canonical CPT

    p_if_true  = P(premise | claim)     = q1 c / pi
    p_if_false = P(premise | not claim) = (1 - q1) c / (1 - pi)

so the premise moves its parent exactly as the model said it would.  Every
number is clamped into [EPS, 1 - EPS] before and after (a 0 or 1 would make
a label on the premise able to contradict the tree).

Guards, measured necessary with the bundled 135M model (it copies the claim,
repeats its siblings and says 1.0 for everything):

* the schema makes every number a whole percentage, one of 5, 10, ..., 95
  (an enum of short integers: a small model otherwise writes 1.0 or runs
  digits on to the token cap, and xgrammar spells a decimal enum such as 0.05
  as "0.050000000000000003") and, per side, puts q1 above q0 for a
  supporting premise and below it for an attacking one, so a premise always
  bears on its claim in the direction it was asked for;
* a premise's text is one sentence (``TEXT_PATTERN``: a capital letter first,
  a full stop last, no quote, backslash or control character, so nothing is
  escaped) of at most ``MAX_TEXT`` characters (95% of StrategyQA's facts are
  shorter): the longest answer the schema admits, ``answer_bound``, fits the
  token cap and no answer is cut off;
* a premise that restates its claim or any ancestor, repeats a sibling (or a
  premise of the same answer), duplicates any node already in the tree
  (normalized text), says nothing (too few content words, "the claim is
  true", the same words over and over), is no sentence (an identifier, a
  timestamp) or no statement (a question, a "how to") is rejected with a reason;
* an answer that is not JSON, is empty, is over ``MAX_RAW`` characters, has
  numbers outside [0, 1] or no acceptable premise is a failed attempt; the
  caller retries with sampling and finally records the raw text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

__all__ = [
    "EPS", "MAX_RAW", "STANCES", "SYSTEM", "Proposal", "Rejection", "Parsed",
    "clamp", "cpt_from_elicitation", "expansion_schema", "answer_bound", "PERCENTS", "MAX_TEXT",
    "TEXT_PATTERN", "expansion_prompt", "is_question", "parse_expansion",
    "normalize", "content_words", "similarity", "Guard",
    "credence_prompt", "credence_schema", "parse_credence", "yes_no_prompt", "direct_prompt",
]

EPS = 0.01
MAX_RAW = 10_000
STANCES = ("for", "against")
LOW, HIGH = 0.05, 0.95   # range the schema allows for every elicited number
MID = 0.5
PERCENTS = tuple(range(5, 100, 5))   # the numbers an answer may use: 5, 10, ..., 95 (percent)
MAX_TEXT = 120           # characters of one premise
# The full stop is written [.], not \.: llama.cpp's schema-to-grammar copies \. into a GBNF string
# literal, which its grammar parser rejects ("unknown escape"), and the server then crashes.
TEXT_PATTERN = r'^[A-Z][^"\\\u0000-\u001f]{%d,%d}[.]$' % (10, MAX_TEXT - 2)

SYSTEM = ("You are a careful analyst. You break a claim into short, concrete, checkable premises: facts "
          "or conditions that make the claim more or less likely. Never repeat the claim itself.")


# -- elicitation math ------------------------------------------------------
def clamp(x: float, eps: float = EPS) -> float:
    return min(max(float(x), eps), 1.0 - eps)


def cpt_from_elicitation(c: float, q1: float, q0: float, eps: float = EPS) -> tuple[float, float]:
    """(p_if_true, p_if_false) from credence c, P(claim | premise) q1, P(claim | not premise) q0."""
    c, q1, q0 = clamp(c, eps), clamp(q1, eps), clamp(q0, eps)
    pi = q1 * c + q0 * (1.0 - c)
    return clamp(q1 * c / pi, eps), clamp((1.0 - q1) * c / (1.0 - pi), eps)


# -- prompts and schemas ---------------------------------------------------
def _number(lo: float, hi: float) -> dict:
    return {"type": "number", "minimum": lo, "maximum": hi}


def _choice(lo: float, hi: float) -> dict:
    """A percentage from PERCENTS within [lo, hi] (fractions): a few short literals, none can run on."""
    return {"type": "integer", "enum": [x for x in PERCENTS if lo * 100 - 1e-9 <= x <= hi * 100 + 1e-9]}


def expansion_schema(stance: str, per_side: int = 2) -> dict:
    """JSON schema for one side's answer; the ranges encode the side (see module doc)."""
    if stance not in STANCES:
        raise ValueError(f"stance must be one of {STANCES}, got {stance!r}")
    if stance == "for":
        q1, q0 = _choice(0.55, HIGH), _choice(LOW, MID)
    else:
        q1, q0 = _choice(LOW, 0.45), _choice(MID, HIGH)
    item = {
        "type": "object",
        "properties": {
            # the pattern bounds the length too (xgrammar ignores min/maxLength beside a pattern)
            "text": {"type": "string", "pattern": TEXT_PATTERN},
            "credence": _choice(LOW, HIGH),
            "claim_if_true": q1,
            "claim_if_false": q0,
        },
        "required": ["text", "credence", "claim_if_true", "claim_if_false"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"premises": {"type": "array", "items": item, "minItems": 1, "maxItems": per_side}},
        "required": ["premises"],
        "additionalProperties": False,
    }


def answer_bound(per_side: int = 2) -> int:
    """UTF-8 bytes of the longest answer ``expansion_schema`` admits.

    Written with json.dumps' separators (", " and ": "), as xgrammar's one-line
    grammar and our training data write it (the compact form is shorter), and
    with every character of the text as wide as UTF-8 gets (4 bytes; nothing
    is escaped).  A byte-level token adds at least one byte, so this many new
    tokens always let an answer finish: the default token cap of ``argtree.grow``.
    A cap costs nothing until it is reached; a typical answer is 60-150 tokens.
    (A server's grammar, e.g. llama.cpp's, may allow a space more here and
    there; the 4-byte allowance per text character covers that many times over.)
    """
    text = "A" + "\U0001F600" * (MAX_TEXT - 2) + "."
    item = {"text": text, **{k: max(PERCENTS) for k in ("credence", "claim_if_true", "claim_if_false")}}
    return len(json.dumps({"premises": [item] * per_side}, ensure_ascii=False).encode("utf-8"))


def is_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def expansion_prompt(claim: str, stance: str, *, context: Sequence[str] = (), avoid: Sequence[str] = (),
                     per_side: int = 2) -> str:
    """The user message asking for ``per_side`` premises on one side of ``claim``.

    ``context``: the claim's ancestors (root first), so premises stay on topic;
    ``avoid``: premises already present, which the model must not repeat.
    A question (ends in "?") is asked for facts that make the answer YES / NO
    more likely; a statement for facts that make it more / less likely true.
    """
    lines = []
    if context and context[0] != claim:
        lines.append("Background question: " + context[0])
    if is_question(claim):
        lines.append(f"Question: {claim}")
        goal = "make the answer YES more likely" if stance == "for" else "make the answer NO more likely"
    else:
        lines.append(f"Claim: {claim}")
        goal = ("SUPPORT the claim (make it more likely true)" if stance == "for"
                else "ARGUE AGAINST the claim (make it less likely true)")
    lines.append("")
    lines.append(f"Give up to {per_side} different facts that {goal}. Each is one short, specific sentence "
                 "about a cause, fact or condition. Do not repeat the question or the claim, and do not "
                 "answer with yes or no.")
    if avoid:
        lines.append("Already listed (do not repeat): " + "; ".join(a for a in avoid[:8]))
    lines.append("For each fact give three whole percentages from 5 to 95: credence = how likely the fact "
                 "is true; claim_if_true = how likely the claim is if the fact is true; "
                 "claim_if_false = how likely the claim is if the fact is false.")
    return "\n".join(lines)


def credence_schema() -> dict:
    return {"type": "object", "properties": {"probability": _number(0.0, 1.0)},
            "required": ["probability"], "additionalProperties": False}


def credence_prompt(statement: str) -> str:
    return (f"Statement: {statement}\nHow likely is this statement to be true? Answer with a probability "
            "between 0 (certainly false) and 1 (certainly true).")


def yes_no_prompt(statement: str) -> str:
    return f"Is the following statement true? Answer Yes or No.\nStatement: {statement}"


def direct_prompt(question: str) -> str:
    """The question put to the model directly: its P(yes) is the *direct answer* (DESIGN.md)."""
    return f"Answer the question with Yes or No.\nQuestion: {question}"


_PROB = re.compile(r'^\s*\{\s*"probability"\s*:\s*(-?[0-9]+(?:\.[0-9]*)?)')


def parse_credence(text: str) -> float | None:
    """The probability in a credence answer, or None when it is missing or out of [0, 1].

    An answer cut off inside the number ("0.50000000..." to the token cap, which
    small models do) still says its number: the digits before the cut are kept.
    """
    try:
        value = json.loads(text).get("probability")
    except (ValueError, AttributeError):
        m = _PROB.match(text or "")
        if not m:
            return None
        value = float(m.group(1))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


# -- text similarity -------------------------------------------------------
_LABEL = re.compile(r"^\s*(?:(?:claim|premise|reason|argument|point|fact)\s*\d*|\d+)\s*[:.)\-]\s*", re.I)
_WORD = re.compile(r"[a-z0-9]+")
_QUESTION = re.compile(r"^\s*(how|what|why|when|where|who|which)\b", re.I)
STOP = frozenset("""a an the is are was were be been being of to in on at for from by with and or but if then
than that this these those it its as into about over under not no do does did has have had will would can could
should may might must there their they them he she his her we our you your i me my so such very more most less""".split())
META = frozenset("claim claims premise premises reason reasons argument arguments statement true false "
                 "probability likely unlikely support supports against yes answer question fact facts correct "
                 "absolutely indeed definitely certainly".split())


def normalize(text: str) -> str:
    """Lower case, list labels ('Claim 1:', '2.') and punctuation stripped, spaces collapsed."""
    text = _LABEL.sub("", text.strip())
    return " ".join(_WORD.findall(text.lower()))


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(normalize(text)) if w not in STOP)


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of content words (1.0 for equal normalized texts)."""
    if normalize(a) == normalize(b):
        return 1.0
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def _covers(premise: str, claim: str) -> float:
    """Share of the claim's content words that the premise repeats."""
    wc = content_words(claim)
    return len(wc & content_words(premise)) / len(wc) if wc else 0.0


# -- parsing -----------------------------------------------------------------
@dataclass(frozen=True)
class Proposal:
    """One accepted premise: what the model said and the canonical CPT derived from it."""

    text: str
    stance: str
    credence: float
    claim_if_true: float
    claim_if_false: float
    p_if_true: float
    p_if_false: float

    def extra(self) -> dict[str, Any]:
        return {"stance_asked": self.stance, "credence": self.credence,
                "claim_if_true": self.claim_if_true, "claim_if_false": self.claim_if_false}


@dataclass(frozen=True)
class Rejection:
    text: str
    reason: str   # copies-claim, restates-ancestor, duplicate-*, vacuous, degenerate, not-a-sentence, ...


@dataclass
class Parsed:
    """Result of parsing one answer: accepted premises, rejected ones, and a whole-answer error if any."""

    proposals: list[Proposal] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None   # not-json, empty, too-long, no-premises, ...

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.proposals)


def _percent(value: Any) -> float | None:
    """A whole percentage in [0, 100] as a probability; anything else (0.9, 150, "high") is None.

    A fraction is refused rather than read as one: under the schema it cannot
    occur, and from an unconstrained backend 1 would be ambiguous (1% or 100%).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if not math.isfinite(value) or value != round(value) or not 0.0 <= value <= 100.0:
        return None
    return value / 100.0


class Guard:
    """Context of one node being expanded: what a new premise must not repeat.

    ``claim``: the node's text; ``ancestors``: texts above it; ``siblings``:
    premises it already has; ``tree_texts``: normalized texts of every node in
    the tree (tree-wide dedupe).  ``accept`` records accepted premises so the
    next one is checked against them too.
    """

    def __init__(self, claim: str, ancestors: Iterable[str] = (), siblings: Iterable[str] = (),
                 tree_texts: Iterable[str] = (), dup_threshold: float = 0.6, copy_threshold: float = 0.6,
                 cover_threshold: float = 0.9):
        self.claim = claim
        self.ancestors = list(ancestors)
        self.siblings = list(siblings)
        self.tree_norm = {normalize(t) for t in tree_texts}
        self.dup_threshold = dup_threshold
        self.copy_threshold = copy_threshold
        self.cover_threshold = cover_threshold

    def check(self, text: str) -> str | None:
        """Why ``text`` is not an acceptable new premise, or None."""
        words = content_words(text)
        if len(words - META) < 2:
            return "vacuous"
        if len(text.split()) < 3 or sum(ch.isalpha() for ch in text) < 0.6 * len(text.replace(" ", "")):
            return "not-a-sentence"  # identifiers, timestamps, single words
        if text.rstrip().endswith("?") or _QUESTION.match(text):
            return "not-a-statement"  # a premise must be true or false, not a question or a how-to
        tokens = _WORD.findall(text.lower())
        if len(tokens) >= 8 and len(set(tokens)) / len(tokens) < 0.6:
            return "degenerate"  # the same few words over and over
        if similarity(text, self.claim) >= self.copy_threshold or _covers(text, self.claim) >= self.cover_threshold:
            return "copies-claim"
        for anc in self.ancestors:
            if similarity(text, anc) >= self.copy_threshold or _covers(text, anc) >= self.cover_threshold:
                return "restates-ancestor"
        for sib in self.siblings:
            if similarity(text, sib) >= self.dup_threshold:
                return "duplicate-sibling"
        if normalize(text) in self.tree_norm:
            return "duplicate-in-tree"
        return None

    def accept(self, text: str) -> None:
        self.siblings.append(text)
        self.tree_norm.add(normalize(text))


def parse_expansion(raw: str, stance: str, guard: Guard, eps: float = EPS) -> Parsed:
    """Parse one side's answer; accepted premises are added to ``guard``."""
    out = Parsed()
    if raw is None or not raw.strip():
        out.error = "empty"
        return out
    if len(raw) > MAX_RAW:
        out.error = "too-long"
        return out
    try:
        data = json.loads(raw)
    except ValueError:
        out.error = "not-json"
        return out
    except RecursionError:
        out.error = "not-json"
        return out
    items = data.get("premises") if isinstance(data, dict) else data if isinstance(data, list) else None
    if not isinstance(items, list):
        out.error = "no-premises"
        return out
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            out.rejected.append(Rejection(str(item)[:200], "malformed"))
            continue
        text = " ".join(_LABEL.sub("", item["text"]).split())
        c, q1, q0 = (_percent(item.get(k)) for k in ("credence", "claim_if_true", "claim_if_false"))
        if c is None or q1 is None or q0 is None:
            out.rejected.append(Rejection(text, "bad-numbers"))
            continue
        # The schema puts q1/q0 on the asked side; a backend without constrained
        # decoding may not, and a premise bearing the wrong way is still a premise:
        # keep it, its stance follows the numbers.  Equal numbers bear on nothing.
        if abs(q1 - q0) < 1e-9:
            out.rejected.append(Rejection(text, "no-bearing"))
            continue
        reason = guard.check(text)
        if reason:
            out.rejected.append(Rejection(text, reason))
            continue
        p1, p0 = cpt_from_elicitation(c, q1, q0, eps)
        if p1 == p0:
            out.rejected.append(Rejection(text, "no-bearing"))
            continue
        guard.accept(text)
        out.proposals.append(Proposal(text, stance, c, q1, q0, p1, p0))
    if not out.proposals and out.error is None:
        out.error = "no-acceptable-premise" if out.rejected else "no-premises"
    return out
