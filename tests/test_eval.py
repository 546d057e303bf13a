"""Calibration metrics against independent references, and `argtree eval`'s handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree.datasets import DatasetError
from argtree.evaluate import brier, calibration, ece, fact_items, log_loss, reliability, reliability_diagram, score_facts
from argtree.llm.fake import FakeBackend


def test_brier_and_log_loss_match_sklearn():
    from sklearn.metrics import brier_score_loss
    from sklearn.metrics import log_loss as sk_log_loss

    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 200)
    y = (rng.uniform(size=200) < p).astype(int)
    assert brier(p, y) == pytest.approx(brier_score_loss(y, p))
    assert log_loss(p, y) == pytest.approx(sk_log_loss(y, p))


def test_ece_by_hand():
    # Bin [0.1, 0.2): p = 0.1, 0.1, truths 0, 1 -> |0.5 - 0.1| * 2; bin [0.9, 1]: p = 0.9, 1.0, truths 1, 1
    # -> |1 - 0.95| * 2.  ECE = (0.8 + 0.1) / 4.
    p, y = [0.1, 0.1, 0.9, 1.0], [0, 1, 1, 1]
    assert ece(p, y) == pytest.approx(0.9 / 4)
    assert reliability(p, y) == [(pytest.approx(0.1), 0.5, 2), (pytest.approx(0.95), 1.0, 2)]
    assert calibration(p, y).accuracy == 0.75


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=50))
def test_metric_ranges_and_perfect_predictions(pairs):
    p = [a for a, _ in pairs]
    y = [int(b) for _, b in pairs]
    assert 0 <= brier(p, y) <= 1
    assert 0 <= ece(p, y) <= 1
    assert log_loss(p, y) >= 0
    assert brier(y, y) == 0 and ece(y, y) == 0
    # ECE with one bin is |mean p - share true|.
    assert ece(p, y, bins=1) == pytest.approx(abs(np.mean(p) - np.mean(y)))


def test_bad_predictions_are_rejected():
    with pytest.raises(ValueError, match="no predictions"):
        brier([], [])
    with pytest.raises(ValueError, match="probabilities"):
        brier([1.5], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        brier([0.5], [2])


def test_fact_items_read_both_formats_and_reject_other_kinds():
    recs = [{"prompt": "Is A true?\n", "completion": "Yes"},
            {"prompt": "Is B true?\n", "completion": "No"}]
    assert fact_items(recs) == (["Is A true?", "Is B true?"], [1, 0], None)
    conv = [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "No"}]}]
    assert fact_items(conv) == (["Q?"], [0], None)
    with pytest.raises(DatasetError, match="not yes/no"):
        fact_items([{"prompt": "Q", "completion": "0.73"}])  # a posteriors dataset
    with pytest.raises(DatasetError, match="preference dataset"):
        fact_items([{"prompt": "Q", "chosen": "Yes", "rejected": "No"}])


def test_score_facts_and_diagram(tmp_path):
    fake = FakeBackend(yes_scores=[0.9, 0.2, 0.7])
    probs = score_facts(fake, ["a", "b", "c"], batch=2)
    assert probs == [0.9, 0.2, 0.7]
    png = reliability_diagram({"m": (probs, [1, 0, 0])}, str(tmp_path / "r.png"))
    data = open(png, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def _run(*args):
    return subprocess.run([sys.executable, "-m", "argtree.cli", *args], capture_output=True, text=True)


def test_eval_cli_bad_input(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    res = _run("eval", "--model", "bundled", "--data", str(empty))
    assert res.returncode == 2 and "empty" in res.stderr and "Traceback" not in res.stderr
    wrong = tmp_path / "w.jsonl"
    wrong.write_text(json.dumps({"prompt": "Q?", "chosen": "Yes", "rejected": "No"}) + "\n")
    res = _run("eval", "--model", "bundled", "--data", str(wrong))
    assert res.returncode == 2 and "preference" in res.stderr


@pytest.mark.slow
def test_eval_cli_unknown_model(tmp_path):
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"prompt": "Q?", "completion": "Yes"}) + "\n")
    res = _run("eval", "--model", "no-such-model-xyz", "--data", str(good), "--out", str(tmp_path))
    assert res.returncode == 2 and "no-such-model-xyz" in res.stderr and "Traceback" not in res.stderr


# -- `argtree eval --model NAME` without --data: the eval split of the database's labeled facts ---------------

RIVERS = [f"River number {k} floods its valley every spring." for k in range(60)]


def _held_out(texts, split=0.9):
    from argtree.datasets import normalize, split_value

    return [t for t in texts if split_value(normalize(t)) >= split]


def _labeled_store(tmp_path):
    """Two live trees whose premises carry labels, and an archived version holding one more labelled premise.
    Returns (url, {premise text: truth} of what the live trees hold)."""
    from argtree.store import save_tree, session_scope, set_tree
    from argtree.store.testing import sqlite_db
    from argtree.tree import ArgumentTree, Evidence, Node

    held = _held_out(RIVERS)
    archived_only = held[-1]  # in the eval split by its hash: it would show up if archived trees were read
    live = [t for t in RIVERS if t != archived_only]
    truth = {t: k % 3 != 0 for k, t in enumerate(live)}
    url = sqlite_db(tmp_path)
    with session_scope(url) as s:
        for i, texts in enumerate((live[: len(live) // 2], live[len(live) // 2:])):
            nodes = [Node("r", f"Do the rivers of region {i} flood every year?", prior=0.5)]
            nodes += [Node(f"n{j}", t, parent="r", p_if_true=0.8, p_if_false=0.3) for j, t in enumerate(texts)]
            save_tree(s, ArgumentTree(nodes), [Evidence(f"n{j}", truth[t]) for j, t in enumerate(texts)])
        old = ArgumentTree([Node("r", "Do the rivers of region 0 flood every year?", prior=0.5),
                            Node("n0", archived_only, parent="r", p_if_true=0.8, p_if_false=0.3)])
        set_tree(s, save_tree(s, old, [Evidence("n0", True)]), status="archived")
    return url, truth


def test_eval_without_data_reads_the_eval_split_export_writes(tmp_path):
    from argtree.commands.eval import _facts_from_store
    from argtree.expand import yes_no_prompt
    from argtree.store.testing import dispose

    url, truth = _labeled_store(tmp_path)
    expected = _held_out(truth)
    assert len(expected) >= 2
    recs, source = _facts_from_store(url, 0.9)
    assert source == "database (eval split of 0.9)"
    # Exactly the labelled premises of live trees whose text hashes into the held-out share, with their labels.
    prompts, truths, system = fact_items(recs, source)
    assert sorted(zip(prompts, truths)) == sorted((yes_no_prompt(t), int(truth[t])) for t in expected)
    assert system is None
    # ... which is what `argtree export --split 0.9` writes as its eval file (the model never trained on it).
    res = _run("export", "--kind", "facts", "--format", "prompt-completion", "--split", "0.9", "--out",
               str(tmp_path / "facts.jsonl"), "--database", url)
    assert res.returncode == 0, res.stderr
    with open(tmp_path / "facts.eval.jsonl", encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == recs
    # Another --split moves the line: more held out.
    more, _ = _facts_from_store(url, 0.5)
    assert len(more) == len(_held_out(truth, 0.5)) > len(recs)
    dispose(url)


def test_eval_without_data_fails_plainly_before_loading_a_model(tmp_path):
    from argtree.store import save_tree, session_scope
    from argtree.store.testing import dispose, sqlite_db
    from argtree.tree import ArgumentTree, Evidence, Node

    url = sqlite_db(tmp_path)
    # No model is loaded on the way to these errors (the model name does not even exist).
    res = _run("eval", "--model", "no-such-model-xyz", "--database", url, "--out", str(tmp_path))
    assert res.returncode == 2 and "holds no trees" in res.stderr and "Traceback" not in res.stderr
    with session_scope(url) as s:  # labels, but every labelled premise falls in the train share
        train = [t for t in RIVERS if t not in _held_out(RIVERS)][:5]
        save_tree(s, ArgumentTree([Node("r", "Do rivers flood?", prior=0.5)] + [
            Node(f"n{j}", t, parent="r", p_if_true=0.8, p_if_false=0.3) for j, t in enumerate(train)]),
            [Evidence(f"n{j}", True) for j in range(len(train))])
    res = _run("eval", "--model", "no-such-model-xyz", "--database", url, "--out", str(tmp_path))
    assert res.returncode == 2 and "eval split of the stored facts is empty" in res.stderr
    assert "--data" in res.stderr and "no-such-model-xyz" not in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "metrics.json").exists()
    dispose(url)


@pytest.mark.slow
@pytest.mark.model
def test_eval_without_data_scores_the_bundled_model_on_the_stores_eval_split(tmp_path):
    from argtree.store.testing import dispose

    url, truth = _labeled_store(tmp_path)
    expected = _held_out(truth)
    out_dir = tmp_path / "out"
    res = _run("eval", "--model", "bundled", "--database", url, "--device", "cpu", "--out", str(out_dir), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["data"] == "database (eval split of 0.9)" and summary["n"] == len(expected)
    # --base defaults to bundled: the same model, so one column.
    assert list(summary["results"]) == ["after"]
    r = summary["results"]["after"]
    assert r["model"] == "bundled" and r["n"] == len(expected)
    assert r["share_true"] == pytest.approx(sum(truth[t] for t in expected) / len(expected))
    assert 0 <= r["brier"] <= 1 and 0 <= r["ece"] <= 1 and 0 <= r["mean_p"] <= 1 and r["log_loss"] >= 0
    # The model gives each fact its own P(true), not one constant.
    assert r["std_p"] > 0
    with open(out_dir / "metrics.json", encoding="utf-8") as fh:
        assert json.load(fh) == summary
    with open(summary["reliability_png"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    dispose(url)
