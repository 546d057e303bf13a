"""``argtree loop``: the model asks itself questions, grows trees, asks an oracle, learns where to dig."""

from __future__ import annotations

import math
import multiprocessing
import time

import click

from . import InputError, console, print_json


def _read_topics(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            topics = [line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#")]
    except OSError as err:
        raise InputError(f"--topics {path!r}: {err.strerror}") from None
    if not topics:
        raise InputError(f"--topics {path!r} holds no topics (one per line)")
    return topics


def _make_backend(backend: str, model: str | None, device: str | None):
    from ..llm import make_backend

    path = model
    if backend == "local":
        from ..finetune import FinetuneError, resolve_version

        try:
            path = resolve_version(model)  # names (bundled, adapter, default) resolve in llm.local
        except FinetuneError as err:
            raise InputError(str(err)) from None
    try:
        return make_backend(backend, path, **({"device": device} if device and backend == "local" else {}))
    except (ValueError, RuntimeError, OSError) as err:
        raise InputError(f"--model {model!r} ({backend}): {err}") from None


def _worker_process(url, run_id, backend, model, device, oracle_kind, dataset, deadline) -> None:
    """A second, third ... worker: its own model and oracle, the same run (PostgreSQL)."""
    from ..loop import run_worker
    from ..oracle import make_oracle
    from ..store import session_scope

    be = _make_backend(backend, model, device)
    oracle = make_oracle(oracle_kind, backend=be, dataset=dataset)
    run_worker(lambda: session_scope(url), run_id, be, oracle, deadline=deadline)


def _reaper(procs):
    """A ``stop`` hook for the first worker that collects exited worker processes, so a crashed one is
    no zombie: its pid reads as dead and the task it held goes back to pending."""
    def stop() -> bool:
        for p in procs:
            p.is_alive()  # waitpid(WNOHANG) on the child
        return False
    return stop


def _finite_seconds(ctx, param, value: float) -> float:
    if not math.isfinite(value):  # FloatRange lets nan and inf through; time.sleep would fail on them later
        raise click.BadParameter(f"{value} is not a finite number of seconds.")
    return value


@click.command()
@click.option("--topics", "topics_file", type=click.Path(dir_okay=False), default=None,
              help="File with one topic per line; the model proposes questions about each.")
@click.option("--topic", "topic_list", multiple=True, help="A topic (repeatable).")
@click.option("--question", "question_list", multiple=True, help="A question to work on as it is (repeatable).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop after this long.")
@click.option("--max-questions", type=click.IntRange(min=1), default=10, show_default=True,
              help="Questions to grow trees for (proposed or given).")
@click.option("--oracle", "oracle_kind", type=click.Choice(["human", "model", "dataset"]), default="human",
              show_default=True, help="human: the web app's queue (answers arrive later); model: the model judges "
              "itself; dataset: known truth from --dataset.")
@click.option("--dataset", type=click.Path(dir_okay=False), default=None,
              help="Truth for --oracle dataset: StrategyQA JSON or an argtree/1 file with labels. Without topics, "
                   "its questions are the ones asked.")
@click.option("--poll-seconds", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              callback=_finite_seconds,
              help="--oracle human: seconds between looks for people's new labels in the web app's queue while "
                   "a tree waits for answers (the other oracles answer at once, so it does not apply to them).")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Worker processes sharing the run (more than one needs PostgreSQL).")
@click.option("--budget", type=click.IntRange(min=1), default=3, show_default=True, help="Expansions per tree.")
@click.option("--ask-top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Premises sent to the oracle per round (highest VoI first).")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Sampled retries of an unusable expansion (0 is fastest on a CPU).")
@click.option("--max-new-tokens", type=click.IntRange(min=16), default=None,
              help="Token cap per model answer (default: the longest answer the schema admits, so none is cut).")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default="local", show_default=True)
@click.option("--model", default=None, help="local: 'adapter' (default: the bundled SmolLM2-135M + the shipped "
              "StrategyQA LoRA, argtree/adapters/strategyqa-lora), 'bundled' (the base alone), a registered "
              "version, 'latest', or a model or adapter directory.")
@click.option("--device", default=None, help="local backend: cpu, cuda ...")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--new", "fresh", is_flag=True, help="Start a new run even if a killed one could be resumed.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="Print the final stats as JSON.")
def loop(topics_file, topic_list, question_list, hours, max_questions, oracle_kind, dataset, poll_seconds, workers,
         budget, ask_top, retries, max_new_tokens, backend, model, device, seed, fresh, database, as_json) -> None:
    """Run the autonomous loop until the budget is spent or Ctrl-C.

    The model proposes questions about the topics, grows a tree for each
    within --budget, keeps the ones whose root it is unsure about, sends their
    highest-VoI premises to the oracle, folds the answers in, and grows again
    where the answers moved the root.  State lives in the database: a killed
    loop started again resumes its run without repeating an expansion.
    """
    from ..loop import LoopConfig, loop_stats, run_worker, start_or_resume
    from ..oracle import make_oracle
    from ..store import SchemaError, database_url, session_scope
    from ..tree import TreeError

    topics = list(topic_list) + (_read_topics(topics_file) if topics_file else [])
    url = database or database_url()
    scope = lambda: session_scope(url)  # noqa: E731
    be = _make_backend(backend, model, device)
    try:
        oracle = make_oracle(oracle_kind, backend=be, dataset=dataset)
    except (ValueError, TreeError) as err:
        raise InputError(str(err)) from None
    questions = list(question_list)
    if not topics and not questions:
        questions = list(getattr(oracle, "questions", []))
        if not questions:
            raise InputError("nothing to ask about: give --topic, --topics FILE or --question "
                             "(or --oracle dataset with a --dataset that has questions)")
    cfg = LoopConfig(topics=tuple(topics), questions=tuple(questions), max_questions=max_questions,
                     hours=hours, budget=budget, ask_top=ask_top, seed=seed,
                     label_root=oracle_kind == "dataset", retries=retries, max_new_tokens=max_new_tokens,
                     poll_seconds=poll_seconds)
    try:
        run_id, resumed, cfg = start_or_resume(scope, cfg, oracle.name, resume=not fresh)
    except SchemaError as err:
        raise InputError(str(err)) from None
    deadline = time.time() + cfg.hours * 3600 if cfg.hours else None
    out = console()
    if not as_json:
        out.print(f"loop run {run_id} ({'resumed' if resumed else 'new'}): oracle {oracle.name}, "
                  f"{len(cfg.topics)} topics, {len(cfg.questions)} questions, budget {cfg.budget} per tree")
    procs = []
    if workers > 1:
        if url.startswith("sqlite"):
            raise InputError("--workers > 1 needs PostgreSQL (ARGTREE_DATABASE_URL=postgresql+psycopg://...)")
        ctx = multiprocessing.get_context("spawn")
        for _ in range(workers - 1):
            p = ctx.Process(target=_worker_process, args=(url, run_id, backend, model, device, oracle_kind, dataset,
                                                          deadline), daemon=True)
            p.start()
            procs.append(p)

    def show(ev):
        if as_json:
            return
        unc = ev["root_uncertainty"]
        out.print(f"[dim]{ev['kind']:>8}[/] {ev['outcome']}  |  questions {ev['questions']}, trees {ev['trees']}, "
                  f"nodes {ev['nodes']}, labels {ev['labels']}, root uncertainty "
                  f"{'-' if unc is None else f'{unc:.2f}'}")

    try:
        # Every worker waits while others hold tasks (those add follow-ups), so this returns when the
        # run is done or out of time, and the other workers stop then too.
        why = run_worker(scope, run_id, be, oracle, deadline=deadline, progress=show, stop=_reaper(procs))
    except KeyboardInterrupt:
        from ..store import finish_loop_run

        with scope() as s:
            finish_loop_run(s, run_id, "stopped", loop_stats(s, run_id))
        why = "stopped (Ctrl-C)"
        for p in procs:  # they got the Ctrl-C too: their tasks go back to pending
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    for p in procs:
        p.join()
    crashed = [p.exitcode for p in procs if p.exitcode]
    if crashed and why != "stopped (Ctrl-C)":
        click.echo(f"warning: {len(crashed)} of {len(procs)} extra workers failed (exit status "
                   f"{', '.join(map(str, crashed))}); the tasks they held went back to the queue", err=True)
    with scope() as s:
        stats = loop_stats(s, run_id)
    if as_json:
        print_json({"run_id": run_id, "resumed": resumed, "stop": why, **stats})
        return
    out.print(f"loop run {run_id}: {why}. questions {stats['questions']}, trees {stats['trees']}, "
              f"nodes {stats['nodes']}, labels {stats['labels']}")
