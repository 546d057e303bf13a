"""The `url` fixture of the store tests: each test on a fresh SQLite file and, marked `postgres`, on one
migrated PostgreSQL schema per module, emptied before each test.  Import both names into a test module:
``from store_fixtures import pg_module, url  # noqa: F401``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def pg_module():
    from argtree.store.testing import postgres_schema

    with postgres_schema() as u:
        yield u


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    from argtree.store.testing import dispose, reset_postgres, sqlite_db

    if request.param == "sqlite":
        u = sqlite_db(tmp_path)
        yield u
        dispose(u)
    else:
        u = request.getfixturevalue("pg_module")
        reset_postgres(u)  # one migrated schema for the module, emptied before each test
        yield u


def run(home, *args):
    """``argtree ARGS`` in process with ``ARGTREE_HOME=home`` (no database URL from the environment), as a
    CompletedProcess: returncode, stdout, stderr.  Import it: ``from store_fixtures import run``."""
    import subprocess

    from click.testing import CliRunner

    from argtree.cli import main

    r = CliRunner().invoke(main, list(args), env={"ARGTREE_DATABASE_URL": None, "ARGTREE_HOME": str(home)})
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)
