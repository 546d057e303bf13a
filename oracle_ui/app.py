"""Entry point of the oracle's web app: ``argtree ui`` runs ``streamlit run`` on this file.

Every run: find who is logged in (signed token in the URL), then show either
the login form (and nothing else) or the pages their role allows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts only this folder on sys.path; the package lives one level up.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from oracle_ui import auth, data  # noqa: E402

st.set_page_config(page_title="argtree oracle", page_icon=":material/balance:", layout="wide")


def _fingerprint(annotator_id: int) -> str | None:
    acct = data.account(annotator_id)
    return None if acct is None else acct.fingerprint


def resolve_session() -> tuple[data.Account | None, str | None]:
    """(the logged-in account or None, a notice for the login page)."""
    token = st.query_params.get(auth.PARAM) or st.session_state.get("token")
    if not token:
        return None, None
    try:
        aid = auth.check(token, _fingerprint)
    except auth.Expired as err:
        _forget()
        return None, f"{str(err)[:1].upper()}{str(err)[1:]}; please log in again."
    if aid is None:
        _forget()
        return None, "That link holds no valid session; please log in."
    acct = data.account(aid)
    if acct is None:  # pragma: no cover - deactivated between the two reads
        _forget()
        return None, "This account was deactivated; ask an admin."
    st.session_state["token"] = token
    st.session_state["account"] = acct
    if st.query_params.get(auth.PARAM) != token:
        st.query_params[auth.PARAM] = token  # page switches drop query params; keep the session in the URL
    return acct, None


def _forget() -> None:
    st.session_state.pop("token", None)
    st.session_state.pop("account", None)
    if auth.PARAM in st.query_params:
        del st.query_params[auth.PARAM]


def logout() -> None:
    acct = st.session_state.get("account")
    if acct is not None:
        try:
            data.release(acct.id)
        except data.Unavailable:
            pass
    _forget()
    st.session_state["notice"] = "You are logged out."


def main() -> None:
    try:
        acct, notice = resolve_session()
    except data.Unavailable as err:
        st.title("argtree oracle")
        st.error(f"The database is not available, so nothing can be shown or saved right now.\n\n{err}")
        st.caption("Try again once it is back; answers already given are safe.")
        return
    if acct is None:
        nav = st.navigation([st.Page("screens/login.py", title="Log in", url_path="login", default=True)],
                            position="hidden")
        st.session_state["login_notice"] = notice or st.session_state.pop("notice", None)
        nav.run()
        return
    pages = [st.Page("screens/answer.py", title="Answer", icon=":material/task_alt:", url_path="answer", default=True),
             st.Page("screens/trees.py", title="Trees", icon=":material/account_tree:", url_path="trees")]
    if acct.is_admin:
        pages += [st.Page("screens/agreement.py", title="Agreement", icon=":material/handshake:", url_path="agreement"),
                  st.Page("screens/export.py", title="Export", icon=":material/download:", url_path="export"),
                  st.Page("screens/admin.py", title="Users & runs", icon=":material/manage_accounts:", url_path="admin")]
    nav = st.navigation(pages)
    with st.sidebar:
        st.text(f"{acct.name} ({acct.role})")
        st.button("Log out", on_click=logout, key="logout")
    from argtree.store import StoreError

    try:
        nav.run()
    except data.Unavailable as err:
        st.error(f"The database is not available right now; nothing was lost.\n\n{err}")
    except StoreError as err:  # e.g. a tree deleted while it was on screen: say so, then carry on
        st.warning(f"That is no longer there: {err}. Reload the page to carry on.")


main()
