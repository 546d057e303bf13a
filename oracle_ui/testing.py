"""Run the real app and drive it in Debian's Chromium (tests and ``bench/ui_latency.py``).

Never downloads a browser: Playwright is pointed at ``/usr/bin/chromium``
(``ARGTREE_CHROMIUM`` overrides), installed by ``make services``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SECRET = "test-secret-" + "0" * 32  # unused since sessions are server-side; kept for old bench scripts


def chromium_path() -> str | None:
    path = os.environ.get("ARGTREE_CHROMIUM", "/usr/bin/chromium")
    return path if os.path.exists(path) else shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(db_url: str, *, home: str | os.PathLike, extra_env: dict | None = None,
          timeout: float = 60.0) -> Iterator[str]:
    """Start ``streamlit run oracle_ui/app.py`` on a free port; yield its base URL; stop it after."""
    port = free_port()
    env = dict(os.environ, ARGTREE_DATABASE_URL=db_url, ARGTREE_HOME=str(home),
               **(extra_env or {}))
    log = open(Path(home) / f"streamlit-{port}.log", "wb")
    # The real command (`argtree ui`, which execs `streamlit run`), in a process group of its own.
    proc = subprocess.Popen([sys.executable, "-m", "argtree.cli", "ui", "--port", str(port), "--host", "127.0.0.1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start in {timeout:.0f} s; see {log.name}")
            time.sleep(0.2)
        yield base
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except ProcessLookupError:  # pragma: no cover - already gone
            pass
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def launch(playwright):
    path = chromium_path()
    if path is None:
        raise RuntimeError("Debian's chromium is not installed (run `make services`)")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)


def submit_login(page, base: str, name: str, password: str) -> None:
    """Open the app (a page load without a session lands on the login form), fill it in, send it."""
    page.goto(base + "/", wait_until="domcontentloaded")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def login(page, base: str, name: str, password: str, timeout: float = 30_000) -> None:
    submit_login(page, base, name, password)
    page.locator('[data-testid="stSidebar"]').get_by_text(f"{name} (").wait_for(timeout=timeout)


def premise(page, timeout: float = 30_000) -> str:
    loc = page.locator('[data-testid="premise"]')
    loc.wait_for(timeout=timeout)
    return loc.inner_text()


def press(page, key: str, timeout: float = 30_000) -> None:
    """Press an answer's (or undo's) keyboard shortcut once its button is on the page: the premise renders
    before the row of buttons, and a key pressed in between reaches no shortcut and is lost."""
    from oracle_ui.views.answer import KEYS, UNDO_KEY

    label = "Undo" if key == UNDO_KEY else next(lab for lab, k in KEYS.values() if k == key)
    page.get_by_role("button", name=label).first.wait_for(timeout=timeout)
    page.keyboard.press(key)


def choose(page, label, option, *, tries: int = 3, timeout: float = 30_000) -> None:
    """Pick ``option`` (an option's name or pattern) in the selectbox labelled ``label``.  A click that lands
    while Streamlit re-renders the page can leave the list closed (a browser test timed out waiting for an
    option under a loaded CI run); then the list is opened again, up to ``tries`` times, each time waiting for
    the option itself, never for a fixed time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        page.get_by_label(label).click(timeout=timeout)
        opt = page.get_by_role("option", name=option)
        try:
            opt.wait_for(timeout=timeout if attempt == tries - 1 else timeout / tries)  # the last: all of it
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
            continue
        opt.click(timeout=timeout)
        return


def wait_premise_change(page, old: str, timeout: float = 30_000) -> str:
    """Wait until the premise shown is not ``old`` (the next question is on screen); return it."""
    page.wait_for_function(
        "old => { const e = document.querySelector('[data-testid=\"premise\"]');"
        " return e !== null && e.innerText !== old; }", arg=old, timeout=timeout, polling="raf")
    return premise(page)


def python() -> str:
    return sys.executable
