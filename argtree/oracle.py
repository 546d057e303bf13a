"""Oracles: whoever answers "is this premise true?" — people, the model itself, or known truth.

One protocol (``Oracle``): ``answer(queries)`` returns, per query, an
``Answer`` or None (abstains / will answer later).  ``synchronous`` says
whether answers come back from the call (dataset, model) or arrive later
through the store's queue (human).  Every answer is stored as a label under
the oracle's annotator name (``record_answers``), so labels from any oracle
are evidence in every tree that holds the proposition, and exports see them.

* ``HumanQueueOracle``: the web app's queue.  ``answer`` returns None for all:
  stored trees are in the queue already, ranked by forest VoI; people's labels
  arrive asynchronously and the loop folds them in when it reloads a tree.
* ``ModelOracle``: the model as judge (AI feedback).  Its answer is its
  P(yes) on the yes/no prompt, stored as a probability label (soft evidence);
  it abstains when P(yes) is within ``abstain`` of 0.5.
* ``DatasetOracle``: known truth (benchmarks, tests): a map from normalized
  proposition text to its truth value; abstains on anything it does not know.
* ``FactsOracle``: the honest dataset oracle for question sets with gold facts
  (StrategyQA): answers a premise only when a gold fact of its question settles
  it by the rules of ``argtree.fact_match``, abstains otherwise.  It is what
  ``--oracle dataset`` means for a StrategyQA file (exact known truths first).

This module imports no torch or sqlalchemy at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence, runtime_checkable

from .datasets import LabeledTree, normalize, truth

__all__ = ["Query", "Answer", "Oracle", "HumanQueueOracle", "ModelOracle", "DatasetOracle", "FactsOracle", "record_answers",
           "make_oracle", "ORACLES"]

ORACLES = ("human", "model", "dataset")


@dataclass(frozen=True)
class Query:
    text: str
    proposition_id: int | None = None
    tree_id: int | None = None
    node: str | None = None
    voi: float = 0.0
    question: str | None = None        # the tree's question, for oracles that answer in its context
    facts: tuple[str, ...] = ()        # gold facts of that question, where a dataset has them


@dataclass(frozen=True)
class Answer:
    """A true/false answer (``value``) or a probability (``probability``), never both."""

    value: bool | None = None
    probability: float | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.probability is None):
            raise ValueError("an Answer has exactly one of value and probability")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")


@runtime_checkable
class Oracle(Protocol):
    name: str            # annotator name its labels are stored under
    synchronous: bool    # True: answers come back from answer(); False: they arrive later via the queue
    reliability: float   # P(its answer is right), the weight of its labels as evidence

    def answer(self, queries: Sequence[Query]) -> list[Answer | None]: ...


class HumanQueueOracle:
    """People answering in the web app; their labels reach the store on their own time."""

    name = "human"
    synchronous = False
    reliability = 0.9

    def answer(self, queries: Sequence[Query]) -> list[Answer | None]:
        return [None] * len(queries)


class ModelOracle:
    """The model as judge: P(yes) on the yes/no prompt, abstaining near 0.5."""

    synchronous = True

    def __init__(self, backend, *, abstain: float = 0.05, reliability: float = 0.7, name: str = "oracle-model"):
        if not 0.5 < reliability <= 1.0:
            raise ValueError(f"reliability must be in (0.5, 1], got {reliability}")
        self.backend = backend
        self.abstain = abstain
        self.reliability = reliability
        self.name = name

    def answer(self, queries: Sequence[Query]) -> list[Answer | None]:
        from .expand import yes_no_prompt

        if not queries:
            return []
        probs = self.backend.score_yes([yes_no_prompt(q.text) for q in queries])
        out: list[Answer | None] = []
        for p in probs:
            p = float(p)
            out.append(None if not 0.0 <= p <= 1.0 or abs(p - 0.5) < self.abstain
                       else Answer(probability=p, comment=f"model {self.backend.model_version}"))
        return out


class DatasetOracle:
    """Known truth: answers propositions whose normalized text it holds, abstains on the rest."""

    synchronous = True

    def __init__(self, truths: Mapping[str, bool], *, questions: Sequence[str] = (), name: str = "oracle-dataset",
                 reliability: float = 0.99):
        self.truths = {normalize(k): bool(v) for k, v in truths.items()}
        self.questions = list(questions)   # questions the dataset can settle, for loops without topics
        self.name = name
        self.reliability = reliability

    def answer(self, queries: Sequence[Query]) -> list[Answer | None]:
        out: list[Answer | None] = []
        for q in queries:
            value = self.truths.get(normalize(q.text))
            out.append(None if value is None else Answer(value=value, comment="dataset"))
        return out

    @classmethod
    def from_labeled_trees(cls, trees: Iterable[LabeledTree], **kw) -> "DatasetOracle":
        truths: dict[str, bool] = {}
        questions = []
        for lt in trees:
            by_node: dict[str, list] = {}
            for ev in lt.evidence:
                by_node.setdefault(ev.node, []).append(ev)
            for nid, labels in by_node.items():
                value = truth(labels)
                if value is not None:
                    truths[normalize(lt.tree[nid].text)] = value
            if lt.tree.root in by_node:
                questions.append(lt.tree[lt.tree.root].text)
        return cls(truths, questions=questions, **kw)

    @classmethod
    def from_file(cls, path: str, **kw) -> "DatasetOracle":
        """A StrategyQA-style JSON list (question/answer/facts) or an argtree/1 file of labeled tree."""
        from .io import read_json

        data = read_json(path)
        if isinstance(data, list):  # read once; checked as StrategyQA records without reading again
            from . import strategyqa

            return cls.from_labeled_trees(strategyqa.trees(strategyqa.check_records(data, path)), **kw)
        from .datasets import from_files

        return cls.from_labeled_trees(from_files([path]), **kw)


class FactsOracle:
    """Answers a premise only when a gold fact of its question settles it (``argtree.fact_match``).

    Facts come with the query (``Query.facts``) or from ``facts_by_question``
    (normalized question text -> facts, e.g. from a StrategyQA file); a query
    with neither is abstained on.  ``exact`` (normalized text -> truth) is asked
    first: propositions the dataset labels outright.  Reliability 0.9: the rules'
    hand-checked accuracy (BENCHMARKS.md) rounded down.
    """

    synchronous = True

    def __init__(self, facts_by_question: Mapping[str, Sequence[str]] | None = None, *,
                 exact: Mapping[str, bool] | None = None, questions: Sequence[str] = (),
                 name: str = "oracle-facts", reliability: float = 0.9, cover: float = 0.8):
        if not 0.5 < reliability <= 1.0:
            raise ValueError(f"reliability must be in (0.5, 1], got {reliability}")
        self.facts = {normalize(k): tuple(v) for k, v in (facts_by_question or {}).items()}
        self.exact = {normalize(k): bool(v) for k, v in (exact or {}).items()}
        self.questions = list(questions)
        self.name = name
        self.reliability = reliability
        self.cover = cover
        self.reasons: dict[str, int] = {}   # why it abstained or answered, counted

    def answer(self, queries: Sequence[Query]) -> list[Answer | None]:
        from .fact_match import settle

        out: list[Answer | None] = []
        for q in queries:
            known = self.exact.get(normalize(q.text))
            if known is not None:
                out.append(Answer(value=known, comment="dataset: labeled proposition"))
                self.reasons["exact"] = self.reasons.get("exact", 0) + 1
                continue
            facts = tuple(q.facts) or (self.facts.get(normalize(q.question)) if q.question else None) \
                or self._candidates(q.text)
            s = settle(q.text, facts, self.cover) if facts else None
            reason = s.reason if s is not None else "no facts for this question"
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            out.append(None if s is None or s.value is None
                       else Answer(value=s.value, comment=f"dataset: {s.reason}: {s.fact}"[:500]))
        return out

    def _candidates(self, text: str) -> tuple[str, ...]:
        """Without its question, a premise is matched against every gold fact sharing a content word
        with it (every gold fact is true, whichever question it came with)."""
        from .fact_match import content, words

        if not hasattr(self, "_index"):
            self._index: dict[str, set[str]] = {}
            for fs in self.facts.values():
                for f in fs:
                    for w in set(content(words(f))):
                        self._index.setdefault(w, set()).add(f)
        hits = [self._index.get(w, set()) for w in set(content(words(text)))]
        return tuple(sorted(set.intersection(*hits))) if hits and all(hits) else ()

    @classmethod
    def from_records(cls, records: Sequence[Mapping], **kw) -> "FactsOracle":
        """From StrategyQA-style records: each question's facts; the questions' answers, the facts and
        their rule-made negations (``argtree.strategyqa``) as exact truths."""
        from . import strategyqa

        exact = DatasetOracle.from_labeled_trees(strategyqa.trees(records)).truths
        facts = {r["question"]: list(r.get("facts") or ()) for r in records}
        return cls(facts, exact=exact, questions=[r["question"] for r in records], **kw)


def make_oracle(kind: str, *, backend=None, dataset: str | None = None) -> Oracle:
    if kind == "human":
        return HumanQueueOracle()
    if kind == "model":
        if backend is None:
            raise ValueError("the model oracle needs a model backend")
        return ModelOracle(backend)
    if kind == "dataset":
        if not dataset:
            raise ValueError("the dataset oracle needs --dataset FILE (StrategyQA JSON or an argtree/1 file)")
        if not os.path.exists(dataset):
            raise ValueError(f"--dataset {dataset!r}: no such file")
        from .io import read_json

        data = read_json(dataset)
        if isinstance(data, list):  # question records with gold facts: the honest facts oracle
            from . import strategyqa

            return FactsOracle.from_records(strategyqa.check_records(data, dataset))
        return DatasetOracle.from_file(dataset)
    raise ValueError(f"unknown oracle {kind!r}; choose one of {', '.join(ORACLES)}")


def record_answers(session, oracle: Oracle, queries: Sequence[Query], answers: Sequence[Answer | None]) -> int:
    """Store answers as labels of the oracle's annotator; returns how many were stored.

    Idempotent: the request id is (oracle, proposition), so replaying after a
    crash stores nothing twice.  The SQL lives in ``argtree.store.oracles``.
    """
    from .store.oracles import record_answers as store_answers

    return store_answers(session, oracle, queries, answers)


def oracle_annotator(session, name: str, reliability: float) -> int:
    """Id of the oracle's system annotator, created on first use (``argtree.store.oracles``)."""
    from .store.oracles import oracle_annotator as store_annotator

    return store_annotator(session, name, reliability)
