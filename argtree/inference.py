"""Exact beliefs in an argument tree: Pearl's message passing, vectorized by level.

The tree is renumbered in breadth-first order so each depth level is one
contiguous slice; every pass is then a handful of numpy operations per level
(``np.bincount`` gathers children's messages into parents).  Cost is O(n) per
pass whatever the evidence.

Numerics.  Messages are kept in the log domain and normalized per node, so deep
chains neither underflow nor overflow and wide fans (10,000 children) just sum
logs.  CPT entries of exactly 0 or 1 and hard labels make some messages exactly
zero; to take one child's message *out* of its parent's product (the downward
pass) we keep, per node and value, the sum of the finite log-messages and a
count of the zero ones, so we never compute ``-inf - -inf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .tree import ArgumentTree, Evidence, TreeError

__all__ = ["CompiledTree", "Propagation", "compile_tree", "beliefs", "propagate"]

NEG_INF = -np.inf


@dataclass(frozen=True)
class CompiledTree:
    """A tree as arrays in breadth-first order (position 0 is the root)."""

    ids: tuple[str, ...]        # node ids in the caller's order
    order: np.ndarray           # order[pos] = caller index of the node at BFS position pos
    position: np.ndarray        # position[caller index] = BFS position
    parent: np.ndarray          # parent BFS position, -1 for the root
    levels: np.ndarray          # levels[d]:levels[d+1] is the slice of depth d
    p1: np.ndarray              # P(node | parent true), BFS order
    p0: np.ndarray              # P(node | parent false), BFS order
    prior: float

    @property
    def n(self) -> int:
        return len(self.order)

    @classmethod
    def from_arrays(cls, parent: np.ndarray, p1: np.ndarray, p0: np.ndarray, prior: float,
                    ids: Sequence[str] | None = None) -> "CompiledTree":
        """Build from caller-order arrays: ``parent[i]`` is i's parent index (-1 for the root)."""
        parent = np.asarray(parent, dtype=np.int64)
        n = len(parent)
        roots = np.flatnonzero(parent < 0)
        if len(roots) != 1:
            raise TreeError(f"need exactly one root, found {len(roots)}")
        # Children in CSR form, then BFS one level at a time.
        nonroot = np.flatnonzero(parent >= 0)
        kids = nonroot[np.argsort(parent[nonroot], kind="stable")]
        counts = np.bincount(parent[nonroot], minlength=n)
        offsets = np.concatenate(([0], np.cumsum(counts)))
        frontier = roots
        chunks, levels = [], [0]
        while len(frontier):
            chunks.append(frontier)
            levels.append(levels[-1] + len(frontier))
            cnt = counts[frontier]
            total = int(cnt.sum())
            if total == 0:
                break
            starts = offsets[frontier]
            # Concatenate kids[starts[i] : starts[i] + cnt[i]] for all i without a loop.
            first = np.repeat(starts - np.concatenate(([0], np.cumsum(cnt)[:-1])), cnt)
            frontier = kids[first + np.arange(total)]
        order = np.concatenate(chunks)
        if len(order) != n:
            raise TreeError("some nodes are not reachable from the root (a cycle through parents)")
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        par = parent[order]
        bfs_parent = np.where(par >= 0, position[np.maximum(par, 0)], -1)
        return cls(
            ids=tuple(ids) if ids is not None else tuple(str(i) for i in range(n)),
            order=order, position=position, parent=bfs_parent,
            levels=np.asarray(levels, dtype=np.int64),
            p1=np.asarray(p1, dtype=float)[order], p0=np.asarray(p0, dtype=float)[order],
            prior=float(prior),
        )

    def loglik(self, evidence: Iterable[Evidence]) -> np.ndarray:
        """Evidence as log-likelihoods (n, 2) in BFS order: column v is log P(labels | node = v)."""
        index = {nid: i for i, nid in enumerate(self.ids)}
        le = np.zeros((self.n, 2))
        with np.errstate(divide="ignore"):
            for ev in evidence:
                i = index.get(ev.node)
                if i is None:
                    raise TreeError("evidence on an unknown node", ev.node, "node")
                pos = self.position[i]
                a = ev.reliability
                le[pos, int(ev.value)] += np.log(a)
                le[pos, 1 - int(ev.value)] += np.log1p(-a) if a < 1 else NEG_INF
        return le

    def to_caller(self, values: np.ndarray) -> np.ndarray:
        """Reorder a BFS-order array into the caller's node order."""
        return values[self.position]


def compile_tree(tree: ArgumentTree) -> CompiledTree:
    ids, parent, p1, p0, prior = tree.arrays()
    return CompiledTree.from_arrays(parent, p1, p0, prior, ids)


class Propagation:
    """One upward (evidence) pass; downward passes are then cheap to repeat.

    ``down(root_state)`` returns P(node = true | evidence, root clamped) for
    every node; ``root_state`` None means the root is not clamped.
    """

    def __init__(self, ct: CompiledTree, loglik: np.ndarray):
        self.ct = ct
        self.le = loglik
        n = ct.n
        self.S = np.zeros((n, 2))                 # sum of finite log-messages from children
        self.Z = np.zeros((n, 2), dtype=np.int64)  # number of zero messages from children
        self.lam = np.empty((n, 2))               # normalized likelihood of evidence below and at the node
        self.logm = np.empty((n, 2))              # log message node -> parent, indexed by parent value
        self.log_scale = 0.0                      # sum of normalizers: log P(e) = log_scale + log(prior . lam_root)
        self._up()
        prior = np.array([1.0 - ct.prior, ct.prior])
        z = float(prior @ self.lam[0])
        if z <= 0.0:
            raise TreeError("the evidence is contradictory: it has probability zero under the tree",
                            ct.ids[ct.order[0]], "evidence")
        self.log_evidence = self.log_scale + float(np.log(z))
        self.root_belief = prior[1] * self.lam[0, 1] / z

    def _up(self) -> None:
        ct, le, S, Z, lam, logm = self.ct, self.le, self.S, self.Z, self.lam, self.logm
        lv = ct.levels
        scale = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            for d in range(len(lv) - 2, -1, -1):
                s = slice(lv[d], lv[d + 1])
                L = le[s] + S[s]
                L[Z[s] > 0] = NEG_INF
                mx = L.max(axis=1)
                bad = np.flatnonzero(mx == NEG_INF)
                if len(bad):
                    node = ct.ids[ct.order[lv[d] + bad[0]]]
                    raise TreeError("the evidence at or below this node is contradictory "
                                    "(it has probability zero)", node, "evidence")
                scale += float(mx.sum())
                ls = np.exp(L - mx[:, None])
                lam[s] = ls
                if d == 0:
                    break
                p1, p0 = ct.p1[s], ct.p0[s]
                m = np.empty_like(ls)
                m[:, 1] = p1 * ls[:, 1] + (1.0 - p1) * ls[:, 0]
                m[:, 0] = p0 * ls[:, 1] + (1.0 - p0) * ls[:, 0]
                lm = np.log(m)
                logm[s] = lm
                ps = slice(lv[d - 1], lv[d])
                idx = ct.parent[s] - lv[d - 1]
                width = lv[d] - lv[d - 1]
                zero = lm == NEG_INF
                for v in (0, 1):
                    if zero[:, v].any():
                        S[ps, v] += np.bincount(idx, weights=np.where(zero[:, v], 0.0, lm[:, v]), minlength=width)
                        Z[ps, v] += np.bincount(idx, weights=zero[:, v], minlength=width).astype(np.int64)
                    else:
                        S[ps, v] += np.bincount(idx, weights=lm[:, v], minlength=width)
        self.log_scale = scale

    def down(self, root_state: bool | None = None) -> np.ndarray:
        """P(node = true | e [, root = root_state]) for every node, in BFS order."""
        ct, le, S, Z, lam, logm = self.ct, self.le, self.S, self.Z, self.lam, self.logm
        lv = ct.levels
        n = ct.n
        bel = np.empty(n)
        total = np.empty((n, 2))  # log pi + log evidence + log children messages (zeros masked later)
        if root_state is None:
            pi = np.array([1.0 - ct.prior, ct.prior])
        else:
            pi = np.array([0.0, 1.0]) if root_state else np.array([1.0, 0.0])
        b = pi * lam[0]
        bel[0] = b[1] / b.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            total[0] = np.log(pi) + le[0] + S[0]
            for d in range(1, len(lv) - 1):
                s = slice(lv[d], lv[d + 1])
                par = ct.parent[s]
                own = logm[s]
                own_zero = own == NEG_INF
                ex = total[par] - np.where(own_zero, 0.0, own)
                ex[(Z[par] - own_zero) > 0] = NEG_INF
                mx = ex.max(axis=1)
                q = np.exp(ex - mx[:, None])
                q /= q.sum(axis=1, keepdims=True)
                p1, p0 = ct.p1[s], ct.p0[s]
                pis = np.empty_like(q)
                pis[:, 1] = q[:, 1] * p1 + q[:, 0] * p0
                pis[:, 0] = q[:, 1] * (1.0 - p1) + q[:, 0] * (1.0 - p0)
                bs = pis * lam[s]
                bel[s] = bs[:, 1] / bs.sum(axis=1)
                total[s] = np.log(pis) + le[s] + S[s]
        return bel


def propagate(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = ()) -> Propagation:
    ct = tree if isinstance(tree, CompiledTree) else compile_tree(tree)
    return Propagation(ct, ct.loglik(evidence))


def beliefs(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = ()) -> dict[str, float]:
    """P(node = true | evidence) for every node, keyed by node id."""
    prop = propagate(tree, evidence)
    bel = prop.ct.to_caller(prop.down())
    return dict(zip(prop.ct.ids, bel.tolist()))
