"""Sessions in a real headless Chromium (Debian's, via Playwright's executable_path; never downloaded).

Issue 14: logout really ends a session (its cookie in a fresh browser, or Back, shows the login
form); a password change (`argtree users passwd`, the real command) makes an open tab's next answer
fail with a clear message and store nothing; deactivation likewise; unknown names and wrong
passwords read the same; rapid wrong passwords are slowed, then locked (the stored state is
asserted, not elapsed time).  No sleeps: every wait is for something on the page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
playwright_api = pytest.importorskip("playwright.sync_api")
from browser_fixtures import browser, new_page  # noqa: E402, F401

from argtree.store import LoginThrottle, WebSession  # noqa: E402
from argtree.store.db import get_engine, session_scope  # noqa: E402
from argtree.store.models import Annotator, Label  # noqa: E402
from argtree.store.sessions import BAD_LOGIN  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from oracle_ui import auth, demo, testing  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(testing.chromium_path() is None,
                                 reason="Debian's chromium is not installed: run `make services`")]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
USERS = (("erin", "erin-pass-11", False), ("frank", "frank-pass-22", False), ("gina", "gina-pass-33", False),
         ("hank", "hank-pass-44", False), ("ivy", "ivy-pass-55", False), ("boss", "boss-pass-66", True))
BIDI = "Shown as stored: RTL \u202eevil\u202c here"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser-sessions")
    url = f"sqlite:///{home / 'ui.db'}"
    demo.seed(url, n_trees=8, n_nodes=6, users=USERS)
    tricky = ArgumentTree([Node("q", "Is the bidi premise shown escaped?", prior=0.5),
                           Node("a", BIDI, parent="q", p_if_true=0.95, p_if_false=0.05)])
    demo.add_trees(url, [tricky], priority=1000.0)
    get_engine(url).dispose()
    ARTIFACTS.mkdir(exist_ok=True)
    with testing.serve(url, home=home) as base:
        yield {"base": base, "url": url, "home": home}


def labels_of(url: str, name: str) -> list[Label]:
    with session_scope(url) as s:
        aid = s.query(Annotator).filter_by(name=name).one().id
        return list(s.query(Label).filter_by(annotator_id=aid).order_by(Label.id))


def login_error(page) -> str:
    loc = page.locator('[data-testid="login-error"]')
    loc.wait_for(timeout=30_000)
    return loc.inner_text()


def no_traceback(page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and 'File "' not in body and "has encountered an error" not in body, body[:2000]


def test_bidi_override_is_shown_escaped(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "hank", "hank-pass-44")
    shown = testing.premise(page)
    assert shown == "Shown as stored: RTL \\u202eevil\\u202c here"
    assert "\u202e" not in page.locator("body").inner_text()
    ctx.close()


def test_logout_ends_the_session_for_good(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "erin", "erin-pass-11")
    testing.premise(page)
    cookies = [c for c in ctx.cookies() if c["name"] == auth.COOKIE]
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert cookies[0]["value"] not in page.url
    assert page.evaluate("document.cookie").find(auth.COOKIE) == -1  # page scripts cannot read it
    app_url = page.url
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Log out").click()
    page.get_by_text("You are logged out.").wait_for(timeout=30_000)
    with session_scope(server["url"]) as s:
        aid = s.query(Annotator).filter_by(name="erin").one().id
        assert [r.revoked_why for r in s.query(WebSession).filter_by(annotator_id=aid)] == ["logout"]
    # Back, then a reload, in the same browser: the login form, not the app.
    page.go_back()
    page.reload()
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    assert page.locator('[data-testid="premise"]').count() == 0
    # The old URL and the old cookie in a fresh browser context: the login form, not the app.
    ctx2, page2 = new_page(browser)
    ctx2.add_cookies([{**{k: cookies[0][k] for k in ("name", "value", "domain", "path")}}])
    page2.goto(app_url, wait_until="domcontentloaded")
    page2.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    page2.get_by_text("You are logged out.").wait_for(timeout=30_000)
    assert page2.locator('[data-testid="premise"]').count() == 0 and "/auth/login" in page2.url
    no_traceback(page2)
    page2.screenshot(path=str(ARTIFACTS / "login_after_logout.png"), full_page=True)
    ctx2.close()
    ctx.close()


def _passwd(server, name: str, password: str) -> None:
    env = dict(os.environ, ARGTREE_DATABASE_URL=server["url"], ARGTREE_HOME=str(server["home"]))
    res = subprocess.run([sys.executable, "-m", "argtree.cli", "users", "passwd", name, "--password-stdin"],
                         input=password + "\n", env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_password_change_stops_an_open_tab_from_saving(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "frank", "frank-pass-22")
    first = testing.premise(page)
    page.get_by_role("button", name=re.compile("^True")).click()
    testing.wait_premise_change(page, first)
    assert len(labels_of(server["url"], "frank")) == 1
    _passwd(server, "frank", "frank-new-pass")  # the real command, from another process
    page.get_by_role("button", name=re.compile("^False")).click()  # the open tab's next answer
    page.get_by_text("The password of this account was changed").first.wait_for(timeout=30_000)
    page.get_by_text("not saved").first.wait_for(timeout=30_000)
    assert page.locator('[data-testid="premise"]').count() == 0
    assert [lab.kind for lab in labels_of(server["url"], "frank")] == ["true"]  # nothing stored
    no_traceback(page)
    page.screenshot(path=str(ARTIFACTS / "session_ended_password.png"), full_page=True)
    # The new password works; the old one does not.
    page.locator('[data-testid="login-link"] ').click()
    page.get_by_label("Name").fill("frank")
    page.get_by_label("Password").fill("frank-pass-22")
    page.get_by_role("button", name="Log in").click()
    assert login_error(page) == BAD_LOGIN
    page.get_by_label("Password").fill("frank-new-pass")
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebar"]').get_by_text("frank (").wait_for(timeout=30_000)
    ctx.close()


def test_deactivated_tab_gets_a_clear_message(server, browser):
    ctx, page = new_page(browser)
    testing.login(page, server["base"], "gina", "gina-pass-33")
    testing.premise(page)
    admin_ctx, admin = new_page(browser)
    testing.login(admin, server["base"], "boss", "boss-pass-66")
    admin.locator('[data-testid="stSidebarNav"]').get_by_text("Users & runs").click()
    admin.get_by_text("Change an account").wait_for(timeout=30_000)
    admin.locator('[data-testid="stSelectbox"]').filter(has_text="Account").click()
    admin.get_by_role("option", name="gina").click()
    admin.get_by_role("button", name="Deactivate").click()
    admin.get_by_role("button", name="Reactivate").wait_for(timeout=30_000)
    page.get_by_role("button", name=re.compile("^True")).click()
    page.get_by_text("This account was deactivated").first.wait_for(timeout=30_000)
    assert labels_of(server["url"], "gina") == []
    no_traceback(page)
    admin_ctx.close()
    ctx.close()


def test_unknown_name_and_wrong_password_read_the_same(server, browser):
    ctx, page = new_page(browser)
    testing.submit_login(page, server["base"], "hank", "not-hanks-password")
    wrong = login_error(page)
    testing.submit_login(page, server["base"], "nobody-here", "hank-pass-44")
    unknown = login_error(page)
    assert wrong == unknown == BAD_LOGIN
    assert page.get_by_label("Password").input_value() == ""  # the password is never sent back
    no_traceback(page)
    ctx.close()


def test_rapid_wrong_passwords_are_slowed_then_locked(server, browser):
    with session_scope(server["url"]) as s:  # this client's failures in the tests before count too: start clean
        s.query(LoginThrottle).filter_by(kind="client").delete()
    ctx, page = new_page(browser)
    messages = []
    for _ in range(10):
        testing.submit_login(page, server["base"], "ivy", "wrong-password")
        messages.append(login_error(page))
    assert messages[:3] == [BAD_LOGIN] * 3
    assert "wait 1 second" in messages[3]
    assert all("Too many failed attempts" in m for m in messages[3:])
    assert "locked" in messages[9]
    with session_scope(server["url"]) as s:
        row = s.get(LoginThrottle, ("account", "ivy"))
        assert row.failures == 10 and row.locked_until is not None and row.not_before == row.locked_until
        delay = (row.locked_until - row.last_failure_at).total_seconds()
        assert delay == pytest.approx(900, abs=1)
    testing.submit_login(page, server["base"], "ivy", "ivy-pass-55")  # the right password, while locked
    assert "locked" in login_error(page)
    assert not [c for c in ctx.cookies() if c["name"] == auth.COOKIE]
    page.screenshot(path=str(ARTIFACTS / "login_locked.png"), full_page=True)
    ctx.close()
    with session_scope(server["url"]) as s:  # every test logs in from 127.0.0.1: leave the client unthrottled
        s.query(LoginThrottle).filter_by(kind="client").delete()
