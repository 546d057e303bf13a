"""Exit statuses of the ``argtree`` command, and the one-line failure they come with.

========  ==========================================================================================
status    meaning
========  ==========================================================================================
0         done
2         bad input or settings the user can fix, and a database that is down, unmigrated or refuses us
          (``InputError``: one line, never a traceback)
3         ``ask`` grew nothing: every expansion failed or was rejected (the root alone is printed)
4         ``ask`` could not reach its model server (every failure was a refused connection or a timeout)
5         ``ask`` grew a tree but could not save it in the database (it is still printed / written)
6         ``loop``: a worker process crashed (the tasks it held went back to the queue)
130       interrupted (Ctrl-C), as shells report SIGINT
========  ==========================================================================================
"""

from __future__ import annotations

import sys

import click

__all__ = ["NOTHING_GROWN", "UNREACHABLE", "NOT_SAVED", "WORKER_FAILED", "INTERRUPTED", "Failed",
           "database_problem"]

NOTHING_GROWN = 3
UNREACHABLE = 4
NOT_SAVED = 5
WORKER_FAILED = 6
INTERRUPTED = 130


class Failed(click.ClickException):
    """The command ran but did not do its job: one line on stderr, a specific exit status (table above)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        from ..text import escape_controls

        click.echo(f"argtree: error: {escape_controls(self.format_message())}", err=True)


def database_problem(err: BaseException) -> str | None:
    """One line for a database that is down, unreachable, unmigrated or refuses us; None for anything else.

    Imports nothing: a command that never touched SQLAlchemy cannot have raised its errors."""
    store_db = sys.modules.get("argtree.store.db")
    if store_db is not None and isinstance(err, store_db.SchemaError):
        return str(err)
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is not None and isinstance(err, (exc.OperationalError, exc.InterfaceError)):
        why = str(getattr(err, "orig", None) or err).strip().splitlines()
        where = ""
        if store_db is not None:
            try:
                where = " " + store_db.redact(store_db.database_url())
            except Exception:  # noqa: BLE001 - an unparsable URL: the reason alone
                where = ""
        return f"cannot use the database{where}: {why[0] if why else type(err).__name__}"
    return None
