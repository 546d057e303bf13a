"""Oracles' answers as labels: the storage half of ``argtree.oracle`` (its SQL lives here)."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Annotator
from .queue import submit_label

__all__ = ["record_answers", "oracle_annotator", "reestimate_after_commit"]


def record_answers(session: Session, oracle: Any, queries: Sequence[Any], answers: Sequence[Any]) -> int:
    """Store an oracle's answers (``argtree.oracle.Answer`` or None) to ``queries`` as labels of its annotator;
    returns how many were stored.

    Idempotent: the request id is (oracle, proposition), so replaying after a crash stores nothing twice.
    """
    if not any(a is not None for a in answers):
        return 0
    aid = oracle_annotator(session, oracle.name, oracle.reliability)
    n = 0
    for q, a in zip(queries, answers):
        if a is None or q.proposition_id is None:
            continue
        submit_label(session, aid, q.proposition_id, a.value, probability=a.probability, comment=a.comment,
                     request_id=f"{oracle.name}:{q.proposition_id}")
        n += 1
    if n:
        reestimate_after_commit(session)
    return n


def reestimate_after_commit(session: Session) -> None:
    """Once the caller's transaction commits, re-estimate the reliabilities if enough labels came in
    (``reliability.reestimate_if_due``), in a transaction of its own, as the web app does after a person's
    answer (issue 13: the loop's oracles are annotators estimated like any other, and their labels move
    the estimates, and so the beliefs, the same way).  The labels are saved whatever happens there."""
    from sqlalchemy import event

    session.info["reestimate_pending"] = True
    if session.info.get("reestimate_hooked"):
        return
    session.info["reestimate_hooked"] = True
    bind = session.get_bind()

    def run(_session) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from .errors import StoreError
        from .reliability import reestimate_if_due

        if not session.info.pop("reestimate_pending", False):
            return
        try:
            with Session(bind=bind, expire_on_commit=False) as s, s.begin():
                reestimate_if_due(s)
        except (StoreError, SQLAlchemyError):
            pass  # e.g. two re-estimations at once on the setting's row: the next batch of labels retries

    def drop(_session) -> None:
        session.info.pop("reestimate_pending", None)

    event.listen(session, "after_commit", run)
    event.listen(session, "after_rollback", drop)


def oracle_annotator(session: Session, name: str, reliability: float) -> int:
    """Id of the oracle's system annotator, created with the oracle's reliability on first use.

    Safe when several loop workers answer their first queries at once: the one whose insert loses the
    race (unique name) rolls back to a savepoint and reads the winner's row."""
    query = select(Annotator.id).where(Annotator.name == name)
    aid = session.scalar(query)
    if aid is None:
        row = Annotator(name=name, role="system", password_hash=None, reliability=float(reliability))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            aid = row.id
        except IntegrityError:
            aid = session.scalar(query)
            if aid is None:
                raise
    return aid
