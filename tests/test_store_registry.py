"""Accounts, model versions and loop runs (SQLite; the queue tests cover PostgreSQL)."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store  # noqa: E402,F401
from argtree.store import (NotFound, StoreError, add_annotator, add_loop_tasks, claim_loop_task,  # noqa: E402
                           finish_loop_run, finish_loop_task, get_model_version, loop_task_counts,
                           register_model_version, session_scope, set_annotator, start_loop_run,
                           unfinished_loop_run, verify_password)
from argtree.store.testing import dispose, fast_password_hashing, sqlite_db  # noqa: E402

fast_password_hashing()


@pytest.fixture
def url(tmp_path):
    u = sqlite_db(tmp_path)
    yield u
    dispose(u)


def test_accounts(url):
    with session_scope(url) as s:
        a = add_annotator(s, "alice", "correct horse", admin=True)
        assert a.is_admin and a.password_hash.startswith("$argon2id$") and "correct" not in a.password_hash
        assert verify_password(s, "alice", "correct horse").id == a.id
        assert verify_password(s, "alice", "wrong horse") is None
        assert verify_password(s, "nobody", "correct horse") is None
        with pytest.raises(StoreError, match="already exists"):
            add_annotator(s, "alice", "another pw")
        with pytest.raises(StoreError, match="reliability"):
            add_annotator(s, "bob", "password123", reliability=1.0)
        set_annotator(s, "alice", active=False)
        assert verify_password(s, "alice", "correct horse") is None


def test_model_versions(url):
    with session_scope(url) as s:
        with pytest.raises(NotFound, match="none registered yet"):
            get_model_version(s, "latest")
        register_model_version(s, "base", None, "SmolLM2-135M", kind="base")
        register_model_version(s, "lora-1", "/models/lora-1", "SmolLM2-135M", parent="base", meta={"steps": 10})
        assert get_model_version(s, "latest").name == "lora-1"
        assert get_model_version(s, "base").kind == "base"
        with pytest.raises(NotFound, match="known: lora-1, base"):
            get_model_version(s, "nope")
        with pytest.raises(StoreError, match="already exists"):
            register_model_version(s, "base")


def test_loop_run_resumes_without_repeating(url):
    with session_scope(url) as s:
        run = start_loop_run(s, {"topics": ["x"]}).id
        assert add_loop_tasks(s, run, [{"kind": "expand", "key": f"node:{i}", "priority": i} for i in range(3)]) == 3
        task = claim_loop_task(s, run, "w1")
        assert task.key == "node:2" and task.status == "running"
        finish_loop_task(s, task.id, "done", {"children": 3})
        claim_loop_task(s, run, "w1")  # claimed, then the worker is killed
    with session_scope(url) as s:  # a restart re-adds its plan: nothing is duplicated
        assert unfinished_loop_run(s).id == run
        assert add_loop_tasks(s, run, [{"kind": "expand", "key": f"node:{i}"} for i in range(3)]) == 0
        assert claim_loop_task(s, run, "w2").key == "node:0"
        assert claim_loop_task(s, run, "w2") is None                       # node:1 is held by w1 ...
        stale = claim_loop_task(s, run, "w2", stale_after=0)               # ... until it is stale
        assert stale.key == "node:1" and stale.attempts == 2
        assert loop_task_counts(s, run) == {"done": 1, "running": 2}
        finish_loop_run(s, run, "stopped")
        assert unfinished_loop_run(s) is None
