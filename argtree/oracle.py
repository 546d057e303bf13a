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

This module imports no torch or sqlalchemy at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence, runtime_checkable

from .datasets import LabeledTree, normalize, truth

__all__ = ["Query", "Answer", "Oracle", "HumanQueueOracle", "ModelOracle", "DatasetOracle", "record_answers",
           "make_oracle", "ORACLES"]

ORACLES = ("human", "model", "dataset")


@dataclass(frozen=True)
class Query:
    text: str
    proposition_id: int | None = None
    tree_id: int | None = None
    node: str | None = None
    voi: float = 0.0


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
        return DatasetOracle.from_file(dataset)
    raise ValueError(f"unknown oracle {kind!r}; choose one of {', '.join(ORACLES)}")


def record_answers(session, oracle: Oracle, queries: Sequence[Query], answers: Sequence[Answer | None]) -> int:
    """Store answers as labels of the oracle's annotator; returns how many were stored.

    Idempotent: the request id is (oracle, proposition), so replaying after a
    crash stores nothing twice.
    """
    from .store import submit_label

    if not any(a is not None for a in answers):
        return 0
    aid = oracle_annotator(session, oracle.name, oracle.reliability)
    n = 0
    for q, a in zip(queries, answers):
        if a is None or q.proposition_id is None:
            continue
        submit_label(session, aid, q.proposition_id, a.value, probability=a.probability, comment=a.comment,
                     request_id=f"{oracle.name}:{q.proposition_id}")
        n += 1
    return n


def oracle_annotator(session, name: str, reliability: float) -> int:
    """Id of the oracle's system annotator, created with the oracle's reliability on first use.

    Safe when several loop workers answer their first queries at once: the one whose insert loses the
    race (unique name) rolls back to a savepoint and reads the winner's row."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from .store import Annotator

    query = select(Annotator.id).where(Annotator.name == name)
    aid = session.scalar(query)
    if aid is None:
        row = Annotator(name=name, role="system", password_hash=None, reliability=float(reliability))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            aid = row.id
        except IntegrityError:
            aid = session.scalar(query)
            if aid is None:
                raise
    return aid
