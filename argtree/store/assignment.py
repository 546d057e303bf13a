"""Who may answer which trees (issue 13: assignment).

A tree without rows in ``tree_assignments`` is open to everyone; a tree with rows is served by the queue
only to the annotators named there.  A proposition is served to an annotator when at least one live tree
holding it is open to them (``allowed``), gold questions included.  Admins set it with ``argtree queue
settings --assign/--unassign`` or on the admin page (``web_*``).
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from .errors import NotFound, StoreError
from .models import Annotator, Node, Tree, TreeAssignment, queue_entries, utcnow

__all__ = ["assign", "unassign", "assignments", "set_assignment", "allowed", "may_answer", "web_assignments",
           "web_set_assignment"]


def _tree(session: Session, tree_id: Any) -> int:
    from .trees import get_tree

    return get_tree(session, tree_id).id


def _people(session: Session, who: Iterable[Any]) -> list[Annotator]:
    from .accounts import get_annotator

    out = []
    for w in who:
        a = get_annotator(session, w)
        if a.role == "system":
            raise StoreError(f"{a.name!r} is a system annotator (an oracle of the loop), not a person", "annotator")
        out.append(a)
    return out


def assign(session: Session, tree_id: int, who: Iterable[Any], *, by: int | None = None) -> list[str]:
    """Let the annotators ``who`` (names or ids) answer tree ``tree_id``; the tree's assignees after it."""
    tid = _tree(session, tree_id)
    have = set(session.scalars(select(TreeAssignment.annotator_id).where(TreeAssignment.tree_id == tid)))
    for a in _people(session, who):
        if a.id not in have:
            session.add(TreeAssignment(tree_id=tid, annotator_id=a.id, created_by=by, created_at=utcnow()))
            have.add(a.id)
    session.flush()
    return assignments(session, tid).get(tid, [])


def unassign(session: Session, tree_id: int, who: Iterable[Any] | None = None) -> int:
    """Remove ``who`` from tree ``tree_id``'s assignees (all of them when None: the tree is open again)."""
    tid = _tree(session, tree_id)
    q = delete(TreeAssignment).where(TreeAssignment.tree_id == tid)
    if who is not None:
        q = q.where(TreeAssignment.annotator_id.in_([a.id for a in _people(session, who)]))
    return session.execute(q).rowcount or 0


def set_assignment(session: Session, tree_id: int, who: Iterable[Any], *, by: int | None = None) -> list[str]:
    """Exactly ``who`` may answer tree ``tree_id`` (an empty list: everyone)."""
    people = _people(session, who)
    unassign(session, tree_id)
    return assign(session, tree_id, [a.id for a in people], by=by) if people else []


def assignments(session: Session, tree_id: int | None = None) -> dict[int, list[str]]:
    """{tree id: [annotator names]} of every assigned tree (or only ``tree_id``)."""
    q = (select(TreeAssignment.tree_id, Annotator.name).join(Annotator, Annotator.id == TreeAssignment.annotator_id)
         .order_by(TreeAssignment.tree_id, Annotator.name))
    if tree_id is not None:
        q = q.where(TreeAssignment.tree_id == tree_id)
    out: dict[int, list[str]] = {}
    for tid, name in session.execute(q):
        out.setdefault(tid, []).append(name)
    return out


def allowed(session: Session, annotator_id: int):
    """A condition on a queue row (``queue_entries``) for the queue: some live tree holding its proposition
    is open to the annotator.
    None when no tree is assigned at all (everything is open: the queue adds no condition)."""
    if session.scalar(select(TreeAssignment.tree_id).limit(1)) is None:
        return None
    open_to_me = or_(~exists().where(TreeAssignment.tree_id == Node.tree_id),
                     exists().where(TreeAssignment.tree_id == Node.tree_id, TreeAssignment.annotator_id == annotator_id))
    return exists().where(Node.proposition_id == queue_entries.c.proposition_id, Tree.id == Node.tree_id,
                          Tree.status != "archived",
                          open_to_me)


def may_answer(session: Session, annotator_id: int, proposition_id: int) -> bool:
    cond = allowed(session, annotator_id)
    if cond is None:
        return True
    q = queue_entries.c
    return session.scalar(select(q.proposition_id).where(q.proposition_id == proposition_id, cond)) is not None


def web_assignments(session: Session, token: str | None) -> dict[int, list[str]]:
    from .sessions import check_session

    check_session(session, token, admin=True)
    return assignments(session)


def web_set_assignment(session: Session, token: str | None, tree_id: int, names: list[str]) -> list[str]:
    from .sessions import check_session

    me = check_session(session, token, for_write=True, admin=True)
    if session.get(Tree, tree_id) is None:
        raise NotFound(f"no tree with id {tree_id}", "tree_id")
    return set_assignment(session, tree_id, names, by=me.id)
