"""SQLite runs with synchronous=FULL unless ARGTREE_SQLITE_SYNCHRONOUS=NORMAL asks for speed over surviving a
power cut (the level is read when argtree.store.db is imported, so each case is a fresh process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy")

PROBE = """
import sys
from sqlalchemy import text
from argtree.store import session_scope
from argtree.store.testing import sqlite_db
url = sqlite_db(sys.argv[1])
with session_scope(url) as s:
    print({0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[s.execute(text("PRAGMA synchronous")).scalar()])
"""


@pytest.mark.parametrize("setting, level", [(None, "FULL"), ("NORMAL", "NORMAL"), ("normal", "NORMAL"),
                                            ("FULL", "FULL"), ("OFF", "FULL")])
def test_synchronous_level(tmp_path, setting, level):
    env = {k: v for k, v in os.environ.items() if k != "ARGTREE_SQLITE_SYNCHRONOUS"}
    if setting is not None:
        env["ARGTREE_SQLITE_SYNCHRONOUS"] = setting  # anything but NORMAL keeps FULL (never weaker by accident)
    r = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == level
