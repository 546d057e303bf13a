"""The autonomous loop: the model asks itself questions, grows trees where it is unsure, asks an
oracle what matters most, folds the answers in and digs again where they moved the answer.

Depends on protocols only: a model backend (``argtree.llm.base.Backend``), an
oracle (``argtree.oracle.Oracle``) and a store (``LoopStorage`` below; on a
database, ``argtree.store.loops.LoopStore``), all passed in.  No SQL here.

Work is a set of tasks in the store (``loop_tasks``), each unique per run by
(kind, key), claimed by one worker at a time:

``propose``   topic -> the model proposes questions (one ``question`` task each);
``question``  grow a tree for the question, one expansion batch at a time, the
              partial tree checkpointed in the task after each batch; then save
              it and, if its root belief lies within the uncertain band, add ``ask``;
``ask``       the tree's top-VoI unlabeled premises go to the oracle (in benchmark
              mode, ``label_root``, the question itself too: a dataset oracle
              knows its answer, so exported trees carry the truth); answers become
              labels (idempotent request ids); if the labels moved the root by
              more than ``reexpand_delta``, add ``reexpand``.  With the human
              oracle the trees are in the web app's queue already; the task
              waits for labels and re-checks later;
``reexpand``  grow the labeled tree further (checkpointed like ``question``), save
              it as the tree's next version (the old one archived), then ``ask`` again.

Because every finished expansion batch is committed before the next starts,
a loop killed with SIGKILL and started again resumes its run: the dead
worker's task is reclaimed and continues from its checkpoint, so no finished
expansion is repeated.  Several workers (processes, on PostgreSQL) share a run;
``claim_loop_task`` uses SKIP LOCKED so no task runs twice at once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from .datasets import normalize
from .interrupt import caused_by_ctrl_c
from .process import pid_alive
from .oracle import Oracle, Query

__all__ = ["LoopConfig", "LoopStorage", "RunConflict", "start_or_resume", "run_worker", "run_config",
           "config_differences", "propose_questions", "QUESTION_SCHEMA", "QUESTION_PATTERN", "MIN_QUESTION", "MAX_QUESTION", "question_schema",
           "question_bound"]

# A proposed question is one line of printable ASCII: a capital letter first, a '?' last, no quote or
# backslash (so nothing is escaped), MIN_QUESTION..MAX_QUESTION characters in all.  The pattern bounds
# the length itself: xgrammar ignores (and warns about) minLength/maxLength beside a pattern.  ASCII
# only, so a character is a byte and every generated token adds at least one: ``question_bound``
# tokens always let an answer finish (outside ASCII a token may be a fragment of a character, adding none).
# 130 at most: xgrammar 0.2.8's cached compiler fails ("per_rule_fsm_hashes") on a repeat above {,128}.
MIN_QUESTION, MAX_QUESTION = 15, 130
# [?], not \?: llama.cpp's schema-to-grammar breaks on escapes (see argtree.expand.TEXT_PATTERN).
QUESTION_PATTERN = r'^[A-Z][ !#-\[\]-~]{%d,%d}[?]$' % (MIN_QUESTION - 2, MAX_QUESTION - 2)


def question_schema(n: int = 5) -> dict:
    """JSON schema for the model's answer: 1..n questions, each matching ``QUESTION_PATTERN``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return {
        "type": "object",
        "properties": {"questions": {"type": "array", "minItems": 1, "maxItems": n,
                                     "items": {"type": "string", "pattern": QUESTION_PATTERN}}},
        "required": ["questions"], "additionalProperties": False,
    }


QUESTION_SCHEMA = question_schema(5)


def question_bound(n: int = 5) -> int:
    """Characters of the longest answer ``question_schema(n)`` admits: the token cap of ``propose_questions``.

    Written with json.dumps' separators (", " and ": "), as xgrammar's one-line grammar writes it;
    nothing in a question is escaped and it is ASCII, so characters are bytes and a constrained token
    adds at least one: this many new tokens always let an answer finish."""
    return len(json.dumps({"questions": ["Q" * (MAX_QUESTION - 1) + "?"] * n}))


@dataclass(frozen=True)
class LoopConfig:
    topics: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()        # given questions (e.g. from a dataset oracle), asked as they are
    per_topic: int = 3                     # questions the model proposes per topic
    max_questions: int = 10
    hours: float | None = None
    budget: int = 3                        # expansions per tree (the root's included)
    reexpand_budget: int = 2
    max_rounds: int = 2                    # re-expansions per question
    uncertain: tuple[float, float] = (0.15, 0.85)   # keep a question whose root belief lies inside
    ask_top: int = 3                       # premises sent to the oracle per round
    reexpand_delta: float = 0.05           # |move of the root| that earns a re-expansion
    max_depth: int = 3
    per_side: int = 2
    batch: int = 4
    seed: int = 0
    model: str | None = None               # model version name recorded with the trees
    poll_seconds: float = 5.0              # human oracle: how often to look for new labels
    label_root: bool = False               # benchmark mode: the oracle also answers the question itself
    retries: int = 2                       # sampled retries of an unusable expansion
    max_new_tokens: int | None = None      # per model answer (None: the longest answer the schema admits)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["topics"], d["questions"], d["uncertain"] = list(self.topics), list(self.questions), list(self.uncertain)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LoopConfig":
        d = dict(d)
        d["topics"], d["questions"], d["uncertain"] = (tuple(d.get("topics", ())), tuple(d.get("questions", ())),
                                                       tuple(d.get("uncertain", (0.15, 0.85))))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- the store the loop is handed ---------------------------------------------------------

@runtime_checkable
class LoopStorage(Protocol):
    """What the loop needs from storage (``argtree.store.loops.LoopStore`` on a database).  Every
    method is one transaction; tasks are ``(kind, key)``-unique per run; ``decide`` callbacks run inside
    the transaction that stores their result, so a task's follow-ups appear exactly when it is done."""

    def latest_run(self) -> Any: ...
    def loop_runs(self) -> list[Any]: ...
    def run(self, run_id: int) -> Any: ...
    def start_run(self, config: dict[str, Any], tasks: Sequence[dict[str, Any]]) -> int: ...
    def reopen_run(self, run_id: int, is_dead: Callable[[str], bool]) -> int: ...
    def finish_run(self, run_id: int, status: str) -> dict[str, Any]: ...
    def heartbeat(self, run_id: int) -> dict[str, Any]: ...
    def stats(self, run_id: int) -> dict[str, Any]: ...
    def claim(self, run_id: int, worker: str) -> Any: ...
    def settle_idle(self, run_id: int, worker: str, is_dead: Callable[[str], bool]) -> tuple[bool, bool]: ...
    def set_task(self, task_id: int, status: str, result: Any = ...) -> None: ...
    def checkpoint(self, task_id: int, worker: str, result: dict[str, Any]) -> bool: ...
    def add_questions(self, run_id: int, task_id: int, tasks: Sequence[dict[str, Any]], max_questions: int,
                      result: Callable[[int, int], dict[str, Any]]) -> int: ...
    def load_tree(self, tree_id: int) -> Any: ...
    def tree_nodes(self, tree_id: int) -> list[Any]: ...
    def save_grown(self, run_id: int, task_id: int, worker: str, tree, *, question: str,
                   model_version: str | None, meta: dict[str, Any], archive: int | None,
                   decide: Callable[[Any], tuple[list[dict[str, Any]], dict[str, Any]]],
                   evidence: Sequence = ()) -> dict | None: ...
    def calibration(self, model_version: str) -> Any: ...
    def refit_calibration(self, model_version: str, min_new: int = 20) -> dict[str, Any] | None: ...
    def finish_ask(self, run_id: int, task_id: int, tree_id: int, oracle, queries, answers,
                   decide: Callable[[Any, int], tuple[str, Any, list[dict[str, Any]]]]) -> None: ...


# -- run bookkeeping ------------------------------------------------------------------

class RunConflict(Exception):
    """Starting would resume a run with other options, or repeat a finished one: the message says which
    run, what differs and what to do (``--new`` starts a fresh run)."""

    def __init__(self, message: str, run_id: int, differences: Sequence[str] = (), finished: bool = False):
        super().__init__(message)
        self.run_id = run_id
        self.differences = list(differences)
        self.finished = finished


def run_config(config: LoopConfig, oracle_name: str, **settings: Any) -> dict[str, Any]:
    """What a run stores and what a later start is compared with: the loop's config, the oracle and the
    settings that change its results (backend, model, dataset)."""
    return {"loop": config.to_json(), "oracle": oracle_name, **settings}


def config_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``option: stored -> wanted`` for each option that differs (settings a run predating them did not
    record are not compared)."""
    out = []
    old_loop, new_loop = dict(stored.get("loop") or {}), dict(wanted.get("loop") or {})
    old_loop = LoopConfig.from_json(old_loop).to_json()  # defaults for fields an older run lacks
    for key in new_loop:
        if old_loop.get(key) != new_loop.get(key):
            out.append(f"{key}: {_show(old_loop.get(key))} -> {_show(new_loop.get(key))}")
    for key in sorted(set(wanted) - {"loop"}):
        if key in stored and stored.get(key) != wanted.get(key):
            out.append(f"{key}: {_show(stored.get(key))} -> {_show(wanted.get(key))}")
    return out


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _dead(worker: str) -> bool:
    """A claim by a process of this host that no longer exists."""
    who = (worker or "").rsplit(":", 1)
    return len(who) == 2 and who[0] == socket.gethostname() and who[1].isdigit() and not pid_alive(int(who[1]))


def start_or_resume(store: LoopStorage, config: LoopConfig, oracle_name: str, resume: bool = True,
                    **settings: Any) -> tuple[int, bool, LoopConfig]:
    """(run id, resumed?, config in force).

    Without ``resume`` (``--new``) a fresh run starts.  Otherwise, the newest loop run started with the
    same options decides: unfinished (left 'running' by a killed loop, or 'stopped' by Ctrl-C or its time
    budget with tasks left), it is resumed with its own stored config, tasks its dead workers held going
    back to pending, checkpoints kept; finished, ``RunConflict`` says it already did this (so re-running a
    loop never grows its trees twice).  With no such run, ``RunConflict`` also when the newest run is
    unfinished but had other options (the message names each difference).  A new run and its first tasks
    are stored in one transaction."""
    wanted = run_config(config, oracle_name, **settings)
    if resume:
        runs = store.loop_runs()  # newest first

        def unfinished(run) -> bool:
            return run.status == "running" or (run.status == "stopped" and run.pending > 0)

        same = next((run for run in runs if not config_differences(run.config, wanted)), None)
        if same is not None and unfinished(same):
            store.reopen_run(same.id, _dead)
            return same.id, True, LoopConfig.from_json(same.config.get("loop", {}))
        if same is not None:
            stats = same.stats or {}
            raise RunConflict(
                f"loop run {same.id} already did this ({same.status}: {stats.get('questions', 0)} questions, "
                f"{stats.get('trees', 0)} trees, {stats.get('labels', 0)} labels); add --new to run it again",
                same.id, finished=True)
        last = runs[0] if runs else None
        if last is not None and unfinished(last):
            diffs = config_differences(last.config, wanted)
            raise RunConflict(
                f"loop run {last.id} is unfinished ({last.status}, {last.pending} tasks left) and was started "
                f"with other options: {'; '.join(diffs)}. Run the same command as then to resume it, or add "
                "--new to start a fresh run", last.id, diffs)
    tasks = [{"kind": "propose", "key": "topic:" + normalize(t)[:240], "priority": 3.0, "payload": {"topic": t}}
             for t in config.topics]
    tasks += [{"kind": "question", "key": "q:" + normalize(q)[:240], "priority": 2.0, "payload": {"question": q}}
              for q in config.questions[: config.max_questions]]
    return store.start_run(wanted, tasks), False, config


# -- the worker -------------------------------------------------------------------------

IDLE_POLL = 0.5  # seconds between looks for new work while other workers still hold tasks
TAKEN_OVER = "taken over by another worker (this one's claim had gone stale): dropped"


def run_worker(store: LoopStorage, run_id: int, backend, oracle: Oracle, *,
               deadline: float | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
               stop: Callable[[], bool] = lambda: False, idle_exit: bool = False, proposer=None) -> str:
    """Claim and run tasks until none are left (or the deadline / ``stop()``); returns why it stopped.

    A worker with nothing to claim while others still hold tasks waits for them (their tasks may add
    more: an ``ask`` after a ``question``, a ``reexpand`` after an ``ask``), unless ``idle_exit``; the
    run is finished ("all done") only when no task is pending and none is running anywhere.  Tasks held
    by dead processes of this host go back to pending on the way.  ``proposer``: the backend that proposes
    questions about topics (default ``backend``; ``argtree loop`` hands it the shipped proposer adapter
    when the model is the bundled one, ``argtree.llm.local.default_proposer``)."""
    cfg = LoopConfig.from_json(store.run(run_id).config.get("loop", {}))
    me = worker_name()
    while True:
        if stop():
            return "stopped"
        if deadline is not None and time.time() >= deadline:
            store.finish_run(run_id, "stopped")
            return "time budget spent"
        task = store.claim(run_id, me)
        if task is None:
            done, pending = store.settle_idle(run_id, me, _dead)
            if done:
                return "all done"
            if idle_exit and not pending:
                return "no tasks left for this worker"
            time.sleep(min(cfg.poll_seconds, IDLE_POLL))
            continue
        try:
            outcome = _run_task(store, run_id, cfg, backend, oracle, task.id, task.kind, task.payload, task.result,
                                proposer)
        except BaseException as err:
            if not caused_by_ctrl_c(err):
                raise
            store.set_task(task.id, "pending")
            if isinstance(err, KeyboardInterrupt):
                raise
            raise KeyboardInterrupt from err  # Ctrl-C during an import arrives as a RuntimeError (interrupt.py)
        stats = store.heartbeat(run_id)
        if progress:
            progress({"event": "task", "kind": task.kind, "key": task.key, "outcome": outcome, **stats})
        if outcome.startswith("waiting"):
            time.sleep(cfg.poll_seconds)


def _checkpoint(store: LoopStorage, task_id: int, result: dict[str, Any]) -> bool:
    """Store a finished batch in the task and renew the claim (a live worker's long task must not read as
    a dead worker's stale claim).  False when the task is no longer this worker's: it was taken over."""
    return store.checkpoint(task_id, worker_name(), result)


def _run_task(store, run_id, cfg, backend, oracle, task_id, kind, payload, result, proposer=None) -> str:
    if kind == "propose":
        return _propose(store, run_id, cfg, proposer or backend, task_id, payload)
    if kind in ("question", "reexpand"):
        return _grow_task(store, run_id, cfg, backend, task_id, kind, payload, result)
    if kind == "ask":
        out = _ask(store, run_id, cfg, oracle, task_id, payload)
        # New answers are new (credence, answer) pairs: refit the premise map once enough arrived.
        store.refit_calibration(backend.model_version)
        return out
    store.set_task(task_id, "failed", {"error": f"unknown task kind {kind!r}"})
    return "failed"


def propose_questions(backend, topic: str, n: int, seed: int = 0, *, retries: int = 2,
                      earlier: Sequence[str] = (), report: Callable[[Any], None] | None = None) -> list[str]:
    """Up to n yes/no questions about ``topic`` from the model (schema-constrained JSON).

    The token cap is ``question_bound(n)``, so no answer is cut off.  Kept: questions that pass the
    guards of ``argtree.propose`` (yes/no, at most one negation, on the topic, no near-duplicate of
    ``earlier`` or of each other ...); while fewer than n pass, up to ``retries`` sampled calls with new
    seeds ask for the rest.  ``report`` receives the ``argtree.propose.Proposals`` (rejections with reasons)."""
    from .propose import propose

    out = propose(backend, topic, n, seed, retries=retries, earlier=earlier)
    if report is not None:
        report(out)
    return out.questions[:n]


def _propose(store, run_id, cfg, backend, task_id, payload) -> str:
    said: list = []
    questions = propose_questions(backend, payload["topic"], cfg.per_topic, cfg.seed, retries=cfg.retries,
                                  earlier=cfg.questions, report=said.append)
    tasks = [{"kind": "question", "key": "q:" + normalize(q)[:240], "priority": 2.0,
              "payload": {"question": q, "topic": payload["topic"]}} for q in questions]
    rejected = [v.to_json() for v in said[0].rejected]
    # One proposer at a time per run: two workers counting at once would both see room and add past
    # --max-questions (or the same question twice).
    new = store.add_questions(run_id, task_id, tasks, cfg.max_questions,
                              lambda room, new: {"questions": questions[:room], "new": new, "rejected": rejected,
                                                 "negation": [q for q, v in zip(questions[:room], said[0].accepted)
                                                              if v.negation]})
    return f"{new} questions" + (f" ({len(rejected)} proposals rejected)" if rejected else "")


def _grow_task(store, run_id, cfg, backend, task_id, kind, payload, result) -> str:
    """Grow (or keep growing) a tree one expansion batch at a time, checkpointing after each batch."""
    from .grow import GrowConfig, grow
    from .io import from_dict, to_dict

    state = dict(result or {})
    budget = cfg.budget if kind == "question" else cfg.reexpand_budget
    # The model's credences travel with the tree (as model evidence, DESIGN.md); labels stay in the store.
    model_ev: tuple = ()
    if "partial" in state:
        tree, ev0 = from_dict(state["partial"])
        model_ev = tuple(e for e in ev0 if e.is_model)
        done = int(state.get("expansions", 0))
    elif kind == "question":
        tree, done = None, 0
    else:
        tree, ev0 = store.load_tree(payload["tree_id"])
        model_ev = tuple(e for e in ev0 if e.is_model)
        done = 0
    evidence = ()
    if kind == "reexpand":
        _, evidence = store.load_tree(payload["tree_id"])
        evidence = tuple(e for e in evidence if not e.is_model)
    question = payload.get("question") or (tree[tree.root].text if tree is not None else "")
    gcfg = GrowConfig(expansions=1, max_depth=cfg.max_depth, per_side=cfg.per_side, batch=cfg.batch,
                      retries=cfg.retries, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + task_id)
    calibration = store.calibration(backend.model_version)
    while done < budget:
        step = min(cfg.batch, budget - done) if tree is not None else 1
        res = grow(question, backend, replace(gcfg, expansions=step, seed=gcfg.seed + done), tree=tree,
                   evidence=tuple(ev for ev in evidence + model_ev if tree is not None and ev.node in tree.nodes),
                   calibration=calibration)
        grown = int(res.stats.get("expansions", 0))
        tree = res.tree
        model_ev = tuple(e for e in res.evidence if e.is_model)
        done += grown
        state = {"partial": to_dict(tree, model_ev), "expansions": done}
        if not _checkpoint(store, task_id, state):  # a finished batch is never redone
            return TAKEN_OVER
        if not grown or res.stop_reason in ("nothing-to-expand", "voi-below-threshold", "max-nodes"):
            break
    rnd = int(payload.get("round", 0))

    def decide(saved):  # runs in the transaction that saves the tree
        tree_id, evidence_now = saved.tree_id, saved.evidence
        from .inference import beliefs

        root = beliefs(tree, evidence_now)[tree.root]
        lo, hi = cfg.uncertain
        keep = lo <= root <= hi
        follow = [{"kind": "ask", "key": f"ask:{tree_id}", "tree_id": tree_id, "priority": 1.0,
                   "payload": {"tree_id": tree_id, "round": rnd, "root_before": root, "question": question}}]
        return (follow if keep else []), {"tree_id": tree_id, "root_belief": root, "uncertain": keep,
                                          "expansions": done, "nodes": len(tree)}

    # The one that took the task over saves the tree, not both of us (None).
    out = store.save_grown(run_id, task_id, worker_name(), tree, question=question,
                           model_version=cfg.model if cfg.model else None,
                           meta=dict(tree.meta, loop_run=run_id, loop_task=task_id,
                                     # the topic it was proposed for: proposer training data once answered
                                     **({"topic": payload["topic"]} if payload.get("topic") else {})),
                           archive=payload["tree_id"] if kind == "reexpand" else None, decide=decide,
                           evidence=model_ev)
    if out is None:
        return TAKEN_OVER
    return (f"tree {out['tree_id']}: {len(tree)} nodes, root {out['root_belief']:.2f}"
            + ("" if out["uncertain"] else " (settled: not asked)"))


def _ask(store, run_id, cfg, oracle: Oracle, task_id, payload) -> str:
    from .inference import beliefs

    tree_id = payload["tree_id"]
    nodes = store.tree_nodes(tree_id)
    infos = [n for n in nodes if n.parent_id is not None and n.n_labels == 0]
    infos.sort(key=lambda n: (-n.voi, n.id))
    question = payload.get("question")
    queries = [Query(n.text, n.proposition_id, tree_id, n.local_id, n.voi, question=question)
               for n in infos[: cfg.ask_top]]
    if cfg.label_root and oracle.synchronous:
        queries += [Query(n.text, n.proposition_id, tree_id, n.local_id, 0.0) for n in nodes
                    if n.parent_id is None and n.n_labels == 0]
    answers = oracle.answer(queries) if queries else []
    said: dict[str, Any] = {}

    def decide(saved, stored: int):  # runs in the transaction that stores the answers
        root = beliefs(saved.tree, saved.evidence)[saved.tree.root]
        moved = abs(root - float(payload.get("root_before", root)))
        rnd = int(payload.get("round", 0))
        said.update(moved=moved, stored=stored)
        if not oracle.synchronous and moved < cfg.reexpand_delta:
            # People answer later: look again after a while (the task goes back to the queue).
            said["waiting"] = True
            return "pending", {"waiting": True, "root": root}, []
        again = moved >= cfg.reexpand_delta and rnd < cfg.max_rounds
        said["again"] = again
        follow = [{"kind": "reexpand", "key": f"re:{tree_id}", "tree_id": tree_id, "priority": 1.5,
                   "payload": {"tree_id": tree_id, "round": rnd + 1, "question": payload.get("question")}}]
        return "done", {"asked": len(queries), "labels": stored, "root_before": payload.get("root_before"),
                        "root_after": root, "reexpand": again}, (follow if again else [])

    store.finish_ask(run_id, task_id, tree_id, oracle, queries, answers, decide)
    if said.get("waiting"):
        return "waiting for people's labels"
    return (f"asked {len(queries)}, {said['stored']} answered, root moved {said['moved']:.2f}"
            + (" -> re-expand" if said["again"] else ""))
