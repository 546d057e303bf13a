"""Grow an argument tree with a model: best-first on value of information.

Depends only on the backend protocol (``argtree.llm.base.Backend``) and the
pure core.  The loop:

1. expand the root (premises for and against it);
2. score every leaf by VoI (how much its true value would move the root) and
   expand the best ``batch`` leaves together, in one batched model call
   (two prompts per node: for and against);
3. stop when a budget runs out (expansions, nodes, depth, model calls,
   seconds) or the best expandable leaf's VoI falls below ``threshold``.

A node whose answers are unusable after ``retries`` sampled retries is a
*failed expansion*: it is recorded with the raw model output in
``tree.meta["failed_expansions"]`` and never tried again; the tree so far is
always returned.  Nothing a model says can raise out of ``grow``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from .expand import (EPS, answer_bound, STANCES, SYSTEM, Guard, Parsed, Proposal, cpt_from_elicitation,
                     direct_prompt, expansion_prompt, expansion_schema, parse_expansion, yes_no_prompt)
from .llm.base import Backend
from .model_evidence import NONE as NO_CALIBRATION, ModelCalibration, direct_record, evidence_for_nodes
from .tree import ArgumentTree, Evidence, Node

__all__ = ["GrowConfig", "GrowResult", "grow", "expand_nodes", "expand_many"]

RAW_KEEP = 2000  # characters of a failed answer kept in the record


@dataclass(frozen=True)
class GrowConfig:
    expansions: int = 5               # --budget: nodes the model expands (the root counts)
    max_nodes: int = 60
    max_depth: int = 3                # premises deeper than this are not created
    max_calls: int | None = None      # prompts sent to the model, retries included
    max_seconds: float | None = None
    threshold: float = 1e-3           # stop when the best leaf's VoI is below this
    metric: str = "shift"
    batch: int = 4                    # nodes expanded per batched model call
    per_side: int = 2                 # premises asked for on each side
    retries: int = 2                  # sampled retries after a failed greedy attempt
    temperature: float = 0.8          # for retries
    max_new_tokens: int | None = None  # None: answer_bound(per_side), so the cap never cuts an answer
    credence: str = "logprob"         # "logprob": P(yes) of the premise from token log-probs (better
                                      # Brier score than "verbal", the number the model writes: BENCHMARKS.md)
    prior: float = 0.5                # root prior: the question is open until its premises speak
    model_evidence: str = "frontier"  # how premises' credences count (argtree.inference.MODEL_MODES)
    direct: bool = True               # ask the model the question itself (the direct answer)
    seed: int = 0
    eps: float = EPS


@dataclass
class GrowResult:
    tree: ArgumentTree
    evidence: tuple[Evidence, ...]
    stop_reason: str
    stats: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Outcome:
    node: str
    proposals: list[Proposal]
    attempts: int
    raw: list[str]
    errors: list[str]
    rejected: list[dict[str, Any]]


def expand_nodes(backend: Backend, tree: ArgumentTree, node_ids: list[str], cfg: GrowConfig,
                 calls_left: int | None = None, seed: int = 0) -> tuple[list[_Outcome], int]:
    """Ask the model for premises of each node of ``tree`` (both sides) in one batch.

    Returns (outcomes, prompts sent).  A side that yields nothing acceptable is
    retried with sampling; a node fails only if BOTH sides end with nothing.
    """
    return expand_many(backend, [(tree, nid) for nid in node_ids], cfg, calls_left, seed)


def expand_many(backend: Backend, targets: list[tuple[ArgumentTree, str]], cfg: GrowConfig,
                calls_left: int | None = None, seed: int = 0) -> tuple[list[_Outcome], int]:
    """``expand_nodes`` for nodes of possibly different trees, batched together (benchmarks, loops)."""
    guards: list[Guard] = []
    shared: dict[int, set[str]] = {}  # nodes of one tree share its dedupe set
    for tree, nid in targets:
        g = Guard(tree[nid].text, [tree[a].text for a in tree.ancestors(nid)],
                  [tree[c].text for c in tree.children(nid)], [n.text for n in tree.nodes.values()])
        g.tree_norm = shared.setdefault(id(tree), g.tree_norm)
        guards.append(g)
    outcomes = [_Outcome(nid, [], 0, [], [], []) for _, nid in targets]
    pending = [(k, s) for k in range(len(targets)) for s in STANCES]
    sent = 0
    for attempt in range(cfg.retries + 1):
        if not pending:
            break
        if calls_left is not None:
            pending = pending[:max(calls_left - sent, 0)]
            if not pending:
                break
        prompts, schemas = [], []
        for k, stance in pending:
            tree, nid = targets[k]
            ctx = [tree[a].text for a in reversed(tree.ancestors(nid))]
            prompts.append(expansion_prompt(tree[nid].text, stance, context=ctx,
                                            avoid=guards[k].siblings, per_side=cfg.per_side))
            schemas.append(expansion_schema(stance, cfg.per_side))
        temperature = 0.0 if attempt == 0 else cfg.temperature
        crash = None
        try:
            gens = list(backend.generate_json(prompts, schemas, system=SYSTEM, max_new_tokens=cfg.max_new_tokens or answer_bound(cfg.per_side),
                                              temperature=temperature, seed=seed + 7919 * attempt))
        except Exception as err:  # noqa: BLE001 - a backend that raises anyway is a failed attempt
            gens, crash = [], f"{type(err).__name__}: {err}"
        gens = gens[:len(prompts)] + [None] * (len(prompts) - len(gens))
        sent += len(prompts)
        still = []
        for (k, stance), gen in zip(pending, gens):
            o = outcomes[k]
            o.attempts = attempt + 1
            if gen is None or gen.error:
                err = crash or (gen.error if gen is not None else "backend returned no answer")
                o.errors.append(f"{stance}#{attempt}: {err}")
                o.raw.append("" if gen is None else gen.text[:RAW_KEEP])
                still.append((k, stance))
                continue
            parsed: Parsed = parse_expansion(gen.text, stance, guards[k], cfg.eps)
            o.rejected.extend({"node": o.node, "stance": stance, "attempt": attempt, "text": r.text,
                               "reason": r.reason} for r in parsed.rejected)
            if parsed.ok:
                o.proposals.extend(parsed.proposals)
            else:
                tail = " (cut at the token cap)" if gen.truncated else ""
                o.errors.append(f"{stance}#{attempt}: {parsed.error}{tail}")
                o.raw.append(gen.text[:RAW_KEEP] + ("…" if len(gen.text) > RAW_KEEP else ""))
                still.append((k, stance))
        pending = still
    return outcomes, sent


def _leaf_scores(tree: ArgumentTree, evidence, metric: str, model: str = "frontier") -> dict[str, float]:
    from .voi import voi

    return voi(tree, evidence, metric, model)


def direct_answer(backend: Backend, question: str, calibration: ModelCalibration = NO_CALIBRATION) -> dict[str, Any]:
    """The model's own P(yes) for ``question`` (raw and calibrated), or ``{"error": ...}`` if scoring failed."""
    try:
        p = float(backend.score_yes([direct_prompt(question)])[0])
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"P(yes) {p!r} is not a probability")
    except Exception as err:  # noqa: BLE001 - no direct answer is reported as such, never as 0.5
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    return direct_record(p, calibration.direct_map)


def grow(question: str, backend: Backend, cfg: GrowConfig = GrowConfig(),
         progress: Callable[[dict[str, Any]], None] | None = None,
         tree: ArgumentTree | None = None, evidence: tuple[Evidence, ...] = (),
         calibration: ModelCalibration = NO_CALIBRATION) -> GrowResult:
    """Grow a tree for ``question`` (or keep growing ``tree``) within ``cfg``'s budgets.

    Each new premise's credence becomes model evidence (``argtree.model_evidence``,
    through ``calibration.premise``); a new tree also records the model's direct
    answer in ``meta["direct"]``.  The result's evidence is ``evidence`` plus that
    model evidence."""
    t0 = time.perf_counter()
    evidence = tuple(evidence)
    if tree is None:
        meta0: dict[str, Any] = {"question": question.strip(), "model_version": backend.model_version,
                                 "backend": backend.kind}
        if cfg.direct:
            meta0["direct"] = direct_answer(backend, question.strip(), calibration)
        tree = ArgumentTree([Node("q", question.strip(), prior=cfg.prior)], meta0)
    nodes = dict(tree.nodes)
    meta = dict(tree.meta)
    failures: list[dict[str, Any]] = list(meta.get("failed_expansions", []))
    rejected: list[dict[str, Any]] = []
    tried = {n.id for n in nodes.values() if tree.children(n.id)} | {f["node"] for f in failures}
    counter = 0  # ids n1, n2, ...; existing ones are skipped
    scoring_failures: list[str] = []
    expansions = calls = 0
    stop = "budget"
    batch_no = 0

    def emit(kind: str, **kw):
        if progress:
            progress({"event": kind, "expansions": expansions, "nodes": len(nodes), "calls": calls,
                      "budget": cfg.expansions, **kw})

    while True:
        if expansions >= cfg.expansions:
            stop = "budget"
            break
        if len(nodes) >= cfg.max_nodes:
            stop = "max-nodes"
            break
        if cfg.max_calls is not None and calls >= cfg.max_calls:
            stop = "max-calls"
            break
        if cfg.max_seconds is not None and time.perf_counter() - t0 >= cfg.max_seconds:
            stop = "max-seconds"
            break
        current = ArgumentTree(nodes.values(), meta)
        leaves = [nid for nid in current.nodes if not current.children(nid) and nid not in tried
                  and current.depth(nid) < cfg.max_depth]
        if not leaves:
            stop = "nothing-to-expand"
            break
        if current.root in leaves:
            picks = [current.root]
        else:
            scores = _leaf_scores(current, evidence, cfg.metric, cfg.model_evidence)
            ranked = sorted(leaves, key=lambda n: (-round(scores.get(n, 0.0), 12), n))
            best = scores.get(ranked[0], 0.0)
            if best < cfg.threshold:
                stop = "voi-below-threshold"
                break
            picks = [n for n in ranked if scores.get(n, 0.0) >= cfg.threshold]
            picks = picks[:min(cfg.batch, cfg.expansions - expansions)]
        emit("expanding", picks=picks)
        calls_left = None if cfg.max_calls is None else cfg.max_calls - calls
        outcomes, sent = expand_nodes(backend, current, picks, cfg, calls_left, seed=cfg.seed + 104729 * batch_no)
        batch_no += 1
        calls += sent
        unscored: dict[int, bool] = {}  # id(proposal) -> its log-prob score did not come back
        if cfg.credence == "logprob":  # one batched scoring call for every new premise
            flat, failed, scoring_error = _logprob_credences(backend, [p for o in outcomes for p in o.proposals],
                                                             cfg.eps)
            if scoring_error:  # the written numbers stand in for those premises, and they say so
                scoring_failures.append(scoring_error)
            unscored = {id(p): f for p, f in zip(flat, failed)}
            for o in outcomes:
                o.proposals, flat = flat[:len(o.proposals)], flat[len(o.proposals):]
        new_credences: dict[str, float] = {}
        for o in outcomes:
            tried.add(o.node)
            expansions += 1
            rejected.extend(o.rejected)
            if not o.proposals:
                failures.append({"node": o.node, "attempts": o.attempts, "errors": o.errors, "raw": o.raw})
                continue
            props = o.proposals
            depth = current.depth(o.node) + 1
            for p in props:
                if len(nodes) >= cfg.max_nodes:
                    break
                counter += 1
                nid = f"n{counter}"
                while nid in nodes:
                    counter += 1
                    nid = f"n{counter}"
                source = "verbal (log-prob scoring failed)" if unscored.get(id(p)) else cfg.credence
                nodes[nid] = Node(nid, p.text, parent=o.node, p_if_true=p.p_if_true, p_if_false=p.p_if_false,
                                  extra={**p.extra(), "credence_source": source,
                                         "depth": depth, "model_version": backend.model_version})
                if p.credence is not None:
                    new_credences[nid] = float(p.credence)
        if new_credences:  # the model's credences in the new premises become model evidence
            evidence = evidence + tuple(evidence_for_nodes(ArgumentTree(nodes.values(), meta), new_credences,
                                                           calibration.premise))
        meta["failed_expansions"] = failures
        emit("expanded", picks=picks)
    meta["failed_expansions"] = failures
    meta["growth"] = {"stop_reason": stop, "expansions": expansions, "model_calls": calls,
                      "seconds": round(time.perf_counter() - t0, 3), "rejected": len(rejected),
                      "failed": len(failures), "credence": cfg.credence, "metric": cfg.metric,
                      "scoring_failures": len(scoring_failures),
                      "model_evidence": sum(1 for e in evidence if e.is_model)}
    if scoring_failures:
        meta["growth"]["scoring_errors"] = scoring_failures[:3]
    final = ArgumentTree(nodes.values(), meta)
    emit("done", stop_reason=stop)
    return GrowResult(final, tuple(evidence), stop, dict(meta["growth"]), failures, rejected)


def _logprob_credences(backend: Backend, props: list[Proposal],
                       eps: float) -> tuple[list[Proposal], list[bool], str | None]:
    """Replace each premise's verbal credence by P(yes) from token log-probabilities.

    Returns (premises, failed per premise, error).  A premise whose score did not come back (the call
    failed, or its number is NaN / out of [0, 1]) keeps the number the model wrote and is flagged; the
    error (with the backend's ``last_scoring_errors`` where it keeps them) is counted and reported."""
    if not props:
        return props, [], None
    try:
        scores = [float(x) for x in backend.score_yes([yes_no_prompt(p.text) for p in props])]
        if len(scores) != len(props):
            raise ValueError(f"expected {len(props)} probabilities, got {len(scores)}")
    except Exception as err:  # noqa: BLE001 - keep the verbal numbers if scoring fails
        return props, [True] * len(props), f"{type(err).__name__}: {err}"[:300]
    out, failed = [], []
    for p, c in zip(props, scores):
        if not 0.0 <= c <= 1.0:  # NaN included: this one premise keeps its written number
            out.append(p)
            failed.append(True)
            continue
        p1, p0 = cpt_from_elicitation(c, p.claim_if_true, p.claim_if_false, eps)
        out.append(replace(p, credence=float(c), p_if_true=p1, p_if_false=p0))
        failed.append(False)
    error = None
    if any(failed):
        reasons = list(getattr(backend, "last_scoring_errors", []) or [])
        error = (f"{sum(failed)} of {len(props)} premises could not be scored"
                 + (f": {reasons[0]}" if reasons else ""))[:300]
    return out, failed, error
