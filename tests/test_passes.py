"""The upward and downward passes in their (2, n) layout (issue 15) against the passes as they were.

``OldPropagation`` is ``argtree.inference.Propagation`` before the layout change, verbatim but for
its name: one numpy call per row and per step, a check at each level.  The new passes must give the
very same upward numbers bit for bit (T, lam, the root's belief), the downward ones (beliefs,
clamped beliefs) and log P(e) to rounding, and the same error, naming the same node, on every kind
of tree and evidence; the reference tests (brute force, pyAgrum) check that both are right.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree.inference import NEG_INF, CompiledTree, Propagation
from argtree.tree import TreeError

from test_compile import shuffled_tree


class OldPropagation:
    """One upward (evidence) pass; downward passes are then cheap to repeat.

    Upward, each node gets lam = P(evidence at and below it | node), normalized,
    and sends its parent the message m(u) = P(evidence below | parent = u).
    The same numbers give T(u) = P(node | parent = u, evidence below the node).
    In a tree the parent separates a node's subtree from everything else, so
    P(x | e) = T(0) + (T(1) - T(0)) · P(parent | e): the downward pass is one
    multiply-add per node, and clamping the root is just starting it at 1 or 0.

    ``down(root_state)`` returns P(node = true | evidence [, root = root_state])
    in BFS order; ``root_state`` None means the root is not clamped.
    """

    def __init__(self, ct: CompiledTree, loglik: np.ndarray):
        self.ct = ct
        self.le = loglik
        n = ct.n
        self.T0 = np.zeros(n)  # P(node | parent false, evidence below)
        self.T1 = np.zeros(n)  # P(node | parent true, evidence below)
        self.lam = np.empty((n, 2))
        self.log_scale = self._up()
        prior = np.array([1.0 - ct.prior, ct.prior])
        z = float(prior @ self.lam[0])
        if z <= 0.0:
            raise TreeError("the evidence on the root contradicts its prior (probability zero)",
                            ct.ids[ct.order[0]], "evidence")
        # log P(e) = sum of per-node normalizers + log of the root's normalizer.
        self.log_evidence = self.log_scale + float(np.log(z))
        self.root_belief = float(prior[1] * self.lam[0, 1] / z)

    def _up(self) -> float:
        ct, lv = self.ct, self.ct.levels
        S = np.zeros((ct.n, 2))  # sum of log-messages from children (-inf where one is zero)
        scale = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            for d in range(len(lv) - 2, -1, -1):
                s = slice(lv[d], lv[d + 1])
                L = self.le[s] + S[s]
                mx = L.max(axis=1)
                bad = np.flatnonzero(mx == NEG_INF)
                if len(bad):
                    node = ct.ids[ct.order[lv[d] + bad[0]]]
                    raise TreeError("the evidence at or below this node is contradictory "
                                    "(it has probability zero)", node, "evidence")
                scale += float(mx.sum())
                lam = np.exp(L - mx[:, None])
                self.lam[s] = lam
                if d == 0:
                    break
                p1, p0 = ct.p1[s], ct.p0[s]
                t1, t0 = p1 * lam[:, 1], p0 * lam[:, 1]
                m1 = t1 + (1.0 - p1) * lam[:, 0]
                m0 = t0 + (1.0 - p0) * lam[:, 0]
                impossible = np.flatnonzero((m1 == 0) & (m0 == 0))
                if len(impossible):  # this node's evidence rules out both values of its parent
                    node = ct.ids[ct.order[lv[d] + impossible[0]]]
                    raise TreeError("the evidence at or below this node is impossible under its "
                                    "p_if_true/p_if_false (probability zero)", node, "evidence")
                # A parent value whose message is zero gets probability zero, so T there is moot.
                self.T1[s] = np.where(m1 > 0, t1 / m1, 0.0)
                self.T0[s] = np.where(m0 > 0, t0 / m0, 0.0)
                idx = ct.parent[s] - lv[d - 1]
                width = lv[d] - lv[d - 1]
                ps = slice(lv[d - 1], lv[d])
                S[ps, 1] += np.bincount(idx, weights=np.log(m1), minlength=width)
                S[ps, 0] += np.bincount(idx, weights=np.log(m0), minlength=width)
        return scale

    def down(self, root_state: bool | None = None) -> np.ndarray:
        """P(node = true | e [, root = root_state]) for every node, in BFS order."""
        ct, lv = self.ct, self.ct.levels
        bel = np.empty(ct.n)
        bel[0] = self.root_belief if root_state is None else float(root_state)
        slope = self.T1 - self.T0
        for d in range(1, len(lv) - 1):
            s = slice(lv[d], lv[d + 1])
            bel[s] = self.T0[s] + slope[s] * bel[ct.parent[s]]
        return bel


def outcome(cls, ct, le):
    try:
        prop = cls(ct, le)
    except TreeError as err:
        return str(err)
    a, c = prop.down(True), prop.down(False)
    return dict(bel=prop.down(), a=a, c=c, T0=prop.T0, T1=prop.T1, lam=np.asarray(prop.lam),
                log_evidence=prop.log_evidence, log_scale=prop.log_scale, root=prop.root_belief)


def assert_same(ct, le):
    new, old = outcome(Propagation, ct, le), outcome(OldPropagation, ct, le)
    if isinstance(old, str):
        assert new == old
        return old
    assert not isinstance(new, str), new
    for key in ("T0", "T1", "lam", "root"):  # the upward pass: bit for bit
        np.testing.assert_array_equal(new[key], old[key], err_msg=key)
    # The downward results come from one affine pass (a node's belief is affine in the root's), and
    # log P(e)'s normalizers are summed once: the same numbers up to rounding, which compounds
    # with depth (a chain of 20,000 nodes is the deepest case here).
    for key in ("bel", "a", "c"):
        np.testing.assert_allclose(new[key], old[key], rtol=0, atol=1e-12, err_msg=key)
    for key in ("log_evidence", "log_scale"):
        np.testing.assert_allclose(new[key], old[key], rtol=1e-12, atol=1e-9, err_msg=key)
    return None


def random_case(rng, n, shape, labels, soft, edges):
    parent, p1, p0 = shuffled_tree(n, rng, shape)
    if edges:  # exact 0 and 1 in the CPTs
        for p in (p1, p0):
            p[rng.random(n) < 0.1] = 0.0
            p[rng.random(n) < 0.1] = 1.0
    ct = CompiledTree.from_arrays(parent, p1, p0, float(rng.choice([0.0, 0.3, 1.0, rng.random()])))
    le = np.zeros((n, 2))
    hard = rng.choice(n, size=min(n, labels), replace=False)
    value = rng.random(len(hard)) < 0.5
    le[hard[value], 0] = NEG_INF
    le[hard[~value], 1] = NEG_INF
    if soft:
        which = rng.choice(n, size=min(n, soft), replace=False)
        a = rng.uniform(0.5, 1.0, len(which))
        le[which] += np.stack([np.log1p(-a), np.log(a)], axis=1)
    return ct, le


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from(["random", "fan", "chain", "bushy-deep"]), st.integers(1, 60),
       st.integers(0, 8), st.integers(0, 8), st.booleans())
def test_passes_agree_with_the_old_ones(seed, shape, n, labels, soft, edges):
    rng = np.random.default_rng(seed)
    assert_same(*random_case(rng, n, shape, labels, soft, edges))


def test_errors_and_results_agree_on_many_trees_and_both_kinds_occur():
    """The property above must meet both errors and plenty of valid trees, or it proves little."""
    rng = np.random.default_rng(15)
    kinds = {"contradictory": 0, "impossible": 0, "valid": 0}
    for k in range(600):
        shape = ["random", "fan", "chain", "bushy-deep"][k % 4]
        msg = assert_same(*random_case(rng, int(rng.integers(2, 200)), shape, int(rng.integers(0, 12)),
                                       int(rng.integers(0, 12)), bool(k % 3 == 0)))
        kinds["valid" if msg is None else "contradictory" if "contradictory" in msg else "impossible"] += 1
    assert min(kinds.values()) >= 10, kinds


@pytest.mark.parametrize("shape", ["random", "chain", "bushy-deep", "fan"])
def test_agree_on_big_trees(shape):
    rng = np.random.default_rng(3)
    ct, le = random_case(rng, 20_000, shape, 200, 300, False)
    assert assert_same(ct, le) is None


def test_scatter_layout():
    # Levels: [0], [1, 2], [3, 4, 5] with parents 0, 0 | 1, 1, 2.  Level d's block holds its nodes'
    # parents' offsets within the parent level, then the same plus that level's width.
    ct = CompiledTree.from_arrays([-1, 0, 0, 1, 1, 2], [0.5] * 6, [0.5] * 6, 0.5)
    np.testing.assert_array_equal(ct.scatter, [0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 2, 3])
    P, Q = ct.cpt
    np.testing.assert_array_equal(P, np.stack([ct.p0, ct.p1]))
    np.testing.assert_array_equal(Q, 1.0 - P)
    assert ct.level_list == [0, 1, 3, 6]
    deep = CompiledTree.from_arrays([-1, 0, 1, 1, 2, 0], [0.5] * 6, [0.5] * 6, 0.5)  # levels [0], [1, 5], [2, 3], [4]
    np.testing.assert_array_equal(deep.levels, [0, 1, 3, 5, 6])
    np.testing.assert_array_equal(deep.scatter, [0, 0, 0, 0, 1, 1, 0, 0, 2, 2, 0, 2])
