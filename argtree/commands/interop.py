"""``argtree export-tree``: a tree (stored, or an argtree/1 / BIF / XMLBIF file) as BIF, XMLBIF, GraphML, DOT or SVG."""

from __future__ import annotations

import os
import sys

import click

from . import InputError

FORMAT_HELP = ("bif / xmlbif: the Bayesian network (pgmpy's writers; evidence is not part of a network); "
               "graphml: nodes, arcs and numbers (networkx); dot: a picture's Graphviz source; svg: that picture "
               "(needs Graphviz's dot). Default: from --out's extension.")


def _from_store(tree_id: int, database: str | None = None):
    from .db import _store_errors

    @_store_errors
    def load(database=None):
        from ..store import load_tree, session_scope

        with session_scope(database, readonly=True) as s:
            return load_tree(s, tree_id)

    return load(database=database)


def _write(text: str, out: str) -> None:
    """Write atomically: a temporary file beside ``out``, renamed into place."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(out))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".export-", dir=folder)
    except OSError as err:
        raise InputError(f"cannot write {out}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except OSError as err:
        os.unlink(tmp)
        raise InputError(f"cannot write {out}: {err.strerror}") from None


@click.command("export-tree")
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["bif", "xmlbif", "graphml", "dot", "svg"]), help=FORMAT_HELP)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to this file (atomically) instead of stdout.")
@click.option("--metric", type=click.Choice(["shift", "decision", "info"]), default="shift", show_default=True,
              help="VoI metric shown in graphml/dot/svg.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"source", "format", "nodes", "out"} (with the text as "text" when there is no --out).')
def export_tree(source: str, fmt: str | None, out: str | None, metric: str, database: str | None,
                as_json: bool) -> None:
    """Write SOURCE (a stored TREE_ID, or an argtree/1, .bif or .xml file) in another tool's format.

    BIF and XMLBIF open in pyAgrum, pgmpy, GeNIe, bnlearn...; each variable keeps its node's id and
    text in an 'argtree' property, so 'argtree import' brings the same tree back. Labels are not
    part of a network: enter them there as evidence (a soft label is virtual evidence).
    """
    from ..interop import SUFFIX_FORMATS, InteropError, export, load_any
    from ..tree import TreeError

    if fmt is None:
        fmt = SUFFIX_FORMATS.get(os.path.splitext(out or "")[1].lower())
        if fmt is None:
            raise InputError("say --format bif|xmlbif|graphml|dot|svg (or give --out a file name ending in it)")
    if os.path.exists(source):
        try:
            tree, evidence = load_any(source)
        except TreeError as err:
            raise InputError(f"{source}: {err}") from None
    elif source.isdigit():
        tree, evidence = _from_store(int(source), database)
    else:
        raise InputError(f"{source}: no such file, and not a tree id")
    try:
        text = export(tree, evidence, fmt, metric)
    except InteropError as err:
        raise InputError(str(err)) from None
    except TreeError as err:  # evidence of probability zero: no beliefs to draw
        raise InputError(f"{source}: {err}") from None
    if out:
        _write(text, out)
    if as_json:
        from . import print_json

        print_json({"source": source, "format": fmt, "nodes": len(tree), "out": out,
                    **({} if out else {"text": text})})
    elif out:
        click.echo(f"{source} -> {out} ({fmt}, {len(tree)} nodes)", err=True)
    else:
        sys.stdout.write(text)
    if evidence and fmt in ("bif", "xmlbif") and not as_json:
        click.echo(f"note: {len(evidence)} label(s) are not part of the network; enter them as evidence in the "
                   "other tool (a soft label is virtual evidence)", err=True)
