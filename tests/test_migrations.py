"""Alembic migrations: up/down/up on SQLite and PostgreSQL, models == migrated schema, version checks."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store  # noqa: E402,F401
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from sqlalchemy import inspect, text  # noqa: E402

from argtree.io import load  # noqa: E402
from argtree.store import SchemaError, downgrade, load_tree, open_session, save_tree, session_scope, upgrade  # noqa
from argtree.store.db import get_engine, make_engine, schema_status  # noqa: E402
from argtree.store.models import Base  # noqa: E402
from argtree.store.testing import dispose, postgres_schema  # noqa: E402

TABLES = {t.name for t in Base.metadata.sorted_tables}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        u = f"sqlite:///{tmp_path / 'm.db'}"
        yield u
        dispose(u)
    else:
        with postgres_schema(migrate=False) as u:
            yield u


def tables(url):
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def diff(url):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()


def test_up_down_up_and_no_autogenerate_diff(empty_url):
    upgrade(empty_url)
    assert tables(empty_url) == TABLES
    assert diff(empty_url) == []
    downgrade(empty_url, "0001")
    assert "leases" not in tables(empty_url) and "propositions" in tables(empty_url)
    downgrade(empty_url, "base")
    assert tables(empty_url) == set()
    upgrade(empty_url)
    assert tables(empty_url) == TABLES
    assert diff(empty_url) == []


def test_data_survives_a_batch_downgrade_and_upgrade(empty_url):
    """0002 adds a column to propositions (a table copy on SQLite): nodes and labels must survive it."""
    upgrade(empty_url)
    tree, evidence = load("argtree/examples/remote_work.json")
    with session_scope(empty_url) as s:
        tid = save_tree(s, tree, evidence)
    dispose(empty_url)
    downgrade(empty_url, "0001")
    upgrade(empty_url)
    with session_scope(empty_url) as s:
        tree2, ev2 = load_tree(s, tid)
    assert list(tree2.nodes) == list(tree.nodes) and len(ev2) == len(evidence)
    engine = make_engine(empty_url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        # queue_rank is rebuilt from forest_voi by the upgrade, and every proposition has its queue row
        assert conn.execute(text("SELECT count(*) FROM queue_entries WHERE queue_rank IS NOT NULL")).scalar() > 0
        assert conn.execute(text("SELECT count(*) FROM propositions p WHERE NOT EXISTS "
                                 "(SELECT 1 FROM queue_entries q WHERE q.proposition_id = p.id)")).scalar() == 0
    engine.dispose()


def test_app_refuses_unmigrated_old_and_newer_schemas(empty_url):
    with pytest.raises(SchemaError, match="run `argtree db upgrade`"):
        open_session(empty_url)
    upgrade(empty_url, "0001")
    with pytest.raises(SchemaError, match=r"behind \d{4}; run `argtree db upgrade`"):
        open_session(empty_url)
    upgrade(empty_url)
    open_session(empty_url).close()
    engine = make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    dispose(empty_url)
    with pytest.raises(SchemaError, match="9999, newer than this argtree knows"):
        open_session(empty_url)
    versions = Path(__file__).resolve().parents[1] / "migrations" / "versions"
    head = max(f.name[:4] for f in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert schema_status(get_engine(empty_url, check=False))[:2] == ("9999", head)


def test_sqlite_connection_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    with open_session(url) as s:
        conn = s.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    dispose(url)


def test_unreachable_server_is_one_clear_line():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(SchemaError, match=r"^cannot open the database postgresql\+psycopg://nobody@127.0.0.1:1/none"):
        open_session(url)


def test_postgres_skip_reason_says_how_to_enable(monkeypatch):
    from argtree.store.testing import postgres_unreachable

    monkeypatch.setenv("ARGTREE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    reason = postgres_unreachable()
    assert "127.0.0.1:1" in reason and "pg_ctlcluster" in reason and "ARGTREE_TEST_POSTGRES_URL" in reason
