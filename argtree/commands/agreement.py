"""``argtree agreement``: Krippendorff's α, each annotator's learned reliability, the disagreements (issue 13)."""

from __future__ import annotations

import click

from . import console, escape_controls, print_json
from .db import DATABASE_HELP, _store_errors


@click.command()
@click.option("--update/--no-update", default=True, show_default=True,
              help="Re-estimate reliabilities first (Dawid-Skene over all labels and gold answers); trees whose "
                   "weights moved are recomputed.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help='Print {"alpha_nominal", "alpha_interval", "units", "annotators": [...], "disagreements": [...]}.')
@_store_errors
def agreement(update: bool, database: str | None, as_json: bool) -> None:
    """Agreement between annotators (people and the loop's oracles) on the propositions several answered,
    and each one's learned reliability with its 90% interval (the weight of their labels)."""
    from ..store import reliability_table, session_scope, update_reliability
    from ..store.reliability import all_labels
    from ..store.webui import agreement as alpha

    moved = None
    if update:
        with session_scope(database) as s:
            moved = update_reliability(s)
    with session_scope(database, readonly=True) as s:
        labels = all_labels(s)
        table = reliability_table(s)
    ag = alpha(labels)
    if as_json:
        print_json({"units": ag.units, "alpha_nominal": ag.alpha_nominal, "alpha_interval": ag.alpha_interval,
                    "note": ag.note, "update": moved,
                    "annotators": [{**r, "updated": r["updated"].isoformat() if r["updated"] else None}
                                   for r in table],
                    "disagreements": ag.disagreements})
        return
    from rich.table import Table

    def f(x, d=3):
        return "–" if x is None else f"{x:.{d}f}"

    c = console()
    if moved is not None:
        c.print(f"Reliability re-estimated: {len(moved['moved'])} moved, {moved['trees']} trees recomputed.")
    c.print(f"Krippendorff's α on {ag.units} overlapped propositions: true/false {f(ag.alpha_nominal)}, "
            f"interval {f(ag.alpha_interval)}" + (f" ({ag.note})" if ag.note else ""))
    t = Table(title="Annotators (learned reliability: P(label = truth), 90% interval)")
    for col in ("annotator", "role", "labels", "prior", "learned", "interval", "gold right"):
        t.add_column(col)
    for r in table:
        t.add_row(escape_controls(r["annotator"]), r["role"], str(r["labels"]), f(r["prior"], 2), f(r["reliability"]),
                  f"[{f(r['low'])}, {f(r['high'])}]", f"{r['gold_correct']:.0f}/{r['gold']}")
    c.print(t)
    c.print(f"Disagreements ({len(ag.disagreements)}):")
    for d in ag.disagreements:
        c.print(f"  {d['proposition_id']}: {escape_controls(d['text'][:80])} — {escape_controls(d['answers'])}",
                markup=False)
