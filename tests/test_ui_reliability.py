"""Learned reliability and gold in the web app (issue 13), with Streamlit's AppTest on a migrated SQLite store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from argtree.store import AnnotatorEstimate, GoldAnswer, StoreError, create_session  # noqa: E402
from argtree.store.db import session_scope  # noqa: E402
from argtree.store.models import Annotator, Node, Setting  # noqa: E402
from oracle_ui import auth, data, demo  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "oracle_ui" / "main.py")
BROWSER = {"token": None}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ui-rel") / "ui.db"
    url = f"sqlite:///{path}"
    demo.seed(url, n_trees=3, n_nodes=9)
    from argtree.store.db import get_engine

    get_engine(url).dispose()
    return path


@pytest.fixture
def db(seeded, tmp_path, monkeypatch):
    for f in seeded.parent.glob("ui.db*"):
        shutil.copy(f, tmp_path / f.name)
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    monkeypatch.setattr(auth, "browser_token", lambda: BROWSER["token"])
    return url


def session_for(name: str) -> str:
    with session_scope() as s:
        return create_session(s, s.query(Annotator).filter_by(name=name).one().id)


def app_as(name: str, page: str | None = None) -> AppTest:
    BROWSER["token"] = session_for(name)
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(f"screens/{page}.py")
        at = at.run()
    return at


def _estimates() -> dict[str, float]:
    with session_scope() as s:
        return {name: r for name, r in s.query(Annotator.name, AnnotatorEstimate.reliability)
                .join(AnnotatorEstimate, AnnotatorEstimate.annotator_id == Annotator.id)}


def test_answers_reestimate_reliability_every_n_answers(db):
    with session_scope() as s:
        s.add(Setting(key="reliability.every", value=4))
    alice, bob = session_for("alice"), session_for("bob")
    for k in range(3):  # 3 answers: not due yet
        q, _ = data.next_question(alice if k % 2 == 0 else bob)
        data.answer(alice if k % 2 == 0 else bob, q.proposition_id, "true")
    assert _estimates() == {}
    q, _ = data.next_question(bob)
    data.answer(bob, q.proposition_id, "false")  # the 4th: re-estimated after it committed
    est = _estimates()
    assert set(est) == {"alice", "bob"} and all(0 < r < 1 for r in est.values())


def test_admin_marks_gold_on_the_trees_page_and_sees_reliability(db):
    at = app_as("admin", "trees")
    assert not at.exception
    node_pick = next(sb for sb in at.selectbox if sb.label == "Node")
    with session_scope() as s:
        root = s.get(Node, node_pick.value)
        pid = root.proposition_id
    at.button(key=f"node_{node_pick.value}_gold_True").click().run()
    assert not at.exception
    with session_scope() as s:
        assert s.get(GoldAnswer, pid).value is True
    # An annotator's view of the tree never says gold (only admins may learn what is gold).
    with pytest.raises(StoreError, match="admin"):
        data.gold_answer(session_for("alice"), pid)
    at = app_as("admin", "agreement")
    assert not at.exception
    at.button(key="reestimate").click().run()
    assert not at.exception
    assert any("Learned reliability" == h.value for h in at.subheader)


def test_admin_resolves_a_consistency_flag_on_the_agreement_page(db):
    from argtree.store import save_tree
    from argtree.store.flags import find_flags
    from argtree.tree import ArgumentTree, Evidence, Node as TNode

    with session_scope() as s:
        save_tree(s, ArgumentTree([TNode("q", "Is remote work better?", prior=0.5),
                                   TNode("b", "Ad-hoc collaboration drops.", parent="q", p_if_true=0.5, p_if_false=0.8),
                                   TNode("c", "Ad-hoc collaboration does not drop.", parent="q", p_if_true=0.6,
                                         p_if_false=0.4)]),
                  [Evidence("b", True, 0.93), Evidence("c", True, 0.85)])
        (flag,) = [f for f in find_flags(s) if f.kind == "negation"]
    at = app_as("admin", "agreement")
    assert not at.exception
    at.text_input(key=f"flag_note_{flag.key}").input("merged them")
    at.button(key=f"flag_resolve_{flag.key}").click().run()
    assert not at.exception
    with session_scope() as s:
        (done,) = [f for f in find_flags(s, include_resolved=True) if f.key == flag.key]
        assert done.resolved["by"] == "admin" and done.resolved["note"] == "merged them"
    with pytest.raises(StoreError, match="admin"):
        data.flags(session_for("alice"))
