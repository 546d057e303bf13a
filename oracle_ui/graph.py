"""The tree graph: a Vega-Lite chart (Altair), drawn by the browser, clickable.

Why Altair and not pyvis/streamlit-agraph: Altair ships with Streamlit and is
maintained with it; ``st.altair_chart(on_select="rerun")`` hands the clicked
node back to Python with no extra component; Vega renders from the bundle
Streamlit serves (no CDN, no system binaries such as graphviz).  streamlit-agraph
(vis-network) was last released in 2023; pyvis's HTML cannot report a click back.

Layout is a plain tidy tree: leaves side by side in file order, each parent
centred over its children, depth downwards.  Colour = belief (red false ..
blue true), size = VoI, shape = root / labeled / open.
"""

from __future__ import annotations

from typing import Sequence

SELECTION = "node"


def layout(nodes: Sequence) -> dict[int, tuple[float, int]]:
    """{node id: (x, depth)} for NodeInfo-like objects with ``id``, ``parent_id`` (file order kept)."""
    children: dict[int | None, list[int]] = {}
    for n in nodes:
        children.setdefault(n.parent_id, []).append(n.id)
    roots = children.get(None, [])
    pos: dict[int, tuple[float, int]] = {}
    next_x = 0.0
    # Iterative post-order (trees can be deep; no recursion limit).
    for root in roots:
        stack: list[tuple[int, int, bool]] = [(root, 0, False)]
        while stack:
            nid, depth, done = stack.pop()
            kids = children.get(nid, [])
            if not kids:
                pos[nid] = (next_x, depth)
                next_x += 1.0
            elif done:
                pos[nid] = ((pos[kids[0]][0] + pos[kids[-1]][0]) / 2, depth)
            else:
                stack.append((nid, depth, True))
                stack.extend((k, depth + 1, False) for k in reversed(kids))
    return pos


def records(nodes: Sequence) -> tuple[list[dict], list[dict]]:
    """Rows for the node layer and the edge layer."""
    pos = layout(nodes)
    rows, edges = [], []
    for n in nodes:
        x, d = pos[n.id]
        kind = "root" if n.parent_id is None else ("labeled" if n.n_labels else "open")
        text = n.text if len(n.text) <= 160 else n.text[:157] + "..."
        rows.append({"id": n.id, "local_id": n.local_id, "x": x, "depth": d, "text": text,
                     "belief": n.belief if n.belief is not None else 0.5, "voi": float(n.voi or 0.0),
                     "kind": kind, "labels": n.n_labels})
        if n.parent_id is not None:
            px, pd = pos[n.parent_id]
            edges.append({"x": px, "depth": pd, "x2": x, "depth2": d,
                          "stance": "supports" if (n.p_if_true or 0) > (n.p_if_false or 0) else "attacks"})
    return rows, edges


def chart(nodes: Sequence, *, height: int | None = None):
    import altair as alt

    rows, edges = records(nodes)
    depth = max((r["depth"] for r in rows), default=0)
    height = height or min(900, 170 + 100 * depth)
    xs = alt.X("x:Q", axis=None, scale=alt.Scale(padding=24))
    ys = alt.Y("depth:Q", axis=None, scale=alt.Scale(reverse=True, padding=24))
    base_edges = alt.Chart(alt.Data(values=edges or [{"x": 0, "depth": 0, "x2": 0, "depth2": 0, "stance": ""}]))
    edge_layer = base_edges.mark_rule(strokeWidth=1.5, opacity=0.6).encode(
        x=xs, y=ys, x2="x2:Q", y2="depth2:Q",
        color=alt.Color("stance:N", scale=alt.Scale(domain=["supports", "attacks"], range=["#3a7d44", "#b8453a"]),
                        legend=alt.Legend(title="edge")),
        strokeDash=alt.condition("datum.stance == 'attacks'", alt.value([5, 3]), alt.value([1, 0])))
    pick = alt.selection_point(name=SELECTION, fields=["id"], on="click", clear="dblclick")
    node_layer = alt.Chart(alt.Data(values=rows)).mark_point(filled=True, stroke="#222", cursor="pointer").encode(
        x=xs, y=ys,
        color=alt.Color("belief:Q", scale=alt.Scale(domain=[0, 1], scheme="redblue"),
                        legend=alt.Legend(title="belief")),
        size=alt.Size("voi:Q", scale=alt.Scale(range=[80, 1400], zero=True), legend=alt.Legend(title="VoI")),
        shape=alt.Shape("kind:N", scale=alt.Scale(domain=["root", "labeled", "open"],
                                                  range=["square", "diamond", "circle"]),
                        legend=alt.Legend(title="node")),
        strokeWidth=alt.condition(pick, alt.value(3), alt.value(0.5)),
        tooltip=[alt.Tooltip("local_id:N", title="node"), alt.Tooltip("text:N"),
                 alt.Tooltip("belief:Q", format=".3f"), alt.Tooltip("voi:Q", format=".4f"),
                 alt.Tooltip("labels:Q")],
    ).add_params(pick)
    label_layer = alt.Chart(alt.Data(values=rows)).mark_text(dy=-16, fontSize=11, color="#444").encode(
        x=xs, y=ys, text="local_id:N")
    return (edge_layer + node_layer + label_layer).properties(height=height).configure_view(stroke=None) \
        .configure_legend(orient="bottom", direction="horizontal")


def selected(event) -> int | None:
    """The node id clicked in the chart, from the value ``st.altair_chart(on_select=...)`` returned."""
    try:
        points = event.selection[SELECTION]
    except (AttributeError, KeyError, TypeError):
        return None
    if isinstance(points, list) and points and isinstance(points[0], dict) and "id" in points[0]:
        return int(points[0]["id"])
    return None
