"""``argtree queue [settings|gold]`` and ``argtree agreement`` from the shell (issue 13)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401

from argtree.store import add_annotator, save_tree, session_scope, submit_label  # noqa: E402
from argtree.store.testing import fast_password_hashing  # noqa: E402
from argtree.tree import ArgumentTree, Node  # noqa: E402
from store_fixtures import run  # noqa: E402

fast_password_hashing()


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    assert run(h, "db", "upgrade").returncode == 0
    url = f"sqlite:///{h / 'argtree.db'}"
    nodes = [Node("q", "Is the agreement claim so?", prior=0.5)]
    nodes += [Node(f"p{i}", f"Agreement premise {i} holds.", parent="q", p_if_true=0.9 - 0.02 * i,
                   p_if_false=0.1 + 0.02 * i) for i in range(10)]
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password").id for n in ("amy", "ben", "cat")}
        save_tree(s, ArgumentTree(nodes))
    return h, url, ids


def test_queue_shows_the_forest_ranking_and_changes_settings(home):
    h, url, ids = home
    r = run(h, "queue", "--top", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [row["rank"] for row in out["ranking"]] == [1, 2, 3]
    fv = [row["forest_voi"] for row in out["ranking"]]
    assert fv == sorted(fv, reverse=True) and out["ranking"][0]["text"] == "Agreement premise 0 holds."
    assert out["settings"]["queue.overlap"] == 1
    r = run(h, "queue", "settings", "--overlap", "3", "--gold-rate", "0.25", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["queue.overlap"] == 3 and json.loads(r.stdout)["queue.gold_rate"] == 0.25
    bad = run(h, "queue", "settings", "--gold-rate", "2")
    assert bad.returncode == 2 and "gold_rate" in bad.stderr and "Traceback" not in bad.stderr
    table = run(h, "queue")
    assert table.returncode == 0 and "Agreement premise 0 holds." in table.stdout and "overlap 3" in table.stdout


def test_agreement_prints_alpha_learned_reliability_and_disagreements(home):
    h, url, ids = home
    pids = [p["proposition_id"] for p in json.loads(run(h, "queue", "--top", "10", "--json").stdout)["ranking"]]
    truth = [i % 3 != 0 for i in range(len(pids))]
    for pid, t in zip(pids[:6], truth):
        assert run(h, "queue", "gold", str(pid), "true" if t else "false").returncode == 0
    with session_scope(url) as s:
        for k, (pid, t) in enumerate(zip(pids, truth)):
            submit_label(s, ids["amy"], pid, t, request_id=f"a{k}")
            submit_label(s, ids["ben"], pid, t if k % 5 else not t, request_id=f"b{k}")   # right 8 of 10
            submit_label(s, ids["cat"], pid, not t, request_id=f"c{k}")                 # always wrong
    r = run(h, "agreement", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rel = {a["annotator"]: a for a in out["annotators"]}
    assert rel["amy"]["reliability"] > rel["ben"]["reliability"] > 0.5 > rel["cat"]["reliability"]
    assert all(a["low"] <= a["reliability"] <= a["high"] for a in rel.values())
    assert rel["amy"]["gold"] == 6 and rel["cat"]["gold_correct"] == 0
    assert out["units"] == 10 and out["alpha_nominal"] is not None and out["alpha_nominal"] < 0.5
    assert len(out["disagreements"]) == 10  # cat disagrees everywhere
    assert out["update"]["trees"] == 1 and set(out["update"]["moved"]) == {"amy", "ben", "cat"}
    text = run(h, "agreement", "--no-update")
    assert text.returncode == 0 and "Krippendorff" in text.stdout and "cat" in text.stdout
    gold = json.loads(run(h, "queue", "gold", "--json").stdout)
    assert len(gold) == 6
    assert run(h, "queue", "gold", str(pids[0]), "--remove").returncode == 0
    assert len(json.loads(run(h, "queue", "gold", "--json").stdout)) == 5
    assert run(h, "queue", "gold", str(pids[0]), "--remove").returncode == 2
