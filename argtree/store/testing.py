"""Throw-away migrated databases for tests (ours and other components').

    from argtree.store.testing import sqlite_db, postgres_db
    url = sqlite_db(tmp_path)                 # migrated with Alembic to head
    with postgres_db() as url: ...           # a fresh schema of its own, dropped afterwards;
                                              # pytest.skip()s with how-to-enable when unreachable
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from .db import upgrade

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOW_TO = ("PostgreSQL not reachable at {url} ({err}); start it (e.g. `pg_ctlcluster --skip-systemctl-redirect "
          "$(ls /etc/postgresql) main start`) or set ARGTREE_TEST_POSTGRES_URL to a server with trust auth")


def sqlite_db(directory: str | os.PathLike, name: str = "argtree.db") -> str:
    url = f"sqlite:///{Path(directory) / name}"
    upgrade(url)
    return url


def postgres_base_url() -> str:
    return os.environ.get("ARGTREE_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_unreachable() -> str | None:
    """None when the test PostgreSQL answers, else the reason (with how to enable the tests)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = postgres_base_url()
    u = make_url(url)
    try:
        conn = psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                               password=u.password, dbname=u.database or "postgres", connect_timeout=3)
        conn.close()
    except Exception as err:  # noqa: BLE001
        return HOW_TO.format(url=u.render_as_string(hide_password=True), err=str(err).splitlines()[0][:200])
    return None


@contextmanager
def postgres_schema(migrate: bool = True) -> Iterator[str]:
    """A URL whose connections use a new schema (search_path), dropped on exit."""
    import pytest
    from sqlalchemy import create_engine, text

    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)
    base = postgres_base_url()
    schema = f"argtree_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        from .db import _engines

        for key in [k for k in _engines if k[0] == url]:
            _engines.pop(key).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


postgres_db = postgres_schema
