"""Invariants of inference and VoI, batch selection, and numerical robustness on huge trees."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node, TreeError
from argtree.inference import CompiledTree, Propagation, beliefs
from argtree.io import dumps, loads
from argtree.voi import METRICS, rank, root_if, select_batch, voi, voi_arrays
from reference import brute
from strategies import as_reference, trees

relaxed = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def consistent(tree, evidence):
    try:
        beliefs(tree, evidence)
        return True
    except TreeError:
        return False


@relaxed
@given(trees())
def test_voi_nonnegative_and_labeled_nodes_have_none(case):
    tree, evidence = case
    if not consistent(tree, evidence):
        return
    hard = {e.node for e in evidence if e.is_hard}
    for metric in METRICS:
        scores = voi(tree, evidence, metric)
        assert all(v >= 0 for v in scores.values())
        assert set(scores) == set(tree.nodes) - hard - {tree.root}


@relaxed
@given(trees(), st.data())
def test_label_agreeing_with_a_certain_node_changes_nothing(case, data):
    tree, evidence = case
    if not consistent(tree, evidence):
        return
    bel = beliefs(tree, evidence)
    certain = [nid for nid, p in bel.items() if p in (0.0, 1.0)]
    if not certain:
        return
    nid = data.draw(st.sampled_from(certain))
    more = evidence + (Evidence(nid, bel[nid] == 1.0, data.draw(st.sampled_from([1.0, 0.7]))),)
    after = beliefs(tree, more)
    for k in bel:
        assert after[k] == pytest.approx(bel[k], abs=1e-12)
    before_voi, after_voi = voi(tree, evidence), voi(tree, more)
    for k in after_voi:
        assert after_voi[k] == pytest.approx(before_voi[k], abs=1e-12)


@relaxed
@given(trees(), st.randoms(use_true_random=False))
def test_node_order_in_the_file_does_not_matter(case, rnd):
    tree, evidence = case
    if not consistent(tree, evidence):
        return
    nodes = list(tree.nodes.values())
    rnd.shuffle(nodes)
    shuffled = ArgumentTree(nodes)
    a, b = beliefs(tree, evidence), beliefs(shuffled, evidence)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-12)
    assert voi(shuffled, evidence).keys() == voi(tree, evidence).keys()


# Text without NUL or lone surrogates: argtree/1 files refuse both (no database stores them; argtree.io,
# README "The exact core").
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20),
                         st.floats(allow_nan=False, allow_infinity=False))


@relaxed
@given(trees(), st.dictionaries(st.sampled_from(["rationale", "model", "said", "x"]), json_scalars, max_size=3),
       st.dictionaries(st.sampled_from(["annotator", "at"]), json_scalars, max_size=2))
def test_json_round_trip_is_lossless(case, node_extra, ev_extra):
    tree, evidence = case
    if not consistent(tree, evidence):
        return
    nodes = [Node(n.id, n.text, n.parent, n.prior, n.p_if_true, n.p_if_false, dict(node_extra)) for n in tree.nodes.values()]
    evidence = tuple(Evidence(e.node, e.value, e.reliability, dict(ev_extra)) for e in evidence)
    tree = ArgumentTree(nodes, {"source": "test"})
    text = dumps(tree, evidence)
    tree2, ev2 = loads(text)
    assert list(tree2.nodes.values()) == list(tree.nodes.values())
    assert ev2 == evidence
    assert tree2.meta == tree.meta
    assert dumps(tree2, ev2) == text


def brute_batch(nodes, ev, k, metric):
    """Greedy batch by enumeration: E over earlier picks' answers of VoI given those answers."""
    ref0 = brute(nodes, ev)
    chosen = []
    root = next(n[0] for n in nodes if n[1] is None)
    for _ in range(k):
        total = {}
        for answers in itertools.product((True, False), repeat=len(chosen)):
            extra = [(nid, v, 1.0) for nid, v in zip(chosen, answers)]
            r = brute(nodes, ev + extra)
            if r is None:
                continue
            # P(answers | ev) from the reference's own joint: product of sequential conditionals.
            p, cond = 1.0, list(ev)
            for nid, v, _ in extra:
                b = brute(nodes, cond)["beliefs"][nid]
                p *= b if v else 1 - b
                cond.append((nid, v, 1.0))
            for nid, val in r[metric].items():
                if nid not in chosen:
                    total[nid] = total.get(nid, 0.0) + p * val
        cands = [nid for nid in ref0[metric] if nid not in chosen and nid != root]
        if not cands:
            break
        chosen.append(min(cands, key=lambda nid: (-round(total.get(nid, 0.0), 12), nid)))
    return chosen


@settings(max_examples=int(__import__("os").environ.get("ARGTREE_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(max_nodes=7), st.integers(1, 3), st.sampled_from(METRICS))
def test_batch_selection_matches_enumeration(case, k, metric):
    tree, evidence = case
    if not consistent(tree, evidence):
        return
    nodes, ev = as_reference(tree, evidence)
    got = select_batch(tree, evidence, k, metric)
    want = brute_batch(nodes, ev, k, metric)
    assert got == want


def test_first_batch_pick_is_the_top_ranked_node():
    rng = random.Random(5)
    nodes = [Node("r", "root", prior=0.4)]
    for i in range(1, 60):
        j = rng.randrange(i)
        nodes.append(Node(f"n{i}", "p", f"n{j}" if j else "r", p_if_true=rng.random(), p_if_false=rng.random()))
    nodes[1] = Node("n1", "p", "r", p_if_true=0.9, p_if_false=0.1)
    tree = ArgumentTree(nodes)
    ev = (Evidence("n7", True, 0.8),)
    assert select_batch(tree, ev, 4)[0] == rank(voi(tree, ev))[0][0]
    assert len(set(select_batch(tree, ev, 4))) == 4


def test_rank_is_deterministic_on_ties():
    assert rank({"b": 0.5, "a": 0.5, "c": 0.7}) == [("c", 0.7), ("a", 0.5), ("b", 0.5)]
    assert rank({"b": 0.5, "a": 0.5, "c": 0.7}, top=2) == [("c", 0.7), ("a", 0.5)]


def test_root_if_is_the_conditional_root_belief():
    tree, ev = loads(json.dumps({"format": "argtree/1", "nodes": [
        {"id": "q", "text": "q", "prior": 0.5},
        {"id": "a", "parent": "q", "text": "a", "p_if_true": 0.9, "p_if_false": 0.6}]}))
    t, f = root_if(tree, ev, "a")
    assert t == pytest.approx(0.45 / (0.45 + 0.30))
    assert f == pytest.approx(0.05 / (0.05 + 0.20))


# --- numerical care on huge trees -------------------------------------------------------


def test_deep_chain_of_10000_matches_forward_backward():
    rng = np.random.default_rng(1)
    n = 10_000
    p1 = rng.uniform(0.05, 0.95, n)
    p0 = rng.uniform(0.05, 0.95, n)
    p1[::97] = 1.0
    p0[::89] = 0.0
    parent = np.arange(-1, n - 1)
    ct = CompiledTree.from_arrays(parent, p1, p0, 0.3)
    le = np.zeros((n, 2))
    le[-1] = [-np.inf, 0.0]          # deepest node labeled true
    le[5000] = [np.log(0.2), np.log(0.8)]  # a soft label in the middle
    prop = Propagation(ct, le)
    bel = prop.down()
    assert np.all(np.isfinite(bel)) and np.all((bel >= 0) & (bel <= 1))
    # Independent reference: a plain forward-backward sweep down the chain, normalized each step.
    lik = np.exp(le)
    beta = np.ones((n, 2))
    beta[-1] = lik[-1]
    for i in range(n - 2, -1, -1):
        nxt = beta[i + 1]
        t = np.array([p0[i + 1] * nxt[1] + (1 - p0[i + 1]) * nxt[0], p1[i + 1] * nxt[1] + (1 - p1[i + 1]) * nxt[0]])
        beta[i] = lik[i] * t
        beta[i] /= beta[i].max()
    # pred = P(x_i | evidence above i); beta includes i's own label; belief is their normalized product.
    pred = np.array([0.7, 0.3])
    alpha = pred  # P(x_{i-1} | evidence down to i-1), set at the end of each step
    want = np.empty(n)
    for i in range(n):
        if i:
            pred = np.array([alpha[1] * (1 - p1[i]) + alpha[0] * (1 - p0[i]), alpha[1] * p1[i] + alpha[0] * p0[i]])
        want[i] = pred[1] * beta[i][1] / (pred @ beta[i])
        alpha = pred * lik[i] / (pred @ lik[i])
    np.testing.assert_allclose(ct.to_caller(bel), want, atol=1e-9)
    values, _ = voi_arrays(ct, le, "info")
    assert np.all(np.isfinite(values)) and np.all(values >= 0)


def test_wide_fan_of_10000_matches_weight_of_evidence():
    rng = np.random.default_rng(2)
    n = 10_000
    p1 = rng.uniform(0.3, 0.7, n + 1)
    p0 = rng.uniform(0.3, 0.7, n + 1)
    parent = np.r_[-1, np.zeros(n, dtype=int)]
    labels = rng.random(n + 1) < 0.5
    ct = CompiledTree.from_arrays(parent, p1, p0, 0.5)
    le = np.zeros((n + 1, 2))
    le[1:][labels[1:]] = [-np.inf, 0.0]
    le[1:][~labels[1:]] = [0.0, -np.inf]
    prop = Propagation(ct, le)
    # Good's weight of evidence: each labeled child adds its log-likelihood ratio to the root's log-odds.
    llr = np.where(labels[1:], np.log(p1[1:] / p0[1:]), np.log((1 - p1[1:]) / (1 - p0[1:])))
    log_odds = llr.sum()
    want = 1 / (1 + math.exp(-log_odds)) if log_odds > -700 else 0.0
    assert prop.root_belief == pytest.approx(want, abs=1e-9)
    bel = prop.down()
    assert np.all(np.isfinite(bel))
    for metric in METRICS:
        values, _ = voi_arrays(ct, le, metric)
        assert np.all(np.isfinite(values)) and np.all(values >= 0)


def test_zero_one_cpts_give_no_nan():
    nodes = [Node("r", "r", prior=1.0), Node("a", "a", "r", p_if_true=1.0, p_if_false=0.0),
             Node("b", "b", "a", p_if_true=0.0, p_if_false=1.0), Node("c", "c", "r", p_if_true=0.5, p_if_false=0.5)]
    tree = ArgumentTree(nodes)
    bel = beliefs(tree, [Evidence("c", True, 0.9)])
    assert bel == {"r": 1.0, "a": 1.0, "b": 0.0, "c": pytest.approx(0.9)}
    for metric in METRICS:
        assert all(v == 0.0 for v in voi(tree, [], metric).values())  # the root is settled
    with pytest.raises(TreeError) as err:
        beliefs(tree, [Evidence("b", True)])
    assert err.value.field == "evidence"
