"""One CLI: --database on every command that opens the store, --json on every command (the exceptions are
listed, with why), and each option name means one thing."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from argtree.cli import main

# Commands that open the store (and so take --database).
STORE_COMMANDS = {"ask", "calibrate", "db current", "db downgrade", "db upgrade", "dump", "eval", "export",
                  "export-tree", "import", "improve", "loop", "models", "ui", "users add", "users list", "users passwd"}
# Commands without --json, and why.
NO_JSON = {
    "ui": "starts the web server (Streamlit) and runs until stopped: there is no result to print",
    "dump": "its output is argtree/1 JSON already",
}


def _commands():
    ctx = click.Context(main)
    out = {}

    def walk(cmd, name):
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), f"{name} {sub}".strip())
            return
        out[name] = {o for p in cmd.params for o in getattr(p, "opts", [])}

    walk(main, "")
    return out


def test_every_store_command_takes_database_and_every_command_json():
    cmds = _commands()
    assert STORE_COMMANDS <= set(cmds), STORE_COMMANDS - set(cmds)
    assert [c for c in sorted(STORE_COMMANDS) if "--database" not in cmds[c]] == []
    assert [c for c in sorted(cmds) if "--json" not in cmds[c] and c not in NO_JSON] == []


# Commands offering the openai backend without --timeout/--concurrency yet, and why.
OPENAI_WITHOUT_TIMEOUT = {"improve": "lists openai but refuses it (it trains the weights, which a server does not "
                                     "expose), so there is no request to time"}


def test_timeout_and_concurrency_on_the_commands_that_use_the_openai_backend():
    ctx = click.Context(main)
    openai = []
    for name in _commands():
        cmd = main
        for part in name.split():
            cmd = cmd.get_command(ctx, part)
        backend = next((p for p in cmd.params if "--backend" in getattr(p, "opts", [])), None)
        if backend is not None and "openai" in getattr(backend.type, "choices", ()):
            openai.append(name)
    assert {"ask", "loop", "eval"} <= set(openai)
    cmds = _commands()
    assert [n for n in openai if not {"--timeout", "--concurrency"} <= cmds[n] and n not in OPENAI_WITHOUT_TIMEOUT] == []


def test_db_and_users_commands_use_the_database_given(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'given.db'}"
    run = lambda *a, **kw: CliRunner().invoke(main, list(a), **kw)  # noqa: E731
    r = run("db", "upgrade", "--database", url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["current"] == json.loads(r.stdout)["head"]
    r = run("users", "add", "carol", "--password-stdin", "--database", url, "--json", input="a long password\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "carol"
    r = run("users", "list", "--database", url, "--json")
    assert [u["name"] for u in json.loads(r.stdout)] == ["carol"]
    r = run("db", "current", "--database", url, "--json")
    assert json.loads(r.stdout)["up_to_date"] is True
    assert not (tmp_path / "home" / "argtree.db").exists()  # the default database was never touched


def _visible(name_prefix=""):
    ctx = click.Context(main)
    out = []

    def walk(cmd, name):
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, sub), f"{name} {sub}".strip())
            return
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                out.extend((name, o, p.help or "") for o in p.opts)

    walk(main, "")
    return out


def test_one_meaning_per_option_name():
    opts = _visible()
    batch = {name for name, o, _ in opts if o == "--batch"}
    assert batch == {"ask"}  # nodes per batched model call; voi's K questions for K annotators is --annotators
    assert any(name == "voi" and o == "--annotators" for name, o, _ in opts)
    outs = [(name, h) for name, o, h in opts if o == "--out"]
    assert outs and all(("file" in h.lower() or "director" in h.lower() or "where" in h.lower()
                         or "jsonl" in h.lower()) for _, h in outs), outs
    assert not any(name == "finetune" for name, _ in outs)  # a version's name is --name
    assert any(name == "finetune" and o == "--name" for name, o, _ in opts)


def test_old_spellings_still_work_and_say_so():
    from importlib.resources import files

    example = str(files("argtree") / "examples" / "remote_work.json")
    new = CliRunner().invoke(main, ["voi", example, "--annotators", "2", "--json"])
    old = CliRunner().invoke(main, ["voi", example, "--batch", "2", "--json"])
    assert new.exit_code == old.exit_code == 0
    assert json.loads(new.stdout) == json.loads(old.stdout) and len(json.loads(new.stdout)["batch"]) == 2
    assert "now --annotators" in old.stderr and "now --annotators" not in new.stderr
    both = CliRunner().invoke(main, ["voi", example, "--annotators", "2", "--batch", "3"])
    assert both.exit_code == 2 and "old spelling" in both.stderr


def test_export_tree_json_and_database(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")
    from importlib.resources import files

    from argtree.store.testing import dispose, sqlite_db

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    example = str(files("argtree") / "examples" / "remote_work.json")
    url = sqlite_db(tmp_path)
    r = CliRunner().invoke(main, ["import", example, "--database", url, "--json"])
    tid = json.loads(r.stdout)["trees"][example]
    r = CliRunner().invoke(main, ["export-tree", str(tid), "--format", "dot", "--database", url, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["format"] == "dot" and out["nodes"] == 8 and out["text"].lstrip().startswith(("digraph", "strict"))
    dot = tmp_path / "t.dot"
    r = CliRunner().invoke(main, ["export-tree", example, "--out", str(dot), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["out"] == str(dot) and dot.is_file()
    dispose(url)
