"""The HTTP side of logging in: a plain HTML form that POSTs to the server, which sets the cookie.

Streamlit talks to the browser over a websocket, which cannot set cookies; these routes are
mounted beside it (``st.App``'s ``routes``, see ``oracle_ui/app.py``):

* ``GET /auth/login``: the login form (and, if the browser's cookie is dead, an expired
  cookie in place of it, with a line saying why the session ended).
* ``POST /auth/login``: one attempt (limited per name and per client address, in the database);
  on success a new server-side session and its token in an ``HttpOnly; SameSite=Strict`` cookie,
  then a redirect to the page asked for.  Refused from another origin (login CSRF).
* ``GET /auth/logout``: ends the session and clears the cookie.

``SessionGate`` sends a page load without a live session to the login form, so a URL copied
from a logged-in tab, or Back after logging out, shows the form and nothing else.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from oracle_ui import auth

MAX_BODY = 16_384
NOTICES = {  # ?why= codes -> the line shown above the form (never text from the URL itself)
    "logout": "You are logged out.",
    "password": "The password of this account was changed, so your session ended; please log in again.",
    "deactivated": "This account was deactivated, so your session ended; ask an admin.",
    "admin": "An admin ended your session; please log in again.",
    "expired": "Your session expired; please log in again.",
    "unknown": "Please log in.",
}
# Streamlit's own paths (and ours): never gated, never redirected.
_OPEN = ("/_stcore", "/static", "/media", "/component", "/app/static", "/auth/", "/favicon")


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _safe_next(value: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(auth.LOGIN_PATH):
        return "/"
    return value


def _cookie(response: Response, request: Request, token: str | None) -> None:
    secure = auth.secure_cookie(request.url.scheme)
    if token is None:
        response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
    else:
        response.set_cookie(auth.COOKIE, token, path="/", httponly=True, samesite="strict", secure=secure)


def _page(message: str = "", *, error: bool = False, name: str = "", next_path: str = "/", status: int = 200,
          headers: dict | None = None) -> HTMLResponse:
    note = ""
    if message:
        note = (f'<p role="{"alert" if error else "status"}" data-testid="login-{"error" if error else "notice"}" '
                f'class="{"error" if error else "notice"}">{html.escape(message)}</p>')
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>argtree oracle: log in</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 4rem auto; padding: 0 1rem; color: #262730; }}
h1 {{ font-size: 1.8rem; }} label {{ display: block; margin-top: 1rem; font-size: .9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; margin-top: .25rem; }}
button {{ margin-top: 1.2rem; padding: .5rem 1.2rem; font-size: 1rem; background: #ff4b4b; color: white;
          border: 0; border-radius: .4rem; cursor: pointer; }}
.error {{ background: #ffecec; color: #7d0000; padding: .6rem .8rem; border-radius: .4rem; }}
.notice {{ background: #fff8e1; color: #5c4400; padding: .6rem .8rem; border-radius: .4rem; }}
</style></head>
<body><h1>argtree oracle</h1>{note}
<form method="post" action="{auth.LOGIN_PATH}">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<label for="name">Name</label><input id="name" name="name" autocomplete="username" required maxlength="64"
 value="{html.escape(name, quote=True)}" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required
 maxlength="1024" autocomplete="current-password">
<button type="submit">Log in</button>
</form></body></html>"""
    return HTMLResponse(body, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                   "frame-ancestors 'none'", **(headers or {})})


async def _session_state(token: str | None) -> tuple[bool, str | None]:
    """(live, why not) for a cookie's token; a database outage counts as live (the app says it is down)."""
    from oracle_ui import data

    if not token:
        return False, None
    try:
        await run_in_threadpool(data.account, token)
        return True, None
    except data.SessionEnded as err:
        return False, err.why
    except data.Unavailable:
        return True, None


async def login_form(request: Request) -> Response:
    why = request.query_params.get("why")
    next_path = _safe_next(request.query_params.get("next"))
    token = request.cookies.get(auth.COOKIE)
    live, ended = await _session_state(token)
    if live and token:
        return RedirectResponse(next_path, status_code=303)
    why = why if why in NOTICES else ended if ended in NOTICES else None
    response = _page(NOTICES[why] if why else "", next_path=next_path)
    if token:
        _cookie(response, request, None)  # a dead session's cookie: drop it
    return response


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        site = request.headers.get("sec-fetch-site")
        return site in (None, "same-origin", "none")
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in fields.items()}


async def login_submit(request: Request) -> Response:
    from oracle_ui import data

    if not _same_origin(request):
        return _page("This form was sent from another site; open the app's own login page.", error=True,
                     status=403)
    form = await _form(request)
    if form is None:
        return _page("That request was not a login form.", error=True, status=400)
    name, password = form.get("name", ""), form.get("password", "")
    next_path = _safe_next(form.get("next"))
    try:
        result = await run_in_threadpool(data.login, name, password, _client(request))
    except data.Unavailable as err:
        return _page(f"The database is not available, so nobody can log in right now. {err}", error=True,
                     name=name, next_path=next_path, status=503)
    if not result.ok:
        throttled = result.retry_after is not None
        return _page(result.message, error=True, name=name, next_path=next_path, status=429 if throttled else 401,
                     headers={"Retry-After": str(max(1, int(result.retry_after + 0.999)))} if throttled else None)
    response = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    _cookie(response, request, result.token)
    return response


async def logout(request: Request) -> Response:
    from oracle_ui import data

    token = request.cookies.get(auth.COOKIE)
    if token:
        try:
            await run_in_threadpool(data.logout, token)
        except data.Unavailable:
            pass
    response = RedirectResponse(auth.login_url("logout"), status_code=303, headers={"Cache-Control": "no-store"})
    _cookie(response, request, None)
    return response


ROUTES = [Route(auth.LOGIN_PATH, login_form, methods=["GET"]),
          Route(auth.LOGIN_PATH, login_submit, methods=["POST"]),
          Route("/auth/logout", logout, methods=["GET"])]


class SessionGate:
    """ASGI middleware: a page load (GET of an HTML page) without a live session goes to the login form.

    Only whole-page loads are gated; Streamlit's websocket, assets and our /auth/ routes pass.  The
    app checks the session again on every run and every write (a tab may outlive its session).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"].startswith(_OPEN):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if "text/html" not in request.headers.get("accept", ""):
            await self.app(scope, receive, send)
            return
        live, why = await _session_state(request.cookies.get(auth.COOKIE))
        if live:
            await self.app(scope, receive, send)
            return
        path = scope["path"] + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        response = RedirectResponse(auth.login_url(why, None if path == "/" else path), status_code=303,
                                    headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)
