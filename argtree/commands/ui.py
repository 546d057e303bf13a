"""``argtree ui``: start the oracle's web app (Streamlit) on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import InputError



def _app_path() -> Path:
    """The installed ``oracle_ui`` package's app.py (a package of the wheel, not a path into a checkout)."""
    import importlib.util

    spec = importlib.util.find_spec("oracle_ui")  # locates the package without importing it (no streamlit)
    if spec is None or not spec.submodule_search_locations:
        return Path(__file__).resolve().parents[2] / "oracle_ui" / "app.py"
    return Path(list(spec.submodule_search_locations)[0]) / "app.py"


APP = _app_path()


def streamlit_command(port: int, host: str, app: Path = APP) -> list[str]:
    """The ``streamlit run`` command line: headless, no telemetry, no tracebacks shown to users.

    ``runner.postScriptGC`` off: a full ``gc.collect(2)`` after every rerun was most of the
    server's CPU per answer (the process holds SQLAlchemy, Altair, pandas); Python's own
    generational collector still runs.
    """
    return [sys.executable, "-m", "streamlit", "run", str(app), "--runner.postScriptGC", "false",
            "--server.port", str(port), "--server.address", host, "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
            "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none", "--theme.base", "light"]


@click.command()
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to listen on.")
@click.option("--host", "-H", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default=None,
              help="The model that elicits a premise's numbers when an annotator asks it to on the Trees page "
                   "(default ARGTREE_UI_BACKEND, else local: the bundled model; loaded on first use).")
@click.option("--model", default=None, help="With --backend: the model (default ARGTREE_UI_MODEL).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="openai backend: seconds per request before it is retried (default 120).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="openai backend: requests in flight at once (default 8).")
def ui(port: int, host: str, database: str | None, backend: str | None, model: str | None,
       timeout: float | None, concurrency: int | None) -> None:
    """Start the oracle's web app: log in, answer the highest-VoI questions, browse trees.

    Accounts come from `argtree users add NAME [--admin]`.  The database must be
    migrated (`argtree db upgrade`); if it is down, the app says so on the page.
    Stop it with Ctrl+C.
    """
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise InputError("the web app needs the 'ui' extra: pip install 'argtree[ui]'") from None
    if not APP.exists():
        raise InputError(f"the app file {APP} is missing: this argtree install is incomplete, reinstall it")
    env = dict(os.environ)
    if database:
        env["ARGTREE_DATABASE_URL"] = database
    if backend:
        env["ARGTREE_UI_BACKEND"] = backend
    if model:
        env["ARGTREE_UI_MODEL"] = model
    if (timeout is not None or concurrency is not None) and (backend or env.get("ARGTREE_UI_BACKEND")) != "openai":
        raise InputError("--timeout and --concurrency apply to the openai backend: add --backend openai")
    if timeout is not None:
        env["ARGTREE_UI_TIMEOUT"] = str(timeout)
    if concurrency is not None:
        env["ARGTREE_UI_CONCURRENCY"] = str(concurrency)
    from ..store.db import SchemaError, check_schema, make_engine, redact

    url = env.get("ARGTREE_DATABASE_URL")
    engine = make_engine(url)
    try:
        check_schema(engine)
    except SchemaError as err:
        click.echo(f"argtree: warning: {err}", err=True)
    finally:
        engine.dispose()
    shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
    click.echo(f"argtree oracle on http://{shown}:{port}  (database {redact(url or _default_url())})", err=True)
    cmd = streamlit_command(port, host)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the Streamlit server (no child process): Ctrl+C and SIGTERM reach it directly.
    os.execve(cmd[0], cmd, env)


def _default_url() -> str:
    from ..store.db import database_url

    return database_url()
