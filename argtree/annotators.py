"""Learned annotator reliability: one-coin Dawid–Skene EM with Beta priors and gold questions (pure).

Every annotator (a person, or an oracle of the loop) is one number ``r`` = P(their label equals the
truth), symmetric in true and false: exactly the soft-evidence channel of DESIGN.md, so the estimate is
the reliability their labels are weighed with.  Truths are unknown except on *gold* propositions (an
admin's known answer), which are clamped.  EM (Dawid & Skene 1979, one coin per annotator):

- E-step: each proposition's P(true) from its prior odds and every label's likelihood ratio,
  ``r / (1 - r)`` for a true/false label (inverted for a "false"); a probability ``p`` goes through the
  same graded channel as ``argtree.store.compute.label_evidence``: ``r p + (1-r)(1-p)`` against
  ``r (1-p) + (1-r) p``.  Gold propositions are 1 or 0.
- M-step: ``r`` = posterior mean of Beta(alpha + expected correct, beta + expected wrong): the prior
  ``Beta(alpha, beta)`` comes from the reliability an annotator was created with (``prior_counts``),
  so a new annotator starts there and moves as evidence accrues.  A probability label counts
  ``|2p - 1|`` of a label on its side of 0.5.

Why not crowd-kit (``crowd-kit`` 1.4.2 installs cleanly here): its Dawid–Skene and one-coin models take
no prior per annotator, cannot clamp gold items, take no prior per item, give no interval, and pull in
pandas and nltk; this file is ~150 lines of numpy, tested against a brute-force posterior and
simulated annotators of known accuracy.

An estimate below 0.5 is an adversary: their labels are evidence for the other side
(``evidence_weight`` flips them), not noise to discard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["Vote", "Estimate", "Result", "prior_counts", "estimate", "beta_interval", "evidence_weight",
           "PRIOR_STRENGTH", "R_MIN", "R_MAX"]

PRIOR_STRENGTH = 4.0   # pseudo-labels behind the reliability an annotator was created with
R_MIN, R_MAX = 0.005, 0.995  # a learned reliability never becomes a hard label


@dataclass(frozen=True)
class Vote:
    """One label: ``value`` True/False, or ``probability`` (P(true) the annotator gave)."""

    annotator: Hashable
    item: Hashable
    value: bool | None = None
    probability: float | None = None

    def side(self) -> tuple[bool, float] | None:
        """(the side it votes for, how much of a label it counts as), None when it says nothing."""
        if self.value is not None:
            return bool(self.value), 1.0
        if self.probability is None or self.probability == 0.5:
            return None
        return self.probability > 0.5, abs(2.0 * self.probability - 1.0)


@dataclass(frozen=True)
class Estimate:
    annotator: Hashable
    reliability: float      # posterior mean of P(label = truth)
    low: float              # 90% posterior interval
    high: float
    alpha: float            # Beta posterior pseudo-counts (prior + expected correct / wrong)
    beta: float
    n: float                # labels counted (probability labels fractionally)
    n_gold: int             # labels on gold items
    gold_correct: float     # of those, right (fractional for probability labels)
    prior: float            # the reliability it started from


@dataclass(frozen=True)
class Result:
    estimates: dict          # annotator -> Estimate
    posterior: dict          # item -> P(true) after EM (gold: 0 or 1)
    iterations: int
    converged: bool


def prior_counts(reliability: float, strength: float = PRIOR_STRENGTH) -> tuple[float, float]:
    """Beta pseudo-counts whose mean is ``reliability``, worth ``strength`` labels."""
    r = min(max(float(reliability), R_MIN), R_MAX)
    return r * strength, (1.0 - r) * strength


def beta_interval(a: float, b: float, level: float = 0.9) -> tuple[float, float]:
    """Central ``level`` interval of Beta(a, b) (scipy when installed, else a normal approximation)."""
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    try:
        from scipy.stats import beta as _beta

        return float(_beta.ppf(lo_q, a, b)), float(_beta.ppf(hi_q, a, b))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn in every install we test
        m = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        z = 1.6448536269514722 if level == 0.9 else 1.959963984540054
        return max(0.0, m - z * sd), min(1.0, m + z * sd)


def evidence_weight(value: bool, reliability: float) -> tuple[bool, float] | None:
    """(value, reliability in (0.5, 1)) of the soft evidence a true/false label of an annotator with this
    learned reliability gives; an adversary (below 0.5) votes for the other side; 0.5 says nothing."""
    r = min(max(float(reliability), R_MIN), R_MAX)
    if abs(r - 0.5) < 1e-12:
        return None
    return (bool(value), r) if r > 0.5 else (not value, 1.0 - r)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def estimate(votes: Iterable[Vote], *, priors: Mapping[Hashable, float] | None = None,
             gold: Mapping[Hashable, bool] | None = None, item_prior: Mapping[Hashable, float] | float = 0.5,
             default_prior: float = 0.7, strength: float = PRIOR_STRENGTH, max_iter: int = 200,
             tol: float = 1e-7, level: float = 0.9) -> Result:
    """Every annotator's reliability and every item's P(true) from ``votes`` (see the module doc).

    ``priors``: annotator -> the reliability they start from (default ``default_prior``); ``gold``:
    item -> known truth; ``item_prior``: P(true) before any label, per item or one for all."""
    priors = dict(priors or {})
    gold = dict(gold or {})
    vs = [v for v in votes if v.side() is not None]
    people = sorted({v.annotator for v in vs} | set(priors), key=repr)
    items = sorted({v.item for v in vs} | set(gold), key=repr)
    pi = {a: i for i, a in enumerate(people)}
    ii = {x: i for i, x in enumerate(items)}
    A = np.array([pi[v.annotator] for v in vs], dtype=np.int64)
    X = np.array([ii[v.item] for v in vs], dtype=np.int64)
    side = np.array([v.side()[0] for v in vs], dtype=bool)
    w = np.array([v.side()[1] for v in vs], dtype=float)
    # Graded likelihood pieces: a label with probability p is P(report | truth) = r p' + (1-r)(1-p'),
    # p' = p for truth true; for true/false labels p' is 1 or 0.
    p_true = np.array([(1.0 if v.value else 0.0) if v.value is not None else float(v.probability) for v in vs])
    a0 = np.empty(len(people))
    b0 = np.empty(len(people))
    start = np.empty(len(people))
    for a, i in pi.items():
        start[i] = float(priors.get(a, default_prior))
        a0[i], b0[i] = prior_counts(start[i], strength)
    if isinstance(item_prior, Mapping):
        prior_lo = _logit(np.array([float(item_prior.get(x, 0.5)) for x in items]))
    else:
        prior_lo = np.full(len(items), float(_logit(np.array([float(item_prior)]))[0]))
    is_gold = np.array([x in gold for x in items], dtype=bool)
    gold_q = np.array([1.0 if gold.get(x) else 0.0 for x in items])
    r = a0 / (a0 + b0)
    q = np.full(len(items), 0.5)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        rr = np.clip(r[A], R_MIN, R_MAX)
        lt = rr * p_true + (1 - rr) * (1 - p_true)     # P(report | true)
        lf = rr * (1 - p_true) + (1 - rr) * p_true     # P(report | false)
        llr = np.log(lt) - np.log(lf)
        lo = prior_lo + np.bincount(X, weights=llr, minlength=len(items))
        q = np.where(is_gold, gold_q, 1.0 / (1.0 + np.exp(-np.clip(lo, -700, 700))))
        right = np.where(side, q[X], 1.0 - q[X]) * w
        c = np.bincount(A, weights=right, minlength=len(people))
        n = np.bincount(A, weights=w, minlength=len(people))
        new = (a0 + c) / (a0 + b0 + n)
        if np.max(np.abs(new - r), initial=0.0) < tol:
            r = new
            converged = True
            break
        r = new
    c = np.bincount(A, weights=np.where(side, q[X], 1.0 - q[X]) * w, minlength=len(people))
    n = np.bincount(A, weights=w, minlength=len(people))
    on_gold = is_gold[X] if len(X) else np.zeros(0, dtype=bool)
    n_gold = np.bincount(A[on_gold], minlength=len(people))
    g_right = np.bincount(A[on_gold], weights=(np.where(side, q[X], 1.0 - q[X]) * w)[on_gold],
                          minlength=len(people))
    out = {}
    for a, i in pi.items():
        al, be = a0[i] + c[i], b0[i] + n[i] - c[i]
        low, high = beta_interval(al, be, level)
        out[a] = Estimate(a, float(al / (al + be)), low, high, float(al), float(be), float(n[i]), int(n_gold[i]),
                          float(g_right[i]), float(start[i]))
    return Result(out, {x: float(q[i]) for x, i in ii.items()}, it, converged)


def majority(votes: Sequence[Vote]) -> dict:
    """Item -> P(true) by unweighted majority of true/false sides (ties 0.5): the baseline of the bench."""
    tally: dict = {}
    for v in votes:
        s = v.side()
        if s is None:
            continue
        t = tally.setdefault(v.item, [0.0, 0.0])
        t[0 if s[0] else 1] += 1.0
    return {x: (0.5 if t[0] == t[1] else (1.0 if t[0] > t[1] else 0.0)) for x, t in tally.items()}


# -- benchmark: simulated annotators in the oracle-efficiency worlds -------------------------------

BENCH_ACCURACIES = (0.95, 0.9, 0.8, 0.7, 0.55, 0.3)


def _paired(diff: np.ndarray, seed: int, n_boot: int = 4000) -> dict:
    """Mean of a paired difference with a 95% bootstrap interval (worlds resampled)."""
    rng = np.random.default_rng([seed, 4242])
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return {"mean": float(diff.mean()), "low": float(lo), "high": float(hi)}


def bench_worlds(labels: int, overlap: int = 3, per_world: int = 1, annotators: int = len(BENCH_ACCURACIES)) -> int:
    """Worlds the bench needs so that each annotator gives ``labels`` labels (``overlap`` of ``annotators``
    answer each of the ``per_world`` questions of a world)."""
    if labels < 1 or overlap < 1 or per_world < 1:
        raise ValueError(f"labels, overlap and per_world must be >= 1, got {labels}, {overlap}, {per_world}")
    return math.ceil(labels * annotators / (overlap * per_world))


def bench_annotators(seed: int = 0, worlds: int = 400, per_world: int = 1, nodes: int = 25, cpt_noise: float = 1.0,
                     accuracies: Sequence[float] = BENCH_ACCURACIES, prior: float = 0.9, shape: str = "random",
                     overlap: int = 3, gold: int = 0, tolerance: float = 0.05) -> dict:
    """Six simulated annotators of known accuracy answer the ``per_world`` highest-VoI premises of each of
    ``worlds`` oracle-efficiency worlds (``argtree.simulate``), ``overlap`` annotators per question in a
    balanced design (with 6 annotators and overlap 3, each answers one of every two questions: 400
    questions give each of them 200 labels).  Their reliabilities are learned by ``estimate`` (prior
    ``prior`` for all, the system's marginals as item priors, the first ``gold`` questions gold); the root's
    expected Brier is scored with the labels weighed by the learned reliabilities, by a fixed ``prior``
    for everyone, and by the majority answer of each question (one label of reliability ``prior``; ties
    say nothing), paired per world, with the true accuracies as a reference.

    ``within_0.05``: every learned reliability within ``tolerance`` of the true accuracy;
    ``realized_within_0.05``: every annotator's *realized* accuracy (the share of their labels that are
    right: what an estimator that knew every truth would learn) within ``tolerance`` of the true accuracy,
    the sampling bound any estimator faces with this many labels."""
    from .simulate import Forest, bayes_q, make_worlds, observe

    k_people = len(accuracies)
    if not 1 <= overlap <= k_people or k_people % overlap:
        raise ValueError(f"overlap must divide the number of annotators ({k_people}), got {overlap}")
    wd = make_worlds(worlds, n=nodes, shape=shape, cpt_noise=cpt_noise, seed=seed)
    forest = Forest(wd.parent, wd.est_prior, wd.est_p1, wd.est_p0)
    le0 = forest.empty_loglik()
    bel0 = forest.beliefs(le0)
    a, c = forest.beliefs(le0, True), forest.beliefs(le0, False)
    R = bel0[:, :1]
    voi = 2 * R * (1 - R) * np.abs(a - c)
    voi[:, 0] = -np.inf
    items = np.argsort(-voi, axis=1, kind="stable")[:, :per_world]        # (W, m) node indices
    W, m = items.shape
    w_idx = np.repeat(np.arange(W), m)
    n_idx = items.ravel()
    truth = wd.truth[w_idx, n_idx]
    rng = np.random.default_rng([seed, 7013])
    names = [f"a{round(100 * acc)}" for acc in accuracies]
    # Who answers what: blocks of k_people / overlap questions, each annotator in exactly one of a block.
    block = k_people // overlap
    who = np.zeros((len(truth), k_people), dtype=bool)
    for start in range(0, len(truth), block):
        perm = rng.permutation(k_people)
        for j in range(min(block, len(truth) - start)):
            who[start + j, perm[j * overlap:(j + 1) * overlap]] = True
    answers = {}
    for i, (name, acc) in enumerate(zip(names, accuracies)):
        right = rng.random(truth.shape) < acc
        answers[name] = np.where(right, truth, ~truth)
    votes = [Vote(name, int(k), bool(answers[name][k])) for i, name in enumerate(names)
             for k in np.flatnonzero(who[:, i])]
    gold_items = {k: bool(truth[k]) for k in range(min(gold, len(truth)))}
    res = estimate(votes, priors={nm: prior for nm in names}, gold=gold_items,
                   item_prior={k: float(bel0[w_idx[k], n_idx[k]]) for k in range(len(truth))})
    learned = {nm: res.estimates[nm].reliability for nm in names}
    pos = forest.pos[w_idx, n_idx]

    def root_with(weights: Mapping[str, float]) -> np.ndarray:
        le = le0.copy()
        for i, nm in enumerate(names):
            ev = evidence_weight(True, weights[nm])
            if ev is None:
                continue
            flip = ev[0] is False  # an adversary: their answers count for the other side
            mine = who[:, i]
            observe(le, pos[mine], answers[nm][mine] ^ flip, ev[1])
        return forest.beliefs(le)[:, 0]

    votes_true = sum((answers[nm] & who[:, i]).astype(int) for i, nm in enumerate(names))
    le = le0.copy()
    maj = votes_true * 2 != overlap
    observe(le, pos[maj], (votes_true * 2 > overlap)[maj], prior)
    roots = {"learned": root_with(learned), "fixed": root_with({nm: prior for nm in names}),
             "majority": forest.beliefs(le)[:, 0], "true accuracies": root_with(dict(zip(names, accuracies))),
             "no labels": bel0[:, 0]}
    q = bayes_q(wd)
    ebrier = {k: (b - q) ** 2 + q * (1 - q) for k, b in roots.items()}
    annot = []
    for nm, acc in zip(names, accuracies):
        e = res.estimates[nm]
        mine = who[:, names.index(nm)]
        realized = float(np.mean(answers[nm][mine] == truth[mine]))
        annot.append({"annotator": nm, "true": acc, "realized": realized,
                      "learned": e.reliability, "low": e.low, "high": e.high, "labels": int(e.n),
                      "error": e.reliability - acc, "error_realized": e.reliability - realized,
                      "realized_error": realized - acc,
                      "within": abs(e.reliability - acc) <= tolerance + 1e-12,
                      "realized_within": abs(realized - acc) <= tolerance + 1e-12})
    return {"seed": seed, "worlds": W, "per_world": m, "nodes": nodes, "cpt_noise": cpt_noise, "shape": shape,
            "overlap": overlap, "prior": prior, "gold": len(gold_items),
            "labels_per_annotator": int(who.sum(axis=0).min()), "iterations": res.iterations,
            "annotators": annot, "max_abs_error": max(abs(r["error"]) for r in annot),
            "tolerance": tolerance,
            "within_0.05": all(r["within"] for r in annot),
            "realized_within_0.05": all(r["realized_within"] for r in annot),
            "max_abs_realized_error": max(abs(r["realized_error"]) for r in annot),
            "max_abs_error_realized": max(abs(r["error_realized"]) for r in annot),
            "e_brier": {k: float(v.mean()) for k, v in ebrier.items()},
            "learned_vs_fixed": _paired(ebrier["fixed"] - ebrier["learned"], seed),
            "learned_vs_majority": _paired(ebrier["majority"] - ebrier["learned"], seed)}
