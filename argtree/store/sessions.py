"""Web-app logins: server-side sessions and stored login throttling.

A session is a random token (in the browser's HttpOnly cookie; only its SHA-256 is stored) tied
to an annotator.  It ends at logout, when the password changes, when the account is deactivated,
or when it expires; every write of the web app checks it in the write's own transaction
(``check_session(..., for_write=True)`` locks the row, so a revocation that commits first wins).

Login attempts are limited per account name (the name typed, whether or not it exists, so the
limit says nothing about which names exist) and per client address, in the database, so a
restart does not reset them.  ``THROTTLE.free`` failures are free (``client_free`` per client); each further one sets a delay
that doubles (``not_before``); an attempt before ``not_before`` is refused without checking the
password and counts as a failure too, so rapid guessing reaches ``lock_after`` failures and
locks the name (or the client) until ``locked_until``.  A successful login clears its name's row.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import StoreError
from .models import Annotator, LoginThrottle, WebSession, utcnow

__all__ = ["SessionEnded", "LoginResult", "ThrottlePolicy", "THROTTLE", "BAD_LOGIN", "attempt_login",
           "create_session", "check_session", "revoke_session", "revoke_sessions", "login_state", "session_hours",
           "DEFAULT_HOURS"]

DEFAULT_HOURS = 12.0
BAD_LOGIN = "Wrong name or password."   # one message for an unknown name and a wrong password
WHY = {
    "logout": "You logged out of this session.",
    "password": "The password of this account was changed, so this session ended.",
    "deactivated": "This account was deactivated, so this session ended; ask an admin.",
    "admin": "An admin ended this session.",
    "expired": "This session expired.",
    "unknown": "This browser holds no valid session.",
}


class SessionEnded(StoreError):
    """The session is over (``why``: a key of ``WHY``); nothing was read or written for it."""

    def __init__(self, why: str):
        self.why = why
        super().__init__(WHY.get(why, WHY["unknown"]))


@dataclass(frozen=True)
class ThrottlePolicy:
    free: int = 3                  # failures (per name / per client) before attempts are slowed
    base_delay: float = 1.0        # seconds after failure free+1; doubling after each further one
    max_delay: float = 60.0
    client_free: int = 10          # the same for one client address (people behind one NAT share it)
    lock_after: int = 10           # failures of one name that lock it ...
    client_lock_after: int = 30    # ... and of one client address
    lock_seconds: float = 900.0
    window_seconds: float = 900.0  # failures older than this (and no lock) are forgotten

    def delay(self, failures: int, free: int | None = None) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (0 while still free)."""
        free = self.free if free is None else free
        if failures <= free:
            return 0.0
        return min(self.base_delay * 2.0 ** (failures - free - 1), self.max_delay)


THROTTLE = ThrottlePolicy()


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    message: str = ""                    # safe to show (never says whether a name exists)
    token: Optional[str] = None          # the new session's token (for the cookie) when ok
    annotator_id: Optional[int] = None
    name: Optional[str] = None
    retry_after: Optional[float] = None  # seconds until the next attempt is allowed
    locked: bool = False


def session_hours() -> float:
    import os

    try:
        hours = float(os.environ.get("ARGTREE_UI_SESSION_HOURS", DEFAULT_HOURS))
    except ValueError:
        hours = DEFAULT_HOURS
    return hours if math.isfinite(hours) and hours > 0 else DEFAULT_HOURS


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _keys(name: str, client: str | None) -> list[tuple[str, str]]:
    keys = [("account", name.strip().casefold()[:128])]
    if client:
        keys.append(("client", str(client)[:128]))
    return keys


def _row(session: Session, kind: str, key: str, now: datetime) -> LoginThrottle:
    row = session.get(LoginThrottle, (kind, key), with_for_update=True, populate_existing=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():  # two first failures at once (PostgreSQL): the loser updates
            row = LoginThrottle(kind=kind, key=key, failures=0, last_failure_at=now)
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        return session.get(LoginThrottle, (kind, key), with_for_update=True, populate_existing=True)


def _fail(session: Session, kind: str, key: str, now: datetime, policy: ThrottlePolicy) -> LoginThrottle:
    row = _row(session, kind, key, now)
    idle = (now - row.last_failure_at).total_seconds()
    if row.failures and idle > policy.window_seconds and (row.locked_until is None or row.locked_until <= now):
        row.failures, row.not_before, row.locked_until = 0, None, None
    row.failures += 1
    row.last_failure_at = now
    limit = policy.lock_after if kind == "account" else policy.client_lock_after
    if row.failures >= limit:
        row.locked_until = max(row.locked_until or now, now + timedelta(seconds=policy.lock_seconds))
        row.not_before = row.locked_until
    else:
        wait = policy.delay(row.failures, policy.free if kind == "account" else policy.client_free)
        row.not_before = now + timedelta(seconds=wait) if wait else None
    session.flush()
    return row


def _blocked(rows: list[LoginThrottle], now: datetime) -> tuple[bool, float] | None:
    """(locked, seconds left) when any row forbids an attempt now, else None."""
    worst = None
    for r in rows:
        if r.locked_until is not None and r.locked_until > now:
            left = (r.locked_until - now).total_seconds()
            if worst is None or not worst[0] or left > worst[1]:
                worst = (True, left)
        elif r.not_before is not None and r.not_before > now and (worst is None or not worst[0]):
            worst = (False, max(worst[1] if worst else 0.0, (r.not_before - now).total_seconds()))
    return worst


def _wait_text(seconds: float) -> str:
    s = max(1, math.ceil(seconds))
    return "1 second" if s == 1 else f"{s} seconds" if s < 120 else f"{math.ceil(s / 60)} minutes"


def login_state(session: Session, name: str, client: str | None = None) -> dict[str, LoginThrottle | None]:
    """The stored throttle rows for this name and client (for admins and tests)."""
    return {kind: session.get(LoginThrottle, (kind, key)) for kind, key in _keys(name, client)}


def attempt_login(session: Session, name: str, password: str, *, client: str | None = None,
                  hours: float | None = None, now: datetime | None = None,
                  policy: ThrottlePolicy = THROTTLE) -> LoginResult:
    """One login attempt: a new session on success; otherwise what to tell the person.

    Returns (never raises for a failed attempt) so that the caller's transaction commits the
    recorded failure.  ``client`` is the address the attempt came from (None: not limited per client).
    """
    from .accounts import match_password

    now = now or utcnow()
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip() or not password:
        return LoginResult(False, "Enter your name and password.")
    name = name.strip()
    keys = _keys(name, client)
    _prune(session, now, policy)
    rows = [r for kind, key in keys
            if (r := session.get(LoginThrottle, (kind, key), with_for_update=True, populate_existing=True))]
    blocked = _blocked(rows, now)
    if blocked is not None:  # refused unchecked; the attempt still counts (on rows already there: a locked
        rows = [_fail(session, r.kind, r.key, now, policy) for r in rows]  # client adds no rows for new names)
        locked, left = _blocked(rows, now) or blocked
        return LoginResult(False, _refusal(locked, left), retry_after=left, locked=locked)
    row, ok = match_password(session, name, password)
    if ok and row.active:
        session.execute(delete(LoginThrottle).where(LoginThrottle.kind == "account",
                                                    LoginThrottle.key == keys[0][1]))
        token = create_session(session, row.id, client=client, hours=hours, now=now)
        return LoginResult(True, token=token, annotator_id=row.id, name=row.name)
    if ok:  # the right password of a deactivated account: say so (it reveals nothing new)
        return LoginResult(False, "This account is deactivated; ask an admin.")
    rows = [_fail(session, kind, key, now, policy) for kind, key in keys]
    blocked = _blocked(rows, now)
    if blocked is None:
        return LoginResult(False, BAD_LOGIN)
    locked, left = blocked
    return LoginResult(False, f"{BAD_LOGIN} {_refusal(locked, left)}", retry_after=left, locked=locked)


def create_session(session: Session, annotator_id: int, *, client: str | None = None, hours: float | None = None,
                   now: datetime | None = None) -> str:
    """A new session for an annotator (``attempt_login`` calls it after checking the password); its token."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    span = timedelta(hours=hours if hours is not None else session_hours())
    session.add(WebSession(token_hash=_hash(token), annotator_id=annotator_id, client=(client or None) and client[:64],
                           created_at=now, last_seen_at=now, expires_at=now + span))
    session.flush()
    return token


def _refusal(locked: bool, left: float) -> str:
    if locked:
        return f"Too many failed attempts: logging in with this name or from here is locked for {_wait_text(left)}."
    return f"Too many failed attempts: wait {_wait_text(left)} before trying again."


def _prune(session: Session, now: datetime, policy: ThrottlePolicy) -> None:
    session.execute(delete(WebSession).where(WebSession.expires_at < now - timedelta(days=7)))
    stale = now - timedelta(seconds=policy.window_seconds)
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failure_at < stale,
        (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now)))


def check_session(session: Session, token: str | None, *, for_write: bool = False, admin: bool = False,
                  now: datetime | None = None) -> Annotator:
    """The active annotator this session belongs to, or ``SessionEnded`` saying why not.

    ``for_write``: lock the session row until the caller's transaction ends (call it first in
    every write), so a logout, password change or deactivation either commits before the write
    (which is then refused) or waits for it.  ``admin``: also require the admin role, read now.
    """
    now = now or utcnow()
    if not isinstance(token, str) or not token or len(token) > 256:
        raise SessionEnded("unknown")
    q = select(WebSession).where(WebSession.token_hash == _hash(token))
    if for_write:
        q = q.with_for_update()
    row = session.execute(q.execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        raise SessionEnded("unknown")
    if row.revoked_at is not None:
        raise SessionEnded(row.revoked_why or "logout")
    if row.expires_at <= now:
        raise SessionEnded("expired")
    acct = session.get(Annotator, row.annotator_id, populate_existing=True)
    if acct is None or not acct.active or acct.role == "system":
        raise SessionEnded("deactivated")
    if admin and acct.role != "admin":
        raise StoreError("this needs an admin account", "session")
    if for_write:
        row.last_seen_at = now
        session.flush()
    return acct


def revoke_session(session: Session, token: str | None, why: str = "logout", *, now: datetime | None = None) -> bool:
    """End one session (logout); True if it was live."""
    if not isinstance(token, str) or not token:
        return False
    res = session.execute(update(WebSession).where(WebSession.token_hash == _hash(token),
                                                   WebSession.revoked_at.is_(None))
                          .values(revoked_at=now or utcnow(), revoked_why=why))
    return bool(res.rowcount)


def revoke_sessions(session: Session, annotator_id: int, why: str, *, now: datetime | None = None) -> int:
    """End every live session of an annotator (password change, deactivation); how many there were."""
    res = session.execute(update(WebSession).where(WebSession.annotator_id == annotator_id,
                                                   WebSession.revoked_at.is_(None))
                          .values(revoked_at=now or utcnow(), revoked_why=why))
    return int(res.rowcount or 0)
