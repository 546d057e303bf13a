"""The store and the queue on a migrated database (SQLite, and PostgreSQL when reachable)."""

from __future__ import annotations

import math

import pytest

from argtree.inference import beliefs
from argtree.io import load
from argtree.tree import ArgumentTree, Evidence, Node
from argtree.voi import root_if, voi

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store as store  # noqa: E402
from argtree.store import (NotFound, StoreError, add_annotator, annotator_stats, get_queue_settings,  # noqa: E402
                           load_tree, next_question, root_history, save_tree, session_scope, set_queue_settings,
                           submit_label, tree_nodes, undo_last_label)
from argtree.store.testing import fast_password_hashing  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

EXAMPLE = "argtree/examples/remote_work.json"


fast_password_hashing()




def chain_tree(texts, prior=0.5, p1=0.8, p0=0.3):
    nodes = [Node("r", texts[0], prior=prior)]
    nodes += [Node(f"n{i}", t, parent="r", p_if_true=p1, p_if_false=p0) for i, t in enumerate(texts[1:])]
    return ArgumentTree(nodes)


def people(url, *names):
    with session_scope(url) as s:
        return [add_annotator(s, n, "password123").id for n in names]


def test_round_trip_and_stored_numbers_match_the_core(url):
    tree, evidence = load(EXAMPLE)
    with session_scope(url) as s:
        tid = save_tree(s, tree, evidence)
    with session_scope(url) as s:
        tree2, ev2 = load_tree(s, tid)
        nodes = {n.local_id: n for n in tree_nodes(s, tid)}
    assert list(tree2.nodes) == list(tree.nodes)
    assert [tree2[n].text for n in tree2.nodes] == [tree[n].text for n in tree.nodes]
    assert sorted((e.node, e.value, e.reliability) for e in ev2) == sorted((e.node, e.value, e.reliability)
                                                                           for e in evidence)
    ref, ref_voi = beliefs(tree, evidence), voi(tree, evidence)
    for nid, info in nodes.items():
        assert info.belief == pytest.approx(ref[nid], abs=1e-12)
        assert info.voi == pytest.approx(ref_voi.get(nid, 0.0), abs=1e-12)
        if nid in ref_voi and nid != "a1":
            t, f = root_if(tree, evidence, nid)
            assert (info.root_if_true, info.root_if_false) == (pytest.approx(t, abs=1e-9), pytest.approx(f, abs=1e-9))


def test_queue_order_leases_labels_history(url):
    tree, evidence = load(EXAMPLE)
    alice, bob = people(url, "alice", "bob")
    with session_scope(url) as s:
        tid = save_tree(s, tree, evidence)
    ranked = sorted(voi(tree, evidence).items(), key=lambda kv: -kv[1])
    with session_scope(url) as s:
        qa = next_question(s, alice)
        qb = next_question(s, bob)
    assert qa.text == tree[ranked[0][0]].text and qa.forest_voi == pytest.approx(ranked[0][1])
    assert qb.text == tree[ranked[1][0]].text          # alice's lease hides the best one from bob
    assert qa.chain[-1].text == tree[tree.root].text and qa.chain[0].text == qa.text
    with session_scope(url) as s:
        assert next_question(s, alice).proposition_id == qa.proposition_id  # a reload asks the same
        label = submit_label(s, alice, qa.proposition_id, False, request_id="req-1", seconds=3.5)
    with session_scope(url) as s:
        again = submit_label(s, alice, qa.proposition_id, False, request_id="req-1")
        assert again.id == label.id
        t2, ev2 = load_tree(s, tid)
        nodes = {n.local_id: n for n in tree_nodes(s, tid)}
        hist = root_history(s, tid)
        stats = annotator_stats(s, alice)
    ref = beliefs(t2, ev2)
    assert len(ev2) == len(evidence) + 1
    assert nodes[tree.root].belief == pytest.approx(ref[tree.root])
    assert [p.cause for p in hist] == ["created", "label"] and hist[-1].belief == pytest.approx(ref[tree.root])
    assert hist[-1].annotator == "alice" and hist[-1].answer == "false"
    assert stats.answered_today == 1 and stats.seconds_today == 3.5
    with session_scope(url) as s:
        assert next_question(s, alice).proposition_id not in (qa.proposition_id, qb.proposition_id)
        undone = undo_last_label(s, alice)
        assert undone.id == label.id
        assert next_question(s, alice).proposition_id == qa.proposition_id  # the undone question comes back
        assert [p.cause for p in root_history(s, tid)][-1] == "undo"


def test_shared_propositions_sum_priority_weighted_voi(url):
    t1 = chain_tree(["Root one", "Shared premise", "Other premise"])
    t2 = chain_tree(["Root two", "Shared  premise", "Third premise"], p1=0.9, p0=0.1)  # same text, spaces differ
    with session_scope(url) as s:
        id1 = save_tree(s, t1, priority=1.0)
        id2 = save_tree(s, t2, priority=3.0)
        (alice,) = [add_annotator(s, "alice", "password123").id]
        q = next_question(s, alice)
    expect = voi(t1)["n0"] * 1.0 + voi(t2)["n0"] * 3.0
    assert q.text == "Shared premise" and q.forest_voi == pytest.approx(expect)
    assert set(q.tree_ids) == {id1, id2} and q.tree_id == id2
    with session_scope(url) as s:
        submit_label(s, alice, q.proposition_id, True, request_id="x")
        h1, h2 = root_history(s, id1), root_history(s, id2)
    assert len(h1) == len(h2) == 2  # one label moved both roots


def test_overlap_and_dont_know(url):
    with session_scope(url) as s:
        save_tree(s, chain_tree(["Q", "Only premise"]))
    a, b, c = people(url, "a", "b", "c")
    with session_scope(url) as s:
        assert get_queue_settings(s)["queue.overlap"] == 1
        pid = next_question(s, a).proposition_id
        assert next_question(s, b) is None               # overlap 1: held by a
        submit_label(s, a, pid, dont_know=True)           # "don't know" does not use up the overlap
        assert next_question(s, a) is None               # a has answered it
        assert next_question(s, b).proposition_id == pid
        submit_label(s, b, pid, probability=0.8)
        assert next_question(s, c) is None
        set_queue_settings(s, overlap=2)
        assert next_question(s, c).proposition_id == pid
        assert annotator_stats(s, c).remaining == 1


def test_soft_evidence_weights_by_reliability(url):
    tree = chain_tree(["Q", "P"])
    with session_scope(url) as s:
        tid = save_tree(s, tree)
        a = store.add_annotator(s, "careful", "password123", reliability=0.95).id
        b = store.add_annotator(s, "sloppy", "password123", reliability=0.6).id
        pid = next_question(s, a).proposition_id
        submit_label(s, a, pid, True)
        submit_label(s, b, pid, probability=0.2)
        root = {n.local_id: n for n in tree_nodes(s, tid)}["r"].belief
    # sloppy's p=0.2 through a 0.6-reliable channel: likelihoods 0.6*0.2+0.4*0.8 : 0.6*0.8+0.4*0.2
    lt, lf = 0.6 * 0.2 + 0.4 * 0.8, 0.6 * 0.8 + 0.4 * 0.2
    ref = beliefs(tree, [Evidence("n0", True, 0.95), Evidence("n0", False, lf / (lt + lf))])["r"]
    assert root == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("kwargs, field", [
    ({"value": "yes"}, "value"),
    ({"value": 1}, "value"),
    ({"probability": 1.5}, "probability"),
    ({"probability": -0.1}, "probability"),
    ({"probability": math.nan}, "probability"),
    ({"probability": "0.5"}, "probability"),
    ({}, "value"),
    ({"value": True, "probability": 0.3}, "value"),
    ({"value": True, "comment": "x" * 100_001}, "comment"),
    ({"ill_posed": True, "rewrite": "   "}, None),
    ({"value": True, "rewrite": "better"}, "rewrite"),
    ({"value": True, "seconds": -1}, "seconds"),
    ({"value": True, "request_id": ""}, "request_id"),
    ({"value": True, "request_id": 7}, "request_id"),
])
def test_bad_labels_are_refused_and_write_nothing(url, kwargs, field):
    with session_scope(url) as s:
        save_tree(s, chain_tree(["Q", "P"]))
        a = add_annotator(s, "a", "password123").id
        pid = next_question(s, a).proposition_id
    if field is None:  # an all-blank rewrite just means "no rewrite"
        with session_scope(url) as s:
            assert submit_label(s, a, pid, **kwargs).rewrite is None
        return
    with pytest.raises(StoreError) as err, session_scope(url) as s:
        submit_label(s, a, pid, **kwargs)
    assert err.value.field == field
    with session_scope(url) as s:
        assert annotator_stats(s, a).answered_total == 0


def test_unknown_ids_and_bad_trees(url):
    (a,) = people(url, "a")
    with pytest.raises(NotFound, match="no proposition with id 999"), session_scope(url) as s:
        submit_label(s, a, 999, True)
    with pytest.raises(NotFound, match="no annotator"), session_scope(url) as s:
        submit_label(s, 12345, 1, True)
    with pytest.raises(StoreError, match="proposition_id"), session_scope(url) as s:
        submit_label(s, a, "1", True)
    for texts, match in ((["Q", "   "], "must not be empty"), (["Q", "x" * 100_000], "limit is 10,000")):
        with pytest.raises(StoreError, match=match), session_scope(url) as s:
            save_tree(s, chain_tree(texts))
    with pytest.raises(StoreError, match="priority"), session_scope(url) as s:
        save_tree(s, chain_tree(["Q", "P"]), priority=-1)
    with pytest.raises(StoreError, match="ArgumentTree"), session_scope(url) as s:
        save_tree(s, {"nodes": []})
    with session_scope(url) as s:
        assert store.list_trees(s) == []
        assert s.query(store.Proposition).count() == 0


def test_contradictory_evidence_across_trees_is_refused_whole(url):
    with session_scope(url) as s:
        save_tree(s, chain_tree(["Q", "P"]), [Evidence("n0", True)])
    with pytest.raises(Exception, match="contradictory"), session_scope(url) as s:
        save_tree(s, chain_tree(["Q2", "P"]), [Evidence("n0", False)])
    with session_scope(url) as s:
        assert len(store.list_trees(s)) == 1
        assert s.query(store.Label).count() == 1


# -- a re-expansion archives a tree and saves its next version (argtree loop) ----------------------------------

ROOT_Q = "Will the new bridge cut commute times?"


def bridge_v1():
    """The first version: two premises, both tightly tied to the root (high VoI)."""
    return ArgumentTree([Node("r", ROOT_Q, prior=0.5),
                         Node("a", "Traffic will shift onto the bridge", parent="r", p_if_true=0.95, p_if_false=0.05),
                         Node("b", "Construction finishes on time", parent="r", p_if_true=0.9, p_if_false=0.1)])


def bridge_v2():
    """The re-expanded version: the same premises, looser now, and new ones under and beside them."""
    return ArgumentTree([Node("r", ROOT_Q, prior=0.5),
                         Node("a", "Traffic will shift onto the bridge", parent="r", p_if_true=0.7, p_if_false=0.4),
                         Node("b", "Construction finishes on time", parent="r", p_if_true=0.65, p_if_false=0.45),
                         Node("c", "Tolls on the bridge will be low", parent="r", p_if_true=0.8, p_if_false=0.3),
                         Node("a1", "The old road will be narrowed", parent="a", p_if_true=0.85, p_if_false=0.35)])


def reexpand(url, old_id, new_tree):
    """What the loop's re-expansion does: save the next version, archive the old one, in one transaction."""
    from argtree.store import set_tree

    with session_scope(url) as s:
        new_id = save_tree(s, new_tree, question=ROOT_Q)
        set_tree(s, old_id, status="archived")
    return new_id


def assert_live_question(s, q, live_id):
    """``q`` is shown in the live tree, and its numbers are those the core computes from that tree."""
    from argtree.store import get_tree

    tree, evidence = load_tree(s, live_id)
    nodes = [n for n in tree_nodes(s, live_id) if n.proposition_id == q.proposition_id]
    assert len(nodes) == 1, "the question is not about a node of the live tree"
    node = nodes[0]
    assert (q.tree_id, q.tree_ids, q.node_id, q.node_ids) == (live_id, (live_id,), node.id, (node.id,))
    assert q.question == get_tree(s, live_id).question and q.text == tree[node.local_id].text
    assert [link.node_id for link in q.chain][0] == node.id
    assert {link.node_id for link in q.chain} <= {n.id for n in tree_nodes(s, live_id)}
    assert q.chain[-1].stance == "root" and q.chain[-1].text == tree[tree.root].text
    ref, ref_voi = beliefs(tree, evidence), voi(tree, evidence)
    if_true, if_false = root_if(tree, evidence, node.local_id)
    assert q.belief == pytest.approx(ref[node.local_id], abs=1e-9)
    assert q.root_belief == pytest.approx(ref[tree.root], abs=1e-9)
    assert q.voi == pytest.approx(ref_voi[node.local_id], abs=1e-9)
    assert q.forest_voi == pytest.approx(ref_voi[node.local_id], abs=1e-9)  # priority 1, one live tree
    assert (q.root_if_true, q.root_if_false) == (pytest.approx(if_true, abs=1e-9), pytest.approx(if_false, abs=1e-9))


def test_next_question_offers_only_the_live_tree_after_a_reexpansion(url):
    (alice,) = people(url, "alice")
    with session_scope(url) as s:
        v1 = save_tree(s, bridge_v1(), question=ROOT_Q)
        held = next_question(s, alice)  # alice holds a question of the first version ...
    assert held.tree_id == v1
    v2 = reexpand(url, v1, bridge_v2())  # ... when the loop replaces that version
    with session_scope(url) as s:
        # The archived version ranks the shared premises higher than the live one does, with other
        # root-if numbers: a context picked from all versions would be the stale one.
        old = {n.proposition_id: n for n in tree_nodes(s, v1)}
        new = {n.proposition_id: n for n in tree_nodes(s, v2)}
        shared = [pid for pid in old if pid in new and old[pid].parent_id is not None]
        assert len(shared) == 2
        for pid in shared:
            assert old[pid].voi > new[pid].voi and old[pid].root_if_true != pytest.approx(new[pid].root_if_true)
        again = next_question(s, alice)  # the lease is kept: the same proposition, now in its live tree
        assert again.proposition_id == held.proposition_id
        assert_live_question(s, again, v2)
    # Answer the whole queue: every question (each answer moves the numbers) comes from the live tree.
    asked = []
    for i in range(20):
        with session_scope(url) as s:
            q = next_question(s, alice)
            if q is None:
                break
            assert_live_question(s, q, v2)
            asked.append(q.proposition_id)
            submit_label(s, alice, q.proposition_id, i % 2 == 0, request_id=f"r{i}")
    assert sorted(asked) == sorted(n.proposition_id for n in new.values() if n.parent_id is not None)


def test_a_lease_on_a_premise_the_new_version_dropped_gives_way_to_a_live_question(url):
    (alice,) = people(url, "alice")
    with session_scope(url) as s:
        v1 = save_tree(s, bridge_v1(), question=ROOT_Q)
        held = next_question(s, alice)
    dropped = bridge_v2()
    dropped = ArgumentTree([n for n in dropped.nodes.values()
                            if n.text != held.text and n.parent != held.chain[0].local_id])
    v2 = reexpand(url, v1, dropped)
    with session_scope(url) as s:
        assert held.proposition_id not in {n.proposition_id for n in tree_nodes(s, v2)}
        q = next_question(s, alice)
        assert q is not None and q.proposition_id != held.proposition_id
        assert_live_question(s, q, v2)


def test_model_evidence_is_stored_on_its_node_never_as_a_label_and_the_three_numbers_follow(url):
    from argtree.model_evidence import evidence_for_nodes, root_numbers
    from argtree.store import labels_for

    tree = ArgumentTree(list(chain_tree(["Model evidence root?", "Premise one holds.", "Premise two holds."]).nodes.values()),
                        {"direct": {"p": 0.8, "calibrated": 0.7}})
    model_ev = evidence_for_nodes(tree, {"n0": 0.9, "n1": 0.6})
    with session_scope(url) as s:
        tid = save_tree(s, tree, model_ev)
    with session_scope(url) as s:
        t2, ev2 = load_tree(s, tid)
        assert labels_for(s) == []                                   # nothing became a label
        row = store.get_tree(s, tid)
        assert row.direct_answer == 0.7
        assert row.root_belief == pytest.approx(root_numbers(tree, model_ev)["tree"])
        assert row.root_labels_only == pytest.approx(0.5)
        assert row.root_belief != pytest.approx(0.5, abs=1e-3)
    assert sorted((e.node, e.is_model, round(e.reliability, 12)) for e in ev2) == \
        sorted((e.node, True, round(e.reliability, 12)) for e in model_ev)
    # a person's answer moves both numbers; the history keeps all three
    with session_scope(url) as s:
        alice = add_annotator(s, "alice", "pw-alice-123").id
        pid = next(n.proposition_id for n in tree_nodes(s, tid) if n.local_id == "n0")
        submit_label(s, alice, pid, False)
    with session_scope(url) as s:
        t3, ev3 = load_tree(s, tid)
        row = store.get_tree(s, tid)
        expect = root_numbers(t3, ev3)
        assert row.root_belief == pytest.approx(expect["tree"]) and row.root_labels_only == pytest.approx(expect["labels_only"])
        hist = root_history(s, tid)
        assert [h.cause for h in hist] == ["created", "label"]
        assert hist[-1].labels_only == pytest.approx(expect["labels_only"]) and hist[-1].direct == 0.7


def test_calibration_pairs_come_from_the_queue_and_refit_after_enough_new_answers(url):
    pytest.importorskip("sklearn")
    from argtree.store.calibrations import calibration_history, credence_pairs, latest_calibration
    from argtree.store.loops import LoopStore

    nodes = [Node("r", "Calibration root?", prior=0.5)]
    nodes += [Node(f"n{i}", f"Calibration premise number {i} holds.", parent="r", p_if_true=0.7, p_if_false=0.3,
                   extra={"credence": 0.2 + 0.6 * (i % 2)}) for i in range(30)]
    tree = ArgumentTree(nodes, {"model_version": "m1"})
    with session_scope(url) as s:
        tid = save_tree(s, tree)
        alice = add_annotator(s, "alice", "pw-alice-123").id
        pids = {n.local_id: n.proposition_id for n in tree_nodes(s, tid)}
        for i in range(30):  # the credence mostly right: odd premises true, even false, a few exceptions
            submit_label(s, alice, pids[f"n{i}"], (i % 2 == 1) != (i % 10 == 0))
    with session_scope(url) as s:
        cred, truth = credence_pairs(s, "m1")
        assert len(cred) == 30 and credence_pairs(s, "other") == ([], [])
    ls = LoopStore(url)
    fitted = ls.refit_calibration("m1", min_new=20)
    assert fitted is not None and fitted["n"] == 30
    assert ls.refit_calibration("m1", min_new=20) is None      # nothing new since
    with session_scope(url) as s:
        cal = latest_calibration(s, "m1")
        assert cal.premise(0.8) > cal.premise(0.2)              # monotone, and it learned the signal
        assert [c["kind"] for c in calibration_history(s, "m1")] == ["premise"]
    assert ls.calibration("m1").premise == cal.premise and not ls.calibration("unknown").premise.fitted


def test_the_bucket_index_serves_exactly_the_forest_voi_order(url):
    """Issue 15: the index is on a coarse bucket of the rank; the order served is still the exact one."""
    from sqlalchemy import select, text

    from argtree.store import Proposition
    from argtree.store.compute import bucket_of

    strengths = [(0.9, 0.1), (0.85, 0.2), (0.8, 0.3), (0.75, 0.35), (0.7, 0.4), (0.65, 0.45), (0.62, 0.5),
                 (0.6, 0.52), (0.58, 0.55), (0.9, 0.05), (0.55, 0.5), (0.95, 0.3)]
    nodes = [Node("r", "The root holds.", prior=0.4)]
    nodes += [Node(f"n{i}", f"Premise {i} holds.", parent="r", p_if_true=a, p_if_false=b)
              for i, (a, b) in enumerate(strengths)]
    tree = ArgumentTree(nodes)
    (alice,) = people(url, "alice")
    with session_scope(url) as s:
        save_tree(s, tree)
        rows = s.execute(select(Proposition.queue_rank, Proposition.queue_bucket)
                         .where(Proposition.queue_rank.is_not(None))).all()
    assert all(b == bucket_of(r) for r, b in rows)
    assert len({b for _, b in rows}) >= 2 and len({b for _, b in rows}) < len(rows)  # shared and distinct
    want = [tree[k].text for k, _ in sorted(voi(tree).items(), key=lambda kv: (-kv[1], kv[0])) if _ > 0]
    served = []
    for _ in want:
        with session_scope(url) as s:
            q = next_question(s, alice)
            served.append(q.text)
            submit_label(s, alice, q.proposition_id, dont_know=True)  # changes no VoI
    assert served == want
    # The SQL bucket equals the Python one at the extremes and across a boundary.
    with session_scope(url) as s:
        dialect = s.get_bind().dialect.name
        for x in (5e-324, 1e-300, 0.3, math.exp(0.5) * (1 - 1e-15), math.exp(0.5), 1.0, 1e300):
            got = s.execute(text(f"SELECT {store.compute.bucket_sql(':x', dialect)}"), {"x": x}).scalar()
            assert got == bucket_of(x), (x, got)
