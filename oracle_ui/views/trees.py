"""Trees page: search, the graph of a tree, a node's text and numbers, relabel or edit it, root history."""

from __future__ import annotations

import uuid

import streamlit as st

from oracle_ui import data, graph, render
from oracle_ui.views import coauthor


def _relabel(token: str, proposition_id: int, kind: str, key: str) -> None:
    ss = st.session_state
    try:
        data.answer(token, proposition_id, kind, probability=ss.get(f"{key}_p", 0.5),
                    comment=ss.get(f"{key}_comment", ""), request_id=uuid.uuid4().hex)
        ss["trees_flash"] = ("Label saved; the tree below is recomputed.", False)
    except data.SessionEnded as err:
        ss["session_ended"] = err
    except data.Unavailable as err:
        ss["trees_flash"] = (f"Not saved: the database is not available ({err}).", True)
    except ValueError as err:
        ss["trees_flash"] = (f"Not saved: {err}", True)


def _edit(token: str, node_id: int, key: str, is_root: bool) -> None:
    ss = st.session_state
    try:
        if is_root:
            data.edit_node(token, node_id, prior=ss[f"{key}_prior"])
        else:
            data.edit_node(token, node_id, p_if_true=ss[f"{key}_p1"], p_if_false=ss[f"{key}_p0"])
        ss["trees_flash"] = ("Numbers changed; beliefs and VoI are recomputed.", False)
    except data.SessionEnded as err:
        ss["session_ended"] = err
    except data.Unavailable as err:
        ss["trees_flash"] = (f"Not changed: the database is not available ({err}).", True)
    except ValueError as err:
        ss["trees_flash"] = (f"Not changed: {err}", True)


def _gold(token: str, proposition_id: int, value: bool | None) -> None:
    ss = st.session_state
    try:
        data.set_gold(token, proposition_id, value)
        ss["trees_flash"] = ("Gold answer saved." if value is not None else "No longer gold.", False)
    except data.SessionEnded as err:
        ss["session_ended"] = err
    except data.Unavailable as err:
        ss["trees_flash"] = (f"Not saved: the database is not available ({err}).", True)
    except ValueError as err:
        ss["trees_flash"] = (f"Not saved: {err}", True)


def page() -> None:
    # Altair serializes with whatever pandas ``sys.modules`` holds; while another session's thread is still
    # importing it, that is a half-initialized module ("no attribute 'Timestamp'").  A real import waits
    # for the other thread's import to finish.
    import pandas  # noqa: F401

    acct = st.session_state["account"]
    token = st.session_state["token"]
    st.title("Trees")
    flash = st.session_state.pop("trees_flash", None)
    if flash:
        (st.error if flash[1] else st.success)(flash[0])
    search = st.text_input("Search the questions", key="tree_search", placeholder="words in the root question")
    found = data.trees(token, search)
    if not found:
        st.info("No tree matches." if search else
                ("No trees yet." if acct.is_admin else "Trees appear here once you have answered in them."))
        return
    by_id = {t.id: t for t in found}
    tid = st.selectbox(f"Tree ({len(found)} shown, newest first)", list(by_id), key="tree_pick",
                       format_func=lambda i: f"#{i} · model {_p(by_id[i].root.direct)} · tree "
                                             f"{_p(by_id[i].root.belief)} · labels {_p(by_id[i].root.labels_only)} · "
                                             f"{by_id[i].n_nodes} nodes · {render.visible(by_id[i].question[:100])}")
    view = data.tree(token, tid)
    s = view.summary
    render.box(s.question, size="1.1rem", testid="tree-question")
    render.root_numbers(view.root)
    m = st.columns(3)
    m[0].metric("Nodes", s.n_nodes)
    m[1].metric("Labeled nodes", sum(1 for n in view.nodes if n.n_labels))
    m[2].metric("Model", render.visible(s.model_version) if s.model_version else "–")

    event = st.altair_chart(graph.chart(view.nodes), on_select="rerun", selection_mode=graph.SELECTION,
                            key=f"graph_{tid}", width="stretch")
    st.caption("Colour: belief (red false … blue true) · size: VoI · ◆ labeled · ■ root · click a node")
    nodes = {n.id: n for n in view.nodes}
    clicked = graph.selected(event)
    pick_key = f"node_pick_{tid}"
    if clicked in nodes and st.session_state.get(f"{pick_key}_last_click") != clicked:
        st.session_state[pick_key] = clicked
        st.session_state[f"{pick_key}_last_click"] = clicked
    nid = st.selectbox("Node", list(nodes), key=pick_key,
                       format_func=lambda i: f"{nodes[i].local_id} · {render.visible(nodes[i].text[:100])}")
    _node(acct, token, nodes[nid], tid)
    coauthor.node_actions(acct, nodes[nid], nodes)   # issue 13: add / edit (anyone), delete / move (admins)
    coauthor.edits(token, tid)
    if view.blind:
        st.subheader("Root belief over the labels received")
        st.caption(f"Hidden: {view.blind} proposition(s) of this tree have answers from others that you have not "
                   "answered yet, and the root's history would tell them. Every number on this page leaves "
                   "those answers out.")
    else:
        _history(view.history)


def _p(x: float | None) -> str:
    return "—" if x is None else render.pct(x)


def _node(acct, token: str, n, tid: int) -> None:
    render.box(n.text, size="1.05rem", testid="node-text")
    table = {"stance": n.stance, "belief": n.belief, "VoI": n.voi, "root if true": n.root_if_true,
             "root if false": n.root_if_false, "model credence": n.model_credence, "prior": n.prior,
             "P(true | parent true)": n.p_if_true, "P(true | parent false)": n.p_if_false, "labels": n.n_labels}
    st.dataframe([{"": k, "value": (render.num(v, 4) if isinstance(v, float) else ("–" if v is None else str(v)))}
                  for k, v in table.items()], hide_index=True)
    if n.rationale:
        st.markdown("**The model's rationale**")
        render.text(n.rationale)
    labels = data.node_labels(token, n.proposition_id)
    if n.n_labels is None:
        st.caption("Others' answers to this proposition are hidden until you answer it (blind answers); "
                   "the numbers above leave them out.")
    elif labels:
        st.markdown("**Labels on this proposition** (in every tree that holds it)")
        st.dataframe(render.rows(labels), hide_index=True)
    key = f"node_{n.id}"
    with st.expander("Relabel (contest) this node" if n.parent_id is not None else "Label the root question"):
        st.caption("Your new answer replaces your previous one on this proposition, in every tree.")
        st.slider("Probability it is true", 0.0, 1.0, 0.5, 0.05, key=f"{key}_p")
        st.text_input("Comment (optional)", key=f"{key}_comment")
        cols = st.columns(4)
        for col, (kind, label) in zip(cols, (("true", "True"), ("false", "False"), ("probability", "Probability"),
                                             ("dont_know", "Don't know"))):
            col.button(label, key=f"{key}_{kind}", on_click=_relabel, args=(token, n.proposition_id, kind, key))
    if acct.is_admin:
        gold = data.gold_answer(token, n.proposition_id)
        with st.expander("Gold answer (admin)" + ("" if gold is None else f": {'true' if gold else 'false'}")):
            st.caption("A known answer: mixed into the queue at the gold rate, never shown as gold; it scores "
                       "whoever answers it.")
            cols = st.columns(3)
            for col, (label, value) in zip(cols, (("Gold: true", True), ("Gold: false", False),
                                                  ("Not gold", None))):
                col.button(label, key=f"{key}_gold_{value}", on_click=_gold, args=(token, n.proposition_id, value))
        with st.expander("Edit the model's numbers (admin)"):
            if n.parent_id is None:
                st.number_input("prior P(root true)", 0.0, 1.0, float(n.prior), 0.01, key=f"{key}_prior")
            else:
                st.number_input("P(true | parent true)", 0.0, 1.0, float(n.p_if_true), 0.01, key=f"{key}_p1")
                st.number_input("P(true | parent false)", 0.0, 1.0, float(n.p_if_false), 0.01, key=f"{key}_p0")
            st.button("Save numbers", key=f"{key}_save", on_click=_edit, args=(token, n.id, key, n.parent_id is None))


def _history(points: list[dict]) -> None:
    import altair as alt

    st.subheader("Root belief over the labels received")
    if len(points) < 2:
        st.caption("No change yet: the root belief moves when a label arrives.")
        return
    rows = []
    for i, p in enumerate(points):
        for series, key in (("tree's belief", "belief"), ("labels only", "labels_only"),
                            ("model's direct answer", "direct")):
            if p[key] is not None:
                rows.append({"step": i, "P": p[key], "number": series, "cause": p["cause"], "by": p["by"] or "",
                             "answer": p["answer"] or "", "at": p["at"].isoformat(sep=" ", timespec="seconds")})
    chart = alt.Chart(alt.Data(values=rows)).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("step:Q", title="change #"), y=alt.Y("P:Q", scale=alt.Scale(domain=[0, 1]), title="P(root)"),
        color=alt.Color("number:N", title=None),
        tooltip=["step:Q", "number:N", alt.Tooltip("P:Q", format=".3f"), "cause:N", "by:N", "answer:N", "at:N"])
    st.altair_chart(chart, width="stretch")
