"""The three oracles behind one protocol, and their answers stored as labels (idempotently)."""

from __future__ import annotations

import json

import pytest

from argtree.llm.fake import FakeBackend
from argtree.oracle import (Answer, DatasetOracle, HumanQueueOracle, ModelOracle, Oracle, Query, make_oracle,
                            record_answers)
from argtree.tree import ArgumentTree, Node

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store as store  # noqa: E402
from argtree.store import load_tree, save_tree, session_scope, tree_nodes  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402


def test_all_three_satisfy_the_protocol():
    fake = FakeBackend()
    for oracle in (HumanQueueOracle(), ModelOracle(fake), DatasetOracle({})):
        assert isinstance(oracle, Oracle)
    assert HumanQueueOracle().answer([Query("a"), Query("b")]) == [None, None]


def test_dataset_oracle_knows_only_what_it_holds(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"qid": "1", "question": "Is the sun a star?", "answer": True,
                                 "facts": ["The sun is a star.", "Julius Caesar had three children."]}]))
    oracle = make_oracle("dataset", dataset=str(path))
    answers = oracle.answer([Query("the sun is a star"), Query("Julius Caesar did not have three children."),
                             Query("Is the sun a star?"), Query("Fish can fly.")])
    assert [a.value if a else None for a in answers] == [True, False, True, None]
    assert oracle.questions == ["Is the sun a star?"]
    with pytest.raises(ValueError, match="needs --dataset"):
        make_oracle("dataset")
    with pytest.raises(ValueError, match="no such file"):
        make_oracle("dataset", dataset=str(tmp_path / "none.json"))


def test_model_oracle_gives_probabilities_and_abstains_near_half():
    fake = FakeBackend(yes_scores=[0.9, 0.52, 0.1])
    answers = ModelOracle(fake).answer([Query("a"), Query("b"), Query("c")])
    assert answers[0].probability == 0.9 and answers[1] is None and answers[2].probability == 0.1
    assert "Statement: a" in fake.prompts[0]


def test_answer_has_exactly_one_kind():
    with pytest.raises(ValueError):
        Answer()
    with pytest.raises(ValueError):
        Answer(value=True, probability=0.5)
    with pytest.raises(ValueError):
        Answer(probability=1.5)


def test_record_answers_is_evidence_and_idempotent(tmp_path):
    url = sqlite_db(tmp_path)
    tree = ArgumentTree([Node("r", "Is the sun a star?", prior=0.5),
                         Node("a", "The sun emits light.", "r", p_if_true=0.9, p_if_false=0.3),
                         Node("b", "The sun is cold.", "r", p_if_true=0.1, p_if_false=0.4)])
    with session_scope(url) as s:
        tid = save_tree(s, tree)
        nodes = {n.local_id: n for n in tree_nodes(s, tid)}
    queries = [Query(nodes[k].text, nodes[k].proposition_id, tid, k) for k in ("a", "b")]
    oracle = DatasetOracle({"The sun emits light.": True, "The sun is cold.": False})
    for _ in range(2):  # a replay after a crash stores nothing twice
        with session_scope(url) as s:
            assert record_answers(s, oracle, queries, oracle.answer(queries)) == 2
    with session_scope(url) as s:
        _, evidence = load_tree(s, tid)
    assert sorted((ev.node, ev.value, ev.reliability) for ev in evidence) == [("a", True, 0.99), ("b", False, 0.99)]
    model = ModelOracle(FakeBackend(yes_scores=[0.8]), reliability=0.7)
    with session_scope(url) as s:
        assert record_answers(s, model, queries[:1], model.answer(queries[:1])) == 1
    with session_scope(url) as s:
        _, evidence = load_tree(s, tid)
    soft = [ev for ev in evidence if ev.reliability not in (0.99,)]
    # A probability label 0.8 from an annotator of reliability 0.7: P(evidence | true) = 0.7*0.8 + 0.3*0.2 = 0.62,
    # P(evidence | false) = 0.7*0.2 + 0.3*0.8 = 0.38, so soft evidence "true" of reliability 0.62.
    assert len(soft) == 1 and soft[0].value is True and soft[0].reliability == pytest.approx(0.62)
    dispose(url)
