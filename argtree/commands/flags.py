"""``argtree flags``: consistency flags for review, and resolving them (issue 13)."""

from __future__ import annotations

import click

from . import InputError, console, escape_controls, print_json
from .db import DATABASE_HELP, _store_errors


@click.command()
@click.option("--all", "include_resolved", is_flag=True, help="Also list resolved flags (with who, when, why).")
@click.option("--resolve", "resolve", default=None, metavar="KEY", help="Record that flag KEY is resolved.")
@click.option("--note", default=None, help="With --resolve: what was done.")
@click.option("--by", "by", default=None, metavar="NAME", help="With --resolve: the admin account resolving it.")
@click.option("--believed", type=click.FloatRange(0.5, 1.0), default=0.7, show_default=True,
              help="A proposition and its negation both believed above this in one tree is a flag.")
@click.option("--reliable", type=click.FloatRange(0.5, 1.0), default=0.8, show_default=True,
              help="Conflicting labels count when both annotators are at least this reliable.")
@click.option("--spread", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="A proposition whose belief differs across trees by more than this is a flag.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the flags as JSON.")
@_store_errors
def flags(include_resolved, resolve, note, by, believed, reliable, spread, database, as_json) -> None:
    """Contradictions to review: a proposition and its negation both believed (or both labeled true),
    conflicting labels from reliable annotators, one proposition with conflicting beliefs across trees."""
    from ..store import get_annotator, session_scope
    from ..store.flags import find_flags, resolve_flag

    if resolve is not None:
        with session_scope(database) as s:
            keys = {f.key for f in find_flags(s, believed=believed, reliable=reliable, spread=spread,
                                              include_resolved=True)}
            if resolve not in keys:
                raise InputError(f"no flag {resolve!r} now (see `argtree flags --all`)")
            admin = None
            if by is not None:
                a = get_annotator(s, by)
                if a.role != "admin":
                    raise InputError(f"{by!r} is not an admin")
                admin = a.id
            resolve_flag(s, resolve, by=admin, note=note)
    with session_scope(database, readonly=True) as s:
        found = find_flags(s, believed=believed, reliable=reliable, spread=spread, include_resolved=include_resolved)
    if as_json:
        print_json([{"key": f.key, "kind": f.kind, "proposition_ids": list(f.proposition_ids), "texts": list(f.texts),
                     "why": f.why, "tree_ids": list(f.tree_ids),
                     "resolved": None if f.resolved is None else {**f.resolved, "at": f.resolved["at"].isoformat()}}
                    for f in found])
        return
    c = console()
    c.print(f"{len(found)} flag(s){' (resolved included)' if include_resolved else ''}.", markup=False)
    for f in found:
        done = "" if f.resolved is None else f" [resolved by {f.resolved['by'] or '?'}: {f.resolved['note']}]"
        c.print(f"{f.key}: {' / '.join(escape_controls(t[:80]) for t in f.texts)} — {f.why}{escape_controls(done)}",
                markup=False)
