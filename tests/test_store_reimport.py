"""Re-importing a tree whose evidence is already stored never counts it twice (issue 13), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from argtree.inference import beliefs
from argtree.store import Label, Node as NodeRow, add_annotator, load_tree, save_tree, session_scope, submit_label
from argtree.store.testing import fast_password_hashing
from store_fixtures import pg_module, url  # noqa: F401
from argtree.tree import ArgumentTree, Evidence, Node

fast_password_hashing()


def _tree(root_text: str = "Is remote work more productive?", b_text: str = "Ad-hoc collaboration drops.") -> ArgumentTree:
    return ArgumentTree([Node("q", root_text, prior=0.5),
                         Node("a", "Commuting time is saved.", parent="q", p_if_true=0.9, p_if_false=0.6),
                         Node("b", b_text, parent="q", p_if_true=0.5, p_if_false=0.8),
                         Node("b1", "Chat tools replace hallway talk.", parent="b", p_if_true=0.3, p_if_false=0.6)])


EVIDENCE = [Evidence("a", True), Evidence("b1", False, 0.9)]




def _beliefs(url, tid):
    with session_scope(url) as s:
        return {n.local_id: n.belief for n in s.scalars(select(NodeRow).where(NodeRow.tree_id == tid))}


def _labels(url):
    with session_scope(url) as s:
        return s.scalar(select(func.count()).select_from(Label).where(Label.retracted_at.is_(None)))


def test_edited_copies_do_not_count_the_imported_evidence_again(url):
    with session_scope(url) as s:
        first = save_tree(s, _tree(), EVIDENCE)
    before = _beliefs(url, first)
    expect = beliefs(_tree(), EVIDENCE)
    assert all(before[k] == pytest.approx(expect[k], abs=1e-9) for k in expect)
    with session_scope(url) as s:  # two edited copies, same evidence (the report)
        second = save_tree(s, _tree(root_text="Is remote work more productive, on balance?"), EVIDENCE)
        third = save_tree(s, _tree(b_text="Spontaneous collaboration drops."), EVIDENCE)
    assert _labels(url) == 2
    after = _beliefs(url, first)
    assert all(after[k] == pytest.approx(before[k], abs=1e-12) for k in before)  # the untouched tree did not move
    assert _beliefs(url, second)["b1"] == pytest.approx(before["b1"], abs=1e-12)
    assert _beliefs(url, third)["b1"] == pytest.approx(before["b1"], abs=1e-12)
    # A copy that repeats an observation adds exactly what it adds beyond the store.
    with session_scope(url) as s:
        save_tree(s, _tree(root_text="A third wording?"), EVIDENCE + [Evidence("b1", False, 0.9)])
    assert _labels(url) == 3
    twice = beliefs(_tree(), EVIDENCE + [Evidence("b1", False, 0.9)])
    assert _beliefs(url, first)["b1"] == pytest.approx(twice["b1"], abs=1e-9)


def test_a_dumped_tree_read_back_does_not_copy_peoples_labels(url):
    with session_scope(url) as s:
        aid = add_annotator(s, "ann", "ann-password").id
        tid = save_tree(s, _tree())
        pid = s.scalar(select(NodeRow.proposition_id).where(NodeRow.tree_id == tid, NodeRow.local_id == "b"))
        submit_label(s, aid, pid, probability=0.2, request_id="r1")
    with session_scope(url) as s:
        tree, evidence = load_tree(s, tid)
    assert any(e.extra.get("label_id") for e in evidence)
    before = _beliefs(url, tid)
    with session_scope(url) as s:
        copy = save_tree(s, ArgumentTree([tree[n] for n in tree.nodes], {"edited": True}), evidence)
    assert _labels(url) == 1
    assert _beliefs(url, tid) == pytest.approx(before, abs=1e-12)
    assert _beliefs(url, copy)["b"] == pytest.approx(before["b"], abs=1e-12)
