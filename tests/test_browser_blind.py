"""Blind answers in a real headless Chromium (Debian's, via Playwright's executable_path; never downloaded).

Issue 13: an annotator cannot see another's answer (nor comment, nor name) on a proposition before
answering it, on the Answer page or the Trees page; after answering, they can.  No sleeps: every wait
is for something on the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
from browser_fixtures import browser, new_page  # noqa: E402, F401

from argtree.store import create_session, set_queue_settings  # noqa: E402
from argtree.store import webui  # noqa: E402
from argtree.store.db import get_engine, session_scope  # noqa: E402
from argtree.store.models import Annotator, Label, Node as NodeRow  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import demo, testing  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(testing.chromium_path() is None,
                                 reason="Debian's chromium is not installed: run `make services`")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = (("carol", "carol-pass-77", False), ("dan", "dan-pass-88", False), ("boss", "boss-pass-99", True))
TELLING = "The telling premise about tides holds."
SECRET = "DAN-SECRET-COMMENT-4711"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-blind")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=0, users=USERS)
    tree = ArgumentTree([Node("q", "Is the blind question settled?", prior=0.5),
                         Node("a", TELLING, parent="q", p_if_true=0.95, p_if_false=0.05),
                         Node("b", "A weak side premise holds.", parent="q", p_if_true=0.55, p_if_false=0.45)])
    (tid,) = demo.add_trees(url, [tree], priority=1000.0)
    with session_scope(url) as s:
        set_queue_settings(s, overlap=2)
        ids = {a.name: a.id for a in s.query(Annotator)}
        pid = {n.local_id: n.proposition_id for n in s.query(NodeRow).filter_by(tree_id=tid)}
        dan, carol = create_session(s, ids["dan"]), create_session(s, ids["carol"])
        webui.answer(s, dan, pid["a"], "false", comment=SECRET, request_id="dan-a")
        webui.answer(s, carol, pid["b"], "true", request_id="carol-b")  # so the tree is on carol's Trees page
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home) as base:
        yield {"base": base, "url": url, "tree": tid}


def _idle(page) -> None:
    """Wait until the app's script run is over (Streamlit's running indicator is gone), so leaving the page
    does not start a second run while the first is still importing its libraries."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30_000)


def _trees_page_node_a(page, base: str) -> str:
    """Open the Trees page and pick premise a; the main area once it shows a."""
    page.goto(f"{base}/trees", wait_until="domcontentloaded")
    page.get_by_text("1 shown").wait_for(timeout=30_000)
    page.locator('[data-testid="node-text"]').wait_for(timeout=30_000)  # the root, shown first
    _idle(page)
    # Vega draws SVG: each node is a path labelled with its fields ("node: a; ..."); clicking it selects it.
    mark = page.locator('[data-testid="stVegaLiteChart"] g.mark-symbol.role-mark path[aria-label*="node: a;"]')
    mark.wait_for(timeout=30_000)
    mark.click()
    page.wait_for_function(
        "t => { const e = document.querySelector('[data-testid=node-text]'); return e && e.innerText === t; }",
        arg=TELLING, timeout=30_000)
    return page.locator('[data-testid="stMain"]')


def test_an_annotator_sees_another_answer_only_after_answering(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "carol", "carol-pass-77")
    # The Answer page asks carol the premise dan answered (overlap 2), without his answer or comment.
    assert testing.premise(page) == TELLING
    _idle(page)
    body = page.locator("body").inner_text()
    assert SECRET not in body and "dan" not in body and SECRET not in page.content()
    # The Trees page: the node's labels are withheld, with the reason; dan's comment is nowhere.
    main = _trees_page_node_a(page, server["base"])
    main.get_by_text("hidden until you answer it").wait_for(timeout=30_000)
    text = main.inner_text()
    # page.content(): the whole DOM, with the data grid's hidden cells (inner_text skips hidden elements)
    assert SECRET not in text and "dan" not in text and SECRET not in page.content()
    page.screenshot(path=str(ARTIFACTS / "trees_blind_before.png"), full_page=True)
    # carol answers it on the Answer page ...
    page.goto(server["base"] + "/", wait_until="domcontentloaded")
    assert testing.premise(page) == TELLING
    page.get_by_role("button", name=re.compile("^True")).click()
    page.get_by_text("Saved: True.").wait_for(timeout=30_000)
    _idle(page)
    with session_scope(server["url"]) as s:
        carol = s.query(Annotator).filter_by(name="carol").one().id
        assert sorted(lab.kind for lab in s.query(Label).filter_by(annotator_id=carol, retracted_at=None)) == [
            "true", "true"]
    # ... and now sees dan's answer and comment on the Trees page.
    main = _trees_page_node_a(page, server["base"])
    main.get_by_text(SECRET).wait_for(state="attached", timeout=30_000)  # a cell of the labels' data grid
    assert "hidden until you answer it" not in main.inner_text()
    page.screenshot(path=str(ARTIFACTS / "trees_blind_after.png"), full_page=True)
    ctx.close()
