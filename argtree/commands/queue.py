"""``argtree queue``: the forest ranking, the queue's settings and its gold questions (issue 13)."""

from __future__ import annotations

import click

from . import InputError, console, escape_controls, print_json
from .db import DATABASE_HELP, _store_errors


@click.group(invoke_without_command=True)
@click.option("--top", type=int, default=20, show_default=True, help="How many propositions to show.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help='Print {"settings": {...}, "ranking": [...]}.')
@click.pass_context
@_store_errors
def queue(ctx, top: int, database: str | None, as_json: bool) -> None:
    """The question queue: with no subcommand, the forest ranking it serves from (open propositions by
    forest-wide VoI: Σ over live trees of priority × node VoI)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..store import get_queue_settings, session_scope
    from ..store.reliability import queue_ranking

    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    with session_scope(database, readonly=True) as s:
        settings = get_queue_settings(s)
        rows = queue_ranking(s, top)
    if as_json:
        print_json({"settings": settings, "ranking": rows})
        return
    from rich.table import Table

    t = Table(title=f"Queue: top {len(rows)} (overlap {settings['queue.overlap']}, gold rate "
                    f"{settings['queue.gold_rate']}, metric {settings['queue.metric']})")
    for col in ("#", "proposition", "forest VoI", "answers", "trees", "text"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["rank"]), str(r["proposition_id"]), f"{r['forest_voi']:.4f}", str(r["answers"]),
                  str(r["trees"]), escape_controls(r["text"][:90]))
    console().print(t)


@queue.command("settings")
@click.option("--overlap", type=int, default=None, help="Answers wanted per proposition (1-100).")
@click.option("--gold-rate", type=float, default=None, help="Share of questions drawn from the gold set (0-1).")
@click.option("--lease-seconds", type=float, default=None, help="How long a served question is held for one person.")
@click.option("--metric", default=None, help="VoI metric: shift, decision or info (recomputes every tree).")
@click.option("--assign", "assign", multiple=True, metavar="TREE=NAME[,NAME...]",
              help="Only these accounts may answer tree TREE (adds to those named before; repeatable).")
@click.option("--unassign", "unassign", multiple=True, metavar="TREE[=NAME,...]",
              help="Take these accounts off tree TREE, or all of them (the tree is open to everyone again).")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON (assignments under \"assignments\").")
@_store_errors
def settings(overlap, gold_rate, lease_seconds, metric, assign, unassign, database, as_json) -> None:
    """Show the queue settings, or change those given; who may answer which trees (--assign/--unassign:
    a tree with no one assigned is open to everyone)."""
    from ..store import session_scope, set_queue_settings
    from ..store.assignment import assign as do_assign, assignments, unassign as do_unassign

    with session_scope(database) as s:
        out = set_queue_settings(s, overlap=overlap, gold_rate=gold_rate, lease_seconds=lease_seconds, metric=metric)
        for spec in unassign:
            tree_id, names = _tree_spec(spec, "--unassign", need_names=False)
            do_unassign(s, tree_id, names)
        for spec in assign:
            tree_id, names = _tree_spec(spec, "--assign", need_names=True)
            do_assign(s, tree_id, names)
        who = assignments(s)
    if as_json:
        print_json({**out, "assignments": {str(t): names for t, names in who.items()}})
        return
    for k, v in sorted(out.items()):
        click.echo(f"{k} = {v}")
    for t, names in who.items():
        click.echo(f"tree {t}: answered only by {', '.join(escape_controls(n) for n in names)}")


def _tree_spec(spec: str, option: str, need_names: bool) -> tuple[int, list[str] | None]:
    tree, sep, names = spec.partition("=")
    if not tree.strip().isdigit():
        raise InputError(f"{option} {spec!r}: give TREE=NAME[,NAME...] with TREE a tree id")
    people = [n.strip() for n in names.split(",") if n.strip()] if sep else []
    if need_names and not people:
        raise InputError(f"{option} {spec!r}: name at least one account after '='")
    return int(tree), (people or None)


@queue.command("gold")
@click.argument("proposition_id", type=int, required=False)
@click.argument("answer", type=click.Choice(["true", "false"]), required=False)
@click.option("--remove", is_flag=True, help="Unmark PROPOSITION_ID as gold.")
@click.option("--note", default=None, help="Why this is the answer (kept with it).")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the gold set as JSON.")
@_store_errors
def gold(proposition_id, answer, remove, note, database, as_json) -> None:
    """Gold questions: `queue gold ID true|false` marks a known answer, `queue gold ID --remove` unmarks,
    `queue gold` lists them.  Gold is mixed into the queue at --gold-rate and never shown as gold."""
    from ..store import gold_list, mark_gold, session_scope, unmark_gold

    with session_scope(database) as s:
        if proposition_id is not None:
            if remove:
                if not unmark_gold(s, proposition_id):
                    raise InputError(f"proposition {proposition_id} is not gold")
            elif answer is None:
                raise InputError("give the known answer: true or false (or --remove)")
            else:
                mark_gold(s, proposition_id, answer == "true", note=note)
        rows = gold_list(s)
    if as_json:
        print_json([{**r, "at": r["at"].isoformat()} for r in rows])
        return
    for r in rows:
        click.echo(f"{r['proposition_id']}\t{'true' if r['value'] else 'false'}\t{escape_controls(r['text'][:100])}")
