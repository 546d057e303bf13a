"""Signed session tokens, so a login survives a page reload.

The token rides in the page URL (``?s=...``): ``<annotator id>.<expiry>.<HMAC>``,
signed with a server secret and the account's password-hash fingerprint, so a
new password or a deactivated account ends every old session.  The secret is
``ARGTREE_UI_SECRET`` or a random one kept in ``ARGTREE_HOME/ui_secret``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

PARAM = "s"
DEFAULT_HOURS = 12.0


class Expired(ValueError):
    """A token that was valid once: the session ran out (or its account changed)."""


def _secret() -> bytes:
    env = os.environ.get("ARGTREE_UI_SECRET")
    if env:
        return env.encode()
    from argtree.store.db import data_home

    path = Path(data_home()) / "ui_secret"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
        return value
    except FileExistsError:  # pragma: no cover - two first starts at once
        return path.read_bytes().strip()


def lifetime_seconds() -> float:
    try:
        hours = float(os.environ.get("ARGTREE_UI_SESSION_HOURS", DEFAULT_HOURS))
    except ValueError:
        hours = DEFAULT_HOURS
    return max(hours, 0.0) * 3600


def _sign(annotator_id: int, expires: int, fingerprint: str) -> str:
    msg = f"{annotator_id}.{expires}.{fingerprint}".encode()
    return hmac.new(_secret(), msg, hashlib.sha256).hexdigest()[:32]


def make_token(annotator_id: int, fingerprint: str, *, now: float | None = None,
               seconds: float | None = None) -> str:
    now = time.time() if now is None else now
    expires = int(now + (lifetime_seconds() if seconds is None else seconds))
    return f"{annotator_id}.{expires}.{_sign(annotator_id, expires, fingerprint)}"


def parse(token: str) -> tuple[int, int, str] | None:
    """(annotator id, expiry, signature) of a well-formed token, else None."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), parts[2]


def check(token: str, fingerprint_of) -> int | None:
    """The annotator id a token stands for; None for garbage; ``Expired`` for a lapsed or stale one.

    ``fingerprint_of(annotator_id)`` gives the account's current fingerprint (None if it is gone).
    """
    parsed = parse(token)
    if parsed is None:
        return None
    aid, expires, sig = parsed
    fingerprint = fingerprint_of(aid)
    if fingerprint is None:
        raise Expired("this account no longer exists or was deactivated")
    if not hmac.compare_digest(sig, _sign(aid, expires, fingerprint)):
        raise Expired("this session is no longer valid (the password changed or the server secret did)")
    if expires < time.time():
        raise Expired("your session expired")
    return aid
