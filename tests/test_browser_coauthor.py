"""Co-authoring the trees in a real headless Chromium (Debian's, via Playwright's executable_path), issue 13:
an annotator adds a premise on the Trees page and the root moves at once; an ill-posed answer's rewrite on
the Answer page replaces the node in its tree (an admin sees the new text there).  No sleeps: every wait is
for something on the page."""

from __future__ import annotations

import re
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
USERS = (("ann", "ann-pass-12", False), ("boss", "boss-pass-62", True))
ROOT = "Will the ferry run on time this winter?"
KNOWN = "The ferry's engine was overhauled."
VAGUE = "The weather will be fine."
REWRITE = "Fewer than five winter storms are forecast for the strait."
NEW = "The crew was doubled for the winter."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-coauthor")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=0, users=USERS)
    with session_scope(url) as s:
        t1 = save_tree(s, ArgumentTree([Node("r", ROOT, prior=0.5),
                                        Node("a", KNOWN, parent="r", p_if_true=0.7, p_if_false=0.4)]))
        t2 = save_tree(s, ArgumentTree([Node("q", "Will the harbour festival go ahead?", prior=0.5),
                                        Node("v", VAGUE, parent="q", p_if_true=0.8, p_if_false=0.2)]),
                       priority=10.0)   # its premise tops the queue
        ann = s.query(Annotator).filter_by(name="ann").one().id
        pid = s.query(Proposition).filter_by(text=KNOWN).one().id
        submit_label(s, ann, pid, True)   # ann has answered in t1: the Trees page lists it for her
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home) as base:
        yield {"base": base, "url": url, "t1": t1, "t2": t2}


def _idle(page) -> None:
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=30_000)


def _root_numbers(page) -> str:
    loc = page.locator('[data-testid="root-numbers"]').first
    loc.wait_for(timeout=30_000)
    return loc.inner_text()


def test_adding_a_premise_moves_the_root(server, browser):
    with session_scope(server["url"]) as s:
        before = s.get(Tree, server["t1"]).root_belief
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "ann", "ann-pass-12")
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")
    page.get_by_text("1 shown").wait_for(timeout=30_000)
    page.locator('[data-testid="node-text"]').wait_for(timeout=30_000)   # the root, shown first
    _idle(page)
    shown = _root_numbers(page)
    page.get_by_text("Add a premise under this node").click()
    box = page.get_by_label("Premise (one sentence)")
    box.fill(NEW)
    box.press("Enter")
    _idle(page)
    page.get_by_role("radiogroup", name="Your answer to it").get_by_text("True", exact=True).click()
    _idle(page)
    page.get_by_role("button", name="Add premise").click()
    page.get_by_text("Premise added").wait_for(timeout=30_000)
    page.wait_for_function(
        "old => { const e = document.querySelector('[data-testid=\"root-numbers\"]'); "
        "return e !== null && e.innerText !== old; }", arg=shown, timeout=30_000)
    page.get_by_text("Changes to this tree").wait_for(timeout=30_000)
    _idle(page)
    page.screenshot(path=str(ARTIFACTS / "trees_premise_added.png"), full_page=True)
    with session_scope(server["url"]) as s:
        tree = s.get(Tree, server["t1"])
        assert tree.root_belief > before + 0.01          # a supporting premise, answered true
        node = s.query(NodeRow).join(Proposition, Proposition.id == NodeRow.proposition_id).filter(
            NodeRow.tree_id == tree.id, Proposition.text == NEW).one()
        assert node.extra["author"] == "ann" and node.p_if_true > node.p_if_false
        (edit,) = s.query(TreeEdit).filter_by(tree_id=tree.id).all()
        assert edit.action == "add" and edit.annotator_id == s.query(Annotator).filter_by(name="ann").one().id
    ctx.close()


def test_an_ill_posed_rewrite_replaces_the_node(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "ann", "ann-pass-12")
    assert testing.premise(page) == VAGUE
    _idle(page)
    box = page.get_by_label(re.compile("^Rewrite, if ill-posed"))
    box.fill(REWRITE)
    box.press("Enter")
    _idle(page)
    page.get_by_role("button", name=re.compile("^Ill-posed")).click()
    page.get_by_text("Saved: Ill-posed.").wait_for(timeout=30_000)
    _idle(page)
    with session_scope(server["url"]) as s:
        texts = {p.text for p in s.query(Proposition).join(NodeRow, NodeRow.proposition_id == Proposition.id)
                 .filter(NodeRow.tree_id == server["t2"])}
        assert REWRITE in texts and VAGUE not in texts
        (edit,) = s.query(TreeEdit).filter_by(tree_id=server["t2"]).all()
        assert edit.action == "rewrite" and edit.label_id is not None
    ctx.close()
    # The admin sees the new text in the tree, and the change with who made it.
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "boss", "boss-pass-62")
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")
    page.get_by_text("2 shown").wait_for(timeout=30_000)   # newest first: the festival tree is picked
    _idle(page)
    page.get_by_text("Changes to this tree").wait_for(timeout=30_000)
    page.get_by_text(REWRITE).first.wait_for(state="attached", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "trees_rewrite_replaced.png"), full_page=True)
    ctx.close()


def test_an_admin_deletes_a_node_and_assigns_a_tree(server, browser):
    from argtree.store.assignment import assignments

    ctx, page = new_page(browser)
    testing.login(page, server["base"], "boss", "boss-pass-62")
    page.goto(f"{server['base']}/trees", wait_until="domcontentloaded")
    page.get_by_text("2 shown").wait_for(timeout=30_000)   # newest first: the festival tree is picked
    page.locator('[data-testid="node-text"]').wait_for(timeout=30_000)
    _idle(page)
    testing.choose(page, re.compile("^Node"), re.compile(r"^v · "))   # its premise (file id v)
    _idle(page)
    page.get_by_text("Delete or move this node (admin)").click()
    page.get_by_text("Yes, delete this node and everything below it").click()
    _idle(page)
    page.get_by_role("button", name="Delete node").click()
    page.get_by_text("Node deleted").wait_for(timeout=30_000)
    _idle(page)
    with session_scope(server["url"]) as s:
        assert [n.local_id for n in s.query(NodeRow).filter_by(tree_id=server["t2"])] == ["q"]
        boss = s.query(Annotator).filter_by(name="boss").one().id
        assert s.query(TreeEdit).filter_by(tree_id=server["t2"], action="delete", annotator_id=boss).count() == 1
    # The admin page: only ann may answer the ferry tree.
    page.goto(f"{server['base']}/admin", wait_until="domcontentloaded")
    page.get_by_text("Who may answer which trees").wait_for(timeout=30_000)
    _idle(page)
    testing.choose(page, re.compile("^Tree"), re.compile(r"^#%d · " % server["t1"]))
    _idle(page)
    testing.choose(page, re.compile("^May answer it"), "ann")
    page.keyboard.press("Escape")
    _idle(page)
    page.get_by_role("button", name="Save assignment").click()
    page.get_by_text(f"Tree #{server['t1']}: answered only by ann.").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "admin_assignment.png"), full_page=True)
    with session_scope(server["url"]) as s:
        assert assignments(s) == {server["t1"]: ["ann"]}
    ctx.close()
