"""Blind answers (issue 13): nobody but an admin sees others' answers to a proposition before answering it.

Enforced in the store functions the web app calls (``argtree.store.webui``), on SQLite and PostgreSQL.
Expected numbers come from ``argtree.inference`` on the same tree with the evidence the viewer may see.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from argtree.inference import beliefs
from argtree.store import Node as NodeRow, add_annotator, create_session, save_tree, session_scope, set_queue_settings
from argtree.store import webui
from argtree.store.testing import fast_password_hashing
from store_fixtures import pg_module, url  # noqa: F401
from argtree.tree import ArgumentTree, Evidence, Node

fast_password_hashing()

TREE = ArgumentTree([Node("q", "Is the blind claim so?", prior=0.5),
                     Node("a", "The telling premise holds.", parent="q", p_if_true=0.9, p_if_false=0.2),
                     Node("b", "A weak premise holds.", parent="q", p_if_true=0.55, p_if_false=0.45)])




@pytest.fixture
def world(url):
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password", admin=(n == "root")).id for n in ("alice", "bob", "root")}
        tree_id = save_tree(s, TREE)
        set_queue_settings(s, overlap=3)
        nodes = {n.local_id: n for n in s.scalars(select(NodeRow).where(NodeRow.tree_id == tree_id))}
        tokens = {n: create_session(s, i) for n, i in ids.items()}
    return {"url": url, "ids": ids, "tree": tree_id, "tokens": tokens,
            "pid": {k: n.proposition_id for k, n in nodes.items()}, "nid": {k: n.id for k, n in nodes.items()}}


def _view(url, token, tree_id):
    with session_scope(url) as s:
        return webui.tree_view(s, token, tree_id)


def test_an_annotator_sees_no_other_answer_before_answering_and_all_after(world):
    url, tok, tid, pid, nid = world["url"], world["tokens"], world["tree"], world["pid"], world["nid"]
    with session_scope(url) as s:  # bob answers the telling premise with a comment; alice the weak one
        webui.answer(s, tok["bob"], pid["a"], "false", comment="Surely not, I checked.", request_id="b1")
        webui.answer(s, tok["alice"], pid["b"], "true", request_id="a1")
    blind = beliefs(TREE, [Evidence("b", True, 0.9)])                           # what alice may see
    full = beliefs(TREE, [Evidence("b", True, 0.9), Evidence("a", False, 0.9)])  # what the admin sees
    assert abs(blind["a"] - full["a"]) > 0.2  # bob's answer moves the premise: hiding it matters

    view = _view(url, tok["alice"], tid)
    nodes = {n.local_id: n for n in view.nodes}
    assert view.blind == 1 and view.history == []
    assert nodes["a"].n_labels is None and nodes["b"].n_labels == 1
    assert nodes["a"].belief == pytest.approx(blind["a"], abs=1e-9)
    assert nodes["q"].belief == pytest.approx(blind["q"], abs=1e-9)
    assert view.root.belief == pytest.approx(blind["q"], abs=1e-9)
    assert view.summary.root_belief == pytest.approx(blind["q"], abs=1e-9)
    with session_scope(url) as s:
        assert webui.node_labels(s, tok["alice"], pid["a"]) == []
        (listing,) = webui.tree_list(s, tok["alice"])
        assert listing.root.belief == pytest.approx(blind["q"], abs=1e-9)
        # The Answer page: alice is asked the telling premise (overlap 3) with numbers that leave bob out.
        q, numbers = webui.question(s, tok["alice"])
        assert q.proposition_id == pid["a"]
        assert q.belief == pytest.approx(blind["a"], abs=1e-9)
        assert q.chain[0].belief == pytest.approx(blind["a"], abs=1e-9)
        assert q.chain[-1].belief == pytest.approx(blind["q"], abs=1e-9)
        assert numbers.belief == pytest.approx(blind["q"], abs=1e-9) and q.root_belief == numbers.belief
        assert q.voi == pytest.approx(q.forest_voi)
        assert q.voi == pytest.approx(2 * blind["a"] * (1 - blind["a"]) * abs(q.root_if_true - q.root_if_false))

    # The admin sees everything: bob's answer, his comment, the full numbers and the history.
    admin = _view(url, tok["root"], tid)
    anodes = {n.local_id: n for n in admin.nodes}
    assert admin.blind == 0 and admin.history
    assert anodes["a"].n_labels == 1 and anodes["a"].belief == pytest.approx(full["a"], abs=1e-9)
    with session_scope(url) as s:
        (shown,) = webui.node_labels(s, tok["root"], pid["a"])
        assert (shown["annotator"], shown["answer"], shown["comment"]) == ("bob", "false", "Surely not, I checked.")
        # bob sees his own answer (he answered it), and not alice's on b before answering b.
        assert [r["annotator"] for r in webui.node_labels(s, tok["bob"], pid["a"])] == ["bob"]
        assert webui.node_labels(s, tok["bob"], pid["b"]) == []

    with session_scope(url) as s:  # alice answers the telling premise: now she may see bob's answer
        webui.answer(s, tok["alice"], pid["a"], "dont_know", request_id="a2")
    after = _view(url, tok["alice"], tid)
    anodes = {n.local_id: n for n in after.nodes}
    assert after.blind == 0 and after.history
    assert anodes["a"].n_labels == 2 and anodes["a"].belief == pytest.approx(full["a"], abs=1e-9)
    with session_scope(url) as s:
        names = {(r["annotator"], r["comment"]) for r in webui.node_labels(s, tok["alice"], pid["a"])}
        assert ("bob", "Surely not, I checked.") in names
        assert s.get(NodeRow, nid["a"]).belief == pytest.approx(full["a"], abs=1e-9)  # stored numbers untouched


def test_undoing_the_answer_makes_the_proposition_blind_again(world):
    url, tok, tid, pid = world["url"], world["tokens"], world["tree"], world["pid"]
    with session_scope(url) as s:
        webui.answer(s, tok["bob"], pid["a"], "true", request_id="b1")
        webui.answer(s, tok["alice"], pid["a"], "false", request_id="a1")
    with session_scope(url) as s:
        assert {r["annotator"] for r in webui.node_labels(s, tok["alice"], pid["a"])} == {"alice", "bob"}
        webui.undo(s, tok["alice"])
    with session_scope(url) as s:
        assert webui.node_labels(s, tok["alice"], pid["a"]) == []
        q, _ = webui.question(s, tok["alice"])  # the undone question comes back, blind
        assert q.proposition_id == pid["a"]
        assert q.belief == pytest.approx(beliefs(TREE)["a"], abs=1e-9)
