"""``argtree tree ...`` (co-authoring from the shell) and ``argtree queue settings --assign`` (issue 13):
--json output, who and when recorded, clear one-line errors (exit status 2)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401

from argtree.store import (add_annotator, next_question, release_lease, save_tree, session_scope,  # noqa: E402
                           submit_label)
from argtree.store.testing import fast_password_hashing  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from store_fixtures import run  # noqa: E402

fast_password_hashing()


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    assert run(h, "db", "upgrade").returncode == 0
    url = f"sqlite:///{h / 'argtree.db'}"
    tree = ArgumentTree([Node("q", "Is the lighthouse still needed?", prior=0.5),
                         Node("a", "Ships still pass at night.", parent="q", p_if_true=0.8, p_if_false=0.3),
                         Node("b", "Satellite navigation fails sometimes.", parent="q", p_if_true=0.7,
                              p_if_false=0.4)])
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password", admin=n == "boss").id for n in ("amy", "boss")}
        tid = save_tree(s, tree)
        submit_label(s, ids["amy"], s.scalar(argtree.store.Proposition.__table__.select()
                                             .with_only_columns(argtree.store.Proposition.id)
                                             .where(argtree.store.Proposition.text == "Ships still pass at night.")),
                     True)
    return h, url, ids, tid


def test_add_edit_move_delete_and_history(home):
    h, url, ids, tid = home
    nodes = json.loads(run(h, "tree", "nodes", str(tid), "--json").stdout)
    assert [n["local_id"] for n in nodes] == ["q", "a", "b"]
    r = run(h, "tree", "add-premise", f"{tid}:q", "Ships still pass at night.", "--p-if-true", "0.9",
            "--p-if-false", "0.2", "--by", "amy", "--json")
    assert r.returncode == 2 and "already has this premise" in r.stderr and "Traceback" not in r.stderr
    r = run(h, "tree", "add-premise", f"{tid}:a", "Fishing boats go out before dawn.", "--p-if-true", "0.9",
            "--p-if-false", "0.2", "--for", "--by", "amy", "--json")
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    assert added["action"] == "add" and added["tree_id"] == tid
    r = run(h, "tree", "edit", str(added["node_id"]), "Fishing boats leave port before dawn.", "--by", "amy",
            "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["proposition_id"] != added["proposition_id"]
    r = run(h, "tree", "move", str(added["node_id"]), f"{tid}:b", "--by", "amy")
    assert r.returncode == 2 and "only admins" in r.stderr
    r = run(h, "tree", "move", str(added["node_id"]), f"{tid}:b", "--by", "boss", "--json")
    assert r.returncode == 0, r.stderr
    r = run(h, "tree", "delete", f"{tid}:q", "--by", "boss")
    assert r.returncode == 2 and "root" in r.stderr
    r = run(h, "tree", "delete", f"{tid}:b", "--by", "boss", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["removed"] == 2     # b and the moved premise
    r = run(h, "tree", "delete", f"{tid}:a", "--by", "boss", "--json")
    gone = json.loads(r.stdout)      # a labeled premise: the root moves when it goes
    assert r.returncode == 0 and gone["removed"] == 1 and gone["root_before"] != gone["root_after"]
    hist = json.loads(run(h, "tree", "history", str(tid), "--json").stdout)
    assert [(e["action"], e["by"]) for e in hist] == [("delete", "boss"), ("delete", "boss"), ("move", "boss"),
                                                      ("edit", "amy"), ("add", "amy")]
    assert all(e["at"] for e in hist)
    text = run(h, "tree", "history", str(tid))
    assert text.returncode == 0 and "Fishing boats go out before dawn." in text.stdout


def test_add_premise_errors_are_one_line(home):
    h, url, ids, tid = home
    for args, words in [((f"{tid}:a", "Some new premise here."), "give --p-if-true"),
                        ((f"{tid}:a", "Some new premise here.", "--p-if-true", "0.9"), "both"),
                        ((f"{tid}:zz", "Some new premise here.", "--p-if-true", "0.9", "--p-if-false", "0.1"),
                         "no node"),
                        ((f"{tid}:a", "Some new premise here.", "--p-if-true", "0.1", "--p-if-false", "0.9",
                          "--for"), "p_if_true > p_if_false"),
                        (("nonsense", "Some new premise here.", "--p-if-true", "0.9", "--p-if-false", "0.1"),
                         "TREE:LOCAL_ID")]:
        r = run(h, "tree", "add-premise", *args, "--by", "amy")
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = run(h, "tree", "add-premise", f"{tid}:a", "Some new premise here.", "--p-if-true", "0.9",
            "--p-if-false", "0.1", "--by", "nobody")
    assert r.returncode == 2 and "nobody" in r.stderr


def test_add_premise_with_model_numbers(home):
    h, url, ids, tid = home
    r = run(h, "tree", "add-premise", f"{tid}:b", "Storms block the satellite signal.", "--backend", "fake",
            "--by", "amy", "--json")
    assert r.returncode == 0, r.stderr
    node = [n for n in json.loads(run(h, "tree", "nodes", str(tid), "--json").stdout)
            if n["text"] == "Storms block the satellite signal."][0]
    assert 0 < node["p_if_true"] < 1 and 0 < node["p_if_false"] < 1 and node["p_if_true"] != node["p_if_false"]


def test_queue_settings_assign_and_unassign(home):
    h, url, ids, tid = home
    r = run(h, "queue", "settings", "--assign", f"{tid}=boss", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["assignments"] == {str(tid): ["boss"]}
    with session_scope(url) as s:
        assert next_question(s, ids["amy"]) is None          # the only tree is boss's now
        assert next_question(s, ids["boss"]) is not None
    assert "answered only by boss" in run(h, "queue", "settings").stdout
    for bad, words in [(f"{tid}", "name at least one"), ("x=amy", "tree id"), (f"{tid}=nobody", "nobody"),
                       ("999=amy", "no tree")]:
        r = run(h, "queue", "settings", "--assign", bad)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
    r = run(h, "queue", "settings", "--unassign", str(tid), "--json")
    assert json.loads(r.stdout)["assignments"] == {}
    with session_scope(url) as s:
        release_lease(s, ids["boss"])                          # the one question left was boss's to answer
        assert next_question(s, ids["amy"]) is not None
