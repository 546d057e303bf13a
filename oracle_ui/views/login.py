"""The login form: the only page anyone sees before logging in."""

from __future__ import annotations

import streamlit as st

from oracle_ui import auth, data


def page() -> None:
    st.title("argtree oracle")
    notice = st.session_state.get("login_notice")
    if notice:
        st.warning(notice)
    with st.form("login"):
        name = st.text_input("Name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    try:
        acct = data.login(name, password)
    except data.LoginError as err:
        st.error(str(err))
        return
    except data.Unavailable as err:
        st.error(f"The database is not available, so nobody can log in right now.\n\n{err}")
        return
    token = auth.make_token(acct.id, acct.fingerprint)
    st.session_state["token"] = token
    st.session_state["account"] = acct
    st.query_params[auth.PARAM] = token
    st.rerun()
