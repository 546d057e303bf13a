"""Gold questions and consistency flags in a real headless Chromium (Debian's, via Playwright's executable_path).

Issue 13: a gold question looks like any other and scores the annotator who answers it (the admin
re-estimates on the Agreement page and sees it); an admin resolves a consistency flag there and the
resolution is recorded.  No sleeps: every wait is for something on the page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
from browser_fixtures import browser, new_page  # noqa: E402, F401

from argtree.store import mark_gold, set_queue_settings  # noqa: E402
from argtree.store.db import get_engine, session_scope  # noqa: E402
from argtree.store.flags import find_flags  # noqa: E402
from argtree.store.models import Annotator, AnnotatorEstimate, Node as NodeRow  # noqa: E402
from argtree.tree import ArgumentTree, Evidence, Node  # noqa: E402
from oracle_ui import demo, testing  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(testing.chromium_path() is None,
                                 reason="Debian's chromium is not installed: run `make services`")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = (("gina", "gina-pass-31", False), ("boss", "boss-pass-62", True))
GOLD = "The old bridge opened in 1932."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-gold")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=0, users=USERS)
    tree = ArgumentTree([Node("q", "Is the old bridge safe?", prior=0.5),
                         Node("g", GOLD, parent="q", p_if_true=0.6, p_if_false=0.4),
                         Node("b", "Ad-hoc inspections drop.", parent="q", p_if_true=0.5, p_if_false=0.8),
                         Node("c", "Ad-hoc inspections do not drop.", parent="q", p_if_true=0.6, p_if_false=0.4)])
    (tid,) = demo.add_trees(url, [tree])
    with session_scope(url) as s:
        from argtree.store import save_tree

        save_tree(s, ArgumentTree([Node("r", "Are inspections regular?", prior=0.5),
                                   Node("b", "Ad-hoc inspections drop.", parent="r", p_if_true=0.5,
                                        p_if_false=0.8)]), [Evidence("b", True, 0.95)])
        save_tree(s, ArgumentTree([Node("r", "Are inspections frequent?", prior=0.5),
                                   Node("c", "Ad-hoc inspections do not drop.", parent="r", p_if_true=0.5,
                                        p_if_false=0.8)]), [Evidence("c", True, 0.95)])
        gid = s.query(NodeRow).filter_by(tree_id=tid, local_id="g").one().proposition_id
        mark_gold(s, gid, True)
        set_queue_settings(s, gold_rate=1.0)  # the first question is the gold one
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home) as base:
        yield {"base": base, "url": url}


def _idle(page) -> None:
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30_000)


def test_a_gold_question_scores_its_annotator_and_an_admin_resolves_a_flag(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "gina", "gina-pass-31")
    assert testing.premise(page) == GOLD
    _idle(page)
    assert "gold" not in page.locator("body").inner_text().lower()  # never shown as gold
    page.get_by_role("button", name=re.compile("^False")).click()   # the wrong answer
    page.get_by_text("Saved: False.").wait_for(timeout=30_000)
    _idle(page)
    ctx.close()

    ctx, page = new_page(browser)
    testing.login(page, server["base"], "boss", "boss-pass-62")
    page.goto(f"{server['base']}/agreement", wait_until="domcontentloaded")
    page.get_by_role("button", name="Re-estimate now").click()
    page.get_by_text(re.compile(r"Re-estimated: \d+ annotator")).wait_for(timeout=30_000)
    _idle(page)
    with session_scope(server["url"]) as s:
        gina = s.query(Annotator).filter_by(name="gina").one()
        est = s.get(AnnotatorEstimate, gina.id)
        assert (est.n_gold, est.gold_correct) == (1, 0.0) and est.reliability < gina.reliability
    page.get_by_text("0/1").first.wait_for(timeout=30_000)  # gina: 0 of 1 gold right, in the table
    # The flag: "... drop." and "... do not drop." both believed above 0.7 (both labeled true, too).
    with session_scope(server["url"]) as s:
        (flag,) = [f for f in find_flags(s) if f.kind == "negation"]
    page.get_by_text(flag.key).first.wait_for(timeout=30_000)
    page.locator('input[aria-label="What was done (optional)"]').first.fill("asked the inspector")
    page.keyboard.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Mark resolved").first.click()
    page.wait_for_function("k => !document.body.innerText.includes(k)", arg=flag.key, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "agreement_flag_resolved.png"), full_page=True)
    with session_scope(server["url"]) as s:
        (done,) = [f for f in find_flags(s, include_resolved=True) if f.key == flag.key]
        assert done.resolved["by"] == "boss" and done.resolved["note"] == "asked the inspector"
    ctx.close()
