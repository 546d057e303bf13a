"""``argtree eval``: calibration of a model version on held-out labeled facts, before vs after."""

from __future__ import annotations

import os

import click

from . import InputError, console, print_json


def _facts_from_store(database: str | None, split: float):
    """The eval split of the store's labeled facts (the same hash split `argtree export --split` makes)."""
    from ..datasets import DatasetError, build
    from .export import load_labeled_trees

    trees = load_labeled_trees((), database)
    try:
        result = build(trees, "facts", "prompt-completion", split)
    except DatasetError as err:
        raise InputError(f"{err}; or pass --data FILE") from None
    recs = result["splits"]["eval"]
    if not recs:
        raise InputError("the eval split of the stored facts is empty; label more propositions or pass --data FILE")
    return recs, f"database (eval split of {split})"


def _backend(model: str, device: str | None):
    from ..finetune import FinetuneError, resolve_version
    from ..llm import make_backend

    try:
        path = resolve_version(model)
        return make_backend("local", path, **({"device": device} if device else {}))
    except (FinetuneError, ValueError, RuntimeError, OSError) as err:
        raise InputError(f"--model {model!r}: {err}") from None


@click.command(name="eval")
@click.option("--model", "model", required=True,
              help="Model to evaluate: a registered version, 'latest', a model or adapter directory, or 'bundled'.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Held-out facts (argtree export --kind facts, prompt-completion or conversational). "
                   "Default: the eval split of the database's labeled facts.")
@click.option("--base", default="bundled", show_default=True,
              help="Model to compare against ('none' to skip the before column).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N records.")
@click.option("--split", type=float, default=0.9, show_default=True, help="Train share used when reading the database.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for the reliability diagram (reliability.png) and metrics.json.")
@click.option("--device", default=None, help="cpu, cuda ... (default: cuda when present).")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(model: str, data: str | None, base: str, limit: int | None, split: float, out_dir: str,
             device: str | None, database: str | None, as_json: bool) -> None:
    """Calibration of MODEL's P(true) on held-out labeled propositions.

    For each fact the model is asked the yes/no question the tree grower uses,
    and P(true) is read from its first answer token.  Reports Brier score,
    log loss, expected calibration error and accuracy, for MODEL and for the
    base model (before/after), and draws both in one reliability diagram.
    """
    import json

    from ..datasets import DatasetError, read_jsonl
    from ..evaluate import calibration, fact_items, reliability_diagram, score_facts

    if data:
        try:
            records, source = read_jsonl(data), data
        except DatasetError as err:
            raise InputError(str(err)) from None
    else:
        records, source = _facts_from_store(database, split)
    try:
        prompts, truths, system = fact_items(records[:limit] if limit else records, source)
    except DatasetError as err:
        raise InputError(str(err)) from None
    names = [("after", model)] + ([] if base == "none" or base == model else [("before", base)])
    results, curves = {}, {}
    err_console = console() if not as_json else None
    for role, name in names:
        backend = _backend(name, device)
        if err_console:
            with err_console.status(f"scoring {len(prompts)} facts with {name}...") as status:
                probs = score_facts(backend, prompts, system,
                                    progress=lambda d, t: status.update(f"scoring with {name}: {d}/{t}"))
        else:
            probs = score_facts(backend, prompts, system)
        cal = calibration(probs, truths)
        results[role] = {"model": name, **cal.as_dict()}
        curves[f"{role}: {name}"] = (probs, truths)
        del backend
    os.makedirs(out_dir, exist_ok=True)
    png = reliability_diagram(curves, os.path.join(out_dir, "reliability.png"))
    summary = {"data": source, "n": len(prompts), "results": results, "reliability_png": png}
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"Calibration on {len(prompts)} held-out facts ({source})")
    for col in ("", "model", "Brier", "log loss", "ECE", "accuracy", "mean P(true)", "share true"):
        table.add_column(col, justify="right" if col not in ("", "model") else "left")
    for role in ("before", "after"):
        if role in results:
            r = results[role]
            table.add_row(role, r["model"], f"{r['brier']:.4f}", f"{r['log_loss']:.4f}", f"{r['ece']:.4f}",
                          f"{r['accuracy']:.3f}", f"{r['mean_p']:.3f}", f"{r['share_true']:.3f}")
    out = console()
    out.print(table)
    out.print(f"reliability diagram: {png}")
