"""Trees in the database: save (import), load (export), browse, edit."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import func, literal, select, text, update
from sqlalchemy.orm import Session

from ..tree import ArgumentTree, Evidence, Node as TreeNode, TreeError
from .compute import (TreeState, apply_forest_deltas, compute_tree, evidence_for, lock_trees, queue_settings,
                      recompute_trees, refresh_propositions)
from .errors import NotFound, StoreError
from .models import (TREE_STATUSES, Annotator, Label, ModelVersion, Node, Proposition, RootBelief, Tree, propositions,
                     queue_entries, utcnow)
from .text import check_text, text_key

__all__ = ["save_tree", "load_tree", "list_trees", "get_tree", "tree_nodes", "set_tree", "update_node",
           "upsert_propositions", "recompute_all", "TreeSummary", "NodeInfo", "MODEL_KEYS", "IMPORT_ANNOTATOR",
           "model_evidence_rows", "model_evidence_of", "refresh_content_hash"]

# Node extra keys that hold what the model said; stored in their own columns, given back on load.
MODEL_KEYS = {"credence": "model_credence", "rationale": "rationale", "model_output": "model_output"}
IMPORT_ANNOTATOR = "imported"  # system annotator that owns evidence read from argtree/1 files
CHUNK = 500


@dataclass(frozen=True)
class TreeSummary:
    id: int
    question: str
    status: str
    priority: float
    root_belief: float | None
    n_nodes: int
    model_version: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NodeInfo:
    """One node of a stored tree, for display (graph, node details)."""

    id: int
    local_id: str
    parent_id: int | None
    proposition_id: int
    text: str
    depth: int
    prior: float | None
    p_if_true: float | None
    p_if_false: float | None
    belief: float | None
    voi: float
    root_if_true: float | None
    root_if_false: float | None
    model_credence: float | None
    rationale: str | None
    n_labels: int          # live labels on its proposition (any kind)

    @property
    def stance(self) -> str:
        return stance(self.parent_id, self.p_if_true, self.p_if_false)


def stance(parent_id: int | None, p_if_true: float | None, p_if_false: float | None) -> str:
    """'supports' / 'attacks' / 'neutral' towards the parent, 'root' for the root (as tree.Node.stance)."""
    if parent_id is None:
        return "root"
    if p_if_true > p_if_false:
        return "supports"
    return "attacks" if p_if_true < p_if_false else "neutral"


def _model_version_id(session: Session, model_version: Any) -> int | None:
    if model_version is None:
        return None
    if isinstance(model_version, ModelVersion):
        return model_version.id
    if isinstance(model_version, str):
        mv = session.scalar(select(ModelVersion.id).where(ModelVersion.name == model_version))
        if mv is None:
            raise NotFound(f"no model version named {model_version!r}", "model_version")
        return mv
    if isinstance(model_version, int) and not isinstance(model_version, bool):
        if session.get(ModelVersion, model_version) is None:
            raise NotFound(f"no model version with id {model_version}", "model_version")
        return model_version
    raise StoreError(f"must be a name, an id or a ModelVersion, got {type(model_version).__name__}", "model_version")


def _check_priority(priority: Any) -> float:
    if isinstance(priority, bool) or not isinstance(priority, (int, float)) or not math.isfinite(priority) \
            or priority < 0:
        raise StoreError(f"must be a finite number >= 0, got {priority!r}", "priority")
    return float(priority)


def upsert_propositions(session: Session, texts: Iterable[str]) -> dict[str, int]:
    """Ids of the (already normalized) texts, inserting the new ones.  Safe under concurrency."""
    by_key = {text_key(t): t for t in texts}
    keys = sorted(by_key)  # one insert order for everyone: no deadlocks between concurrent imports
    table = propositions
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    out: dict[str, int] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i:i + CHUNK]
        session.execute(insert(table).on_conflict_do_nothing(index_elements=["key"]),
                        [{"key": k, "text": by_key[k], "created_at": now} for k in chunk])
        # and each new one's queue row (an existing proposition has one already)
        new = select(table.c.id, literal(0.0), literal(0)).where(table.c.key.in_(chunk))
        session.execute(insert(queue_entries).from_select(["proposition_id", "forest_voi", "n_answers"], new)
                        .on_conflict_do_nothing(index_elements=["proposition_id"]))
        for key, pid in session.execute(select(table.c.key, table.c.id).where(table.c.key.in_(chunk))):
            out[by_key[key]] = pid
    return out


def system_annotator(session: Session, name: str) -> int:
    aid = session.scalar(select(Annotator.id).where(Annotator.name == name))
    if aid is None:
        a = Annotator(name=name, role="system", password_hash=None, reliability=0.9)
        session.add(a)
        session.flush()
        aid = a.id
    return aid


def content_hash(tree: ArgumentTree, evidence: Sequence[Evidence]) -> str:
    from ..io import to_dict

    data = json.dumps(to_dict(tree, evidence), sort_keys=True, ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def refresh_content_hash(session: Session, tree_id: int) -> str:
    """Set tree ``tree_id``'s ``content_hash`` to what a fresh save of it as it stands now would store:
    the hash of ``load_tree`` (what ``argtree dump`` writes), so re-importing the dump of an edited tree
    finds it (``lookups.tree_with_content``) instead of storing a copy.  Every structural edit calls it
    (``coauthor``: add, edit, move, delete, a rewrite and its undo; ``update_node``)."""
    session.flush()
    chash = content_hash(*load_tree(session, tree_id))
    get_tree(session, tree_id).content_hash = chash
    session.flush()
    return chash


def save_tree(session: Session, tree: ArgumentTree, evidence: Iterable[Evidence] = (), *,
              question: str | None = None, model_version: Any = None, priority: float = 1.0,
              status: str = "active", meta: dict | None = None) -> int:
    """Store ``tree`` (its evidence becomes labels of the system annotator 'imported') and return its id.

    Propositions are shared by normalized text.  Beliefs and VoI of the new tree
    (and of any tree whose propositions got new evidence) are computed here.
    Raises StoreError / TreeError before anything is written when the input is bad.
    """
    if not isinstance(tree, ArgumentTree):
        raise StoreError(f"must be an ArgumentTree, got {type(tree).__name__}", "tree")
    evidence = tree.check_evidence(evidence)
    for ev in evidence:
        if not isinstance(ev, Evidence):
            raise StoreError(f"must hold Evidence objects, got {type(ev).__name__}", "evidence")
    priority = _check_priority(priority)
    if status not in TREE_STATUSES:
        raise StoreError(f"must be one of {', '.join(TREE_STATUSES)}, got {status!r}", "status")
    order = list(tree.nodes)
    texts = [check_text(tree[nid].text, f"node {nid!r} text") for nid in order]
    for nid in order:
        if len(nid) > 200:
            raise StoreError(f"node id {nid[:40]!r}... is longer than 200 characters", "id")
    question = check_text(question, "question", optional=True) or texts[order.index(tree.root)]
    mv_id = _model_version_id(session, model_version)
    chash = content_hash(tree, evidence)
    meta = dict(tree.meta if meta is None else meta)
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"must be JSON-serializable: {err}", "meta") from None

    with session.begin_nested():
        return _save(session, tree, evidence, order, texts, question, mv_id, priority, status, meta, chash)


def model_evidence_rows(evidence: Iterable[Evidence]) -> dict[str, list[dict[str, Any]]]:
    """Model evidence by node id, as the ``nodes.model_evidence`` column keeps it (a list of entries)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ev in evidence:
        if ev.is_model:
            out.setdefault(ev.node, []).append({"value": ev.value, "reliability": ev.reliability, **dict(ev.extra)})
    return out


def model_evidence_of(node: str, entries: Any) -> list[Evidence]:
    """The stored ``nodes.model_evidence`` list back as Evidence on ``node``."""
    out = []
    for e in entries or ():
        extra = {k: v for k, v in e.items() if k not in ("value", "reliability")}
        extra["source"] = "model"
        out.append(Evidence(node, bool(e["value"]), float(e["reliability"]), extra))
    return out


def _direct(meta: dict) -> float | None:
    d = meta.get("direct")
    p = d.get("calibrated", d.get("p")) if isinstance(d, dict) else None
    return float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 <= p <= 1.0 else None


def _save(session, tree, evidence, order, texts, question, mv_id, priority, status, meta, chash) -> int:
    index = {nid: i for i, nid in enumerate(order)}
    pid_of = upsert_propositions(session, texts)
    pids = [pid_of[t] for t in texts]
    direct = _direct(meta)
    row = Tree(question=question, status=status, priority=priority, model_version_id=mv_id, n_nodes=len(order),
               content_hash=chash, meta=meta, direct_answer=direct)
    session.add(row)
    session.flush()
    tree_id = row.id
    # The model's credences stay on their nodes (tree-specific, never labels); the rest are labels.
    model_rows = model_evidence_rows(evidence)
    model_ev = [Evidence(str(index[ev.node]), ev.value, ev.reliability, ev.extra) for ev in evidence if ev.is_model]
    evidence = [ev for ev in evidence if not ev.is_model]
    # Evidence in the file -> labels (each carrying its own reliability).
    labeled: set[int] = set()
    if evidence:
        aid = system_annotator(session, "imported")
        fresh = _not_yet_stored(session, aid, [(pids[index[ev.node]], ev) for ev in evidence])
        session.add_all(Label(proposition_id=pid, annotator_id=aid, request_id=f"import:{tree_id}:{k}",
                              value=ev.value, reliability=ev.reliability, extra=dict(ev.extra))
                        for k, (pid, ev) in enumerate(fresh))
        session.flush()
        labeled = {pid for pid, _ in fresh}
    others = set()
    if labeled:
        others = set(session.scalars(select(Node.tree_id).where(Node.proposition_id.in_(labeled)).distinct()))
        lock_trees(session, others)
    # Compute the new tree in memory, then insert its nodes with their numbers.
    parent = np.array([index[tree[nid].parent] if tree[nid].parent is not None else -1 for nid in order])
    p1 = np.array([tree[nid].p_if_true if tree[nid].parent is not None else 0.0 for nid in order], dtype=float)
    p0 = np.array([tree[nid].p_if_false if tree[nid].parent is not None else 0.0 for nid in order], dtype=float)
    where: dict[int, list[int]] = {}
    for i, pid in enumerate(pids):
        where.setdefault(pid, []).append(i)
    state = TreeState(list(range(len(order))), pids, parent, p1, p0, float(tree[tree.root].prior),
                      evidence_for(session, list(where), where) + model_ev)
    metric = queue_settings(session)["queue.metric"]
    try:
        out = compute_tree(state, metric)
    except TreeError as err:
        node = order[int(err.node)] if err.node is not None and err.node.isdigit() else err.node
        raise TreeError(err.detail, node, err.field) from None
    bfs = tree.bfs()  # parents before children, so every row's parent is already in the table
    db_id = dict(zip(bfs, _allocate_node_ids(session, len(bfs))))
    depth = {tree.root: 0}
    rows = []
    for nid in bfs:
        i, node = index[nid], tree[nid]
        if node.parent is not None:
            depth[nid] = depth[node.parent] + 1
        extra = dict(node.extra)
        model = {col: extra.pop(key) for key, col in MODEL_KEYS.items() if key in extra}
        cred = model.get("model_credence")
        if cred is not None and (isinstance(cred, bool) or not isinstance(cred, (int, float))):
            extra["credence"] = model.pop("model_credence")  # not a number: keep it verbatim
        rat = model.get("rationale")
        if rat is not None and not isinstance(rat, str):
            extra["rationale"] = model.pop("rationale")
        rt, rf = out["root_if_true"][i], out["root_if_false"][i]
        rows.append({"id": db_id[nid], "tree_id": tree_id, "parent_id": db_id.get(node.parent), "local_id": nid,
                     "proposition_id": pids[i], "position": i, "depth": depth[nid], "prior": node.prior,
                     "p_if_true": node.p_if_true, "p_if_false": node.p_if_false,
                     "model_credence": model.get("model_credence"), "rationale": model.get("rationale"),
                     "model_output": model.get("model_output"), "extra": extra,
                     "model_evidence": model_rows.get(nid),
                     "belief": float(out["belief"][i]), "voi": float(out["voi"][i]),
                     "root_if_true": None if np.isnan(rt) else float(rt),
                     "root_if_false": None if np.isnan(rf) else float(rf)})
    session.execute(Node.__table__.insert(), rows)
    session.execute(update(Tree).where(Tree.id == tree_id).values(root_belief=out["root_belief"],
                                                                  root_labels_only=out["labels_only"]))
    session.add(RootBelief(tree_id=tree_id, belief=out["root_belief"], labels_only=out["labels_only"], direct=direct,
                           cause="created"))
    session.flush()
    deltas = recompute_trees(session, others, cause="label", metric=metric) if others else {}
    refresh_propositions(session, tree_ids=[tree_id])  # new nodes: count this tree's propositions whole
    apply_forest_deltas(session, deltas, skip=pids)
    return tree_id


def _not_yet_stored(session: Session, imported: int, entries: list[tuple[int, Evidence]]) -> list[tuple[int, Evidence]]:
    """The file's evidence entries (proposition id, Evidence) that are not in the store already (issue 13:
    importing edited copies of a tree must not count its evidence again, in it or in any tree sharing
    its propositions).

    An entry is already stored when it names a live label (``label_id``, as ``argtree dump`` writes
    a person's label) on the same proposition, or, for the rest, when live imported labels
    with the same proposition, value and reliability are at least as many as the file's entries with
    that key (a file may repeat an observation; only what it adds beyond the store is stored)."""
    pids = sorted({pid for pid, _ in entries})
    live: dict[int, tuple[int, bool | None]] = {}
    have: dict[tuple, int] = {}
    for i in range(0, len(pids), CHUNK):
        for lid, pid, aid, value, rel in session.execute(
                select(Label.id, Label.proposition_id, Label.annotator_id, Label.value, Label.reliability)
                .where(Label.proposition_id.in_(pids[i:i + CHUNK]), Label.retracted_at.is_(None))):
            live[lid] = (pid, value)
            if aid == imported and rel is not None and value is not None:
                key = (pid, bool(value), round(float(rel), 12))
                have[key] = have.get(key, 0) + 1
    fresh = []
    for pid, ev in entries:
        lid = ev.extra.get("label_id")
        if isinstance(lid, int) and not isinstance(lid, bool) and live.get(lid, (None,))[0] == pid:
            continue  # a stored label (any kind, any weight), dumped and read back
        key = (pid, bool(ev.value), round(float(ev.reliability), 12))
        if have.get(key, 0) > 0:
            have[key] -= 1
            continue
        fresh.append((pid, ev))
    return fresh


def _allocate_node_ids(session: Session, n: int) -> list[int]:
    """``n`` fresh node ids, so a whole tree goes in with one multi-row INSERT."""
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(text("SELECT nextval(pg_get_serial_sequence('nodes', 'id')) "
                                         "FROM generate_series(1, :n)"), {"n": n}))
    # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE), so nobody else takes these ids.
    start = session.scalar(select(func.coalesce(func.max(Node.id), 0))) + 1
    return list(range(start, start + n))


def get_tree(session: Session, tree_id: int) -> Tree:
    if isinstance(tree_id, bool) or not isinstance(tree_id, int):
        raise StoreError(f"must be an integer id, got {tree_id!r}", "tree_id")
    row = session.get(Tree, tree_id)
    if row is None:
        raise NotFound(f"no tree with id {tree_id}", "tree_id")
    return row


def load_tree(session: Session, tree_id: int) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    """The stored tree as an ArgumentTree (file node ids, model output back in ``extra``) and
    the live labels on its propositions as evidence (hard or soft, per annotator reliability)."""
    from .compute import label_evidence

    row = get_tree(session, tree_id)
    rows = session.execute(
        select(Node.id, Node.parent_id, Node.local_id, Proposition.text, Node.prior, Node.p_if_true,
               Node.p_if_false, Node.model_credence, Node.rationale, Node.model_output, Node.extra,
               Node.proposition_id, Node.model_evidence)
        .join(Proposition, Proposition.id == Node.proposition_id)
        .where(Node.tree_id == tree_id).order_by(Node.position, Node.id)).all()
    local = {r[0]: r[2] for r in rows}
    nodes, where = [], {}
    for r in rows:
        extra = dict(r[10] or {})
        for key, value in (("credence", r[7]), ("rationale", r[8]), ("model_output", r[9])):
            if value is not None:
                extra[key] = value
        nodes.append(TreeNode(id=r[2], text=r[3], parent=local.get(r[1]), prior=r[4], p_if_true=r[5],
                              p_if_false=r[6], extra=extra))
        where.setdefault(r[11], []).append(r[2])
    tree = ArgumentTree(nodes, dict(row.meta or {}))
    model_ev = [e for r in rows for e in model_evidence_of(r[2], r[12])]
    evidence: list[Evidence] = []
    pids = sorted(where)
    for i in range(0, len(pids), CHUNK):
        # A person's label weighs what their learned reliability says, as in the stored beliefs (issue 13).
        from .models import AnnotatorEstimate

        labels = session.execute(
            select(Label, Annotator.name, func.coalesce(AnnotatorEstimate.reliability, Annotator.reliability))
            .join(Annotator, Annotator.id == Label.annotator_id)
            .outerjoin(AnnotatorEstimate, AnnotatorEstimate.annotator_id == Label.annotator_id)
            .where(Label.proposition_id.in_(pids[i:i + CHUNK]), Label.retracted_at.is_(None)))
        for label, name, reliability in labels:
            ev = label_evidence(label.value, label.probability,
                                label.reliability if label.reliability is not None else reliability)
            if ev is None:
                continue
            extra = dict(label.extra or {}) if label.reliability is not None else {"annotator": name,
                                                                                   "label_id": label.id}
            for nid in where[label.proposition_id]:
                evidence.append((label.id, Evidence(nid, ev[0], ev[1], extra)))
    evidence.sort(key=lambda x: x[0])
    return tree, tuple(model_ev) + tuple(ev for _, ev in evidence)


def _summary(t: Tree, mv_name: str | None) -> TreeSummary:
    return TreeSummary(t.id, t.question, t.status, t.priority, t.root_belief, t.n_nodes, mv_name, t.created_at,
                       t.updated_at)


def list_trees(session: Session, search: str | None = None, *, status: str | None = None, limit: int = 50,
               offset: int = 0) -> list[TreeSummary]:
    """Newest first; ``search`` matches the question, case-insensitively."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise StoreError(f"must be an integer in [1, 10000], got {limit!r}", "limit")
    q = select(Tree, ModelVersion.name).outerjoin(ModelVersion, ModelVersion.id == Tree.model_version_id)
    if search:
        if not isinstance(search, str):
            raise StoreError(f"must be text, got {type(search).__name__}", "search")
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(Tree.question.ilike(pattern, escape="\\"))
    if status is not None:
        q = q.where(Tree.status == status)
    q = q.order_by(Tree.id.desc()).limit(limit).offset(offset)
    return [_summary(t, name) for t, name in session.execute(q)]


def tree_nodes(session: Session, tree_id: int) -> list[NodeInfo]:
    """Every node of a tree with its numbers, in file order (for graphs and node pages)."""
    get_tree(session, tree_id)
    counts = (select(Label.proposition_id, func.count().label("n")).where(Label.retracted_at.is_(None))
              .group_by(Label.proposition_id).subquery())
    rows = session.execute(
        select(Node.id, Node.local_id, Node.parent_id, Node.proposition_id, Proposition.text, Node.depth, Node.prior,
               Node.p_if_true, Node.p_if_false, Node.belief, Node.voi, Node.root_if_true, Node.root_if_false,
               Node.model_credence, Node.rationale, func.coalesce(counts.c.n, 0))
        .join(Proposition, Proposition.id == Node.proposition_id)
        .outerjoin(counts, counts.c.proposition_id == Node.proposition_id)
        .where(Node.tree_id == tree_id).order_by(Node.position, Node.id))
    return [NodeInfo(*r) for r in rows]


def set_tree(session: Session, tree_id: int, *, priority: float | None = None, status: str | None = None) -> Tree:
    """Change a tree's priority or status; the forest VoI of its propositions follows."""
    row = get_tree(session, tree_id)
    if priority is not None:
        row.priority = _check_priority(priority)
    if status is not None:
        if status not in TREE_STATUSES:
            raise StoreError(f"must be one of {', '.join(TREE_STATUSES)}, got {status!r}", "status")
        row.status = status
    session.flush()
    refresh_propositions(session, session.scalars(select(Node.proposition_id).where(Node.tree_id == tree_id)))
    return row


def update_node(session: Session, node_id: int, *, prior: float | None = None, p_if_true: float | None = None,
                p_if_false: float | None = None) -> Node:
    """Edit a node's numbers (an admin contesting the model) and recompute its tree."""
    from ..tree import check_probability

    node = session.get(Node, node_id) if isinstance(node_id, int) and not isinstance(node_id, bool) else None
    if node is None:
        raise NotFound(f"no node with id {node_id!r}", "node_id")
    try:
        if prior is not None:
            if node.parent_id is not None:
                raise StoreError("only the root carries a prior", "prior")
            node.prior = check_probability(prior, node.local_id, "prior")
        for name, value in (("p_if_true", p_if_true), ("p_if_false", p_if_false)):
            if value is not None:
                if node.parent_id is None:
                    raise StoreError("the root has no parent, so no " + name, name)
                setattr(node, name, check_probability(value, node.local_id, name))
    except TreeError as err:
        session.expire(node)
        raise StoreError(str(err), err.field) from None
    session.flush()
    lock_trees(session, [node.tree_id])
    apply_forest_deltas(session, recompute_trees(session, [node.tree_id], cause="edit"))
    refresh_content_hash(session, node.tree_id)
    return node


def recompute_all(session: Session) -> int:
    """Recompute every tree and every proposition from the labels (after a metric change, or to verify)."""
    ids = list(session.scalars(select(Tree.id).order_by(Tree.id)))
    lock_trees(session, ids)
    recompute_trees(session, ids, cause="recompute")
    refresh_propositions(session, session.scalars(select(Proposition.id)).all())
    return len(ids)
