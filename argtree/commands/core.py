"""``argtree infer`` and ``argtree voi``: the exact core on an argtree/1 file."""

from __future__ import annotations

import click

from . import InputError, console, print_json

METRIC_HELP = ("shift: expected move of P(root) (default); decision: expected gain in the chance of "
               "answering the root right; info: mutual information with the root, in bits.")


def _load(path: str):
    from ..io import load
    from ..tree import TreeError

    try:
        return load(path)
    except TreeError as err:
        raise InputError(f"{path}: {err}") from None


def _label(tree, nid: str, width: int = 70) -> str:
    text = tree[nid].text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help='Print {"beliefs": {id: P(true)}} for every node.')
def infer(file: str, as_json: bool) -> None:
    """Exact belief P(node = true | evidence) of every node in FILE (argtree/1 JSON).

    By default prints the tree with beliefs and each premise's stance; --json
    prints a JSON object for scripts.  Bad input exits with status 2 and a
    message naming the node and field.
    """
    from ..inference import beliefs
    from ..tree import TreeError

    tree, evidence = _load(file)
    try:
        bel = beliefs(tree, evidence)
    except TreeError as err:
        raise InputError(f"{file}: {err}") from None
    if as_json:
        print_json({"beliefs": bel})
        return
    from rich.tree import Tree

    labels = {}
    for ev in evidence:
        labels.setdefault(ev.node, []).append(("T" if ev.value else "F") + ("" if ev.is_hard else f"@{ev.reliability:g}"))

    def line(nid: str) -> str:
        node = tree[nid]
        stance = {"supports": "[green]+[/]", "attacks": "[red]-[/]", "neutral": "[dim]=[/]", "root": ""}[node.stance]
        mark = f" [bold cyan]labeled {','.join(labels[nid])}[/]" if nid in labels else ""
        return f"{stance} [bold]{bel[nid]:.3f}[/] {_escape(_label(tree, nid))} [dim]({nid})[/]{mark}"

    root = Tree(line(tree.root))
    stack = [(tree.root, root)]
    shown = 0
    while stack and shown < 500:
        nid, branch = stack.pop()
        added = [(child, branch.add(line(child))) for child in tree.children(nid)]
        stack.extend(reversed(added))
        shown += len(added)
    out = console()
    out.print(root)
    if len(tree) > 501:
        out.print(f"[dim]… {len(tree) - 501} more nodes (use --json for all)[/]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--metric", type=click.Choice(["shift", "decision", "info"]), default="shift", show_default=True,
              help=METRIC_HELP)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Keep only the K best, in rank order.")
@click.option("--batch", type=click.IntRange(1, 12), default=None,
              help="Pick K questions for K annotators answering at once (greedy, accounts for earlier picks' answers).")
@click.option("--json", "as_json", is_flag=True, help='Print {"metric": ..., "voi": {id: value}} for scripts.')
def voi(file: str, metric: str, top: int | None, batch: int | None, as_json: bool) -> None:
    """Value of information of every unlabeled premise in FILE, best first.

    VoI says how much learning a premise's true value is expected to move the
    root: high for premises that are both uncertain and influential.  Nodes with
    hard evidence and the root have no VoI.  For each of the top questions the
    table shows what a True or False answer would do to the root.
    """
    from ..inference import beliefs
    from ..tree import TreeError
    from ..voi import rank, root_if, select_batch
    from ..voi import voi as all_voi

    tree, evidence = _load(file)
    try:
        scores = all_voi(tree, evidence, metric)
        ranked = rank(scores, top)
        picks = select_batch(tree, evidence, batch, metric) if batch else None
    except TreeError as err:
        raise InputError(f"{file}: {err}") from None
    if as_json:
        out = {"metric": metric, "voi": dict(ranked)}
        if picks is not None:
            out["batch"] = picks
        print_json(out)
        return
    from rich.table import Table

    bel = beliefs(tree, evidence)
    table = Table(title=f"VoI ({metric}) — root {tree.root!r}: P = {bel[tree.root]:.3f}")
    for col, kw in (("#", {"justify": "right"}), ("node", {}), ("premise", {"overflow": "fold"}),
                    ("P(true)", {"justify": "right"}), ("VoI", {"justify": "right"}),
                    ("root if true", {"justify": "right"}), ("root if false", {"justify": "right"})):
        table.add_column(col, **kw)
    for i, (nid, value) in enumerate(ranked[: top or 20], 1):
        if_t, if_f = root_if(tree, evidence, nid) if 0 < bel[nid] < 1 else (float("nan"), float("nan"))
        table.add_row(str(i), nid, _escape(_label(tree, nid)), f"{bel[nid]:.3f}", f"{value:.4f}",
                      f"{if_t:.3f}", f"{if_f:.3f}")
    out = console()
    out.print(table)
    if top is None and len(ranked) > 20:
        out.print(f"[dim]… {len(ranked) - 20} more (use --top K or --json)[/]")
    if picks is not None:
        out.print(f"Batch for {batch} annotators: {', '.join(picks)}")
