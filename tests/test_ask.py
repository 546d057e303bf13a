"""`argtree ask` end to end with the fake backend: printing, --json, --out, storing, bad input."""

import json

import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.io import load

Q = "Should cities ban cars from their centres?"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, ["ask", *args], catch_exceptions=False)


def test_ask_fake_prints_tree_root_and_questions(home):
    out = home / "t.json"
    r = run(Q, "--backend", "fake", "--budget", "3", "--out", str(out), "--no-store")
    assert r.exit_code == 0, r.output
    assert "P(yes) for the question" in r.output and "Ask a person first" in r.output
    assert "+ for" in r.output and "- against" in r.output
    tree, ev = load(out)
    assert tree[tree.root].text == Q and len(tree) > 5
    assert ev and all(e.is_model for e in ev)  # no labels yet: only the model's credences, marked as such
    assert "direct answer" in r.output and "people's answers alone" in r.output
    assert tree.meta["growth"]["expansions"] == 3


def test_ask_json_has_questions_with_root_if(home):
    r = run(Q, "--backend", "fake", "--budget", "2", "--json", "--no-store")
    data = json.loads(r.output)
    assert data["tree"]["format"] == "argtree/1" and 0 < data["root_belief"] < 1
    assert 1 <= len(data["questions"]) <= 5
    q = data["questions"][0]
    assert q["root_if_true"] != q["root_if_false"]
    assert data["tree_id"] is None and "--no-store" in data["store"]


def test_ask_stores_in_a_migrated_database(home, monkeypatch):
    from argtree.store import load_tree, session_scope
    from argtree.store.testing import sqlite_db

    url = sqlite_db(home)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    r = run(Q, "--backend", "fake", "--budget", "2", "--json")
    data = json.loads(r.output)
    assert data["store"] == "stored" and isinstance(data["tree_id"], int)
    with session_scope(url) as s:
        tree, _ = load_tree(s, data["tree_id"])
    assert len(tree) == len(data["tree"]["nodes"])


def test_ask_unmigrated_database_is_a_message_not_a_crash(home, monkeypatch):
    monkeypatch.setenv("ARGTREE_DATABASE_URL", f"sqlite:///{home / 'empty.db'}")
    r = run(Q, "--backend", "fake", "--budget", "1")
    assert r.exit_code == 5 and "not stored" in r.output and "Traceback" not in r.output  # could not save: exit 5
    assert r.stderr.splitlines()[-1].startswith("argtree: error: not stored") and "argtree db upgrade" in r.stderr


def test_ask_scripted_garbage_records_failure(home):
    script = home / "script.json"
    script.write_text(json.dumps(["not json"] * 6))
    r = run(Q, "--backend", "fake", "--model", str(script), "--budget", "1", "--json", "--no-store")
    data = json.loads(r.stdout)
    assert r.exit_code == 3 and "grew nothing" in r.stderr  # the root alone: nothing grew
    assert data["failed_expansions"] == 1 and len(data["tree"]["nodes"]) == 1
    assert data["tree"]["failed_expansions"][0]["raw"][0] == "not json"


@pytest.mark.parametrize("args, msg", [
    (["  "], "QUESTION is empty"),
    ([Q, "--backend", "local", "--model", "/no/such/model"], "unknown model"),
    ([Q, "--budget", "0"], "--budget"),
])
def test_ask_bad_input_exits_2(home, args, msg):
    r = CliRunner().invoke(main, ["ask", *args])
    assert r.exit_code == 2 and msg in r.output


@pytest.mark.model
@pytest.mark.slow
def test_ask_with_the_default_local_model_grows_stores_and_reports(tmp_path, monkeypatch):
    """The README's main job: no --backend, no --model -> the bundled model + shipped adapter, for real."""
    from argtree.llm.local import model_cache_dir
    from argtree.store import load_tree, session_scope
    from argtree.store.testing import sqlite_db

    monkeypatch.setenv("ARGTREE_MODEL_CACHE", str(model_cache_dir()))  # share the converted base model
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    url = sqlite_db(tmp_path)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    out = tmp_path / "t.json"
    r = CliRunner().invoke(main, ["ask", "Is remote work more productive than office work?", "--budget", "1",
                                  "--json", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # progress and the model's loading note go to stderr
    tree, _ = load(out)
    assert data["store"] == "stored"
    with session_scope(url) as s:
        stored, _ = load_tree(s, data["tree_id"])
    assert len(stored) == len(tree) == len(data["tree"]["nodes"])
    growth = tree.meta["growth"]
    assert growth["expansions"] == 1
    assert len(tree) > 1 or growth["failed"] == 1  # premises, or a recorded failed expansion
    for nid in tree.children(tree.root):
        node = tree[nid]
        assert node.extra["model_version"] == "bundled+strategyqa-lora"  # the default is base + adapter
        assert 0 < node.p_if_true < 1 and 0 < node.p_if_false < 1 and node.p_if_true != node.p_if_false
    if len(tree) > 1:
        assert 1 <= len(data["questions"]) <= 5 and 0 < data["root_belief"] < 1


def test_ask_json_has_three_root_numbers_and_the_tree_moves_off_the_prior(home):
    r = run(Q, "--backend", "fake", "--budget", "3", "--json", "--no-store")
    root = json.loads(r.output)["root"]
    assert set(root) == {"direct", "tree", "labels_only"}
    assert 0 < root["direct"] < 1                       # the fake model's P(yes) for the question
    assert root["labels_only"] == pytest.approx(0.5)    # nobody answered: the prior
    assert root["tree"] != pytest.approx(0.5, abs=1e-4)  # credences differ from the premises' marginals


def test_ask_shows_control_and_bidi_characters_escaped(home):
    r = run("Is \x1b]0;pwned\x07 the \u202eevil\u202c question fine?", "--backend", "fake", "--budget", "1",
            "--no-store")
    assert r.exit_code == 0, r.output
    assert "\x1b]0;" not in r.output and "\u202e" not in r.output
    assert "\\x1b" in r.output and "\\u202e" in r.output
