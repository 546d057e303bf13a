"""The queue's bounds (issue 15): a queue row's forest VoI is an upper bound that answers only raise; readers
of the queue's top (``compute.top_exact``) serve by the exact values from the nodes and write back the
stale bounds they pass.  Checked against a brute-force sort of the exact values."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

import argtree.store.compute as compute  # noqa: E402
from argtree.store import (Proposition, add_annotator, next_question, save_tree, session_scope,  # noqa: E402
                           submit_label)
from argtree.store.models import queue_entries  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing, random_forest, sqlite_db  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()


def build(url, trees=6, nodes=15, props=40):
    with session_scope(url) as s:
        for i, t in enumerate(random_forest(trees, nodes, props, seed=11)):
            save_tree(s, t, priority=1.0 + 0.25 * i)
        return [add_annotator(s, f"b{i}", "password123").id for i in range(2)]


def exact_open(s) -> dict[int, float]:
    """Exact forest VoI of every proposition still wanting answers (overlap 1: no answer yet)."""
    rows = s.execute(select(Proposition.id, Proposition.n_answers)).all()
    exact = compute.exact_forest_voi(s, [pid for pid, _ in rows])
    return {pid: exact[pid] for pid, n in rows if n < 1 and exact[pid] > 0}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    u = sqlite_db(tmp_path_factory.mktemp("bounds"))
    build(u)
    return u


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), k=st.integers(1, 30), odd_only=st.booleans())
def test_top_exact_is_the_exact_top_whatever_the_bounds(small_store, data, k, odd_only):
    """Any bounds at or above the exact values (many tight, some far above, some raised past others) give
    the top k by exact value, ties by the higher id, and name exactly the rows read whose bound is stale."""
    with session_scope(small_store) as s:
        exact = exact_open(s)
        pids = sorted(exact)
        extra = data.draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 2.0)), min_size=len(pids),
                                   max_size=len(pids)))
        q = queue_entries.c
        for pid, x in zip(pids, extra):
            s.execute(update(queue_entries).where(q.proposition_id == pid)
                      .values(forest_voi=exact[pid] + x, **compute.set_rank(exact[pid] + x, q.n_answers, 1)))
        conditions = [q.proposition_id % 2 == 1] if odd_only else []
        top, stale = compute.top_exact(s, conditions, k)
        want = sorted(((v, pid) for pid, v in exact.items() if not odd_only or pid % 2),
                      key=lambda t: (-t[0], -t[1]))[:k]
        assert [pid for pid, _ in top] == [pid for _, pid in want]
        assert [v for _, v in top] == pytest.approx([v for v, _ in want], abs=1e-12)
        bound = {pid: exact[pid] + x for pid, x in zip(pids, extra)}
        assert all(compute.stale(bound[pid], exact[pid]) and b == bound[pid] and e == pytest.approx(exact[pid], abs=1e-12)
                   for pid, b, e in stale)                       # only stale rows are named, with what was read
        stale = [pid for pid, _, _ in stale]
        above = {pid for pid in pids if compute.stale(bound[pid], exact[pid]) and bound[pid] > want[-1][0]
                 and (not odd_only or pid % 2)} if want else set()
        assert above <= set(stale)                               # every stale bound above the k-th was read
        s.rollback()


def test_answers_leave_bounds_and_readers_fix_them(url):
    """After answers, some rows hold more than their exact value (the decreases were not written); the
    queue still serves the exact best, and the rows it read hold exact values afterwards."""
    people = build(url)
    with session_scope(url) as s:
        first = next_question(s, people[0])
    with session_scope(url) as s:
        submit_label(s, people[0], first.proposition_id, value=True)
    with session_scope(url) as s:
        rows = dict(s.execute(select(Proposition.id, Proposition.forest_voi)).all())
        exact = compute.exact_forest_voi(s, rows)
        assert all(rows[p] >= exact[p] - 1e-12 for p in rows)            # bounds
        assert any(rows[p] > exact[p] + 1e-6 for p in rows)              # some stale: the answer lowered them
        want = max(exact_open(s).items(), key=lambda kv: (kv[1], kv[0]))
    with session_scope(url) as s:
        q = next_question(s, people[1])
    assert (q.proposition_id, q.forest_voi) == (want[0], pytest.approx(want[1], abs=1e-12))
    with session_scope(url) as s:
        row = s.get(Proposition, q.proposition_id)
        assert row.forest_voi == pytest.approx(want[1], abs=1e-12) and row.queue_rank == row.forest_voi
        top, stale = compute.top_exact(s, (), 1)
        assert top[0][0] == q.proposition_id and stale == []             # the top is tight now
    worst = check_consistency(url, 1)
    assert worst["forest_voi"] < 1e-9, worst


def test_a_bound_of_a_proposition_with_nothing_left_to_learn_closes_when_read(url):
    """A row whose exact forest VoI fell to 0 (every tree holding it archived) while its bound stayed
    positive is never served, and reading it closes it (rank NULL)."""
    from argtree.store import set_tree
    from argtree.store.models import Node

    people = build(url, trees=2)
    with session_scope(url) as s:
        q = next_question(s, people[0])
        pid = q.proposition_id
        for tid in q.tree_ids:
            set_tree(s, tid, status="archived")
        # archiving recounts exactly; put a stale bound back on the row, as skipped decreases would leave it
        c = queue_entries.c
        s.execute(update(queue_entries).where(c.proposition_id == pid)
                  .values(forest_voi=5.0, **compute.set_rank(5.0, c.n_answers, 1)))
        others = set(s.scalars(select(Node.proposition_id).where(Node.tree_id.not_in(q.tree_ids))))
    with session_scope(url) as s:
        nxt = next_question(s, people[0])  # its lease on pid lapses: pid's trees are all archived
    assert nxt is None or (nxt.proposition_id != pid and nxt.proposition_id in others)
    with session_scope(url) as s:
        row = s.get(Proposition, pid)
        assert row.forest_voi == 0.0 and row.queue_rank is None


def test_tighten_leaves_a_row_an_answer_raised_since_it_was_read(url):
    """A reader's write-back is conditional on the bound it read: a row raised in between (an answer's
    increase) keeps the raised bound, which is still a bound; the others get their exact values."""
    build(url)
    with session_scope(url) as s:
        exact = exact_open(s)
        pids = sorted(exact, key=lambda p: -exact[p])[:3]
        c = queue_entries.c
        for p in pids:  # stale bounds at the top
            s.execute(update(queue_entries).where(c.proposition_id == p)
                      .values(forest_voi=exact[p] + 1.0, **compute.set_rank(exact[p] + 1.0, c.n_answers, 1)))
    with session_scope(url) as s:
        top, stale = compute.top_exact(s, (), 1)
        assert sorted(pid for pid, _, _ in stale) == sorted(pids)
        compute.apply_forest_deltas(s, {pids[0]: 0.5}, overlap=1)  # an answer raises one of them meanwhile
        compute.tighten(s, stale)
    with session_scope(url) as s:
        got = {p: s.get(Proposition, p).forest_voi for p in pids}
    assert got[pids[0]] == pytest.approx(exact[pids[0]] + 1.5, abs=1e-12)
    assert [got[p] for p in pids[1:]] == pytest.approx([exact[p] for p in pids[1:]], abs=1e-12)
