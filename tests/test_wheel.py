"""The wheel: built with ``python -m build``, installed non-editable in a fresh venv, it migrates, adds a user,
serves the web app and grows a tree, with no source checkout in sight.

The fresh venv gets argtree only from the wheel (``pip install --no-deps --no-index``); its third-party
dependencies (torch, streamlit, sqlalchemy ...) come from this test's own environment through a ``.pth`` line,
so nothing is downloaded.  A ``.pth`` line adds a directory without running the ``.pth`` files inside it, so the
checkout's editable-install hook stays out: the test asserts that ``argtree`` is imported from the new venv.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("build", reason="the wheel test needs the 'build' package: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, *, env, cwd, input=None, timeout=300):
    # A new session has no controlling terminal, so the password prompt reads stdin (as in CI).
    return subprocess.run(cmd, env=env, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # --no-isolation: build with this environment's setuptools instead of downloading one.
    res = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheels = list(dist.glob("argtree-*.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "argtree_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheels[0])],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    work = tmp / "elsewhere"  # not the checkout: nothing is found through the working directory
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGTREE_", "PYTHON"))}
    env.update(ARGTREE_HOME=str(tmp / "home"), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    yield venv, work, env
    shutil.rmtree(tmp, ignore_errors=True)


def test_wheel_ships_migrations_and_the_app_and_is_not_the_checkout(installed):
    venv, work, env = installed
    res = _run([str(venv / "bin" / "python"), "-c",
                "import argtree, oracle_ui; from argtree.store.db import MIGRATIONS_DIR; "
                "from argtree.commands.ui import APP; "
                "print(argtree.__file__); print(oracle_ui.__file__); print(MIGRATIONS_DIR); print(APP)"],
               env=env, cwd=work)
    assert res.returncode == 0, res.stderr
    paths = [Path(p) for p in res.stdout.split()]
    assert len(paths) == 4
    for p in paths:
        assert str(p).startswith(str(venv)), f"{p} is not inside the new venv"
        assert not str(p).startswith(str(ROOT))
    migrations, app = paths[2], paths[3]
    assert (migrations / "env.py").is_file() and not migrations.is_symlink()
    assert sorted(p.name for p in (migrations / "versions").glob("0*.py")) == sorted(
        p.name for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert app.is_file()


def test_wheel_upgrades_adds_a_user_serves_the_ui_and_asks(installed):
    venv, work, env = installed
    argtree = str(venv / "bin" / "argtree")

    res = _run([argtree, "db", "upgrade"], env=env, cwd=work)
    assert res.returncode == 0, res.stderr
    assert "at schema revision" in res.stdout and (Path(env["ARGTREE_HOME"]) / "argtree.db").is_file()

    res = _run([argtree, "users", "add", "alice"], env=env, cwd=work, input="correct horse 1\ncorrect horse 1\n")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "alice" in res.stdout
    res = _run([argtree, "users", "list", "--json"], env=env, cwd=work)
    assert res.returncode == 0 and '"alice"' in res.stdout, res.stderr

    port = _free_port()
    ui = subprocess.Popen([argtree, "ui", "--port", str(port)], env=env, cwd=work, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        body = None
        while time.monotonic() < deadline and ui.poll() is None:
            body = _health(port)
            if body is not None:
                break
            time.sleep(0.2)  # polling an HTTP endpoint until it answers (bounded by the deadline)
        assert ui.poll() is None, f"argtree ui exited with {ui.returncode}: {ui.stdout.read()[-3000:]}"
        assert body == "ok", "the web app's health endpoint never answered"
        # The installed app serves its own pages too (the login form, from the wheel's oracle_ui).
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=10) as r:
            page = r.read().decode()
            assert r.status == 200 and "<form" in page and "password" in page.lower()
    finally:
        ui.terminate()
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            ui.wait()
    assert _health(port) is None  # stopped

    res = _run([argtree, "ask", "Is remote work more productive than office work?", "--backend", "fake",
                "--budget", "2", "--json"], env=env, cwd=work)
    assert res.returncode == 0, res.stderr
    import json

    out = json.loads(res.stdout)
    assert isinstance(out["tree_id"], int) and len(out["tree"]["nodes"]) > 1
