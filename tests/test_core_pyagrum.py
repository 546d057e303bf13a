"""Beliefs and VoI on 300-node trees agree with pyAgrum's exact LazyPropagation (test-only dependency)."""

from __future__ import annotations

import math

import numpy as np
import pytest

gum = pytest.importorskip("pyagrum", reason="pyAgrum is a test dependency: pip install -e '.[test]'")

from argtree import ArgumentTree, Evidence, Node  # noqa: E402
from argtree.inference import beliefs  # noqa: E402
from argtree.voi import voi  # noqa: E402


def random_case(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    nodes = [Node("n0", "root", prior=float(rng.uniform(0.05, 0.95)))]
    for i in range(1, n):
        # Mix shapes: mostly recent parents (deep) with some early ones (bushy).
        parent = int(rng.integers(max(0, i - 5), i)) if rng.random() < 0.6 else int(rng.integers(0, i))
        p1, p0 = rng.uniform(0.02, 0.98, 2)
        nodes.append(Node(f"n{i}", f"premise {i}", f"n{parent}", p_if_true=float(p1), p_if_false=float(p0)))
    evidence = []
    for nid in rng.choice(n - 1, size=15, replace=False) + 1:
        rel = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.6, 0.95))
        evidence.append(Evidence(f"n{nid}", bool(rng.random() < 0.5), rel))
    evidence.append(Evidence(evidence[-1].node, evidence[-1].value, 0.8))  # two labels on one node combine
    return ArgumentTree(nodes), evidence


def to_gum(tree: ArgumentTree):
    bn = gum.BayesNet("argtree")
    for nid in tree.bfs():
        bn.add(gum.LabelizedVariable(nid, nid, 2))
    for nid in tree.bfs():
        node = tree[nid]
        if node.parent is None:
            bn.cpt(nid).fillWith([1 - node.prior, node.prior])
        else:
            bn.addArc(node.parent, nid)
            bn.cpt(nid)[{node.parent: 1}] = [1 - node.p_if_true, node.p_if_true]
            bn.cpt(nid)[{node.parent: 0}] = [1 - node.p_if_false, node.p_if_false]
    return bn


def gum_posteriors(bn, tree, evidence, extra=None):
    lik = {}
    for ev in evidence:
        a = ev.reliability
        v = [a, 1 - a] if not ev.value else [1 - a, a]
        lik[ev.node] = [x * y for x, y in zip(lik.get(ev.node, [1.0, 1.0]), v)]
    lik.update(extra or {})
    ie = gum.LazyPropagation(bn)
    ie.setEvidence(lik)
    ie.makeInference()
    return {nid: ie.posterior(nid)[1] for nid in tree.nodes}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beliefs_and_voi_agree_with_pyagrum(seed):
    tree, evidence = random_case(seed)
    bn = to_gum(tree)
    ref = gum_posteriors(bn, tree, evidence)
    got = beliefs(tree, evidence)
    for nid in tree.nodes:
        assert got[nid] == pytest.approx(ref[nid], abs=1e-9), nid

    R = ref["n0"]
    pos = gum_posteriors(bn, tree, evidence, {"n0": [0.0, 1.0]})
    neg = gum_posteriors(bn, tree, evidence, {"n0": [1.0, 0.0]})
    shift = voi(tree, evidence, "shift")
    for nid, value in shift.items():
        # P(x) |P(r|x) - R| summed over x's values, with P(r|x) from Bayes on pyAgrum's clamped posteriors.
        want = 0.0
        for v in (0, 1):
            a = pos[nid] if v else 1 - pos[nid]
            c = neg[nid] if v else 1 - neg[nid]
            px = R * a + (1 - R) * c
            if px > 0:
                want += px * abs(R * a / px - R)
        assert value == pytest.approx(want, abs=1e-9), nid

    # A sample of nodes checked against the definitions with x's value set as evidence in pyAgrum.
    rng = np.random.default_rng(seed)
    H = lambda p: -sum(q * math.log2(q) for q in (p, 1 - p) if q > 0)  # noqa: E731
    decision, info = voi(tree, evidence, "decision"), voi(tree, evidence, "info")
    for nid in rng.choice(sorted(shift), size=8, replace=False):
        px1 = ref[nid]
        r_if = {v: gum_posteriors(bn, tree, [e for e in evidence if e.node != nid],
                                  {nid: [0.0, 1.0] if v else [1.0, 0.0]})["n0"] for v in (True, False)}
        p = {True: px1, False: 1 - px1}
        want_dec = sum(p[v] * max(r_if[v], 1 - r_if[v]) for v in p) - max(R, 1 - R)
        want_info = H(R) - sum(p[v] * H(r_if[v]) for v in p)
        assert decision[nid] == pytest.approx(want_dec, abs=1e-9), nid
        assert info[nid] == pytest.approx(want_info, abs=1e-9), nid
