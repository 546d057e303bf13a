"""The oracle queue: which question to ask whom, and what an answer does.

``next_question`` hands an annotator the open proposition with the highest
forest-wide VoI (exact: computed from the nodes for the rows at the queue's top,
whose stored values are upper bounds, ``compute.top_exact``) that they have not
answered and that is not already held, under a lease, by as many others as the
overlap setting allows.  ``submit_label`` is
idempotent by (annotator, request id) and recomputes only the trees that
contain the proposition.  Both run in the caller's transaction; the answer is
durable once it commits (``session_scope`` commits on exit).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, literal, select, update
from sqlalchemy.orm import Session

from .compute import (apply_forest_deltas, lock_proposition, queue_settings, ranked_open, recompute_trees,
                      refresh_propositions, set_rank, tighten, top_exact)
from .errors import NotFound, StoreError
from .models import (Annotator, Label, Lease, Node, Proposition, RootBelief, Setting, Tree, propositions,
                     queue_entries, utcnow)
from .text import check_text
from .trees import stance, upsert_propositions

__all__ = ["Question", "ChainLink", "RootPoint", "AnnotatorStats", "next_question", "submit_label",
           "undo_last_label", "release_lease", "root_history", "annotator_stats", "get_queue_settings",
           "set_queue_settings", "labels_for"]


@dataclass(frozen=True)
class ChainLink:
    """One step from the asked node up to the root: why the question matters."""

    node_id: int
    local_id: str
    text: str
    belief: float | None
    stance: str  # 'supports' / 'attacks' / 'neutral' towards the next link up; 'root' for the root


@dataclass(frozen=True)
class Question:
    proposition_id: int
    text: str
    forest_voi: float
    tree_id: int                 # the live tree where it matters most (priority x VoI)
    node_id: int
    question: str                # that tree's root question
    chain: tuple[ChainLink, ...]  # the node itself first, then its parent, ..., the root last
    voi: float                   # VoI of the node in that tree
    belief: float | None         # current P(true) there
    model_credence: float | None
    rationale: str | None
    model_output: Any
    root_belief: float | None
    root_if_true: float | None
    root_if_false: float | None
    tree_ids: tuple[int, ...]    # every live (not archived) tree that contains the proposition
    node_ids: tuple[int, ...]
    lease_expires_at: datetime


@dataclass(frozen=True)
class RootPoint:
    at: datetime
    belief: float
    cause: str                    # created | label | undo | edit | recompute
    label_id: int | None
    annotator: str | None
    proposition_id: int | None
    answer: str | None            # the label's kind: true / false / probability / ...
    labels_only: float | None = None   # the root from labels alone (belief is the tree's: + model evidence)
    direct: float | None = None        # the model's direct answer


@dataclass(frozen=True)
class AnnotatorStats:
    answered_today: int
    answered_total: int
    remaining: int                # open questions this annotator has not answered, counted up to a limit
    seconds_today: float
    remaining_capped: bool = False  # True: there are at least ``remaining`` (show "1000+")


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"must be an integer id, got {value!r}", field)
    return value


def _annotator(session: Session, annotator: Any) -> Annotator:
    if isinstance(annotator, Annotator):
        annotator = annotator.id
    row = session.get(Annotator, _int(annotator, "annotator_id"))
    if row is None:
        raise NotFound(f"no annotator with id {annotator}", "annotator_id")
    if not row.active:
        raise StoreError(f"annotator {row.name!r} is deactivated", "annotator_id")
    return row


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# -- settings -------------------------------------------------------------

def get_queue_settings(session: Session) -> dict:
    """{'queue.overlap': labels wanted per proposition, 'queue.lease_seconds': ..., 'queue.metric': ...}"""
    return queue_settings(session)


def set_queue_settings(session: Session, *, overlap: int | None = None, lease_seconds: float | None = None,
                       metric: str | None = None, gold_rate: float | None = None) -> dict:
    from ..voi import METRICS

    changes: dict[str, Any] = {}
    if gold_rate is not None:
        if isinstance(gold_rate, bool) or not isinstance(gold_rate, (int, float)) or not 0.0 <= gold_rate <= 1.0:
            raise StoreError(f"must be a share in [0, 1], got {gold_rate!r}", "gold_rate")
        changes["queue.gold_rate"] = float(gold_rate)
    if overlap is not None:
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= 100:
            raise StoreError(f"must be an integer in [1, 100], got {overlap!r}", "overlap")
        changes["queue.overlap"] = overlap
    if lease_seconds is not None:
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) \
                or not 1 <= lease_seconds <= 7 * 86400:
            raise StoreError(f"must be a number of seconds in [1, 604800], got {lease_seconds!r}", "lease_seconds")
        changes["queue.lease_seconds"] = lease_seconds
    if metric is not None:
        if metric not in METRICS:
            raise StoreError(f"must be one of {', '.join(METRICS)}, got {metric!r}", "metric")
        changes["queue.metric"] = metric
    before = queue_settings(session, fresh=True)
    for key, value in changes.items():
        row = session.get(Setting, key)
        if row is None:
            session.add(Setting(key=key, value=value))
        else:
            row.value = value
    session.flush()
    if changes.get("queue.metric", before["queue.metric"]) != before["queue.metric"]:
        from .trees import recompute_all

        queue_settings(session, fresh=True)
        recompute_all(session)
    elif changes.get("queue.overlap", before["queue.overlap"]) != before["queue.overlap"]:
        q = queue_entries.c
        session.execute(update(queue_entries).values(**set_rank(q.forest_voi, q.n_answers, changes["queue.overlap"])))
    return queue_settings(session, fresh=True)


# -- asking ---------------------------------------------------------------

# The queue's reads name propositions by their queue row (queue_entries.proposition_id): reading the queue's
# top then needs no join to the propositions' text (a join for every row of the top bucket, before sorting).
QUEUE_ID = queue_entries.c.proposition_id


def _live_label_by(annotator_id: int):
    return exists().where(Label.proposition_id == QUEUE_ID, Label.annotator_id == annotator_id,
                          Label.retracted_at.is_(None))


def _held_by_others(annotator_id: int, now: datetime):
    return (select(func.count()).select_from(Lease)
            .where(Lease.proposition_id == QUEUE_ID, Lease.annotator_id != annotator_id,
                   Lease.expires_at > now).scalar_subquery())


def next_question(session: Session, annotator_id: int, *, lease_seconds: float | None = None) -> Question | None:
    """The best open question for this annotator, leased to them; None when nothing is left.

    Asking again while the lease is live returns the same question (a page reload
    does not skip it).  The lease lapses after ``lease_seconds`` (setting
    ``queue.lease_seconds``), or when the annotator answers or asks for another.
    """
    me = _annotator(session, annotator_id).id
    settings = queue_settings(session)
    overlap = int(settings["queue.overlap"])
    seconds = float(lease_seconds if lease_seconds is not None else settings["queue.lease_seconds"])
    now = utcnow()
    expires = now + timedelta(seconds=seconds)
    held = session.scalar(
        select(Lease.proposition_id).where(Lease.annotator_id == me, Lease.expires_at > now,
                                           ~exists().where(Label.proposition_id == Lease.proposition_id,
                                                           Label.annotator_id == me, Label.retracted_at.is_(None)))
        .order_by(Lease.created_at.desc()).limit(1))
    if held is not None:
        question = _question(session, held, expires)
        if question is not None:
            session.execute(update(Lease).where(Lease.annotator_id == me, Lease.proposition_id == held)
                            .values(expires_at=expires))
            session.execute(delete(Lease).where(Lease.annotator_id == me, Lease.proposition_id != held))
            return question
        # Every tree it was in has been archived since (a re-expansion replaced it): pick another.
    session.execute(delete(Lease).where(Lease.annotator_id == me))
    from .assignment import allowed as assigned_to  # issue 13: who may answer which trees
    from .batch import batch_order, claim

    allowed = assigned_to(session, me)
    gold = _gold_question(session, me, float(settings.get("queue.gold_rate", 0.0)), expires, allowed)
    if gold is not None:
        session.add(Lease(proposition_id=gold.proposition_id, annotator_id=me, created_at=now, expires_at=expires))
        session.flush()
        return gold
    # Issue 13: with others holding questions, the next pick of the greedy batch across them.
    for pid in batch_order(session, me, now, overlap, settings["queue.metric"], allowed):
        question = claim(session, me, pid, now, expires, overlap, allowed)
        if question is not None:
            return question
    pg = _pg(session)
    skip: list[int] = []
    for _ in range(50):
        conditions = [~_live_label_by(me), queue_entries.c.n_answers + _held_by_others(me, now) < overlap]
        if allowed is not None:
            conditions.append(allowed)
        if skip:
            conditions.append(QUEUE_ID.not_in(skip))
        # The best by exact forest VoI (the rows hold upper bounds); stale bounds read on the way are fixed.
        best, stale = top_exact(session, conditions, 1)
        tighten(session, stale)
        if not best:
            return None
        pid = best[0][0]
        if pg:
            # Its lock is the queue row: held by another annotator's pick or an answer, take the next one.
            if session.scalar(select(QUEUE_ID).where(QUEUE_ID == pid)
                              .with_for_update(skip_locked=True, of=queue_entries, key_share=True)) is None:
                skip.append(pid)
                continue
            # Re-check under the row lock with a fresh snapshot: another annotator may have
            # committed a lease or an answer since the statement above started.
            n = session.scalar(select(queue_entries.c.n_answers + _held_by_others(me, now))
                               .where(QUEUE_ID == pid))
            if n >= overlap:
                skip.append(pid)
                continue
        question = _question(session, pid, expires)
        if question is None:  # in archived trees only (its rank not refreshed yet): not worth asking
            skip.append(pid)
            continue
        session.add(Lease(proposition_id=pid, annotator_id=me, created_at=now, expires_at=expires))
        session.flush()
        return question
    return None


def _gold_question(session: Session, me: int, rate: float, expires: datetime, allowed=None) -> Question | None:
    """With probability ``rate`` (a reproducible draw from the annotator and how many answers they have
    given), a gold proposition they have not answered, as an ordinary question (nothing says it is gold;
    overlap does not apply: gold is there to score everyone)."""
    import hashlib

    from .models import GoldAnswer

    if rate <= 0.0 or session.scalar(select(GoldAnswer.proposition_id).limit(1)) is None:
        return None
    n = session.scalar(select(func.count()).select_from(Label).where(Label.annotator_id == me))
    draw = int.from_bytes(hashlib.sha256(f"gold:{me}:{n}".encode()).digest()[:8], "big") / 2.0 ** 64
    if draw >= rate:
        return None
    q = (select(GoldAnswer.proposition_id).where(~exists().where(Label.proposition_id == GoldAnswer.proposition_id,
                                                                 Label.annotator_id == me,
                                                                 Label.retracted_at.is_(None)))
         .order_by(GoldAnswer.proposition_id))
    if allowed is not None:  # only gold in trees this annotator may answer
        q = q.where(GoldAnswer.proposition_id.in_(select(QUEUE_ID).where(allowed)))
    ids = list(session.scalars(q))
    if not ids:
        return None
    start = int(draw / rate * len(ids)) % len(ids)
    for pid in ids[start:] + ids[:start]:
        question = _question(session, pid, expires)
        if question is not None:
            return question
    return None


def _question(session: Session, pid: int, expires: datetime) -> Question | None:
    """The question about proposition ``pid`` as shown in its live tree where it matters most (priority x
    VoI); None when it is in no live tree.  Archived trees (versions a re-expansion replaced) are never
    the context: their VoI and root-if numbers are stale, and they do not count towards the forest VoI."""
    occ = session.execute(
        select(Node.id, Node.tree_id, Tree.priority * Node.voi, Tree.question, Tree.root_belief, propositions.c.text)
        .join(Tree, Tree.id == Node.tree_id).join(propositions, propositions.c.id == Node.proposition_id)
        .where(Node.proposition_id == pid, Tree.status != "archived")
        .order_by((Tree.priority * Node.voi).desc(), Node.id)).all()
    if not occ:
        return None
    node_id, tree_id, _, question, root_belief, text = occ[0]
    # The chain up to the root in one recursive query.
    up = (select(Node.id, Node.parent_id, literal(0).label("step")).where(Node.id == node_id)
          .cte("up", recursive=True))
    up = up.union_all(select(Node.id, Node.parent_id, (up.c.step + 1).label("step"))
                      .join(up, Node.id == up.c.parent_id))
    rows = session.execute(
        select(Node, propositions.c.text).join(up, up.c.id == Node.id)
        .join(propositions, propositions.c.id == Node.proposition_id).order_by(up.c.step)).all()
    chain = []
    for n, t in rows:
        chain.append(ChainLink(n.id, n.local_id, t, n.belief, stance(n.parent_id, n.p_if_true, n.p_if_false)))
    node = rows[0][0]
    return Question(
        # forest_voi: compute.forest_voi_sum's sum, over the occurrences read here
        proposition_id=pid, text=text, forest_voi=sum(o[2] for o in occ), tree_id=tree_id, node_id=node_id,
        question=question, chain=tuple(chain), voi=node.voi, belief=node.belief,
        model_credence=node.model_credence, rationale=node.rationale, model_output=node.model_output,
        root_belief=root_belief, root_if_true=node.root_if_true, root_if_false=node.root_if_false,
        tree_ids=tuple(sorted({o[1] for o in occ})), node_ids=tuple(o[0] for o in occ),
        lease_expires_at=expires)


def release_lease(session: Session, annotator_id: int) -> None:
    """Give back whatever this annotator holds (logging out, closing the tab)."""
    session.execute(delete(Lease).where(Lease.annotator_id == _int(annotator_id, "annotator_id")))


# -- answering ------------------------------------------------------------

def _check_label(value, probability, dont_know, ill_posed, rewrite, comment, seconds, request_id):
    if value is not None and not isinstance(value, bool):
        raise StoreError(f"must be true, false or None, got {value!r}", "value")
    if probability is not None:
        if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
                or not math.isfinite(probability) or not 0.0 <= probability <= 1.0:
            raise StoreError(f"must be a probability in [0, 1], got {probability!r}", "probability")
        probability = float(probability)
    for name, flag in (("dont_know", dont_know), ("ill_posed", ill_posed)):
        if not isinstance(flag, bool):
            raise StoreError(f"must be true or false, got {flag!r}", name)
    kinds = (value is not None) + (probability is not None) + dont_know + ill_posed
    if kinds != 1:
        raise StoreError("give exactly one answer: value, probability, dont_know or ill_posed"
                         f" (got {kinds})", "value")
    rewrite = check_text(rewrite, "rewrite", optional=True)
    if rewrite is not None and not ill_posed:
        raise StoreError("a rewrite goes with ill_posed=True", "rewrite")
    comment = check_text(comment, "comment", optional=True)
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                or not 0 <= seconds <= 1e7:
            raise StoreError(f"must be a number of seconds >= 0, got {seconds!r}", "seconds")
        seconds = float(seconds)
    if request_id is None:
        request_id = uuid.uuid4().hex
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 128:
        raise StoreError(f"must be text of 1 to 128 characters, got {request_id!r:.60}", "request_id")
    return probability, rewrite, comment, seconds, request_id


def _informative(label: Label | None) -> bool:
    return label is not None and (label.value is not None or label.probability is not None)


def submit_label(session: Session, annotator_id: int, proposition_id: int, value: bool | None = None, *,
                 probability: float | None = None, dont_know: bool = False, ill_posed: bool = False,
                 rewrite: str | None = None, comment: str | None = None, seconds: float | None = None,
                 request_id: str | None = None) -> Label:
    """Store one answer and update every tree containing the proposition; return the label.

    Exactly one of ``value`` (True/False), ``probability``, ``dont_know`` or
    ``ill_posed`` (optionally with a ``rewrite``: a new proposition that replaces this one in every live
    tree that holds it, ``coauthor.apply_rewrite``).
    Resubmitting with the same ``request_id`` returns the stored label and
    changes nothing.  A new answer by the same person to the same proposition
    retracts their previous one.  Bad input raises StoreError before any write.
    """
    probability, rewrite, comment, seconds, request_id = _check_label(
        value, probability, dont_know, ill_posed, rewrite, comment, seconds, request_id)
    me = _annotator(session, annotator_id).id
    pid = _int(proposition_id, "proposition_id")
    # Lock order everywhere: the reliability lock (shared), trees (by id), then propositions (by id).
    if rewrite:
        # issue 13: a rewrite also recounts its new proposition, so the trees already holding that are
        # locked with the others, up front (coauthor.lock_scope; never a tree after a proposition).
        from .coauthor import lock_scope, text_proposition, trees_holding

        lock_scope(session, lambda: trees_holding(session, [pid, text_proposition(session, rewrite)]))
        tree_ids = trees_holding(session, [pid])   # as committed now, under the locks
    else:
        # Its trees by id; on PostgreSQL, read again under the locks: a tree the proposition joined while
        # this waited is taken with the others, in order, never after them (coauthor.lock_scope).
        from .coauthor import lock_scope, trees_holding

        tree_ids = lock_scope(session, lambda: trees_holding(session, [pid]))
    if not tree_ids and session.get(Proposition, pid) is None:   # only locks were taken: nothing is written
        raise NotFound(f"no proposition with id {pid}", "proposition_id")
    lock_proposition(session, pid)
    # This request's label if it was stored already, and this person's live answer to the proposition.
    mine = session.scalars(select(Label).where(
        Label.annotator_id == me,
        (Label.request_id == request_id) | ((Label.proposition_id == pid) & Label.retracted_at.is_(None)
                                            & Label.reliability.is_(None)))).all()
    done = next((lab for lab in mine if lab.request_id == request_id), None)
    if done is not None:
        if done.proposition_id != pid:
            raise StoreError(f"request id {request_id!r} was already used for proposition {done.proposition_id}",
                             "request_id")
        return done
    now = utcnow()
    previous = mine[0] if mine else None
    if previous is not None:
        previous.retracted_at = now
        session.flush()
    rewrite_pid = upsert_propositions(session, [rewrite])[rewrite] if rewrite else None
    label = Label(proposition_id=pid, annotator_id=me, request_id=request_id, value=value, probability=probability,
                  dont_know=dont_know, ill_posed=ill_posed, rewrite=rewrite, rewrite_proposition_id=rewrite_pid,
                  comment=comment, seconds=seconds, created_at=now, extra={})
    session.add(label)
    session.execute(delete(Lease).where(Lease.annotator_id == me, Lease.proposition_id == pid))
    session.flush()
    settings = queue_settings(session)
    overlap = int(settings["queue.overlap"])
    deltas = {}
    if _informative(label) or _informative(previous):
        deltas = recompute_trees(session, tree_ids, cause="label", label_id=label.id, metric=settings["queue.metric"])
    refresh_propositions(session, {pid}, overlap=overlap, locked=True)  # its answer count changed: recount it
    skip = {pid}
    if rewrite_pid is not None and rewrite_pid != pid:  # issue 13: the rewrite replaces the node in its trees
        from .coauthor import apply_rewrite

        apply_rewrite(session, label, deltas=deltas)  # its VoI changes join this answer's: one round of locks
        skip.add(rewrite_pid)
    apply_forest_deltas(session, deltas, overlap, skip=skip)
    return label


def undo_last_label(session: Session, annotator_id: int) -> Label | None:
    """Retract this annotator's latest live answer and hand the question back to them (leased)."""
    me = _annotator(session, annotator_id).id
    last = session.scalar(select(Label).where(Label.annotator_id == me, Label.retracted_at.is_(None))
                          .order_by(Label.id.desc()).limit(1))
    if last is None:
        return None
    tree_ids = set(session.scalars(select(Node.tree_id).where(Node.proposition_id == last.proposition_id)
                                   .distinct()))
    if last.rewrite_proposition_id is not None:  # issue 13: its rewrite's trees get the old text back
        from .coauthor import lock_scope, revert_rewrite, rewrite_trees, trees_holding

        # Every tree holding the old or the new text is locked up front (both are recounted whole).
        tree_ids |= rewrite_trees(session, last.id)
        lock_scope(session, lambda: tree_ids | rewrite_trees(session, last.id)
                   | trees_holding(session, [last.proposition_id, last.rewrite_proposition_id]))
    else:
        from .coauthor import lock_scope, trees_holding

        tree_ids = lock_scope(session, lambda: tree_ids | trees_holding(session, [last.proposition_id]))
    lock_proposition(session, last.proposition_id)
    if _pg(session):
        session.refresh(last)
        if last.retracted_at is not None:  # a concurrent undo got there first
            return last
    now = utcnow()
    last.retracted_at = now
    session.flush()
    deltas: dict[int, float] = {}
    skip = {last.proposition_id}
    if last.rewrite_proposition_id is not None:
        revert_rewrite(session, last, deltas=deltas)   # its VoI changes join the undo's: one round of locks
        skip.add(last.rewrite_proposition_id)
    if _informative(last):
        for p, d in recompute_trees(session, tree_ids, cause="undo", label_id=last.id).items():
            deltas[p] = deltas.get(p, 0.0) + d
    refresh_propositions(session, {last.proposition_id})
    apply_forest_deltas(session, deltas, skip=skip)
    seconds = float(queue_settings(session)["queue.lease_seconds"])
    session.execute(delete(Lease).where(Lease.annotator_id == me))
    session.add(Lease(proposition_id=last.proposition_id, annotator_id=me, created_at=now,
                      expires_at=now + timedelta(seconds=seconds)))
    session.flush()
    return last


# -- history and stats ----------------------------------------------------

def root_history(session: Session, tree_id: int) -> list[RootPoint]:
    """How the tree's root belief moved: one point per change, oldest first."""
    from .trees import get_tree

    get_tree(session, tree_id)
    rows = session.execute(
        select(RootBelief, Label, Annotator.name)
        .outerjoin(Label, Label.id == RootBelief.label_id).outerjoin(Annotator, Annotator.id == Label.annotator_id)
        .where(RootBelief.tree_id == tree_id).order_by(RootBelief.id))
    return [RootPoint(rb.created_at, rb.belief, rb.cause, rb.label_id, name,
                      label.proposition_id if label is not None else None,
                      label.kind if label is not None else None, rb.labels_only, rb.direct)
            for rb, label, name in rows]


def labels_for(session: Session, *, proposition_id: int | None = None, annotator_id: int | None = None,
               include_retracted: bool = False, limit: int | None = None) -> list[Label]:
    """Labels, newest first, filtered by proposition and/or annotator."""
    q = select(Label)
    if proposition_id is not None:
        q = q.where(Label.proposition_id == _int(proposition_id, "proposition_id"))
    if annotator_id is not None:
        q = q.where(Label.annotator_id == _int(annotator_id, "annotator_id"))
    if not include_retracted:
        q = q.where(Label.retracted_at.is_(None))
    q = q.order_by(Label.id.desc())
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))


def annotator_stats(session: Session, annotator_id: int, *, since: datetime | None = None,
                    remaining_limit: int = 1000) -> AnnotatorStats:
    """Answers today (since UTC midnight, or ``since``), in all, and what is left for them (counted up to
    ``remaining_limit``: an exact count over a million open questions would cost a scan per page view;
    a proposition whose VoI fell to exactly 0 counts until the queue reads its row)."""
    me = _annotator(session, annotator_id).id
    if since is None:
        since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    live = (Label.annotator_id == me, Label.retracted_at.is_(None))
    today, secs = session.execute(select(func.count(), func.coalesce(func.sum(Label.seconds), 0.0))
                                  .where(*live, Label.created_at >= since)).one()
    total = session.scalar(select(func.count()).where(*live))
    open_ = (select(QUEUE_ID).where(ranked_open(), ~_live_label_by(me))
             .limit(remaining_limit).subquery())
    remaining = int(session.scalar(select(func.count()).select_from(open_)))
    return AnnotatorStats(int(today), int(total), remaining, float(secs), remaining >= remaining_limit)


