"""`argtree infer` / `argtree voi`: JSON output contracts and bad input (exit 2, one line, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.inference import beliefs
from argtree.io import load

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "argtree", "examples", "remote_work.json")


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_infer_json_gives_every_node():
    res = run("infer", EXAMPLE, "--json")
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    tree, ev = load(EXAMPLE)
    assert out == {"beliefs": beliefs(tree, ev)}


def test_voi_json_top_k_in_rank_order():
    full = json.loads(run("voi", EXAMPLE, "--json").stdout)
    assert full["metric"] == "shift"
    assert "q" not in full["voi"] and "a1" not in full["voi"]  # root and hard-labeled node
    assert "b1" in full["voi"]  # soft-labeled: still askable
    top = json.loads(run("voi", EXAMPLE, "--json", "--top", "2", "--metric", "info").stdout)
    assert top["metric"] == "info" and len(top["voi"]) == 2
    values = list(top["voi"].values())
    assert values == sorted(values, reverse=True)
    info = json.loads(run("voi", EXAMPLE, "--json", "--metric", "info").stdout)["voi"]
    assert list(top["voi"]) == sorted(info, key=lambda k: (-info[k], k))[:2]


def test_human_output_has_table_and_tree():
    res = run("voi", EXAMPLE, "--top", "3")
    assert res.exit_code == 0 and "root if true" in res.stdout
    res = run("infer", EXAMPLE)
    assert res.exit_code == 0 and "Commuting time is saved." in res.stdout


NODE_Q = {"id": "q", "text": "Q?", "prior": 0.5}


def doc(nodes, evidence=(), fmt="argtree/1"):
    return json.dumps({"format": fmt, "nodes": nodes, "evidence": list(evidence)})


def child(nid, parent="q", **kw):
    return {"id": nid, "parent": parent, "text": nid, "p_if_true": 0.7, "p_if_false": 0.3, **kw}


BAD = {
    "not json": ("{nodes: [", None, None),
    "wrong format": (doc([NODE_Q], fmt="argtree/0"), None, "format"),
    "no root": (doc([child("a", "b"), child("b", "a")]), None, None),
    "two roots": (doc([NODE_Q, {"id": "r", "text": "R", "prior": 0.3}]), "r", "parent"),
    "cycle": (doc([NODE_Q, child("a", "b"), child("b", "c"), child("c", "a")]), None, "parent"),
    "unknown parent": (doc([NODE_Q, child("a", "zz")]), "a", "parent"),
    "duplicate id": (doc([NODE_Q, child("a"), child("a")]), "a", "id"),
    "p out of range": (doc([NODE_Q, child("a", p_if_true=1.5)]), "a", "p_if_true"),
    "p negative": (doc([NODE_Q, child("a", p_if_false=-0.1)]), "a", "p_if_false"),
    "NaN prior": ('{"format": "argtree/1", "nodes": [{"id": "q", "text": "Q", "prior": NaN}]}', "q", "prior"),
    "string prob": (doc([NODE_Q, child("a", p_if_true="0.5")]), "a", "p_if_true"),
    "evidence unknown node": (doc([NODE_Q], [{"node": "nope", "value": True}]), "nope", "node"),
    "reliability 0.5": (doc([NODE_Q, child("a")], [{"node": "a", "value": True, "reliability": 0.5}]), "a", "reliability"),
    "reliability 1.2": (doc([NODE_Q, child("a")], [{"node": "a", "value": True, "reliability": 1.2}]), "a", "reliability"),
    "value not bool": (doc([NODE_Q, child("a")], [{"node": "a", "value": "yes"}]), "a", "value"),
    "contradictory labels": (doc([NODE_Q, child("a")], [{"node": "a", "value": True}, {"node": "a", "value": False}]),
                             "a", "evidence"),
    "impossible label": (doc([NODE_Q, child("a", p_if_true=1.0, p_if_false=1.0)], [{"node": "a", "value": False}]),
                         "a", "evidence"),
    "prior on premise": (doc([NODE_Q, child("a", prior=0.3)]), "a", "prior"),
    "nodes not a list": ('{"format": "argtree/1", "nodes": {}}', None, "nodes"),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("command", ["infer", "voi"])
def test_bad_input_exits_2_naming_node_and_field(tmp_path, name, command):
    text, node, field = BAD[name]
    path = tmp_path / "t.json"
    path.write_text(text)
    res = CliRunner().invoke(main, [command, str(path), "--json"])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)  # handled, not a crash
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("argtree: error:")
    if node is not None:
        assert f"node {node!r}" in err
    if field is not None:
        assert f"field {field!r}" in err
    assert res.stdout == ""


def test_missing_file_and_real_process_has_no_traceback(tmp_path):
    bad = tmp_path / "cycle.json"
    bad.write_text(BAD["cycle"][0])
    for target in (str(bad), str(tmp_path / "missing.json")):
        proc = subprocess.run([sys.executable, "-m", "argtree.cli", "voi", target], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and "argtree: error:" in proc.stderr


def test_pure_core_imports_no_heavy_frameworks():
    # The pure core, plus the modules that only depend on protocols (grow, llm's protocol, oracle, loop).
    pure = ["argtree", "argtree.tree", "argtree.inference", "argtree.voi", "argtree.io", "argtree.cli",
            "argtree.commands.core", "argtree.expand", "argtree.datasets", "argtree.simulate", "argtree.strategyqa",
            "argtree.grow", "argtree.llm", "argtree.oracle", "argtree.loop", "argtree.model_evidence",
            "argtree.calibration", "argtree.questions", "argtree.fact_match", "argtree.propose", "argtree.world"]
    code = (f"import sys\nfor m in {pure!r}: __import__(m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'transformers', 'sqlalchemy', 'streamlit', 'trl', 'peft', 'alembic', 'sklearn'})\n"
            "print(','.join(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
