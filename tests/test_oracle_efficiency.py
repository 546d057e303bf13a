"""A fast version of the oracle-efficiency benchmark (bench/oracle_efficiency.py).

"VoI beats random on average" is a claim about the mean Brier score, so it is
tested with a paired sign-flip permutation test on per-world differences of the
Brier averaged over answers 1..8.  Two choices keep the test honest and fast:

* The Brier is the *expected* Brier given every premise's truth, (b - q)^2 + q(1 - q)
  with q = P(root | all premises) under the true CPTs.  It has the same mean as the
  Brier against the one sampled root, without that coin flip's variance, which
  otherwise swamps the paired difference (t ~ 0.5 to 3 at 200 worlds, depending on
  the seed, against 3.4 to 5 for the expected Brier).
* 400 worlds, not a few dozen: per world VoI beats random only ~60% of the time
  (with noisy CPTs, moving the root far is sometimes moving it wrong), so a few
  dozen worlds cannot reach p < 0.001.  400 worlds take well under a second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from argtree import simulate as S
from argtree.cli import main
from argtree.tree import Evidence


def paired(shape: str, baseline: str, worlds: int = 400, seed: int = 2026) -> np.ndarray:
    """Per world: baseline's minus voi-shift's expected Brier, averaged over answers 1..8."""
    wd = S.make_worlds(worlds, 25, shape, cpt_noise=1.0, seed=seed)
    voi = S.run_policy(wd, "voi-shift", answers=8).expected_brier[:, 1:].mean(axis=1)
    base = S.run_policy(wd, baseline, answers=8).expected_brier[:, 1:].mean(axis=1)
    return base - voi


@pytest.mark.parametrize("shape", ["random", "chain"])
def test_voi_beats_random_on_average(shape):
    diff = paired(shape, "random")
    assert S.permutation_test(diff, seed=1) < 0.001
    assert diff.mean() > 0.005


def test_voi_beats_uncertainty_on_chains():
    # On a chain only the root's child matters once known; the most uncertain node is usually deep.
    diff = paired("chain", "uncertainty")
    assert S.permutation_test(diff, seed=1) < 0.001
    assert diff.mean() > 0.005


def test_the_permutation_test_is_not_fooled_by_noise():
    rng = np.random.default_rng(0)
    p = np.array([S.permutation_test(rng.normal(0, 1, 200), n_perm=1000, seed=i) for i in range(100)])
    assert 0.38 < p.mean() < 0.62  # p-values under the null are uniform: mean 1/2, sd of this mean ~0.03
    assert np.mean(p < 0.05) <= 0.15
    assert S.permutation_test(rng.normal(0.3, 1, 400)) < 0.001


def test_cli_writes_report_plot_and_json(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "oracle-efficiency", "--worlds", "30", "--shape", "chain", "--shape", "random",
        "--policy", "voi-shift", "--policy", "random", "--policy", "uncertainty", "--policy", "breadth-first",
        "--answers", "8", "--processes", "1", "--seed", "4", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["command"].startswith("argtree bench oracle-efficiency --seed 4 --worlds 30")
    assert [r["config"]["shape"] for r in doc["results"]] == ["chain", "random"]
    chain = doc["results"][0]
    assert set(chain["policies"]) == {"voi-shift", "random", "uncertainty", "breadth-first"}
    assert len(chain["policies"]["random"]["expected_brier"]) == 9
    # On a chain VoI's first question is the root's child; nothing below it matters afterwards.
    curve = [m for m, _ in chain["policies"]["voi-shift"]["expected_brier"]]
    assert np.allclose(curve[1:], curve[1])
    assert (tmp_path / "oracle_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "oracle_efficiency.md").read_text()
    assert "| chain, CPT noise 1 |" in md and "Reproduce: `argtree bench oracle-efficiency --seed 4" in md
    assert json.loads((tmp_path / "oracle_efficiency.json").read_text()) == doc


def test_cli_rejects_an_unknown_policy(tmp_path):
    result = CliRunner().invoke(main, ["bench", "oracle-efficiency", "--policy", "psychic", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "'psychic' is not one of" in result.output and "voi-shift" in result.output
    assert not list(tmp_path.iterdir())


# -- bench/strategyqa_voi.py: its pure parts, and its plumbing with the scripted backend ----------

def _strategyqa_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "strategyqa_voi.py"
    spec = importlib.util.spec_from_file_location("strategyqa_voi", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_credences_enter_as_virtual_evidence():
    from argtree import ArgumentTree, Node
    from argtree.inference import beliefs

    sq = _strategyqa_script()
    tree = ArgumentTree([Node("q", "root", prior=0.5),
                         Node("a", "premise a", "q", p_if_true=0.8, p_if_false=0.3),
                         Node("b", "premise b", "q", p_if_true=0.2, p_if_false=0.6)])
    for nid, c in (("a", 0.9), ("b", 0.15)):
        ev = sq.virtual_evidence(tree, {nid: c})
        assert beliefs(tree, ev)[nid] == pytest.approx(c)  # alone, it sets the premise's marginal to c
    both = sq.virtual_evidence(tree, {"a": 0.9, "b": 0.15})
    # Both premises point to a true root: together they push it further than either alone.
    alone = [sq.root_belief(tree, sq.virtual_evidence(tree, {nid: c})) for nid, c in (("a", 0.9), ("b", 0.15))]
    assert sq.root_belief(tree, both) > max(alone) > min(alone) > 0.5
    # VoI picks first the premise whose answer moves the root most; labels then replace the soft evidence.
    path = sq.oracle_path(tree, both, {"a": False, "b": True}, 3, "voi", np.random.default_rng(0))
    assert len(path) == 3 and path[1] == path[2] == pytest.approx(
        sq.root_belief(tree, [Evidence("a", False), Evidence("b", True)]))


def test_strategyqa_script_runs_end_to_end_with_the_scripted_backend(tmp_path):
    sq = _strategyqa_script()
    out = tmp_path / "sqa.json"
    assert sq.main(["--backend", "fake", "--n", "3", "--seed", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["config"]["done"] == 3 and len(doc["rows"]) == 3
    for row in doc["rows"]:
        assert isinstance(row["answer"], bool) and row["premises"]
        assert row["tree_no_evidence"] == pytest.approx(0.5)  # the grow default prior: no answers, no information
        for key in ("direct", "tree", "all"):
            assert 0.0 <= row[key] <= 1.0
        assert len(row["voi"]) == len(row["random"]) == 3
    table = sq.report(doc)
    assert "| (a) direct answer |" in table and "| (c) k=3, VoI |" in table


def test_strategyqa_direct_only_scores_a_larger_subset(tmp_path):
    sq = _strategyqa_script()
    out = tmp_path / "direct.json"
    assert sq.main(["--backend", "fake", "--direct-only", "40", "--seed", "3", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n"] == 40
    acc, lo, hi = doc["accuracy"]
    assert 0.0 <= lo <= acc <= hi <= 1.0 and hi - lo > 0.1  # 40 questions: a wide interval, honestly
