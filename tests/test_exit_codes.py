"""Exit statuses (``argtree.commands.exits``): a command that did not do its job says so in one line and exits
non-zero; Ctrl-C exits 130; a database that is down is one line in every command, never a traceback.

Real processes where the status is the point (``subprocess``: what a shell sees), a real HTTP stub server for
the model server, a real closed port for a database that is down, a real SIGINT for Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from argtree.cli import main

pytest.importorskip("sqlalchemy")  # the store extra
pytest.importorskip("httpx")       # the openai backend (llm extra)
from argtree.store import LoopRun, LoopTask, list_trees, session_scope  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402

Q = "Should cities ban cars from their centres?"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def _argtree(*args, home, env=None, timeout=120, **kw):
    e = {k: v for k, v in os.environ.items() if not k.startswith("ARGTREE_")}
    e.update(ARGTREE_HOME=str(home), ARGTREE_OPENAI_RETRIES="0", **(env or {}))
    return subprocess.run([sys.executable, "-m", "argtree.cli", *args], capture_output=True, text=True, env=e,
                          timeout=timeout, **kw)


def _one_error_line(stderr: str) -> str:
    """The error line; asserts there is no traceback and the error is said once, last."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("argtree: error:")]
    assert len(lines) == 1 and stderr.rstrip().endswith(lines[0]), stderr
    return lines[0]


class _Always500:
    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                body = b'{"error": "model crashed"}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- ask ----------------------------------------------------------------------------------------------------

def test_ask_exits_4_when_its_model_server_is_unreachable(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1#m"
    r = _argtree("ask", Q, "--backend", "openai", "--model", url, "--timeout", "5", "--budget", "1", "--no-store",
                 "--json", home=tmp_path)
    assert r.returncode == 4, r.stderr
    line = _one_error_line(r.stderr)
    assert "could not reach the model server" in line and "connection failed" in line
    assert len(json.loads(r.stdout)["tree"]["nodes"]) == 1  # what there is (the root) is still printed


def test_ask_exits_3_when_nothing_grew(tmp_path):
    server = _Always500()
    try:
        r = _argtree("ask", Q, "--backend", "openai", "--model", server.url + "#m", "--budget", "1", "--no-store",
                     home=tmp_path)
    finally:
        server.close()
    assert r.returncode == 3, r.stderr
    line = _one_error_line(r.stderr)
    assert "grew nothing" in line and "HTTP 500" in line


def test_ask_exits_5_when_the_database_is_down_and_still_prints_the_tree(tmp_path):
    out = tmp_path / "t.json"
    down = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none"
    r = _argtree("ask", Q, "--backend", "fake", "--budget", "2", "--out", str(out), "--database", down, "--json",
                 home=tmp_path)
    assert r.returncode == 5, r.stderr
    assert "not stored" in _one_error_line(r.stderr)
    data = json.loads(r.stdout)
    assert data["tree_id"] is None and len(data["tree"]["nodes"]) > 1 and out.is_file()


def test_ask_exits_0_when_it_grew_and_stored(tmp_path):
    url = sqlite_db(tmp_path)
    r = _argtree("ask", Q, "--backend", "fake", "--budget", "2", "--database", url, "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout)["tree_id"], int)
    dispose(url)


def test_ask_ctrl_c_exits_130(tmp_path, monkeypatch):
    import argtree.grow

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    monkeypatch.setattr(argtree.grow, "grow", interrupted)
    r = CliRunner().invoke(main, ["ask", Q, "--backend", "fake", "--no-store", "--json"])
    assert r.exit_code == 130 and "argtree: interrupted" in r.stderr and "Traceback" not in r.output


# -- a database that is down: one line in every command that opens it --------------------------------------

@pytest.mark.parametrize("args", [
    ("db", "current"),
    ("db", "upgrade"),
    ("import", "{example}"),
    ("dump", "1"),
    ("users", "list"),
    ("loop", "--backend", "fake", "--question", "Is the sun a star?", "--oracle", "model"),
    ("export", "--kind", "facts", "--out", "{tmp}/x.jsonl"),
])
def test_a_database_that_is_down_is_one_line_everywhere(tmp_path, args):
    from importlib.resources import files

    example = str(files("argtree") / "examples" / "remote_work.json")
    down = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none"
    args = [a.format(example=example, tmp=tmp_path) for a in args]
    r = _argtree(*args, home=tmp_path, env={"ARGTREE_DATABASE_URL": down})
    assert r.returncode == 2, (args, r.returncode, r.stderr[-2000:])
    line = _one_error_line(r.stderr)
    assert "database" in line and "127.0.0.1" in line and "refused" in line, line


# -- loop ---------------------------------------------------------------------------------------------------

def _wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)  # polling the database for a state, bounded by the deadline
    pytest.fail(f"timed out waiting for {what}")


def _ctrl_c_default() -> None:
    """In the child: Ctrl-C acts as in a terminal.  A test suite started in the background by a shell
    without job control inherits SIGINT ignored (POSIX), and so would the loop: it never saw the Ctrl-C
    (this test failed in every such CI run and in none started in the foreground)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stopped(proc) -> tuple[str, str]:
    """The interrupted loop's output once it exits.  The limit guards against a hang, it times nothing; if
    the loop does not stop in 180 s, SIGABRT makes faulthandler print where every thread is."""
    try:
        return proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=60)
        raise AssertionError(f"the loop did not stop within 180 s of Ctrl-C; its threads:\n{err[-6000:]}") from None


def test_loop_ctrl_c_exits_130_stops_the_run_and_the_same_command_resumes_it(tmp_path):
    url = sqlite_db(tmp_path)
    args = ("loop", "--backend", "fake", "--oracle", "human", "--question", "Should cities ban private cars?",
            "--budget", "1", "--poll-seconds", "0.1", "--database", url, "--json")
    e = {k: v for k, v in os.environ.items() if not k.startswith("ARGTREE_")}
    e["ARGTREE_HOME"] = str(tmp_path)
    e["PYTHONFAULTHANDLER"] = "1"  # a loop that does not stop prints every thread's stack (see _stopped)
    proc = subprocess.Popen([sys.executable, "-m", "argtree.cli", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_default)
    try:
        def waiting():  # the tree is grown and its ask task is waiting for people's labels
            with session_scope(url) as s:
                return any(t.kind == "ask" and t.attempts >= 1 for t in s.query(LoopTask))
        _wait("the loop to wait for labels", waiting)
        proc.send_signal(signal.SIGINT)
        out, err = _stopped(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "argtree: interrupted" in err and "Traceback" not in err
    first = json.loads(out)
    assert first["stop"] == "stopped (Ctrl-C)"
    with session_scope(url) as s:
        assert s.get(LoopRun, first["run_id"]).status == "stopped"
        assert len(list_trees(s)) == 1
    # The very same command picks the stopped run up again (nothing is regrown); interrupted once more as soon
    # as it has resumed.
    proc = subprocess.Popen([sys.executable, "-m", "argtree.cli", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_default)
    with session_scope(url) as s:
        looks = next(t.attempts for t in s.query(LoopTask) if t.kind == "ask")
    try:
        def resumed():  # running again, and its worker looking at the waiting tree again
            with session_scope(url) as s:
                return (s.get(LoopRun, first["run_id"]).status == "running"
                        and next(t.attempts for t in s.query(LoopTask) if t.kind == "ask") > looks)
        _wait("the run to be resumed", resumed)
        proc.send_signal(signal.SIGINT)
        out, err = _stopped(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    second = json.loads(out)
    assert second["run_id"] == first["run_id"] and second["resumed"] is True
    with session_scope(url) as s:
        assert len(list_trees(s)) == 1 and s.query(LoopRun).count() == 1
    dispose(url)


@pytest.mark.postgres
def test_loop_exits_6_when_a_worker_process_crashed(tmp_path, monkeypatch):
    """--workers 2: the second worker is a real process that dies with status 3 at once; the first does the
    whole run, and the command reports the lost worker with exit status 6 (before: 0 and a warning)."""
    import multiprocessing

    import argtree.commands.loop as loop_cmd
    from argtree.store.testing import postgres_schema

    fork = multiprocessing.get_context("fork")

    class Crashing:
        def Process(self, target, args, daemon):  # noqa: N802 - multiprocessing's spelling
            return fork.Process(target=os._exit, args=(3,), daemon=daemon)

    monkeypatch.setattr(loop_cmd.multiprocessing, "get_context", lambda kind: Crashing())
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    with postgres_schema() as url:
        r = CliRunner().invoke(main, ["loop", "--backend", "fake", "--oracle", "model", "--question",
                                      "Is the sun a star?", "--budget", "1", "--workers", "2", "--database", url,
                                      "--json"])
        assert r.exit_code == 6, r.output
        assert "1 of 1 extra workers failed (exit status 3)" in r.stderr and "Traceback" not in r.output
        out = json.loads(r.stdout)
        assert out["stop"] == "all done" and out["workers_failed"] == 1 and out["questions"] == 1


def test_ask_model_latest_with_nothing_registered_is_an_error_not_the_base_model(tmp_path):
    pytest.importorskip("torch")
    url = sqlite_db(tmp_path)
    r = _argtree("ask", Q, "--model", "latest", "--database", url, "--no-store", home=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "no fine-tuned model version yet" in _one_error_line(r.stderr)
    dispose(url)
