"""Question proposals for the loop: the prompt, the guards, sampled retries, and training data.

``argtree.loop.propose_questions`` asks the model for yes/no questions about a
topic (``proposal_prompt``, ``argtree.loop.question_schema``).  The schema
already makes each one a single ASCII line with a capital first and a "?"
last; the guards here decide whether it is a question the loop should grow a
tree for.  A proposal is rejected, with the reason, when it

* ``not-a-question``: breaks the schema's pattern (a backend that cannot
  enforce it), has a "?" before the end or none at the end;
* ``not-yes-no``: does not start with an auxiliary or modal verb (``YES_NO_START``:
  Is, Are, Does, Did, Can, Could, Would, Will, Was, Were, Has, Have, Had,
  Should, Do, ... or a negated contraction of one, "Isn't");
* ``too-short``: has fewer than ``MIN_WORDS`` words;
* ``unfinished``: ends on a word that cannot end a question ("... and is not?");
* ``degenerate``: repeats the same few words over and over;
* ``stacked-negation``: holds more than one negation word (not, no, never,
  none, nor, neither, n't ...); a question with one is accepted and flagged
  (``Verdict.negation``), so reports can count them;
* ``evaluative``: asks for a judgment no fact settles ("a viable solution",
  "a good idea", "worth it", "a serious issue", "a sustainable alternative",
  "a place in the future of": ``EVALUATIVE``);
* ``vague``: hangs on a word no fact pins down ("a lot of", "a large number of",
  "Is there a way to ...", "more affordable", "be able to": ``VAGUE``);
* ``to-reader``: asks the reader about themselves or for something ("Are you a
  cyclist?", "Can you please ...": ``TO_READER``);
* ``no-content``: is about a question or an answer, not the world ("Is the
  answer to this question a lie?"), or echoes the prompt ("Is there a
  well-informed person who could answer this question?": ``NO_CONTENT``);
* ``repeats-word``: says a content word (4+ letters) twice, the mark of the
  garbled and tautological proposals ("Is the concept of cultural hegemony a
  topic of cultural hegemony?", "Did Chevrolet Cruze have a 2019 Chevrolet
  Cruze?") unless "than", "and", "or", "as" ... lies between the two (a comparison:
  "Are bike lanes cheaper than bus lanes?"); it also costs about 2% of
  StrategyQA's own train questions;
* ``copies-topic``: is the topic itself, or adds no content word to it
  ("Is this the renewable energy?");
* ``off-topic``: shares no content word with the topic (accents dropped; a
  word matches another up to a plural ending or when both begin with the same
  5+ letters making 70% of the shorter one: hippos / hippopotamus; see ``_same_word``);
* ``near-duplicate``: its content words overlap an earlier question of the
  run (the ones given, and the ones accepted before it) with a Jaccard
  similarity of at least ``DUP_THRESHOLD`` (``argtree.expand.similarity``);
* ``hypothetical``: a "Would ..." question or one about "a person"
  (``HYPOTHETICAL``): what the trained proposer writes this way is rarely
  answerable; checked last, and not held against StrategyQA's own questions
  when they become training data (``PROPOSER_ONLY``);
* ``judgment``: a judgment or comparison no single fact settles ("necessary",
  "better for", "more expensive", "a major threat to", "profitable": ``JUDGMENT``;
  also ``PROPOSER_ONLY``);
* ``low-score``: (over-generating backends only) the proposer itself finds the
  question unlikely: ``question_logprob`` under ``SCORE_FLOOR``;
* ``loose``: hangs on a word no fact pins down ("popular", "the best",
  "significant", "many"), asks two questions in one, or says "they"/"you" with
  no referent (``LOOSE``; also ``PROPOSER_ONLY``).

``propose`` calls the backend greedily first, then (while fewer than n
questions were accepted) up to ``retries`` more times with sampling
(``RETRY_TEMPERATURE``) and a new seed each time, asking for the questions
still missing; every rejection is kept with its reason.  Where the backend can
score its own candidates (the local one: ``answer_logprob``), each call also
samples ``SAMPLES`` answers, and the candidates that pass the guards are taken
best first by the proposer's log-probability of the question
(``question_logprob``), one under ``SCORE_FLOOR`` rejected as ``low-score``.

``proposal_records`` turns StrategyQA into training data for the proposer:
the term and its description are the topic, the term's questions the answer,
in exactly the prompt and JSON shape ``propose_questions`` uses, train split
only (``argtree.questions.split_heldout``, the split every part of argtree
holds out).

``loop_proposal_records`` turns the loop's own proposals into training data:
a proposed question whose tree people or oracles could work with (an
informative answer somewhere, no ill-posed answer on the question itself),
grouped by topic, with provenance (runs, trees, label sources, annotators).

Pure apart from ``propose``, which calls the backend it is handed.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .datasets import normalize as normalize_key
from .expand import content_words, similarity

__all__ = ["YES_NO_START", "NEGATION_WORDS", "EVALUATIVE", "VAGUE", "TO_READER", "NO_CONTENT", "HYPOTHETICAL", "LOOSE",
           "JUDGMENT",
           "PROPOSER_ONLY", "DUP_THRESHOLD", "MIN_WORDS", "RETRY_TEMPERATURE", "REASONS", "SAMPLES",
           "SAMPLE_TEMPERATURE", "SCORE_FLOOR", "ANSWER_PREFIX", "question_logprob",
           "proposal_prompt", "negations", "is_yes_no", "mentions_topic", "Verdict", "ProposalGuard",
           "Proposals", "propose", "proposal_topic", "proposal_records", "heldout_terms",
           "LOOP_SOURCES", "label_source", "workable", "loop_proposal_records", "fact_question",
           "lowercase_words", "fact_subject", "topic_key", "SUBJECT_WORDS"]

YES_NO_START = frozenset("is are was were does do did can could would will has have had should shall must may "
                         "might".split())
NEGATION_WORDS = frozenset("not no never none nor neither nobody nothing nowhere cannot".split())
DUP_THRESHOLD = 0.7
MIN_WORDS = 4
# Sampled retries at 0.8 made a trained proposer's accepted questions 16% answerable (11 of 70) against 42%
# (11 of 26) for its greedy answers (proposer-v2, BENCHMARKS.md): retries sample close to greedy.
# At 0.4, proposer-v3's sampled accepted questions were 45% answerable (18/40) against 80% (12/15) greedy.
RETRY_TEMPERATURE = 0.2
# Over-generate and select (run 3, BENCHMARKS.md), where the backend can score its own candidates
# (``answer_logprob``): besides the greedy answer, SAMPLES sampled answers at SAMPLE_TEMPERATURE in one batched
# call; every candidate the guards pass is scored by the proposer's log-probability of writing it alone
# (``question_logprob``) and the best go first.  On the 207 labeled trained-proposer questions the guards
# accept (labels.jsonl + labels2.jsonl), that log-probability ranks answerable above unanswerable ones with
# an AUC of 0.76 (length alone 0.65; length, form and restatement added to it: no better); below SCORE_FLOOR
# (nats) proposer-v3's accepted questions were 3 of 17 answerable, above it 49 of 76.
SAMPLES = 4
SAMPLE_TEMPERATURE = 0.4
SCORE_FLOOR = -20.0
REASONS = ("not-a-question", "not-yes-no", "too-short", "unfinished", "degenerate", "stacked-negation",
           "evaluative", "vague", "to-reader", "no-content", "repeats-word", "copies-topic", "off-topic",
           "near-duplicate", "hypothetical", "loose", "judgment", "low-score")
# Reasons that judge what a small proposer writes, not what a person asks: StrategyQA's own questions are
# not rejected for them when they become training data (proposal_records).
PROPOSER_ONLY = frozenset({"hypothetical", "loose", "judgment"})
# Asks for a judgment no fact settles ("Is high-speed rail a good idea?"): measured as the main kind of
# unanswerable proposal of the trained proposer (BENCHMARKS.md, "Question proposals").
# The meaning guards below them (vague, to-reader, no-content, repeats-word) and the second half of
# EVALUATIVE were written from the 278 hand labels of the first run (bench/results/proposals/labels.jsonl)
# and measured on fresh proposals made after they were committed (BENCHMARKS.md).
EVALUATIVE = re.compile(r"\b(viable|worthwhile|worth it|worth the|good (idea|thing|way|choice|place|option)|"
                        r"bad (idea|thing)|serious (issue|problem)|a (big |real )?problem|success story|a reality|"
                        r"sustainable alternative|double standard|(have|has|had) a place in|the future of|"
                        r"a form of \w+ (creation|displacement))\b", re.I)
VAGUE = re.compile(r"\b(a lot|lots of|a large number of|be able to|more (affordable|sustainable|efficient|effective|"
                   r"accessible|popular))\b|^is there a way\b", re.I)
TO_READER = re.compile(r"^(are|were) you\b|\bplease\b|\byou('re| are)? (sure|ready)\b", re.I)
# The prompt's own words echoed back ("Is there a well-informed person who could answer this question?",
# "Is there a checkable fact about X?"): the base model's commonest answer to proposal_prompt.  Added after
# the base model's fresh run and before the shipped proposer's (BENCHMARKS.md).
# "Would a coral reef be extinct if the world had 1000 people?", "Can a person work in a 20-bedroom office?":
# of the trained proposer's fresh proposals (proposer-v2, BENCHMARKS.md) 1 of 13 "Would" questions and 1 of 5
# about "a person" were answerable.  Checked last, and not applied to StrategyQA's questions as training data
# (16% of them start with "Would", and are answerable): PROPOSER_ONLY.
HYPOTHETICAL = re.compile(r"^would\b|^(can|could|does|do|is|will|should|did) a person\b", re.I)
# Words no fact pins down ("popular", "the best", "typical", "significant", "a major issue", "many"), two
# questions in one (", and do they ..."), a "they" or "you" with no referent: fitted on the hand labels of
# proposer-v2 and proposer-v3's fresh proposals (1 of 29 such accepted questions answerable; 2.7% of
# StrategyQA's train questions match), measured on a second, fresh topic set (BENCHMARKS.md).
LOOSE = re.compile(r"\b(popular|best|typical|luxury|widely|the most|too (high|low|much|many|expensive|difficult|"
                   r"small|big)|significant|significantly|major issue|big issue|previously thought|healthy way|"
                   r"many)\b|, and (do|does|is|are|can)\b|^(do|did|will) (you|they)\b|^can they\b|"
                   r"\byour (country|body)\b", re.I)
# Judgments and comparisons no single fact settles ("Are carbon taxes necessary to combat climate change?", "Are
# standing desks better for the environment?", "Are electric cars more expensive than gas cars?", "a major threat
# to", "profitable"): fitted on the hand labels of runs 2 and 3 (11 unanswerable run-2 questions; of what the
# loop asked on run 3's third set: 25 of the 45 unanswerable questions about our topics and 1 of the 42 answerable
# ones, 1 of 20 and 0 of 60 on held-out terms), measured on a fourth, fresh set (BENCHMARKS.md, run 3).
# PROPOSER_ONLY.
JUDGMENT = re.compile(r"\b(necessary|necessity|essential|healthy (choice|way|option)|safe and (reliable|effective "
                      r"treatment)|rite of passage|profitable|(better|worse) (for|than)|health of the planet|"
                      r"major (threat|problem|contributor|cause)|sexist|unhealthy|overly|more (expensive|costly|"
                      r"efficient|effective|reliable|dangerous|harmful|beneficial)|faster than (expected|"
                      r"predicted|thought)|a source of information)\b", re.I)
NO_CONTENT = re.compile(r"\bthis (question|answer|topic|text)\b|\bthe answer\b|\ba question\b|\bthe question\b|"
                        r"\bwell-informed\b|\bcheckable\b|\byes/no\b|\byes or no\b|"
                        r"\bis there an? (\w+ )?fact\b", re.I)
# Words a finished question does not end on ("Is X good for the?", "... and is not?").
_DANGLING = frozenset("a an the and or but nor than if its their his her my our your very no not".split())
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def proposal_prompt(topic: str, n: int) -> str:
    """The user prompt ``propose_questions`` sends (and the proposer is trained on).

    It asks for checkable facts a well-informed person could answer, not opinions: the first prompt
    ("whose answer is uncertain and could be checked") drew evaluative questions ("Is X a good idea?")."""
    return (f"Topic: {topic}\nWrite {n} different yes/no questions about this topic. Each asks about a checkable "
            "fact, not an opinion, that a well-informed person could answer yes or no, in one sentence ending "
            "with a question mark.")


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text.replace("\u2019", "'"))]


def negations(text: str) -> int:
    """Negation words in ``text`` (not, no, never, none, nor, neither, cannot, any n't contraction ...)."""
    return sum(t in NEGATION_WORDS or t.endswith("n't") for t in _tokens(text))


def _first_is_aux(text: str) -> bool:
    toks = _tokens(text)
    if not toks or not text[:1].isupper():
        return False
    first = toks[0]
    if first.endswith("n't"):  # Isn't, Doesn't, Can't, Won't, Shouldn't
        first = {"can't": "can", "won't": "will", "shan't": "shall"}.get(first, first[:-3])
    return first in YES_NO_START


def is_yes_no(text: str) -> bool:
    """One question, answered yes or no: an auxiliary or modal verb first, one "?" and it last."""
    text = text.strip()
    return _first_is_aux(text) and text.endswith("?") and text.count("?") == 1


_COMPARE = frozenset("than or and as vs versus nor".split())


def _repeated_word(text: str) -> str | None:
    """A content word of 4+ letters said twice (case and accents ignored), or None."""
    seen: dict[str, int] = {}
    words = {w.lower() for w in content_words(_plain(text))}
    toks = _tokens(_plain(text))
    for i, t in enumerate(toks):
        if len(t) >= 4 and t in words:
            # a comparison or a pair names a word twice on purpose: "bike lanes ... than bus lanes"
            if t in seen and not _COMPARE & set(toks[seen[t] + 1:i]):
                return t
            seen[t] = i
    return None


def _forms(word: str) -> set[str]:
    """The word and what it is without a plural ending (bikes -> bike, boxes -> box, cities -> city)."""
    out = {word}
    for end, add in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(end) and len(word) - len(end) >= 3:
            out.add(word[: -len(end)] + add)
    return out


def _same_word(a: str, b: str) -> bool:
    """Equal, equal up to a plural ending (bike / bikes, city / cities, moustache / moustaches), or one stem
    with other endings: a common beginning of at least 5 letters and 70% of the shorter word (hippos /
    hippopotamus, tourist / tourism, snowboard / snowboarding; not internet / international)."""
    if a == b or _forms(a) & _forms(b):
        return True
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k >= 5 and k >= 0.7 * min(len(a), len(b))


def _plain(text: str) -> str:
    """Accents dropped (Panthéon -> Pantheon), so content words compare as a reader would."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def mentions_topic(text: str, topic: str) -> bool:
    """Does ``text`` share a content word with ``topic`` (up to a plural ending)?  A topic without content
    words (all stop words) is mentioned by anything."""
    tw = content_words(_plain(topic))
    if not tw:
        return True
    qw = content_words(_plain(text))
    return any(_same_word(a, b) for a in tw for b in qw)


@dataclass(frozen=True)
class Verdict:
    text: str
    reason: str | None      # None: accepted; else one of REASONS
    negation: bool = False  # holds (exactly) one negation word
    score: float | None = None  # the proposer's log-probability of it (question_logprob), where it was scored

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"question": self.text, "negation": self.negation}
        if self.reason:
            d["reason"] = self.reason
        if self.score is not None:
            d["score"] = round(self.score, 3)
        return d


class ProposalGuard:
    """What a new proposal about ``topic`` must be (module doc); ``earlier``: questions of the run so far.

    ``check`` judges one text; ``accept`` adds an accepted one to the questions later ones are compared with."""

    def __init__(self, topic: str, earlier: Iterable[str] = (), dup_threshold: float = DUP_THRESHOLD,
                 pattern: str | None = None):
        if pattern is None:
            from .loop import QUESTION_PATTERN as pattern
        self.topic = topic
        self.earlier = list(earlier)
        self.dup_threshold = dup_threshold
        self.pattern = re.compile(pattern)

    def reason(self, text: str) -> str | None:
        if not self.pattern.match(text) or text.count("?") != 1:
            return "not-a-question"
        if not _first_is_aux(text):
            return "not-yes-no"
        toks = _tokens(text)
        if len(toks) < MIN_WORDS:
            return "too-short"
        if toks[-1] in _DANGLING:
            return "unfinished"
        if len(toks) >= 8 and len(set(toks)) / len(toks) < 0.6:
            return "degenerate"
        if negations(text) > 1:
            return "stacked-negation"
        if EVALUATIVE.search(text):
            return "evaluative"
        if VAGUE.search(text):
            return "vague"
        if TO_READER.search(text):
            return "to-reader"
        if NO_CONTENT.search(text):
            return "no-content"
        if _repeated_word(text):
            return "repeats-word"
        if normalize_key(text) == normalize_key(self.topic) or similarity(text, self.topic) >= 1.0 \
                or not content_words(_plain(text)) - content_words(_plain(self.topic)):
            return "copies-topic"
        if not mentions_topic(text, self.topic):
            return "off-topic"
        if any(similarity(text, e) >= self.dup_threshold for e in self.earlier):
            return "near-duplicate"
        if HYPOTHETICAL.search(text):
            return "hypothetical"
        if LOOSE.search(text):
            return "loose"
        if JUDGMENT.search(text):
            return "judgment"
        return None

    def check(self, text: str) -> Verdict:
        text = " ".join(str(text).split())
        return Verdict(text, self.reason(text), negations(text) == 1)

    def accept(self, text: str) -> None:
        self.earlier.append(" ".join(text.split()))


@dataclass
class Proposals:
    """One topic's proposals: accepted (in order), rejected with reasons, and the model calls made."""

    topic: str
    accepted: list[Verdict] = field(default_factory=list)
    rejected: list[Verdict] = field(default_factory=list)
    attempts: int = 0
    errors: list[str] = field(default_factory=list)   # answers that were no usable JSON (per attempt)
    unused: list[Verdict] = field(default_factory=list)  # passed and scored, but n better ones were taken

    @property
    def questions(self) -> list[str]:
        return [v.text for v in self.accepted]

    def to_json(self) -> dict[str, Any]:
        d = {"topic": self.topic, "accepted": [v.to_json() for v in self.accepted],
             "rejected": [v.to_json() for v in self.rejected], "attempts": self.attempts,
             "errors": list(self.errors)}
        if self.unused:
            d["unused"] = [v.to_json() for v in self.unused]
        return d


def _items(gen) -> tuple[list[Any], str | None]:
    if not getattr(gen, "ok", False):
        return [], f"generation failed: {getattr(gen, 'error', None) or 'no answer'}"
    try:
        items = json.loads(gen.text).get("questions", [])
    except (ValueError, AttributeError):
        return [], "not JSON with a 'questions' list"
    if not isinstance(items, list):
        return [], "'questions' is not a list"
    return items, None


ANSWER_PREFIX = '{"questions": ["'


def question_logprob(backend, topic: str, questions: Sequence[str]) -> list[float] | None:
    """The backend's log-probability of writing each question as its whole answer to ``proposal_prompt(topic,
    1)`` (after the JSON's opening ``{"questions": ["``, through the closing ``"]}``); None when the backend
    cannot score (no ``answer_logprob``: the fake and HTTP backends)."""
    score = getattr(backend, "answer_logprob", None)
    if score is None or not questions:
        return None if score is None else []
    answers = [json.dumps(q)[1:-1] + '"]}' for q in questions]
    return [float(x) for x in score([proposal_prompt(topic, 1)] * len(questions), answers, prefix=ANSWER_PREFIX)]


def propose(backend, topic: str, n: int, seed: int = 0, *, retries: int = 2, earlier: Iterable[str] = (),
            temperature: float = RETRY_TEMPERATURE, samples: int | None = None,
            sample_temperature: float = SAMPLE_TEMPERATURE, floor: float | None = SCORE_FLOOR) -> Proposals:
    """Up to ``n`` guarded yes/no questions about ``topic`` (module doc): a greedy call, then up to
    ``retries`` sampled calls with new seeds for the questions still missing.

    Where the backend can score (``question_logprob``; ``samples`` None: ``SAMPLES`` then, else 0), it
    over-generates and selects: every call also draws ``samples`` sampled answers (at ``sample_temperature``,
    one batched call, asking for ``n``), the candidates that pass the guards are scored, and taken best first;
    one scored under ``floor`` is rejected ("low-score"), and those left over once n were taken are kept in
    ``unused``.  Without a scorer, or with ``samples`` 0, the answers are taken in the order written."""
    from .loop import question_bound, question_schema

    guard = ProposalGuard(topic, earlier)
    out = Proposals(topic)
    scores_ok = getattr(backend, "answer_logprob", None) is not None
    if samples is None:
        samples = SAMPLES if scores_ok else 0
    select = scores_ok and samples > 0
    seen: set[str] = set()
    for attempt in range(retries + 1):
        want = n - len(out.accepted)
        if want <= 0:
            break
        temp = 0.0 if attempt == 0 else temperature
        gens = backend.generate_json([proposal_prompt(topic, want)], question_schema(want),
                                     max_new_tokens=question_bound(want), temperature=temp,
                                     seed=seed + 7919 * attempt)
        if select:
            gens = list(gens[:1]) + list(backend.generate_json(
                [proposal_prompt(topic, n)] * samples, question_schema(n), max_new_tokens=question_bound(n),
                temperature=sample_temperature, seed=seed + 7919 * attempt + 1))
        out.attempts += 1
        cands: list[Verdict] = []
        for g in gens or [None]:
            items, error = _items(g)
            if error:
                out.errors.append(error)
            for q in items:
                if not isinstance(q, str):
                    out.rejected.append(Verdict(json.dumps(q)[:200], "not-a-question"))
                    continue
                v = guard.check(q)
                if not select:
                    if v.ok and len(out.accepted) < n:
                        guard.accept(v.text)
                        out.accepted.append(v)
                    elif not v.ok:
                        out.rejected.append(v)
                    continue
                if v.text in seen:   # the same text again (sampled answers repeat the greedy one): judged once
                    continue
                seen.add(v.text)
                (cands if v.ok else out.rejected).append(v)
        if not select or not cands:
            continue
        scores = question_logprob(backend, topic, [v.text for v in cands]) or [float("nan")] * len(cands)
        scored = [Verdict(v.text, None, v.negation, s) for v, s in zip(cands, scores)]
        # best first; an unscorable one (nan) last; ties keep the order written (greedy first)
        order = sorted(range(len(scored)), key=lambda i: (-(scored[i].score if scored[i].score == scored[i].score
                                                             else float("-inf")), i))
        for i in order:
            v = scored[i]
            if floor is not None and not (v.score is not None and v.score >= floor):
                out.rejected.append(Verdict(v.text, "low-score", v.negation, v.score))
                continue
            again = guard.check(v.text)   # near-duplicates of the ones taken just before it
            if not again.ok:
                out.rejected.append(Verdict(v.text, again.reason, v.negation, v.score))
            elif len(out.accepted) < n:
                guard.accept(v.text)
                out.accepted.append(v)
            else:
                out.unused.append(v)
    return out


# -- training data from StrategyQA ------------------------------------------------------------

def proposal_topic(term: str, description: str | None) -> str:
    """The topic a StrategyQA term stands for in a prompt: "term (description)", or the term alone."""
    term, description = " ".join(term.split()), " ".join((description or "").split())
    return f"{term} ({description})" if description else term


def _by_term(questions) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for q in questions:
        term = q.extra.get("term")
        if isinstance(term, str) and term.strip():
            groups[" ".join(term.split())].append(q)
    return groups


def heldout_terms(questions) -> list[tuple[str, str]]:
    """(term, topic) for the terms all of whose questions are held out: terms no training record names."""
    from .questions import split_heldout

    train, _ = split_heldout(list(questions))
    seen = {" ".join(q.extra["term"].split()) for q in train if isinstance(q.extra.get("term"), str)}
    out = []
    for term, qs in sorted(_by_term(questions).items()):
        if term not in seen:
            out.append((term, proposal_topic(term, qs[0].extra.get("description"))))
    return out


_FACT_AUX = ("is are was were can could will would should may might must has have had".split())
_ARTICLE = frozenset("the a an".split())


_LEADING = frozenset("in on at by for from during if when after before since although though while according "
                     "as because unlike like with without".split())


def lowercase_words(texts: Iterable[str]) -> frozenset[str]:
    """Words written in lower case more often than capitalized where they are not first in a sentence (so
    "Perjury", "Dandelions" or "There" may start a question in lower case, "Memphis" or "Bitcoin" not)."""
    low: dict[str, int] = defaultdict(int)
    cap: dict[str, int] = defaultdict(int)
    for t in texts:
        for w in str(t).split()[1:]:
            w = w.strip(".,;:?!()\"'")
            if w.isalpha():
                (low if w.islower() else cap)[w.lower()] += 1
    return frozenset(w for w, k in low.items() if k > cap.get(w, 0))


def _fact_parts(fact: str, lower: frozenset[str]) -> tuple[str, list[str], list[str]] | None:
    """(auxiliary, subject words, rest) of a fact ``fact_question`` can turn around (its doc), else None."""
    text = " ".join(str(fact).split()).rstrip(".").strip()
    if not text or negations(text) or any(c in text for c in '?"\\;:'):
        return None
    words = text.split(" ")
    if words[0].lower() in _LEADING:   # "In South Asia the plant is ...": no subject first
        return None
    for i, w in enumerate(words[:9]):
        low = w.lower()
        if i == 0 or low not in _FACT_AUX:
            if "," in w:
                return None
            continue
        rest = words[i + 1:]
        if not rest:
            return None
        if low in ("has", "have", "had") and not (rest[0] == "been" or rest[0].endswith(("ed", "en"))):
            return None
        subject = words[:i]
        if subject[0].lower() in _ARTICLE or subject[0].lower() in lower or subject[0] == "There":
            subject = [subject[0].lower()] + subject[1:]
        return w, subject, rest
    return None


def fact_question(fact: str, lower: frozenset[str] = frozenset()) -> str | None:
    """A StrategyQA fact as the yes/no question it answers "yes" to, by moving its first auxiliary verb to the
    front ("Rede Globo is a Brazilian television network." -> "Is Rede Globo a Brazilian television
    network?"); None when there is no auxiliary after a short subject (no comma, at most 8 words), the fact
    holds a negation, or has/have/had is the main verb ("Leipzig has a zoo."; do-support would need a
    lemmatizer).  Facts are checkable by construction, so these questions are answerable ones."""
    parts = _fact_parts(fact, lower)
    if parts is None:
        return None
    w, subject, rest = parts
    return f"{w[:1].upper()}{w[1:].lower()} {' '.join(subject + rest)}?"


# A subject that is no topic a person would type: a pronoun, a quantifier, "There", "What ...", or one that
# carries an adverb or a reflexive ("Menthol itself", "Guitarists typically").
_NOT_A_SUBJECT = frozenset("there it they he she we you i this that these those some most many all every each such "
                           "other its his her their what which who one both few several another any itself "
                           "themselves himself herself typically usually often generally also alone only always "
                           "sometimes mostly commonly normally originally now still".split())
SUBJECT_WORDS = 4   # at most this many words in a fact's subject as a bare topic (articles left out)


def fact_subject(fact: str, lower: frozenset[str] = frozenset()) -> str | None:
    """The subject of the question ``fact_question`` makes from ``fact``, as a bare topic: a noun phrase with
    no description, as people type one ("Olive oil is made from olives." -> "olive oil" when "olive" is
    written in lower case more often, "The Eiffel Tower is in Paris." -> "Eiffel Tower"); a leading article is
    left out.  None: no such question, or a subject no one would type as a topic (a pronoun or quantifier
    first, an adverb or reflexive in it, more than ``SUBJECT_WORDS`` words, digits or brackets)."""
    parts = _fact_parts(fact, lower)
    if parts is None:
        return None
    subject = parts[1][1:] if parts[1][0].lower() in _ARTICLE else parts[1]
    if not subject or len(subject) > SUBJECT_WORDS or any(w.lower() in _NOT_A_SUBJECT for w in subject) \
            or subject[0].lower() in YES_NO_START:   # "Will Ferrell was born ..." reads "will Ferrell"
        return None
    if any(not re.fullmatch(r"[A-Za-z][A-Za-z'&.-]*", w) for w in subject) \
            or not content_words(_plain(" ".join(subject))):
        return None
    return " ".join(subject)


def topic_key(topic: str) -> str:
    """A topic as compared with another: case-folded, accents and a leading article dropped ("The Police" ->
    "police")."""
    words = normalize_key(_plain(topic)).split()
    return " ".join(words[1:] if len(words) > 1 and words[0] in _ARTICLE else words)


def _record(topic: str, questions: list[str], **extra) -> dict:
    """One conversational training record: the loop's prompt for ``topic``, answered with ``questions``."""
    return {"messages": [
        {"role": "user", "content": proposal_prompt(topic, len(questions))},
        {"role": "assistant", "content": json.dumps({"questions": questions})},
    ], **extra}


def proposal_records(questions, *, max_per_prompt: int = 5, guarded: bool = True,
                     bare: bool = False, facts: bool = False, strict: bool = False, subjects: bool = False,
                     exclude: Iterable[str] = (), labeled: Iterable[dict] = ()) -> tuple[list[dict], dict]:
    """(conversational records, counts) teaching the proposer on the train split of StrategyQA ``questions``
    (``argtree.questions.Question`` objects with ``term``/``description`` in ``extra``).

    One record per term (several, ``max_per_prompt`` questions each, where a term has more): the user
    prompt is ``proposal_prompt(topic, k)`` and the answer ``{"questions": [...]}`` written as the
    one-line JSON the constrained decoder writes, valid under ``question_schema(k)``.  Questions that
    break the schema's pattern are left out, and with ``guarded`` also those the guards reject (with the
    term's topic; e.g. two negations): the proposer learns what the loop accepts.  Held-out questions
    (``split_heldout``) never appear, not even as a train question with the same text under another id.
    With ``bare`` every record is written a second time with the term alone as the topic (topics people
    type, "urban cycling", carry no description).  With ``facts`` a term's questions are preceded by its
    train questions' facts turned into questions (``fact_question``; counted in ``from_facts``), guarded
    the same way: simple checkable questions about the term, several per term.  With ``strict`` the
    ``PROPOSER_ONLY`` guards reject too ("Would ..." questions, "popular", "many"): the proposer sees only what
    the loop would accept from it (run 3).  With ``subjects`` (run 4) the train questions' facts are also
    grouped by their subject (``fact_subject``) and each subject, a bare noun phrase ("olive oil", "rabies"), is
    the topic of a record of its fact questions: topics typed with no description, answered with checkable
    facts.  A subject that is a held-out question's term, or one of ``exclude`` (the topics a benchmark
    measures on), compared by ``topic_key``, makes no record (counted in ``subject_heldout`` and
    ``subject_excluded``).  With ``labeled`` (run 5), hand labels of the loop's own proposals (rows of
    ``bench/results/proposals/labels*.jsonl``: {"set", "topic", "question", "answerable", "model"}, each with the
    label file's name under ``"file"``) teach too: per topic, the questions labeled answerable, in the prompt the
    loop sends for that topic, with provenance under ``"argtree"`` (source "hand-label", "hand label answerable",
    the label files and the loops that asked).  Only rows whose set is not "heldout": the held-out terms' proposals
    stay untrained.  Unanswerable rows, a topic that is a held-out question's term, a held-out question's text, the
    pattern and the guards (as for the other records) leave a question out (counted in ``labeled_*``).  These
    records come last.  Deterministic: topics sorted, questions in the rows' order."""
    from .loop import QUESTION_PATTERN
    from .questions import split_heldout

    train, held = split_heldout(list(questions))
    counts: dict[str, int] = {"questions": len(train) + len(held), "heldout": len(held), "train": len(train),
                              "no_term": 0, "same_as_heldout": 0, "pattern": 0, "records": 0, "used": 0}
    counts.update({r: 0 for r in REASONS})
    if subjects:
        counts.update(subject_heldout=0, subject_excluded=0, subject_records=0, from_subjects=0)
    counts["no_term"] = sum(not isinstance(q.extra.get("term"), str) or not q.extra["term"].strip() for q in train)
    # StrategyQA holds some questions twice under two ids: a train copy of a held-out question is left out.
    held_texts = {normalize_key(q.question) for q in held}
    # A held-out question's term makes no topic of a record (a fact subject or a labeled proposal's topic).
    held_keys = {topic_key(q.extra["term"]) for q in held if isinstance(q.extra.get("term"), str)}

    def passing(cands, guard: ProposalGuard):
        """The (text, tag) candidates a record may teach, in order: not a held-out question's text, the loop's
        question pattern, and (``guarded``) the guards; each one left out is counted under its reason."""
        for text, tag in cands:
            if normalize_key(text) in held_texts:
                counts["same_as_heldout"] += 1
                continue
            if not re.match(QUESTION_PATTERN, text):
                counts["pattern"] += 1
                continue
            if guarded:
                v = guard.check(text)
                if not v.ok and (strict or v.reason not in PROPOSER_ONLY):
                    counts[v.reason] += 1
                    continue
                guard.accept(text)
            yield text, tag

    lower = lowercase_words(t for q in train for t in (q.question, *(getattr(q, "facts", ()) or ()))) \
        if facts else frozenset()
    records = []
    for term, qs in sorted(_by_term(train).items()):
        topic = proposal_topic(term, qs[0].extra.get("description"))
        guard = ProposalGuard(topic)
        keep = []
        cands = [(" ".join(q.question.split()), False) for q in qs]
        if facts:
            made = [fact_question(f, lower) for q in qs for f in (getattr(q, "facts", ()) or ())]
            cands = [(m, True) for m in made if m] + cands
        for text, from_fact in passing(cands, guard):
            keep.append(text)
            counts["from_facts"] = counts.get("from_facts", 0) + from_fact
        for i in range(0, len(keep), max_per_prompt):
            chunk = keep[i:i + max_per_prompt]
            records.append(_record(topic, chunk, term=term))
            counts["used"] += len(chunk)
            if bare and topic != term:  # only the questions the guards pass with the term alone as the topic
                alone = ProposalGuard(term)
                ok = (None,) if strict else (None, *PROPOSER_ONLY)
                mine = [q for q in chunk if not guarded or alone.check(q).reason in ok]
                if mine:
                    records.append(_record(term, mine, term=term))
                    counts["bare"] = counts.get("bare", 0) + 1
    if subjects:
        skip = {topic_key(t) for t in exclude}
        lower = lower or lowercase_words(t for q in train for t in (q.question, *(getattr(q, "facts", ()) or ())))
        groups: dict[str, tuple[str, list[str]]] = {}
        for term, qs in sorted(_by_term(train).items()):
            for q in qs:
                for f in getattr(q, "facts", ()) or ():
                    subject, text = fact_subject(f, lower), fact_question(f, lower)
                    if subject and text:
                        groups.setdefault(topic_key(subject), (subject, []))[1].append(text)
        for key in sorted(groups):
            topic, texts = groups[key]
            if key in held_keys or key in skip:
                counts["subject_heldout" if key in held_keys else "subject_excluded"] += 1
                continue
            keep = [text for text, _ in passing(((t, False) for t in texts), ProposalGuard(topic))]
            for i in range(0, len(keep), max_per_prompt):
                chunk = keep[i:i + max_per_prompt]
                records.append(_record(topic, chunk, term=topic, source="fact-subject"))
                counts["subject_records"] += 1
                counts["from_subjects"] += len(chunk)
    labeled = list(labeled)
    if labeled:
        counts.update(labeled_rows=len(labeled), labeled_heldout_set=0, labeled_unanswerable=0,
                      labeled_repeat=0, labeled_heldout_topic=0, labeled_records=0, from_labeled=0)
        by_topic: dict[str, list[dict]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        for row in labeled:
            topic, text = " ".join(str(row.get("topic") or "").split()), " ".join(str(row.get("question") or "").split())
            if row.get("set") == "heldout":
                counts["labeled_heldout_set"] += 1
            elif not row.get("answerable"):
                counts["labeled_unanswerable"] += 1
            elif (topic, text) in seen:   # the same pair labeled for two loops (or in two runs)
                counts["labeled_repeat"] += 1
            elif topic_key(topic) in held_keys:
                counts["labeled_heldout_topic"] += 1
            else:
                seen.add((topic, text))
                by_topic[topic].append(dict(row, question=text))
        for topic in sorted(by_topic):
            rows = {r["question"]: r for r in by_topic[topic]}
            keep = [text for text, _ in passing(((q, False) for q in rows), ProposalGuard(topic))]
            for i in range(0, len(keep), max_per_prompt):
                chunk = keep[i:i + max_per_prompt]
                records.append(_record(topic, chunk, term=topic, source="labeled", argtree={
                    "kind": "proposal", "provenance": {
                        "source": "hand-label", "label": "hand label answerable", "topic": topic,
                        "files": sorted({str(rows[q].get("file")) for q in chunk if rows[q].get("file")}),
                        "models": sorted({str(rows[q].get("model")) for q in chunk if rows[q].get("model")})}}))
                counts["labeled_records"] += 1
                counts["from_labeled"] += len(chunk)
    counts["records"] = len(records)
    return records, counts


# -- training data from the loop's own proposals ----------------------------------------------

LOOP_SOURCES = ("human", "dataset")  # whose answers make a proposal one people or oracles could work with


def label_source(annotator_name: str, role: str) -> str | None:
    """'human', 'dataset' or 'model' for a label's annotator (None: neither, e.g. imported evidence).
    People are annotators and admins; the oracles are system annotators named after their kind."""
    if role in ("annotator", "admin"):
        return "human"
    if annotator_name.startswith("oracle-model"):
        return "model"
    if annotator_name.startswith(("oracle-dataset", "oracle-facts", "oracle-strategyqa", "oracle-world")):
        return "dataset"
    return None


def workable(item: dict, sources: Sequence[str] = LOOP_SOURCES) -> str | None:
    """Why a loop tree's question does NOT teach the proposer (None: it does).  ``item["labels"]``: the live
    labels on the tree's nodes ({"node", "root": bool, "kind", "source"}); only ``sources`` count.

    A proposal people or oracles could work with: its tree got at least one informative answer (true,
    false or a probability other than 0.5) and nobody of ``sources`` called the question itself
    ill-posed (an ill-posed root answer counts against it whatever else was answered)."""
    labels = [lb for lb in item.get("labels", ()) if lb.get("source") in sources]
    if any(lb.get("root") and lb.get("kind") == "ill_posed" for lb in labels):
        return "ill-posed"
    if not any(lb.get("kind") in ("true", "false") or
               (lb.get("kind") == "probability" and lb.get("probability") not in (None, 0.5)) for lb in labels):
        return "no-answer"
    return None


def loop_proposal_records(items: Iterable[dict], *, sources: Sequence[str] = LOOP_SOURCES,
                          max_per_prompt: int = 5) -> tuple[list[dict], dict]:
    """(conversational records, counts) teaching the proposer from the loop's own proposals.

    ``items``: one per loop tree ({"topic", "question", "tree_id", "run", "labels"}; see
    ``argtree.store.proposals.loop_proposal_items``).  Kept: the questions ``workable`` passes that today's
    guards accept for their topic (the first tree of a question only; near-duplicates of a kept one are
    dropped).  One record per topic (``max_per_prompt`` questions each, more records where it has more),
    in ``proposal_prompt``'s prompt and the one-line JSON the decoder writes, with provenance under
    ``"argtree"``: ``{"kind": "proposal", "provenance": {"source": "loop", "topic", "runs", "trees",
    "label_sources", "annotators"}}``.  Deterministic: topics sorted, questions by tree id."""
    counts: dict[str, int] = {"trees": 0, "no-topic": 0, "ill-posed": 0, "no-answer": 0, "guards": 0,
                              "records": 0, "used": 0}
    by_topic: dict[str, list[dict]] = defaultdict(list)
    for it in sorted(items, key=lambda i: (str(i.get("topic") or ""), int(i.get("tree_id") or 0))):
        counts["trees"] += 1
        topic = " ".join(str(it.get("topic") or "").split())
        if not topic:
            counts["no-topic"] += 1
            continue
        why = workable(it, sources)
        if why:
            counts[why] += 1
            continue
        by_topic[topic].append(it)
    records = []
    for topic in sorted(by_topic):
        guard = ProposalGuard(topic)
        keep: list[tuple[str, dict]] = []
        for it in by_topic[topic]:
            v = guard.check(str(it.get("question") or ""))
            if not v.ok:
                counts["guards"] += 1
                continue
            guard.accept(v.text)
            keep.append((v.text, it))
        for i in range(0, len(keep), max_per_prompt):
            chunk = keep[i:i + max_per_prompt]
            used = [lb for _, it in chunk for lb in it.get("labels", ()) if lb.get("source") in sources]
            records.append(_record(topic, [q for q, _ in chunk], argtree={"kind": "proposal", "provenance": {
                "source": "loop", "topic": topic,
                "runs": sorted({it.get("run") for _, it in chunk if it.get("run") is not None}),
                "trees": [it.get("tree_id") for _, it in chunk],
                "label_sources": sorted({lb["source"] for lb in used}),
                "annotators": sorted({str(lb.get("annotator")) for lb in used if lb.get("annotator")})}}))
            counts["used"] += len(chunk)
    counts["records"] = len(records)
    return records, counts
