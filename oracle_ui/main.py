"""The oracle's Streamlit pages (served by ``oracle_ui/app.py``, which adds the login routes).

Every run: find the session this tab was opened with (the HttpOnly cookie, checked against the
database), then show the pages its account's role allows, or, when the session has ended
(logout, a password change, deactivation, expiry), a clear line saying so and a link to log in.
Every write checks the session again in its own transaction (``oracle_ui.data``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts only this folder on sys.path; the package lives one level up.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from oracle_ui import auth, data, render  # noqa: E402

st.set_page_config(page_title="argtree oracle", page_icon=":material/balance:", layout="wide")


def logout() -> None:
    token = st.session_state.get("token")
    try:
        data.logout(token)
    except data.Unavailable:
        pass
    st.session_state["ended"] = "logout"


def ended_page(why: str | None, message: str | None = None) -> None:
    """What a tab without a live session shows: why, and the way back in; no other page is registered."""
    from oracle_ui.web import NOTICES

    def show() -> None:
        st.title("argtree oracle")
        text = message or NOTICES.get(why or "unknown", NOTICES["unknown"])
        (st.info if why in (None, "unknown", "logout") else st.warning)(text)
        render.link("Log in", auth.login_url(why if why in NOTICES else None), testid="login-link")

    st.navigation([st.Page(show, title="Log in", url_path="login", default=True)], position="hidden").run()


def main() -> None:
    ended = st.session_state.get("ended")
    token = auth.browser_token()
    if ended == "logout" or token is None:
        ended_page("logout" if ended == "logout" else None)
        return
    refused = st.session_state.pop("session_ended", None)  # a write this tab tried was refused
    if refused is not None:
        ended_page(refused.why, f"{refused} Your last answer or change was not saved.")
        return
    try:
        acct = data.account(token)
    except data.SessionEnded as err:
        ended_page(err.why, str(err))
        return
    except data.Unavailable as err:
        st.title("argtree oracle")
        st.error(f"The database is not available, so nothing can be shown or saved right now.\n\n{err}")
        st.caption("Try again once it is back; answers already given are safe.")
        return
    st.session_state["token"] = token
    st.session_state["account"] = acct
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
    except data.SessionEnded as err:  # ended while this tab was open: say so; nothing was saved
        st.error(f"{err} Nothing was saved.")
        render.link("Log in again", auth.login_url(err.why), testid="login-link")
    except data.Unavailable as err:
        st.error(f"The database is not available right now; nothing was lost.\n\n{err}")
    except StoreError as err:  # e.g. a tree deleted while it was on screen: say so, then carry on
        if err.field == "session":  # an admin action from an account that is no longer admin
            st.error(f"Not done: {err}. Reload the page.")
            return
        st.warning(f"That is no longer there: {err}. Reload the page to carry on.")


main()
