"""Exact beliefs in an argument tree: Pearl's message passing, vectorized by level.

The tree is renumbered in breadth-first order so each depth level is one
contiguous slice; every pass is then a handful of numpy operations per level
(``np.bincount`` gathers children's messages into parents).  Cost is O(n) per
pass whatever the evidence.

Numerics.  Upward messages are summed in the log domain and each node's
likelihood is normalized, so deep chains neither underflow nor overflow and
wide fans (10,000 children) just add logs; exact zeros (CPT entries of 0 or 1,
hard labels) are plain ``-inf`` terms.  The downward pass never divides a
message back out, so there is no ``0/0`` to guard against (see Propagation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from .tree import ArgumentTree, Evidence, TreeError

__all__ = ["MODEL_MODES", "CompiledTree", "Propagation", "compile_tree", "beliefs", "propagate"]

NEG_INF = -np.inf
# How model evidence counts (DESIGN.md, Model evidence): "frontier" (default; AlphaZero's value at
# the leaves: a node's credence counts until the node is expanded), "all" (every node but the root),
# "none" (labels only).
MODEL_MODES = ("frontier", "all", "none")


@dataclass(frozen=True)
class CompiledTree:
    """A tree as arrays in breadth-first order (position 0 is the root)."""

    ids: Sequence[str]          # node ids in the caller's order (a tuple, or _IndexIds)
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
        """Build from caller-order arrays: ``parent[i]`` is i's parent index (-1 for the root).

        The layout is breadth-first by level; within a level, nodes follow their parents'
        order, and siblings keep the caller's order.  No comparison sort: the children lists
        (CSR) come from a stable counting sort of the parent array (``_counting_order``,
        linear), then each level is one gather.  O(n) time and memory.
        Without ``ids`` the ids are the indices as strings, made only when read.
        """
        parent = np.asarray(parent, dtype=np.int64)
        n = len(parent)
        roots = np.flatnonzero(parent < 0)
        if len(roots) != 1:
            raise TreeError(f"need exactly one root, found {len(roots)}")
        nonroot = np.flatnonzero(parent >= 0)
        up = parent[nonroot]
        if len(up) and int(up.max()) >= n:
            raise TreeError(f"parent index {int(up.max())} is out of range for {n} nodes")
        # Children in CSR form: kids[offsets[p]:offsets[p + 1]] are p's children in caller order.
        kids = nonroot[_counting_order(up, n)]
        counts = np.bincount(up, minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        frontier = roots
        chunks, levels = [], [0]
        while len(frontier):
            chunks.append(frontier)
            levels.append(levels[-1] + len(frontier))
            cnt = counts[frontier]
            ends = cnt.cumsum()
            total = int(ends[-1])
            if total == 0:
                break
            # Concatenate kids[starts[i] : starts[i] + cnt[i]] for all i without a loop
            # (starts = offsets[frontier]; methods, not numpy's wrappers: this loop runs per level).
            first = (offsets[frontier] - ends + cnt).repeat(cnt)
            first += np.arange(total)
            frontier = kids[first]
        order = np.concatenate(chunks)
        if len(order) != n:
            raise TreeError("some nodes are not reachable from the root (a cycle through parents)")
        position = np.empty(n, dtype=np.int64)
        position[order] = np.arange(n)
        bfs_parent = position[parent[order]]  # order[0] is the root: its entry is fixed below
        bfs_parent[0] = -1
        # The CPT columns in BFS order, gathered straight into the rows of the upward pass's (2, n)
        # array (``cpt``): p0 and p1 are views of its rows, not copies.
        P = np.empty((2, n))
        np.asarray(p0, dtype=float).take(order, out=P[0])
        np.asarray(p1, dtype=float).take(order, out=P[1])
        ct = cls(
            ids=tuple(ids) if ids is not None else _IndexIds(n),
            order=order, position=position, parent=bfs_parent,
            levels=np.asarray(levels, dtype=np.int64),
            p1=P[1], p0=P[0],
            prior=float(prior),
        )
        ct.__dict__["level_list"] = levels  # the cached_property's value, already at hand
        ct.__dict__["_P"] = P
        return ct

    @cached_property
    def level_list(self) -> list[int]:
        """``levels`` as Python ints (slicing with them costs no numpy scalar)."""
        return self.levels.tolist()

    @cached_property
    def cpt(self) -> tuple[np.ndarray, np.ndarray]:
        """(P, Q), each (2, n): P[u, i] = P(node i true | parent = u) in BFS order, Q = 1 - P."""
        P = self.__dict__.get("_P")
        if P is None:
            P = np.empty((2, self.n))
            P[0], P[1] = self.p0, self.p1
        return P, 1.0 - P

    @cached_property
    def scatter(self) -> np.ndarray:
        """Where the upward pass adds each node's two log-messages (for parent false, parent true):
        level d (positions a:b) owns entries 2a:2b, first each node's parent's offset j within
        the parent level, then j + that level's width; one ``np.bincount`` per level then sums a
        level's (2, k) messages into its parents' (2, width) sums, in child order.
        Two subtractions per level straight into the result (no n-sized temporaries)."""
        lv, parent = self.level_list, self.parent
        out = np.empty(2 * self.n, dtype=np.int64)
        out[:2] = 0  # the root's entries are never read
        for d in range(1, len(lv) - 1):
            a, b, above = lv[d], lv[d + 1], lv[d - 1]
            kids = parent[a:b]
            np.subtract(kids, above, out=out[2 * a:a + b])          # j
            np.subtract(kids, 2 * above - a, out=out[a + b:2 * b])  # j + width (width = a - above)
        return out

    def expanded(self) -> np.ndarray:
        """Per BFS position: does the node have premises (children)?"""
        out = np.zeros(self.n, dtype=bool)
        out[self.parent[self.parent >= 0]] = True
        return out

    def loglik(self, evidence: Iterable[Evidence], model: str = "frontier") -> np.ndarray:
        """Evidence as log-likelihoods (n, 2) in BFS order: column v is log P(labels | node = v).

        Model evidence (``Evidence.is_model``) obeys ``model`` (see ``MODEL_MODES``):
        never on the root (its credence is the direct answer); under "frontier" only on
        nodes not expanded; under "all" on every other node; under "none" nowhere.
        """
        if model not in MODEL_MODES:
            raise ValueError(f"model evidence mode must be one of {MODEL_MODES}, got {model!r}")
        index = {nid: i for i, nid in enumerate(self.ids)}
        le = np.zeros((self.n, 2))
        expanded = None
        with np.errstate(divide="ignore"):
            for ev in evidence:
                i = index.get(ev.node)
                if i is None:
                    raise TreeError("evidence on an unknown node", ev.node, "node")
                pos = self.position[i]
                if ev.is_model:
                    if model == "none" or pos == 0:
                        continue
                    if model == "frontier":
                        if expanded is None:
                            expanded = self.expanded()
                        if expanded[pos]:
                            continue
                a = ev.reliability
                le[pos, int(ev.value)] += np.log(a)
                le[pos, 1 - int(ev.value)] += np.log1p(-a) if a < 1 else NEG_INF
        return le

    def to_caller(self, values: np.ndarray) -> np.ndarray:
        """Reorder a BFS-order array into the caller's node order."""
        return values[self.position]


def _counting_order(key: np.ndarray, n: int) -> np.ndarray:
    """Stable argsort of integer keys in [0, n), in linear time: a radix sort on 16-bit digits.

    numpy sorts 16-bit integers with a stable counting (radix) sort, so each digit is one
    O(len) pass; least significant digit first keeps the whole sort stable.  Two passes for
    up to 4.3 billion nodes.
    """
    # astype(np.uint16) keeps the low 16 bits (a C cast), so no mask is needed.
    perm = np.argsort(key.astype(np.uint16), kind="stable")
    shift = 16
    while (n - 1) >> shift:
        perm = perm[np.argsort((key[perm] >> shift).astype(np.uint16), kind="stable")]
        shift += 16
    return perm


class _IndexIds(Sequence[str]):
    """The ids "0", "1", ... "n-1" of a tree built from bare arrays, made only when read."""

    __slots__ = ("_n",)

    def __init__(self, n: int):
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(str(k) for k in range(self._n)[i])
        k = int(i)
        if not -self._n <= k < self._n:
            raise IndexError("node index out of range")
        return str(k % self._n)

    def __iter__(self):
        return map(str, range(self._n))

    def __eq__(self, other) -> bool:
        if isinstance(other, _IndexIds):
            return self._n == other._n
        return isinstance(other, (tuple, list)) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"_IndexIds({self._n})"


def compile_tree(tree: ArgumentTree) -> CompiledTree:
    ids, parent, p1, p0, prior = tree.arrays()
    return CompiledTree.from_arrays(parent, p1, p0, prior, ids)


class Propagation:
    """One upward (evidence) pass; the downward results are then one more pass (``affine``).

    Upward, each node gets lam = P(evidence at and below it | node), normalized,
    and sends its parent the message m(u) = P(evidence below | parent = u).
    The same numbers give T(u) = P(node | parent = u, evidence below the node).
    In a tree the parent separates a node's subtree from everything else, so
    P(x | e) = T(0) + (T(1) - T(0)) · P(parent | e): the downward pass is one
    multiply-add per node, and clamping the root is just starting it at 1 or 0.

    ``down(root_state)`` returns P(node = true | evidence [, root = root_state])
    in BFS order; ``root_state`` None means the root is not clamped.

    Layout: a node's two values (or its parent's) are the two rows of (2, n) arrays, so a
    level is about ten numpy calls on both at once upward (each over a row, none over the
    short axis) and three downward, with the CPTs
    and the scatter indices prepared once per compiled tree (``CompiledTree.cpt``,
    ``CompiledTree.scatter``).  Errors (evidence of probability zero) are found after the
    upward pass from the stored maxima and messages: the deepest level that has one, as a
    pass that stopped at the first would report it (tests/test_passes.py holds the upward
    results bit for bit equal to the passes as they were, the downward ones and log P(e) to
    rounding: they are summed in another order).
    """

    def __init__(self, ct: CompiledTree, loglik: np.ndarray):
        self.ct = ct
        self.le = loglik
        n = ct.n
        lam = np.empty((2, n))  # lam[v, i] = P(evidence at and below | node i = v), max 1
        T = np.empty((2, n))    # first P(node true | parent = u) * lam(true), then T
        m = np.empty((2, n))    # m[u, i]: the message to the parent, P(evidence below | parent = u)
        self.log_scale = self._up(lam, T, m)
        self.lam = lam.T        # (n, 2), as lam[node, value]
        # T[u, i] = P(node | parent = u, evidence below) = t / m.  Where m is zero, so is t (m = t +
        # (1 - p) lam(false), both terms >= 0): a parent value of probability zero gets T = 0, moot.
        T[:, 0] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(T[:, 1:], m[:, 1:], out=T[:, 1:], where=m[:, 1:] > 0)
        self.T0, self.T1 = T[0], T[1]  # P(node | parent false / true, evidence below)
        self._affine = None
        prior = np.array([1.0 - ct.prior, ct.prior])
        z = float(prior @ self.lam[0])
        if z <= 0.0:
            raise TreeError("the evidence on the root contradicts its prior (probability zero)",
                            ct.ids[ct.order[0]], "evidence")
        # log P(e) = sum of per-node normalizers + log of the root's normalizer.
        self.log_evidence = self.log_scale + float(np.log(z))
        self.root_belief = float(prior[1] * self.lam[0, 1] / z)

    def _up(self, lam: np.ndarray, t: np.ndarray, m: np.ndarray) -> float:
        ct = self.ct
        le = self.le.T
        lv = ct.level_list
        P, Q = ct.cpt
        scatter = ct.scatter
        mx_all = np.empty(ct.n)
        S = 0.0  # sums of the children's log-messages for the level at hand (-inf where one is zero)
        with np.errstate(divide="ignore", invalid="ignore"):
            for d in range(len(lv) - 2, -1, -1):
                a, b = lv[d], lv[d + 1]
                L = lam[:, a:b]
                np.add(le[:, a:b], S, out=L)
                mx = np.maximum(L[0], L[1], out=mx_all[a:b])
                L -= mx
                np.exp(L, out=L)
                if d == 0:
                    break
                tt, mm = t[:, a:b], m[:, a:b]
                np.multiply(P[:, a:b], L[1], out=tt)
                np.multiply(Q[:, a:b], L[0], out=mm)
                mm += tt
                width = a - lv[d - 1]
                S = np.bincount(scatter[2 * a:2 * b], weights=np.log(mm).ravel(),
                                minlength=2 * width).reshape(2, width)
        contradictory = mx_all == NEG_INF
        impossible = np.maximum(m[0, 1:], m[1, 1:]) == 0.0
        if contradictory.any() or impossible.any():
            self._raise(contradictory, impossible)
        return float(np.add.reduce(mx_all))  # the normalizers' logs, summed once (not per level)

    def _raise(self, contradictory: np.ndarray, impossible: np.ndarray) -> None:
        """The error of the deepest level with one: contradictory evidence at a node first, then a
        node whose evidence rules out both values of its parent (first in BFS order)."""
        ct, lv = self.ct, self.ct.level_list
        bad = contradictory.copy()
        bad[1:] |= impossible
        last = int(np.flatnonzero(bad)[-1])
        d = int(np.searchsorted(ct.levels, last, side="right")) - 1
        a, b = lv[d], lv[d + 1]
        hit = np.flatnonzero(contradictory[a:b])
        if len(hit):
            raise TreeError("the evidence at or below this node is contradictory (it has probability zero)",
                            ct.ids[ct.order[a + hit[0]]], "evidence")
        hit = np.flatnonzero(impossible[a - 1:b - 1])
        raise TreeError("the evidence at or below this node is impossible under its "
                        "p_if_true/p_if_false (probability zero)", ct.ids[ct.order[a + hit[0]]], "evidence")

    def affine(self) -> np.ndarray:
        """(2, n) in BFS order: row 0 is P(node | e, root false), row 1 the slope s with
        P(node | e, root = r) = row 0 + s r.  Each downward step is affine in the parent's belief
        (T0 + (T1 - T0) P(parent)), so every node's belief is affine in the root's: one pass over
        the levels (three numpy calls each, on both rows) gives the unclamped and both clamped
        beliefs, where three passes did.  Computed once."""
        if self._affine is None:
            ct = self.ct
            lv, parent, T0 = ct.level_list, ct.parent, self.T0
            slope = self.T1 - T0
            ab = np.empty((2, ct.n))
            ab[0, 0], ab[1, 0] = 0.0, 1.0
            for d in range(1, len(lv) - 1):
                a, b = lv[d], lv[d + 1]
                out = ab[:, a:b]
                np.multiply(ab.take(parent[a:b], axis=1), slope[a:b], out=out)
                out[0] += T0[a:b]
            self._affine = ab
        return self._affine

    def down(self, root_state: bool | None = None) -> np.ndarray:
        """P(node = true | e [, root = root_state]) for every node, in BFS order (a new array).

        Clipped to [0, 1]: row 0 + slope can round to just outside it where the exact value is 0 or 1
        (0.0118 - 0.0118 gave -5e-20, and the "info" metric's log of it NaN), which the passes
        that started from the clamped root never did."""
        ab = self.affine()
        if root_state is None:
            bel = ab[1] * self.root_belief
            bel += ab[0]
        else:
            bel = ab[0] + ab[1] if root_state else ab[0].copy()
        return np.clip(bel, 0.0, 1.0, out=bel)


def propagate(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = (),
              model: str = "frontier") -> Propagation:
    ct = tree if isinstance(tree, CompiledTree) else compile_tree(tree)
    return Propagation(ct, ct.loglik(evidence, model))


def beliefs(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = (),
            model: str = "frontier") -> dict[str, float]:
    """P(node = true | evidence) for every node, keyed by node id (``model``: see MODEL_MODES)."""
    prop = propagate(tree, evidence, model)
    bel = prop.ct.to_caller(prop.down())
    return dict(zip(prop.ct.ids, bel.tolist()))
