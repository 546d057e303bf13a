"""Where the database is, how to connect, and the schema-version check.

* URL: ``ARGTREE_DATABASE_URL`` (e.g. ``postgresql+psycopg://user@host/db``), else a
  SQLite file ``argtree.db`` under ``ARGTREE_HOME`` (default: the user data dir).
* SQLite connections run in WAL mode with foreign keys on, ``synchronous=FULL``
  (see SYNCHRONOUS) and a busy timeout; every transaction is ``BEGIN IMMEDIATE`` (one writer at a
  time, no lock-upgrade deadlocks) unless the session is opened read-only, and
  writers queue on a lock file beside the database (``argtree.db.writer-lock``).
* The first session on an engine checks the schema revision against the
  migrations and refuses to run on an unmigrated or newer database
  (``SchemaError``, whose message names the command to run).
"""

from __future__ import annotations

import atexit
import fcntl
import math
import os
import sqlite3
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

__all__ = ["SchemaError", "SettingsError", "check_url", "database_url", "data_home", "make_engine", "get_engine", "open_session",
           "session_scope", "check_schema", "schema_status", "upgrade", "downgrade", "alembic_config",
           "MIGRATIONS_DIR", "redact", "wait_for_checkpoints"]

# Inside the package (argtree/migrations, a symlink to the top-level migrations/ in a checkout, real files in
# a wheel), so a non-editable install finds them.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
BUSY_TIMEOUT_MS = 30_000
# WAL + FULL (the default): every commit is fsynced, so an acknowledged answer survives a power cut or an OS
# crash, as it does on PostgreSQL.  ARGTREE_SQLITE_SYNCHRONOUS=NORMAL trades that for speed: a commit then
# survives the process being killed (SIGKILL, a crash) but an OS crash can roll back the last few
# (cost of FULL: BENCHMARKS.md, "Queue").
SYNCHRONOUS = "NORMAL" if os.environ.get("ARGTREE_SQLITE_SYNCHRONOUS", "").strip().upper() == "NORMAL" else "FULL"


class SchemaError(RuntimeError):
    """The database schema is missing, behind or ahead of this argtree; the message says what to run."""


class SettingsError(SchemaError):
    """ARGTREE_HOME or the database URL is unusable (one line saying which and why).

    A SchemaError, so every command that reports an unusable database reports this too."""


def data_home() -> Path:
    """``argtree.home.argtree_home()`` (the one home-directory function), its error as a SettingsError."""
    from ..home import HomeError, argtree_home

    try:
        return argtree_home()
    except HomeError as err:
        raise SettingsError(str(err)) from None


def _default_url() -> str:
    return f"sqlite:///{data_home() / 'argtree.db'}"


def _is_default(url: str) -> bool:
    try:
        return url == _default_url()
    except SettingsError:
        return False


def database_url() -> str:
    url = os.environ.get("ARGTREE_DATABASE_URL")
    if url:
        check_url(url, "ARGTREE_DATABASE_URL")
        return url
    return _default_url()


def check_url(url: str, where: str = "the database URL"):
    """The parsed URL, or a SettingsError: not a URL, or a database kind SQLAlchemy has no driver for."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        shown = repr(url) if "@" not in url else "(hidden: it may hold a password)"
        raise SettingsError(f"{where}={shown} is not a database URL (expected e.g. sqlite:////path/argtree.db "
                            "or postgresql+psycopg://user@host/db)") from None
    try:
        u.get_dialect()
    except (NoSuchModuleError, ImportError) as err:
        raise SettingsError(f"{where}={redact(url)!r}: no database driver for {u.drivername!r} "
                            f"({str(err).splitlines()[0]}); use sqlite:/// or postgresql+psycopg://") from None
    return u


def missing_sqlite_file(url: str) -> bool:
    """Is ``url`` a SQLite file that does not exist yet?  Lookups (the default model, calibration maps)
    then know the answer is "nothing stored" without creating a database just to look."""
    if not url.startswith("sqlite"):
        return False
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return bool(path) and path != ":memory:" and not os.path.exists(path)


def redact(url: str) -> str:
    """The URL with any password hidden, for messages ('(not a URL)' when it cannot be parsed)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL cannot show a password we could hide
        return "(not a URL)"


_held = threading.local()  # write-lock files this thread holds (path -> count)

# Checkpoints off the commit path (issue 15).  In WAL mode SQLite copies the WAL back into the database
# file (a checkpoint: random writes and, under FULL, an fsync of the database) inside the COMMIT that
# pushes the WAL past ``wal_autocheckpoint`` pages, so that answer waits for it; at 1M nodes one answer
# writes ~1,000 pages (its ~400 propositions' rows and queue-rank index entries), so nearly every answer
# did.  Here a thread per database and process runs the checkpoint (PASSIVE: it never blocks readers or
# writers) after each write transaction commits.  Durability is the same: COMMIT still writes and, under
# FULL, fsyncs the WAL before it returns; a checkpoint only moves committed pages and is crash-safe.
# Connections keep checkpointing themselves past FALLBACK_AUTOCHECKPOINT pages (a checkpointer that
# cannot keep up, a process that forked mid-checkpoint).
FALLBACK_AUTOCHECKPOINT = 4000   # pages (16 MiB at 4 KiB); SQLite's default is 1000
CHECKPOINTER_IDLE_S = 30.0       # an idle checkpointer thread exits; the next commit starts another
CLOSE_WAIT_S = 60.0              # a closing connection waits this long at most for a running checkpoint


class _Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection after write commits (coalesced)."""

    def __init__(self, path: str):
        self.path = path
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._wanted = self._done = 0
        self._thread: threading.Thread | None = None
        self._one_at_a_time = threading.Lock()  # two threads (see _ensure_thread) never checkpoint at once
        self.errors = 0

    def kick(self) -> None:
        """A write transaction committed: checkpoint soon (one run covers every kick before it starts)."""
        with self._cond:
            self._wanted += 1
            self._ensure_thread()
            self._cond.notify_all()

    def _ensure_thread(self) -> None:
        """A live thread to do the work (called holding the condition).  The thread is recorded only once
        it runs: a Ctrl-C that lands in ``start()`` (which waits for the new thread) must not leave a
        thread recorded that never ran, or every later close would wait CLOSE_WAIT_S for it."""
        if self._thread is None or not self._thread.is_alive():
            thread = threading.Thread(target=self._run, name="argtree-sqlite-checkpoint", daemon=True)
            thread.start()
            self._thread = thread

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every commit kicked so far has been checkpointed (False on timeout); commits kicked
        while it waits are not waited for."""
        with self._cond:
            target = self._wanted
            if self._done < target:
                self._ensure_thread()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._wanted > self._done, CHECKPOINTER_IDLE_S):
                    if self._thread is threading.current_thread():
                        self._thread = None
                    return
                target = self._wanted
            try:
                with self._one_at_a_time:
                    con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                    try:
                        con.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")  # fsync the database file as before
                        con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    finally:
                        con.close()
            except Exception:  # noqa: BLE001 - busy or gone: the next commit kicks again; the fallback still runs
                self.errors += 1
            with self._cond:
                self._done = target
                self._cond.notify_all()


_checkpointers: dict[str, _Checkpointer] = {}
_checkpointers_lock = threading.Lock()


def _checkpointer_for(path: str) -> _Checkpointer:
    with _checkpointers_lock:
        cp = _checkpointers.get(path)
        if cp is None:
            cp = _checkpointers[path] = _Checkpointer(path)
        return cp


def _forget_checkpointers_in_child() -> None:  # a forked child has none of its parent's threads or locks
    global _checkpointers_lock
    _checkpointers_lock = threading.Lock()
    for cp in _checkpointers.values():
        cp._reset()


os.register_at_fork(after_in_child=_forget_checkpointers_in_child)


@atexit.register
def _finish_checkpoints() -> None:
    """At exit, let a running checkpoint finish (so the last connection's close can fold the WAL in and
    remove it, as it does without a checkpointer); a process killed outright recovers like any crash."""
    for cp in list(_checkpointers.values()):
        cp.wait(10.0)


def wait_for_checkpoints(url: str, timeout: float | None = None) -> bool:
    """Block until this process's checkpointer for the SQLite ``url`` has checkpointed every write
    committed so far (True at once for PostgreSQL and for databases without one)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database:
        return True
    cp = _checkpointers.get(str(Path(u.database).expanduser().resolve()))
    return True if cp is None else cp.wait(timeout)


class _WriterQueue(sqlite3.Connection):
    """A sqlite3 connection that queues writers on an flock()ed file beside the database.

    SQLite's own busy handler makes waiting writers sleep and retry, which under
    many concurrent writers leaves the lock idle and can starve one past any
    timeout.  A blocking flock hands the lock over at once; the kernel drops it
    when a process dies.  Released after COMMIT/ROLLBACK.
    """

    lock_path: str | None = None
    checkpointer: _Checkpointer | None = None
    _fh = None
    _locked = False

    def acquire_writer(self) -> None:
        if self.lock_path is None or self._locked:
            return
        held = getattr(_held, "paths", None)
        if held is None:
            held = _held.paths = {}
        if held.get(self.lock_path):
            return  # this thread already writes through another connection: waiting here would hang it
        if self._fh is None:
            self._fh = open(self.lock_path, "a+b")
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        self._locked = True
        held[self.lock_path] = held.get(self.lock_path, 0) + 1

    def _release(self) -> None:
        if self._locked:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._locked = False
            _held.paths[self.lock_path] -= 1

    def commit(self) -> None:
        wrote = self._locked
        try:
            super().commit()
        finally:
            self._release()
        if wrote and self.checkpointer is not None:
            self.checkpointer.kick()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        if self.checkpointer is not None and not sys.is_finalizing():
            # A running checkpoint finishes first, so that the last connection's close folds the WAL into
            # the database file and removes it, as without a checkpointer (a closed engine's file is whole:
            # it can be copied).
            self.checkpointer.wait(CLOSE_WAIT_S)
        try:
            super().close()
        finally:
            self._release()
            if self._fh is not None:
                self._fh.close()


def _ln(x):
    """SQLite's ln() where it was built without math functions (NULL for NULL and x <= 0, as there)."""
    return math.log(x) if x is not None and x > 0 else None


def _sqlite_setup(engine: Engine, lock_path: str | None, path: str | None = None) -> None:
    checkpointer = _checkpointer_for(path) if path is not None and lock_path is not None else None

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        if isinstance(dbapi_conn, _WriterQueue):
            dbapi_conn.lock_path = lock_path
            dbapi_conn.checkpointer = checkpointer
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -65536")      # 64 MiB of pages per connection
        cur.execute("PRAGMA mmap_size = 1073741824")   # read through a memory map: no syscall per page
        try:  # the queue's bucket (compute.bucket_sql) needs ln(): built into SQLite with math functions
            cur.execute("SELECT ln(1.0)")
        except sqlite3.OperationalError:
            dbapi_conn.create_function("ln", 1, _ln, deterministic=True)
        if checkpointer is not None and isinstance(dbapi_conn, _WriterQueue):
            cur.execute(f"PRAGMA wal_autocheckpoint = {FALLBACK_AUTOCHECKPOINT}")  # the checkpointer does it
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        if conn.get_execution_options().get("argtree_readonly", False):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, _WriterQueue):
            dbapi_conn.acquire_writer()
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private(path: Path) -> None:
    """Create a new SQLite file readable and writable by its owner only (0600: it holds password hashes).

    SQLite gives its -wal and -shm files the database file's mode.  An existing file is left as it is."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # there already, or not creatable: SQLite opens it (or says why it cannot)
        pass


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """A new engine for ``url`` (default: ``database_url()``), with the SQLite settings above."""
    url = url or database_url()
    u = check_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database
        lock_path = path = None
        if db and db != ":memory:" and not db.startswith("file:"):
            path = Path(db).expanduser()
            if not path.parent.is_dir():
                # Only the default home is ours to create; a directory named in a URL must exist.
                if path.parent.exists() or not _is_default(url):
                    why = "is not a directory" if path.parent.exists() else "does not exist"
                    raise SettingsError(f"cannot use the database {redact(url)}: {str(path.parent)!r} {why}")
                path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = f"{path}.writer-lock"
            _create_private(path)
        args = kwargs.setdefault("connect_args", {})
        args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
        args.setdefault("factory", _WriterQueue)
        engine = create_engine(url, **kwargs)
        _sqlite_setup(engine, lock_path, str(path.resolve()) if path is not None else None)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    if u.get_backend_name() == "postgresql":
        @event.listens_for(engine, "connect")
        def _no_jit(dbapi_conn, _record):
            # JIT compiling took tens of ms per statement once the planner's estimates grew: these are
            # short indexed statements, never worth compiling.
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            dbapi_conn.execute("SET jit = off")
            dbapi_conn.autocommit = autocommit
    return engine


_engines: dict[tuple[str, int], Engine] = {}
_checked: set[tuple[str, int]] = set()
_lock = threading.Lock()


def get_engine(url: str | None = None, *, check: bool = True) -> Engine:
    """The process-wide engine for ``url`` (one per process: forked children get their own)."""
    url = url or database_url()
    key = (url, os.getpid())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url)
    if check and key not in _checked:
        check_schema(engine)
        _checked.add(key)
    return engine


def open_session(url: str | None = None, *, readonly: bool = False) -> Session:
    """A new Session on the checked engine; the caller commits and closes it.

    Objects stay usable after commit (``expire_on_commit=False``).
    """
    engine = get_engine(url)
    if readonly:
        engine = engine.execution_options(argtree_readonly=True)
    return Session(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None, *, readonly: bool = False) -> Iterator[Session]:
    """``with session_scope() as s: ...``: commit on success, roll back on any exception."""
    session = open_session(url, readonly=readonly)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# -- migrations -----------------------------------------------------------

def alembic_config(url: str | None = None):
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").exists():
        raise SchemaError(f"the Alembic migrations are missing ({MIGRATIONS_DIR}); this argtree install is "
                          "incomplete: reinstall it")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


@lru_cache(maxsize=1)
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def schema_status(engine: Engine) -> tuple[str | None, str, bool]:
    """(current revision or None, head revision, whether current is a known revision)."""
    from alembic.runtime.migration import MigrationContext

    script = _script()
    head = script.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
    known = current is None or any(rev.revision == current for rev in script.walk_revisions())
    return current, head, known


def check_schema(engine: Engine) -> None:
    where = engine.url.render_as_string(hide_password=True)
    try:
        current, head, known = schema_status(engine)
    except SchemaError:
        raise
    except Exception as err:  # noqa: BLE001 - a down server or a bad URL: say which, briefly
        raise SchemaError(f"cannot open the database {where}: {str(err).splitlines()[0]}") from None
    if current is None:
        raise SchemaError(f"the database {where} has no argtree schema yet; run `argtree db upgrade`")
    if not known:
        raise SchemaError(f"the database {where} has schema revision {current}, newer than this argtree knows "
                          f"(head {head}); upgrade argtree, or run `argtree db downgrade {head}` with the newer one")
    if current != head:
        raise SchemaError(f"the database {where} is at schema revision {current}, behind {head}; "
                          "run `argtree db upgrade`")


def _run_alembic(url: str | None, action: str, revision: str) -> None:
    from alembic import command

    url = url or database_url()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch ALTERs copy tables; foreign keys must be off (outside any transaction) meanwhile.
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
            conn.commit()
            if sqlite:
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                conn.rollback()
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")
                if bad:
                    raise SchemaError(f"migration left rows with broken foreign keys: {bad[:5]}")
    finally:
        engine.dispose()
    with _lock:
        _checked.difference_update({k for k in _checked if k[0] == url})


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating the SQLite file if needed)."""
    _run_alembic(url, "upgrade", revision)


def downgrade(url: str | None = None, revision: str = "-1") -> None:
    _run_alembic(url, "downgrade", revision)
