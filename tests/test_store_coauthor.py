"""Co-authoring the trees (issue 13) on SQLite and PostgreSQL: adding a premise, editing a premise's text
(a new proposition version), an admin deleting or moving a node, an ill-posed answer's rewrite replacing
its node.  Every change is recorded (who, when, what was there), and every stored number afterwards
equals a from-scratch recomputation by the core (``check_consistency``)."""

from __future__ import annotations

import pytest

from argtree.inference import beliefs
from argtree.tree import ArgumentTree, Node

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401
from sqlalchemy import func, select  # noqa: E402

from argtree.store import (Label, NotFound, Proposition, StoreError, add_annotator, load_tree,  # noqa: E402
                           next_question, root_history, save_tree, session_scope, submit_label, tree_nodes)
from argtree.store.coauthor import (add_premise, delete_node, edit_text, move_node, node_ref,  # noqa: E402
                                    tree_edits)
from argtree.store.models import Node as NodeRow, Tree, TreeEdit  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()

ROOT = "Will the bridge be reopened this year?"
A = "The inspection found no cracks."
B = "The budget for repairs was approved."
C = "The contractor is available in spring."


def setup(url):
    tree = ArgumentTree([Node("r", ROOT, prior=0.5),
                         Node("a", A, parent="r", p_if_true=0.8, p_if_false=0.3),
                         Node("b", B, parent="r", p_if_true=0.7, p_if_false=0.4),
                         Node("c", C, parent="b", p_if_true=0.9, p_if_false=0.2)])
    with session_scope(url) as s:
        tid = save_tree(s, tree)
        ann = add_annotator(s, "ann", "password123").id
        boss = add_annotator(s, "boss", "password123", admin=True).id
        ids = {n.local_id: n.id for n in tree_nodes(s, tid)}
    return tid, ann, boss, ids


def root(url, tid):
    with session_scope(url, readonly=True) as s:
        return s.get(Tree, tid).root_belief


def core_root(url, tid):
    with session_scope(url, readonly=True) as s:
        t, ev = load_tree(s, tid)
    return beliefs(t, ev)[t.root], t


MAYOR = "The mayor promised a reopening in June."


def test_adding_a_premise_moves_the_root_and_is_recorded(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:   # the premise's proposition is already answered (in another tree)
        save_tree(s, ArgumentTree([Node("q", "Does the mayor keep promises?", prior=0.5),
                                   Node("m", MAYOR, parent="q", p_if_true=0.7, p_if_false=0.3)]))
        pid = s.scalar(select(Proposition.id).where(Proposition.text == MAYOR))
        submit_label(s, boss, pid, True, request_id="m1")
    before = root(url, tid)
    with session_scope(url) as s:
        res = add_premise(s, ann, ids["r"], MAYOR, p_if_true=0.9, p_if_false=0.1, stance="for",
                          request_id="add-1")
    after = root(url, tid)
    assert res.root_before == pytest.approx(before) and res.root_after == pytest.approx(after)
    assert after != pytest.approx(before, abs=1e-6)          # the root moved at once, in the same commit
    ref, t = core_root(url, tid)
    assert after == pytest.approx(ref, abs=1e-12) and len(t.nodes) == 5
    check_consistency(url)
    with session_scope(url) as s:
        again = add_premise(s, ann, ids["r"], MAYOR, p_if_true=0.9, p_if_false=0.1, request_id="add-1")   # a retried request: nothing twice
        assert again.repeated and again.edit_id == res.edit_id
        assert s.get(Tree, tid).n_nodes == 5 and s.scalar(select(NodeRow.id).where(
            NodeRow.tree_id == tid).order_by(NodeRow.id.desc()).limit(1)) == res.node_id
        (edit,) = tree_edits(s, tid)
        assert (edit["action"], edit["by"], edit["detail"]["stance"]) == ("add", "ann", "supports")
        assert edit["at"] is not None and edit["detail"]["numbers"] == "own"
        assert root_history(s, tid)[-1].cause == "edit"
        assert s.get(Proposition, res.proposition_id).forest_voi > 0   # it counts in the queue's ranking now


@pytest.mark.parametrize("kwargs, field", [
    ({"p_if_true": 0.2, "p_if_false": 0.8, "stance": "for"}, "stance"),
    ({"p_if_true": 0.8, "p_if_false": 0.2, "stance": "against"}, "stance"),
    ({"p_if_true": 1.0, "p_if_false": 0.2}, "p_if_true"),
    ({"p_if_true": 0.5, "p_if_false": float("nan")}, "p_if_false"),
    ({"p_if_true": 0.5, "p_if_false": 0.4, "stance": "maybe"}, "stance"),
])
def test_bad_premises_are_refused_before_any_write(url, kwargs, field):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        with pytest.raises(StoreError) as err:
            add_premise(s, ann, ids["a"], "Cracks would close the bridge.", **kwargs)
        assert err.value.field == field
    with session_scope(url) as s:
        with pytest.raises(StoreError, match="restates"):
            add_premise(s, ann, ids["c"], B, p_if_true=0.6, p_if_false=0.4)   # its own grandparent
        with pytest.raises(NotFound):
            add_premise(s, ann, 10**6, "Anything at all here.", p_if_true=0.6, p_if_false=0.4)
    with session_scope(url, readonly=True) as s:
        assert s.get(Tree, tid).n_nodes == 4 and s.scalar(select(TreeEdit.id)) is None


def test_model_elicited_numbers(url):
    from argtree.coauthor import elicit_premise
    from argtree.llm.fake import FakeBackend

    tid, ann, boss, ids = setup(url)
    got = elicit_premise(FakeBackend(yes_scores=[0.7, 0.9, 0.2]), A, "Divers checked the pillars.")
    assert got["p_if_true"] > got["p_if_false"]          # q1 > q0: it supports its claim
    with session_scope(url) as s:
        res = add_premise(s, ann, ids["a"], "Divers checked the pillars.", **got)
        node = s.get(NodeRow, res.node_id)
        assert node.extra["numbers"] == "model" and node.model_credence == pytest.approx(0.7)
        assert node.model_evidence and node.model_evidence[0]["credence"] == pytest.approx(0.7)
    assert res.root_after != pytest.approx(res.root_before, abs=1e-6)  # the model's credence is evidence
    with session_scope(url, readonly=True) as s:
        t, ev = load_tree(s, tid)
        local = s.get(NodeRow, res.node_id).local_id
    assert beliefs(t, ev)[local] == pytest.approx(0.7, abs=1e-9)   # alone, it sets the leaf to its credence
    check_consistency(url)


def test_editing_text_makes_a_new_version_and_leaves_the_labels_behind(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:    # another tree shares A
        other = save_tree(s, ArgumentTree([Node("q", "Is the bridge safe?", prior=0.5),
                                           Node("a", A, parent="q", p_if_true=0.8, p_if_false=0.3)]))
        old_pid = s.get(NodeRow, ids["a"]).proposition_id
        submit_label(s, ann, old_pid, True, request_id="l1")
    labeled_root = root(url, tid)
    with session_scope(url) as s:
        res = edit_text(s, ann, ids["a"], "The inspection found only minor cracks.")
        assert res.proposition_id != old_pid
        assert s.get(NodeRow, ids["a"]).proposition_id == res.proposition_id
        # the other tree keeps the old proposition, with its label
        (kept,) = [n for n in tree_nodes(s, other) if n.local_id == "a"]
        assert kept.proposition_id == old_pid and kept.n_labels == 1
        (mine,) = [n for n in tree_nodes(s, tid) if n.local_id == "a"]
        assert mine.n_labels == 0 and 0 < mine.belief < 1            # the label did not come along
        (edit,) = tree_edits(s, tid)
        assert edit["detail"]["old_text"] == A and edit["detail"]["old_proposition_id"] == old_pid
        with pytest.raises(StoreError, match="unchanged"):
            edit_text(s, ann, ids["a"], "The inspection found only  minor cracks.")
        with pytest.raises(StoreError, match="root"):
            edit_text(s, ann, ids["r"], "Another question?")
    assert root(url, tid) != pytest.approx(labeled_root, abs=1e-6)
    check_consistency(url)


def test_an_archived_old_version_leaves_the_queue(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        old_pid = s.get(NodeRow, ids["c"]).proposition_id
        assert s.get(Proposition, old_pid).queue_rank is not None
        edit_text(s, ann, ids["c"], "The contractor can start in March.")
    with session_scope(url, readonly=True) as s:
        old = s.get(Proposition, old_pid)
        assert old.queue_rank is None and old.forest_voi == 0.0
    check_consistency(url)


def test_only_admins_delete_or_move_and_the_tree_stays_a_tree(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        with pytest.raises(StoreError, match="only admins"):
            delete_node(s, ann, ids["b"])
        with pytest.raises(StoreError, match="only admins"):
            move_node(s, ann, ids["c"], ids["a"])
        with pytest.raises(StoreError, match="cycle"):
            move_node(s, boss, ids["b"], ids["c"])
        with pytest.raises(StoreError, match="root"):
            delete_node(s, boss, ids["r"])
        with pytest.raises(StoreError, match="already"):
            move_node(s, boss, ids["c"], ids["b"])
    with session_scope(url) as s:
        submit_label(s, ann, s.get(NodeRow, ids["c"]).proposition_id, True, request_id="c1")
    with session_scope(url) as s:
        res = move_node(s, boss, ids["c"], ids["a"], p_if_true=0.95, p_if_false=0.1)
        c = s.get(NodeRow, ids["c"])
        assert (c.parent_id, c.depth, c.p_if_true) == (ids["a"], 2, 0.95)
        assert res.root_after != pytest.approx(res.root_before, abs=1e-9)
    check_consistency(url)
    with session_scope(url) as s:
        c_pid = s.get(NodeRow, ids["c"]).proposition_id
        res = delete_node(s, boss, ids["a"], request_id="del-1")     # a and, under it now, c
        assert res.removed == 2
        assert delete_node(s, boss, ids["a"], request_id="del-1").repeated
    with session_scope(url) as s:
        t, _ = load_tree(s, tid)
        assert sorted(t.nodes) == ["b", "r"] and s.get(Tree, tid).n_nodes == 2
        assert s.get(Proposition, c_pid).forest_voi == 0.0 and s.get(Proposition, c_pid).queue_rank is None
        actions = [e["action"] for e in tree_edits(s, tid)]
        assert actions == ["delete", "move"]
        removed = tree_edits(s, tid)[0]["detail"]["removed"]
        assert {r["text"] for r in removed} == {A, C}
    check_consistency(url)


def test_an_ill_posed_rewrite_replaces_the_node_in_its_trees(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        other = save_tree(s, ArgumentTree([Node("q", "Is the bridge safe?", prior=0.5),
                                           Node("x", C, parent="q", p_if_true=0.7, p_if_false=0.3)]))
        archived = save_tree(s, ArgumentTree([Node("q", "Was the bridge safe in 1990?", prior=0.5),
                                              Node("x", C, parent="q", p_if_true=0.7, p_if_false=0.3)]),
                             status="archived")
        pid = s.get(NodeRow, ids["c"]).proposition_id
        label = submit_label(s, ann, pid, ill_posed=True, rewrite="The contractor has signed for April.",
                             request_id="ip-1")
        new_pid = label.rewrite_proposition_id
    with session_scope(url, readonly=True) as s:
        for t in (tid, other):
            texts = {n.text for n in tree_nodes(s, t)}
            assert "The contractor has signed for April." in texts and C not in texts
        assert C in {n.text for n in tree_nodes(s, archived)}     # archived trees stay as they were
        edits = s.scalars(select(TreeEdit).order_by(TreeEdit.tree_id)).all()
        assert [(e.tree_id, e.action, e.label_id, e.annotator_id) for e in edits] == [
            (tid, "rewrite", label.id, ann), (other, "rewrite", label.id, ann)]
        assert s.get(Proposition, new_pid).queue_rank is not None   # the rewrite can be asked now
    check_consistency(url)


def test_node_ref(url):
    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        assert node_ref(s, f"{tid}:c") == ids["c"] and node_ref(s, str(ids["a"])) == ids["a"]
        with pytest.raises(NotFound):
            node_ref(s, f"{tid}:zz")
        with pytest.raises(StoreError):
            node_ref(s, "c")


def test_the_web_apps_calls_check_the_session_and_role(url):
    from argtree.store.assignment import web_assignments, web_set_assignment
    from argtree.store.coauthor import web_add_premise, web_delete_node, web_move_node, web_tree_edits
    from argtree.store.sessions import create_session

    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        t_ann, t_boss = create_session(s, ann), create_session(s, boss)
    before = root(url, tid)
    with session_scope(url) as s:   # the author's own answer counts at once: the root moves with the premise
        res = web_add_premise(s, t_ann, ids["r"], "The ferry operator hired more crew.", p_if_true=0.85,
                              p_if_false=0.25, stance="for", answer="true", request_id="w1")
    assert res.root_after > before + 0.01 and root(url, tid) == pytest.approx(res.root_after)
    with session_scope(url) as s:
        again = web_add_premise(s, t_ann, ids["r"], "The ferry operator hired more crew.", p_if_true=0.85,
                                p_if_false=0.25, answer="true", request_id="w1")
        assert again.repeated
        assert s.scalar(select(func.count()).select_from(Label).where(Label.annotator_id == ann)) == 1
        with pytest.raises(StoreError, match="answer"):
            web_add_premise(s, t_ann, ids["r"], "Anything else here.", p_if_true=0.6, p_if_false=0.4, answer="yes")
        with pytest.raises(StoreError, match="admin"):
            web_delete_node(s, t_ann, ids["c"])
        with pytest.raises(StoreError, match="admin"):
            web_move_node(s, t_ann, ids["c"], ids["a"])
        with pytest.raises(StoreError, match="admin"):
            web_set_assignment(s, t_ann, tid, ["ann"])
        with pytest.raises(StoreError):
            web_add_premise(s, "no-such-token", ids["r"], "Anything else here.", p_if_true=0.6, p_if_false=0.4)
    with session_scope(url) as s:
        assert web_set_assignment(s, t_boss, tid, ["ann"]) == ["ann"]
        assert web_assignments(s, t_boss) == {tid: ["ann"]}
        web_delete_node(s, t_boss, ids["c"])
        assert [e["action"] for e in web_tree_edits(s, t_ann, tid)] == ["delete", "add"]
    check_consistency(url)


def test_undoing_an_ill_posed_rewrite_puts_the_old_text_back(url):
    from argtree.store import undo_last_label

    tid, ann, boss, ids = setup(url)
    with session_scope(url) as s:
        node = s.get(NodeRow, ids["c"])
        node.model_credence, node.rationale = 0.6, "Spring is busy."
        pid = node.proposition_id
    with session_scope(url) as s:
        submit_label(s, ann, pid, ill_posed=True, rewrite="The contractor has signed for April.", request_id="u1")
        assert s.get(NodeRow, ids["c"]).proposition_id != pid
    with session_scope(url) as s:
        undone = undo_last_label(s, ann)
        assert undone.ill_posed
    with session_scope(url) as s:
        node = s.get(NodeRow, ids["c"])
        assert (node.proposition_id, node.model_credence, node.rationale) == (pid, 0.6, "Spring is busy.")
        edits = [e for e in tree_edits(s, tid)]
        assert [e["action"] for e in edits] == ["rewrite", "rewrite"] and edits[0]["detail"]["reverts"] == edits[1]["id"]
        assert next_question(s, ann).proposition_id == pid       # the question is handed back, as undo says
    check_consistency(url)
