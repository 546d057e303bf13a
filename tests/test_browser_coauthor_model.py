"""Web co-authoring in a real headless Chromium (Debian's, via Playwright's executable_path), issue 13: an
annotator adds a premise on the Trees page, lets the model elicit its numbers (the app's model: the
scripted fake here, ``argtree ui --backend fake``) and answers it; the root moves at once and the node
records the numbers as the model's, the change as hers.  No sleeps: every wait is for something on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
from browser_fixtures import browser, new_page  # noqa: E402, F401

from argtree.store import save_tree, submit_label  # noqa: E402
from argtree.store.db import get_engine, session_scope  # noqa: E402
from argtree.store.models import Annotator, Node as NodeRow, Proposition, Tree, TreeEdit  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import demo, testing  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(testing.chromium_path() is None,
                                 reason="Debian's chromium is not installed: run `make services`")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = (("ann", "ann-pass-12", False),)
ROOT = "Will the ferry run on time this winter?"
KNOWN = "The ferry's engine was overhauled."
NEW = "The crew was doubled for the winter."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-coauthor-model")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=0, users=USERS)
    with session_scope(url) as s:
        t1 = save_tree(s, ArgumentTree([Node("r", ROOT, prior=0.5),
                                        Node("a", KNOWN, parent="r", p_if_true=0.7, p_if_false=0.4)]))
        ann = s.query(Annotator).filter_by(name="ann").one().id
        pid = s.query(Proposition).filter_by(text=KNOWN).one().id
        submit_label(s, ann, pid, True)   # ann has answered in t1: the Trees page lists it for her
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home, extra_env={"ARGTREE_UI_BACKEND": "fake"}) as base:
        yield {"base": base, "url": url, "t1": t1}


def _idle(page) -> None:
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30_000)


def test_the_model_elicits_a_new_premises_numbers(server, browser):
    with session_scope(server["url"]) as s:
        before = s.get(Tree, server["t1"]).root_belief
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "ann", "ann-pass-12")
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")
    page.get_by_text("1 shown").wait_for(timeout=30_000)
    page.locator('[data-testid="node-text"]').wait_for(timeout=30_000)   # the root, shown first
    _idle(page)
    loc = page.locator('[data-testid="root-numbers"]').first
    loc.wait_for(timeout=30_000)
    shown = loc.inner_text()
    page.get_by_text("Add a premise under this node").click()
    box = page.get_by_label("Premise (one sentence)")
    box.fill(NEW)
    box.press("Enter")
    _idle(page)
    page.get_by_role("radiogroup", name="Its numbers").get_by_text("let the model elicit them").click()
    _idle(page)
    page.get_by_role("radiogroup", name="Your answer to it").get_by_text("True", exact=True).click()
    _idle(page)
    page.get_by_text("The model's numbers also say whether it speaks for or against this node.").wait_for(
        timeout=30_000)
    assert page.get_by_label("P(premise true | this node true)").count() == 0   # no numbers of her own asked
    page.get_by_role("button", name="Add premise").click()
    page.get_by_text("Premise added with the model's numbers").wait_for(timeout=30_000)
    page.wait_for_function(
        "old => { const e = document.querySelector('[data-testid=\"root-numbers\"]'); "
        "return e !== null && e.innerText !== old; }", arg=shown, timeout=30_000)
    _idle(page)
    page.screenshot(path=str(ARTIFACTS / "trees_premise_model_numbers.png"), full_page=True)
    with session_scope(server["url"]) as s:
        tree = s.get(Tree, server["t1"])
        assert abs(tree.root_belief - before) > 0.005           # her answer, weighed by the model's numbers
        node = s.query(NodeRow).join(Proposition, Proposition.id == NodeRow.proposition_id).filter(
            NodeRow.tree_id == tree.id, Proposition.text == NEW).one()
        assert node.extra["numbers"] == "model" and node.extra["elicited_by"] == "fake"
        assert node.extra["author"] == "ann" and node.model_credence is not None
        assert node.p_if_true != node.p_if_false
        (edit,) = s.query(TreeEdit).filter_by(tree_id=tree.id).all()
        assert edit.action == "add" and edit.detail["numbers"] == "model"
        assert edit.annotator_id == s.query(Annotator).filter_by(name="ann").one().id
    ctx.close()
