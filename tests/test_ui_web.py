"""The login routes and the session gate (oracle_ui.web) over HTTP, in-process (Starlette's TestClient)."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("httpx")
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from argtree.store import LoginThrottle, WebSession, session_scope  # noqa: E402
from argtree.store.sessions import BAD_LOGIN  # noqa: E402
from argtree.store.testing import dispose, fast_password_hashing, sqlite_db  # noqa: E402
from oracle_ui import auth, demo  # noqa: E402
from oracle_ui.web import ROUTES, SessionGate  # noqa: E402

ORIGIN = "http://testserver"


@pytest.fixture
def client(tmp_path, monkeypatch):
    fast_password_hashing()
    url = sqlite_db(tmp_path)
    demo.seed(url, n_trees=1, n_nodes=3, migrate=False)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    monkeypatch.delenv("ARGTREE_UI_SECURE_COOKIE", raising=False)

    async def page(request):  # stands in for Streamlit's pages
        return PlainTextResponse("the app")

    app = Starlette(routes=[*ROUTES, Route("/", page), Route("/trees", page)], middleware=[Middleware(SessionGate)])
    with TestClient(app, base_url=ORIGIN, follow_redirects=False) as c:
        yield c
    dispose(url)


def post_login(client, name, password, next_path="/", origin=ORIGIN):
    return client.post(auth.LOGIN_PATH, data={"name": name, "password": password, "next": next_path},
                       headers={"Origin": origin})


def error(resp) -> str:
    import re

    found = re.search(r'data-testid="login-error"[^>]*>([^<]*)<', resp.text)
    return found.group(1) if found else ""


HTML = {"Accept": "text/html"}


def test_a_page_load_without_a_session_goes_to_the_login_form(client):
    r = client.get("/trees?x=1", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/auth/login?next=%2Ftrees%3Fx%3D1"
    form = client.get(r.headers["location"])
    assert form.status_code == 200 and 'name="password"' in form.text and 'value="/trees?x=1"' in form.text
    assert form.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in \
        form.headers["content-security-policy"]


def test_login_sets_an_httponly_strict_cookie_and_never_puts_the_token_in_a_url(client):
    r = post_login(client, "alice", "alice-pass-1", next_path="/trees")
    assert r.status_code == 303 and r.headers["location"] == "/trees"
    cookie = r.headers["set-cookie"]
    token = client.cookies.get(auth.COOKIE)
    assert token and token not in r.headers["location"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert client.get("/trees", headers=HTML).text == "the app"  # the gate lets a live session in
    assert client.get(auth.LOGIN_PATH).status_code == 303  # the form sends a logged-in browser on


def test_unknown_name_and_wrong_password_read_the_same(client):
    wrong, unknown = post_login(client, "alice", "not-her-password"), post_login(client, "nobody", "alice-pass-1")
    assert (wrong.status_code, error(wrong)) == (unknown.status_code, error(unknown)) == (401, BAD_LOGIN)
    assert auth.COOKIE not in wrong.headers.get("set-cookie", "")
    assert "alice-pass-1" not in unknown.text and "not-her-password" not in wrong.text  # no password echoed


def test_rapid_wrong_passwords_are_slowed_then_locked(client):
    codes = [post_login(client, "bob", "wrong-password") for _ in range(10)]
    assert [r.status_code for r in codes[:3]] == [401, 401, 401]
    assert codes[3].status_code == 429 and int(codes[3].headers["retry-after"]) >= 1 and "wait" in error(codes[3])
    assert "locked" in error(codes[9])
    right = post_login(client, "bob", "bob-pass-22")  # even the right password, while locked
    assert right.status_code == 429 and "locked" in error(right) and not client.cookies.get(auth.COOKIE)
    with session_scope() as s:
        row = s.get(LoginThrottle, ("account", "bob"))
        assert row.failures == 11 and row.locked_until is not None


def test_cross_site_posts_and_foreign_redirects_are_refused(client):
    r = post_login(client, "alice", "alice-pass-1", origin="http://evil.example")
    assert r.status_code == 403 and not client.cookies.get(auth.COOKIE)
    for target in ("//evil.example/x", "http://evil.example/", "/auth/login?next=/"):
        r = post_login(client, "alice", "alice-pass-1", next_path=target)
        assert r.status_code == 303 and r.headers["location"] == "/"
        client.cookies.clear()


def test_logout_revokes_the_session_and_the_old_cookie_no_longer_works(client):
    post_login(client, "alice", "alice-pass-1")
    token = client.cookies.get(auth.COOKIE)
    r = client.get("/auth/logout")
    assert r.status_code == 303 and r.headers["location"] == "/auth/login?why=logout"
    with session_scope() as s:
        row = s.query(WebSession).one()
        assert row.revoked_why == "logout"
    client.cookies.clear()
    client.cookies.set(auth.COOKIE, token)  # the old cookie, as a copied browser profile would send it
    r = client.get("/", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/auth/login?why=logout"
    form = client.get(r.headers["location"])
    assert "You are logged out." in form.text and 'name="password"' in form.text


def test_database_down_at_login_is_one_clear_line(client, monkeypatch):
    monkeypatch.setenv("ARGTREE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    r = post_login(client, "alice", "alice-pass-1")
    assert r.status_code == 503 and "The database is not available" in error(r)
    assert "Traceback" not in r.text


def test_the_gate_leaves_streamlits_own_paths_and_non_page_requests_alone(client):
    # Not routed here (404 from the stand-in app), but not redirected to the login form either.
    for path in ("/_stcore/health", "/static/js/main.js", "/media/x.png", "/component/x"):
        assert client.get(path, headers=HTML).status_code == 404, path
    assert client.get("/trees").status_code == 200  # a non-HTML request (the websocket's kind) is not gated
