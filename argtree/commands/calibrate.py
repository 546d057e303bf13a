"""``argtree calibrate``: fit the model version's calibration maps from oracle answers; where maps are found."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from . import InputError, console, print_json


def calibration_for(model_version: str, database: str | None = None):
    """The maps in use for ``model_version``: the store's newest fit, else the shipped file, else none
    (identity).  Returns (ModelCalibration, where it came from)."""
    try:
        from ..store import database_url, session_scope
        from ..store.calibrations import latest_calibration
        from ..store.db import missing_sqlite_file

        url = database or database_url()
        if not missing_sqlite_file(url):  # no database yet: do not create one just to look
            with session_scope(url, readonly=True) as s:
                found = latest_calibration(s, model_version)
            if found is not None:
                return found, "database"
    except Exception:  # noqa: BLE001 - no store (not migrated, unreachable): fall back to the shipped map
        pass
    from ..calibration import CalibrationError
    from ..model_evidence import shipped_calibration

    try:
        return shipped_calibration(model_version)
    except CalibrationError as err:
        raise InputError(str(err)) from None


def _score(backend, prompts, label, quiet):
    from ..evaluate import score_facts

    if quiet:
        return score_facts(backend, prompts)
    with console().status(f"scoring {len(prompts)} {label}...") as st:
        return score_facts(backend, prompts, progress=lambda d, t: st.update(f"scoring {label}: {d}/{t}"))


@click.command()
@click.option("--model", "model", default=None,
              help="Model to calibrate (local backend): a registered version, 'latest', 'adapter', 'bundled', a "
                   "directory.  Default: the default model.")
@click.option("--backend", type=click.Choice(["local", "fake"]), default="local", show_default=True,
              help="fake: the scripted model (demos, tests).")
@click.option("--facts", type=click.Path(dir_okay=False), default=None,
              help="Labeled facts (argtree export --kind facts, prompt-completion or conversational): extra "
                   "(credence, answer) pairs for the premise map, beside those the database holds.")
@click.option("--questions", type=click.Path(dir_okay=False), default=None,
              help="Labeled questions (JSON list / JSONL of {question, answer}; StrategyQA as is): pairs for the "
                   "direct-answer map.  Held-out questions (argtree.questions.split_heldout) are never used.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most N facts and N questions.")
@click.option("--method", type=click.Choice(["auto", "platt", "isotonic"]), default="auto", show_default=True,
              help="auto: the one with the lower 5-fold cross-validated log loss.")
@click.option("--write-file", type=click.Path(dir_okay=False), default=None,
              help="Also write the maps as a JSON file (the shape shipped in argtree/calibrations/).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Directory for calibration.png (reliability before and after).")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--no-store", is_flag=True, help="Do not read pairs from, or save maps to, the database.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate(model, backend, facts, questions, limit, method, write_file, out_dir, database, no_store, as_json):
    """Fit monotone maps from the model's credence to a probability that means what it says.

    Pairs (model credence, oracle answer) come from the database (every premise
    with a recorded credence whose proposition has true/false labels) and from
    --facts; they give the PREMISE map, which turns credences into model
    evidence.  --questions gives the DIRECT map, for the model's own answer to a
    question.  The maps are stored with the model version (newest wins) and used
    by ask, eval and loop.  A reliability diagram shows before and after.
    """
    from ..calibration import CalibrationError, fit
    from ..evaluate import calibration as metrics, reliability_diagram
    from ..llm import open_backend
    from ..model_evidence import ModelCalibration

    try:  # model names resolve as in every command (llm.open_backend), in --database's registry too
        be = open_backend(backend, model, database=database)
    except (ValueError, RuntimeError, OSError) as e:
        raise InputError(f"--model {model!r} ({backend}): {e}") from None
    name = be.model_version
    cred, truth, sources = [], [], {}
    if not no_store:
        try:
            from ..store import session_scope
            from ..store.calibrations import credence_pairs

            with session_scope(database, readonly=True) as s:
                c, t = credence_pairs(s, name)
            cred += c
            truth += t
            sources["database"] = len(c)
        except Exception as err:  # noqa: BLE001
            sources["database"] = f"unavailable: {type(err).__name__}: {err}"[:200]
    if facts:
        from ..datasets import DatasetError, read_jsonl
        from ..evaluate import fact_items

        try:
            prompts, t, _ = fact_items(read_jsonl(facts)[:limit] if limit else read_jsonl(facts), facts)
        except DatasetError as err:
            raise InputError(str(err)) from None
        cred += _score(be, prompts, "facts", as_json)
        truth += [bool(x) for x in t]
        sources["facts"] = len(prompts)
    result = {"model": name, "sources": sources}
    maps: dict[str, object] = {}
    curves = {}
    if cred:
        try:
            maps["premise"] = fit(cred, truth, method)
        except CalibrationError as err:
            raise InputError(f"premise map: {err}") from None
        curves["premise"] = (cred, truth)
    if questions:
        from ..expand import direct_prompt
        from ..questions import QuestionError, load_questions, split_heldout

        try:
            train, held = split_heldout(load_questions(questions))
        except QuestionError as err:
            raise InputError(str(err)) from None
        train = [q for q in train if q.answer is not None][:limit]
        dq = _score(be, [direct_prompt(q.question) for q in train], "questions", as_json)
        dt = [bool(q.answer) for q in train]
        try:
            maps["direct"] = fit(dq, dt, method)
        except CalibrationError as err:
            raise InputError(f"direct map: {err}") from None
        curves["direct"] = (dq, dt)
        sources["questions"] = len(train)
        sources["questions_held_out_skipped"] = len(held)
    if not maps:
        raise InputError("no (credence, answer) pairs: label premises in the web app, or pass --facts / --questions")
    for kind, m in maps.items():
        c, t = curves[kind]
        before, after = metrics(c, [int(x) for x in t]), metrics(m(c), [int(x) for x in t])
        result[kind] = {"map": m.to_dict(), "n": len(c),
                        "before": {"brier": before.brier, "ece": before.ece, "log_loss": before.log_loss},
                        "after_in_sample": {"brier": after.brier, "ece": after.ece, "log_loss": after.log_loss}}
    os.makedirs(out_dir, exist_ok=True)
    png_curves = {}
    for kind, (c, t) in curves.items():
        png_curves[f"{kind}: raw"] = (c, [int(x) for x in t])
        png_curves[f"{kind}: calibrated"] = (list(maps[kind](c)), [int(x) for x in t])
    result["png"] = reliability_diagram(png_curves, os.path.join(out_dir, "calibration.png"),
                                        title=f"Calibration of {name}")
    mc = ModelCalibration(maps.get("premise") or ModelCalibration().premise, maps.get("direct"))
    if write_file:
        Path(write_file).write_text(json.dumps(mc.to_dict(), indent=1) + "\n", encoding="utf-8")
        result["file"] = write_file
    result["stored"] = False
    if not no_store:
        try:
            from ..store import session_scope
            from ..store.calibrations import save_calibration

            with session_scope(database) as s:
                for kind, m in maps.items():
                    save_calibration(s, name, kind, m, {"sources": sources})
            result["stored"] = True
        except Exception as err:  # noqa: BLE001 - the maps are still printed and written
            result["store_error"] = f"{type(err).__name__}: {err}"[:300]
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"Calibration of {name}")
    for col in ("map", "pairs", "method", "Brier before", "Brier after", "ECE before", "ECE after"):
        table.add_column(col, justify="left" if col in ("map", "method") else "right")
    for kind in maps:
        r = result[kind]
        table.add_row(kind, str(r["n"]), r["map"]["method"], f"{r['before']['brier']:.4f}",
                      f"{r['after_in_sample']['brier']:.4f}", f"{r['before']['ece']:.4f}",
                      f"{r['after_in_sample']['ece']:.4f}")
    out = console()
    out.print(table)
    out.print(f"pairs: {sources}; reliability diagram: {result['png']}")
    out.print("stored in the database" if result["stored"] else f"not stored: {result.get('store_error', '--no-store')}")
