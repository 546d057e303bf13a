"""The simulator behind the oracle-efficiency benchmark: worlds, the forest trick, policies, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import brute

from argtree import simulate as S
from argtree.inference import CompiledTree, Propagation, beliefs
from argtree.tree import Evidence
from argtree.voi import metric_from_table, select_batch, voi_arrays


def depths(parent):
    d = np.zeros(len(parent), dtype=int)
    for i in range(1, len(parent)):
        d[i] = d[parent[i]] + 1
    return d


@pytest.mark.parametrize("shape", S.SHAPES)
@pytest.mark.parametrize("n", [1, 2, 7, 25])
def test_shapes_are_trees_in_bfs_order(shape, n):
    parent = S.random_parents(n, shape, np.random.default_rng(n))
    assert len(parent) == n and parent[0] == -1
    assert np.all(parent[1:] < np.arange(1, n)) and np.all(parent[1:] >= 0)
    assert np.all(np.diff(depths(parent)) >= 0)  # BFS: depth never decreases with the index


def test_shapes_differ_as_documented():
    rng = np.random.default_rng(0)
    mean_depth = {s: np.mean([depths(S.random_parents(25, s, rng)).max() for _ in range(200)]) for s in S.SHAPES}
    assert mean_depth["chain"] == 24
    assert mean_depth["bushy"] < mean_depth["random"] < mean_depth["deep"] < 24
    assert mean_depth["bushy"] <= 4


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        S.random_parents(5, "star", np.random.default_rng(0))


def small_tree(seed=3, n=6):
    rng = np.random.default_rng(seed)
    parent = S.random_parents(n, "random", rng)
    prior, p1, p0 = S.random_cpts(parent, rng, strength=1.5)
    return parent, prior, p1, p0


def test_sampled_truth_frequencies_match_inference():
    parent, prior, p1, p0 = small_tree()
    ct = CompiledTree.from_arrays(parent, p1, p0, prior)
    x = S.sample_truth(parent, prior, p1, p0, np.random.default_rng(1), size=40_000)
    freq = x.mean(axis=0)
    exact = np.array(list(beliefs(ct).values()))
    se = np.sqrt(exact * (1 - exact) / len(x))
    assert np.all(np.abs(freq - exact) < 4.5 * se + 1e-9)
    # Conditional frequencies too: among samples with node 2 true and node 5 false, every node's truth rate.
    keep = x[:, 2] & ~x[:, 5]
    cond = np.array(list(beliefs(ct, [Evidence("2", True), Evidence("5", False)]).values()))
    se = np.sqrt(cond * (1 - cond) / keep.sum())
    assert np.all(np.abs(x[keep].mean(axis=0) - cond) < 4.5 * se + 1e-9)


def test_sample_truth_needs_topological_order():
    with pytest.raises(ValueError, match="parent\\[i\\] < i"):
        S.sample_truth(np.array([-1, 2, 0]), 0.5, np.full(3, 0.5), np.full(3, 0.5), np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(p=arrays(float, 8, elements=st.floats(0.0, 1.0)), noise=st.floats(0.0, 50.0), prior=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_noisy_cpts_stay_probabilities(p, noise, prior, seed):
    parent = np.array([-1, 0, 0, 1, 1, 2, 3, 3])
    qp, q1, q0 = S.perturb(prior, p, p[::-1].copy(), noise, np.random.default_rng(seed), parent)
    for q in (q1[1:], q0[1:], np.array([qp])):
        assert np.all(np.isfinite(q)) and np.all(q >= S.EPS) and np.all(q <= 1 - S.EPS)
    assert q1[0] == p[0] and q0[0] == p[::-1][0]  # the root's unused entries are left alone


def test_cpt_noise_has_the_stated_scale():
    p = np.full(20_000, 0.3)
    _, q1, _ = S.perturb(0.5, p, p, 0.7, np.random.default_rng(0))
    moved = S.logit(q1) - S.logit(p)
    assert abs(moved.std() - 0.7) < 0.02 and abs(moved.mean()) < 0.02
    _, same, _ = S.perturb(0.5, p, p, 0.0, np.random.default_rng(0))
    assert np.allclose(same, p)


def test_worlds_do_not_depend_on_how_many_are_drawn():
    a = S.make_worlds(3, 9, "deep", 0.5, seed=7)
    b = S.make_worlds(5, 9, "deep", 0.5, seed=7)
    for field in ("parent", "p1", "p0", "est_p1", "truth"):
        assert np.array_equal(getattr(a, field), getattr(b, field)[:3])
    # The noise draws are shared across noise levels: the same world, only its noisy copy changes.
    c = S.make_worlds(3, 9, "deep", 2.0, seed=7)
    assert np.array_equal(a.truth, c.truth) and np.array_equal(a.p1, c.p1) and not np.array_equal(a.est_p1, c.est_p1)


def world_evidence(worlds, rng, k=3):
    """Random soft and hard labels per world: [(node, value, reliability)]."""
    out = []
    for _ in range(worlds.count):
        nodes = rng.choice(np.arange(1, worlds.n), size=k, replace=False)
        out.append([(int(x), bool(rng.random() < 0.5), float(rng.choice([1.0, 0.8]))) for x in nodes])
    return out


def test_forest_beliefs_and_voi_match_brute_force_per_world():
    worlds = S.make_worlds(6, 7, "random", 1.0, seed=11)
    forest = S.Forest(worlds.parent, worlds.est_prior, worlds.est_p1, worlds.est_p0)
    labels = world_evidence(worlds, np.random.default_rng(0))
    le = forest.empty_loglik()
    for w, ev in enumerate(labels):
        for x, v, rel in ev:
            S.observe(le, forest.pos[w, [x]], np.array([v]), rel)
    bel, a, c = forest.beliefs(le), forest.beliefs(le, True), forest.beliefs(le, False)
    for w, ev in enumerate(labels):
        nodes = [(str(i), None if i == 0 else str(worlds.parent[w, i]),
                  worlds.est_prior[w] if i == 0 else worlds.est_p1[w, i], worlds.est_p0[w, i])
                 for i in range(worlds.n)]
        ref = brute(nodes, [(str(x), v, rel) for x, v, rel in ev])
        assert np.allclose(bel[w], [ref["beliefs"][str(i)] for i in range(worlds.n)], atol=1e-10)
        for metric in ("shift", "decision", "info"):
            values = metric_from_table(float(bel[w, 0]), a[w], c[w], metric)
            for nid, expected in ref[metric].items():
                assert values[int(nid)] == pytest.approx(expected, abs=1e-9), (w, metric, nid)


def test_bayes_q_is_the_true_posterior_given_every_premise():
    worlds = S.make_worlds(4, 6, "bushy", 1.0, seed=2)
    q = S.bayes_q(worlds)
    for w in range(worlds.count):
        ct = CompiledTree.from_arrays(worlds.parent[w], worlds.p1[w], worlds.p0[w], worlds.prior[w])
        ev = [Evidence(str(i), bool(worlds.truth[w, i])) for i in range(1, worlds.n)]
        assert q[w] == pytest.approx(beliefs(ct, ev)["0"], abs=1e-12)


def test_expected_brier_estimates_the_same_mean_as_brier():
    worlds = S.make_worlds(3000, 12, "random", 1.0, seed=5)
    tr = S.run_policy(worlds, "voi-shift", answers=3)
    for t in range(4):
        diff = tr.brier[:, t] - tr.expected_brier[:, t]
        m, half = S.mean_ci(diff, z=4.0)
        assert abs(m) < half, t
    # ...with less variance: it integrates out the root's own coin flip.
    assert tr.expected_brier[:, 2].var() < 0.5 * tr.brier[:, 2].var()


@pytest.fixture(scope="module")
def worlds25():
    return S.make_worlds(40, 25, "random", 1.0, seed=3)


def test_every_policy_asks_each_premise_at_most_once_without_answer_noise(worlds25):
    for policy in S.POLICIES:
        tr = S.run_policy(worlds25, policy, answers=10)
        assert np.all(tr.asked >= 1), policy  # never the root, never "nothing left"
        for row in tr.asked:
            assert len(set(row.tolist())) == len(row), policy
        assert np.array_equal(tr.answers, np.take_along_axis(worlds25.truth, tr.asked, axis=1))


def test_runs_are_reproducible(worlds25):
    a = S.run_policy(worlds25, "random", answers=6, seed=1)
    b = S.run_policy(worlds25, "random", answers=6, seed=1)
    assert np.array_equal(a.asked, b.asked) and np.array_equal(a.belief, b.belief)


def test_first_picks_agree_with_the_library(worlds25):
    picks = {p: S.run_policy(worlds25, p, answers=4).asked for p in
             ("voi-shift", "voi-decision", "voi-info", "batch4-shift", "breadth-first", "uncertainty", "influence")}
    assert np.all(picks["breadth-first"] == np.arange(1, 5))
    for w in range(worlds25.count):
        ct = CompiledTree.from_arrays(worlds25.parent[w], worlds25.est_p1[w], worlds25.est_p0[w],
                                      float(worlds25.est_prior[w]))
        prop = Propagation(ct, np.zeros((ct.n, 2)))
        for metric in ("shift", "decision", "info"):
            values, _ = voi_arrays(ct, prop.le, metric, prop)
            values = ct.to_caller(values)
            best = np.flatnonzero(np.round(values[1:], 12) == np.round(values[1:], 12).max()) + 1
            assert picks[f"voi-{metric}"][w, 0] == best[0]
        assert picks["batch4-shift"][w].tolist() == [int(i) for i in select_batch(ct, [], 4, "shift")]
        bel = ct.to_caller(prop.down())
        assert abs(bel[picks["uncertainty"][w, 0]] - 0.5) == pytest.approx(np.abs(bel[1:] - 0.5).min())
        swing = [abs(np.subtract(*root_if_pair(ct, i))) for i in range(1, ct.n)]
        assert swing[picks["influence"][w, 0] - 1] == pytest.approx(max(swing), rel=1e-9)


def root_if_pair(ct, i):
    from argtree.voi import root_if

    return root_if(ct, [], str(i))


def test_answer_noise_flips_the_stated_share_and_answers_are_soft(worlds25):
    tr = S.run_policy(worlds25, "random", answers=20, answer_noise=0.3)
    wrong = tr.answers != np.take_along_axis(worlds25.truth, tr.asked, axis=1)
    assert abs(wrong.mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / wrong.size)
    # Soft evidence of reliability 0.7: beliefs stay strictly inside (0, 1).
    assert np.all((tr.belief > 0) & (tr.belief < 1))
    with pytest.raises(ValueError, match="answer_noise"):
        S.run_policy(worlds25, "random", answers=2, answer_noise=0.5)
    with pytest.raises(ValueError, match="unknown policy"):
        S.run_policy(worlds25, "oracle", answers=2)


def test_statistics_helpers():
    assert S.sign_test(np.ones(10)) == (10, 10, pytest.approx(1 / 1024))
    k, m, p = S.sign_test(np.array([1, -1, 0, 2, 3]))
    assert (k, m) == (3, 4) and p == pytest.approx(5 / 16)
    assert S.sign_test(np.zeros(3)) == (0, 0, 1.0)
    big = np.r_[np.ones(2600), -np.ones(2400)]  # thousands of worlds: no float overflow
    assert S.sign_test(big)[2] == pytest.approx(0.0023, rel=0.1)
    assert S.sign_test(-big)[2] == pytest.approx(1.0, abs=0.003)
    assert S.answers_to_reach([0.3, 0.2, 0.1], 0.2) == 1
    assert S.answers_to_reach([0.3, 0.25], 0.2) is None
    m, half = S.mean_ci(np.array([1.0, 3.0]))
    assert m == 2.0 and half == pytest.approx(1.96 * math.sqrt(2) / math.sqrt(2))


def test_voi_policies_survive_a_settled_root():
    # Near-deterministic premises: after a few answers P(root) rounds to exactly 1.0 and every VoI is 0.
    n = 12
    parent = np.r_[-1, np.zeros(n - 1, dtype=np.int64)][None, :]
    p1 = np.r_[0.0, np.full(n - 1, 1 - S.EPS)][None, :]
    p0 = np.r_[0.0, np.full(n - 1, S.EPS)][None, :]
    truth = np.ones((1, n), dtype=bool)
    worlds = S.Worlds(parent, np.array([0.5]), p1, p0, np.array([0.5]), p1, p0, truth, "bushy", 0.0, 0)
    for policy in ("voi-shift", "voi-decision", "voi-info"):
        tr = S.run_policy(worlds, policy, answers=8)
        assert tr.belief[0, -1] == 1.0
        assert sorted(tr.asked[0].tolist()) == list(range(1, 9)), policy  # ties go to the shallowest, in order


def test_model_evidence_in_simulated_worlds_sits_on_the_frontier_and_useless_is_a_no_op():
    from argtree.simulate import Forest, make_worlds, model_evidence, run_policy

    worlds = make_worlds(40, 12, "random", 1.0, seed=3)
    forest = Forest(worlds.parent, worlds.est_prior, worlds.est_p1, worlds.est_p0)
    for mode in ("frontier", "all"):
        le = forest.empty_loglik()
        model_evidence(worlds, forest, le, 0.8, mode)
        touched = (le != 0).any(axis=1)[forest.pos]          # (W, n): which nodes got evidence
        leaves = np.ones_like(touched)
        for w in range(worlds.count):
            leaves[w, worlds.parent[w, 1:]] = False
        assert not touched[:, 0].any()                        # never the root
        expected = leaves.copy() if mode == "frontier" else np.ones_like(touched)
        expected[:, 0] = False
        assert (touched == expected).all()
    base = run_policy(worlds, "voi-shift", answers=4)
    useless = run_policy(worlds, "voi-shift", answers=4, model_quality=0.5)
    assert np.allclose(base.belief, useless.belief)
    good = run_policy(worlds, "voi-shift", answers=4, model_quality=0.95, model_mode="all")
    assert good.expected_brier[:, 0].mean() < base.expected_brier[:, 0].mean()
    with pytest.raises(ValueError):
        run_policy(worlds, "voi-shift", answers=4, model_quality=1.0)
