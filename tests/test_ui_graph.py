"""The tree graph's layout and chart spec, visible escaping and login URLs (pure parts of oracle_ui)."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import pytest

pytest.importorskip("altair")

from oracle_ui import auth, graph  # noqa: E402


def node(i, parent, n_labels=0, voi=0.1, belief=0.5, text=None):
    return NS(id=i, parent_id=parent, local_id=f"n{i}", text=text or f"node {i}", belief=belief, voi=voi,
              n_labels=n_labels, p_if_true=0.8, p_if_false=0.2)


def test_layout_centres_parents_over_children_and_keeps_file_order():
    nodes = [node(1, None), node(2, 1), node(3, 1), node(4, 2), node(5, 2), node(6, 3)]
    pos = graph.layout(nodes)
    assert [pos[i][1] for i in (1, 2, 3, 4, 5, 6)] == [0, 1, 1, 2, 2, 2]
    assert (pos[4][0], pos[5][0], pos[6][0]) == (0.0, 1.0, 2.0)  # leaves left to right in file order
    assert pos[2][0] == 0.5 and pos[3][0] == 2.0 and pos[1][0] == 1.25


def test_layout_of_a_deep_chain_needs_no_recursion():
    n = 5000
    nodes = [node(0, None)] + [node(i, i - 1) for i in range(1, n)]
    pos = graph.layout(nodes)
    assert pos[n - 1] == (0.0, n - 1) and pos[0] == (0.0, 0)


def test_chart_spec_has_a_click_selection_and_the_encodings():
    nodes = [node(1, None, voi=0.0), node(2, 1, n_labels=2, belief=0.9), node(3, 1, voi=0.4, text="<b>x</b>")]
    spec = graph.chart(nodes).to_dict()
    text = json.dumps(spec)
    assert '"name": "node"' in text and '"belief"' in text and '"voi"' in text
    rows, edges = graph.records(nodes)
    assert [r["kind"] for r in rows] == ["root", "labeled", "open"]
    assert len(edges) == 2 and all(e["stance"] == "supports" for e in edges)
    assert rows[2]["text"] == "<b>x</b>"  # data, not markup: Vega draws it as text


def test_selected_reads_the_clicked_node():
    assert graph.selected(NS(selection={"node": [{"id": 7}]})) == 7
    assert graph.selected(NS(selection={"node": []})) is None
    assert graph.selected(NS(selection={})) is None
    assert graph.selected(None) is None


def test_hidden_characters_are_shown_escaped():
    from oracle_ui import render

    assert render.visible("RTL \u202eevil") == "RTL \\u202eevil"  # shown as typed in escapes, never reordered
    assert render.visible("a\u200bb\x1b[2J\x07\ufeff") == "a\\u200bb\\u001b[2J\\u0007\\ufeff"
    assert render.visible("lone \ud800 surrogate") == "lone \\ud800 surrogate"
    assert render.visible("lines\nand\ttabs stay; é, 中文, emoji 🙂 stay") == "lines\nand\ttabs stay; é, 中文, emoji 🙂 stay"
    assert render.visible(None) == ""
    assert render.rows([{"t": "x\u202ey", "n": 3}]) == [{"t": "x\\u202ey", "n": 3}]


def test_login_url_and_cookie_flags(monkeypatch):
    assert auth.login_url() == "/auth/login"
    assert auth.login_url("logout", "/trees?x=1") == "/auth/login?why=logout&next=%2Ftrees%3Fx%3D1"
    monkeypatch.delenv("ARGTREE_UI_SECURE_COOKIE", raising=False)
    assert auth.secure_cookie("https") and not auth.secure_cookie("http")
    monkeypatch.setenv("ARGTREE_UI_SECURE_COOKIE", "1")
    assert auth.secure_cookie("http")
