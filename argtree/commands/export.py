"""``argtree export``: labeled trees -> a fine-tuning dataset (JSONL) and its card."""

from __future__ import annotations

import click

from . import InputError, console, print_json

KIND_HELP = ("facts: premise -> oracle truth; cruxes: question -> the premises that proved most valuable; "
             "posteriors: question -> the tree's final belief; uncertainty: question -> how much the labels "
             "moved it (low/medium/high); proposals: topic -> the questions `argtree loop` proposed about it "
             "whose trees people or oracles could work with (an informative answer, the question not called "
             "ill-posed), to teach the question proposer (conversational or openai-chat; from the database).")
FORMAT_HELP = ("TRL: text (language modeling), prompt-completion, conversational (messages), preference "
               "(chosen/rejected), unpaired-preference (boolean label), stepwise (facts/cruxes only); "
               "OpenAI: openai-chat, openai-dpo.")


def load_labeled_trees(files: tuple[str, ...], database: str | None = None):
    """Labeled trees from argtree/1 files, or from the store when no file is given."""
    from ..datasets import from_files
    from ..tree import TreeError

    if files:
        try:
            return from_files(files)
        except TreeError as err:
            raise InputError(str(err)) from None
    try:
        from ..store import load_tree  # noqa: F401
    except ImportError:
        raise InputError("the tree store is not available in this install; pass argtree/1 files with --from-files") from None
    return _from_store(database)


def _from_store(database: str | None):
    """Every active tree in the database with its live labels (archived versions are left out)."""
    from ..datasets import LabeledTree
    from ..store import SchemaError, list_trees, load_tree, session_scope

    out = []
    try:
        with session_scope(database, readonly=True) as s:
            offset = 0
            while True:
                page = list_trees(s, status="active", limit=1000, offset=offset)
                for summary in page:
                    tree, evidence = load_tree(s, summary.id)
                    out.append(LabeledTree(tree, evidence, source=f"tree:{summary.id}",
                                           model=summary.model_version or tree.meta.get("model_version")))
                if len(page) < 1000:
                    break
                offset += 1000
    except SchemaError as err:
        raise InputError(str(err)) from None
    if not out:
        raise InputError("the database holds no trees; grow some (argtree ask / argtree loop) or pass --from-files")
    return out


@click.command()
@click.option("--kind", type=click.Choice(["facts", "cruxes", "posteriors", "uncertainty", "proposals"]),
              required=True,
              help=KIND_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "prompt-completion", "conversational", "preference",
                                                    "unpaired-preference", "stepwise", "openai-chat",
                                                    "openai-dpo"]),
              default="prompt-completion", show_default=True, help=FORMAT_HELP)
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output JSONL. With --split, writes OUT's stem .train.jsonl and .eval.jsonl; always a .card.json.")
@click.option("--split", type=float, default=None,
              help="Train share, e.g. 0.9: split by proposition (hash of its text), nothing of eval in train.")
@click.option("--from-files", "files", multiple=True, type=click.Path(dir_okay=False),
              help="Read labeled trees from argtree/1 files (repeatable) instead of the database.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="Print the dataset card as JSON.")
def export(kind: str, fmt: str, out: str, split: float | None, files: tuple[str, ...], database: str | None,
           as_json: bool) -> None:
    """Export labeled trees as a fine-tuning dataset in a documented format.

    Records are deterministic: the same trees give byte-identical files.  A
    card (counts, sources, model versions, sha256 of each file) is written
    beside the data.
    """
    from ..datasets import DatasetError
    from ..datasets import export as do_export

    if split is not None and not 0.0 < split < 1.0:
        raise InputError(f"--split must be strictly between 0 and 1, got {split}")
    if kind == "proposals":
        card = _export_proposals(fmt, out, split, files, database)
        if as_json:
            print_json(card)
        else:
            console().print(f"proposals as {fmt}: {card['examples']} records ({card['counts']['used']} questions) "
                            f"from {card['counts']['trees']} loop trees -> {out}\ncard: {card['card_path']}")
        return
    trees = load_labeled_trees(files, database)
    try:
        card = do_export(trees, kind, fmt, out, split)
    except DatasetError as err:
        raise InputError(str(err)) from None
    except OSError as err:
        raise InputError(f"cannot write {out!r}: {err.strerror}") from None
    if as_json:
        print_json(card)
        return
    from rich.table import Table

    table = Table(title=f"{kind} as {fmt}: {card['examples']} examples from {card['trees']} trees")
    for col in ("split", "records", "file", "sha256"):
        table.add_column(col)
    for name, info in card["files"].items():
        table.add_row(name, str(info["records"]), info["path"], info["sha256"][:16] + "…")
    out_console = console()
    out_console.print(table)
    notes = []
    if card["dropped_for_leakage"]:
        notes.append(f"{card['dropped_for_leakage']} train examples dropped: they share a proposition with eval")
    if card["skipped_for_format"]:
        notes.append(f"{card['skipped_for_format']} examples have no wrong answer / steps for this format")
    for note in notes:
        out_console.print(f"[dim]{note}[/]")
    out_console.print(f"card: {card['card_path']}")


def _export_proposals(fmt: str, out: str, split: float | None, files: tuple[str, ...], database: str | None) -> dict:
    """``--kind proposals``: the loop's workable proposals (``argtree.propose.loop_proposal_records``)."""
    from ..datasets import DatasetError, export_records
    from ..propose import LOOP_SOURCES, loop_proposal_records

    if files:
        raise InputError("--kind proposals reads the loop's trees and their answers from the database, not files")
    if fmt not in ("conversational", "openai-chat"):
        raise InputError(f"--kind proposals is written as conversational or openai-chat records, not {fmt}")
    if split is not None:
        raise InputError("--kind proposals takes no --split (records are few; hold out topics by hand)")
    from ..store import SchemaError, session_scope
    from ..store.proposals import loop_proposal_items

    try:
        with session_scope(database, readonly=True) as s:
            items = loop_proposal_items(s)
    except SchemaError as err:
        raise InputError(str(err)) from None
    records, counts = loop_proposal_records(items)
    sources = sorted({f"tree:{t}" for r in records for t in r["argtree"]["provenance"]["trees"]})[:1000]
    if fmt == "openai-chat":  # the same messages; provenance stays out of what OpenAI reads
        records = [{"messages": r["messages"]} for r in records]
    try:
        return export_records(records, "proposals", fmt, out, {
            "counts": counts, "label_sources": list(LOOP_SOURCES), "trees": counts["trees"], "sources": sources})
    except DatasetError as err:
        raise InputError(f"{err}: no loop proposal has a tree with an informative answer yet "
                         f"({counts['trees']} loop trees: {counts['no-answer']} unanswered, "
                         f"{counts['ill-posed']} ill-posed, {counts['guards']} rejected by today's guards)") from None
    except OSError as err:
        raise InputError(f"cannot write {out!r}: {err.strerror}") from None
