"""The answer's bulk path (argtree.store.compute, issue 15): every affected tree read and written in a few
statements gives exactly what recomputing each tree on its own gives (SQLite, and PostgreSQL when reachable)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
from sqlalchemy import select  # noqa: E402

import argtree.store.compute as compute  # noqa: E402
from argtree.model_evidence import evidence_for_nodes  # noqa: E402
from argtree.store import (Node, Proposition, Tree, add_annotator, save_tree, session_scope,  # noqa: E402
                           set_queue_settings, set_tree, submit_label)
from argtree.store.testing import check_consistency, fast_password_hashing, random_forest  # noqa: E402
from argtree.tree import ArgumentTree, Node as TNode  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()


def forest(url):
    """Seven trees sharing propositions (one with model evidence, one a lone root, one archived later),
    and three annotators of different reliability."""
    trees = list(random_forest(5, 12, 25, seed=3))
    with_model = trees[1]
    with session_scope(url) as s:
        set_queue_settings(s, overlap=3)  # three people answer the same proposition here
        tids = [save_tree(s, t, priority=1.0 + 0.5 * i) for i, t in enumerate(trees) if t is not with_model]
        ev = evidence_for_nodes(with_model, {nid: 0.15 + 0.1 * k for k, nid in enumerate(list(with_model.nodes)[1:6])})
        tids.append(save_tree(s, with_model, ev, priority=2.0))
        lone = ArgumentTree([TNode("r", "Proposition 7 holds.", prior=0.4)])  # a root that is also a premise
        tids.append(save_tree(s, lone))
        tids.append(save_tree(s, trees[0].__class__(list(trees[0].nodes.values()), {"copy": 1}), priority=0.5))
        people = [add_annotator(s, f"c{i}", "password123", reliability=r).id for i, r in enumerate((0.95, 0.8, 0.65))]
    return sorted(tids), people


def stored(s, tree_id):
    rows = s.execute(select(Node.id, Node.belief, Node.voi, Node.root_if_true, Node.root_if_false)
                     .where(Node.tree_id == tree_id).order_by(Node.id)).all()
    return np.array([[np.nan if x is None else x for x in r[1:]] for r in rows], dtype=float)


def test_bulk_recompute_equals_one_tree_at_a_time_across_chunks(url, monkeypatch):
    monkeypatch.setattr(compute, "TREE_CHUNK", 2)  # seven trees: four rounds of statements
    tids, people = forest(url)
    with session_scope(url) as s:
        set_tree(s, tids[-1], status="archived")  # its nodes count no more
        shared = s.execute(select(Node.proposition_id).where(Node.tree_id.in_(tids))
                           .group_by(Node.proposition_id).order_by(Node.proposition_id)).scalars().all()
    answers = [(0, shared[0], {"value": True}), (1, shared[1], {"probability": 0.3}),
               (2, shared[2], {"value": False}), (0, shared[3], {"probability": 0.9}),
               (1, shared[0], {"value": False}), (0, shared[0], {"value": False})]  # the last retracts one
    with session_scope(url) as s:
        lone_pid = s.scalar(select(Node.proposition_id).where(Node.tree_id == tids[-2]))
    answers.append((2, lone_pid, {"value": True}))  # the lone root's only row changes: no root_if numbers
    for k, (who, pid, kw) in enumerate(answers):
        with session_scope(url) as s:
            submit_label(s, people[who], pid, request_id=f"a{k}", **kw)
    with session_scope(url) as s:
        n_trees = len(set(s.scalars(select(Node.tree_id).where(Node.proposition_id.in_(shared[:4])))))
        assert n_trees >= 3  # answers reached several trees at once
        for tid in tids:  # what the bulk path stored = the one-tree path, number for number
            state, _, old = compute.load_state(s, tid)
            out = compute.compute_tree(state, "shift")
            new = np.column_stack([out["belief"], out["voi"], out["root_if_true"], out["root_if_false"]])
            assert np.array_equal(np.isnan(old), np.isnan(new)), tid
            assert np.nanmax(np.abs(old - new)) <= 1e-12, tid
            assert np.array_equal(stored(s, tid), old, equal_nan=True)
            assert s.get(Tree, tid).root_belief == pytest.approx(out["root_belief"], abs=1e-12)
        before = dict(s.execute(select(Proposition.id, Proposition.forest_voi)).all())
        # Recomputing everything again changes nothing: no node moves, so no forest-VoI delta.
        assert compute.recompute_trees(s, tids, cause="recompute") == {}
        compute.refresh_propositions(s, before)  # recount every forest VoI from the nodes
        after = dict(s.execute(select(Proposition.id, Proposition.forest_voi)).all())
    assert after.keys() == before.keys()
    # The answers wrote the increases only (issue 15): every row holds at least the recount, and some more.
    assert min(before[p] - after[p] for p in before) > -1e-12
    assert max(before[p] - after[p] for p in before) > 1e-6
    with session_scope(url) as s:
        exact = compute.exact_forest_voi(s, after)
    assert max(abs(after[p] - exact[p]) for p in after) < 1e-12  # the recount is the exact sum
    worst = check_consistency(url)  # and everything agrees with the core's own inference
    assert max(worst.values()) < 1e-9, worst


def test_forest_deltas_rank_and_unrank(url):
    """apply_forest_deltas adds each increase once, leaves decreases to the queue's readers (the row holds an
    upper bound, issue 15), and keeps the queue rank = the row's forest VoI while open."""
    tids, people = forest(url)
    with session_scope(url) as s:
        pids = s.scalars(select(Proposition.id).where(Proposition.forest_voi > 0).order_by(Proposition.id)).all()[:3]
        fv = {p: s.get(Proposition, p).forest_voi for p in pids}
        top = max(p.queue_bucket for p in s.scalars(select(Proposition)) if p.queue_bucket is not None)
        b_on_top = s.get(Proposition, pids[1]).queue_bucket >= top - compute.TOP_BUCKETS + 1
        compute.apply_forest_deltas(s, {pids[0]: 0.25, pids[1]: -fv[pids[1]], pids[2]: 1.0}, overlap=1,
                                    skip={pids[2]})
    with session_scope(url) as s:
        a, b, c = (s.get(Proposition, p) for p in pids)
        assert a.forest_voi == pytest.approx(fv[pids[0]] + 0.25, abs=1e-15) and a.queue_rank == a.forest_voi
        if b_on_top:  # a decrease is written in the queue's top buckets (nothing left to learn: closed) ...
            assert b.forest_voi == pytest.approx(0.0, abs=1e-15) and b.queue_rank is None
        else:         # ... and left as a bound below them
            assert b.forest_voi == fv[pids[1]] and b.queue_rank == b.forest_voi
        assert c.forest_voi == fv[pids[2]]                                     # skipped


def test_decreases_are_written_on_the_queue_top_only(url):
    """Issue 15: an answer's decreases are written to rows in the TOP_BUCKETS top buckets and left as bounds
    elsewhere; increases_only=False writes them all."""
    forest(url)
    with session_scope(url) as s:
        rows = s.execute(select(Proposition.id, Proposition.forest_voi, Proposition.queue_bucket)
                         .where(Proposition.queue_bucket.is_not(None)).order_by(Proposition.queue_bucket.desc())).all()
        top, low = rows[0], rows[-1]
        assert low.queue_bucket < top.queue_bucket - compute.TOP_BUCKETS + 1  # the forest spans enough buckets
        compute.apply_forest_deltas(s, {top.id: -top.forest_voi / 2, low.id: -low.forest_voi / 2}, overlap=3)
    with session_scope(url) as s:
        assert s.get(Proposition, top.id).forest_voi == pytest.approx(top.forest_voi / 2, abs=1e-15)
        assert s.get(Proposition, low.id).forest_voi == low.forest_voi
        compute.apply_forest_deltas(s, {low.id: -low.forest_voi / 2}, overlap=3, increases_only=False)
    with session_scope(url) as s:
        assert s.get(Proposition, low.id).forest_voi == pytest.approx(low.forest_voi / 2, abs=1e-15)
