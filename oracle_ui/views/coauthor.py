"""Co-authoring on the Trees page (issue 13): add a premise under a node, edit a premise's text (any
annotator); delete or move a node (admins); the tree's changes (who, when, what).  Each change goes
through ``oracle_ui.data`` (one transaction: the change, the recomputed tree, the record of who did it)."""

from __future__ import annotations

import streamlit as st

from oracle_ui import data, render


def _run(action, ok: str, *args, **kwargs) -> None:
    ss = st.session_state
    try:
        res = action(ss["token"], *args, **kwargs)
        root = ""
        if getattr(res, "root_after", None) is not None and getattr(res, "root_before", None) is not None:
            root = f" Root: {render.pct(res.root_before)} → {render.pct(res.root_after)}."
        ss["trees_flash"] = (ok + root, False)
    except data.SessionEnded as err:
        ss["session_ended"] = err
    except data.Unavailable as err:
        ss["trees_flash"] = (f"Not changed: the database is not available ({err}).", True)
    except data.ModelUnavailable as err:
        ss["trees_flash"] = (f"Not changed: {err}.", True)
    except ValueError as err:   # StoreError / NotFound: says which field and why
        ss["trees_flash"] = (f"Not changed: {err}", True)


MINE, MODEL = "my numbers", "let the model elicit them"


def _add(node_id: int, key: str) -> None:
    ss = st.session_state
    answer = {"True": "true", "False": "false"}.get(ss.get(f"{key}_add_answer", "—"))
    if ss.get(f"{key}_add_numbers", MINE) == MODEL:   # the model's numbers decide for or against
        _run(data.add_premise, "Premise added with the model's numbers; beliefs, VoI and the root are recomputed.",
             node_id, ss.get(f"{key}_add_text", ""), answer=answer, elicit=True)
        return
    stance = "for" if ss.get(f"{key}_add_stance", "for").startswith("for") else "against"
    _run(data.add_premise, "Premise added; beliefs, VoI and the root are recomputed.", node_id,
         ss.get(f"{key}_add_text", ""), p_if_true=ss.get(f"{key}_add_p1"), p_if_false=ss.get(f"{key}_add_p0"),
         stance=stance, answer=answer)


def _edit(node_id: int, key: str) -> None:
    _run(data.edit_text, "New text saved (a new version; the old one keeps its labels).", node_id,
         st.session_state.get(f"{key}_edit_text", ""))


def _delete(node_id: int, key: str) -> None:
    if not st.session_state.get(f"{key}_del_sure"):
        st.session_state["trees_flash"] = ("Not deleted: tick the box to confirm first.", True)
        return
    _run(data.delete_node, "Node deleted with everything below it.", node_id)


def _move(node_id: int, key: str) -> None:
    _run(data.move_node, "Node moved.", node_id, st.session_state.get(f"{key}_move_to"))


def node_actions(acct, n, nodes: dict) -> None:
    """The co-authoring controls for node ``n`` (``nodes``: every node of its tree by id)."""
    key = f"co_{n.id}"
    with st.expander("Add a premise under this node"):
        st.caption("A premise bears on this node: for it (its truth raises the node) or against it. Your numbers "
                   "say how strongly; your answer to it, if you know it, counts as a label at once.")
        st.text_input("Premise (one sentence)", key=f"{key}_add_text", max_chars=2000)
        mine = st.radio("Its numbers", [MINE, MODEL], key=f"{key}_add_numbers", horizontal=True,
                        help="The model gives its credence in the premise and P(this node | premise) and "
                             "P(this node | not premise); those become the premise's numbers (recorded as the "
                             "model's, with its name).") == MINE
        c = st.columns(2)
        if mine:
            c[0].radio("It speaks", ["for this node", "against this node"], key=f"{key}_add_stance", horizontal=True)
        c[1].radio("Your answer to it", ["—", "True", "False"], key=f"{key}_add_answer", horizontal=True)
        if mine:
            c = st.columns(2)
            c[0].number_input("P(premise true | this node true)", 0.01, 0.99, 0.8, 0.05, key=f"{key}_add_p1")
            c[1].number_input("P(premise true | this node false)", 0.01, 0.99, 0.3, 0.05, key=f"{key}_add_p0")
        else:
            st.caption("The model's numbers also say whether it speaks for or against this node.")
        st.button("Add premise", key=f"{key}_add", on_click=_add, args=(n.id, key))
    if n.parent_id is not None:
        with st.expander("Edit this premise's text"):
            st.caption("The new text is a new version of the proposition: answers given to the old text stay with "
                       "it and do not count here.")
            st.text_input("New text", value=n.text, key=f"{key}_edit_text", max_chars=2000)
            st.button("Save the new text", key=f"{key}_edit", on_click=_edit, args=(n.id, key))
    if acct.is_admin and n.parent_id is not None:
        below = _subtree(n.id, nodes)
        targets = [i for i in nodes if i not in below and i != n.parent_id]
        with st.expander("Delete or move this node (admin)"):
            st.checkbox("Yes, delete this node and everything below it", key=f"{key}_del_sure")
            st.button("Delete node", key=f"{key}_del", on_click=_delete, args=(n.id, key))
            if targets:
                st.selectbox("Move it under", targets, key=f"{key}_move_to",
                             format_func=lambda i: f"{nodes[i].local_id} · {render.visible(nodes[i].text[:80])}")
                st.button("Move node", key=f"{key}_move", on_click=_move, args=(n.id, key))


def _subtree(node_id: int, nodes: dict) -> set[int]:
    out, todo = set(), [node_id]
    while todo:
        i = todo.pop()
        out.add(i)
        todo += [c.id for c in nodes.values() if c.parent_id == i]
    return out


def edits(token: str, tree_id: int) -> None:
    """The tree's changes, newest first."""
    rows = data.tree_edits(token, tree_id)
    st.subheader("Changes to this tree")
    if not rows:
        st.caption("No one has changed this tree yet.")
        return
    out = []
    for r in rows:
        d = r["detail"]
        what = {"add": d.get("text"), "edit": f"{d.get('old_text')} → {d.get('new_text')}",
                "rewrite": f"{d.get('old_text')} → {d.get('new_text')} (ill-posed answer)",
                "move": f"from under node {d.get('old_parent_id')} to under node {d.get('new_parent_id')}",
                "delete": f"{len(d.get('removed', ()))} node(s): "
                          + "; ".join(x.get("text", "")[:60] for x in d.get("removed", ()))}[r["action"]]
        out.append({"when": r["at"].isoformat(sep=" ", timespec="seconds"), "who": r["by"] or "?",
                    "change": r["action"], "node": r["node_id"], "what": render.visible(str(what)[:200])})
    st.dataframe(out, hide_index=True)
