"""SQLite checkpoints run off the commit path (argtree.store.db, issue 15): a thread per database and
process moves the WAL into the database file after write commits; commits stay fsynced (FULL)."""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
from sqlalchemy import text  # noqa: E402

from argtree.store import add_annotator, session_scope  # noqa: E402
from argtree.store.db import FALLBACK_AUTOCHECKPOINT, SYNCHRONOUS, wait_for_checkpoints  # noqa: E402
from argtree.store.testing import dispose, fast_password_hashing, sqlite_db  # noqa: E402

fast_password_hashing()


def wal_index(path) -> tuple[int, int]:
    """(frames in the WAL, frames already copied into the database), from the WAL-index header in the
    -shm file (https://www.sqlite.org/walformat.html: mxFrame at byte 16, nBackfill at byte 96, native
    byte order), read without taking part in any checkpoint."""
    with open(f"{path}-shm", "rb") as f:
        head = f.read(100)
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def test_commits_leave_the_checkpoint_to_the_checkpointer(tmp_path):
    url = sqlite_db(tmp_path)
    path = str(tmp_path / "argtree.db")
    with session_scope(url) as s:
        assert s.execute(text("PRAGMA wal_autocheckpoint")).scalar() == FALLBACK_AUTOCHECKPOINT
        assert s.execute(text("PRAGMA synchronous")).scalar() == {"FULL": 2, "NORMAL": 1}[SYNCHRONOUS]
    for i in range(20):
        with session_scope(url) as s:
            add_annotator(s, f"cp{i}", "password123")
    assert wait_for_checkpoints(url, timeout=60)
    # Every committed frame was copied by the checkpointer; the commits themselves copied none (their own
    # autocheckpoint only starts at FALLBACK_AUTOCHECKPOINT pages, far above these few).
    frames, copied = wal_index(path)
    assert frames > 0 and copied == frames
    with session_scope(url, readonly=True) as s:
        assert s.execute(text("SELECT count(*) FROM annotators WHERE name LIKE 'cp%'")).scalar() == 20
        assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    dispose(url)


def test_a_forked_child_checkpoints_its_own_writes(tmp_path):
    url = sqlite_db(tmp_path)
    with session_scope(url) as s:
        add_annotator(s, "parent", "password123")
    assert wait_for_checkpoints(url, timeout=60)
    dispose(url)
    pid = os.fork()
    if pid == 0:  # the child: its parent's checkpointer thread did not come along
        code = 1
        try:
            with session_scope(url) as s:
                add_annotator(s, "child", "password123")
            code = 0 if wait_for_checkpoints(url, timeout=60) else 2
            dispose(url)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with session_scope(url, readonly=True) as s:
        assert s.execute(text("SELECT count(*) FROM annotators")).scalar() >= 2
    dispose(url)


EXIT_AFTER_WRITES = r"""
import sys
from argtree.store import add_annotator, session_scope
from argtree.store.testing import dispose, fast_password_hashing
fast_password_hashing()
url = sys.argv[1]
for i in range(10):
    with session_scope(url) as s:
        add_annotator(s, f"exit{i}", "password123")
dispose(url)
"""


def test_a_clean_exit_folds_the_wal_in_and_removes_it(tmp_path):
    url = sqlite_db(tmp_path)
    path = tmp_path / "argtree.db"
    r = subprocess.run([sys.executable, "-c", EXIT_AFTER_WRITES, url], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "argtree.db-wal").exists()  # as without a checkpointer: nothing left behind
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM annotators WHERE name LIKE 'exit%'").fetchone()[0] == 10
    finally:
        con.close()


def test_a_recorded_thread_that_never_ran_does_not_stall_the_checkpoints(tmp_path):
    """A Ctrl-C inside Thread.start() once left a thread recorded that never ran: every later wait (each
    connection's close) then sat out its whole timeout.  Now a dead thread is replaced."""
    import threading

    from argtree.store.db import _checkpointers

    url = sqlite_db(tmp_path)
    with session_scope(url) as s:
        add_annotator(s, "alice", "password123")
    assert wait_for_checkpoints(url, 60)
    cp = _checkpointers[str((tmp_path / "argtree.db").resolve())]
    with cp._cond:
        cp._thread = threading.Thread(target=lambda: None)  # recorded, never started
    with session_scope(url) as s:  # a write commit kicks the checkpointer
        add_annotator(s, "bob", "password123")
    assert cp._thread.is_alive() or cp._done == cp._wanted  # a real thread took the work over
    assert wait_for_checkpoints(url, 60)
    frames, copied = wal_index(tmp_path / "argtree.db")
    assert copied == frames  # bob's commit is in the database file
    dispose(url)
