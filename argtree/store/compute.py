"""Beliefs, VoI and what-if root beliefs of stored trees, recomputed from labels.

Labels become soft evidence (DESIGN.md): a label with reliability ``a`` saying
``value`` multiplies the node's likelihood by ``a`` for ``value`` and ``1 - a``
for the other.  A probability ``p`` from an annotator of reliability ``a`` is the
same channel applied to a graded report: likelihoods ``a p + (1-a)(1-p)`` for
true and ``a (1-p) + (1-a) p`` for false.  Several labels multiply.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from ..inference import CompiledTree, Propagation
from ..tree import Evidence
from ..voi import voi_arrays
from .models import Annotator, Label, Node, Proposition, RootBelief, Setting, Tree, utcnow

__all__ = ["label_evidence", "TreeState", "compute_tree", "recompute_trees", "refresh_propositions",
           "apply_forest_deltas", "queue_rank", "queue_settings", "lock_trees", "lock_proposition",
           "DEFAULTS"]

DEFAULTS = {"queue.overlap": 1, "queue.lease_seconds": 900, "queue.metric": "shift",
            "queue.gold_rate": 0.1}  # share of questions drawn from the gold set while one is left (issue 13)
EPS = 1e-12
CHUNK = 500


def label_evidence(value: bool | None, probability: float | None, reliability: float) -> tuple[bool, float] | None:
    """(value, reliability) of the soft evidence a label gives, or None when it says nothing.

    A learned reliability below 0.5 (an adversary, ``argtree.annotators``) makes a true/false label
    evidence for the other side; exactly 0.5 says nothing."""
    if value is not None:
        if reliability < 0.5:
            return (not value), 1.0 - float(reliability)
        if reliability == 0.5:
            return None
        return bool(value), float(reliability)
    if probability is None:
        return None
    a, p = float(reliability), float(probability)
    lt = a * p + (1 - a) * (1 - p)
    lf = a * (1 - p) + (1 - a) * p
    if abs(lt - lf) < 1e-12:
        return None
    return (True, lt / (lt + lf)) if lt > lf else (False, lf / (lt + lf))


_settings_cache: dict[str, tuple[float, dict]] = {}
SETTINGS_TTL = 2.0  # seconds another process may keep using old queue settings


def queue_settings(session: Session, *, fresh: bool = False) -> dict:
    """The queue settings (DEFAULTS overridden by the settings table), cached for SETTINGS_TTL seconds."""
    key = str(session.get_bind().url)
    hit = _settings_cache.get(key)
    if hit is not None and not fresh and time.monotonic() - hit[0] < SETTINGS_TTL:
        return dict(hit[1])
    out = dict(DEFAULTS)
    for name, value in session.execute(select(Setting.key, Setting.value).where(Setting.key.in_(DEFAULTS))):
        out[name] = value
    _settings_cache[key] = (time.monotonic(), out)
    return dict(out)


def queue_rank(forest_voi, n_answers, overlap: int):
    """The queue's sort key: the forest VoI while the proposition still wants answers, else NULL."""
    return case((and_(forest_voi > 0, n_answers < overlap), forest_voi), else_=None)


def lock_proposition(session: Session, proposition_id: int) -> None:
    """On PostgreSQL, hold the proposition's row (after its trees: the lock order is trees, then propositions)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Proposition.id).where(Proposition.id == proposition_id)
                        .with_for_update(key_share=True))


RELIABILITY_LOCK = 0x61726774  # PostgreSQL advisory lock: answers share it, re-estimating reliability holds it alone


def share_reliability_lock(session: Session) -> None:
    """On PostgreSQL, hold the reliability lock shared until commit (taken first, before any tree lock): a
    re-estimation (``argtree.store.reliability``) then waits for this transaction and this one for it, so
    no tree keeps beliefs computed with estimates that changed under it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock_shared(RELIABILITY_LOCK)))


def lock_trees(session: Session, tree_ids: Iterable[int]) -> None:
    """Serialize recomputation per tree on PostgreSQL (SQLite already runs one writer at a time)."""
    ids = sorted(set(tree_ids))
    if ids and session.get_bind().dialect.name == "postgresql":
        for i in range(0, len(ids), CHUNK):
            session.execute(select(Tree.id).where(Tree.id.in_(ids[i:i + CHUNK])).order_by(Tree.id)
                            .with_for_update(key_share=True))


@dataclass
class TreeState:
    """One stored tree as arrays (caller order = the rows' order) plus its labels' evidence."""

    node_ids: list[int]
    proposition_ids: list[int]
    parent: np.ndarray
    p1: np.ndarray
    p0: np.ndarray
    prior: float
    evidence: list[Evidence]


_compiled: OrderedDict[bytes, CompiledTree] = OrderedDict()
_compiled_lock = threading.Lock()
COMPILED_CACHE = 4096  # trees whose breadth-first layout is kept between answers (labels never change it)


def _compile(state: TreeState) -> CompiledTree:
    key = hashlib.blake2b(b"".join((np.asarray(state.node_ids, dtype=np.int64).tobytes(), state.parent.tobytes(),
                                    state.p1.tobytes(), state.p0.tobytes(), struct.pack("d", state.prior))),
                          digest_size=20).digest()
    with _compiled_lock:
        ct = _compiled.get(key)
        if ct is not None:
            _compiled.move_to_end(key)
            return ct
    ct = CompiledTree.from_arrays(state.parent, state.p1, state.p0, state.prior, [str(i) for i in state.node_ids])
    with _compiled_lock:
        _compiled[key] = ct
        while len(_compiled) > COMPILED_CACHE:
            _compiled.popitem(last=False)
    return ct


def compute_tree(state: TreeState, metric: str = "shift") -> dict[str, np.ndarray | float]:
    """belief, voi, root_if_true, root_if_false (caller order; NaN where undefined) and root_belief."""
    ct = _compile(state)
    prop = Propagation(ct, ct.loglik(state.evidence))
    bel = prop.down()
    voi, askable = voi_arrays(ct, prop.le, metric, prop)
    R = float(prop.root_belief)
    if 0.0 < R < 1.0:
        a, c = prop.down(True), prop.down(False)
        with np.errstate(divide="ignore", invalid="ignore"):
            rt = R * a / (R * a + (1 - R) * c)
            rf = R * (1 - a) / (R * (1 - a) + (1 - R) * (1 - c))
    else:
        rt = np.full(ct.n, R)
        rf = np.full(ct.n, R)
    rt = np.where(askable, rt, np.nan)
    rf = np.where(askable, rf, np.nan)
    # Labels only (no model evidence): a second upward pass, needed only when model evidence is there.
    labels_only = (float(Propagation(ct, ct.loglik(state.evidence, "none")).root_belief)
                   if any(e.is_model for e in state.evidence) else R)
    return {"belief": ct.to_caller(bel), "voi": ct.to_caller(voi), "root_if_true": ct.to_caller(rt),
            "root_if_false": ct.to_caller(rf), "root_belief": R, "labels_only": labels_only}


def _label_rows(session: Session, condition):
    # The weight of a label: its own reliability (imported evidence), else its annotator's learned
    # reliability (issue 13: argtree.store.reliability), else the reliability they were created with.
    from .models import AnnotatorEstimate

    return session.execute(
        select(Label.proposition_id, Label.value, Label.probability, Label.reliability,
               func.coalesce(AnnotatorEstimate.reliability, Annotator.reliability))
        .join(Annotator, Annotator.id == Label.annotator_id)
        .outerjoin(AnnotatorEstimate, AnnotatorEstimate.annotator_id == Label.annotator_id)
        .where(condition, Label.retracted_at.is_(None), (Label.value.is_not(None)) | (Label.probability.is_not(None)))
        .order_by(Label.id))


def _evidence(rows, where_nodes: dict[int, list[int]]) -> list[Evidence]:
    out: list[Evidence] = []
    for pid, value, probability, own, annot in rows:
        ev = label_evidence(value, probability, own if own is not None else annot)
        if ev is None:
            continue
        for node_id in where_nodes.get(pid, ()):
            out.append(Evidence(str(node_id), ev[0], ev[1]))
    return out


def evidence_for(session: Session, proposition_ids: Sequence[int],
                 where_nodes: dict[int, list[int]]) -> list[Evidence]:
    """Evidence on node ids (as strings) from the live labels of ``proposition_ids``."""
    out: list[Evidence] = []
    uniq = sorted(set(proposition_ids))
    for i in range(0, len(uniq), CHUNK):
        out += _evidence(_label_rows(session, Label.proposition_id.in_(uniq[i:i + CHUNK])), where_nodes)
    return out


def load_state(session: Session, tree_id: int) -> tuple[TreeState, np.ndarray, np.ndarray]:
    """The tree's arrays and its nodes' stored (belief, voi, root_if_true, root_if_false), NaN for NULL."""
    from .trees import model_evidence_of

    rows = session.execute(
        select(Node.id, Node.parent_id, Node.proposition_id, Node.prior, Node.p_if_true, Node.p_if_false,
               Node.belief, Node.voi, Node.root_if_true, Node.root_if_false, Node.model_evidence)
        .where(Node.tree_id == tree_id).order_by(Node.id)).all()
    ids = [r[0] for r in rows]
    index = {nid: i for i, nid in enumerate(ids)}
    parent = np.array([index[r[1]] if r[1] is not None else -1 for r in rows], dtype=np.int64)
    num = np.array([r[3:10] for r in rows], dtype=float)  # None -> nan
    prior = float(num[parent < 0, 0][0])
    where: dict[int, list[int]] = {}
    for r in rows:
        where.setdefault(r[2], []).append(r[0])
    in_tree = Label.proposition_id.in_(select(Node.proposition_id).where(Node.tree_id == tree_id))
    model_ev = [e for r in rows if r[10] for e in model_evidence_of(str(r[0]), r[10])]
    state = TreeState(ids, [r[2] for r in rows], parent, np.nan_to_num(num[:, 1]), np.nan_to_num(num[:, 2]), prior,
                      _evidence(_label_rows(session, in_tree), where) + model_ev)
    return state, np.array(ids), num[:, 3:]


def _differs(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(old) & np.isnan(new)
    with np.errstate(invalid="ignore"):
        return ~both_nan & ~(np.abs(old - new) <= EPS)


def recompute_trees(session: Session, tree_ids: Iterable[int], *, cause: str = "label",
                    label_id: int | None = None, metric: str | None = None) -> dict[int, float]:
    """Recompute and store beliefs/VoI of ``tree_ids`` (already locked by the caller on PostgreSQL)
    and append each tree's root belief to its history.

    Returns, per proposition whose node VoI changed, the change of its forest VoI
    (sum of priority x VoI change over these trees' live nodes); the caller hands it to
    ``apply_forest_deltas`` (or refreshes those propositions from scratch)."""
    metric = metric or queue_settings(session)["queue.metric"]
    deltas: dict[int, float] = {}
    roots: list[dict] = []
    now = utcnow()
    stmt = (update(Node.__table__).where(Node.__table__.c.id == bindparam("nid"))
            .values(belief=bindparam("b"), voi=bindparam("v"), root_if_true=bindparam("t"),
                    root_if_false=bindparam("f")))
    ids_sorted = sorted(set(tree_ids))
    weight = {tid: (prio if status != "archived" else 0.0) for tid, prio, status in session.execute(
        select(Tree.id, Tree.priority, Tree.status).where(Tree.id.in_(ids_sorted)))}
    for tree_id in ids_sorted:
        state, ids, old = load_state(session, tree_id)
        out = compute_tree(state, metric)
        new = np.column_stack([out["belief"], out["voi"], out["root_if_true"], out["root_if_false"]])
        changed = _differs(old, new)
        rows = np.flatnonzero(changed.any(axis=1))
        if len(rows):
            vals = new[rows].tolist()
            session.execute(stmt, [{"nid": int(ids[i]), "b": b, "v": v, "t": None if t != t else t,
                                    "f": None if f != f else f} for i, (b, v, t, f) in zip(rows, vals)])
            moved = np.flatnonzero(changed[:, 1])
            diff = (new[moved, 1] - np.nan_to_num(old[moved, 1])) * weight[tree_id]
            for i, d in zip(moved, diff.tolist()):
                pid = state.proposition_ids[i]
                deltas[pid] = deltas.get(pid, 0.0) + d
        roots.append({"tid": tree_id, "b": out["root_belief"], "lo": out["labels_only"]})
    if roots:
        t = Tree.__table__
        session.execute(update(t).where(t.c.id == bindparam("tid")).values(
            root_belief=bindparam("b"), root_labels_only=bindparam("lo"), updated_at=now), roots)
        direct = dict(session.execute(select(Tree.id, Tree.direct_answer).where(Tree.id.in_(ids_sorted))).all())
        session.execute(RootBelief.__table__.insert(), [
            {"tree_id": r["tid"], "belief": r["b"], "labels_only": r["lo"], "direct": direct.get(r["tid"]),
             "cause": cause, "label_id": label_id, "created_at": now}
            for r in roots])
    return deltas


def apply_forest_deltas(session: Session, deltas: dict[int, float], overlap: int | None = None,
                        skip: Iterable[int] = ()) -> None:
    """Add each proposition's forest-VoI change (from ``recompute_trees``) and re-rank it in the queue:
    one primary-key UPDATE per proposition, in id order (the lock order on PostgreSQL)."""
    skip = set(skip)
    rows = [{"pid": pid, "d": d} for pid, d in sorted(deltas.items()) if pid not in skip]
    if not rows:
        return
    if overlap is None:
        overlap = int(queue_settings(session)["queue.overlap"])
    p = Proposition.__table__
    fv = p.c.forest_voi + bindparam("d")
    session.execute(update(p).where(p.c.id == bindparam("pid")).values(
        forest_voi=fv, queue_rank=queue_rank(fv, p.c.n_answers, overlap)), rows)


def refresh_propositions(session: Session, proposition_ids: Iterable[int] = (), *,
                         tree_ids: Iterable[int] = (), overlap: int | None = None) -> None:
    """Recompute forest VoI (sum of priority x node VoI over live trees), answer counts and queue rank
    of ``proposition_ids`` and of every proposition in ``tree_ids``."""
    ids = sorted(set(proposition_ids))
    trees = sorted(set(tree_ids))
    if not ids and not trees:
        return
    if overlap is None:
        overlap = int(queue_settings(session)["queue.overlap"])
    pg = session.get_bind().dialect.name == "postgresql"
    n, t, p, lab = Node.__table__, Tree.__table__, Proposition.__table__, Label.__table__
    # Per node, its tree's weight by primary key (NULL when archived, which SUM skips): a join here let
    # PostgreSQL hash all trees once per proposition.
    weight = (select(t.c.priority).where(t.c.id == n.c.tree_id, t.c.status != "archived")
              .correlate(n).scalar_subquery())
    fv = (select(func.coalesce(func.sum(weight * n.c.voi), 0.0)).select_from(n)
          .where(n.c.proposition_id == p.c.id).correlate(p).scalar_subquery())
    answers = (select(func.count()).select_from(lab)
               .where(lab.c.proposition_id == p.c.id, lab.c.retracted_at.is_(None), lab.c.reliability.is_(None),
                      or_(lab.c.value.is_not(None), lab.c.probability.is_not(None), lab.c.ill_posed))
               .scalar_subquery())
    conditions = [p.c.id.in_(ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)]
    conditions += [p.c.id.in_(select(n.c.proposition_id).where(n.c.tree_id.in_(trees[i:i + CHUNK])))
                   for i in range(0, len(trees), CHUNK)]
    for cond in conditions:
        if pg:  # lock in id order first so the UPDATEs below read the latest committed nodes
            session.execute(select(p.c.id).where(cond).order_by(p.c.id).with_for_update(key_share=True))
        session.execute(update(p).where(cond).values(forest_voi=fv, n_answers=answers))
        session.execute(update(p).where(cond).values(queue_rank=queue_rank(p.c.forest_voi, p.c.n_answers, overlap)))
