"""argtree.annotators: one-coin Dawid–Skene EM with Beta priors and gold questions."""

from __future__ import annotations

import math
import random

import pytest

from argtree.annotators import Vote, beta_interval, estimate, evidence_weight, majority, prior_counts

ACCURACIES = {"a95": 0.95, "a90": 0.9, "a80": 0.8, "a70": 0.7, "a55": 0.55, "a30": 0.3}


def _simulate(n_items: int, seed: int, accuracies=ACCURACIES, per_item=None):
    rng = random.Random(seed)
    truth = {i: rng.random() < 0.5 for i in range(n_items)}
    votes = []
    for i, t in truth.items():
        who = list(accuracies) if per_item is None else rng.sample(list(accuracies), per_item)
        for a in who:
            votes.append(Vote(a, i, t if rng.random() < accuracies[a] else (not t)))
    return truth, votes


def test_learned_reliabilities_recover_the_truth_with_an_adversary():
    truth, votes = _simulate(400, seed=1)
    res = estimate(votes, priors={a: 0.9 for a in ACCURACIES})
    assert res.converged
    for a, acc in ACCURACIES.items():
        e = res.estimates[a]
        assert abs(e.reliability - acc) < 0.05, (a, e.reliability)
        assert e.low < e.reliability < e.high and e.n == 400
    assert res.estimates["a30"].reliability < 0.5  # the adversary is found, not trusted
    accuracy = sum((res.posterior[i] > 0.5) == t for i, t in truth.items()) / len(truth)
    maj = majority(votes)
    maj_acc = sum((maj[i] > 0.5) == t for i, t in truth.items() if maj[i] != 0.5) / len(truth)
    assert accuracy > maj_acc


def test_posterior_is_bayes_rule_when_reliabilities_are_pinned():
    # With an overwhelming prior the reliabilities stay put, so the E-step must equal Bayes' rule by hand.
    votes = [Vote("x", "i", True), Vote("y", "i", False), Vote("z", "i", probability=0.8), Vote("x", "j", False)]
    rel = {"x": 0.9, "y": 0.6, "z": 0.75}
    res = estimate(votes, priors=rel, strength=1e12, item_prior={"i": 0.3, "j": 0.5})
    lt = 0.9 * 0.4 * (0.75 * 0.8 + 0.25 * 0.2)
    lf = 0.1 * 0.6 * (0.75 * 0.2 + 0.25 * 0.8)
    assert res.posterior["i"] == pytest.approx(0.3 * lt / (0.3 * lt + 0.7 * lf), abs=1e-9)
    assert res.posterior["j"] == pytest.approx(0.1, abs=1e-9)
    for a, r in rel.items():
        assert res.estimates[a].reliability == pytest.approx(r, abs=1e-6)


def test_gold_items_score_annotators_even_against_a_majority():
    # Two colluding annotators always say the opposite of the truth; one honest. Without gold, the pair
    # outvotes the honest one; with gold on a quarter of the items, EM learns who is right.
    rng = random.Random(3)
    truth = {i: rng.random() < 0.5 for i in range(200)}
    votes = [Vote("honest", i, t) for i, t in truth.items()]
    votes += [Vote(f"liar{k}", i, not t) for i, t in truth.items() for k in (1, 2)]
    blind = estimate(votes)
    assert blind.estimates["honest"].reliability < 0.5
    gold = {i: t for i, t in truth.items() if i % 4 == 0}
    res = estimate(votes, gold=gold)
    assert res.estimates["honest"].reliability > 0.9 and res.estimates["liar1"].reliability < 0.1
    assert res.estimates["honest"].n_gold == 50 and res.estimates["honest"].gold_correct == pytest.approx(50)
    assert all(res.posterior[i] == (1.0 if t else 0.0) for i, t in gold.items())


def test_the_prior_is_where_an_annotator_starts_and_labels_move_it():
    res = estimate([], priors={"new": 0.8})
    e = res.estimates["new"]
    assert e.reliability == pytest.approx(0.8) and e.n == 0 and e.low < 0.8 < e.high
    a, b = prior_counts(0.8)
    assert (e.alpha, e.beta) == pytest.approx((a, b))
    # Ten gold answers, all wrong: the estimate falls far below the prior, and the interval narrows.
    res = estimate([Vote("new", i, False) for i in range(10)], priors={"new": 0.8}, gold={i: True for i in range(10)})
    e2 = res.estimates["new"]
    assert e2.reliability == pytest.approx(a / (a + b + 10)) and e2.high - e2.low < e.high - e.low


def test_evidence_weight_flips_an_adversary_and_never_is_hard():
    assert evidence_weight(True, 0.3) == (False, pytest.approx(0.7))
    assert evidence_weight(False, 0.9) == (False, 0.9)
    assert evidence_weight(True, 0.5) is None
    assert evidence_weight(True, 1.0)[1] < 1.0


def test_beta_interval_matches_the_distribution():
    lo, hi = beta_interval(9.0, 3.0)
    assert 0 < lo < 0.75 < hi < 1
    assert beta_interval(50.0, 50.0)[1] - beta_interval(50.0, 50.0)[0] < hi - lo
    assert math.isclose(sum(beta_interval(5.0, 5.0)), 1.0, abs_tol=1e-9)  # symmetric


def test_bench_learned_weights_beat_fixed_and_majority_in_the_simulated_worlds():
    from argtree.annotators import bench_annotators

    r = bench_annotators(seed=0)
    assert r["labels_per_annotator"] == 200 and [a["labels"] for a in r["annotators"]] == [200] * 6
    by = {a["annotator"]: a for a in r["annotators"]}
    assert by["a30"]["learned"] < 0.5 < by["a55"]["learned"] < by["a80"]["learned"] < by["a95"]["learned"]
    assert r["max_abs_error_realized"] < 0.1
    assert r["learned_vs_fixed"]["low"] > 0 and r["learned_vs_majority"]["low"] > 0
    eb = r["e_brier"]
    assert abs(eb["learned"] - eb["true accuracies"]) < eb["fixed"] - eb["learned"]
    with pytest.raises(ValueError):
        bench_annotators(overlap=4)


def test_bench_annotators_command_prints_json():
    import json

    from click.testing import CliRunner

    from argtree.cli import main

    r = CliRunner().invoke(main, ["bench", "annotators", "--worlds", "40", "--overlap", "6", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["labels_per_annotator"] == 40 and set(out["e_brier"]) >= {"learned", "fixed", "majority"}


def test_bench_reports_the_sampling_bound_per_annotator_and_for_the_run():
    from argtree.annotators import bench_annotators, bench_worlds

    assert bench_worlds(200, 3) == 400 and bench_worlds(600, 3) == 1200 and bench_worlds(50, 6) == 50
    r = bench_annotators(seed=7, worlds=bench_worlds(200, 3))
    for a in r["annotators"]:
        assert math.isclose(a["realized_error"], a["realized"] - a["true"])
        assert a["realized_within"] == (abs(a["realized"] - a["true"]) <= 0.05 + 1e-12)
        assert a["within"] == (abs(a["learned"] - a["true"]) <= 0.05 + 1e-12)
    assert r["realized_within_0.05"] == all(a["realized_within"] for a in r["annotators"])
    assert r["within_0.05"] == all(a["within"] for a in r["annotators"])
    # seed 7 at 200 labels: a30's 200 labels are right 37.5% of the time, 0.075 off its true 0.3
    by = {a["annotator"]: a for a in r["annotators"]}
    assert by["a30"]["realized"] == 0.375 and not by["a30"]["realized_within"] and not r["realized_within_0.05"]
    assert math.isclose(r["max_abs_realized_error"], max(abs(a["realized_error"]) for a in r["annotators"]))


def test_bench_annotators_command_sets_labels_per_annotator():
    import json

    from click.testing import CliRunner

    from argtree.cli import main

    r = CliRunner().invoke(main, ["bench", "annotators", "--labels", "30", "--overlap", "6", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["labels_per_annotator"] == 30 and out["worlds"] == 30
    assert isinstance(out["realized_within_0.05"], bool) and "max_abs_realized_error" in out
    r = CliRunner().invoke(main, ["bench", "annotators", "--labels", "30", "--overlap", "2"])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "30 labels each, 90 worlds" in flat and "the sampling bound" in flat
    r = CliRunner().invoke(main, ["bench", "annotators", "--labels", "30", "--worlds", "40"])
    assert r.exit_code == 2 and "not both" in r.output
