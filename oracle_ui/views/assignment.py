"""Who may answer which trees (issue 13), on the admin page: a tree with nobody assigned is open to
everyone; one with names is served by the queue only to them (``argtree.store.assignment``)."""

from __future__ import annotations

import streamlit as st

from oracle_ui import data, render


def _save(tree_id: int, key: str) -> None:
    ss = st.session_state
    try:
        names = data.set_assignment(ss["token"], tree_id, list(ss.get(key, [])))
        ss["assign_flash"] = (f"Tree #{tree_id}: " + (f"answered only by {', '.join(names)}." if names
                                                      else "open to everyone."), False)
    except data.SessionEnded as err:
        ss["session_ended"] = err
    except data.Unavailable as err:
        ss["assign_flash"] = (f"Not saved: the database is not available ({err}).", True)
    except ValueError as err:
        ss["assign_flash"] = (f"Not saved: {err}", True)


def section(token: str, people: list[str]) -> None:
    st.subheader("Who may answer which trees")
    flash = st.session_state.pop("assign_flash", None)
    if flash:
        (st.error if flash[1] else st.success)(flash[0])
    current = data.assignments(token)
    if current:
        st.dataframe([{"tree": f"#{t}", "answered only by": ", ".join(names)} for t, names in current.items()],
                     hide_index=True)
    else:
        st.caption("Every tree is open to everyone.")
    trees = data.trees(token, None)
    if not trees or not people:
        return
    by_id = {t.id: t for t in trees}
    tid = st.selectbox("Tree", list(by_id), key="assign_tree",
                       format_func=lambda i: f"#{i} · {render.visible(by_id[i].question[:90])}")
    key = f"assign_people_{tid}"
    if key not in st.session_state:
        st.session_state[key] = [n for n in current.get(tid, []) if n in people]
    st.multiselect("May answer it (nobody: everyone may)", people, key=key)
    st.button("Save assignment", key="assign_save", on_click=_save, args=(tid, key))
