"""The browser side of web sessions: one HttpOnly cookie, read by the app on every run.

The cookie holds a random token of a server-side session (``argtree.store.sessions``); only its
SHA-256 is in the database.  It is set by the login route (``oracle_ui.web``, a plain HTTP POST,
so the password and the token never travel in a URL) with ``HttpOnly`` (page scripts cannot read
it), ``SameSite=Strict`` (other sites cannot send it) and ``Secure`` when the app is served over
HTTPS (``ARGTREE_UI_SECURE_COOKIE=1``, or a request that arrived over https).  The session ends at
logout, a password change or deactivation, whatever the cookie says.
"""

from __future__ import annotations

import os

COOKIE = "argtree_session"
LOGIN_PATH = "/auth/login"


def browser_token() -> str | None:
    """The session token this tab was opened with (from the cookies of its websocket's request)."""
    import streamlit as st

    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser behind this run (bare mode): no session
        return None
    return value or None


def secure_cookie(scheme: str = "http") -> bool:
    return scheme == "https" or os.environ.get("ARGTREE_UI_SECURE_COOKIE", "") not in ("", "0", "false", "no")


def login_url(why: str | None = None, next_path: str | None = None) -> str:
    from urllib.parse import urlencode

    query = {k: v for k, v in (("why", why), ("next", next_path)) if v}
    return LOGIN_PATH + (f"?{urlencode(query)}" if query else "")
