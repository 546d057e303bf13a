"""The oracle app's pages, run in-process with Streamlit's AppTest on a real migrated SQLite store."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from argtree.io import loads  # noqa: E402
from argtree.store import create_session, set_password  # noqa: E402
from argtree.store.db import session_scope  # noqa: E402
from argtree.store.models import Annotator, Label, Proposition, Tree  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import auth, data, demo, render  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "oracle_ui" / "main.py")
NASTY = ('<script>alert("x")</script> <b>bold?</b> [a link](http://example.com) '
         '![an image](http://example.com/i.png) **stars** & `code`')
BROWSER = {"token": None}  # the cookie the "browser" sends (AppTest cannot send cookies)


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
    monkeypatch.setattr(auth, "browser_token", lambda: BROWSER["token"])
    BROWSER["token"] = None
    return url


def app(token: str | None = None) -> AppTest:
    BROWSER["token"] = token
    at = AppTest.from_file(APP, default_timeout=60)
    return at.run()


def session_for(name: str, **kw) -> str:
    with session_scope() as s:
        return create_session(s, s.query(Annotator).filter_by(name=name).one().id, **kw)


def logged_in(name: str) -> AppTest:
    return app(session_for(name))


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


def login_link(at: AppTest) -> str:
    found = [h.proto.body for h in at.get("html") if 'data-testid="login-link"' in h.proto.body]
    assert len(found) == 1, [h.proto.body for h in at.get("html")]
    return found[0]


def messages(at: AppTest) -> list[str]:
    return [m.value for kind in (at.error, at.warning, at.info) for m in kind]


# -- sessions -------------------------------------------------------------

def test_without_a_session_only_a_login_link(db):
    at = app()
    assert not at.exception
    assert not at.button and 'href="/auth/login"' in login_link(at)
    assert not [h for h in at.get("html") if "premise" in h.proto.body or "counts" in h.proto.body]
    for path in ("answer", "trees", "export", "admin"):  # no page is registered without a session
        with pytest.raises(ValueError, match="not a registered page|Could not find"):
            at.switch_page(f"screens/{path}.py").run()


def test_a_live_session_survives_a_reload(db):
    token = session_for("alice")
    at = app(token)
    assert not at.exception
    first = premise(at)
    again = app(token)  # a reload: a new Streamlit session, the same cookie
    assert premise(again) == first  # the leased question stays the same
    assert any("alice (annotator)" == t.value for t in again.sidebar.text)


def test_ended_sessions_say_why(db):
    from datetime import timedelta

    from argtree.store import utcnow

    at = app(session_for("alice", now=utcnow() - timedelta(hours=13)))
    assert not at.exception and any("expired" in m for m in messages(at))
    assert "why=expired" in login_link(at)
    at = app("forged-or-garbage")
    assert not at.exception and any("no valid session" in m for m in messages(at))
    token = session_for("alice")
    with session_scope() as s:
        set_password(s, "alice", "a-new-password")
    at = app(token)
    assert any("password of this account was changed" in m for m in messages(at))
    assert not [h for h in at.get("html") if 'data-testid="premise"' in h.proto.body]


@pytest.mark.parametrize("url", ["postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2",
                                 "sqlite:///{tmp}/never-migrated.db"])
def test_database_down_says_so_without_a_traceback(db, monkeypatch, tmp_path, url):
    token = session_for("alice")  # a valid session from before the outage
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url.format(tmp=tmp_path))
    at = app(token)
    assert not at.exception
    msgs = [e.value for e in at.error]
    assert any("database is not available" in m for m in msgs), msgs


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
    q, _ = data.next_question(at.session_state["token"])
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
    token = at.session_state["token"]
    view = data.tree(token, tid)
    root = next(n for n in view.nodes if n.parent_id is None)
    leaf = view.nodes[-1]
    at.selectbox(key=f"node_pick_{tid}").set_value(leaf.id).run()
    assert any(leaf.text in h.proto.body for h in at.get("html") if "node-text" in h.proto.body)
    # Relabel (contest) the leaf: a label by admin, the root moves.
    before = view.summary.root_belief
    at.button(key=f"node_{leaf.id}_true").click().run()
    assert not at.exception
    assert [lab.proposition_id for lab in live_labels("admin")] == [leaf.proposition_id]
    labeled = data.tree(token, tid)
    assert labeled.history[-1]["cause"] == "label"
    assert labeled.summary.root_belief != pytest.approx(before)
    # Edit the leaf's numbers: with the label in, the root moves again and the history records it.
    at.number_input(key=f"node_{leaf.id}_p1").set_value(0.99)
    at.number_input(key=f"node_{leaf.id}_p0").set_value(0.01)
    at.button(key=f"node_{leaf.id}_save").click().run()
    assert not at.exception
    after = data.tree(token, tid)
    assert after.summary.root_belief != pytest.approx(labeled.summary.root_belief)
    assert after.history[-1]["cause"] == "edit"
    assert metric(at, "Tree's belief") == render.pct(after.summary.root_belief)
    shown = lambda p: "—" if p is None else render.pct(p)  # noqa: E731
    assert metric(at, "Model's direct answer") == shown(after.root.direct)
    assert metric(at, "Labels only") == shown(after.root.labels_only)
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
    alice, bob = session_for("alice"), session_for("bob")
    q, _ = data.next_question(alice)
    data.answer(alice, q.proposition_id, "true", seconds=3.0)
    data.answer(bob, q.proposition_id, "probability", probability=0.2, seconds=5.0)
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
    alice = session_for("alice")
    for _ in range(4):
        q, _ = data.next_question(alice)
        data.answer(alice, q.proposition_id, "true")
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
    token = at.session_state["token"]
    assert "dora" in [u["name"] for u in data.users(token)]
    at.text_input[0].input("x y")
    at.text_input[1].input("short")
    at.button(key="FormSubmitter:add_user-Add").click().run()
    assert any("name" in e.value for e in at.error)
    at.selectbox(key="adm_who").set_value("dora").run()
    at.button(key="adm_active").click().run()
    assert next(u for u in data.users(token) if u["name"] == "dora")["active"] is False


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


def _end(name: str, why: str) -> None:
    """End every session of ``name`` the way the CLI or an admin would (or expire them)."""
    from argtree.store import WebSession, set_annotator, utcnow

    with session_scope() as s:
        if why == "password":
            set_password(s, name, "brand-new-password")
        elif why == "deactivated":
            set_annotator(s, name, active=False)
        else:  # expired: move the expiry into the past (no sleeping)
            aid = s.query(Annotator).filter_by(name=name).one().id
            s.query(WebSession).filter_by(annotator_id=aid).update({"expires_at": utcnow()})


@pytest.mark.parametrize("why,says", [("password", "password of this account was changed"),
                                      ("deactivated", "deactivated"), ("expired", "expired")])
def test_an_answer_after_the_session_ended_stores_nothing_and_says_why(db, why, says):
    at = logged_in("alice")
    first = premise(at)
    _end("alice", why)
    answer_button(at, "true").click().run()
    assert not at.exception
    msgs = messages(at)
    assert any(says in m and "not saved" in m for m in msgs), msgs
    assert f"why={why}" in login_link(at)
    assert not [h for h in at.get("html") if 'data-testid="premise"' in h.proto.body]
    assert live_labels("alice") == []  # the press after the end saved nothing
    assert first


def test_undo_and_trees_writes_after_the_session_ended_store_nothing(db):
    at = logged_in("alice")
    answer_button(at, "true").click().run()
    assert len(live_labels("alice")) == 1
    _end("alice", "password")
    at.button(key="undo").click().run()
    assert not at.exception and any("not saved" in m for m in messages(at))
    assert len(live_labels("alice")) == 1  # the undo did not happen
    at = _goto(logged_in("admin"), "trees")
    view = data.tree(at.session_state["token"], at.selectbox(key="tree_pick").value)
    leaf = view.nodes[-1]
    at.selectbox(key=f"node_pick_{view.summary.id}").set_value(leaf.id).run()
    _end("admin", "password")
    at.button(key=f"node_{leaf.id}_true").click().run()
    assert not at.exception and any("not saved" in m for m in messages(at))
    assert live_labels("admin") == []


def test_admin_actions_check_the_role_now(db):
    at = _goto(logged_in("admin"), "admin")
    assert [b for b in at.button if b.key == "adm_active"]
    with session_scope() as s:
        from argtree.store import set_annotator

        set_annotator(s, "admin", admin=False)  # demoted while the page is open
    at.selectbox(key="adm_who").set_value("bob").run()  # the next interaction re-reads the role
    assert not at.exception
    assert not [b for b in at.button if b.key == "adm_active"]  # no admin page any more
    assert _active("bob")


def _active(name: str) -> bool:
    with session_scope() as s:
        return s.query(Annotator).filter_by(name=name).one().active


def test_left_to_answer_is_shown_as_a_lower_bound_when_capped(db, monkeypatch):
    import argtree.store.queue as queue

    real = queue.annotator_stats
    monkeypatch.setattr(queue, "annotator_stats", lambda s, aid, **kw: real(s, aid, remaining_limit=5))
    at = logged_in("alice")
    assert metric(at, "Left to answer") == "5+"


def test_logout_ends_the_session_and_gives_the_question_back(db):
    token = session_for("alice")
    at = app(token)
    first = premise(at)
    at.sidebar.button(key="logout").click().run()
    assert not at.exception
    assert any("logged out" in m for m in messages(at)) and "why=logout" in login_link(at)
    again = app(token)  # Back, or the same cookie in another browser: the session is over
    assert any("logged out" in m.lower() for m in messages(again))
    assert not [h for h in again.get("html") if 'data-testid="premise"' in h.proto.body]
    other = logged_in("bob")  # alice's lease was released: bob may get her question now
    assert premise(other) == first


@pytest.mark.postgres
def test_answer_and_undo_on_postgresql(monkeypatch, tmp_path):
    from argtree.store.testing import postgres_db

    with postgres_db() as url:
        demo.seed(url, n_trees=3, n_nodes=5, migrate=False)
        monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
        monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
        monkeypatch.setattr(auth, "browser_token", lambda: BROWSER["token"])
        at = logged_in("alice")
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

    def gone(token, tree_id):
        raise NotFound(f"no tree with id {tree_id}", "tree_id")

    monkeypatch.setattr(data, "tree", gone)
    at.text_input(key="tree_search").input("Q1:").run()
    assert not at.exception
    assert any("no longer there" in w.value for w in at.warning)


def test_bidi_overrides_and_controls_are_shown_escaped(db):
    tricky = "RTL \u202eevil\u202c and zero\u200bwidth"
    tree = ArgumentTree([Node("q", "Root with \u202eoverride?", prior=0.5),
                         Node("a", tricky, parent="q", p_if_true=0.99, p_if_false=0.01,
                              extra={"credence": 0.5, "rationale": "Because \u2067isolated\u2069."})])
    demo.add_trees(_url(), [tree], priority=100.0)
    at = logged_in("alice")
    body = premise(at)
    assert "RTL \\u202eevil\\u202c and zero\\u200bwidth" in body
    for raw in ("\u202e", "\u202c", "\u200b"):
        assert raw not in body
    texts = [t.value for t in at.text]
    assert "Because \\u2067isolated\\u2069." in texts
    assert not any("\u202e" in t or "\u2067" in t for t in texts)
    assert any("Root with \\u202eoverride?" in t for t in texts if "[root question" in t)


def test_answer_page_shows_the_three_root_numbers(db):
    at = logged_in("alice")
    q, root = data.next_question(at.session_state["token"])
    shown = lambda p: "—" if p is None else render.pct(p)  # noqa: E731
    assert metric(at, "Tree's belief") == shown(root.belief) != "—"
    assert metric(at, "Model's direct answer") == shown(root.direct)
    with session_scope() as s:
        t = s.get(Tree, q.tree_id)
        t.direct_answer, t.root_labels_only = 0.42, None
    at = app(at.session_state["token"])
    assert metric(at, "Model's direct answer") == "42%"
    assert metric(at, "Labels only") == "—"


def test_admin_ends_another_accounts_sessions(db):
    bob = session_for("bob")
    assert premise(app(bob))
    at = _goto(logged_in("admin"), "admin")
    at.selectbox(key="adm_who").set_value("bob").run()
    at.button(key="adm_logout").click().run()
    assert not at.exception and any("Ended 1 session(s) of bob." in m.value for m in at.success)
    again = app(bob)
    assert any("An admin ended this session." in m for m in messages(again))
    assert "why=admin" in login_link(again)
