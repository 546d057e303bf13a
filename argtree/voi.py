"""Value of information: how much would learning a node's true value move the root?

All nodes at once in O(n): one upward pass and two downward passes with the
root clamped true and false give a_x = P(x | r, e) and c_x = P(x | not r, e).
With R = P(r | e), the joint of (r, x) given e is R·a_x, (1-R)·c_x, ... and
every metric in DESIGN.md follows from that 2x2 table by Bayes' rule:

* shift    = sum_v P(x=v) |P(r | x=v) - R|            = 2 R (1-R) |a_x - c_x|
* decision = sum_v max_r P(r, x=v) - max(R, 1-R)
* info     = I(r; x | e) in bits

Batch selection (k annotators at once) is greedy: pick j+1 maximizes the
expected VoI over the 2^j possible answers of picks 1..j, each answer pattern
weighted by its probability given the evidence.  Cost: 2^j propagations for
pick j+1, O(2^k · n) in all; ``k`` is limited to ``MAX_BATCH`` for that reason.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Literal

import numpy as np

from .inference import CompiledTree, Propagation, compile_tree
from .tree import ArgumentTree, Evidence, TreeError

__all__ = ["METRICS", "MAX_BATCH", "voi", "voi_arrays", "rank", "select_batch", "expected_voi", "root_if"]

Metric = Literal["shift", "decision", "info"]
METRICS: tuple[str, ...] = ("shift", "decision", "info")
MAX_BATCH = 12


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(x)


def _mutual_information(R: float, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """I(r; x) in bits from the 2x2 joint R·a, R·(1-a), (1-R)·c, (1-R)·(1-c).

    Marginals of x are formed in the log domain (logaddexp) so a root
    probability near 0 or 1 cannot underflow them to zero and give inf.
    """
    lR, lnR = np.log(R), np.log1p(-R)
    total = np.zeros_like(a)
    for pa, pc in ((a, c), (1.0 - a, 1.0 - c)):
        la, lc = _log(pa), _log(pc)
        lb = np.logaddexp(lR + la, lnR + lc)  # log P(x = v)
        with np.errstate(invalid="ignore"):
            total += np.where(pa > 0, R * pa * (la - lb), 0.0)
            total += np.where(pc > 0, (1.0 - R) * pc * (lc - lb), 0.0)
    return total / np.log(2.0)


def metric_from_table(R: float, a: np.ndarray, c: np.ndarray, metric: str) -> np.ndarray:
    """VoI of each node from R = P(r|e), a = P(x|r,e), c = P(x|not r,e)."""
    if metric == "shift":
        return 2.0 * R * (1.0 - R) * np.abs(a - c)
    if metric == "decision":
        gain = (np.maximum(R * a, (1 - R) * c) + np.maximum(R * (1 - a), (1 - R) * (1 - c))
                - np.maximum(R, 1.0 - R))
        return np.maximum(gain, 0.0)
    if metric == "info":
        return np.maximum(_mutual_information(R, a, c), 0.0)
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")


def _hard_mask(ct: CompiledTree, loglik: np.ndarray) -> np.ndarray:
    """Nodes that carry hard evidence (one value impossible), plus the root: no VoI."""
    mask = np.minimum(loglik[:, 0], loglik[:, 1]) == -np.inf  # (an axis-1 any() is slow on (n, 2))
    mask[0] = True
    return mask


def voi_arrays(ct: CompiledTree, loglik: np.ndarray, metric: str = "shift",
               prop: Propagation | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(voi, askable) in BFS order; ``askable`` is False for the root and hard-labeled nodes."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    prop = prop or Propagation(ct, loglik)
    askable = ~_hard_mask(ct, loglik)
    R = prop.root_belief
    if not 0.0 < R < 1.0:
        return np.zeros(ct.n), askable  # the root is settled: nothing can move it
    a = prop.down(True)
    c = prop.down(False)
    values = metric_from_table(R, a, c, metric)
    values[~askable] = 0.0
    return values, askable


def voi(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = (),
        metric: str = "shift", model: str = "frontier") -> dict[str, float]:
    """VoI of every node that is neither the root nor hard-labeled, keyed by id.

    ``model``: how model evidence counts (``argtree.inference.MODEL_MODES``)."""
    ct = tree if isinstance(tree, CompiledTree) else compile_tree(tree)
    le = ct.loglik(evidence, model)
    values, askable = voi_arrays(ct, le, metric)
    values, askable = ct.to_caller(values), ct.to_caller(askable)
    return {nid: float(v) for nid, v, ok in zip(ct.ids, values, askable) if ok}


def rank(scores: dict[str, float], top: int | None = None) -> list[tuple[str, float]]:
    """Highest VoI first; ties (to 12 decimals) broken by node id, so the order is deterministic."""
    ordered = sorted(scores.items(), key=lambda kv: (-round(kv[1], 12), kv[0]))
    return ordered if top is None else ordered[:top]


def root_if(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence], node: str,
            model: str = "frontier") -> tuple[float, float]:
    """(P(root | e, node true), P(root | e, node false)): what each answer would do to the root."""
    ct = tree if isinstance(tree, CompiledTree) else compile_tree(tree)
    evidence = tuple(evidence)
    out = []
    for value in (True, False):
        prop = Propagation(ct, ct.loglik(evidence + (Evidence(node, value),), model))
        out.append(float(prop.root_belief))
    return out[0], out[1]


def expected_voi(ct: CompiledTree, evidence: tuple[Evidence, ...], chosen: list[int], metric: str = "shift",
                 model: str = "frontier", base: Propagation | None = None) -> np.ndarray:
    """One greedy step of ``select_batch``: every node's VoI (BFS order) averaged over the 2^j answer
    patterns of the nodes already picked (BFS positions ``chosen``), each pattern weighted by its
    probability given ``evidence``; -1 for the picked nodes, the root and hard-labeled nodes.  The
    store's live queue takes its batch picks across annotators from it (``argtree.store.batch``)."""
    if len(chosen) >= MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH - 1} picks may be given, got {len(chosen)}")
    base = base or Propagation(ct, ct.loglik(evidence, model))
    _, askable = voi_arrays(ct, base.le, metric, base)
    expected = np.zeros(ct.n)
    for answers in itertools.product((True, False), repeat=len(chosen)):
        extra = tuple(Evidence(ct.ids[ct.order[p]], v) for p, v in zip(chosen, answers))
        try:
            prop = Propagation(ct, ct.loglik(evidence + extra, model))
        except TreeError:
            continue  # this answer pattern is impossible: weight zero
        weight = np.exp(prop.log_evidence - base.log_evidence)
        values, _ = voi_arrays(ct, prop.le, metric, prop)
        expected += weight * values
    expected[~askable] = -1.0
    expected[chosen] = -1.0
    return expected


def select_batch(tree: ArgumentTree | CompiledTree, evidence: Iterable[Evidence] = (), k: int = 1,
                 metric: str = "shift", model: str = "frontier") -> list[str]:
    """Greedy batch of up to ``k`` node ids for ``k`` annotators answering at once (see module doc)."""
    if not 1 <= k <= MAX_BATCH:
        raise ValueError(f"k must be between 1 and {MAX_BATCH}, got {k}")
    ct = tree if isinstance(tree, CompiledTree) else compile_tree(tree)
    evidence = tuple(evidence)
    base = Propagation(ct, ct.loglik(evidence, model))
    chosen: list[int] = []  # BFS positions
    for _ in range(k):
        expected = expected_voi(ct, evidence, chosen, metric, model, base)
        candidates = np.flatnonzero(expected >= 0)
        if not len(candidates):
            break
        # Same deterministic tie-break as rank(): value (to 12 decimals), then id.
        best = min(candidates, key=lambda p: (-round(float(expected[p]), 12), ct.ids[ct.order[p]]))
        chosen.append(int(best))
    return [ct.ids[ct.order[p]] for p in chosen]
