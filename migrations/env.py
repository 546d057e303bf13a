"""Alembic environment for argtree (SQLite in batch mode, and PostgreSQL).

Run through ``argtree db upgrade`` (which passes its connection in
``config.attributes["connection"]`` with SQLite foreign keys off) or plain
``alembic`` from the repository root (URL from ARGTREE_DATABASE_URL/ARGTREE_HOME).
"""

from alembic import context

from argtree.store.db import database_url, make_engine
from argtree.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kw) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kw)


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or database_url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"),
               dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
