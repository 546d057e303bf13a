"""The autonomous loop's storage: every query ``argtree.loop`` needs, behind one object it is handed.

``LoopStore(url)`` is what ``argtree loop`` passes to ``argtree.loop.run_worker`` and
``start_or_resume``; the loop itself holds no SQL and imports nothing from ``argtree.store``.  Each
method is one transaction (``session_scope``), so what the loop's docstring promises holds: a finished
expansion batch is committed before the next starts, and a task's follow-ups are added in the
transaction that marks it done.

Loop runs are the ``loop_runs`` rows whose config has a ``"loop"`` key (``argtree improve`` keeps its
own runs in the same table under ``"kind": "improve"``; they are never a loop's to resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy import func, select, update

from .db import session_scope
from .models import Label, LoopRun, LoopTask, Node, Tree, utcnow
from .registry import add_loop_tasks, claim_loop_task, finish_loop_run, get_loop_run, heartbeat_loop_run, \
    start_loop_run
from .trees import get_tree, load_tree, save_tree, set_tree, tree_nodes

__all__ = ["LoopStore", "ClaimedTask", "RunInfo", "SavedTree", "run_stats"]


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    result: Any
    tree_id: int | None


@dataclass(frozen=True)
class RunInfo:
    id: int
    status: str                 # running | stopped | done | failed
    config: dict[str, Any]      # as stored: {"loop": LoopConfig.to_json(), "oracle": ..., ...}
    stats: dict[str, Any]
    pending: int                # tasks not yet done (pending or running)


@dataclass(frozen=True)
class SavedTree:
    """What the loop's ``decide`` callbacks see of a stored tree, read in the deciding transaction."""

    tree_id: int
    tree: Any                   # the stored ArgumentTree
    evidence: tuple             # the stored tree's evidence now (labels the propositions already had)
    root_belief: float | None   # the stored tree's root belief (``trees.root_belief``)


def _is_loop_run(run: LoopRun) -> bool:
    return isinstance(run.config, dict) and isinstance(run.config.get("loop"), dict)


def _run_trees(session, run_id: int) -> list[int]:
    out = []
    for (result,) in session.execute(select(LoopTask.result).where(
            LoopTask.run_id == run_id, LoopTask.kind.in_(["question", "reexpand"]), LoopTask.status == "done")):
        if isinstance(result, dict) and isinstance(result.get("tree_id"), int):
            out.append(result["tree_id"])
    return out


def run_stats(session, run_id: int) -> dict[str, Any]:
    """Questions, trees, nodes, labels and mean root uncertainty of a run, for progress lines."""
    tasks = session.execute(select(LoopTask.kind, LoopTask.status, func.count()).where(LoopTask.run_id == run_id)
                            .group_by(LoopTask.kind, LoopTask.status)).all()
    by: dict[str, dict[str, int]] = {}
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


class LoopStore:
    """The loop's storage on one database (``url``; default ARGTREE_DATABASE_URL or the local file)."""

    def __init__(self, url: str | None = None):
        self.url = url

    def scope(self, readonly: bool = False):
        return session_scope(self.url, readonly=readonly)

    # -- runs -----------------------------------------------------------------------------
    def _info(self, s, run: LoopRun) -> RunInfo:
        pending = s.scalar(select(func.count()).select_from(LoopTask).where(
            LoopTask.run_id == run.id, LoopTask.status.in_(["pending", "running"]))) or 0
        return RunInfo(run.id, run.status, dict(run.config or {}), dict(run.stats or {}), int(pending))

    def latest_run(self) -> RunInfo | None:
        """The newest loop run, whatever its status (None when there has been none)."""
        with self.scope(readonly=True) as s:
            for run in s.scalars(select(LoopRun).order_by(LoopRun.id.desc())):
                if _is_loop_run(run):
                    return self._info(s, run)
        return None

    def loop_runs(self) -> list[RunInfo]:
        """Every loop run, newest first."""
        with self.scope(readonly=True) as s:
            return [self._info(s, run) for run in s.scalars(select(LoopRun).order_by(LoopRun.id.desc()))
                    if _is_loop_run(run)]

    def run(self, run_id: int) -> RunInfo:
        with self.scope(readonly=True) as s:
            return self._info(s, get_loop_run(s, run_id))

    def start_run(self, config: dict[str, Any], tasks: Sequence[dict[str, Any]]) -> int:
        """A new run with its first tasks, in one transaction (a failure leaves nothing behind)."""
        with self.scope() as s:
            run = start_loop_run(s, config)
            add_loop_tasks(s, run.id, tasks)
            return run.id

    def reopen_run(self, run_id: int, is_dead: Callable[[str], bool]) -> int:
        """Mark a stopped or killed run running again; tasks held by dead workers go back to pending
        (checkpoints kept).  Returns how many were released."""
        with self.scope() as s:
            s.execute(update(LoopRun).where(LoopRun.id == run_id).values(status="running", finished_at=None,
                                                                         heartbeat_at=utcnow()))
            return self._release(s, run_id, is_dead)

    def finish_run(self, run_id: int, status: str) -> dict[str, Any]:
        with self.scope() as s:
            stats = run_stats(s, run_id)
            finish_loop_run(s, run_id, status, stats)
            return stats

    def heartbeat(self, run_id: int) -> dict[str, Any]:
        with self.scope() as s:
            stats = run_stats(s, run_id)
            heartbeat_loop_run(s, run_id, stats)
            return stats

    def stats(self, run_id: int) -> dict[str, Any]:
        with self.scope(readonly=True) as s:
            return run_stats(s, run_id)

    # -- tasks ----------------------------------------------------------------------------
    def claim(self, run_id: int, worker: str) -> ClaimedTask | None:
        with self.scope() as s:
            task = claim_loop_task(s, run_id, worker)
            if task is None:
                return None
            return ClaimedTask(task.id, task.kind, task.key, dict(task.payload or {}), task.result, task.tree_id)

    @staticmethod
    def _release(s, run_id: int, is_dead: Callable[[str], bool]) -> int:
        n = 0
        for task in s.scalars(select(LoopTask).where(LoopTask.run_id == run_id, LoopTask.status == "running")):
            if is_dead(task.worker or ""):
                task.status = "pending"
                n += 1
        s.flush()
        return n

    def settle_idle(self, run_id: int, worker: str, is_dead: Callable[[str], bool]) -> tuple[bool, bool]:
        """For a worker whose claim found nothing: release dead workers' tasks, then (done, pending).
        ``done``: no task is pending and none is running elsewhere, so the run is marked done, checked in
        this one transaction (a task that ends adds its follow-ups in the transaction marking it done)."""
        with self.scope() as s:
            self._release(s, run_id, is_dead)
            pending = s.scalar(select(LoopTask.id).where(LoopTask.run_id == run_id, LoopTask.status == "pending")
                               .limit(1)) is not None
            others = bool(s.scalar(select(func.count()).select_from(LoopTask).where(
                LoopTask.run_id == run_id, LoopTask.status == "running", LoopTask.worker != worker)))
            if not pending and not others:
                finish_loop_run(s, run_id, "done", run_stats(s, run_id))
                return True, False
            return False, pending

    def set_task(self, task_id: int, status: str, result: Any = ...) -> None:
        with self.scope() as s:
            self._set(s, task_id, status, result)

    @staticmethod
    def _set(s, task_id: int, status: str, result: Any = ...) -> None:
        task = s.get(LoopTask, task_id)
        task.status = status
        if result is not ...:
            task.result = result
        s.flush()

    def checkpoint(self, task_id: int, worker: str, result: dict[str, Any]) -> bool:
        """Store a finished batch in the task and renew the claim; False when the task is no longer
        ``worker``'s (it was taken over)."""
        with self.scope() as s:
            now = utcnow()
            return s.execute(update(LoopTask).where(LoopTask.id == task_id, LoopTask.worker == worker,
                                                    LoopTask.status == "running")
                             .values(result=result, claimed_at=now, updated_at=now)).rowcount == 1

    @staticmethod
    def _still_mine(s, task_id: int, worker: str) -> bool:
        """Whether ``worker`` still holds the task, locking its row until the transaction ends (PostgreSQL),
        so no other worker can take it over between this check and the commit of its result."""
        return s.scalar(select(LoopTask.id).where(LoopTask.id == task_id, LoopTask.worker == worker,
                                                  LoopTask.status == "running").with_for_update()) is not None

    def add_questions(self, run_id: int, task_id: int, tasks: Sequence[dict[str, Any]], max_questions: int,
                      result: Callable[[int, int], dict[str, Any]]) -> int:
        """Add question tasks up to ``max_questions`` in the run and mark the proposing task done with
        ``result(room, new)``; one proposer at a time per run (PostgreSQL row lock; SQLite has one writer),
        so two workers counting at once cannot both see room.  Returns how many were new."""
        with self.scope() as s:
            s.execute(select(LoopRun.id).where(LoopRun.id == run_id).with_for_update(key_share=True))
            have = s.scalar(select(func.count()).select_from(LoopTask).where(LoopTask.run_id == run_id,
                                                                             LoopTask.kind == "question")) or 0
            room = max(max_questions - have, 0)
            new = add_loop_tasks(s, run_id, list(tasks)[:room])
            self._set(s, task_id, "done", result(room, new))
            return new

    # -- trees ----------------------------------------------------------------------------
    def load_tree(self, tree_id: int):
        with self.scope(readonly=True) as s:
            return load_tree(s, tree_id)

    def tree_nodes(self, tree_id: int):
        with self.scope(readonly=True) as s:
            return tree_nodes(s, tree_id)

    def save_grown(self, run_id: int, task_id: int, worker: str, tree, *, question: str, model_version: str | None,
                   meta: dict[str, Any], archive: int | None,
                   decide: Callable[[SavedTree], tuple[list[dict[str, Any]], dict[str, Any]]],
                   evidence: Sequence = ()) -> dict | None:
        """Save a grown tree (with ``evidence``, e.g. the model's) for a task this worker still holds, in one
        transaction: the tree, the old
        version archived (``archive``), the follow-up tasks and the task's result from ``decide``.
        None when the task was taken over (the worker that took it saves the tree, not both)."""
        with self.scope() as s:
            if not self._still_mine(s, task_id, worker):
                return None
            tree_id = save_tree(s, tree, tuple(evidence), question=question, model_version=model_version, meta=meta)
            stored, evidence = load_tree(s, tree_id)
            follow, result = decide(SavedTree(tree_id, stored, tuple(evidence), get_tree(s, tree_id).root_belief))
            if archive is not None:
                set_tree(s, archive, status="archived")
            add_loop_tasks(s, run_id, follow)
            self._set(s, task_id, "done", result)
            return result

    def finish_ask(self, run_id: int, task_id: int, tree_id: int, oracle, queries, answers,
                   decide: Callable[[SavedTree, int], tuple[str, Any, list[dict[str, Any]]]]) -> None:
        """Store a synchronous oracle's answers as labels and close (or put back) the ``ask`` task, in one
        transaction: ``decide(tree now, labels stored)`` returns (status, result, follow-up tasks)."""
        from .oracles import record_answers

        with self.scope() as s:
            stored = record_answers(s, oracle, queries, answers) if oracle.synchronous else 0
            tree, evidence = load_tree(s, tree_id)
            status, result, follow = decide(SavedTree(tree_id, tree, tuple(evidence), get_tree(s, tree_id).root_belief),
                                            stored)
            add_loop_tasks(s, run_id, follow)
            self._set(s, task_id, status, result)


    # -- calibration of the model's credences (DESIGN.md, Calibration) --------------------------------
    def calibration(self, model_version: str):
        """The maps in use for ``model_version``: the newest fit stored, else the shipped one, else identity."""
        from ..model_evidence import shipped_calibration
        from .calibrations import latest_calibration

        with self.scope(readonly=True) as s:
            found = latest_calibration(s, model_version)
        return found if found is not None else shipped_calibration(model_version)[0]

    def refit_calibration(self, model_version: str, min_new: int = 20) -> dict[str, Any] | None:
        """Refit the premise map from the (credence, answer) pairs the queue holds once ``min_new`` more
        have arrived since the last fit; returns what was fitted, or None (too few, or one class only)."""
        from ..calibration import CalibrationError, fit
        from .calibrations import calibration_history, credence_pairs, save_calibration

        with self.scope() as s:
            cred, truth = credence_pairs(s, model_version)
            fits = [c for c in calibration_history(s, model_version) if c["kind"] == "premise"
                    and c["meta"].get("source") == "queue"]
            last = fits[-1]["n"] if fits else 0
            if len(cred) < last + min_new:
                return None
            try:
                cmap = fit(cred, truth)
            except CalibrationError:
                return None
            save_calibration(s, model_version, "premise", cmap, {"source": "queue", "pairs": len(cred)})
            return cmap.to_dict()
