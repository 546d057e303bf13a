"""Users & runs (admin): accounts, roles, activity; the autonomous loop's runs."""

from __future__ import annotations

import streamlit as st

from oracle_ui import data, render
from oracle_ui.views import assignment


def page() -> None:
    me = st.session_state["account"]
    token = st.session_state["token"]
    st.title("Users & runs")
    users = data.users(token)
    st.dataframe(render.rows(users), hide_index=True)

    with st.form("add_user", clear_on_submit=True):
        st.markdown("**Add an account**")
        c = st.columns(3)
        name = c[0].text_input("Name")
        password = c[1].text_input("Password (8+ characters)", type="password")
        admin = c[2].checkbox("Admin")
        if st.form_submit_button("Add"):
            try:
                data.add_user(token, name, password, admin)
                st.success(f"Added {name}.")
            except data.SessionEnded:
                raise  # main.py says the session ended
            except ValueError as err:
                st.error(str(err))

    others = [u["name"] for u in users if u["name"] != me.name]
    if others:
        st.markdown("**Change an account**")
        c = st.columns(4)
        who = c[0].selectbox("Account", others, key="adm_who")
        row = next(u for u in users if u["name"] == who)
        if c[1].button("Deactivate" if row["active"] else "Reactivate", key="adm_active"):
            data.set_user(token, who, active=not row["active"])
            st.rerun()
        if c[2].button("Make annotator" if row["role"] == "admin" else "Make admin", key="adm_role"):
            data.set_user(token, who, admin=row["role"] != "admin")
            st.rerun()
        if c[3].button("End their sessions", key="adm_logout", help="Log this account out everywhere."):
            n = data.end_sessions(token, who)
            st.success(f"Ended {n} session(s) of {who}.")

    assignment.section(token, [u["name"] for u in users if u["active"]])   # issue 13

    st.subheader("Loop runs")
    runs = data.runs(token)
    if runs:
        st.dataframe(runs, hide_index=True)
    else:
        st.caption("No runs of `argtree loop` yet.")
