"""The oracle app's pages, run in-process with Streamlit's AppTest on a real migrated SQLite store."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from argtree.io import loads  # noqa: E402
from argtree.store.db import session_scope  # noqa: E402
from argtree.store.models import Annotator, Label, Proposition, Tree  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import auth, data, demo  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "oracle_ui" / "app.py")
NASTY = ('<script>alert("x")</script> <b>bold?</b> [a link](http://example.com) '
         '![an image](http://example.com/i.png) **stars** & `code`')


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """One migrated, seeded SQLite file; each test gets a copy (migrating and hashing passwords is slow)."""
    path = tmp_path_factory.mktemp("ui-template") / "ui.db"
    url = f"sqlite:///{path}"
    demo.seed(url, n_trees=4, n_nodes=7)
    from argtree.store.db import get_engine

    get_engine(url).dispose()  # checkpoint the WAL into the file before it is copied
    return path


@pytest.fixture
def db(seeded, tmp_path, monkeypatch):
    for f in seeded.parent.glob("ui.db*"):
        shutil.copy(f, tmp_path / f.name)
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    monkeypatch.setenv("ARGTREE_UI_SECRET", "unit-test-secret")
    return url


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def logged_in(name: str) -> AppTest:
    with session_scope() as s:
        a = s.query(Annotator).filter_by(name=name).one()
        fp = data._fingerprint(a.password_hash)
        aid = a.id
    return app(s=auth.make_token(aid, fp))


def login_form(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def live_labels(name: str) -> list[Label]:
    with session_scope() as s:
        aid = s.query(Annotator).filter_by(name=name).one().id
        return list(s.query(Label).filter_by(annotator_id=aid, retracted_at=None).order_by(Label.id))


def premise(at: AppTest) -> str:
    bodies = [h.proto.body for h in at.get("html") if 'data-testid="premise"' in h.proto.body]
    assert len(bodies) == 1, bodies
    return bodies[0]


def answer_button(at: AppTest, kind: str):
    """The answer button of this kind for the question on screen (its key ends with the proposition id)."""
    found = [b for b in at.button if b.key and b.key.startswith(f"ans_{kind}_")]
    assert len(found) == 1, [b.key for b in at.button]
    return found[0]


def metric(at: AppTest, label: str) -> str:
    """A labelled number: an st.metric, or a cell of render.figures (one html element per row)."""
    for m in at.metric:
        if m.label == label:
            return m.value
    import html as _html
    import re

    for h in at.get("html"):
        found = re.search(rf'data-label="{re.escape(_html.escape(label, quote=True))}".*?class="value"[^>]*>(.*?)</div>',
                          h.proto.body)
        if found:
            return _html.unescape(found.group(1))
    raise AssertionError(f"no number labelled {label!r}")


# -- login ----------------------------------------------------------------

def test_only_the_login_form_without_a_session(db):
    at = app()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not [h for h in at.get("html") if "premise" in h.proto.body or "counts" in h.proto.body]
    for path in ("answer", "trees", "export", "admin"):  # other pages are not registered before login
        with pytest.raises(ValueError, match="not a registered page|Could not find"):
            at.switch_page(f"screens/{path}.py").run()


@pytest.mark.parametrize("name,password,message", [
    ("alice", "not-her-password", "Wrong password for 'alice'."),
    ("carol", "whatever-123", "There is no account named 'carol'."),
    ("", "", "Enter your name and password."),
])
def test_login_errors_are_clear(db, name, password, message):
    at = login_form(app(), name, password)
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert "s" not in at.query_params


def test_deactivated_account_cannot_log_in(db):
    data.set_user("bob", active=False)
    at = login_form(app(), "bob", "bob-pass-22")
    assert any("deactivated" in e.value for e in at.error)


def test_login_puts_a_session_in_the_url_that_survives_a_reload(db):
    at = login_form(app(), "alice", "alice-pass-1")
    assert not at.exception
    token = at.query_params["s"]
    token = token[0] if isinstance(token, list) else token
    first = premise(at)
    # A reload is a new browser session with the same URL.
    again = app(s=token)
    assert not again.exception
    assert premise(again) == first  # the leased question stays the same
    assert any("alice (annotator)" == t.value for t in again.sidebar.text)


def test_expired_or_forged_session_goes_back_to_login(db, monkeypatch):
    with session_scope() as s:
        a = s.query(Annotator).filter_by(name="alice").one()
        fp, aid = data._fingerprint(a.password_hash), a.id
    at = app(s=auth.make_token(aid, fp, seconds=-5))
    assert not at.exception
    assert any("expired" in w.value and "log in again" in w.value for w in at.warning)
    assert [b.label for b in at.button] == ["Log in"]
    at = app(s=f"{aid}.{int(time.time()) + 999}.0123456789abcdef0123456789abcdef")
    assert any("no longer valid" in w.value for w in at.warning)
    at = app(s="garbage")
    assert any("no valid session" in w.value for w in at.warning)
    # A new password ends old sessions.
    token = auth.make_token(aid, fp)
    from argtree.store.accounts import set_password

    with session_scope() as s:
        set_password(s, "alice", "a-new-password")
    assert any("no longer valid" in w.value for w in app(s=token).warning)


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2",
                                 "sqlite:///{tmp}/never-migrated.db"])
def test_database_down_says_so_without_a_traceback(db, monkeypatch, tmp_path, url):
    at = logged_in("alice")  # a valid session from before the outage
    token = at.query_params["s"]
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url.format(tmp=tmp_path))
    at = app(s=token)
    assert not at.exception
    msgs = [e.value for e in at.error]
    assert any("database is not available" in m for m in msgs), msgs
    at = login_form(app(), "alice", "alice-pass-1")
    assert not at.exception
    assert any("database is not available" in e.value for e in at.error)


def test_login_while_database_down(db, monkeypatch):
    at = app()
    monkeypatch.setenv("ARGTREE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    at = login_form(at, "alice", "alice-pass-1")
    assert not at.exception
    assert any("database is not available" in e.value for e in at.error)


# -- answer page ----------------------------------------------------------

def test_answer_true_then_undo(db):
    at = logged_in("alice")
    first = premise(at)
    left = int(metric(at, "Left to answer"))
    answer_button(at, "true").click().run()
    assert not at.exception
    labels = live_labels("alice")
    assert [(lab.value, lab.probability, lab.dont_know, lab.ill_posed) for lab in labels] == [(True, None, False, False)]
    assert labels[0].seconds is not None and labels[0].seconds >= 0
    assert premise(at) != first
    assert metric(at, "Answered today") == "1"
    assert int(metric(at, "Left to answer")) == left - 1
    at.button(key="undo").click().run()
    assert live_labels("alice") == []
    assert premise(at) == first  # the undone question comes back
    assert any("Undone" in s.value for s in at.success)


def test_every_kind_of_answer_is_stored(db):
    at = logged_in("bob")
    answer_button(at, "false").click().run()
    # probability with a comment
    html = premise(at)
    prob_key = next(s.key for s in at.slider if s.key and s.key.startswith("prob_"))
    at.slider(key=prob_key).set_value(0.85)
    at.text_input(key=prob_key.replace("prob_", "comment_")).input("checked a source")
    answer_button(at, "probability").click().run()
    assert premise(at) != html
    answer_button(at, "dont_know").click().run()
    rewrite_key = next(t.key for t in at.text_input if t.key and t.key.startswith("rewrite_"))
    at.text_input(key=rewrite_key).input("A clearer version of the claim.")
    answer_button(at, "ill_posed").click().run()
    assert not at.exception
    got = live_labels("bob")
    assert [lab.kind for lab in got] == ["false", "probability", "dont_know", "ill_posed"]
    assert got[1].probability == pytest.approx(0.85) and got[1].comment == "checked a source"
    assert got[3].rewrite == "A clearer version of the claim."
    with session_scope() as s:
        assert s.get(Proposition, got[3].rewrite_proposition_id).text == "A clearer version of the claim."
    assert metric(at, "Answered today") == "4"


def test_answer_page_shows_chain_numbers_and_what_if(db):
    at = logged_in("alice")
    q = data.next_question(at.session_state["account"].id)
    texts = [t.value for t in at.text]
    chain = next(t for t in texts if "[root question" in t)
    assert q.question in chain and q.text in chain
    assert metric(at, "Root if true") and metric(at, "Root if false")
    assert any(f"If true → {q.root_if_true:.2f}, if false → {q.root_if_false:.2f}" in t for t in texts)
    assert q.rationale in texts
    labels = {b.label: b.proto.shortcut.upper() for b in at.button}
    assert labels["True"] == "T" and labels["False"] == "F" and labels["Undo"] == "U"
    assert labels["Don't know"] == "D" and labels["Ill-posed"] == "I" and labels["Probability"] == "P"


def test_model_text_is_shown_literally(db):
    tree = ArgumentTree([Node("q", f"Root {NASTY}", prior=0.5),
                         Node("a", NASTY, parent="q", p_if_true=0.99, p_if_false=0.01,
                              extra={"credence": 0.5, "rationale": f"Because {NASTY}"})])
    ids = demo.add_trees(_url(), [tree], priority=100.0)
    assert ids
    at = logged_in("alice")
    body = premise(at)
    assert "<script>" not in body and "<b>" not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "[a link](http://example.com)" in body and "![an image](http://example.com/i.png)" in body
    assert "**stars**" in body
    texts = [t.value for t in at.text]
    assert f"Because {NASTY}" in texts  # st.text: never parsed
    assert any(NASTY in t for t in texts if "[root question" in t)


def _url() -> str:
    import os

    return os.environ["ARGTREE_DATABASE_URL"]


def test_nothing_left(db):
    at = logged_in("alice")
    for _ in range(200):
        if not [h for h in at.get("html") if 'data-testid="premise"' in h.proto.body]:
            break
        answer_button(at, "true").click().run()
    assert any("Nothing is waiting for you" in s.value for s in at.success)
    assert metric(at, "Left to answer") == "0"


# -- trees page -----------------------------------------------------------

def test_trees_page_admin_search_graph_node_and_edit(db):
    at = _goto(logged_in("admin"), "trees")
    assert not at.exception
    assert len(at.selectbox(key="tree_pick").options) == 4
    at.text_input(key="tree_search").input("Q2:").run()
    assert len(at.selectbox(key="tree_pick").options) == 1
    tid = at.selectbox(key="tree_pick").value
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    spec = json.loads(charts[0].proto.spec)
    names = [d.get("name") for d in spec.get("params", [])] + [p.get("name") for layer in spec.get("layer", [])
                                                                 for p in layer.get("params", [])]
    assert "node" in names  # clickable selection
    view = data.tree(tid)
    root = next(n for n in view.nodes if n.parent_id is None)
    leaf = view.nodes[-1]
    at.selectbox(key=f"node_pick_{tid}").set_value(leaf.id).run()
    assert any(leaf.text in h.proto.body for h in at.get("html") if "node-text" in h.proto.body)
    # Relabel (contest) the leaf: a label by admin, the root moves.
    before = view.summary.root_belief
    at.button(key=f"node_{leaf.id}_true").click().run()
    assert not at.exception
    assert [lab.proposition_id for lab in live_labels("admin")] == [leaf.proposition_id]
    labeled = data.tree(tid)
    assert labeled.history[-1].cause == "label"
    assert labeled.summary.root_belief != pytest.approx(before)
    # Edit the leaf's numbers: with the label in, the root moves again and the history records it.
    at.number_input(key=f"node_{leaf.id}_p1").set_value(0.99)
    at.number_input(key=f"node_{leaf.id}_p0").set_value(0.01)
    at.button(key=f"node_{leaf.id}_save").click().run()
    assert not at.exception
    after = data.tree(tid)
    assert after.summary.root_belief != pytest.approx(labeled.summary.root_belief)
    assert after.history[-1].cause == "edit"
    assert any(m.label == "Root belief" and m.value == f"{after.summary.root_belief:.0%}" for m in at.metric)
    assert root.id in {n.id for n in after.nodes}


def test_trees_page_annotator_sees_only_trees_they_answered(db):
    at = _goto(logged_in("bob"), "trees")
    assert any("once you have answered" in i.value for i in at.info)
    at = logged_in("bob")
    answer_button(at, "true").click().run()
    at = _goto(at, "trees")
    assert len(at.selectbox(key="tree_pick").options) == 1
    assert not [b for b in at.button if b.key and b.key.endswith("_save")]  # no admin edits


def _goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"screens/{page}.py")
    return at.run()


# -- agreement, export, admin --------------------------------------------

def test_krippendorff_alpha_matches_a_hand_computation():
    # Two raters, four units: (T,T) (F,F) (T,F) (T,T).  Coincidences o11=4, o00=2, o10=o01=1;
    # n1=5, n0=3, n=8: alpha = 1 - (2/8) / (2*5*3/(8*7)) = 1 - 14/30.
    rows = []
    for unit, (a, b) in enumerate([(1, 1), (0, 0), (1, 0), (1, 1)]):
        for who, v in (("a", a), ("b", b)):
            rows.append({"annotator": who, "proposition_id": unit, "text": f"u{unit}", "value": float(v),
                         "answer": str(v)})
    ag = data.agreement(rows)
    assert ag.units == 4
    assert ag.alpha_nominal == pytest.approx(1 - 14 / 30, abs=1e-12)
    assert [d["proposition_id"] for d in ag.disagreements] == [2]
    # Interval on 0/1 data equals nominal on two values.
    assert ag.alpha_interval == pytest.approx(ag.alpha_nominal, abs=1e-12)
    assert data.agreement(rows[:2]).alpha_nominal is None  # one value only: undefined, not a crash


def test_agreement_page(db):
    q = data.next_question(_aid("alice"))
    data.answer(_aid("alice"), q.proposition_id, "true", seconds=3.0)
    data.answer(_aid("bob"), q.proposition_id, "probability", probability=0.2, seconds=5.0)
    at = _goto(logged_in("admin"), "agreement")
    assert not at.exception
    assert metric(at, "Overlapped propositions") == "1"
    frames = at.dataframe
    assert len(frames) == 2  # per annotator, disagreements
    per = frames[0].value
    assert sorted(per["annotator"]) == ["alice", "bob"]
    assert list(frames[1].value["proposition_id"]) == [q.proposition_id]


def test_admin_pages_are_admin_only(db):
    at = logged_in("alice")
    for page in ("agreement", "export", "admin"):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            _goto(at, page)
    at = _goto(logged_in("admin"), "export")
    assert any(t.value == "Export" for t in at.title)


def test_export_page_builds_datasets_and_dumps(db):
    aid = _aid("alice")
    for _ in range(4):
        q = data.next_question(aid)
        data.answer(aid, q.proposition_id, "true")
    at = _goto(logged_in("admin"), "export")
    at.button(key="exp_build").click().run()
    assert not at.exception
    files = at.session_state["exp_files"]
    jsonl = next(v for k, v in files.items() if k.endswith(".jsonl"))
    recs = [json.loads(line) for line in jsonl.decode().splitlines()]
    assert len(recs) == 4 and all("prompt" in r and "completion" in r for r in recs)
    card = json.loads(next(v for k, v in files.items() if k.endswith(".card.json")))
    assert card["records"] == {"all": 4}
    at.checkbox(key="exp_only_labeled").check()
    at.button(key="exp_zip").click().run()
    blob, n = at.session_state["exp_zip_blob"]
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        trees = [loads(zf.read(name).decode()) for name in zf.namelist()]
    assert n == len(trees) >= 1
    assert sum(len(ev) for _, ev in trees) == 4


def test_admin_page_adds_and_deactivates_users(db):
    at = _goto(logged_in("admin"), "admin")
    at.text_input[0].input("dora")
    at.text_input[1].input("dora-pass-4")
    at.button(key="FormSubmitter:add_user-Add").click().run()
    assert not at.exception
    assert "dora" in [u["name"] for u in data.users()]
    at.text_input[0].input("x y")
    at.text_input[1].input("short")
    at.button(key="FormSubmitter:add_user-Add").click().run()
    assert any("name" in e.value for e in at.error)
    at.selectbox(key="adm_who").set_value("dora").run()
    at.button(key="adm_active").click().run()
    assert next(u for u in data.users() if u["name"] == "dora")["active"] is False


def _aid(name: str) -> int:
    with session_scope() as s:
        return s.query(Annotator).filter_by(name=name).one().id


def test_tree_count(db):
    with session_scope() as s:
        assert s.query(Tree).count() == 4


def test_database_down_while_answering(db, monkeypatch):
    at = logged_in("alice")
    monkeypatch.setenv("ARGTREE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    answer_button(at, "true").click().run()
    assert not at.exception
    msgs = [e.value for e in at.error]
    assert any("database is not available" in m for m in msgs), msgs
    monkeypatch.setenv("ARGTREE_DATABASE_URL", db)
    assert live_labels("alice") == []  # nothing half-written


def test_session_that_expires_while_answering_goes_to_login(db):
    at = logged_in("alice")
    with session_scope() as s:
        a = s.query(Annotator).filter_by(name="alice").one()
        fp, aid = data._fingerprint(a.password_hash), a.id
    short = auth.make_token(aid, fp, seconds=3)
    at = app(s=short)
    assert premise(at)
    time.sleep(3.2)
    answer_button(at, "true").click().run()
    assert not at.exception
    assert any("expired" in w.value for w in at.warning)
    assert [b.label for b in at.button] == ["Log in"]
    assert live_labels("alice") == []  # the press after expiry saved nothing


def test_left_to_answer_is_shown_as_a_lower_bound_when_capped(db, monkeypatch):
    import argtree.store as store

    real = store.annotator_stats
    monkeypatch.setattr(store, "annotator_stats", lambda s, aid, **kw: real(s, aid, remaining_limit=5))
    at = logged_in("alice")
    assert metric(at, "Left to answer") == "5+"


def test_logout_ends_the_session_and_gives_the_question_back(db):
    at = logged_in("alice")
    first = premise(at)
    at.sidebar.button(key="logout").click().run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert any("logged out" in w.value for w in at.warning)
    assert "s" not in at.query_params
    other = logged_in("bob")  # alice's lease was released: bob may get her question now
    assert premise(other) == first


@pytest.mark.postgres
def test_answer_and_undo_on_postgresql(monkeypatch, tmp_path):
    from argtree.store.testing import postgres_db

    with postgres_db() as url:
        demo.seed(url, n_trees=3, n_nodes=5, migrate=False)
        monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
        monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
        monkeypatch.setenv("ARGTREE_UI_SECRET", "unit-test-secret")
        at = login_form(app(), "alice", "alice-pass-1")
        first = premise(at)
        answer_button(at, "true").click().run()
        assert not at.exception and premise(at) != first
        assert [lab.kind for lab in live_labels("alice")] == ["true"]
        at.button(key="undo").click().run()
        assert premise(at) == first and live_labels("alice") == []
        at = _goto(logged_in("admin"), "trees")
        assert not at.exception and len(at.selectbox(key="tree_pick").options) == 3


def test_a_tree_that_vanishes_gives_a_message_not_a_traceback(db, monkeypatch):
    from argtree.store import NotFound

    at = _goto(logged_in("admin"), "trees")

    def gone(tree_id):
        raise NotFound(f"no tree with id {tree_id}", "tree_id")

    monkeypatch.setattr(data, "tree", gone)
    at.text_input(key="tree_search").input("Q1:").run()
    assert not at.exception
    assert any("no longer there" in w.value for w in at.warning)
