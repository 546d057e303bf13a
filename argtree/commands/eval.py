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


def _backend(model: str, device: str | None, database: str | None = None):
    from ..llm import open_backend

    try:  # names, registered versions and 'latest' resolve in llm.local, as for every command
        return open_backend("local", model, device=device, database=database)
    except (ValueError, RuntimeError, OSError) as err:
        raise InputError(f"--model {model!r}: {err}") from None


@click.command(name="eval")
@click.option("--model", "model", default=None,
              help="Model to evaluate: a registered version, 'latest', a model or adapter directory, or 'bundled' "
                   "(default with --questions: the default model; required for facts).")
@click.option("--questions", type=click.Path(dir_okay=False), default=None,
              help="Labeled yes/no questions (JSON list or JSONL of {question, answer}; StrategyQA files as they "
                   "are): the direct answer vs a grown tree per question.  See the options below.")
@click.option("--budget", type=click.IntRange(min=0), default=1, show_default=True,
              help="--questions: expansions per tree (0: the direct answer only).")
@click.option("--oracle", type=click.Choice(["dataset", "model"]), default=None,
              help="--questions: who answers the top premises: dataset = the question's gold facts (abstains on "
                   "what they do not settle), model = the model as judge.")
@click.option("--answers", type=click.IntRange(min=0), default=0, show_default=True,
              help="--questions: premises per tree the oracle answers (asked in VoI order; abstentions skipped).")
@click.option("--policy", type=click.Choice(["voi", "random"]), default="voi", show_default=True,
              help="--questions: the order premises are put to the oracle.")
@click.option("--part", "which", type=click.Choice(["heldout", "train", "all"]), default="all", show_default=True,
              help="--questions: only the held-out part (sha256 of the id, top 15%), only the rest, or all.")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default="local", show_default=True,
              help="--questions: the model backend.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="--questions, openai backend: seconds per request before it is retried (default 120).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="--questions, openai backend: requests in flight at once (default 8).")
@click.option("--uncalibrated", is_flag=True, help="--questions: ignore the model's calibration maps.")
@click.option("--model-evidence", "mode", type=click.Choice(["frontier", "all", "none"]), default="frontier",
              show_default=True, help="--questions: which premises' credences count (DESIGN.md).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Held-out facts (argtree export --kind facts, prompt-completion or conversational). "
                   "Default: the eval split of the database's labeled facts.")
@click.option("--base", default="bundled", show_default=True,
              help="Model to compare against ('none' to skip the before column).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N records.")
@click.option("--split", type=float, default=0.9, show_default=True, help="Train share used when reading the database.")
@click.option("--out", "out_dir", type=click.Path(), default=".", show_default=True,
              help="Facts: directory for the reliability diagram (reliability.png) and metrics.json.  "
                   "--questions: the per-question records file (JSONL), as --records.")
@click.option("--device", default=None, help="cpu, cuda ... (default: cuda when present).")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--records", "records_out", type=click.Path(dir_okay=False), default=None,
              help="--questions: write per-question records (three root numbers, tree) as JSONL here.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_cmd(model: str | None, questions: str | None, budget: int, oracle: str | None, answers: int, policy: str,
             which: str, backend: str, timeout: float | None, concurrency: int | None, uncalibrated: bool, mode: str,
             seed: int, data: str | None, base: str,
             limit: int | None, split: float, out_dir: str, device: str | None, database: str | None,
             records_out: str | None, as_json: bool) -> None:
    """Score a model on labeled questions (--questions) or labeled facts (--data / the database).

    With --questions FILE: per question the model's direct answer (its P(yes),
    calibrated) and a tree grown with --budget expansions whose belief comes from
    model evidence (and, with --oracle and --answers K, K answered premises).
    Prints accuracy, Brier, log loss and ECE with 95% bootstrap intervals, and
    the paired difference tree - direct.

    Otherwise: calibration of MODEL's P(true) on held-out labeled facts, before
    (--base) and after, with a reliability diagram.
    """
    import json

    if questions:
        if out_dir != "." and records_out is None:
            records_out = out_dir
        return _eval_questions(questions, model, backend, device, budget, oracle, answers, policy, which, uncalibrated,
                               mode, seed, limit, database, records_out, as_json, timeout=timeout,
                               concurrency=concurrency)
    if not model:
        raise InputError("--model is required for facts (or pass --questions FILE)")

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
        backend = _backend(name, device, database)
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


def _eval_questions(path, model, backend, device, budget, oracle_kind, answers, policy, which, uncalibrated, mode, seed,
                    limit, database, records_out, as_json, timeout=None, concurrency=None) -> None:
    from ..questions import QuestionError, evaluate_questions, load_questions, split_heldout
    from .ask import make_model_backend
    from .calibrate import calibration_for

    try:
        qs = load_questions(path)
    except QuestionError as err:
        raise InputError(str(err)) from None
    if which != "all":
        train, held = split_heldout(qs)
        qs = held if which == "heldout" else train
    qs = [q for q in qs if q.answer is not None][:limit]
    if not qs:
        raise InputError(f"{path}: no labeled questions (with an 'answer') in the {which} split")
    if answers and not oracle_kind:
        raise InputError("--answers needs --oracle dataset or --oracle model")
    be = make_model_backend(backend, model, device, quiet=as_json, timeout=timeout, concurrency=concurrency,
                            database=database)
    from ..model_evidence import NONE

    cal, cal_source = (NONE, "none (--uncalibrated)") if uncalibrated else calibration_for(be.model_version, database)
    oracle = None
    if oracle_kind == "dataset":
        from ..oracle import FactsOracle

        oracle = FactsOracle()  # each query carries its question's gold facts
    elif oracle_kind == "model":
        from ..oracle import ModelOracle

        oracle = ModelOracle(be)
    if as_json:
        result = evaluate_questions(be, qs, budget=budget, oracle=oracle, answers=answers, policy=policy, seed=seed,
                                    calibration=cal, model=mode)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]questions[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console(), transient=False) as bar:
            task = bar.add_task("", total=len(qs))
            result = evaluate_questions(be, qs, budget=budget, oracle=oracle, answers=answers, policy=policy,
                                        seed=seed, calibration=cal, model=mode,
                                        progress=lambda d, t: bar.update(task, completed=d))
    records = result.pop("records")
    result.update(model=be.model_version, calibration=cal_source, questions=path, split=which,
                  policy=policy if answers else None, model_evidence=mode)
    if records_out:
        from ..datasets import write_jsonl

        write_jsonl(records, records_out)
        result["records"] = records_out
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{result['n']} questions ({which}), {be.model_version}, budget {budget}"
                        + (f", {answers} oracle answer(s) by {policy}" if answers else ""))
    for col in ("root number", "accuracy [95% CI]", "Brier [95% CI]", "log loss", "ECE", "Brier − direct [95% CI]"):
        table.add_column(col, justify="left" if col == "root number" else "right")
    for key in ("direct", "tree"):
        if key not in result:
            continue
        r = result[key]
        diff = (f"{r['brier_minus_direct']:+.4f} [{r['brier_minus_direct_ci'][0]:+.4f}, "
                f"{r['brier_minus_direct_ci'][1]:+.4f}]") if "brier_minus_direct" in r else ""
        table.add_row(key, f"{r['accuracy']:.3f} [{r['accuracy_ci'][0]:.3f}, {r['accuracy_ci'][1]:.3f}]",
                      f"{r['brier']:.4f} [{r['brier_ci'][0]:.4f}, {r['brier_ci'][1]:.4f}]", f"{r['log_loss']:.4f}",
                      f"{r['ece']:.4f}", diff)
    out = console()
    out.print(table)
    out.print(f"calibration: {cal_source}; model evidence: {mode}; constant 0.5 scores Brier 0.25")
    if "oracle" in result:
        o = result["oracle"]
        out.print(f"oracle: {o['answered']} answers from {o['asked']} asks (abstained {o['abstention_rate'] or 0:.0%})")
    if records_out:
        out.print(f"per-question records: {records_out}")
