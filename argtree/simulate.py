"""Simulated worlds with known truth, for measuring question-selection policies.

A *world* is a ground-truth argument tree (a shape and its CPTs), the hidden
truth of every node sampled from that tree's joint distribution, and the
system's *noisy copy* of the CPTs (its imperfect knowledge: every probability
moved by Gaussian noise in log-odds space).  An oracle reveals a node's true
value, optionally flipped with probability ``answer_noise``; the system then
treats the answer as soft evidence of reliability ``1 - answer_noise``.  The
root itself is never asked: it is what the questions are for.

A *policy* picks the next question from what the system knows (its noisy CPTs
and the answers so far); the score is the system's root belief against the
hidden root truth (Brier score, accuracy) after each answer.

Speed.  All W worlds of a run are propagated at once as one forest: a dummy
super-root whose children are the world roots, each with ``p_if_true =
p_if_false`` = that world's prior, so the worlds stay independent and one
O(W·n) pass of :class:`argtree.inference.Propagation` gives every world's exact
beliefs.  Clamping a world's root, which VoI needs, is a hard label on it;
all world roots are clamped together in one more pass.  The VoI metrics
themselves come from :func:`argtree.voi.metric_from_table`, the batch policy
calls :func:`argtree.voi.select_batch` per world.

Pure: numpy and the argtree core only.  Every random draw comes from a
generator seeded with ``[seed, world, stream]``, so world ``w`` is the same
whatever the number of worlds, and every policy sees the same worlds and the
same oracle mistakes (paired comparisons).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .inference import CompiledTree, Propagation
from .tree import Evidence
from .voi import metric_from_table, select_batch

__all__ = [
    "SHAPES", "POLICIES", "Worlds", "Forest", "Trace",
    "random_parents", "random_cpts", "perturb", "sample_truth", "make_worlds",
    "run_policy", "run_policies", "answers_to_reach", "sign_test", "permutation_test", "mean_ci",
    "model_evidence", "MODEL_MODES",
]

SHAPES: tuple[str, ...] = ("random", "bushy", "deep", "chain")
EPS = 1e-6           # noisy CPT entries are kept in [EPS, 1 - EPS]: no zero-probability evidence
BATCH = 4            # annotators answering at once for the batch policy
_STREAM_WORLD, _STREAM_ORACLE, _STREAM_POLICY, _STREAM_MODEL = 0, 1, 2, 3
MODEL_MODES = ("frontier", "all")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


# -- worlds ---------------------------------------------------------------

def random_parents(n: int, shape: str, rng: np.random.Generator) -> np.ndarray:
    """Parent index of each of ``n`` nodes (-1 for the root), labeled in breadth-first order.

    random: each new node attaches to a uniformly random earlier node (random recursive tree, depth ~ ln n).
    bushy:  each new node attaches to one of the first ceil(sqrt(n)) nodes (wide, depth mostly <= 2).
    deep:   each new node attaches to one of the 3 most recent nodes (depth ~ n/2).
    chain:  each node's parent is the previous node.
    """
    if n < 1:
        raise ValueError(f"a tree needs at least one node, got n={n}")
    i = np.arange(1, n)
    if shape == "random":
        raw = (rng.random(n - 1) * i).astype(np.int64)
    elif shape == "bushy":
        width = math.ceil(math.sqrt(n))
        raw = (rng.random(n - 1) * np.minimum(i, width)).astype(np.int64)
    elif shape == "deep":
        lo = np.maximum(i - 3, 0)
        raw = lo + (rng.random(n - 1) * (i - lo)).astype(np.int64)
    elif shape == "chain":
        raw = i - 1
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
    raw = np.concatenate(([-1], raw))
    # Relabel in BFS order: then parent[i] < i, and "lowest index" means "shallowest first".
    ct = CompiledTree.from_arrays(raw, np.zeros(n), np.zeros(n), 0.5)
    return ct.parent.copy()


def random_cpts(parent: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
                spread: float = 1.0) -> tuple[float, np.ndarray, np.ndarray]:
    """(prior, p_if_true, p_if_false) of a random tree.

    Per edge, in log-odds: a base rate m ~ N(0, spread) and a half-gap d ~ N(0, strength);
    p_if_true = sigmoid(m + d), p_if_false = sigmoid(m - d).  So a premise supports or
    attacks its parent with equal chance, and its weight of evidence log(p1/p0) is
    typically about 2·strength nats at m = 0.  The root prior is sigmoid(N(0, spread)).
    The root's entries of p_if_true / p_if_false are 0 (unused), as in ArgumentTree.arrays().
    """
    n = len(parent)
    m = rng.normal(0.0, spread, n)
    d = rng.normal(0.0, strength, n)
    p1, p0 = sigmoid(m + d), sigmoid(m - d)
    root = parent < 0
    p1[root] = p0[root] = 0.0
    prior = float(sigmoid(rng.normal(0.0, spread)))
    return prior, p1, p0


def perturb(prior: float, p1: np.ndarray, p0: np.ndarray, noise: float,
            rng: np.random.Generator, parent: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """The system's noisy copy: every probability moved by N(0, noise) in log-odds, kept in [EPS, 1-EPS].

    Entries of the root (``parent < 0``) in p1/p0 are left as they are (unused).
    """
    def move(p):
        q = sigmoid(logit(np.clip(p, EPS, 1 - EPS)) + rng.normal(0.0, noise, np.shape(p)))
        return np.clip(q, EPS, 1 - EPS)

    q1, q0, qp = move(p1), move(p0), float(move(np.float64(prior)))
    if parent is not None:
        root = np.asarray(parent) < 0
        q1[root], q0[root] = np.asarray(p1)[root], np.asarray(p0)[root]
    return qp, q1, q0


def sample_truth(parent: np.ndarray, prior: float, p1: np.ndarray, p0: np.ndarray,
                 rng: np.random.Generator, size: int = 1) -> np.ndarray:
    """``size`` joint samples of every node's truth, shape (size, n); needs parent[i] < i."""
    parent = np.asarray(parent)
    n = len(parent)
    if parent[0] != -1 or np.any(parent[1:] >= np.arange(1, n)) or np.any(parent[1:] < 0):
        raise ValueError("sample_truth needs node 0 as the root and parent[i] < i (topological order)")
    u = rng.random((size, n))
    x = np.empty((size, n), dtype=bool)
    x[:, 0] = u[:, 0] < prior
    for i in range(1, n):
        x[:, i] = u[:, i] < np.where(x[:, parent[i]], p1[i], p0[i])
    return x


@dataclass(frozen=True)
class Worlds:
    """W worlds of n nodes each; arrays are (W, n) (priors (W,)), nodes in BFS order, node 0 the root."""

    parent: np.ndarray
    prior: np.ndarray
    p1: np.ndarray
    p0: np.ndarray
    est_prior: np.ndarray   # the system's noisy copies
    est_p1: np.ndarray
    est_p0: np.ndarray
    truth: np.ndarray       # (W, n) bool, sampled from the true joint
    shape: str
    cpt_noise: float
    seed: int

    @property
    def count(self) -> int:
        return self.parent.shape[0]

    @property
    def n(self) -> int:
        return self.parent.shape[1]


def make_worlds(count: int, n: int = 25, shape: str = "random", cpt_noise: float = 1.0, seed: int = 0,
                strength: float = 1.0, spread: float = 1.0) -> Worlds:
    """``count`` worlds; world ``w`` depends only on (seed, w, n, shape, strength, spread) and, for
    its noisy copy, ``cpt_noise`` (the noise draws themselves are shared across noise levels)."""
    cols: dict[str, list] = {k: [] for k in ("parent", "prior", "p1", "p0", "ep", "e1", "e0", "truth")}
    for w in range(count):
        rng = np.random.default_rng([seed, w, _STREAM_WORLD])
        parent = random_parents(n, shape, rng)
        prior, p1, p0 = random_cpts(parent, rng, strength, spread)
        truth = sample_truth(parent, prior, p1, p0, rng)[0]
        ep, e1, e0 = perturb(prior, p1, p0, cpt_noise, rng, parent)
        for k, v in zip(cols, (parent, prior, p1, p0, ep, e1, e0, truth)):
            cols[k].append(v)
    a = {k: np.array(v) for k, v in cols.items()}
    return Worlds(a["parent"], a["prior"], a["p1"], a["p0"], a["ep"], a["e1"], a["e0"], a["truth"],
                  shape, float(cpt_noise), int(seed))


# -- all worlds in one propagation ----------------------------------------

class Forest:
    """W independent trees under a dummy super-root, so one Propagation serves them all."""

    def __init__(self, parent: np.ndarray, prior: np.ndarray, p1: np.ndarray, p0: np.ndarray):
        W, n = parent.shape
        offset = 1 + n * np.arange(W)[:, None]
        big_parent = np.where(parent >= 0, parent + offset, 0)
        # A world root hangs off the super-root with p_if_true = p_if_false = its prior: independent of it.
        root = parent < 0
        big_p1 = np.where(root, prior[:, None], p1)
        big_p0 = np.where(root, prior[:, None], p0)
        self.ct = CompiledTree.from_arrays(np.concatenate(([-1], big_parent.ravel())),
                                           np.concatenate(([0.5], big_p1.ravel())),
                                           np.concatenate(([0.5], big_p0.ravel())), 0.5)
        self.pos = self.ct.position[1:].reshape(W, n)   # BFS position of (world, node)
        self.roots = self.pos[:, 0]
        self.shape = (W, n)

    def empty_loglik(self) -> np.ndarray:
        return np.zeros((self.ct.n, 2))

    def beliefs(self, loglik: np.ndarray, root_state: bool | None = None) -> np.ndarray:
        """P(node | evidence [, every world's root = root_state]) as (W, n)."""
        if root_state is not None:
            loglik = loglik.copy()
            loglik[self.roots, 1 - int(root_state)] = -np.inf
        return Propagation(self.ct, loglik).down()[self.pos]


def observe(loglik: np.ndarray, pos: np.ndarray, value: np.ndarray, reliability: float) -> None:
    """Add one label per entry of ``pos`` (BFS positions) to ``loglik`` in place, as Evidence would."""
    val = value.astype(np.int64)
    with np.errstate(divide="ignore"):
        loglik[pos, val] += math.log(reliability)
        loglik[pos, 1 - val] += math.log1p(-reliability) if reliability < 1 else -np.inf


# -- policies -------------------------------------------------------------

@dataclass
class Step:
    """What a policy may look at: the system's beliefs given the answers so far (no truth)."""

    forest: Forest
    loglik: np.ndarray
    bel: np.ndarray          # (W, n) P(node | answers) under the noisy CPTs
    asked: np.ndarray        # (W, n) times each node was asked
    rng: np.random.Generator
    worlds: Worlds
    answers: list            # per world: list of (node, value) so far
    reliability: float
    _ac: tuple | None = None

    @property
    def hard(self) -> np.ndarray:
        """Root and hard-labeled nodes: VoI's non-askable set (argtree.voi)."""
        h = np.isneginf(self.loglik[self.forest.pos]).any(axis=2)
        h[:, 0] = True
        return h

    @property
    def fresh(self) -> np.ndarray:
        """Never-asked premises: the candidates of the heuristic policies."""
        f = self.asked == 0
        f[:, 0] = False
        return f

    def clamped(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, c) = P(x | r, answers), P(x | not r, answers) for every world and node."""
        if self._ac is None:
            self._ac = (self.forest.beliefs(self.loglik, True), self.forest.beliefs(self.loglik, False))
        return self._ac


def _argmax(score: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Best allowed node per world, ties to the shallowest (lowest BFS index); -1 where none is allowed."""
    s = np.where(allowed, np.round(score, 12), -np.inf)
    best = s.argmax(axis=1)
    return np.where(allowed.any(axis=1), best, -1)


def _voi(metric: str) -> Callable[[Step], np.ndarray]:
    def choose(step: Step) -> np.ndarray:
        a, c = step.clamped()
        R = step.bel[:, 0]
        # A settled root (R rounded to 0 or 1) has no VoI anywhere, as in argtree.voi.voi_arrays.
        values = np.stack([metric_from_table(float(R[w]), a[w], c[w], metric) if 0.0 < R[w] < 1.0
                           else np.zeros_like(a[w]) for w in range(len(R))])
        return _argmax(values, ~step.hard)
    return choose


def _uncertainty(step: Step) -> np.ndarray:
    return _argmax(-np.abs(step.bel - 0.5), step.fresh)


def _random(step: Step) -> np.ndarray:
    return _argmax(step.rng.random(step.bel.shape), step.fresh)


def _breadth_first(step: Step) -> np.ndarray:
    return _argmax(np.zeros(step.bel.shape), step.fresh)  # nodes are numbered in BFS order


def _influence(step: Step) -> np.ndarray:
    """|P(r | x, e) - P(r | not x, e)|, whatever P(x): influence without uncertainty."""
    a, c = step.clamped()
    R = step.bel[:, :1]
    b = step.bel
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.abs(R * a / b - R * (1 - a) / (1 - b))
    return _argmax(np.nan_to_num(score, nan=0.0, posinf=0.0), step.fresh)


def _batch(metric: str, k: int) -> Callable[[Step], np.ndarray]:
    def choose(step: Step) -> np.ndarray:
        wd = step.worlds
        out = np.full((wd.count, k), -1, dtype=np.int64)
        ids = [str(i) for i in range(wd.n)]
        for w in range(wd.count):
            ct = CompiledTree.from_arrays(wd.parent[w], wd.est_p1[w], wd.est_p0[w], float(wd.est_prior[w]), ids)
            ev = [Evidence(str(x), bool(v), step.reliability) for x, v in step.answers[w]]
            picks = [int(p) for p in select_batch(ct, ev, k, metric)]
            out[w, :len(picks)] = picks
        return out
    return choose


# name -> (pick function, answers per round).  A pick function returns (W,) or (W, k) node indices.
POLICIES: dict[str, tuple[Callable[[Step], np.ndarray], int]] = {
    "voi-shift": (_voi("shift"), 1),
    "voi-decision": (_voi("decision"), 1),
    "voi-info": (_voi("info"), 1),
    f"batch{BATCH}-shift": (_batch("shift", BATCH), BATCH),
    "uncertainty": (_uncertainty, 1),
    "influence": (_influence, 1),
    "breadth-first": (_breadth_first, 1),
    "random": (_random, 1),
}


# -- runs -----------------------------------------------------------------

@dataclass(frozen=True)
class Trace:
    """One policy on W worlds: the root belief after 0..T answers, and what was asked."""

    policy: str
    belief: np.ndarray      # (W, T+1) P(root) under the noisy CPTs
    truth: np.ndarray       # (W,) hidden root value
    q: np.ndarray           # (W,) P(root | every premise's truth) under the TRUE CPTs
    asked: np.ndarray       # (W, T) node asked at each step (-1: none left)
    answers: np.ndarray     # (W, T) the oracle's answer at each step (False where none was asked)

    @property
    def brier(self) -> np.ndarray:
        """(W, T+1) squared error against the hidden root truth."""
        return (self.belief - self.truth[:, None]) ** 2

    @property
    def expected_brier(self) -> np.ndarray:
        """(W, T+1) Brier averaged over the root's truth given all premises' truths:
        (b - q)^2 + q(1 - q).  Same expectation as ``brier``, less variance (the answers
        depend on the root only through the premises)."""
        return (self.belief - self.q[:, None]) ** 2 + (self.q * (1 - self.q))[:, None]

    @property
    def accuracy(self) -> np.ndarray:
        """(W, T+1) 1 if the belief is on the right side of 1/2, 1/2 on the fence."""
        b, y = self.belief, self.truth[:, None]
        return np.where(b == 0.5, 0.5, ((b > 0.5) == y).astype(float))


def bayes_q(worlds: Worlds) -> np.ndarray:
    """P(root | all premises' true values) under the true CPTs, per world."""
    forest = Forest(worlds.parent, worlds.prior, worlds.p1, worlds.p0)
    le = forest.empty_loglik()
    observe(le, forest.pos[:, 1:].ravel(), worlds.truth[:, 1:].ravel(), 1.0)
    return forest.beliefs(le)[:, 0]


def model_evidence(worlds: Worlds, forest: Forest, le: np.ndarray, quality: float, mode: str = "frontier") -> None:
    """The model's credence in each premise as evidence (DESIGN.md, Model evidence), in ``le`` in place.

    A model of quality q (its credence's accuracy) sees each premise's truth flipped with
    probability 1 - q; calibrated, its credence is P(x | what it saw), so alone it is soft evidence of
    reliability q on that node: q = 0.5 is useless, q = 1 knows everything.  ``frontier``: only on
    leaves (expanded nodes' premises speak for them); ``all``: on every premise.  Never the root.
    """
    if not 0.5 <= quality < 1.0:
        raise ValueError(f"model quality must be in [0.5, 1), got {quality}")
    if mode not in MODEL_MODES:
        raise ValueError(f"model evidence mode must be one of {MODEL_MODES}, got {mode!r}")
    W, n = worlds.count, worlds.n
    has_kids = np.zeros((W, n), dtype=bool)
    rows = np.repeat(np.arange(W), n - 1)
    has_kids[rows, worlds.parent[:, 1:].ravel()] = True
    where = np.ones((W, n), dtype=bool) if mode == "all" else ~has_kids
    where[:, 0] = False
    u = np.stack([np.random.default_rng([worlds.seed, w, _STREAM_MODEL]).random(n) for w in range(W)])
    said = worlds.truth ^ (u < 1.0 - quality)
    w, x = np.nonzero(where)
    observe(le, forest.pos[w, x], said[w, x], quality)


def run_policy(worlds: Worlds, policy: str, answers: int = 16, answer_noise: float = 0.0, seed: int = 0,
               q: np.ndarray | None = None, model_quality: float | None = None,
               model_mode: str = "frontier") -> Trace:
    """Ask ``answers`` questions in every world with ``policy``; record P(root) after each answer.

    With ``model_quality``, the system also holds the model's credence in each premise as evidence
    (``model_evidence``) before anyone answers."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if not 0.0 <= answer_noise < 0.5:
        raise ValueError(f"answer_noise must be in [0, 0.5), got {answer_noise}")
    pick, per_round = POLICIES[policy]
    W, n = worlds.count, worlds.n
    reliability = 1.0 - answer_noise
    forest = Forest(worlds.parent, worlds.est_prior, worlds.est_p1, worlds.est_p0)
    # The oracle's mistakes: u[w, x, j] < answer_noise flips the j-th answer about node x in world w.
    u = np.stack([np.random.default_rng([worlds.seed, w, _STREAM_ORACLE]).random((n, answers)) for w in range(W)])
    rng = np.random.default_rng([worlds.seed, _STREAM_POLICY])
    le = forest.empty_loglik()
    if model_quality is not None:
        model_evidence(worlds, forest, le, model_quality, model_mode)
    asked = np.zeros((W, n), dtype=np.int64)
    hist: list[list[tuple[int, bool]]] = [[] for _ in range(W)]
    belief = np.empty((W, answers + 1))
    chosen = np.full((W, answers), -1, dtype=np.int64)
    said = np.zeros((W, answers), dtype=bool)
    queue = np.empty((W, 0), dtype=np.int64)
    rows = np.arange(W)
    for t in range(answers + 1):
        bel = forest.beliefs(le)
        belief[:, t] = bel[:, 0]
        if t == answers:
            break
        if queue.shape[1] == 0:
            step = Step(forest, le, bel, asked, rng, worlds, hist, reliability)
            queue = np.asarray(pick(step)).reshape(W, per_round)
        x, queue = queue[:, 0], queue[:, 1:]
        chosen[:, t] = x
        ok = x >= 0
        if not ok.any():
            continue
        w, xs = rows[ok], x[ok]
        value = worlds.truth[w, xs] ^ (u[w, xs, asked[w, xs]] < answer_noise)
        said[w, t] = value
        observe(le, forest.pos[w, xs], value, reliability)
        asked[w, xs] += 1
        for wi, xi, vi in zip(w.tolist(), xs.tolist(), value.tolist()):
            hist[wi].append((xi, vi))
    if q is None:
        q = bayes_q(worlds)
    return Trace(policy, belief, worlds.truth[:, 0].copy(), q, chosen, said)


def run_policies(worlds: Worlds, policies=None, answers: int = 16, answer_noise: float = 0.0,
                 seed: int = 0, model_quality: float | None = None, model_mode: str = "frontier") -> dict[str, Trace]:
    q = bayes_q(worlds)
    return {p: run_policy(worlds, p, answers, answer_noise, seed, q, model_quality, model_mode)
            for p in (policies or POLICIES)}


# -- statistics -----------------------------------------------------------

def answers_to_reach(curve: np.ndarray, target: float) -> int | None:
    """First number of answers at which a mean-Brier curve is <= target (None if never)."""
    hit = np.flatnonzero(np.asarray(curve) <= target + 1e-12)
    return int(hit[0]) if len(hit) else None


def sign_test(diff: np.ndarray) -> tuple[int, int, float]:
    """One-sided exact sign test that ``diff`` is positive more often than not.

    Returns (positives, non-zero count, p-value = P(Binomial(m, 1/2) >= positives)); zeros are dropped.
    """
    diff = np.asarray(diff)
    m = int(np.count_nonzero(diff))
    k = int(np.count_nonzero(diff > 0))
    # Exact integers: 2.0 ** m overflows a float from m = 1024 on.
    p = sum(math.comb(m, i) for i in range(k, m + 1)) / (1 << m) if m else 1.0
    return k, m, p


def permutation_test(diff: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """One-sided paired sign-flip permutation test that the mean of ``diff`` is above zero.

    Under the null each world's difference is as likely to have the other sign; the
    p-value is the share of random sign flips whose mean is at least the observed one
    (counting the observed one, so it is never below 1 / (n_perm + 1)).
    """
    diff = np.asarray(diff, dtype=float)
    signs = np.random.default_rng(seed).integers(0, 2, (n_perm, len(diff)), dtype=np.int8) * 2 - 1
    flipped = signs @ diff
    return float((1 + np.count_nonzero(flipped >= diff.sum() - 1e-12)) / (n_perm + 1))


def mean_ci(x: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """(mean, half-width of the normal-approximation 95% interval)."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(z * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


# -- one benchmark configuration ------------------------------------------

@dataclass(frozen=True)
class Config:
    shape: str = "random"
    nodes: int = 25
    cpt_noise: float = 1.0
    answer_noise: float = 0.0
    worlds: int = 500
    answers: int = 16
    strength: float = 1.0
    seed: int = 0
    policies: tuple[str, ...] = tuple(POLICIES)
    model_quality: float | None = None   # the model's credences as evidence (run_policy), None: none
    model_mode: str = "frontier"


def evaluate(cfg: Config, target_policy: str = "voi-shift", target_answers: int = 2,
             compare_at: int = 8) -> dict:
    """Run every policy of ``cfg`` on the same worlds; means with 95% intervals, answers-to-target, paired tests.

    The target is ``target_policy``'s mean Brier after ``target_answers`` answers; for every policy we
    report the first answer count whose mean Brier is at or below it, and the paired per-world
    difference policy@compare_at minus target@target_answers (positive: the policy is still worse).
    """
    worlds = make_worlds(cfg.worlds, cfg.nodes, cfg.shape, cfg.cpt_noise, cfg.seed, cfg.strength)
    traces = run_policies(worlds, cfg.policies, cfg.answers, cfg.answer_noise, cfg.seed, cfg.model_quality,
                          cfg.model_mode)
    q = next(iter(traces.values())).q
    # References: every premise answered correctly, under the noisy CPTs and under the true ones.
    forest = Forest(worlds.parent, worlds.est_prior, worlds.est_p1, worlds.est_p0)
    le = forest.empty_loglik()
    observe(le, forest.pos[:, 1:].ravel(), worlds.truth[:, 1:].ravel(), 1.0)
    b_all = forest.beliefs(le)[:, 0]
    out: dict = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "reference": {  # E-Brier; the *_brier twins score against the sampled root
            "all_answered_noisy_cpts": mean_ci((b_all - q) ** 2 + q * (1 - q)),
            "all_answered_true_cpts": mean_ci(q * (1 - q)),
            "all_answered_noisy_cpts_brier": mean_ci((b_all - worlds.truth[:, 0]) ** 2),
            "all_answered_true_cpts_brier": mean_ci((q - worlds.truth[:, 0]) ** 2),
        },
        "policies": {},
    }
    metrics = {"expected_brier": lambda t: t.expected_brier, "brier": lambda t: t.brier,
               "accuracy": lambda t: t.accuracy}
    depth = np.zeros((worlds.count, worlds.n + 1), dtype=np.int64)  # last column: "nothing asked"
    for i in range(1, worlds.n):
        depth[:, i] = depth[np.arange(worlds.count), worlds.parent[:, i]] + 1
    for name, tr in traces.items():
        # Where the policy asks: mean depth (root's children = 1) of its first 2 and first 8 questions.
        asked_depth = np.take_along_axis(depth, np.where(tr.asked >= 0, tr.asked, worlds.n), axis=1)
        row = {"question_depth": {str(k): float(asked_depth[:, :k].mean()) for k in (2, 8) if k <= cfg.answers},
               # Answers that re-ask an already answered premise (only possible with soft, noisy answers).
               "repeats": float(np.mean([len(a) - len(set(a.tolist())) for a in tr.asked]))}
        for m, f in metrics.items():
            v = f(tr)
            row[m] = [mean_ci(v[:, t]) for t in range(v.shape[1])]
        out["policies"][name] = row
    # A target every policy can reach: 90% of the way from no answers to every premise answered.
    b0 = float(next(iter(traces.values())).expected_brier[:, 0].mean())
    gap90 = b0 - 0.9 * (b0 - out["reference"]["all_answered_noisy_cpts"][0])
    out["gap90"] = gap90
    for name, tr in traces.items():
        out["policies"][name]["to_gap90"] = answers_to_reach(tr.expected_brier.mean(axis=0), gap90)
    if target_policy in traces and target_answers <= cfg.answers:
        tgt = traces[target_policy]
        out["target"] = {"policy": target_policy, "answers": target_answers, "compare_at": compare_at}
        for m in ("expected_brier", "brier"):
            target = float(metrics[m](tgt)[:, target_answers].mean())
            out["target"][m] = target
            for name, tr in traces.items():
                curve = metrics[m](tr).mean(axis=0)
                entry = out["policies"][name].setdefault("to_target", {})
                entry[m] = answers_to_reach(curve, target)
                if compare_at <= cfg.answers:
                    diff = metrics[m](tr)[:, compare_at] - metrics[m](tgt)[:, target_answers]
                    k, n, p = sign_test(diff)
                    out["policies"][name].setdefault("vs_target", {})[m] = {
                        "mean_diff": mean_ci(diff), "worse": k, "nonzero": n, "sign_p": p}
    return out
