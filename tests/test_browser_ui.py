"""The oracle app in a real headless Chromium (Debian's, via Playwright's executable_path; never downloaded).

One server (`argtree ui`) for the module, on a seeded SQLite file.  Screenshots of
every page go to artifacts/ (gitignored); ARGTREE_DOCS_SCREENSHOT=1 also refreshes
docs/answer_page.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
from browser_fixtures import browser, new_page  # noqa: E402, F401

from argtree.store.db import get_engine, session_scope  # noqa: E402
from argtree.store.models import Annotator, Label, WebSession, utcnow  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import demo, testing  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(testing.chromium_path() is None,
                                 reason="Debian's chromium is not installed: run `make services`")]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
NASTY = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> '
         '[a link](http://example.com) ![an image](http://example.com/i.png) **stars** <b>bold</b>')
USERS = (("alice", "alice-pass-1", False), ("bob", "bob-pass-22", False), ("carol", "carol-pass-3", False),
         ("dave", "dave-pass-44", False), ("admin", "admin-pass-3", True))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-ui")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=12, n_nodes=7, users=USERS)
    # One tree whose premise is hostile model text, ranked first in the queue (priority 1000).
    hostile = ArgumentTree([Node("q", "Is the hostile premise shown literally?", prior=0.5),
                            Node("a", NASTY, parent="q", p_if_true=0.95, p_if_false=0.05,
                                 extra={"credence": 0.5, "rationale": f"Rationale: {NASTY}"})])
    demo.add_trees(url, [hostile], priority=1000.0)
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home) as base:
        yield {"base": base, "url": url, "home": home}


def labels_of(url: str, name: str, *, live: bool = True) -> list[Label]:
    with session_scope(url) as s:
        aid = s.query(Annotator).filter_by(name=name).one().id
        q = s.query(Label).filter_by(annotator_id=aid)
        if live:
            q = q.filter(Label.retracted_at.is_(None))
        return list(q.order_by(Label.id))


def no_traceback(page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and 'File "' not in body, body[:2000]


def test_hostile_premise_renders_literally(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "alice", "alice-pass-1")
    shown = testing.premise(page)
    assert shown == NASTY  # every character as typed, nothing interpreted
    main = page.locator('[data-testid="stMain"]')
    assert page.evaluate("window.__pwned === undefined")
    premise = page.locator('[data-testid="premise"]')
    assert premise.locator("script, img, a, b, strong").count() == 0
    assert main.locator('img[src="x"], a[href="http://example.com"], img[src="http://example.com/i.png"]').count() == 0
    assert main.get_by_text(f"Rationale: {NASTY}", exact=True).count() == 1  # the rationale, literal too
    page.screenshot(path=str(ARTIFACTS / "answer_hostile_premise.png"), full_page=True)
    ctx.close()


def test_keyboard_answers_undo_reload_and_database(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "bob", "bob-pass-22")
    seen = [testing.premise(page)]
    page.screenshot(path=str(ARTIFACTS / "answer_page.png"), full_page=True)
    for key in "TFD":
        testing.press(page, key)
        seen.append(testing.wait_premise_change(page, seen[-1]))
        if key == "T" and os.environ.get("ARGTREE_DOCS_SCREENSHOT"):  # an ordinary question, one answer given
            page.get_by_text("Saved: True.").wait_for(timeout=30_000)
            page.screenshot(path=str(ROOT / "docs" / "answer_page.png"))
    testing.press(page, "U")  # undo the "don't know"
    back = testing.wait_premise_change(page, seen[-1])
    assert back == seen[2]
    page.reload()
    assert testing.premise(page) == seen[2]  # still logged in, same question after a reload
    assert page.get_by_text("bob (annotator)").count() == 1
    live = labels_of(server["url"], "bob")
    with session_scope(server["url"]) as s:
        from argtree.store.models import Proposition

        texts = [s.get(Proposition, lab.proposition_id).text for lab in live]
    assert [(lab.kind, t) for lab, t in zip(live, texts)] == [("true", seen[0]), ("false", seen[1])]
    every = labels_of(server["url"], "bob", live=False)
    assert [(lab.kind, lab.retracted_at is not None) for lab in every] == [
        ("true", False), ("false", False), ("dont_know", True)]
    # Typing in the comment box does not fire the answer shortcuts: after typing, one real "T" (outside
    # the box) answers once, with the typed comment; a shortcut fired by the typing would add labels.
    page.get_by_role("textbox", name="Comment (optional)").press_sequentially("tfdipu")
    page.get_by_role("textbox", name="Comment (optional)").press("Enter")
    page.locator('[data-testid="premise"]').click()
    testing.press(page, "T")
    testing.wait_premise_change(page, seen[2])
    every = labels_of(server["url"], "bob", live=False)
    assert [(lab.kind, lab.retracted_at is not None) for lab in every][3:] == [("true", False)]
    assert every[3].comment == "tfdipu"
    # Switching pages from the sidebar keeps the session (a cookie: the URL holds no credential), through a reload.
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Trees").click()
    page.get_by_role("heading", name="Trees").wait_for(timeout=30_000)
    assert "s=" not in page.url and "token" not in page.url
    page.reload()
    page.get_by_role("heading", name="Trees").wait_for(timeout=30_000)
    assert page.get_by_text("bob (annotator)").count() == 1
    no_traceback(page)
    ctx.close()


def test_two_annotators_never_see_the_same_question(server, browser):
    ctx1, p1 = new_page(browser)
    ctx2, p2 = new_page(browser)
    testing.login(p1, server["base"], "carol", "carol-pass-3")
    testing.login(p2, server["base"], "dave", "dave-pass-44")
    a, b = testing.premise(p1), testing.premise(p2)
    shown = {"carol": [a], "dave": [b]}
    for _ in range(4):
        assert a != b
        testing.press(p1, "T")
        a = testing.wait_premise_change(p1, a)
        assert a != b
        testing.press(p2, "F")
        b = testing.wait_premise_change(p2, b)
        shown["carol"].append(a)
        shown["dave"].append(b)
    assert not set(shown["carol"]) & set(shown["dave"])
    c = {lab.proposition_id for lab in labels_of(server["url"], "carol")}
    d = {lab.proposition_id for lab in labels_of(server["url"], "dave")}
    assert len(c) == len(d) == 4 and not c & d
    ctx1.close()
    ctx2.close()


def test_every_page_renders_and_is_captured(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "admin", "admin-pass-3")
    testing.premise(page)
    testing.press(page, "T")  # one label of the admin's, so the trees page has history to show
    page.get_by_text("Saved: True.").wait_for(timeout=30_000)
    for path, marker in (("trees", "Root belief over the labels received"), ("agreement", "Labels per annotator"),
                         ("export", "Fine-tuning dataset"), ("admin", "Loop runs")):
        page.goto(f"{server['base']}/{path}", wait_until="domcontentloaded")
        page.get_by_text(marker).first.wait_for(timeout=30_000)
        if path == "trees":
            page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg') \
                .first.wait_for(timeout=30_000)
        no_traceback(page)
        page.screenshot(path=str(ARTIFACTS / f"{path}_page.png"), full_page=True)
    ctx.close()


def test_expired_session_and_no_session_in_the_browser(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "alice", "alice-pass-1")
    with session_scope(server["url"]) as s:  # the session runs out (no waiting: its expiry moves)
        aid = s.query(Annotator).filter_by(name="alice").one().id
        s.query(WebSession).filter_by(annotator_id=aid).update({"expires_at": utcnow()})
    page.reload()
    page.get_by_text("Your session expired; please log in again.").wait_for(timeout=30_000)
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    ctx.close()
    ctx, page = new_page(browser)
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")  # no page but login without a session
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    assert page.locator('[data-testid="premise"]').count() == 0
    no_traceback(page)
    page.screenshot(path=str(ARTIFACTS / "login_page.png"), full_page=True)
    ctx.close()


def test_database_down_in_the_browser(server, browser, tmp_path):
    # A second server whose database is unreachable (nothing listens on port 1).
    with testing.serve("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", home=tmp_path) as base:
        ctx, page = new_page(browser)
        testing.submit_login(page, base, "alice", "alice-pass-1")
        page.get_by_text("The database is not available").wait_for(timeout=30_000)
        no_traceback(page)
        page.screenshot(path=str(ARTIFACTS / "database_down.png"), full_page=True)
        ctx.close()


def test_click_a_node_in_the_graph_shows_it(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "admin", "admin-pass-3")
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")
    page.get_by_role("textbox", name="Search the questions").fill("hostile")
    page.keyboard.press("Enter")
    page.get_by_text("1 shown").wait_for(timeout=30_000)
    node_box = page.locator('[data-testid="node-text"]')
    node_box.wait_for(timeout=30_000)
    assert node_box.inner_text() == "Is the hostile premise shown literally?"  # the root, before any click
    # Vega draws SVG: each node is a path labelled with its fields ("node: a; ...").
    mark = page.locator('[data-testid="stVegaLiteChart"] g.mark-symbol.role-mark path[aria-label*="node: a;"]')
    mark.wait_for(timeout=30_000)
    mark.click()
    page.wait_for_function(
        "t => { const e = document.querySelector('[data-testid=node-text]'); return e && e.innerText === t; }",
        arg=NASTY, timeout=30_000)
    assert node_box.inner_text() == NASTY  # the clicked premise's text, literally
    assert page.locator('[data-testid="stMain"]').get_by_text("supports").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "trees_node_clicked.png"), full_page=True)
    ctx.close()
