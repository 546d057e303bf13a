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
