"""Gold questions and learned reliability in the store (issue 13), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from argtree.inference import beliefs
from argtree.store import (AnnotatorEstimate, GoldAnswer, Node as NodeRow, RootBelief, StoreError, add_annotator,
                           gold_list, mark_gold, next_question, reliability_table, save_tree, session_scope,
                           set_queue_settings, submit_label, unmark_gold, update_reliability)
from argtree.store.oracles import oracle_annotator
from argtree.store.reliability import collect_votes
from argtree.store.testing import fast_password_hashing
from store_fixtures import pg_module, url  # noqa: F401
from argtree.tree import ArgumentTree, Evidence, Node

fast_password_hashing()
N = 12  # premises; the 8 with the least VoI (p4 .. p11) get gold answers (alternating true/false)
G = range(4, 12)


def _tree() -> ArgumentTree:
    nodes = [Node("q", "Is the reliability claim so?", prior=0.5)]
    for i in range(N):
        nodes.append(Node(f"p{i}", f"Premise number {i} holds.", parent="q", p_if_true=0.8 - 0.01 * i,
                          p_if_false=0.2 + 0.01 * i))
    return ArgumentTree(nodes)




@pytest.fixture
def world(url):
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password", admin=(n == "boss")).id for n in ("good", "bad", "boss")}
        tid = save_tree(s, _tree())
        nodes = {n.local_id: n for n in s.scalars(select(NodeRow).where(NodeRow.tree_id == tid))}
        pid = {k: n.proposition_id for k, n in nodes.items()}
        for i in G:
            mark_gold(s, pid[f"p{i}"], i % 2 == 0, by=ids["boss"])
    return {"url": url, "ids": ids, "tree": tid, "pid": pid, "nid": {k: n.id for k, n in nodes.items()}}


def test_gold_is_mixed_in_at_the_set_rate_and_looks_like_any_question(world):
    url, ids, pid = world["url"], world["ids"], world["pid"]
    gold = {pid[f"p{i}"] for i in G}
    with session_scope(url) as s:
        set_queue_settings(s, gold_rate=0.0)
    with session_scope(url) as s:
        q = next_question(s, ids["good"])
        assert q.proposition_id == pid["p0"]  # the plain top of the ranking
        top = q.proposition_id
    with session_scope(url) as s:
        set_queue_settings(s, gold_rate=1.0)
    served = []
    for k in range(8):
        with session_scope(url) as s:
            q = next_question(s, ids["bad"])
            assert not any("gold" in f for f in type(q).__dataclass_fields__)  # nothing says it is gold
            served.append(q.proposition_id)
            submit_label(s, ids["bad"], q.proposition_id, True, request_id=f"bad-{k}")
    assert set(served) == gold  # every gold question once, whatever its VoI
    with session_scope(url) as s:
        q = next_question(s, ids["bad"])  # gold exhausted: back to the ranking (p0 is leased to good)
        assert q.proposition_id == pid["p1"] and top == pid["p0"]
        with pytest.raises(StoreError):
            set_queue_settings(s, gold_rate=1.5)
        assert unmark_gold(s, pid["p4"]) is True and len(gold_list(s)) == 7
        with pytest.raises(StoreError):
            mark_gold(s, pid["p4"], "yes")


def test_learned_reliability_weighs_labels_and_trees_follow(world):
    url, ids, pid, nid, tid = world["url"], world["ids"], world["pid"], world["nid"], world["tree"]
    truth = {i: i % 2 == 0 for i in G}
    with session_scope(url) as s:
        oracle = oracle_annotator(s, "oracle-facts", 0.9)
        for i in G:  # good is right on every gold question, bad wrong, the oracle right
            submit_label(s, ids["good"], pid[f"p{i}"], truth[i], request_id=f"g{i}")
            submit_label(s, ids["bad"], pid[f"p{i}"], not truth[i], request_id=f"b{i}")
            submit_label(s, oracle, pid[f"p{i}"], truth[i], request_id=f"o{i}")
        # and one each on a premise nobody knows the answer to
        submit_label(s, ids["bad"], pid["p1"], True, request_id="b1")
        submit_label(s, ids["good"], pid["p2"], True, request_id="g2")
    with session_scope(url) as s:
        before = s.get(NodeRow, nid["p1"]).belief
        assert before > 0.5  # bad's "true" with the prior 0.9: believed
        out = update_reliability(s)
        assert set(out["moved"]) == {"good", "bad", "oracle-facts"} and out["trees"] == 1
    with session_scope(url) as s:
        est = {e.annotator_id: e for e in s.scalars(select(AnnotatorEstimate))}
        good, bad = est[ids["good"]], est[ids["bad"]]
        assert good.reliability > 0.9 and bad.reliability < 0.35 and est[oracle].reliability > 0.9  # prior 0.9 = 4 labels
        assert good.low < good.reliability < good.high and good.n_gold == 8 and good.gold_correct == 8
        assert bad.n_gold == 8 and bad.gold_correct == 0
        # Stored beliefs now use the learned weights: bad's "true" on p1 is evidence for false.
        after = s.get(NodeRow, nid["p1"]).belief
        assert after < 0.5
        rel = {ids["good"]: good.reliability, ids["bad"]: bad.reliability, oracle: est[oracle].reliability}
        ev = []
        for i in G:
            ev += [Evidence(f"p{i}", truth[i], rel[ids["good"]]), Evidence(f"p{i}", truth[i], 1 - rel[ids["bad"]]),
                   Evidence(f"p{i}", truth[i], rel[oracle])]
        ev += [Evidence("p1", False, 1 - rel[ids["bad"]]), Evidence("p2", True, rel[ids["good"]])]
        expect = beliefs(_tree(), ev)
        for k, n in nid.items():
            assert s.get(NodeRow, n).belief == pytest.approx(expect[k], abs=1e-9), k
        assert s.scalars(select(RootBelief.cause).where(RootBelief.tree_id == tid)
                         .order_by(RootBelief.id.desc())).first() == "recompute"
        table = {r["annotator"]: r for r in reliability_table(s)}
        assert table["bad"]["prior"] == 0.9 and table["bad"]["reliability"] == pytest.approx(bad.reliability)
        # A second update with nothing new moves nothing and recomputes nothing.
        again = update_reliability(s)
        assert again["moved"] == [] and again["trees"] == 0


def test_imported_evidence_and_model_evidence_are_not_votes(world):
    url, ids, pid = world["url"], world["ids"], world["pid"]
    with session_scope(url) as s:
        save_tree(s, ArgumentTree([Node("r", "An imported question?", prior=0.5),
                                   Node("x", "Premise number 5 holds.", parent="r", p_if_true=0.7, p_if_false=0.3)]),
                  [Evidence("x", True, 0.8), Evidence("x", True, 0.7, {"source": "model"})])
        submit_label(s, ids["good"], pid["p5"], True, request_id="g5")
    with session_scope(url) as s:
        votes, priors, gold, _ = collect_votes(s)
        assert [(v.annotator, v.item, v.value) for v in votes] == [(ids["good"], pid["p5"], True)]
        assert set(priors) == {ids["good"]} and len(gold) == 8
        assert s.scalar(select(GoldAnswer.value).where(GoldAnswer.proposition_id == pid["p5"])) is False


def test_a_dump_weighs_labels_by_the_learned_reliability(world):
    from argtree.store import load_tree

    url, ids, pid, tid = world["url"], world["ids"], world["pid"], world["tree"]
    with session_scope(url) as s:
        for i in G:
            submit_label(s, ids["bad"], pid[f"p{i}"], not (i % 2 == 0), request_id=f"b{i}")
        submit_label(s, ids["bad"], pid["p1"], True, request_id="b1")
        update_reliability(s)
    with session_scope(url) as s:
        learned = s.get(AnnotatorEstimate, ids["bad"]).reliability
        tree, evidence = load_tree(s, tid)
        stored = {n.local_id: n.belief for n in s.scalars(select(NodeRow).where(NodeRow.tree_id == tid))}
    (on_p1,) = [e for e in evidence if e.node == "p1"]
    assert learned < 0.5 and (on_p1.value, on_p1.reliability) == (False, pytest.approx(1 - learned))
    assert beliefs(tree, evidence)["q"] == pytest.approx(stored["q"], abs=1e-9)  # the dump says what the store shows
