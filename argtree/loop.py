"""The autonomous loop: the model asks itself questions, grows trees where it is unsure, asks an
oracle what matters most, folds the answers in and digs again where they moved the answer.

Depends on protocols only: a model backend (``argtree.llm.base.Backend``), an
oracle (``argtree.oracle.Oracle``) and the store's session factory.

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
import re
import socket
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

from .datasets import normalize
from .process import pid_alive
from .oracle import Oracle, Query, record_answers

__all__ = ["LoopConfig", "start_or_resume", "run_worker", "propose_questions", "loop_stats",
           "QUESTION_SCHEMA", "QUESTION_PATTERN", "MIN_QUESTION", "MAX_QUESTION", "question_schema",
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


# -- run bookkeeping ------------------------------------------------------------------

def start_or_resume(session_scope: Callable, config: LoopConfig, oracle_name: str,
                    resume: bool = True) -> tuple[int, bool, LoopConfig]:
    """(run id, resumed?, config in force).  A run left 'running' by a killed loop is resumed
    with its own stored config; tasks its dead workers held go back to pending, checkpoints kept."""
    from .store import add_loop_tasks, start_loop_run, unfinished_loop_run

    with session_scope() as s:
        run = unfinished_loop_run(s) if resume else None
        if run is not None:
            _release_dead_claims(s, run.id)
            return run.id, True, LoopConfig.from_json(run.config.get("loop", {}))
        run = start_loop_run(s, {"loop": config.to_json(), "oracle": oracle_name})
        tasks = [{"kind": "propose", "key": "topic:" + normalize(t)[:240], "priority": 3.0, "payload": {"topic": t}}
                 for t in config.topics]
        tasks += [{"kind": "question", "key": "q:" + normalize(q)[:240], "priority": 2.0, "payload": {"question": q}}
                  for q in config.questions[: config.max_questions]]
        add_loop_tasks(s, run.id, tasks)
        return run.id, False, config


def _release_dead_claims(session, run_id: int) -> int:
    """Tasks claimed by a process of this host that no longer exists go back to pending (checkpoint kept)."""
    from sqlalchemy import select

    from .store import LoopTask

    host = socket.gethostname()
    n = 0
    for task in session.scalars(select(LoopTask).where(LoopTask.run_id == run_id, LoopTask.status == "running")):
        who = (task.worker or "").rsplit(":", 1)
        if len(who) == 2 and who[0] == host and who[1].isdigit() and not pid_alive(int(who[1])):
            task.status = "pending"
            n += 1
    session.flush()
    return n


def loop_stats(session, run_id: int) -> dict[str, Any]:
    """Questions, trees, nodes, labels and mean root uncertainty of a run, for progress lines."""
    from sqlalchemy import func, select

    from .store import Label, LoopTask, Node, Tree

    tasks = session.execute(select(LoopTask.kind, LoopTask.status, func.count()).where(LoopTask.run_id == run_id)
                            .group_by(LoopTask.kind, LoopTask.status)).all()
    by = {}
    for kind, status, n in tasks:
        by.setdefault(kind, {})[status] = int(n)
    tree_ids = _run_trees(session, run_id)
    nodes = session.scalar(select(func.count()).select_from(Node).where(Node.tree_id.in_(tree_ids))) if tree_ids else 0
    beliefs = [b for (b,) in session.execute(select(Tree.root_belief).where(Tree.id.in_(tree_ids),
                                                                              Tree.status == "active"))
               if b is not None] if tree_ids else []
    labels = session.scalar(select(func.count()).select_from(Label).where(
        Label.proposition_id.in_(select(Node.proposition_id).where(Node.tree_id.in_(tree_ids))),
        Label.retracted_at.is_(None))) if tree_ids else 0
    unc = sum(1 - abs(2 * b - 1) for b in beliefs) / len(beliefs) if beliefs else None
    return {"tasks": by, "questions": by.get("question", {}).get("done", 0), "trees": len(tree_ids),
            "nodes": int(nodes or 0), "labels": int(labels or 0),
            "root_uncertainty": None if unc is None else round(unc, 4)}


def _run_trees(session, run_id: int) -> list[int]:
    from sqlalchemy import select

    from .store import LoopTask

    out = []
    for (result,) in session.execute(select(LoopTask.result).where(
            LoopTask.run_id == run_id, LoopTask.kind.in_(["question", "reexpand"]), LoopTask.status == "done")):
        if isinstance(result, dict) and isinstance(result.get("tree_id"), int):
            out.append(result["tree_id"])
    return out


# -- the worker -------------------------------------------------------------------------

IDLE_POLL = 0.5  # seconds between looks for new work while other workers still hold tasks
TAKEN_OVER = "taken over by another worker (this one's claim had gone stale): dropped"


def run_worker(session_scope: Callable, run_id: int, backend, oracle: Oracle, *,
               deadline: float | None = None, progress: Callable[[dict[str, Any]], None] | None = None,
               stop: Callable[[], bool] = lambda: False, idle_exit: bool = False) -> str:
    """Claim and run tasks until none are left (or the deadline / ``stop()``); returns why it stopped.

    A worker with nothing to claim while others still hold tasks waits for them (their tasks may add
    more: an ``ask`` after a ``question``, a ``reexpand`` after an ``ask``), unless ``idle_exit``; the
    run is finished ("all done") only when no task is pending and none is running anywhere.  Tasks held
    by dead processes of this host go back to pending on the way."""
    from .store import claim_loop_task, finish_loop_run, get_loop_run, heartbeat_loop_run

    with session_scope() as s:
        cfg = LoopConfig.from_json(get_loop_run(s, run_id).config.get("loop", {}))
    me = worker_name()
    while True:
        if stop():
            return "stopped"
        if deadline is not None and time.time() >= deadline:
            with session_scope() as s:
                finish_loop_run(s, run_id, "stopped", loop_stats(s, run_id))
            return "time budget spent"
        with session_scope() as s:
            task = claim_loop_task(s, run_id, me)
            claimed = None if task is None else (task.id, task.kind, task.key, dict(task.payload or {}),
                                                 task.result, task.tree_id)
        if claimed is None:
            with session_scope() as s:
                _release_dead_claims(s, run_id)
                pending = _pending(s, run_id)  # one another worker's claim had locked, or a dead one's
                if not pending and not _others_running(s, run_id):
                    # Checked in one transaction after our claim found nothing: a task that ends adds
                    # its follow-ups in the transaction that marks it done, so no work can appear now.
                    finish_loop_run(s, run_id, "done", loop_stats(s, run_id))
                    return "all done"
            if idle_exit and not pending:
                return "no tasks left for this worker"
            time.sleep(min(cfg.poll_seconds, IDLE_POLL))
            continue
        task_id, kind, key, payload, result, tree_id = claimed
        try:
            outcome = _run_task(session_scope, run_id, cfg, backend, oracle, task_id, kind, payload, result)
        except KeyboardInterrupt:
            with session_scope() as s:
                _set_status(s, task_id, "pending")
            raise
        with session_scope() as s:
            stats = loop_stats(s, run_id)
            heartbeat_loop_run(s, run_id, stats)
        if progress:
            progress({"event": "task", "kind": kind, "key": key, "outcome": outcome, **stats})
        if outcome.startswith("waiting"):
            time.sleep(cfg.poll_seconds)


def _set_status(session, task_id: int, status: str, result: Any = ...) -> None:
    from .store import LoopTask

    task = session.get(LoopTask, task_id)
    task.status = status
    if result is not ...:
        task.result = result
    session.flush()


def _checkpoint(session_scope, task_id: int, result: dict[str, Any]) -> bool:
    """Store a finished batch in the task and renew the claim (a live worker's long task must not read as
    a dead worker's stale claim).  False when the task is no longer this worker's: it was taken over."""
    from sqlalchemy import update

    from .store import LoopTask, utcnow

    with session_scope() as s:
        now = utcnow()
        return s.execute(update(LoopTask).where(LoopTask.id == task_id, LoopTask.worker == worker_name(),
                                                LoopTask.status == "running")
                         .values(result=result, claimed_at=now, updated_at=now)).rowcount == 1


def _still_mine(session, task_id: int) -> bool:
    """Whether this worker still holds the task, locking its row until the transaction ends (PostgreSQL),
    so that no other worker can take it over between this check and the commit of its result."""
    from sqlalchemy import select

    from .store import LoopTask

    return session.scalar(select(LoopTask.id).where(LoopTask.id == task_id, LoopTask.worker == worker_name(),
                                                    LoopTask.status == "running").with_for_update()) is not None


def _pending(session, run_id: int) -> bool:
    from sqlalchemy import select

    from .store import LoopTask

    return session.scalar(select(LoopTask.id).where(LoopTask.run_id == run_id, LoopTask.status == "pending")
                          .limit(1)) is not None


def _others_running(session, run_id: int) -> bool:
    from sqlalchemy import func, select

    from .store import LoopTask

    return bool(session.scalar(select(func.count()).select_from(LoopTask).where(
        LoopTask.run_id == run_id, LoopTask.status == "running", LoopTask.worker != worker_name())))


def _run_task(session_scope, run_id, cfg, backend, oracle, task_id, kind, payload, result) -> str:
    if kind == "propose":
        return _propose(session_scope, run_id, cfg, backend, task_id, payload)
    if kind in ("question", "reexpand"):
        return _grow_task(session_scope, run_id, cfg, backend, task_id, kind, payload, result)
    if kind == "ask":
        return _ask(session_scope, run_id, cfg, oracle, task_id, payload)
    with session_scope() as s:
        _set_status(s, task_id, "failed", {"error": f"unknown task kind {kind!r}"})
    return "failed"


def propose_questions(backend, topic: str, n: int, seed: int = 0) -> list[str]:
    """Up to n yes/no questions about ``topic`` from the model (schema-constrained JSON).

    The token cap is ``question_bound(n)``, so no answer is cut off.  Kept: questions of at least
    three words that match ``QUESTION_PATTERN`` (a backend that cannot enforce the pattern may break
    it), are not the topic and repeat no earlier one (normalized text)."""
    prompt = (f"Topic: {topic}\nWrite {n} different yes/no questions about this topic whose answer is uncertain "
              "and could be checked. Each question is one sentence ending with a question mark.")
    gens = backend.generate_json([prompt], question_schema(n), max_new_tokens=question_bound(n), seed=seed)
    out: list[str] = []
    if gens and gens[0].ok:
        try:
            items = json.loads(gens[0].text).get("questions", [])
        except (ValueError, AttributeError):
            items = []
        seen = {normalize(topic)}
        for q in items if isinstance(items, list) else []:
            if not isinstance(q, str):
                continue
            q = " ".join(q.split())
            if len(q.split()) >= 3 and re.match(QUESTION_PATTERN, q) and normalize(q) not in seen:
                seen.add(normalize(q))
                out.append(q)
    return out[:n]


def _propose(session_scope, run_id, cfg, backend, task_id, payload) -> str:
    from sqlalchemy import func, select

    from .store import LoopRun, LoopTask, add_loop_tasks

    questions = propose_questions(backend, payload["topic"], cfg.per_topic, cfg.seed)
    with session_scope() as s:
        # One proposer at a time per run (PostgreSQL; SQLite has one writer anyway): two workers
        # counting at once would both see room and add past --max-questions (or the same question twice).
        s.execute(select(LoopRun.id).where(LoopRun.id == run_id).with_for_update(key_share=True))
        have = s.scalar(select(func.count()).select_from(LoopTask).where(LoopTask.run_id == run_id,
                                                                         LoopTask.kind == "question")) or 0
        room = max(cfg.max_questions - have, 0)
        new = add_loop_tasks(s, run_id, [{"kind": "question", "key": "q:" + normalize(q)[:240], "priority": 2.0,
                                          "payload": {"question": q, "topic": payload["topic"]}}
                                         for q in questions[:room]])
        _set_status(s, task_id, "done", {"questions": questions[:room], "new": new})
    return f"{new} questions"


def _grow_task(session_scope, run_id, cfg, backend, task_id, kind, payload, result) -> str:
    """Grow (or keep growing) a tree one expansion batch at a time, checkpointing after each batch."""
    from .grow import GrowConfig, grow
    from .io import from_dict, to_dict
    from .store import add_loop_tasks, load_tree, save_tree, set_tree

    state = dict(result or {})
    budget = cfg.budget if kind == "question" else cfg.reexpand_budget
    if "partial" in state:
        tree, _ = from_dict(state["partial"])
        done = int(state.get("expansions", 0))
    elif kind == "question":
        tree, done = None, 0
    else:
        with session_scope() as s:
            tree, _ = load_tree(s, payload["tree_id"])
        done = 0
    evidence = ()
    if kind == "reexpand":
        with session_scope() as s:
            _, evidence = load_tree(s, payload["tree_id"])
    question = payload.get("question") or (tree[tree.root].text if tree is not None else "")
    gcfg = GrowConfig(expansions=1, max_depth=cfg.max_depth, per_side=cfg.per_side, batch=cfg.batch,
                      retries=cfg.retries, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + task_id)
    while done < budget:
        step = min(cfg.batch, budget - done) if tree is not None else 1
        res = grow(question, backend, replace(gcfg, expansions=step, seed=gcfg.seed + done), tree=tree,
                   evidence=tuple(ev for ev in evidence if tree is not None and ev.node in tree.nodes))
        grown = int(res.stats.get("expansions", 0))
        tree = res.tree
        done += grown
        state = {"partial": to_dict(tree), "expansions": done}
        if not _checkpoint(session_scope, task_id, state):  # a finished batch is never redone
            return TAKEN_OVER
        if not grown or res.stop_reason in ("nothing-to-expand", "voi-below-threshold", "max-nodes"):
            break
    with session_scope() as s:
        if not _still_mine(s, task_id):  # the one that took it over saves the tree, not both of us
            return TAKEN_OVER
        tree_id = save_tree(s, tree, (), question=question, model_version=cfg.model if cfg.model else None,
                            meta=dict(tree.meta, loop_run=run_id, loop_task=task_id))
        _, evidence_now = load_tree(s, tree_id)
        from .inference import beliefs

        root = beliefs(tree, evidence_now)[tree.root]
        lo, hi = cfg.uncertain
        keep = lo <= root <= hi
        rnd = int(payload.get("round", 0))
        if kind == "reexpand":
            set_tree(s, payload["tree_id"], status="archived")
        if keep:
            add_loop_tasks(s, run_id, [{"kind": "ask", "key": f"ask:{tree_id}", "tree_id": tree_id, "priority": 1.0,
                                        "payload": {"tree_id": tree_id, "round": rnd, "root_before": root,
                                                    "question": question}}])
        _set_status(s, task_id, "done", {"tree_id": tree_id, "root_belief": root, "uncertain": keep,
                                         "expansions": done, "nodes": len(tree)})
    return f"tree {tree_id}: {len(tree)} nodes, root {root:.2f}" + ("" if keep else " (settled: not asked)")


def _ask(session_scope, run_id, cfg, oracle: Oracle, task_id, payload) -> str:
    from .inference import beliefs
    from .store import add_loop_tasks, load_tree, tree_nodes

    tree_id = payload["tree_id"]
    with session_scope() as s:
        nodes = tree_nodes(s, tree_id)
        infos = [n for n in nodes if n.parent_id is not None and n.n_labels == 0]
        infos.sort(key=lambda n: (-n.voi, n.id))
        queries = [Query(n.text, n.proposition_id, tree_id, n.local_id, n.voi) for n in infos[: cfg.ask_top]]
        if cfg.label_root and oracle.synchronous:
            queries += [Query(n.text, n.proposition_id, tree_id, n.local_id, 0.0) for n in nodes
                        if n.parent_id is None and n.n_labels == 0]
    answers = oracle.answer(queries) if queries else []
    with session_scope() as s:
        stored = record_answers(s, oracle, queries, answers) if oracle.synchronous else 0
        tree, evidence = load_tree(s, tree_id)
        root = beliefs(tree, evidence)[tree.root]
        moved = abs(root - float(payload.get("root_before", root)))
        rnd = int(payload.get("round", 0))
        if not oracle.synchronous and moved < cfg.reexpand_delta:
            # People answer later: look again after a while (the task goes back to the queue).
            _set_status(s, task_id, "pending", {"waiting": True, "root": root})
            return "waiting for people's labels"
        again = moved >= cfg.reexpand_delta and rnd < cfg.max_rounds
        if again:
            add_loop_tasks(s, run_id, [{"kind": "reexpand", "key": f"re:{tree_id}", "tree_id": tree_id,
                                        "priority": 1.5, "payload": {"tree_id": tree_id, "round": rnd + 1,
                                                                     "question": payload.get("question")}}])
        _set_status(s, task_id, "done", {"asked": len(queries), "labels": stored, "root_before":
                                         payload.get("root_before"), "root_after": root, "reexpand": again})
    return f"asked {len(queries)}, {stored} answered, root moved {moved:.2f}" + (" -> re-expand" if again else "")
