"""``argtree db``, ``argtree import``, ``argtree dump``, ``argtree users``: the database from the shell."""

from __future__ import annotations

import sys

import click

from . import InputError, console, escape_controls, print_json


def _store_errors(fn):
    """Turn the store's user-facing errors into one-line CLI errors (exit status 2)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..store.db import SchemaError
        from ..store.errors import StoreError
        from ..tree import TreeError

        try:
            return fn(*args, **kwargs)
        except (SchemaError, StoreError, TreeError) as err:
            raise InputError(str(err)) from None
        except ImportError as err:
            raise InputError(f"{err}; install the storage extra: pip install 'argtree[store]'") from None
        except Exception as err:  # a database that is down or refuses us: say so, no traceback
            from sqlalchemy.exc import OperationalError

            if isinstance(err, OperationalError):
                from ..store.db import database_url, redact

                why = str(err.orig or err).splitlines()[0]
                url = kwargs.get("database") or database_url()
                raise InputError(f"cannot use the database {redact(url)}: {why}") from None
            raise

    return wrapper


@click.group()
def db() -> None:
    """Create, migrate and inspect the database.

    The database is ARGTREE_DATABASE_URL (e.g. postgresql+psycopg://user@host/db)
    or, by default, a SQLite file argtree.db under ARGTREE_HOME (default: your
    user data directory).  Run `argtree db upgrade` once after installing or
    upgrading argtree.
    """


DATABASE_HELP = "Database URL (default ARGTREE_DATABASE_URL or the local file)."


@db.command()
@click.argument("revision", default="head")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"url", "current", "head"}.')
@_store_errors
def upgrade(revision: str, database: str | None, as_json: bool) -> None:
    """Migrate the database up to REVISION (default: the newest), creating it if needed."""
    from ..store.db import database_url, get_engine, redact, schema_status, upgrade as do_upgrade

    url = database or database_url()
    do_upgrade(url, revision)
    current, head, _ = schema_status(get_engine(url, check=False))
    if as_json:
        print_json({"url": redact(url), "current": current, "head": head})
        return
    click.echo(f"{redact(url)}: at schema revision {current} (head {head})")


@db.command()
@click.argument("revision")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"url", "current"}.')
@_store_errors
def downgrade(revision: str, database: str | None, as_json: bool) -> None:
    """Migrate the database down to REVISION ('base' removes every argtree table: data is lost)."""
    from ..store.db import database_url, downgrade as do_downgrade, get_engine, redact, schema_status

    url = database or database_url()
    do_downgrade(url, revision)
    if as_json:
        print_json({"url": redact(url), "current": schema_status(get_engine(url, check=False))[0]})
        return
    click.echo(f"{redact(url)}: downgraded to {revision}")


@db.command()
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"url", "current", "head", "up_to_date"}.')
@_store_errors
def current(database: str | None, as_json: bool) -> None:
    """Show the database URL and its schema revision against the newest this argtree knows."""
    from ..store.db import database_url, get_engine, redact, schema_status

    url = database or database_url()
    cur, head, known = schema_status(get_engine(url, check=False))
    if as_json:
        print_json({"url": redact(url), "current": cur, "head": head, "up_to_date": cur == head})
        return
    state = ("up to date" if cur == head else "not migrated: run `argtree db upgrade`" if cur is None
             else "behind: run `argtree db upgrade`" if known else "newer than this argtree")
    click.echo(f"{redact(url)}\nrevision {cur or '(none)'}, head {head}: {state}")


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--priority", type=float, default=1.0, show_default=True,
              help="Weight of these trees in the forest-wide VoI of the queue.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"trees": {file: tree_id}}.')
@_store_errors
def import_(files: tuple[str, ...], priority: float, database: str | None, as_json: bool) -> None:
    """Store argtree/1 files in the database (all or none: one bad file stops the import).

    Each file's evidence becomes labels; beliefs and the question queue update.
    A file already imported with the same content is not stored twice.  Files are
    checked by the same validator as `argtree infer` (sizes: README, "The exact core").
    """
    from ..interop import load_any as load  # argtree/1 JSON, or a .bif/.xml(bif) network (issue 15)
    from ..store import save_tree, session_scope
    from ..store.lookups import tree_with_content
    from ..tree import TreeError

    loaded = []
    for path in files:
        try:
            loaded.append((path, *load(path)))
        except TreeError as err:
            raise InputError(f"{path}: {err}") from None
    out: dict[str, int] = {}
    new = 0
    with session_scope(database) as s:
        for path, tree, evidence in loaded:
            old = tree_with_content(s, tree, evidence)
            if old is not None:
                out[path] = old
                continue
            try:
                out[path] = save_tree(s, tree, evidence, priority=priority)
            except (TreeError, ValueError) as err:
                raise InputError(f"{path}: {err} (nothing was imported)") from None
            new += 1
    if as_json:
        print_json({"trees": out})
        return
    for path, tid in out.items():
        click.echo(f"{escape_controls(path)}: tree {tid}")
    click.echo(f"{new} imported, {len(out) - new} already present")


@click.command()
@click.argument("tree_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file (atomically) instead of stdout.")
@click.option("--database", default=None, help=DATABASE_HELP)
@_store_errors
def dump(tree_id: int, out: str | None, database: str | None) -> None:
    """Write stored tree TREE_ID as argtree/1 JSON, with its labels as evidence (the output is JSON already)."""
    from ..io import dump as write, dumps
    from ..store import load_tree, session_scope

    with session_scope(database, readonly=True) as s:
        tree, evidence = load_tree(s, tree_id)
    if out:
        write(tree, evidence, out)
        click.echo(f"tree {tree_id} -> {escape_controls(out)}", err=True)
    else:
        sys.stdout.write(dumps(tree, evidence) + "\n")


@click.group()
def users() -> None:
    """Manage annotator accounts (for the oracle web app)."""


def _password_options(fn):
    """--password-stdin (scripts) and the deprecated --password; without them the password is prompted."""
    fn = click.option("--password", "password_arg", hidden=True, default=None,
                      help="Deprecated: the password would show in the process list and shell history.")(fn)
    return click.option("--password-stdin", is_flag=True,
                        help="Read the password from the first line of standard input (for scripts). "
                             "Without it the password is prompted for, hidden, twice.")(fn)


def _read_password(password_stdin: bool, password_arg: str | None, prompt: str) -> str:
    """The password from stdin, the deprecated option, or a hidden prompt (asked twice)."""
    if password_stdin and password_arg is not None:
        raise InputError("give the password one way: --password-stdin or the prompt")
    if password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise InputError("password: --password-stdin read nothing (give it on the first line of stdin)")
        return password
    if password_arg is not None:
        click.echo("argtree: warning: --password shows the password in the process list and shell history; "
                   "use the prompt or --password-stdin", err=True)
        return password_arg
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Admins also manage users and see all trees, runs and exports.")
@click.option("--reliability", type=float, default=0.9, show_default=True,
              help="How far to trust this person's labels: P(label is right), in (0.5, 1).")
@_password_options
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "name", "role"}.')
@_store_errors
def users_add(name: str, admin: bool, reliability: float, password_stdin: bool, password_arg: str | None,
              database: str | None, as_json: bool) -> None:
    """Add annotator NAME (password prompted or read with --password-stdin; stored as an argon2id hash)."""
    from ..store import add_annotator, session_scope

    password = _read_password(password_stdin, password_arg, "Password")
    with session_scope(database) as s:
        row = add_annotator(s, name, password, admin, reliability=reliability)
    if as_json:
        print_json({"id": row.id, "name": row.name, "role": row.role})
        return
    click.echo(f"added {row.role} {row.name!r} (id {row.id})")


@users.command("passwd")
@click.argument("name")
@_password_options
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"name", "changed": true}.')
@_store_errors
def users_passwd(name: str, password_stdin: bool, password_arg: str | None, database: str | None,
                 as_json: bool) -> None:
    """Set NAME's password; every web-app session of NAME ends (open tabs can save nothing more)."""
    from ..store import session_scope, set_password

    password = _read_password(password_stdin, password_arg, "New password")
    with session_scope(database) as s:
        set_password(s, name, password)
    if as_json:
        print_json({"name": name, "changed": True})
        return
    click.echo(f"password of {name!r} changed; their web sessions are ended")


@users.command("list")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of accounts.")
@_store_errors
def users_list(database: str | None, as_json: bool) -> None:
    """List accounts with their role, reliability and answers."""
    from ..store import list_annotators, session_scope
    from ..store.webui import label_counts

    with session_scope(database, readonly=True) as s:
        counts = label_counts(s)
        rows = [(a, counts.get(a.id, 0)) for a in list_annotators(s)]
    if as_json:
        print_json([{"id": a.id, "name": a.name, "role": a.role, "reliability": a.reliability, "active": a.active,
                     "labels": n} for a, n in rows])
        return
    from rich.table import Table

    table = Table()
    for col in ("id", "name", "role", "reliability", "active", "labels"):
        table.add_column(col)
    for a, n in rows:
        table.add_row(str(a.id), a.name, a.role, f"{a.reliability:g}", "yes" if a.active else "no", str(n))
    console().print(table)
