"""Batch-aware serving (issue 13): with several annotators active at once, the live queue hands out the
picks of the greedy batch (``argtree.voi.select_batch``) across them, not near-redundant questions from the
top of one ranking.

The questions others hold right now (live leases) are the batch's earlier picks.  The next pick, for the
annotator asking, is the open proposition with the highest *expected* forest VoI once those picks are
answered: in every live tree that holds one of them, each node's VoI averaged over the 2^j answer patterns
of the picks in that tree (``argtree.voi.expected_voi``, the step ``select_batch`` repeats), weighted by
the tree's priority; elsewhere the stored VoI.  Two annotators who ask in turn therefore get exactly
``select_batch(tree, evidence, k=2)`` on a single tree.  With nobody else holding a question the batch's
first pick is the top of the ranking, which the plain queue serves already (no extra work).

Costs are bounded: the candidates are the ``CANDIDATES`` best open propositions of the ranking (for this
annotator: not answered by them, under the overlap, assigned to them), and at most ``PER_TREE`` picks per
tree condition it (those with the highest stored VoI there): 2^PER_TREE propagations per such tree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..inference import CompiledTree
from ..voi import expected_voi
from .compute import ranked_open, tighten, top_exact
from .models import Lease, Node, Tree, queue_entries

__all__ = ["batch_order", "claim", "CANDIDATES", "PER_TREE"]

CANDIDATES = 24
PER_TREE = 6


def _given(session: Session, me: int, now: datetime) -> list[int]:
    return list(session.scalars(select(Lease.proposition_id).distinct()
                                .where(Lease.annotator_id != me, Lease.expires_at > now)))


def batch_order(session: Session, me: int, now: datetime, overlap: int, metric: str,
                allowed=None) -> list[int]:
    """Open propositions for annotator ``me``, best next pick of the batch first; [] when nobody else
    holds a question (then the ranking's top is the batch's first pick)."""
    from .queue import QUEUE_ID, _held_by_others, _live_label_by

    given = set(_given(session, me, now))
    if not given:
        return []
    conditions = [~_live_label_by(me), queue_entries.c.n_answers + _held_by_others(me, now) < overlap]
    if allowed is not None:
        conditions.append(allowed)
    top, stale = top_exact(session, conditions, CANDIDATES)  # by exact forest VoI (the rows hold bounds)
    tighten(session, stale)
    candidates = [pid for pid, _ in top]
    if len(candidates) < 2:
        return candidates
    live = Tree.status != "archived"
    rows = session.execute(select(Node.id, Node.tree_id, Node.proposition_id, Node.voi, Tree.priority)
                           .join(Tree, Tree.id == Node.tree_id)
                           .where(Node.proposition_id.in_(candidates), live)).all()
    trees = {r.tree_id for r in rows}
    held = session.execute(select(Node.id, Node.tree_id, Node.proposition_id, Node.voi)
                           .where(Node.proposition_id.in_(given), Node.tree_id.in_(trees))).all() if trees else []
    picks: dict[int, list] = {}
    for r in sorted(held, key=lambda r: (-(r.voi or 0.0), r.id)):
        ps = picks.setdefault(r.tree_id, [])
        if len(ps) < PER_TREE and r.proposition_id not in {p.proposition_id for p in ps}:
            ps.append(r)
    from .compute import load_states

    states = load_states(session, list(picks))   # every tree to condition, in a few statements
    expected = {tid: _expected(states[tid], [p.id for p in ps], metric) for tid, ps in picks.items()
                if tid in states}
    score = {pid: 0.0 for pid in candidates}
    for r in rows:
        v = expected[r.tree_id].get(r.id, 0.0) if r.tree_id in expected else (r.voi or 0.0)
        score[r.proposition_id] += (r.priority or 0.0) * max(v, 0.0)
    rank = {pid: i for i, pid in enumerate(candidates)}
    # Best expected gain first (to 12 decimals, as voi.rank), then the ranking's own order.
    return sorted(candidates, key=lambda pid: (-round(score[pid], 12), rank[pid]))


def _expected(loaded, pick_nodes: list[int], metric: str) -> dict[int, float]:
    """Node id -> expected VoI in a tree (``compute.load_states``' entry) once ``pick_nodes`` are answered."""
    state, ids, _ = loaded
    ct = CompiledTree.from_arrays(state.parent, state.p1, state.p0, state.prior, [str(i) for i in state.node_ids])
    index = {nid: i for i, nid in enumerate(state.node_ids)}
    chosen = [int(ct.position[index[n]]) for n in pick_nodes if n in index]
    values = ct.to_caller(expected_voi(ct, tuple(state.evidence), chosen, metric))
    return {int(nid): float(v) for nid, v in zip(ids, values)}


def claim(session: Session, me: int, pid: int, now: datetime, expires: datetime, overlap: int, allowed=None):
    """Lease proposition ``pid`` to ``me`` when it is still open to them (checked under its row lock on
    PostgreSQL, skipping it when another annotator holds that lock); the Question, or None."""
    from .queue import QUEUE_ID, _held_by_others, _live_label_by, _pg, _question

    q = select(QUEUE_ID).where(QUEUE_ID == pid, ranked_open(), ~_live_label_by(me))
    if allowed is not None:
        q = q.where(allowed)
    if _pg(session):
        q = q.with_for_update(skip_locked=True, of=queue_entries, key_share=True)  # its lock: the queue row
    if session.scalar(q) is None:
        return None
    n = session.scalar(select(queue_entries.c.n_answers + _held_by_others(me, now)).where(QUEUE_ID == pid))
    if n >= overlap:
        return None
    question = _question(session, pid, expires)
    if question is None:
        return None
    session.add(Lease(proposition_id=pid, annotator_id=me, created_at=now, expires_at=expires))
    session.flush()
    return question
