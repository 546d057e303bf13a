"""Batch-aware serving and per-tree assignment in the live queue (issue 13), on SQLite and PostgreSQL.

Two annotators active at once get the greedy batch's picks (``voi.select_batch``), not the top two of one
ranking; a tree assigned to some annotators is served only to them (gold questions included)."""

from __future__ import annotations

import pytest

from argtree.tree import ArgumentTree, Node
from argtree.voi import rank, select_batch, voi

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401
from sqlalchemy import select  # noqa: E402

from argtree.store import (NotFound, Proposition, StoreError, add_annotator, load_tree, mark_gold,  # noqa: E402
                           next_question, release_lease, save_tree, session_scope, set_queue_settings, submit_label)
from argtree.store.assignment import assign, assignments, may_answer, set_assignment, unassign  # noqa: E402
from argtree.store.models import Node as NodeRow  # noqa: E402
from argtree.store.testing import fast_password_hashing  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()

# m decides the root; x1 and x2 hang on m (answering m tells most of what they would); b is independent.
TREE = ArgumentTree([Node("r", "Will the festival make a profit?", prior=0.5),
                     Node("m", "Ticket sales beat the forecast.", parent="r", p_if_true=0.9, p_if_false=0.1),
                     Node("x1", "The early-bird tier sold out.", parent="m", p_if_true=0.97, p_if_false=0.05),
                     Node("x2", "Group bookings doubled.", parent="m", p_if_true=0.9, p_if_false=0.1),
                     Node("b", "The headliner's fee was cut.", parent="r", p_if_true=0.75, p_if_false=0.3)])


def people(url, *names):
    with session_scope(url) as s:
        return [add_annotator(s, n, "password123").id for n in names]


def test_two_active_annotators_get_the_batch_not_the_top_two(url):
    ranked = [nid for nid, _ in rank(voi(TREE))]
    batch = select_batch(TREE, k=2)
    assert batch[0] == ranked[0] and batch[1] != ranked[1]   # the case where the two differ
    with session_scope(url) as s:
        tid = save_tree(s, TREE)
    alice, bob = people(url, "alice", "bob")
    with session_scope(url) as s:
        qa = next_question(s, alice)
    with session_scope(url) as s:
        qb = next_question(s, bob)
        t, ev = load_tree(s, tid)
    assert select_batch(t, ev, k=2) == batch                  # the stored tree is the same tree
    assert (qa.text, qb.text) == (TREE[batch[0]].text, TREE[batch[1]].text)
    assert qb.text != TREE[ranked[1]].text                     # not the near-redundant x1
    with session_scope(url) as s:                              # a reload keeps each one's question
        assert next_question(s, bob).proposition_id == qb.proposition_id
        release_lease(s, alice)
    with session_scope(url) as s:                              # alone again: the top of the ranking
        release_lease(s, bob)
        assert next_question(s, bob).text == TREE[ranked[0]].text


def test_three_active_annotators_follow_the_greedy_batch(url):
    batch = select_batch(TREE, k=3)
    with session_scope(url) as s:
        save_tree(s, TREE)
    ids = people(url, "a1", "a2", "a3")
    got = []
    for aid in ids:
        with session_scope(url) as s:
            got.append(next_question(s, aid).text)
    assert got == [TREE[n].text for n in batch]


def test_a_tree_assigned_to_some_is_served_only_to_them(url):
    other = ArgumentTree([Node("r", "Is the river clean?", prior=0.5),
                          Node("a", "Fish came back last year.", parent="r", p_if_true=0.6, p_if_false=0.45)])
    with session_scope(url) as s:
        t1 = save_tree(s, TREE, priority=5.0)   # its questions top the ranking
        t2 = save_tree(s, other)
    alice, bob = people(url, "alice", "bob")
    with session_scope(url) as s:
        assert assign(s, t1, ["alice"]) == ["alice"]
        assert assignments(s) == {t1: ["alice"]}
        with pytest.raises(NotFound):
            assign(s, 999, ["alice"])
        with pytest.raises(NotFound):
            assign(s, t1, ["nobody"])
    t1_props = {TREE[n].text for n in TREE.nodes}
    served = set()
    for _ in range(3):
        with session_scope(url) as s:
            q = next_question(s, bob)
            if q is None:
                break
            served.add(q.text)
            submit_label(s, bob, q.proposition_id, True)
    assert served == {"Fish came back last year."}            # only the open tree, never t1
    with session_scope(url) as s:
        q = next_question(s, alice)
        assert q.text in t1_props
        pid = s.scalar(select(NodeRow.proposition_id).where(NodeRow.tree_id == t1, NodeRow.local_id == "x2"))
        assert may_answer(s, alice, pid) and not may_answer(s, bob, pid)
    with session_scope(url) as s:                               # gold in t1 is not served to bob either
        mark_gold(s, pid, True)
        set_queue_settings(s, gold_rate=1.0)
        assert next_question(s, bob) is None
    with session_scope(url) as s:
        assert set_assignment(s, t1, ["bob"]) == ["bob"]        # exactly bob now
        assert next_question(s, bob).text in t1_props
        assert not may_answer(s, alice, pid)
        assert unassign(s, t1) == 1 and assignments(s) == {}   # open to everyone again
        assert may_answer(s, alice, pid)


def test_oracles_are_not_assigned(url):
    from argtree.store.oracles import oracle_annotator

    with session_scope(url) as s:
        tid = save_tree(s, TREE)
        oracle_annotator(s, "dataset-oracle", 0.9)
        with pytest.raises(StoreError, match="system annotator"):
            assign(s, tid, ["dataset-oracle"])
        assert s.scalar(select(Proposition.id).limit(1)) is not None
