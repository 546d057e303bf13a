"""``argtree db / import / dump / users`` from the shell, including the bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store  # noqa: E402,F401

EXAMPLE = "argtree/examples/remote_work.json"


def run(home, *args, input=None, env=None):
    """In-process (fast); test_real_process below checks the installed entry point once."""
    from click.testing import CliRunner

    from argtree.cli import main

    e = {"ARGTREE_DATABASE_URL": None, "ARGTREE_HOME": str(home), **(env or {})}
    r = CliRunner().invoke(main, list(args), input=input, env=e)
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def test_real_process(tmp_path):
    e = {k: v for k, v in os.environ.items() if k != "ARGTREE_DATABASE_URL"}
    e["ARGTREE_HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-m", "argtree.cli", "import", EXAMPLE], capture_output=True, text=True,
                       env=e, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("argtree: error: ") and "argtree db upgrade" in r.stderr


def test_db_import_dump_users_round_trip(tmp_path):
    home = tmp_path / "home"
    r = run(home, "import", EXAMPLE)
    assert r.returncode == 2 and "run `argtree db upgrade`" in r.stderr and "Traceback" not in r.stderr
    r = run(home, "db", "current", "--json")
    assert json.loads(r.stdout)["current"] is None
    assert run(home, "db", "upgrade").returncode == 0
    assert (home / "argtree.db").exists()
    assert json.loads(run(home, "db", "current", "--json").stdout)["up_to_date"] is True
    r = run(home, "import", EXAMPLE, "--json")
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["trees"][EXAMPLE]
    again = run(home, "import", EXAMPLE)
    assert "0 imported, 1 already present" in again.stdout
    dumped = run(home, "dump", str(tid))
    assert dumped.returncode == 0
    original, back = json.load(open(EXAMPLE)), json.loads(dumped.stdout)
    assert back["nodes"] == original["nodes"]
    assert back["evidence"] == original["evidence"]
    out = tmp_path / "dump.json"
    assert run(home, "dump", str(tid), "--out", str(out)).returncode == 0
    assert json.load(open(out)) == back
    r = run(home, "users", "add", "ann", "--admin", input="s3cret-pass\ns3cret-pass\n")
    assert r.returncode == 0 and "admin 'ann'" in r.stdout, r.stderr
    users = json.loads(run(home, "users", "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in users] == [("ann", "admin")]
    from argtree.store import session_scope, verify_password

    with session_scope(f"sqlite:///{home / 'argtree.db'}") as s:
        assert verify_password(s, "ann", "s3cret-pass").name == "ann"
        assert verify_password(s, "ann", "wrong-pass") is None
        assert "s3cret" not in s.get(type(verify_password(s, "ann", "s3cret-pass")), 2).password_hash


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path):
    home = tmp_path / "home"
    assert run(home, "db", "upgrade").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "argtree/1", "nodes": [
        {"id": "q", "text": "Q?", "prior": 0.5}, {"id": "a", "parent": "q", "text": "A", "p_if_true": 1.5,
                                                  "p_if_false": 0.2}]}))
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"format": "argtree/1", "nodes": [
        {"id": "q", "text": "Q?", "prior": 0.5}, {"id": "a", "parent": "q", "text": "x" * 100_000,
                                                  "p_if_true": 0.5, "p_if_false": 0.2}]}))
    for files, needle in (([EXAMPLE, str(bad)], "node 'a', field 'p_if_true'"),
                          ([EXAMPLE, str(huge)], "limit is 10,000"),
                          ([str(tmp_path / "missing.json")], "cannot read")):
        r = run(home, "import", *files)
        assert r.returncode == 2, r
        assert needle in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert run(home, "dump", "1").returncode == 2           # nothing was imported, all or none
    assert "no tree with id 1" in run(home, "dump", "1").stderr
    r = run(home, "users", "add", "bob", "--password", "short")
    assert r.returncode == 2 and "at least 8 characters" in r.stderr
    r = run(home, "users", "add", "has space", "--password", "long-enough")
    assert r.returncode == 2 and "name" in r.stderr
    r = run(home, "db", "current", env={"ARGTREE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot use the database postgresql+psycopg://nobody@127.0.0.1:1/x" in r.stderr
