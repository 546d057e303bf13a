"""Annotator accounts: names, roles, argon2id password hashes, reliability."""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import NotFound, StoreError
from .models import Annotator

__all__ = ["add_annotator", "get_annotator", "list_annotators", "verify_password", "match_password",
           "set_password", "set_annotator", "MIN_PASSWORD"]

MIN_PASSWORD = 8
_NAME = re.compile(r"^[\w.@+-]{1,64}$")


HASHER = None  # argon2 PasswordHasher with the library's defaults (RFC 9106 low-memory profile)


def _hasher():
    global HASHER
    if HASHER is None:
        from argon2 import PasswordHasher

        HASHER = PasswordHasher()
    return HASHER


def _check_password(password: Any) -> str:
    if not isinstance(password, str):
        raise StoreError(f"must be text, got {type(password).__name__}", "password")
    if len(password) < MIN_PASSWORD:
        raise StoreError(f"must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > 1024:
        raise StoreError("must be at most 1024 characters", "password")
    return password


def _check_reliability(reliability: Any) -> float:
    if isinstance(reliability, bool) or not isinstance(reliability, (int, float)) or not math.isfinite(reliability) \
            or not 0.5 < reliability < 1.0:
        raise StoreError(f"must be a number in (0.5, 1), got {reliability!r}", "reliability")
    return float(reliability)


def add_annotator(session: Session, name: str, password: str, admin: bool = False, *,
                  reliability: float = 0.9) -> Annotator:
    """A new annotator (or admin).  Names: 1-64 letters, digits or ``._@+-``; passwords: 8+ characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"must be 1-64 letters, digits or ._@+- (no spaces), got {name!r:.80}", "name")
    password = _check_password(password)
    reliability = _check_reliability(reliability)
    if session.scalar(select(Annotator.id).where(Annotator.name == name)) is not None:
        raise StoreError(f"an annotator named {name!r} already exists", "name")
    row = Annotator(name=name, role="admin" if admin else "annotator", password_hash=_hasher().hash(password),
                    reliability=reliability)
    session.add(row)
    session.flush()
    return row


def get_annotator(session: Session, name_or_id: str | int) -> Annotator:
    if isinstance(name_or_id, str):
        row = session.scalar(select(Annotator).where(Annotator.name == name_or_id))
    elif isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        row = session.get(Annotator, name_or_id)
    else:
        raise StoreError(f"must be a name or an id, got {name_or_id!r}", "annotator")
    if row is None:
        raise NotFound(f"no annotator {name_or_id!r}", "annotator")
    return row


def list_annotators(session: Session, *, include_system: bool = False) -> list[Annotator]:
    q = select(Annotator).order_by(Annotator.name)
    if not include_system:
        q = q.where(Annotator.role != "system")
    return list(session.scalars(q))


_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$"
               "0sF4S1Q0uAnw2lqD4cVnCmU2fjXpBVVvKG0zOgN6rYM")


def match_password(session: Session, name: str, password: str) -> tuple[Annotator | None, bool]:
    """(the person account named ``name`` or None, whether ``password`` is its password), active or not.

    Exactly one argon2 verification whatever the case (a missing account is checked against a dummy
    hash), so timing does not reveal which names exist or are deactivated."""
    from argon2.exceptions import InvalidHashError, VerificationError

    if not isinstance(name, str) or not isinstance(password, str):
        return None, False
    row = session.scalar(select(Annotator).where(Annotator.name == name, Annotator.role != "system"))
    hasher = _hasher()
    real = row is not None and bool(row.password_hash)
    try:
        hasher.verify(row.password_hash if real else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return row, False
    if not real:  # pragma: no cover - the dummy hash matches no password anyone types
        return row, False
    if row.active and hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hasher.hash(password)
        session.flush()
    return row, True


def verify_password(session: Session, name: str, password: str) -> Annotator | None:
    """The active annotator if the password is right, else None (the same for a missing account)."""
    row, ok = match_password(session, name, password)
    return row if ok and row is not None and row.active else None


def set_password(session: Session, name_or_id: str | int, password: str) -> None:
    """Set a new password; every web session of the account ends (``sessions.revoke_sessions``)."""
    from .sessions import revoke_sessions

    row = get_annotator(session, name_or_id)
    row.password_hash = _hasher().hash(_check_password(password))
    revoke_sessions(session, row.id, "password")
    session.flush()


def set_annotator(session: Session, name_or_id: str | int, *, admin: bool | None = None,
                  active: bool | None = None, reliability: float | None = None) -> Annotator:
    """Change role, activity or reliability (labels already given are re-weighted on the next recompute).

    Deactivating ends every web session of the account."""
    row = get_annotator(session, name_or_id)
    if row.role == "system":
        raise StoreError("system annotators cannot be changed", "annotator")
    if admin is not None:
        row.role = "admin" if admin else "annotator"
    if active is not None:
        row.active = bool(active)
        if not row.active:
            from .sessions import revoke_sessions

            revoke_sessions(session, row.id, "deactivated")
    if reliability is not None:
        row.reliability = _check_reliability(reliability)
    session.flush()
    return row
