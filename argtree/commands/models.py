"""``argtree models``: every model version with its lineage, data, provenance, held-out numbers and the default."""

from __future__ import annotations

import click

from . import InputError, console, print_json


def version_rows(session) -> list[dict]:
    """One dict per registered version, oldest first (what ``argtree models --json`` prints)."""
    from ..store import list_model_versions
    from ..store.registry import current_default_version

    rows = list(reversed(list_model_versions(session)))
    default = current_default_version(session)
    names = {mv.id: mv.name for mv in rows}
    out = []
    for mv in rows:
        meta = dict(mv.meta or {})
        heldout = meta.get("heldout") or None
        if heldout:
            heldout = {k: heldout[k] for k in ("direct", "tree", "n", "file_sha256", "budget", "run", "round")
                       if k in heldout}
        out.append({
            "name": mv.name, "parent": names.get(mv.parent_id) if mv.parent_id else meta.get("parent"),
            "round": meta.get("round"), "run": meta.get("run"), "kind": mv.kind, "path": mv.path,
            "default": default is not None and default.id == mv.id,
            "status": "default" if default is not None and default.id == mv.id else meta.get("status"),
            "data": meta.get("data"), "provenance": meta.get("provenance"), "heldout": heldout,
            "gate": meta.get("gate"), "created": mv.created_at.isoformat() if mv.created_at else None,
        })
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


@click.command()
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of versions.")
def models(database, as_json) -> None:
    """List model versions: parent, round, training data, provenance, held-out metrics, default."""
    from ..store import SchemaError, session_scope

    try:
        with session_scope(database, readonly=True) as s:
            rows = version_rows(s)
    except SchemaError as err:
        raise InputError(str(err)) from None
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no model versions registered (argtree finetune or argtree improve make them)")
        return
    from rich.table import Table

    table = Table(caption="held-out Brier: direct answer / tree's belief; gate: paired tree-Brier difference "
                          "candidate - default")
    table.add_column("")
    table.add_column("name", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    for col in ("round", "sft / dpo", "facts from", "direct", "tree", "gate"):
        table.add_column(col)
    for r in rows:
        h = r["heldout"] or {}
        data = r["data"] or {}
        prov = r["provenance"] or {}
        gate = r["gate"] or {}
        facts = ", ".join(f"{k} {v}" for k, v in (prov.get("facts_from") or {}).items()) or "-"
        if prov.get("self_labels"):
            facts += " (self-labels on)"
        g = "-" if not gate else (("promoted" if gate.get("promote") else "candidate")
                                  + f" {gate['tree_brier_diff'][1]:+.3f}")
        table.add_row("*" if r["default"] else "", r["name"], r["parent"] or "-",
                      "-" if r["round"] is None else str(r["round"]),
                      f"{data.get('sft_records', '-')} / {data.get('dpo_pairs', '-')}" if data else "-",
                      facts, _f((h.get("direct") or {}).get("brier")), _f((h.get("tree") or {}).get("brier")), g)
    from rich.console import Console

    Console(width=max(console().width, 110)).print(table)
    click.echo("* = the default (what ask, loop and eval use without --model)")
