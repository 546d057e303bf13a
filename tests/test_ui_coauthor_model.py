"""Web co-authoring (issue 13): a premise whose numbers the model elicits, through the web app's data
layer (``oracle_ui.data.add_premise(elicit=True)``): the numbers are the elicitation's, the node records
them as the model's (credence, what it said, which model) and the edit as the annotator's; the same as
``argtree tree add-premise --backend``.  The scripted fake model here; the real bundled model (``model``)
through the app's default backend (``data.model_backend``)."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")
from argtree.expand import cpt_from_elicitation  # noqa: E402
from argtree.llm.fake import FakeBackend  # noqa: E402
from argtree.store import add_annotator, save_tree, session_scope, tree_nodes  # noqa: E402
from argtree.store.models import Node as NodeRow, Tree, TreeEdit  # noqa: E402
from argtree.store.testing import fast_password_hashing, sqlite_db  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402

fast_password_hashing()

ROOT = "Will the ferry run on time this winter?"
NEW = "The crew was doubled for the winter."


@pytest.fixture
def app(tmp_path, monkeypatch):
    from oracle_ui import data

    url = sqlite_db(tmp_path)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    with session_scope(url) as s:
        tid = save_tree(s, ArgumentTree([Node("r", ROOT, prior=0.5),
                                         Node("a", "The engine was overhauled.", parent="r", p_if_true=0.7,
                                              p_if_false=0.4)]))
        add_annotator(s, "ann", "password123")
        root = next(n.id for n in tree_nodes(s, tid) if n.parent_id is None)
    token = data.login("ann", "password123", "test").token
    return {"data": data, "url": url, "tid": tid, "root": root, "token": token}


def _added(url, tid):
    with session_scope(url, readonly=True) as s:
        node = s.query(NodeRow).filter(NodeRow.tree_id == tid, NodeRow.local_id.like("added%")).one()
        (edit,) = s.query(TreeEdit).filter_by(tree_id=tid).all()
        return node, edit, s.get(Tree, tid).root_belief


def test_the_model_elicits_the_numbers_and_is_recorded_as_their_source(app):
    data = app["data"]
    be = FakeBackend(yes_scores=[0.8, 0.9, 0.3], model_version="fake-v7")
    res = data.add_premise(app["token"], app["root"], NEW, answer="true", elicit=True, backend=be)
    assert len(be.prompts) == 3 and NEW in be.prompts[0] and ROOT in be.prompts[1]   # premise, claim | premise
    node, edit, root = _added(app["url"], app["tid"])
    p1, p0 = cpt_from_elicitation(0.8, 0.9, 0.3)
    assert (node.p_if_true, node.p_if_false) == pytest.approx((p1, p0)) and p1 > p0
    assert node.model_credence == pytest.approx(0.8) and node.model_evidence   # virtual evidence on the new leaf
    assert node.extra["numbers"] == "model" and node.extra["author"] == "ann"
    assert node.extra["elicited_by"] == "fake-v7"
    assert node.extra["claim_if_true"] == pytest.approx(0.9) and node.extra["claim_if_false"] == pytest.approx(0.3)
    assert edit.action == "add" and edit.detail["numbers"] == "model" and edit.annotator_id is not None
    assert res.root_after == pytest.approx(root) and res.root_after > res.root_before   # answered true: it moved


def test_bad_text_is_refused_before_the_model_runs_and_a_missing_model_is_one_line(app, monkeypatch):
    data = app["data"]
    be = FakeBackend(yes_scores=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="text"):
        data.add_premise(app["token"], app["root"], "   ", elicit=True, backend=be)
    assert be.prompts == []
    monkeypatch.setenv("ARGTREE_UI_BACKEND", "local")
    monkeypatch.setenv("ARGTREE_UI_MODEL", "/nonexistent/model-dir")
    with pytest.raises(data.ModelUnavailable, match="cannot be loaded"):
        data.add_premise(app["token"], app["root"], NEW, elicit=True)
    with session_scope(app["url"], readonly=True) as s:
        assert s.query(TreeEdit).count() == 0


def test_the_app_backend_follows_its_settings(app, monkeypatch):
    data = app["data"]
    monkeypatch.setattr(data, "_backends", {})
    monkeypatch.setenv("ARGTREE_UI_BACKEND", "fake")
    be = data.model_backend()
    assert be.kind == "fake" and data.model_backend() is be   # loaded once
    data.add_premise(app["token"], app["root"], NEW, elicit=True)
    node, edit, _ = _added(app["url"], app["tid"])
    assert node.extra["elicited_by"] == "fake" and node.extra["numbers"] == "model"


@pytest.mark.model
def test_the_bundled_model_elicits_a_premise_from_the_web_app(app, monkeypatch):
    """The real path: no backend configured, so the app loads the CLI's default, the bundled local model."""
    data = app["data"]
    monkeypatch.setattr(data, "_backends", {})
    monkeypatch.delenv("ARGTREE_UI_BACKEND", raising=False)
    monkeypatch.delenv("ARGTREE_UI_MODEL", raising=False)
    res = data.add_premise(app["token"], app["root"], NEW, elicit=True)
    be = data.model_backend()
    assert be.kind == "local"
    node, edit, root = _added(app["url"], app["tid"])
    assert node.extra["numbers"] == "model" and node.extra["elicited_by"] == be.model_version
    assert 0.0 < node.model_credence < 1.0 and 0.0 < node.p_if_true < 1.0 and 0.0 < node.p_if_false < 1.0
    p1, p0 = cpt_from_elicitation(node.model_credence, node.extra["claim_if_true"], node.extra["claim_if_false"])
    assert (node.p_if_true, node.p_if_false) == pytest.approx((p1, p0))
    assert res.root_after == pytest.approx(root)
