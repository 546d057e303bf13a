"""A synthetic world the model can learn: invented people, towns and kinds of animal, atomic facts about
them, a handful of rules, and yes/no questions whose answers follow from 2-4 facts through the rules.

StrategyQA needs world knowledge a small model does not have; here every premise's truth is known, and
the knowledge *can* be learned (issue 17).  Pure: stdlib and numpy only, every random choice from the
seed (``make_world(seed, entities)`` twice gives the same world, statement for statement).

Entities.  ``entities`` people (each lives in one town, owns one pet of one kind, has one best friend),
about a third as many towns (on the coast or not; cold winters or not) and kinds of animal (eat fish or
not; can fly or not).  Names are invented from syllables (``Velra``, ``Ostmark``, ``dravel``).

Atomic statements (``TEMPLATES``; each with its negation, both answerable):

    {P} lives in {T}.            {P} does not live in {T}.
    {T} is on the coast.         {T} is not on the coast.
    {T} has cold winters.        {T} does not have cold winters.
    {P} owns a {S}.              {P} does not own a {S}.
    A {S} eats fish.             A {S} does not eat fish.
    A {S} can fly.               A {S} cannot fly.
    {P}'s best friend is {Q}.    {P}'s best friend is not {Q}.

Rules (``RULES``) and the questions they answer (``QUESTION_TYPES``):

    swim        Can P swim?                       P lives in T, T is on the coast                 (2 facts)
    coat        Does P own a winter coat?         P lives in T, T has cold winters                (2)
    pet_fish    Does P's pet eat fish?            P owns a S, a S eats fish                       (2)
    pet_fly     Can P's pet fly?                  P owns a S, a S can fly                         (2)
    friend_swim Can P's best friend swim?         P's best friend is Q, Q lives in T, T coastal   (3)
    friend_pet  Does P's best friend's pet eat fish?  friend Q, Q owns a S, a S eats fish         (3)
    fishing     Can P's pet catch fish near home? P lives in T, T coastal, P owns a S, S eats fish (4)

A question's ``facts`` are the true atomic statements it needs (a false attribute appears as its true
negation: "Ostmark is not on the coast."), its ``decomposition`` the StrategyQA-style sub-questions.

Split (``World.split``): about a fifth of the people are *unseen*: every question about them is held out,
so held-out questions use facts that no training question asks about; of the other people's questions
a quarter are held out, so held-out questions also combine facts seen in training in new ways.  Each
part is balanced (as many yes as no, by dropping extra ones at random).  ``split_stats`` says how many
held-out facts training questions also use.

The oracle (``WorldOracle``) answers a statement exactly when its normalized text is one of the world's
atomic statements (or their negations) and abstains on everything else: it never guesses.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["World", "WorldQuestion", "make_world", "TEMPLATES", "RULES", "QUESTION_TYPES", "normalize_statement",
           "WorldOracle", "PolicyOracle", "to_records", "write_questions", "split_stats", "WorldLearner",
           "LearnerTrainer"]

# (relation, positive template, negative template)
TEMPLATES: dict[str, tuple[str, str]] = {
    "lives_in": ("{a} lives in {b}.", "{a} does not live in {b}."),
    "coastal": ("{a} is on the coast.", "{a} is not on the coast."),
    "cold": ("{a} has cold winters.", "{a} does not have cold winters."),
    "owns": ("{a} owns a {b}.", "{a} does not own a {b}."),
    "eats_fish": ("A {a} eats fish.", "A {a} does not eat fish."),
    "flies": ("A {a} can fly.", "A {a} cannot fly."),
    "friend": ("{a}'s best friend is {b}.", "{a}'s best friend is not {b}."),
}

RULES: tuple[str, ...] = (
    "Someone who lives in a town on the coast can swim; someone who lives in a town not on the coast cannot.",
    "Someone who lives in a town with cold winters owns a winter coat; anyone else does not.",
    "A pet eats fish exactly when animals of its kind eat fish.",
    "A pet can fly exactly when animals of its kind can fly.",
    "A pet can catch fish near home exactly when its owner lives in a town on the coast and its kind eats fish.",
)

QUESTION_TYPES: dict[str, str] = {
    "swim": "Can {p} swim?",
    "coat": "Does {p} own a winter coat?",
    "pet_fish": "Does {p}'s pet eat fish?",
    "pet_fly": "Can {p}'s pet fly?",
    "friend_swim": "Can {p}'s best friend swim?",
    "friend_pet": "Does {p}'s best friend's pet eat fish?",
    "fishing": "Can {p}'s pet catch fish near home?",
}

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "th",
           "tr", "v", "vr", "z", "sk"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou"]
_CODAS = ["", "", "l", "n", "r", "s", "th", "m", "k"]
_TOWN_ENDS = ["mark", "holm", "wick", "stad", "ford", "vale", "by", "mere"]
_KIND_ENDS = ["el", "ik", "un", "ot", "ar", "ish"]


def normalize_statement(text: str) -> str:
    """How statements are matched: NFKC, curly quotes made straight, lower case, spaces collapsed, one final
    full stop dropped.  Nothing else is forgiven: a statement is the world's or it is not."""
    t = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    t = " ".join(t.lower().split())
    return t[:-1].rstrip() if t.endswith(".") else t


@dataclass(frozen=True)
class WorldQuestion:
    qid: str
    question: str
    answer: bool
    kind: str                       # a key of QUESTION_TYPES
    person: str
    facts: tuple[str, ...]          # the true atomic statements the answer follows from
    decomposition: tuple[str, ...]  # sub-questions, StrategyQA style
    split: str = ""                 # "train" | "heldout" (after World.split)

    def record(self) -> dict[str, Any]:
        """The StrategyQA-shaped record ``argtree.questions.load_questions`` reads."""
        return {"qid": self.qid, "question": self.question, "answer": self.answer, "facts": list(self.facts),
                "decomposition": list(self.decomposition), "type": self.kind, "split": self.split}


@dataclass
class World:
    seed: int
    people: list[str]
    towns: list[str]
    kinds: list[str]
    lives_in: dict[str, str]
    owns: dict[str, str]
    friend: dict[str, str]
    coastal: dict[str, bool]
    cold: dict[str, bool]
    eats_fish: dict[str, bool]
    flies: dict[str, bool]
    _statements: dict[str, bool] = field(default_factory=dict, repr=False)

    # -- atomic statements -------------------------------------------------------------------------

    def fact(self, relation: str, a: str, b: str | None = None, value: bool = True) -> str:
        pos, neg = TEMPLATES[relation]
        return (pos if value else neg).format(a=a, b=b)

    def true_fact(self, relation: str, a: str, b: str | None = None) -> str:
        """The true statement of a relation/attribute: positive or its negation, whichever holds."""
        return self.fact(relation, a, b, self.truth_of(relation, a, b))

    def truth_of(self, relation: str, a: str, b: str | None = None) -> bool:
        if relation == "lives_in":
            return self.lives_in[a] == b
        if relation == "owns":
            return self.owns[a] == b
        if relation == "friend":
            return self.friend[a] == b
        return {"coastal": self.coastal, "cold": self.cold, "eats_fish": self.eats_fish, "flies": self.flies}[relation][a]

    def statements(self) -> dict[str, bool]:
        """Every atomic statement of the world and every negation, as written (template text) -> truth."""
        if not self._statements:
            out: dict[str, bool] = {}

            def add(rel, a, b=None):
                t = self.truth_of(rel, a, b)
                out[self.fact(rel, a, b, True)] = t
                out[self.fact(rel, a, b, False)] = not t

            for p in self.people:
                for t in self.towns:
                    add("lives_in", p, t)
                for k in self.kinds:
                    add("owns", p, k)
                for q in self.people:
                    if q != p:
                        add("friend", p, q)
            for t in self.towns:
                add("coastal", t)
                add("cold", t)
            for k in self.kinds:
                add("eats_fish", k)
                add("flies", k)
            self._statements = out
        return self._statements

    def lookup(self, text: str) -> bool | None:
        """Truth of an atomic statement (or negation) of the world; None for any other text."""
        if not hasattr(self, "_norm"):
            self._norm = {normalize_statement(k): v for k, v in self.statements().items()}
        return self._norm.get(normalize_statement(text))

    # -- questions -----------------------------------------------------------------------------------

    def question(self, kind: str, p: str) -> WorldQuestion:
        """One question about person ``p``, answered through the rules, with its facts and decomposition."""
        t, s, q = self.lives_in[p], self.owns[p], self.friend[p]
        f = self.true_fact
        if kind == "swim":
            ans, facts = self.coastal[t], (f("lives_in", p, t), f("coastal", t))
            dec = (f"Where does {p} live?", "Is #1 on the coast?")
        elif kind == "coat":
            ans, facts = self.cold[t], (f("lives_in", p, t), f("cold", t))
            dec = (f"Where does {p} live?", "Does #1 have cold winters?")
        elif kind == "pet_fish":
            ans, facts = self.eats_fish[s], (f("owns", p, s), f("eats_fish", s))
            dec = (f"What kind of animal is {p}'s pet?", "Does #1 eat fish?")
        elif kind == "pet_fly":
            ans, facts = self.flies[s], (f("owns", p, s), f("flies", s))
            dec = (f"What kind of animal is {p}'s pet?", "Can #1 fly?")
        elif kind == "friend_swim":
            tq = self.lives_in[q]
            ans, facts = self.coastal[tq], (f("friend", p, q), f("lives_in", q, tq), f("coastal", tq))
            dec = (f"Who is {p}'s best friend?", "Where does #1 live?", "Is #2 on the coast?")
        elif kind == "friend_pet":
            sq = self.owns[q]
            ans, facts = self.eats_fish[sq], (f("friend", p, q), f("owns", q, sq), f("eats_fish", sq))
            dec = (f"Who is {p}'s best friend?", "What kind of animal is #1's pet?", "Does #2 eat fish?")
        elif kind == "fishing":
            ans = self.coastal[t] and self.eats_fish[s]
            facts = (f("lives_in", p, t), f("coastal", t), f("owns", p, s), f("eats_fish", s))
            dec = (f"Where does {p} live?", "Is #1 on the coast?", f"What kind of animal is {p}'s pet?",
                   "Does #3 eat fish?", "Are #2 and #4 both yes?")
        else:
            raise ValueError(f"unknown question type {kind!r}; one of {', '.join(QUESTION_TYPES)}")
        return WorldQuestion(f"world{self.seed}-{kind}-{p}", QUESTION_TYPES[kind].format(p=p), bool(ans), kind, p,
                             facts, dec)

    def all_questions(self) -> list[WorldQuestion]:
        return [self.question(k, p) for p in self.people for k in QUESTION_TYPES]

    def split(self, unseen_share: float = 0.2, heldout_share: float = 0.25) -> tuple[list[WorldQuestion],
                                                                                   list[WorldQuestion]]:
        """(train, held out), each balanced yes/no (module doc); seeded by the world's seed."""
        rng = np.random.default_rng([self.seed, 17])
        n_unseen = max(1, int(round(unseen_share * len(self.people))))
        unseen = set(rng.choice(self.people, size=n_unseen, replace=False).tolist())
        train, held = [], []
        for q in self.all_questions():
            if q.person in unseen or rng.random() < heldout_share:
                held.append(q)
            else:
                train.append(q)

        def balance(qs: list[WorldQuestion], part: str) -> list[WorldQuestion]:
            yes = [q for q in qs if q.answer]
            no = [q for q in qs if not q.answer]
            n = min(len(yes), len(no))
            keep = set()
            for group in (yes, no):
                idx = rng.permutation(len(group))[:n]
                keep.update(group[i].qid for i in idx)
            return [WorldQuestion(q.qid, q.question, q.answer, q.kind, q.person, q.facts, q.decomposition, part)
                    for q in qs if q.qid in keep]

        return balance(train, "train"), balance(held, "heldout")

    def settled(self, answered: Mapping[str, bool]) -> set[tuple]:
        """The facts (relation, a, b) that oracle answers (statement text -> the oracle's answer) settle:
        an attribute by either form; a link ("lives in", "owns", "best friend") only by its true value (that
        Velra does not live in Brask leaves where she lives open)."""
        index = _index(self.people, self.towns, self.kinds)
        out: set[tuple] = set()
        for text, value in answered.items():
            hit = index.get(normalize_statement(text))
            if hit is None:
                continue
            rel, a, b, positive = hit
            if rel in ("lives_in", "owns", "friend"):
                if value == positive:
                    out.add((rel, a, b))
            else:
                out.add((rel, a, None))
        return out

    def covered(self, question: WorldQuestion, settled: set[tuple]) -> bool:
        """Whether every gold fact of ``question`` is among the ``settled`` facts (``settled()``): the
        answers so far determine its answer."""
        index = _index(self.people, self.towns, self.kinds)
        for f in question.facts:
            rel, a, b, _ = index[normalize_statement(f)]
            if (rel, a, b if rel in ("lives_in", "owns", "friend") else None) not in settled:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "people": len(self.people), "towns": len(self.towns), "kinds": len(self.kinds),
                "statements": len(self.statements()), "rules": list(RULES)}


def split_stats(train: Sequence[WorldQuestion], held: Sequence[WorldQuestion]) -> dict[str, Any]:
    """How the held-out part relates to training: facts shared, facts never asked about in training."""
    seen = {normalize_statement(f) for q in train for f in q.facts}
    hf = [normalize_statement(f) for q in held for f in q.facts]
    new_q = sum(1 for q in held if any(normalize_statement(f) not in seen for f in q.facts))
    return {"train": len(train), "heldout": len(held),
            "train_yes": sum(q.answer for q in train), "heldout_yes": sum(q.answer for q in held),
            "heldout_facts": len(set(hf)), "heldout_facts_seen_in_train": len(set(hf) & seen),
            "heldout_questions_with_an_unseen_fact": new_q,
            "heldout_questions_all_facts_seen": len(held) - new_q}


def _names(rng: np.random.Generator, n: int, ends: Sequence[str] | None, taken: set[str], capital: bool) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        syl = 2 if ends is None else 1
        word = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) + str(rng.choice(_CODAS))
                       for _ in range(syl))
        if ends is not None:
            word += str(rng.choice(list(ends)))
        if not 4 <= len(word) <= 10 or word in taken:
            continue
        taken.add(word)
        out.append(word.capitalize() if capital else word)
    return out


def _bools(rng: np.random.Generator, items: Sequence[str]) -> dict[str, bool]:
    """About half true, at least one of each (so every question type can be balanced)."""
    vals = rng.permutation([i % 2 == 0 for i in range(len(items))])
    return {x: bool(v) for x, v in zip(items, vals)}


def make_world(seed: int = 0, entities: int = 12) -> World:
    """A world of ``entities`` people (at least 3), towns and kinds of animal about a third as many (at least
    3 each); every choice from ``seed``."""
    if entities < 3:
        raise ValueError(f"a world needs at least 3 people, got {entities}")
    rng = np.random.default_rng([seed, 1701])
    taken: set[str] = set()
    people = _names(rng, entities, None, taken, True)
    n_places = max(3, entities // 3)
    towns = _names(rng, n_places, _TOWN_ENDS, taken, True)
    kinds = _names(rng, n_places, _KIND_ENDS, taken, False)
    lives_in = {p: str(rng.choice(towns)) for p in people}
    owns = {p: str(rng.choice(kinds)) for p in people}
    order = [str(x) for x in rng.permutation(people)]
    friend = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}  # a cycle: no one is their own
    return World(seed, people, towns, kinds, lives_in, owns, friend, _bools(rng, towns), _bools(rng, towns),
                 _bools(rng, kinds), _bools(rng, kinds))


def to_records(questions: Iterable[WorldQuestion]) -> list[dict[str, Any]]:
    return [q.record() for q in questions]


def write_questions(questions: Iterable[WorldQuestion], path) -> int:
    """A JSON list of StrategyQA-shaped records (``argtree eval --questions`` and ``improve`` read it)."""
    recs = to_records(questions)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(recs, fh, indent=1)
    return len(recs)


# -- oracles ---------------------------------------------------------------------------------------


class WorldOracle:
    """The world's oracle: answers exactly the world's atomic statements (and their negations), matched by
    the world's own templates (``normalize_statement``); abstains on anything else.  It implements
    ``argtree.oracle.Oracle``; it is the ``dataset`` oracle of ``argtree bench world``."""

    synchronous = True

    def __init__(self, world: World, *, name: str = "oracle-world", reliability: float = 0.99,
                 questions: Sequence[str] = ()):
        if not 0.5 < reliability <= 1.0:
            raise ValueError(f"reliability must be in (0.5, 1], got {reliability}")
        self.world = world
        self.name = name
        self.reliability = reliability
        self.questions = list(questions)
        self.asked = 0
        self.answered = 0

    def answer(self, queries) -> list:
        from .oracle import Answer

        out = []
        for q in queries:
            self.asked += 1
            value = self.world.lookup(q.text)
            if value is None:
                out.append(None)
            else:
                self.answered += 1
                out.append(Answer(value=value, comment="world: atomic statement"))
        return out


class PolicyOracle:
    """Answers at most ``k`` queries of each call: the first ``k`` that ``inner`` can answer, taken in the
    order given (``voi``: the caller's VoI order) or in a seeded random order (``random``); abstains on the
    rest.  So two policies spend the same number of answers, and differ only in which premises get them."""

    synchronous = True

    def __init__(self, inner, k: int, policy: str = "voi", seed: int = 0):
        if policy not in ("voi", "random"):
            raise ValueError(f"policy must be 'voi' or 'random', got {policy!r}")
        self.inner, self.k, self.policy, self.seed = inner, int(k), policy, seed
        self.name = inner.name
        self.reliability = inner.reliability
        self.questions = list(getattr(inner, "questions", []))
        self.calls = 0

    def answer(self, queries) -> list:
        queries = list(queries)
        order = list(range(len(queries)))
        if self.policy == "random":
            tree = next((q.tree_id for q in queries if getattr(q, "tree_id", None) is not None), None)
            rng = np.random.default_rng([self.seed, 1 + (self.calls if tree is None else 10 ** 6 + int(tree))])
            order = [int(i) for i in rng.permutation(len(queries))]
        self.calls += 1
        out: list = [None] * len(queries)
        given = 0
        for i in order:
            if given >= self.k:
                break
            a = self.inner.answer([queries[i]])[0]
            if a is not None:
                out[i] = a
                given += 1
        return out



# -- an idealized learner: a control for the machinery, not a language model --------------------------

LEARNER_FILE = "world_learner.json"


def _index(people: Sequence[str], towns: Sequence[str], kinds: Sequence[str]) -> dict[str, tuple[str, str, Any, bool]]:
    """Every atomic statement the world's language can form over these names (true or not), normalized ->
    (relation, a, b, positive).  Knowing the language is not knowing the facts."""
    out: dict[str, tuple[str, str, Any, bool]] = {}

    def add(rel, a, b=None):
        pos, neg = TEMPLATES[rel]
        out[normalize_statement(pos.format(a=a, b=b))] = (rel, a, b, True)
        out[normalize_statement(neg.format(a=a, b=b))] = (rel, a, b, False)

    for p in people:
        for t in towns:
            add("lives_in", p, t)
        for k in kinds:
            add("owns", p, k)
        for q in people:
            if q != p:
                add("friend", p, q)
    for t in towns:
        add("coastal", t)
        add("cold", t)
    for k in kinds:
        add("eats_fish", k)
        add("flies", k)
    return out


class _Beliefs:
    """Probabilities over the world's facts from what was learned: a learned fact is certain, a functional
    relation (lives in, owns, best friend) is uniform over the values not known false, an attribute 0.5."""

    FUNCTIONAL = {"lives_in": "towns", "owns": "kinds", "friend": "people"}

    def __init__(self, vocab: Mapping[str, Sequence[str]], known: Mapping[tuple, bool]):
        self.vocab, self.known = vocab, dict(known)

    def with_fact(self, key: tuple, value: bool) -> "_Beliefs":
        return _Beliefs(self.vocab, {**self.known, key: value})

    def dist(self, rel: str, a: str) -> dict[str, float]:
        cands = [x for x in self.vocab[self.FUNCTIONAL[rel]] if not (rel == "friend" and x == a)]
        for x in cands:
            if self.known.get((rel, a, x)) is True:
                return {x: 1.0}
        free = [x for x in cands if self.known.get((rel, a, x)) is not False] or cands
        return {x: 1.0 / len(free) for x in free}

    def attr(self, rel: str, a: str) -> float:
        v = self.known.get((rel, a, None))
        return 0.5 if v is None else float(v)

    def p_yes(self, kind: str, p: str) -> float:
        if kind in ("swim", "coat"):
            rel = "coastal" if kind == "swim" else "cold"
            return sum(w * self.attr(rel, t) for t, w in self.dist("lives_in", p).items())
        if kind in ("pet_fish", "pet_fly"):
            rel = "eats_fish" if kind == "pet_fish" else "flies"
            return sum(w * self.attr(rel, s) for s, w in self.dist("owns", p).items())
        if kind in ("friend_swim", "friend_pet"):
            sub = "swim" if kind == "friend_swim" else "pet_fish"
            return sum(w * self.p_yes(sub, q) for q, w in self.dist("friend", p).items())
        if kind == "fishing":
            return self.p_yes("swim", p) * self.p_yes("pet_fish", p)
        raise ValueError(kind)

    def p_statement(self, key: tuple, positive: bool) -> float:
        rel, a, b = key
        p = self.dist(rel, a).get(b, 0.0) if rel in self.FUNCTIONAL else self.attr(rel, a)
        return p if positive else 1.0 - p

    def relevant(self, kind: str, p: str) -> list[tuple]:
        """Facts the question's answer can depend on."""
        towns, kinds_, people = self.vocab["towns"], self.vocab["kinds"], self.vocab["people"]
        if kind in ("swim", "coat"):
            rel = "coastal" if kind == "swim" else "cold"
            return [("lives_in", p, t) for t in towns] + [(rel, t, None) for t in towns]
        if kind in ("pet_fish", "pet_fly"):
            rel = "eats_fish" if kind == "pet_fish" else "flies"
            return [("owns", p, s) for s in kinds_] + [(rel, s, None) for s in kinds_]
        if kind == "friend_swim":
            return [("friend", p, q) for q in people if q != p] + [("lives_in", q, t) for q in people if q != p
                                                                  for t in towns] + [("coastal", t, None) for t in towns]
        if kind == "friend_pet":
            return [("friend", p, q) for q in people if q != p] + [("owns", q, s) for q in people if q != p
                                                                  for s in kinds_] + [("eats_fish", s, None) for s in kinds_]
        return self.relevant("swim", p) + self.relevant("pet_fish", p)


def _pct(x: float, lo: int = 5, hi: int = 95) -> int:
    return int(min(max(5 * round(100 * x / 5), lo), hi))


class WorldLearner:
    """An idealized learner of the world, behind the backend protocol (``argtree.llm.base.Backend``).

    It knows the world's language (names, templates) and its rules, and no facts until it is trained: it
    remembers exactly every fact record (an oracle's answer) and every gold-answer record it was trained on
    (``LearnerTrainer``), and reasons through the rules over what it knows (unknown facts: uniform).  Its
    premises for a question are the atomic statements that would move its answer most; its credences and
    direct answers are its beliefs.  It is a *control*: it shows what the rounds machinery carries from the
    oracle into the next version and into held-out trees when the model can learn; it is not a language
    model, and numbers measured with it say nothing about one.
    """

    kind = "world-learner"

    def __init__(self, vocab: Mapping[str, Sequence[str]], knowledge: Mapping[str, Any] | None = None, *,
                 model_version: str = "world-learner"):
        self.vocab = {k: list(vocab[k]) for k in ("people", "towns", "kinds")}
        self.index = _index(self.vocab["people"], self.vocab["towns"], self.vocab["kinds"])
        knowledge = knowledge or {}
        self.facts = {k: bool(v) for k, v in knowledge.get("facts", {}).items()}
        self.answers = {k: bool(v) for k, v in knowledge.get("answers", {}).items()}
        known = {}
        for text, value in self.facts.items():
            hit = self.index.get(text)
            if hit is not None:
                rel, a, b, positive = hit
                known[(rel, a, b)] = value if positive else not value
        self.beliefs = _Beliefs(self.vocab, known)
        self.model_version = model_version
        self.calls = 0
        self.scoring_failures = 0
        self._qre = [(k, re.compile("^" + re.escape(t).replace(re.escape("{p}"), "(.+)") + "$"))
                     for k, t in QUESTION_TYPES.items()]

    @classmethod
    def vocab_of(cls, world: World) -> dict[str, list[str]]:
        return {"people": list(world.people), "towns": list(world.towns), "kinds": list(world.kinds)}

    @classmethod
    def load(cls, vocab, path: str | None, *, model_version: str = "world-learner") -> "WorldLearner":
        import os

        knowledge = None
        if path and os.path.exists(os.path.join(path, LEARNER_FILE)):
            with open(os.path.join(path, LEARNER_FILE), encoding="utf-8") as fh:
                knowledge = json.load(fh)
        return cls(vocab, knowledge, model_version=model_version)

    def _question(self, text: str) -> tuple[str, str] | None:
        for kind, rx in self._qre:
            m = rx.match(text.strip())
            if m and m.group(1) in self.vocab["people"]:
                return kind, m.group(1)
        return None

    def score_yes(self, prompts: Sequence[str], *, system: str | None = None) -> list[float]:
        self.calls += 1
        out = []
        for prompt in prompts:
            m = re.search(r"^(Statement|Question): (.*)$", prompt, re.M)
            p = 0.5
            if m and m.group(1) == "Statement":
                hit = self.index.get(normalize_statement(m.group(2)))
                if hit is not None:
                    p = self.beliefs.p_statement(hit[:3], hit[3])
            elif m:
                q = normalize_statement(m.group(2))
                if q in self.answers:
                    p = float(self.answers[q])
                else:
                    parsed = self._question(m.group(2))
                    if parsed is not None:
                        p = self.beliefs.p_yes(*parsed)
            out.append(min(max(p, 0.03), 0.97))
        return out

    def generate_json(self, prompts: Sequence[str], schema, *, system: str | None = None, max_new_tokens: int = 256,
                      temperature: float = 0.0, seed: int | None = None) -> list:
        from .llm.base import Generation

        self.calls += 1
        schemas = [schema] * len(prompts) if isinstance(schema, dict) else list(schema)
        return [Generation(self._answer(p, s)) for p, s in zip(prompts, schemas)]

    def _answer(self, prompt: str, schema: Mapping) -> str:
        props = schema.get("properties", {})
        if "probability" in props:
            m = re.search(r"^Statement: (.*)$", prompt, re.M)
            p = self.score_yes([yes_no_prompt_text(m.group(1))])[0] if m else 0.5
            return json.dumps({"probability": round(p, 2)})
        if "premises" not in props:
            return json.dumps({k: [] for k in props})
        n = int(props["premises"].get("maxItems", 2))
        stance = "for" if "make the answer YES" in prompt or "SUPPORT the claim" in prompt else "against"
        m = re.search(r"^(?:Question|Claim): (.*)$", prompt, re.M)
        claim = m.group(1) if m else ""
        parsed = self._question(claim)
        premises = self._premises(*parsed, stance, n) if parsed else []
        if not premises:  # nothing it knows bears on this: one premise it cannot check either
            subject = claim.rstrip("?.").split()[-1] if claim.split() else "this"
            premises = [{"text": f"Nothing is known yet about {subject} that settles this.", "credence": 50,
                         "claim_if_true": 55 if stance == "for" else 45, "claim_if_false": 50}]
        return json.dumps({"premises": premises})

    ATTRS = (("coastal", "towns"), ("cold", "towns"), ("eats_fish", "kinds"), ("flies", "kinds"))

    def _completions(self, k: int = 6) -> list["_Beliefs"]:
        """``k`` seeded guesses of every attribute it does not know: a fact that matters only together with
        another one ("P lives in T" matters once T's coast is known) shows its relevance under them."""
        if not hasattr(self, "_comp"):
            rng = np.random.default_rng(7)
            self._comp = []
            for _ in range(k):
                known = dict(self.beliefs.known)
                for rel, part in self.ATTRS:
                    for x in self.vocab[part]:
                        known.setdefault((rel, x, None), bool(rng.random() < 0.5))
                self._comp.append(_Beliefs(self.vocab, known))
        return self._comp

    def _premises(self, kind: str, person: str, stance: str, n: int) -> list[dict]:
        b = self.beliefs
        scored = []
        for key in b.relevant(kind, person):
            for positive in (True, False):
                c = b.p_statement(key, positive)
                if c <= 0.0 or (key[0] in b.FUNCTIONAL and not positive):
                    continue  # known false, or "X does not live in Y" (rarely worth saying)
                q1 = b.with_fact(key, positive).p_yes(kind, person)
                q0 = b.with_fact(key, not positive).p_yes(kind, person)
                relevance = abs(q1 - q0)
                if key[0] in b.FUNCTIONAL and c < 1.0:  # a link of the rule's chain: first things first
                    relevance = max(relevance, float(np.mean([
                        abs(g.with_fact(key, positive).p_yes(kind, person) - g.with_fact(key, not positive).p_yes(
                            kind, person)) for g in self._completions()])))
                if relevance < 1e-9:
                    continue
                if abs(q1 - q0) > 1e-9 and (q1 > q0) != (stance == "for"):
                    continue
                # ties (facts it knows nothing about) broken by a hash of question and statement: different
                # questions get different premises, as a sampling model's would
                text = self.fact_text(key[0], key[1], key[2], positive)
                tie = hashlib.sha256(f"{self.model_version}|{kind}|{person}|{text}".encode("utf-8")).hexdigest()
                scored.append((-round(relevance * max(c, 0.05), 9), tie, text, c, q1, q0))
        scored.sort()
        out = []
        for _, _, text, c, q1, q0 in scored[:n]:
            if stance == "for":
                q1p, q0p = _pct(q1, 55, 95), _pct(q0, 5, 50)
            else:
                q1p, q0p = _pct(q1, 5, 45), _pct(q0, 50, 95)
            out.append({"text": text, "credence": _pct(c), "claim_if_true": q1p, "claim_if_false": q0p})
        return out

    @staticmethod
    def fact_text(rel: str, a: str, b: Any, positive: bool) -> str:
        pos, neg = TEMPLATES[rel]
        return (pos if positive else neg).format(a=a, b=b)


def yes_no_prompt_text(statement: str) -> str:
    """argtree.expand.yes_no_prompt's text (kept here so this module needs no import of it)."""
    return f"Is the following statement true? Answer Yes or No.\nStatement: {statement}"


class LearnerTrainer:
    """``argtree.improve``'s Trainer for ``WorldLearner``: a version directory holding what it learned from
    the stage's data (fact records: statement -> Yes/No; gold-distillation records: question -> majority
    answer) on top of its parent's; written atomically.  DPO teaches it nothing (its premises are chosen by
    its beliefs), so that stage copies its parent."""

    name = "world-learner"
    writes_weights = False

    def _write(self, stage: str, data: str, parent: str | None, out: str, steps: int, seed: int, learn: bool) -> dict:
        import os
        import shutil

        knowledge = {"facts": {}, "answers": {}}
        if parent and os.path.exists(os.path.join(parent, LEARNER_FILE)):
            with open(os.path.join(parent, LEARNER_FILE), encoding="utf-8") as fh:
                knowledge = json.load(fh)
        learned = {"facts": 0, "answers": 0}
        votes: dict[str, int] = {}
        if learn:
            with open(data, encoding="utf-8") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    kind = (rec.get("argtree") or {}).get("kind")
                    msgs = rec.get("messages") or []
                    if len(msgs) < 2:
                        continue
                    user, yes = msgs[-2].get("content", ""), msgs[-1].get("content") == "Yes"
                    if kind == "fact":
                        m = re.search(r"^Statement: (.*)$", user, re.M)
                        if m:
                            knowledge["facts"][normalize_statement(m.group(1))] = yes
                            learned["facts"] += 1
                    elif kind == "distill-gold":
                        m = re.search(r"^Question: (.*)$", user, re.M)
                        if m:
                            q = normalize_statement(m.group(1))
                            votes[q] = votes.get(q, 0) + (1 if yes else -1)
            for q, v in votes.items():
                if v != 0:
                    knowledge["answers"][q] = v > 0
                    learned["answers"] += 1
        if os.path.exists(out):
            raise FileExistsError(f"{out} already exists")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = os.path.join(os.path.dirname(os.path.abspath(out)), f".{os.path.basename(out)}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        meta = {"stage": stage, "how": "world learner: remembers fact and gold-answer records", "parent": parent,
                "learned": learned, "known_facts": len(knowledge["facts"]), "steps": steps, "seed": seed,
                "seconds": 0.0}
        with open(os.path.join(tmp, LEARNER_FILE), "w", encoding="utf-8") as fh:
            json.dump(knowledge, fh, sort_keys=True)
        with open(os.path.join(tmp, "argtree_version.json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
        os.replace(tmp, out)
        return meta

    def sft(self, data, parent, out, *, steps, seed=0):
        return self._write("sft", data, parent, out, steps, seed, learn=True)

    def dpo(self, data, parent, out, *, steps, seed=0):
        return self._write("dpo", data, parent, out, steps, seed, learn=False)
