"""A stored tree's content hash follows its edits (issue 13), on SQLite and PostgreSQL.

After every co-authoring edit (add a premise, edit a premise's text, move, delete, an ill-posed answer's
rewrite and its undo, an admin's new numbers) the tree's ``content_hash`` is what a fresh save of the
edited tree would store: the hash of ``load_tree`` (what ``argtree dump`` writes).  So re-importing the
dump of an edited tree finds it, and importing any copy never counts stored evidence twice."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")
from sqlalchemy import func, select  # noqa: E402

from argtree.io import dumps, loads  # noqa: E402
from argtree.store import (Label, add_annotator, load_tree, save_tree, session_scope, submit_label,  # noqa: E402
                           tree_nodes, undo_last_label, update_node)
from argtree.store.coauthor import add_premise, delete_node, edit_text, move_node  # noqa: E402
from argtree.store.lookups import tree_with_content  # noqa: E402
from argtree.store.models import Node as NodeRow, Tree  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing  # noqa: E402
from argtree.store.trees import content_hash  # noqa: E402
from argtree.tree import ArgumentTree, Evidence, Node  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()

ROOT = "Will the bridge be reopened this year?"
A = "The inspection found no cracks."
B = "The budget for repairs was approved."
C = "The contractor is available in spring."


def _file():
    tree = ArgumentTree([Node("r", ROOT, prior=0.5),
                         Node("a", A, parent="r", p_if_true=0.8, p_if_false=0.3),
                         Node("b", B, parent="r", p_if_true=0.7, p_if_false=0.4),
                         Node("c", C, parent="b", p_if_true=0.9, p_if_false=0.2)])
    return tree, (Evidence("a", True, 0.9), Evidence("c", False, 0.8))


def _stored(url, tid):
    with session_scope(url, readonly=True) as s:
        return s.get(Tree, tid).content_hash


def _fresh(url, tid):
    """The hash a fresh save of the tree as it stands would store, through the argtree/1 text."""
    with session_scope(url, readonly=True) as s:
        tree, ev = load_tree(s, tid)
    tree, ev = loads(dumps(tree, ev))
    return content_hash(tree, ev), tree, ev


def _live_labels(url):
    with session_scope(url, readonly=True) as s:
        return s.scalar(select(func.count()).select_from(Label).where(Label.retracted_at.is_(None)))


def test_every_edit_leaves_the_hash_of_the_edited_tree(url, tmp_path):
    tree, ev = _file()
    with session_scope(url) as s:
        tid = save_tree(s, tree, ev)
        ann = add_annotator(s, "ann", "password123").id
        boss = add_annotator(s, "boss", "password123", admin=True).id
        ids = {n.local_id: n.id for n in tree_nodes(s, tid)}
        pid_b = s.get(NodeRow, ids["b"]).proposition_id
        submit_label(s, ann, pid_b, True, request_id="l1")
    original = _stored(url, tid)
    assert original == content_hash(tree, ev)
    seen = {original}

    hashes = []

    def edited(step, back_to=None):
        with session_scope(url) as s:
            step(s)
        stored = _stored(url, tid)
        fresh, t, e = _fresh(url, tid)
        assert stored == fresh, "the stored hash is stale after the edit"
        if back_to is None:
            assert stored not in seen, "the edit changed the tree but not its hash"
        else:   # an undo gives the tree back as it was: the same content, the same hash
            assert stored == back_to
        seen.add(stored)
        hashes.append(stored)
        with session_scope(url, readonly=True) as s:   # a re-import of its dump finds the tree
            assert tree_with_content(s, t, e) == tid
        return t

    t = edited(lambda s: add_premise(s, ann, ids["r"], "The mayor promised June.", p_if_true=0.9, p_if_false=0.2))
    assert "The mayor promised June." in {n.text for n in t.nodes.values()}
    t = edited(lambda s: edit_text(s, ann, ids["a"], "The inspection found no new cracks."))
    assert A not in {n.text for n in t.nodes.values()}
    t = edited(lambda s: move_node(s, boss, ids["c"], ids["r"]))
    assert t["c"].parent == "r"
    pid_c = None

    def rewrite(s):
        nonlocal pid_c
        pid_c = s.get(NodeRow, ids["c"]).proposition_id
        submit_label(s, ann, pid_c, ill_posed=True, rewrite="The contractor signed for April.", request_id="ip")

    t = edited(rewrite)
    assert t["c"].text == "The contractor signed for April."
    t = edited(lambda s: undo_last_label(s, ann), back_to=hashes[-2])
    assert t["c"].text == C
    t = edited(lambda s: update_node(s, ids["b"], p_if_true=0.75))
    assert t["b"].p_if_true == 0.75
    t = edited(lambda s: delete_node(s, boss, ids["c"]))
    assert "c" not in t.nodes
    check_consistency(url)

    # The CLI's import: the dump of the edited tree is the stored tree (nothing stored, nothing counted)
    # and the original file, now a different tree, is stored without counting its evidence again.
    labels = _live_labels(url)
    dump, orig = tmp_path / "edited.json", tmp_path / "original.json"
    with session_scope(url, readonly=True) as s:
        dump.write_text(dumps(*load_tree(s, tid)))
    orig.write_text(dumps(tree, ev))
    env = {"ARGTREE_DATABASE_URL": url}
    r = run_with(env, "import", str(dump), str(orig), "--json")
    assert r.exit_code == 0, r.output
    import json

    out = json.loads(r.stdout)["trees"]
    assert out[str(dump)] == tid and out[str(orig)] != tid
    assert _live_labels(url) == labels
    with session_scope(url, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Tree)) == 2
    check_consistency(url)


def run_with(env, *args):
    from click.testing import CliRunner

    from argtree.cli import main

    return CliRunner().invoke(main, list(args), env=env)


def test_a_rewrite_updates_the_hash_of_every_tree_it_changes(url):
    tree, ev = _file()
    with session_scope(url) as s:
        tid = save_tree(s, tree, ev)
        other = save_tree(s, ArgumentTree([Node("q", "Is the bridge safe?", prior=0.5),
                                           Node("x", C, parent="q", p_if_true=0.7, p_if_false=0.3)]))
        untouched = save_tree(s, ArgumentTree([Node("q", "Is the river high?", prior=0.5),
                                               Node("y", "It rained all week.", parent="q", p_if_true=0.8,
                                                    p_if_false=0.3)]))
        ann = add_annotator(s, "ann", "password123").id
        pid = s.scalar(select(NodeRow.proposition_id).where(NodeRow.tree_id == other, NodeRow.local_id == "x"))
    before = {t: _stored(url, t) for t in (tid, other, untouched)}
    with session_scope(url) as s:
        submit_label(s, ann, pid, ill_posed=True, rewrite="The contractor signed for April.", request_id="ip")
    for t in (tid, other):
        assert _stored(url, t) != before[t] and _stored(url, t) == _fresh(url, t)[0]
    assert _stored(url, untouched) == before[untouched]
