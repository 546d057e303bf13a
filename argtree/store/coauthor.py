"""People co-authoring the trees (issue 13): add a premise, edit a premise's text, delete or move a node,
and an ill-posed answer's rewrite put in place of its node.

- ``add_premise``: any annotator adds a premise under a node, for or against it, with their own numbers
  (``p_if_true`` / ``p_if_false``) or numbers the model elicited (``argtree.coauthor.elicit_premise``,
  passed in with what the model said in ``model``).
- ``edit_text``: any annotator rewrites a premise.  The node gets a *new proposition version* (the new
  text, shared with any tree that states it too); the old proposition stays, archived from this node with
  its labels: they are not carried over.  What the model said about the old text is dropped from the
  node (it is kept in the edit's ``detail``).
- ``delete_node`` / ``move_node``: admins only; a node goes with its whole subtree.
- ``apply_rewrite``: called by ``queue.submit_label`` for an ill-posed answer with a rewrite: the rewrite
  replaces the proposition in every live tree that holds it (as ``edit_text`` does), recorded as the
  answering annotator's edit with the label.

Every change is a row of ``tree_edits`` (who, when, what was there before) and recomputes its tree in
the same transaction: beliefs, VoI, the root (its history gets a point with cause 'edit') and the queue
ranks of the propositions whose forest VoI moved.  A ``request_id`` makes a change idempotent per
annotator: sending it again returns the stored edit and changes nothing.

Lock order as everywhere in the store: the reliability lock (shared), trees (by id), then propositions.
The ``web_*`` functions are the web app's: they check the session token first (``sessions.check_session``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .compute import apply_forest_deltas, lock_trees, recompute_trees, refresh_propositions, share_reliability_lock
from .errors import NotFound, StoreError
from .models import Annotator, Label, Node, Proposition, Tree, TreeEdit, utcnow
from .text import check_text, text_key
from .trees import refresh_content_hash, stance as stance_of, upsert_propositions

__all__ = ["EditResult", "add_premise", "edit_text", "delete_node", "move_node", "apply_rewrite", "rewrite_trees",
           "revert_rewrite", "tree_edits", "node_ref", "web_add_premise", "web_node_claim", "web_edit_text", "web_delete_node",
           "web_move_node", "web_tree_edits", "STANCES"]

STANCES = ("for", "against")


@dataclass(frozen=True)
class EditResult:
    edit_id: int
    action: str
    tree_id: int
    node_id: int | None            # the node added / edited / moved / deleted (the top of a deleted subtree)
    root_before: float | None
    root_after: float | None
    proposition_id: int | None = None   # the node's proposition after the change (add, edit)
    removed: int = 0                    # nodes removed (delete)
    repeated: bool = False              # a request id already used: nothing changed now


# -- checks ---------------------------------------------------------------

def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"must be an integer id, got {value!r}", field)
    return value


def _actor(session: Session, annotator_id: Any, *, admin: bool = False) -> Annotator:
    if isinstance(annotator_id, Annotator):
        annotator_id = annotator_id.id
    row = session.get(Annotator, _int(annotator_id, "annotator_id"))
    if row is None:
        raise NotFound(f"no annotator with id {annotator_id}", "annotator_id")
    if not row.active:
        raise StoreError(f"annotator {row.name!r} is deactivated", "annotator_id")
    if admin and row.role != "admin":
        raise StoreError(f"only admins may delete or move a node ({row.name!r} is {row.role})", "annotator_id")
    return row


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 < value < 1.0:
        raise StoreError(f"must be a probability strictly between 0 and 1, got {value!r}", field)
    return float(value)


def _numbers(p_if_true: Any, p_if_false: Any, stance: str | None) -> tuple[float, float]:
    p1, p0 = _number(p_if_true, "p_if_true"), _number(p_if_false, "p_if_false")
    if stance is not None:
        if stance not in STANCES:
            raise StoreError(f"must be 'for' or 'against', got {stance!r}", "stance")
        if stance == "for" and not p1 > p0:
            raise StoreError(f"a premise for its parent has p_if_true > p_if_false (got {p1} and {p0})", "stance")
        if stance == "against" and not p1 < p0:
            raise StoreError(f"a premise against its parent has p_if_true < p_if_false (got {p1} and {p0})",
                             "stance")
    return p1, p0


def _tree_id_of(session: Session, node_id: Any) -> int:
    tid = session.scalar(select(Node.tree_id).where(Node.id == _int(node_id, "node_id")))
    if tid is None:
        raise NotFound(f"no node with id {node_id}", "node_id")
    return tid


def _locked_node(session: Session, node_id: int) -> Node:
    """The node as committed now (read after its tree's lock: another edit may have moved or deleted it)."""
    node = session.execute(select(Node).where(Node.id == node_id)
                           .execution_options(populate_existing=True)).scalar_one_or_none()
    if node is None:
        raise NotFound(f"no node with id {node_id} (deleted meanwhile)", "node_id")
    return node


def _live_tree(session: Session, tree_id: int) -> Tree:
    tree = session.execute(select(Tree).where(Tree.id == tree_id)
                           .execution_options(populate_existing=True)).scalar_one()
    if tree.status == "archived":
        raise StoreError(f"tree {tree_id} is archived: it stays as it was", "tree_id")
    return tree


def trees_holding(session: Session, pids: Iterable[int | None]) -> set[int]:
    """Trees with a node on any of ``pids`` (read as committed now)."""
    ids = sorted({p for p in pids if p is not None})
    if not ids:
        return set()
    return set(session.scalars(select(Node.tree_id).where(Node.proposition_id.in_(ids)).distinct()))


def text_proposition(session: Session, text: str | None) -> int | None:
    """The id of the proposition with this (normalized) text, if it is stored; inserts nothing."""
    if not text:
        return None
    return session.scalar(select(Proposition.id).where(Proposition.key == text_key(text)))


def lock_scope(session: Session, scope: Callable[[], set[int]]) -> set[int]:
    """Take the locks of a change in the store's one order: the reliability lock (shared), then every tree
    ``scope()`` names, by id, in one go.  ``scope`` reads what the change touches as committed now: its own
    trees and every tree holding a proposition whose row it locks outside the sorted round of
    ``apply_forest_deltas`` (the propositions it recounts whole: a premise's new or old text, a rewrite's).
    Holding all of those trees first is what keeps the proposition locks deadlock-free: nobody else locks
    such a row without holding one of its trees.

    On PostgreSQL the scope is read again under the locks: when a concurrent change put one of its
    propositions into another tree meanwhile, the locks are given back (rolled back to a savepoint) and the
    larger set is taken again, in id order, instead of locking the new tree after the others."""
    share_reliability_lock(session)
    want = set(scope())
    if session.get_bind().dialect.name != "postgresql":   # SQLite: one writer at a time
        return want
    while True:
        sp = session.begin_nested()
        lock_trees(session, want)
        now = set(scope())
        if now <= want:
            sp.commit()
            return want
        sp.rollback()   # gives back the row locks taken since the savepoint
        want |= now


def _begin(session: Session, tree_ids: Iterable[int], pids: Callable[[], Iterable[int | None]] = lambda: ()) -> None:
    tree_ids = set(tree_ids)
    lock_scope(session, lambda: tree_ids | trees_holding(session, pids()))


def _repeated(session: Session, me: int, request_id: str | None) -> TreeEdit | None:
    if request_id is None:
        return None
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128:
        raise StoreError(f"must be text of 1 to 128 characters, got {request_id!r:.60}", "request_id")
    return session.scalar(select(TreeEdit).where(TreeEdit.annotator_id == me, TreeEdit.request_id == request_id))


def _again(edit: TreeEdit) -> EditResult:
    d = edit.detail or {}
    return EditResult(edit.id, edit.action, edit.tree_id, edit.node_id, d.get("root_before"), d.get("root_after"),
                      d.get("proposition_id", d.get("new_proposition_id")), len(d.get("removed", ())), True)


def _recompute(session: Session, tree_ids: Iterable[int], whole: Iterable[int],
               into: dict[int, float] | None = None) -> None:
    """Beliefs, VoI and root of ``tree_ids``; propositions in ``whole`` (that gained or lost nodes) are
    recounted from scratch (their trees are all locked), the others move by their VoI change: now, in
    one sorted round of proposition locks, or, with ``into``, added to the caller's changes for its own
    single round (``submit_label`` / ``undo_last_label``: a second round after the first could take a
    lower id after a higher one)."""
    whole = set(whole)
    deltas = recompute_trees(session, tree_ids, cause="edit")
    refresh_propositions(session, whole)
    if into is None:
        apply_forest_deltas(session, deltas, skip=whole)
        return
    for pid, d in deltas.items():
        into[pid] = into.get(pid, 0.0) + d


def _record(session: Session, tree: Tree, node_id: int | None, me: int | None, action: str, detail: dict,
            request_id: str | None, root_before: float | None, label_id: int | None = None) -> TreeEdit:
    session.flush()
    refresh_content_hash(session, tree.id)   # what a fresh save of the edited tree would store
    session.refresh(tree, ["root_belief"])
    detail = {**detail, "root_before": root_before, "root_after": tree.root_belief}
    edit = TreeEdit(tree_id=tree.id, node_id=node_id, annotator_id=me, label_id=label_id, action=action,
                    detail=detail, request_id=request_id, created_at=utcnow())
    session.add(edit)
    session.flush()
    return edit


def _ancestry_pids(session: Session, node: Node) -> set[int]:
    """Propositions of ``node`` and of every node above it."""
    out: set[int] = set()
    cur: Node | None = node
    while cur is not None:
        out.add(cur.proposition_id)
        cur = session.get(Node, cur.parent_id) if cur.parent_id is not None else None
    return out


def _fresh_local_id(session: Session, tree_id: int) -> str:
    taken = set(session.scalars(select(Node.local_id).where(Node.tree_id == tree_id)))
    k = len(taken) + 1
    while f"added{k}" in taken:
        k += 1
    return f"added{k}"


# -- the changes ----------------------------------------------------------

def add_premise(session: Session, annotator_id: int, parent_node_id: int, text: str, *, p_if_true: float,
                p_if_false: float, stance: str | None = None, model: dict | None = None,
                request_id: str | None = None) -> EditResult:
    """Add a premise under node ``parent_node_id``: P(premise | parent true) = ``p_if_true``,
    P(premise | parent false) = ``p_if_false`` (``stance`` 'for'/'against', when given, must agree).
    ``model``: what the model said when it elicited the numbers ({"credence", "rationale", ...}); the
    premise's numbers are then the model's (recorded as such).  Any active annotator may add one."""
    me = _actor(session, annotator_id)
    text = check_text(text, "text")
    p1, p0 = _numbers(p_if_true, p_if_false, stance)
    if model is not None and not isinstance(model, dict):
        raise StoreError(f"must be a dict of what the model said, got {type(model).__name__}", "model")
    done = _repeated(session, me.id, request_id)
    if done is not None:
        return _again(done)
    tid = _tree_id_of(session, parent_node_id)
    _begin(session, [tid], lambda: [text_proposition(session, text)])   # the trees already stating it too
    tree = _live_tree(session, tid)
    parent = _locked_node(session, parent_node_id)
    pid = upsert_propositions(session, [text])[text]
    if pid in _ancestry_pids(session, parent):
        raise StoreError("the premise restates its parent or an ancestor", "text")
    if session.scalar(select(Node.id).where(Node.parent_id == parent.id, Node.proposition_id == pid)) is not None:
        raise StoreError("the node already has this premise", "text")
    root_before = tree.root_belief
    position = session.scalar(select(func.coalesce(func.max(Node.position), -1)).where(Node.tree_id == tid)) + 1
    model = dict(model or {})
    credence = model.pop("credence", None)
    rationale = model.pop("rationale", None)
    node = Node(tree_id=tid, parent_id=parent.id, local_id=_fresh_local_id(session, tid), proposition_id=pid,
                position=position, depth=parent.depth + 1, p_if_true=p1, p_if_false=p0,
                model_credence=credence if isinstance(credence, (int, float)) and not isinstance(credence, bool)
                else None,
                rationale=rationale if isinstance(rationale, str) else None,
                model_output=model.pop("model_output", None) if model else None,
                extra={"author": me.name, "numbers": "model" if credence is not None or model else "own", **model},
                voi=0.0)
    session.add(node)
    tree.n_nodes = (tree.n_nodes or 0) + 1
    session.flush()
    if node.model_credence is not None:  # the model's credence is virtual evidence on the new leaf (DESIGN.md)
        node.model_evidence = _model_evidence(session, tid, node.local_id, node.model_credence)
        session.flush()
    _recompute(session, [tid], {pid})
    edit = _record(session, tree, node.id, me.id, "add",
                   {"parent_id": parent.id, "local_id": node.local_id, "text": text, "proposition_id": pid,
                    "p_if_true": p1, "p_if_false": p0, "stance": stance_of(parent.id, p1, p0),
                    "numbers": node.extra["numbers"]}, request_id, root_before)
    return EditResult(edit.id, "add", tid, node.id, root_before, tree.root_belief, pid)


def _model_evidence(session: Session, tree_id: int, local_id: str, credence: float) -> list[dict]:
    """The stored form of the model's credence in a new leaf: virtual evidence that moves it from its
    marginal without any evidence to the credence (identity calibration, recorded as such)."""
    from ..model_evidence import evidence_for_nodes
    from .trees import load_tree, model_evidence_rows

    tree, _ = load_tree(session, tree_id)
    return model_evidence_rows(evidence_for_nodes(tree, {local_id: float(credence)})).get(local_id)


def _replace_proposition(session: Session, node: Node, new_pid: int) -> dict:
    """Point ``node`` at proposition ``new_pid``; what the model said about the old text leaves the node.
    Returns what was there before."""
    before = {"old_proposition_id": node.proposition_id,
              "old_text": session.scalar(select(Proposition.text).where(Proposition.id == node.proposition_id)),
              "model": {k: v for k, v in (("credence", node.model_credence), ("rationale", node.rationale),
                                          ("model_output", node.model_output),
                                          ("model_evidence", node.model_evidence)) if v is not None}}
    node.proposition_id = new_pid
    node.model_credence = node.rationale = node.model_output = node.model_evidence = None
    return before


def edit_text(session: Session, annotator_id: int, node_id: int, text: str, *,
              request_id: str | None = None) -> EditResult:
    """Give premise ``node_id`` a new text: a new proposition version (the old one keeps its labels, which
    do not carry over).  Any active annotator may; the root (the tree's question) is not edited here."""
    me = _actor(session, annotator_id)
    text = check_text(text, "text")
    done = _repeated(session, me.id, request_id)
    if done is not None:
        return _again(done)
    tid = _tree_id_of(session, node_id)
    _begin(session, [tid], lambda: [session.scalar(select(Node.proposition_id).where(Node.id == node_id)),
                                    text_proposition(session, text)])   # the old and new text's trees too
    tree = _live_tree(session, tid)
    node = _locked_node(session, node_id)
    if node.parent_id is None:
        raise StoreError("the root is the tree's question; edit a premise", "node_id")
    new_pid = upsert_propositions(session, [text])[text]
    if new_pid == node.proposition_id:
        raise StoreError("the text is unchanged", "text")
    if new_pid in _ancestry_pids(session, session.get(Node, node.parent_id)):
        raise StoreError("the new text restates the parent or an ancestor", "text")
    root_before = tree.root_belief
    before = _replace_proposition(session, node, new_pid)
    session.flush()
    _recompute(session, [tid], {before["old_proposition_id"], new_pid})
    edit = _record(session, tree, node.id, me.id, "edit",
                   {**before, "new_proposition_id": new_pid, "new_text": text}, request_id, root_before)
    return EditResult(edit.id, "edit", tid, node.id, root_before, tree.root_belief, new_pid)


def _subtree(session: Session, node: Node) -> list[Node]:
    """``node`` and every node below it, parents before children."""
    rows = session.scalars(select(Node).where(Node.tree_id == node.tree_id)).all()
    children: dict[int, list[Node]] = {}
    for r in rows:
        if r.parent_id is not None:
            children.setdefault(r.parent_id, []).append(r)
    out, todo = [], [node]
    while todo:
        n = todo.pop(0)
        out.append(n)
        todo += sorted(children.get(n.id, ()), key=lambda c: c.id)
    return out


def _subtree_pids(session: Session, tree_id: int, node_id: int) -> set[int]:
    """Propositions of node ``node_id`` and the nodes below it, as committed now (no ORM objects)."""
    rows = session.execute(select(Node.id, Node.parent_id, Node.proposition_id).where(Node.tree_id == tree_id)).all()
    children: dict[int, list[int]] = {}
    pid = {}
    for i, par, p in rows:
        pid[i] = p
        if par is not None:
            children.setdefault(par, []).append(i)
    out, todo = set(), [node_id] if node_id in pid else []
    while todo:
        i = todo.pop()
        out.add(pid[i])
        todo += children.get(i, ())
    return out


def delete_node(session: Session, annotator_id: int, node_id: int, *, request_id: str | None = None) -> EditResult:
    """An admin deletes node ``node_id`` and everything below it (never the root)."""
    me = _actor(session, annotator_id, admin=True)
    done = _repeated(session, me.id, request_id)
    if done is not None:
        return _again(done)
    tid = _tree_id_of(session, node_id)
    _begin(session, [tid], lambda: _subtree_pids(session, tid, node_id))   # every tree sharing what goes
    tree = _live_tree(session, tid)
    node = _locked_node(session, node_id)
    if node.parent_id is None:
        raise StoreError("the root cannot be deleted (archive the tree instead)", "node_id")
    gone = _subtree(session, node)
    texts = dict(session.execute(select(Proposition.id, Proposition.text)
                                 .where(Proposition.id.in_({n.proposition_id for n in gone}))).all())
    removed = [{"id": n.id, "local_id": n.local_id, "parent_id": n.parent_id, "proposition_id": n.proposition_id,
                "text": texts[n.proposition_id], "p_if_true": n.p_if_true, "p_if_false": n.p_if_false}
               for n in gone]
    root_before = tree.root_belief
    session.execute(delete(Node).where(Node.id.in_([n.id for n in gone])))  # one statement: the subtree
    for n in gone:
        session.expunge(n)
    tree.n_nodes = max(0, (tree.n_nodes or 0) - len(gone))
    session.flush()
    _recompute(session, [tid], {n["proposition_id"] for n in removed})
    edit = _record(session, tree, node_id, me.id, "delete", {"removed": removed}, request_id, root_before)
    return EditResult(edit.id, "delete", tid, node_id, root_before, tree.root_belief, removed=len(removed))


def move_node(session: Session, annotator_id: int, node_id: int, new_parent_id: int, *,
              p_if_true: float | None = None, p_if_false: float | None = None,
              request_id: str | None = None) -> EditResult:
    """An admin moves node ``node_id`` (with its subtree) under ``new_parent_id`` in the same tree; its
    numbers now speak of the new parent (keep them, or give new ones)."""
    me = _actor(session, annotator_id, admin=True)
    _int(new_parent_id, "new_parent_id")
    if (p_if_true is None) != (p_if_false is None):
        raise StoreError("give both p_if_true and p_if_false, or neither", "p_if_true")
    done = _repeated(session, me.id, request_id)
    if done is not None:
        return _again(done)
    tid = _tree_id_of(session, node_id)
    _begin(session, [tid])
    tree = _live_tree(session, tid)
    node = _locked_node(session, node_id)
    target = session.execute(select(Node).where(Node.id == new_parent_id)
                             .execution_options(populate_existing=True)).scalar_one_or_none()
    if target is None or target.tree_id != tid:
        raise NotFound(f"no node with id {new_parent_id} in tree {tid}", "new_parent_id")
    if node.parent_id is None:
        raise StoreError("the root cannot be moved", "node_id")
    if target.id == node.parent_id:
        raise StoreError(f"node {node.id} is already under node {target.id}", "new_parent_id")
    below = _subtree(session, node)
    if target.id in {n.id for n in below}:
        raise StoreError(f"node {target.id} is {node.id} itself or below it: that would make a cycle",
                         "new_parent_id")
    old = {"old_parent_id": node.parent_id, "old_p_if_true": node.p_if_true, "old_p_if_false": node.p_if_false}
    if p_if_true is not None:
        node.p_if_true, node.p_if_false = _numbers(p_if_true, p_if_false, None)
    root_before = tree.root_belief
    shift = target.depth + 1 - node.depth
    node.parent_id = target.id
    for n in below:
        n.depth += shift
    session.flush()
    _recompute(session, [tid], ())
    edit = _record(session, tree, node.id, me.id, "move",
                   {**old, "new_parent_id": target.id, "p_if_true": node.p_if_true, "p_if_false": node.p_if_false},
                   request_id, root_before)
    return EditResult(edit.id, "move", tid, node.id, root_before, tree.root_belief, node.proposition_id)


def apply_rewrite(session: Session, label: Label, deltas: dict[int, float] | None = None) -> list[EditResult]:
    """An ill-posed answer's rewrite replaces its proposition in every live tree that holds it (premises;
    a root stays the tree's question).  Called by ``submit_label`` with the trees already locked (those
    holding the old text and those holding the new one: both are recounted whole); one edit per tree,
    recorded as the answering annotator's, with the label.  ``deltas``: the caller's forest-VoI changes,
    to which this adds its own instead of applying them (see ``_recompute``)."""
    new_pid, old_pid = label.rewrite_proposition_id, label.proposition_id
    if new_pid is None or new_pid == old_pid:
        return []
    nodes = session.execute(
        select(Node).join(Tree, Tree.id == Node.tree_id)
        .where(Node.proposition_id == old_pid, Node.parent_id.is_not(None), Tree.status != "archived")
        .order_by(Node.tree_id, Node.id).execution_options(populate_existing=True)).scalars().all()
    by_tree: dict[int, list[Node]] = {}
    for n in nodes:
        # A node whose parent or ancestor already states the rewrite keeps its text (no self-support).
        if new_pid not in _ancestry_pids(session, session.get(Node, n.parent_id)):
            by_tree.setdefault(n.tree_id, []).append(n)
    if not by_tree:
        return []
    lock_trees(session, by_tree)  # taken already by submit_label; a no-op then, and safe alone
    befores = {tid: session.get(Tree, tid).root_belief for tid in by_tree}
    changed: dict[int, list[dict]] = {}
    for tid, ns in by_tree.items():
        changed[tid] = [{"node_id": n.id, **_replace_proposition(session, n, new_pid)} for n in ns]
    session.flush()
    _recompute(session, sorted(by_tree), {old_pid, new_pid}, deltas)
    out = []
    for tid in sorted(by_tree):
        tree = session.get(Tree, tid)
        first = changed[tid][0]
        edit = _record(session, tree, first["node_id"], label.annotator_id, "rewrite",
                       {"old_proposition_id": old_pid, "old_text": first["old_text"], "new_proposition_id": new_pid,
                        "new_text": label.rewrite, "nodes": changed[tid]}, None, befores[tid], label_id=label.id)
        out.append(EditResult(edit.id, "rewrite", tid, first["node_id"], befores[tid], tree.root_belief, new_pid))
    return out


def rewrite_trees(session: Session, label_id: int) -> set[int]:
    """Trees whose nodes a label's rewrite replaced (``apply_rewrite``), not reverted since."""
    return set(session.scalars(select(TreeEdit.tree_id).where(TreeEdit.label_id == label_id,
                                                              TreeEdit.action == "rewrite")))


def revert_rewrite(session: Session, label: Label, deltas: dict[int, float] | None = None) -> list[EditResult]:
    """Undoing an ill-posed answer puts the old text back where its rewrite replaced it (nodes that still
    hold the rewrite; what the model said about the old text comes back too): one 'rewrite' edit per
    tree, ``detail["reverts"]`` naming the edit undone.  Called by ``undo_last_label``, trees locked;
    ``deltas`` as in ``apply_rewrite``."""
    edits = session.scalars(select(TreeEdit).where(TreeEdit.label_id == label.id, TreeEdit.action == "rewrite")
                            .order_by(TreeEdit.id)).all()
    todo = [e for e in edits if not (e.detail or {}).get("reverts")]
    undone = {(e.detail or {}).get("reverts") for e in edits}
    todo = [e for e in todo if e.id not in undone]
    if not todo:
        return []
    lock_trees(session, {e.tree_id for e in todo})   # taken already by undo_last_label: a no-op then
    befores = {e.tree_id: session.get(Tree, e.tree_id).root_belief for e in todo}
    back: dict[int, list[dict]] = {}
    for e in todo:
        d = e.detail
        for entry in d.get("nodes", ()):
            node = session.execute(select(Node).where(Node.id == entry["node_id"])
                                   .execution_options(populate_existing=True)).scalar_one_or_none()
            if node is None or node.proposition_id != d["new_proposition_id"]:
                continue   # deleted or edited since: left as it is now
            model = entry.get("model") or {}
            node.proposition_id = d["old_proposition_id"]
            node.model_credence, node.rationale = model.get("credence"), model.get("rationale")
            node.model_output, node.model_evidence = model.get("model_output"), model.get("model_evidence")
            back.setdefault(e.tree_id, []).append({"node_id": node.id})
    session.flush()
    pids = {todo[0].detail["old_proposition_id"], todo[0].detail["new_proposition_id"]}
    _recompute(session, sorted({e.tree_id for e in todo}), pids, deltas)
    out = []
    for e in todo:
        tree = session.get(Tree, e.tree_id)
        edit = _record(session, tree, e.node_id, label.annotator_id, "rewrite",
                       {"reverts": e.id, "old_proposition_id": e.detail["new_proposition_id"],
                        "old_text": e.detail.get("new_text"), "new_proposition_id": e.detail["old_proposition_id"],
                        "new_text": e.detail.get("old_text"), "nodes": back.get(e.tree_id, [])},
                       None, befores[e.tree_id], label_id=label.id)
        out.append(EditResult(edit.id, "rewrite", e.tree_id, e.node_id, befores[e.tree_id], tree.root_belief,
                              e.detail["old_proposition_id"]))
    return out


# -- reading --------------------------------------------------------------

def tree_edits(session: Session, tree_id: int, limit: int = 200) -> list[dict]:
    """The tree's changes, newest first: who, when, what (and what was there before)."""
    from .trees import get_tree

    get_tree(session, tree_id)
    rows = session.execute(
        select(TreeEdit, Annotator.name).outerjoin(Annotator, Annotator.id == TreeEdit.annotator_id)
        .where(TreeEdit.tree_id == tree_id).order_by(TreeEdit.id.desc()).limit(limit))
    return [{"id": e.id, "action": e.action, "by": name, "at": e.created_at, "node_id": e.node_id,
             "label_id": e.label_id, "detail": e.detail or {}} for e, name in rows]


def node_ref(session: Session, ref: Any) -> int:
    """A node's database id from an id or 'TREE:LOCAL_ID' (the node id in the tree's argtree/1 file)."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref
    if isinstance(ref, str):
        if ref.isdigit():
            return int(ref)
        tree, sep, local = ref.partition(":")
        if sep and tree.isdigit() and local:
            nid = session.scalar(select(Node.id).where(Node.tree_id == int(tree), Node.local_id == local))
            if nid is None:
                raise NotFound(f"no node {local!r} in tree {tree}", "node")
            return nid
    raise StoreError(f"must be a node id or TREE:LOCAL_ID, got {ref!r}", "node")


# -- the web app ----------------------------------------------------------

def web_add_premise(session: Session, token: str | None, parent_node_id: int, text: str, *,
                    answer: str | None = None, **kw: Any) -> EditResult:
    """Add a premise; with ``answer`` 'true'/'false' the author also answers it, in the same transaction
    (their label is evidence at once, so the root moves with the new premise)."""
    from dataclasses import replace

    from .queue import submit_label
    from .sessions import check_session

    if answer not in (None, "true", "false"):
        raise StoreError(f"must be 'true', 'false' or None, got {answer!r}", "answer")
    me = check_session(session, token, for_write=True)
    res = add_premise(session, me.id, parent_node_id, text, **kw)
    if answer is None or res.repeated:
        return res
    submit_label(session, me.id, res.proposition_id, answer == "true",
                 request_id=f"premise:{res.edit_id}")
    return replace(res, root_after=session.scalar(select(Tree.root_belief).where(Tree.id == res.tree_id)))


def web_node_claim(session: Session, token: str | None, node_id: int) -> str:
    """The text of node ``node_id`` (the claim a new premise under it bears on), for a model to elicit the
    premise's numbers outside any transaction (``oracle_ui.data.add_premise``); checks the session."""
    from .sessions import check_session

    check_session(session, token)
    text = session.scalar(select(Proposition.text).join(Node, Node.proposition_id == Proposition.id)
                          .where(Node.id == _int(node_id, "node_id")))
    if text is None:
        raise NotFound(f"no node with id {node_id}", "node_id")
    return text


def web_edit_text(session: Session, token: str | None, node_id: int, text: str, **kw: Any) -> EditResult:
    from .sessions import check_session

    me = check_session(session, token, for_write=True)
    return edit_text(session, me.id, node_id, text, **kw)


def web_delete_node(session: Session, token: str | None, node_id: int, **kw: Any) -> EditResult:
    from .sessions import check_session

    me = check_session(session, token, for_write=True, admin=True)
    return delete_node(session, me.id, node_id, **kw)


def web_move_node(session: Session, token: str | None, node_id: int, new_parent_id: int, **kw: Any) -> EditResult:
    from .sessions import check_session

    me = check_session(session, token, for_write=True, admin=True)
    return move_node(session, me.id, node_id, new_parent_id, **kw)


def web_tree_edits(session: Session, token: str | None, tree_id: int) -> list[dict]:
    from .sessions import check_session

    check_session(session, token)
    return tree_edits(session, tree_id)
