"""Beliefs, VoI and what-if root beliefs of stored trees, recomputed from labels.

Labels become soft evidence (DESIGN.md): a label with reliability ``a`` saying
``value`` multiplies the node's likelihood by ``a`` for ``value`` and ``1 - a``
for the other.  A probability ``p`` from an annotator of reliability ``a`` is the
same channel applied to a graded report: likelihoods ``a p + (1-a)(1-p)`` for
true and ``a (1-p) + (1-a) p`` for false.  Several labels multiply.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import Float, Integer, Text, and_, bindparam, case, cast, func, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from ..inference import CompiledTree, Propagation
from ..tree import Evidence
from ..voi import voi_arrays
from .models import Annotator, Label, Node, RootBelief, Setting, Tree, queue_entries, utcnow

__all__ = ["label_evidence", "TreeState", "compute_tree", "recompute_trees", "refresh_propositions",
           "apply_forest_deltas", "exact_forest_voi", "top_exact", "tighten", "queue_rank", "rank_bucket", "bucket_of",
           "set_rank", "ranked_open", "QUEUE_ORDER", "queue_settings", "lock_trees", "lock_proposition",
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


# The indexed coarse key (issue 15): eight buckets per e-fold of the rank (each 12.5% wide), so most of
# the ~400 forest VoIs an answer moves stay in their bucket and their index entries stay put (measured at
# 1M nodes, bench/queue_writes.py: 2 per e-fold wrote fewer index pages but left ~1,500 propositions in
# the top bucket, which every read of the queue's top sorts; 16 wrote more).  Monotone in the rank, so
# ordering by QUEUE_ORDER is ordering by rank; NULL exactly when the rank is NULL.
# bucket = floor(8 ln rank), written as floor(8 ln rank + OFFSET) - OFFSET so that SQLite can floor by
# CAST (its argument stays positive): SQLAlchemy registers a floor() there that fails on NULL.
BUCKETS_PER_E = 8
_OFFSET = 6000  # > -8 ln(smallest positive double) = 5956: every bucket is >= -_OFFSET


def bucket_sql(x: str, dialect: str) -> str:
    """The bucket of SQL expression ``x`` in this dialect's SQL."""
    if dialect == "sqlite":
        return f"(CAST(ln({x}) * {BUCKETS_PER_E} + {_OFFSET} AS INTEGER) - {_OFFSET})"
    return f"(floor(ln({x}) * {BUCKETS_PER_E} + {_OFFSET}) - {_OFFSET})"


def bucket_of(rank: float | None) -> int | None:
    """The bucket of a rank, in Python (the same arithmetic as ``bucket_sql``)."""
    return None if rank is None else math.floor(math.log(rank) * BUCKETS_PER_E + _OFFSET) - _OFFSET


class rank_bucket(FunctionElement):
    """queue_bucket as SQL from a rank expression (``bucket_sql``)."""

    type = Integer()
    inherit_cache = True


@compiles(rank_bucket)
def _bucket_default(element, compiler, **kw):
    return bucket_sql(compiler.process(element.clauses, **kw), "postgresql")


@compiles(rank_bucket, "sqlite")
def _bucket_sqlite(element, compiler, **kw):
    return bucket_sql(compiler.process(element.clauses, **kw), "sqlite")


def ranked_open():
    """The WHERE clause of open propositions (those with a rank).  A range, which every bucket is in,
    rather than IS NOT NULL: with IS NOT NULL SQLite's planner sorts every open proposition instead of
    reading the bucket index from the top."""
    return queue_entries.c.queue_bucket >= -_OFFSET


# On the queue table alone (a query of the queue's top needs no proposition text).
QUEUE_ORDER = (queue_entries.c.queue_bucket.desc(), queue_entries.c.queue_rank.desc(),
               queue_entries.c.proposition_id.desc())


def set_rank(forest_voi, n_answers, overlap) -> dict:
    """UPDATE ... SET values for a proposition's rank and bucket from its forest VoI and answers."""
    rank = queue_rank(forest_voi, n_answers, overlap)
    return {"queue_rank": rank, "queue_bucket": rank_bucket(rank)}


def lock_proposition(session: Session, proposition_id: int) -> None:
    """On PostgreSQL, hold the proposition's queue row (after its trees: the lock order is trees, then
    propositions; a proposition's lock is its ``queue_entries`` row, the row an answer updates)."""
    if session.get_bind().dialect.name == "postgresql":
        q = queue_entries.c
        session.execute(select(q.proposition_id).where(q.proposition_id == proposition_id)
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


# -- the answer's hot path: every affected tree read in three statements, written in three ----------------
# (issue 15: at 1M nodes an answer touches ~4 trees and ~400 propositions; one statement per tree, per
# node or per proposition, built anew each time, cost more than the inference itself.)

TREE_CHUNK = 200  # trees read per round of statements (recompute_all passes every tree)


def _statements() -> dict:
    """The hot path's statements, built once (SQLAlchemy then reuses their compiled form)."""
    from .models import AnnotatorEstimate

    tids = bindparam("tids", expanding=True)
    n, t, lab = Node.__table__, Tree.__table__, Label.__table__
    pids = (func.unnest(cast(bindparam("pids", type_=Text), postgresql.ARRAY(Integer)))
            .table_valued("pid").render_derived("pids"))

    def labels(source):  # live labels with their weights, from ``source`` (a FROM clause holding labels)
        return (select(lab.c.proposition_id, lab.c.value, lab.c.probability, lab.c.reliability,
                       func.coalesce(AnnotatorEstimate.reliability, Annotator.reliability))
                .select_from(source.join(Annotator, Annotator.id == lab.c.annotator_id)
                             .outerjoin(AnnotatorEstimate, AnnotatorEstimate.annotator_id == lab.c.annotator_id))
                .where(lab.c.retracted_at.is_(None), or_(lab.c.value.is_not(None), lab.c.probability.is_not(None)))
                .order_by(lab.c.id))

    return {
        "trees": select(t.c.id, t.c.priority, t.c.status, t.c.direct_answer).where(t.c.id.in_(tids)),
        "nodes": select(n.c.tree_id, n.c.id, n.c.parent_id, n.c.proposition_id, n.c.prior, n.c.p_if_true,
                        n.c.p_if_false, n.c.belief, n.c.voi, n.c.root_if_true, n.c.root_if_false,
                        # as text, cast by the database: most nodes hold JSON null, not worth a json.loads
                        # each (psycopg parses a json column itself, whatever SQLAlchemy's type says)
                        cast(n.c.model_evidence, Text)).where(n.c.tree_id.in_(tids))
        .order_by(n.c.tree_id, n.c.id),
        # The weight of a label as in _label_rows: its own reliability, else the annotator's learned one,
        # else the one they were created with.
        "labels": labels(lab).where(lab.c.proposition_id.in_(select(n.c.proposition_id)
                                                                .where(n.c.tree_id.in_(tids)))),
        # PostgreSQL: the same labels for the node rows' propositions, passed as one array (an array literal,
        # ``_pg_array``) that the planner joins to the labels index.  With the subquery over nodes it scanned
        # every label in the store (a small table, at first) and probed the nodes for each: a cost that grew
        # with the store's labels, not with the answer's trees.
        "pg_labels": labels(pids.join(lab, lab.c.proposition_id == pids.c.pid)),
        "root_update": update(t).where(t.c.id == bindparam("tid")).values(
            root_belief=bindparam("b"), root_labels_only=bindparam("lo"), updated_at=bindparam("now")),
    }


_stmts: dict | None = None


def _stmt(name: str):
    global _stmts
    if _stmts is None:
        _stmts = _statements()
    return _stmts[name]


TOP_BUCKETS = 2  # an answer writes the decreases of rows in this many top buckets (the rest stay bounds)
_SQLITE_NODES = "UPDATE nodes SET belief = ?, voi = ?, root_if_true = ?, root_if_false = ? WHERE id = ?"
_SQLITE_DELTAS = ("UPDATE queue_entries SET forest_voi = forest_voi + ?, queue_rank = CASE WHEN forest_voi + ? > 0 "
                  "AND n_answers < ? THEN forest_voi + ? END WHERE proposition_id = ?")
# Then only the rows whose bucket changed: SQLite rewrites an index entry whenever its column is SET.
_SQLITE_BUCKETS = ("UPDATE queue_entries SET queue_bucket = {b} WHERE proposition_id = ? AND queue_bucket IS NOT {b}"
                   .format(b=bucket_sql("queue_rank", "sqlite")))
# PostgreSQL: one statement per table for the whole answer, its rows passed as arrays (a join on the
# primary key), instead of one UPDATE per row.  The arrays travel as array literals (``_pg_array``).
_PG_NODES = text(
    "UPDATE nodes AS n SET belief = v.b, voi = v.v, root_if_true = v.t, root_if_false = v.f "
    "FROM unnest(CAST(:ids AS integer[]), CAST(:b AS double precision[]), CAST(:v AS double precision[]), "
    "CAST(:t AS double precision[]), CAST(:f AS double precision[])) AS v(id, b, v, t, f) WHERE n.id = v.id")
# The rows are locked in id order (the lock order) by the CTE, which runs to its end before or in step
# with the UPDATE (one statement: one round trip where a SELECT ... FOR UPDATE and the UPDATE took two).
_PG_DELTAS = text(
    # the increases, and the decreases of rows in the queue's top buckets (bucket >= :floor)
    "WITH locked AS MATERIALIZED (SELECT q.proposition_id AS id FROM queue_entries AS q "
    "JOIN unnest(CAST(:ids AS integer[]), CAST(:d AS double precision[])) AS w(id, d) ON q.proposition_id = w.id "
    "WHERE w.d > 0 OR q.queue_bucket >= :floor ORDER BY q.proposition_id FOR NO KEY UPDATE OF q) "
    "UPDATE queue_entries AS p SET forest_voi = p.forest_voi + v.d, "
    "queue_rank = CASE WHEN p.forest_voi + v.d > 0 AND p.n_answers < :overlap THEN p.forest_voi + v.d END, "
    # an unchanged bucket leaves the row's index entries alone (HOT, given the page's free space)
    "queue_bucket = " + bucket_sql(
        "CASE WHEN p.forest_voi + v.d > 0 AND p.n_answers < :overlap THEN p.forest_voi + v.d END", "postgresql") + " "
    "FROM locked, unnest(CAST(:ids AS integer[]), CAST(:d AS double precision[])) AS v(id, d) "
    "WHERE p.proposition_id = locked.id AND p.proposition_id = v.id")


def _pg_array(values) -> str:
    """``values`` as a PostgreSQL array literal ('{1,0.25,NULL}'), for a CAST(:x AS T[]) parameter: psycopg
    dumps a list element by element in Python (~4 ms for an answer's ~2,000 numbers at 1M nodes), this
    is one join (repr keeps every float exact)."""
    values = list(values)
    if None in values:
        return "{" + ",".join("NULL" if x is None else repr(x) for x in values) + "}"
    return "{" + ",".join(map(repr, values)) + "}"


def _state_of(rows: list, labels: list, model_evidence_of) -> tuple[TreeState, np.ndarray, np.ndarray]:
    """load_state's result from one tree's node rows (in id order) and the labels on the forest's
    propositions (in label id order), read in bulk."""
    ids = [r[1] for r in rows]
    index = {nid: i for i, nid in enumerate(ids)}
    parent = np.array([index[r[2]] if r[2] is not None else -1 for r in rows], dtype=np.int64)
    num = np.array([r[4:11] for r in rows], dtype=float)  # None -> nan
    prior = float(num[parent < 0, 0][0])
    where: dict[int, list[int]] = {}
    for r in rows:
        where.setdefault(r[3], []).append(r[1])
    model_ev = [e for r in rows if r[11] is not None and r[11] != "null"
                for e in model_evidence_of(str(r[1]), json.loads(r[11]) if isinstance(r[11], str) else r[11])]
    evidence: list[Evidence] = []
    for pid, ev in labels:
        for node_id in where.get(pid, ()):
            evidence.append(Evidence(str(node_id), ev[0], ev[1]))
    state = TreeState(ids, [r[3] for r in rows], parent, np.nan_to_num(num[:, 1]), np.nan_to_num(num[:, 2]),
                      prior, evidence + model_ev)
    return state, np.array(ids), num[:, 3:]


def load_states(session: Session, tree_ids: Sequence[int]) -> dict[int, tuple[TreeState, np.ndarray, np.ndarray]]:
    """``load_state`` of many trees with three statements per TREE_CHUNK trees (trees without nodes
    are left out)."""
    from .trees import model_evidence_of

    out: dict[int, tuple[TreeState, np.ndarray, np.ndarray]] = {}
    ids = sorted(set(tree_ids))
    for i in range(0, len(ids), TREE_CHUNK):
        chunk = ids[i:i + TREE_CHUNK]
        by_tree: dict[int, list] = {}
        conn = session.connection()
        for r in conn.execute(_stmt("nodes"), {"tids": chunk}).all():
            by_tree.setdefault(r[0], []).append(r)
        labels = []
        if conn.dialect.name == "postgresql":
            pids = sorted({r[3] for rows in by_tree.values() for r in rows})
            found = conn.execute(_stmt("pg_labels"), {"pids": _pg_array(pids)}).all()
        else:
            found = conn.execute(_stmt("labels"), {"tids": chunk}).all()
        for pid, value, probability, own, annot in found:
            ev = label_evidence(value, probability, own if own is not None else annot)
            if ev is not None:
                labels.append((pid, ev))
        for tid, rows in by_tree.items():
            out[tid] = _state_of(rows, labels, model_evidence_of)
    return out


def _write_nodes(session: Session, rows: list[tuple]) -> None:
    """Store (node id, belief, voi, root_if_true, root_if_false) rows (None for NULL)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        cols = list(zip(*rows))
        session.execute(_PG_NODES, {k: _pg_array(col) for k, col in zip(("ids", "b", "v", "t", "f"), cols)})
    else:
        session.connection().exec_driver_sql(_SQLITE_NODES, [(b, v, t, f, nid) for nid, b, v, t, f in rows])


def recompute_trees(session: Session, tree_ids: Iterable[int], *, cause: str = "label",
                    label_id: int | None = None, metric: str | None = None) -> dict[int, float]:
    """Recompute and store beliefs/VoI of ``tree_ids`` (already locked by the caller on PostgreSQL)
    and append each tree's root belief to its history.

    Returns, per proposition whose node VoI changed, the change of its forest VoI
    (sum of priority x VoI change over these trees' live nodes); the caller hands it to
    ``apply_forest_deltas`` (or refreshes those propositions from scratch)."""
    metric = metric or queue_settings(session)["queue.metric"]
    session.flush()  # the statements below go through the Core connection: pending ORM changes first
    deltas: dict[int, float] = {}
    now = utcnow()
    ids_sorted = sorted(set(tree_ids))
    for i in range(0, len(ids_sorted), TREE_CHUNK):
        chunk = ids_sorted[i:i + TREE_CHUNK]
        info = {tid: (prio if status != "archived" else 0.0, direct)
                for tid, prio, status, direct in session.connection().execute(_stmt("trees"), {"tids": chunk}).all()}
        states = load_states(session, chunk)
        writes: list[tuple] = []
        roots: list[dict] = []
        for tree_id in chunk:
            if tree_id not in states:
                continue
            state, ids, old = states[tree_id]
            out = compute_tree(state, metric)
            new = np.column_stack([out["belief"], out["voi"], out["root_if_true"], out["root_if_false"]])
            changed = _differs(old, new)
            rows = np.flatnonzero(changed.any(axis=1))
            if len(rows):
                node_ids = ids[rows].tolist()
                for nid, (b, v, t, f) in zip(node_ids, new[rows].tolist()):
                    writes.append((nid, b, v, None if t != t else t, None if f != f else f))
                moved = np.flatnonzero(changed[:, 1])
                diff = (new[moved, 1] - np.nan_to_num(old[moved, 1])) * info[tree_id][0]
                for k, d in zip(moved.tolist(), diff.tolist()):
                    pid = state.proposition_ids[k]
                    deltas[pid] = deltas.get(pid, 0.0) + d
            roots.append({"tid": tree_id, "b": out["root_belief"], "lo": out["labels_only"], "now": now})
        _write_nodes(session, writes)
        if roots:
            session.execute(_stmt("root_update"), roots)
            session.execute(RootBelief.__table__.insert(), [
                {"tree_id": r["tid"], "belief": r["b"], "labels_only": r["lo"], "direct": info[r["tid"]][1],
                 "cause": cause, "label_id": label_id, "created_at": now}
                for r in roots])
    return deltas


def apply_forest_deltas(session: Session, deltas: dict[int, float], overlap: int | None = None,
                        skip: Iterable[int] = (), *, increases_only: bool = True) -> None:
    """Add each proposition's forest-VoI increase (from ``recompute_trees``) and re-rank it in the queue.
    Decreases are added to rows in the queue's TOP_BUCKETS top buckets, and to all rows when
    ``increases_only`` is False (a bound lowered by the same change as its exact value stays a bound);
    the others are left for the queue's readers (``top_exact``).  On SQLite one primary-key UPDATE per
    proposition (one prepared statement; then the bucket where it changed), on PostgreSQL one UPDATE for
    all of them that locks them in id order first (the lock order)."""
    skip = set(skip)
    items = [(pid, d) for pid, d in sorted(deltas.items()) if pid not in skip and d != 0.0]
    if not items:
        return
    if overlap is None:
        overlap = int(queue_settings(session)["queue.overlap"])
    # A queue row's forest VoI is an upper bound (see "the queue's bounds" below): the increases are
    # written, and the decreases only of rows in the top TOP_BUCKETS buckets, which every read sorts.
    floor = -_OFFSET - 1  # every bucket
    if increases_only:
        top = session.scalar(select(func.max(queue_entries.c.queue_bucket)))
        floor = top - TOP_BUCKETS + 1 if top is not None else _OFFSET
    if session.get_bind().dialect.name == "postgresql":
        for i in range(0, len(items), 10 * CHUNK):
            part = items[i:i + 10 * CHUNK]
            session.execute(_PG_DELTAS, {"ids": _pg_array(pid for pid, _ in part), "d": _pg_array(d for _, d in part),
                                         "overlap": overlap, "floor": floor})
        return
    conn = session.connection()
    up = [(d, d, overlap, d, pid) for pid, d in items if d > 0.0]
    down = [(d, d, overlap, d, pid, floor) for pid, d in items if d < 0.0]
    if up:  # (an empty parameter list would run the statement once, without parameters)
        conn.exec_driver_sql(_SQLITE_DELTAS, up)
    if down:
        conn.exec_driver_sql(_SQLITE_DELTAS + " AND queue_bucket >= ?", down)
    conn.exec_driver_sql(_SQLITE_BUCKETS, [(pid,) for pid, _ in items])


def refresh_propositions(session: Session, proposition_ids: Iterable[int] = (), *,
                         tree_ids: Iterable[int] = (), overlap: int | None = None, locked: bool = False) -> None:
    """Recompute forest VoI (sum of priority x node VoI over live trees), answer counts and queue rank
    of ``proposition_ids`` and of every proposition in ``tree_ids``.  ``locked``: the caller already
    holds ``proposition_ids``' rows (``lock_proposition``) and passes no ``tree_ids``."""
    ids = sorted(set(proposition_ids))
    trees = sorted(set(tree_ids))
    if not ids and not trees:
        return
    if overlap is None:
        overlap = int(queue_settings(session)["queue.overlap"])
    lock_first = session.get_bind().dialect.name == "postgresql" and not (locked and not trees)
    session.flush()
    conn = session.connection()
    for key, values in (("ids", ids), ("tids", trees)):
        lock, recount = _refresh_statements()[key]
        for i in range(0, len(values), CHUNK):
            part = {key: values[i:i + CHUNK]}
            if lock_first:  # lock in id order first so the UPDATE below reads the latest committed nodes
                conn.execute(lock, part)
            conn.execute(recount, dict(part, overlap=overlap))


_refresh: dict | None = None


def _refresh_statements() -> dict:
    """refresh_propositions' statements (lock, recount) for a list of proposition ids ("ids") and for the
    propositions of a list of trees ("tids"), built once.  The recount is one UPDATE ... FROM: the new
    forest VoI and answer count are computed once per row and give the rank in the same statement."""
    global _refresh
    if _refresh is not None:
        return _refresh
    n, q, lab = Node.__table__, queue_entries, Label.__table__
    src = queue_entries.alias("src")
    fv = forest_voi_sum(src.c.proposition_id)
    answers = (select(func.count()).select_from(lab)
               .where(lab.c.proposition_id == src.c.proposition_id, lab.c.retracted_at.is_(None),
                      lab.c.reliability.is_(None),
                      or_(lab.c.value.is_not(None), lab.c.probability.is_not(None), lab.c.ill_posed))
               .correlate(src).scalar_subquery())
    out = {}
    for key in ("ids", "tids"):
        values = bindparam(key, expanding=True)
        which = (lambda col: col.in_(values)) if key == "ids" else (
            lambda col: col.in_(select(n.c.proposition_id).where(n.c.tree_id.in_(values))))
        # A materialized CTE, so each row's sums run once (as a subquery in FROM, PostgreSQL pulled it up
        # and ran them again for every SET that names them)
        counted = (select(src.c.proposition_id.label("pid"), fv.label("fv"), answers.label("na"))
                   .where(which(src.c.proposition_id)).cte("counted").prefix_with("MATERIALIZED"))
        out[key] = (select(q.c.proposition_id).where(which(q.c.proposition_id)).order_by(q.c.proposition_id)
                    .with_for_update(key_share=True),
                    update(q).where(q.c.proposition_id == counted.c.pid)
                    .values(forest_voi=counted.c.fv, n_answers=counted.c.na,
                            **set_rank(counted.c.fv, counted.c.na, bindparam("overlap"))))
    _refresh = out
    return out


# -- the queue's bounds (issue 15) -----------------------------------------------------------------------
# A queue row's forest_voi is an upper bound on the proposition's exact forest VoI (Σ priority × node VoI
# over its live trees; the nodes always hold the exact numbers).  An answer moves ~400 forest VoIs at 1M
# nodes, about two thirds of them down.  It writes the increases, and the decreases only of rows in the
# queue's top TOP_BUCKETS buckets (which every read sorts: stale bounds there would grow it): about a third
# of the scattered queue rows.  The other decreases wait until their row reaches the top: readers of the
# top (``top_exact``) compute the exact values of the rows they pass, serve by those, and write them back
# (``tighten``).  Recounts (``refresh_propositions``: new trees, answer counts, settings) write exact values.

STALE_REL = 1e-9  # a bound above exact by more than this (relative, plus 1e-12) is rewritten when read


def forest_voi_sum(proposition_id):
    """The exact forest VoI of the proposition ``proposition_id`` (a column of the enclosing query's table,
    which the sum is correlated to): Σ priority × node VoI over its nodes in live trees, 0.0 when none.
    The one definition of the sum, for the recount (``refresh_propositions``) and the queue's readers
    (``exact_forest_voi``)."""
    n, t = Node.__table__, Tree.__table__
    # Per node, its tree's weight by primary key (NULL when archived, which SUM skips): a join here let
    # PostgreSQL hash all trees once per proposition in the recount.
    weight = (select(t.c.priority).where(t.c.id == n.c.tree_id, t.c.status != "archived")
              .correlate(n).scalar_subquery())
    return (select(func.coalesce(func.sum(weight * n.c.voi), 0.0)).select_from(n)
            .where(n.c.proposition_id == proposition_id).correlate(proposition_id.table).scalar_subquery())


def exact_forest_voi(session: Session, proposition_ids: Iterable[int]) -> dict[int, float]:
    """The exact forest VoI (Σ priority × node VoI over live trees) of each proposition, 0.0 when none."""
    global _exact_stmt
    if _exact_stmt is None:  # built once: on the read path of every question, its construction cost ~1 ms
        q = queue_entries.c
        _exact_stmt = (select(q.proposition_id, forest_voi_sum(q.proposition_id))
                       .where(q.proposition_id.in_(bindparam("pids", expanding=True))))
    ids = sorted(set(proposition_ids))
    out = dict.fromkeys(ids, 0.0)
    conn = session.connection()
    for i in range(0, len(ids), CHUNK):
        for pid, v in conn.execute(_exact_stmt, {"pids": ids[i:i + CHUNK]}):
            out[pid] = float(v or 0.0)
    return out


_exact_stmt = None


def stale(bound: float, exact: float) -> bool:
    return bound > exact + 1e-12 + STALE_REL * abs(exact)


def top_exact(session: Session, conditions: Sequence = (), k: int = 1
              ) -> tuple[list[tuple[int, float]], list[tuple[int, float, float]]]:
    """The ``k`` open propositions (queue rows meeting ``conditions``) with the highest exact forest VoI,
    best first (ties: the higher id first, as QUEUE_ORDER), as (id, exact forest VoI); and the rows read
    whose bound had gone stale, as (id, bound read, exact value) for ``tighten``.

    Reads the queue in its order (by bound), a page at a time, until the k-th best exact value found is at
    least the bound of the last row read: every row not read has a bound, and so an exact value, below it."""
    q = queue_entries.c
    page = k + 8  # most rows at the top are exact: one page, usually
    found: list[tuple[float, int]] = []
    stale_rows: list[tuple[int, float, float]] = []
    after = None
    while True:
        query = select(q.proposition_id, q.queue_bucket, q.queue_rank).where(ranked_open(), *conditions)
        if after is not None:  # the rows after the last one read, in QUEUE_ORDER (the bucket bound keeps the index)
            p, b, r = after  # (id, bucket, rank) of the last row read
            query = query.where(q.queue_bucket <= b, or_(q.queue_bucket < b, q.queue_rank < r,
                                                        and_(q.queue_rank == r, q.proposition_id < p)))
        rows = session.execute(query.order_by(*QUEUE_ORDER).limit(page)).all()
        # The sums for the page's rows only: as a column of the query above they ran for every row of the top
        # bucket, which the query sorts (2-4x the whole read at 1M nodes).
        exact = exact_forest_voi(session, [r[0] for r in rows])
        for pid, _, bound in rows:
            e = exact[pid]
            if stale(bound, e):
                stale_rows.append((pid, bound, e))
            if e > 0.0:
                found.append((e, pid))
        found.sort(key=lambda x: (-x[0], -x[1]))
        del found[k:]
        if len(rows) < page:
            break
        after = tuple(rows[-1])
        if len(found) == k and (found[-1][0] > after[2] or (found[-1][0] == after[2] and found[-1][1] >= after[0])):
            break
    return [(pid, e) for e, pid in found], stale_rows


def tighten(session: Session, rows: Sequence[tuple[int, float, float]]) -> None:
    """Write the exact forest VoI back to rows whose bound went stale: (id, bound read, exact value) from
    ``top_exact``.  Only where the row still holds the bound read (an answer that raised it since leaves
    it alone: it is a bound again); on PostgreSQL only rows no other transaction holds (SKIP LOCKED: never
    a wait, so never a deadlock)."""
    rows = sorted(rows)
    if not rows:
        return
    q = queue_entries.c
    if session.get_bind().dialect.name == "postgresql":
        free = set(session.scalars(select(q.proposition_id).where(q.proposition_id.in_([r[0] for r in rows]))
                                   .order_by(q.proposition_id).with_for_update(skip_locked=True, key_share=True)))
        rows = [r for r in rows if r[0] in free]
        if not rows:
            return
    overlap = int(queue_settings(session)["queue.overlap"])
    e = bindparam("e", type_=Float)
    session.connection().execute(
        update(queue_entries).where(q.proposition_id == bindparam("pid"), q.queue_rank == bindparam("b"))
        .values(forest_voi=e, **set_rank(e, q.n_answers, overlap)),
        [{"pid": pid, "b": bound, "e": exact} for pid, bound, exact in rows])
