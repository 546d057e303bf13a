"""Model versions (which model grew what) and loop runs (so a killed loop resumes)."""

from __future__ import annotations

import json
import socket
import os
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .errors import NotFound, StoreError
from .models import LoopRun, LoopTask, ModelVersion, Setting, utcnow

__all__ = ["register_model_version", "get_model_version", "list_model_versions", "start_loop_run", "get_loop_run",
           "unfinished_loop_run", "heartbeat_loop_run", "finish_loop_run", "add_loop_tasks", "claim_loop_task",
           "finish_loop_task", "loop_task_counts", "update_model_version_meta", "current_default_version",
           "set_default_version", "default_version_name", "DEFAULT_VERSION_KEY", "IMPROVE_STATUS",
           "unfinished_improve_run", "latest_improve_run"]

# The settings key holding the name of the model version that commands use when no --model is given
# (``argtree improve``'s gate moves it; ``current_default_version`` reads it).
DEFAULT_VERSION_KEY = "models.default"
# Status of an ``argtree improve`` run that has rounds left.  Not 'running': ``argtree loop`` resumes the
# newest 'running' row of loop_runs, and an improve run (same table, other task kinds) is not its to resume.
IMPROVE_STATUS = "improving"

LOOP_STATUSES = ("running", "stopped", "done", "failed")
TASK_STATUSES = ("pending", "running", "done", "failed")


def _json(value: Any, field: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"must be JSON-serializable: {err}", field) from None
    return value


def register_model_version(session: Session, name: str, path: str | None = None, base: str | None = None, *,
                           kind: str = "lora", parent: str | None = None, meta: dict | None = None) -> ModelVersion:
    """Record a model (e.g. a fine-tuned adapter at ``path`` on top of ``base``) under a unique name."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or name == "latest":
        raise StoreError(f"must be 1-200 characters and not 'latest', got {name!r:.80}", "name")
    if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
        raise StoreError(f"a model version named {name!r} already exists", "name")
    parent_id = get_model_version(session, parent).id if parent else None
    row = ModelVersion(name=name, path=None if path is None else str(path), base=base, kind=kind,
                       parent_id=parent_id, meta=_json(dict(meta or {}), "meta"))
    session.add(row)
    session.flush()
    return row


def get_model_version(session: Session, name: str = "latest") -> ModelVersion:
    """The version called ``name``; 'latest' is the most recently registered.  NotFound lists the known ones."""
    if name == "latest":
        row = session.scalar(select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
                             .limit(1))
    else:
        row = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
    if row is None:
        known = [n for (n,) in session.execute(select(ModelVersion.name).order_by(ModelVersion.id.desc()).limit(10))]
        raise NotFound(f"no model version {name!r}" + (f"; known: {', '.join(known)}" if known
                                                        else "; none registered yet"), "model")
    return row


def list_model_versions(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


# -- loop runs ------------------------------------------------------------

def start_loop_run(session: Session, config: dict | None = None, *, model_version: str | None = None) -> LoopRun:
    mv = get_model_version(session, model_version).id if model_version else None
    row = LoopRun(config=_json(dict(config or {}), "config"), stats={}, model_version_id=mv)
    session.add(row)
    session.flush()
    return row


def get_loop_run(session: Session, run_id: int) -> LoopRun:
    row = session.get(LoopRun, run_id)
    if row is None:
        raise NotFound(f"no loop run with id {run_id}", "run_id")
    return row


def unfinished_loop_run(session: Session) -> LoopRun | None:
    """The newest run still marked running (a killed loop leaves it so): resume it."""
    return session.scalar(select(LoopRun).where(LoopRun.status == "running").order_by(LoopRun.id.desc()).limit(1))


def heartbeat_loop_run(session: Session, run_id: int, stats: dict | None = None) -> None:
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if stats is not None:
        values["stats"] = _json(dict(stats), "stats")
    session.execute(update(LoopRun).where(LoopRun.id == run_id).values(**values))


def finish_loop_run(session: Session, run_id: int, status: str = "done", stats: dict | None = None) -> None:
    if status not in LOOP_STATUSES[1:]:
        raise StoreError(f"must be one of {', '.join(LOOP_STATUSES[1:])}, got {status!r}", "status")
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "heartbeat_at": utcnow()}
    if stats is not None:
        values["stats"] = _json(dict(stats), "stats")
    session.execute(update(LoopRun).where(LoopRun.id == run_id).values(**values))


def add_loop_tasks(session: Session, run_id: int, tasks: Iterable[dict]) -> int:
    """Add tasks ({'kind', 'key', optional 'tree_id', 'node_id', 'priority', 'payload'}); ones whose
    (kind, key) the run already has are ignored, so re-adding after a restart repeats nothing.
    Returns how many were new."""
    get_loop_run(session, run_id)
    new = 0
    for task in tasks:
        kind, key = task.get("kind"), task.get("key")
        if not isinstance(kind, str) or not isinstance(key, str) or not kind or not key:
            raise StoreError(f"each task needs string 'kind' and 'key', got {task!r:.80}", "tasks")
        exists = session.scalar(select(LoopTask.id).where(LoopTask.run_id == run_id, LoopTask.kind == kind,
                                                          LoopTask.key == key))
        if exists is None:
            session.add(LoopTask(run_id=run_id, kind=kind, key=key, tree_id=task.get("tree_id"),
                                 node_id=task.get("node_id"), priority=float(task.get("priority", 0.0)),
                                 payload=_json(dict(task.get("payload") or {}), "payload")))
            new += 1
    session.flush()
    return new


def claim_loop_task(session: Session, run_id: int, worker: str | None = None, *, kinds: Iterable[str] | None = None,
                    stale_after: float = 600.0) -> LoopTask | None:
    """The highest-priority pending task (or one claimed more than ``stale_after`` seconds ago by a worker
    that died), marked running by ``worker``.  Safe for concurrent workers on PostgreSQL (SKIP LOCKED)."""
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    q = select(LoopTask).where(LoopTask.run_id == run_id,
                               (LoopTask.status == "pending")
                               | ((LoopTask.status == "running") & (LoopTask.claimed_at < stale)))
    if kinds is not None:
        q = q.where(LoopTask.kind.in_(list(kinds)))
    q = q.order_by(LoopTask.priority.desc(), LoopTask.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, key_share=True)
    task = session.scalar(q)
    if task is None:
        return None
    task.status, task.worker, task.claimed_at, task.updated_at = "running", worker, now, now
    task.attempts += 1
    session.flush()
    return task


def finish_loop_task(session: Session, task_id: int, status: str = "done", result: Any = None) -> None:
    if status not in ("done", "failed", "pending"):
        raise StoreError(f"must be done, failed or pending, got {status!r}", "status")
    session.execute(update(LoopTask).where(LoopTask.id == task_id).values(
        status=status, result=_json(result, "result"), updated_at=utcnow()))


def loop_task_counts(session: Session, run_id: int) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(select(LoopTask.status, func.count()).where(LoopTask.run_id == run_id)
                           .group_by(LoopTask.status))
    return {status: int(n) for status, n in rows}


# -- the default model version and improve runs (argtree improve, issue 12) --------------------

def update_model_version_meta(session: Session, name: str, **changes: Any) -> ModelVersion:
    """Merge ``changes`` into the version's meta (e.g. held-out metrics, the gate's decision)."""
    row = get_model_version(session, name)
    meta = dict(row.meta or {})
    meta.update(changes)
    row.meta = _json(meta, "meta")
    session.flush()
    return row


def current_default_version(session: Session) -> ModelVersion | None:
    """The version the gate of ``argtree improve`` made the default, or None when none was (then the
    built-in default, ``argtree.llm.local.default_model()``, stands).  Model resolvers call this for
    "no --model given"."""
    row = session.get(Setting, DEFAULT_VERSION_KEY)
    if row is None or not isinstance(row.value, str):
        return None
    return session.scalar(select(ModelVersion).where(ModelVersion.name == row.value))


def set_default_version(session: Session, name: str) -> ModelVersion:
    """Make the registered version ``name`` the default (NotFound when it is not registered)."""
    mv = get_model_version(session, name)
    row = session.get(Setting, DEFAULT_VERSION_KEY)
    if row is None:
        session.add(Setting(key=DEFAULT_VERSION_KEY, value=mv.name))
    else:
        row.value = mv.name
    session.flush()
    return mv


def unfinished_improve_run(session: Session) -> LoopRun | None:
    """The newest ``argtree improve`` run with rounds left (killed or stopped), or None."""
    run = latest_improve_run(session)
    return run if run is not None and run.status in (IMPROVE_STATUS, "stopped") else None


def latest_improve_run(session: Session) -> LoopRun | None:
    """The newest ``argtree improve`` run that was not abandoned (finished or not), or None."""
    for run in session.scalars(select(LoopRun).where(LoopRun.status != "abandoned").order_by(LoopRun.id.desc())):
        if isinstance(run.config, dict) and run.config.get("kind") == "improve":
            return run
    return None


def default_version_name(url: str | None = None) -> str | None:
    """Name of the gated default version in the store at ``url`` (default: the configured database), or
    None when none is set or the store cannot be read (no database, unmigrated): then the built-in
    default stands.  For model resolvers: "no --model given" means this version when it is set."""
    try:
        from .db import database_url, missing_sqlite_file, session_scope

        url = url or database_url()
        if missing_sqlite_file(url):
            return None  # no database yet: do not create one just to look
        with session_scope(url, readonly=True) as s:
            mv = current_default_version(s)
            # A version without weights (the fake backend's recorded ones) is no model to serve.
            if mv is None or mv.kind == "recorded" or mv.name == "fake":
                return None
            return mv.name
    except Exception:  # noqa: BLE001 - no readable store: the built-in default
        return None


def get_loop_task(session: Session, run_id: int, kind: str, key: str) -> LoopTask | None:
    """The task of ``run_id`` with this kind and key, or None."""
    return session.scalar(select(LoopTask).where(LoopTask.run_id == run_id, LoopTask.kind == kind,
                                                 LoopTask.key == key))


def loop_task_rows(session: Session, run_id: int, kind: str, status: str | None = None) -> list[tuple]:
    """(key, payload, result, status) of every task of ``run_id`` and ``kind`` (only ``status`` if given)."""
    q = select(LoopTask.key, LoopTask.payload, LoopTask.result, LoopTask.status).where(
        LoopTask.run_id == run_id, LoopTask.kind == kind)
    if status is not None:
        q = q.where(LoopTask.status == status)
    return [tuple(r) for r in session.execute(q).all()]


def find_model_version(session: Session, name: str) -> ModelVersion | None:
    """The model version called ``name``, or None (``get_model_version`` raises NotFound instead)."""
    return session.scalar(select(ModelVersion).where(ModelVersion.name == name))
