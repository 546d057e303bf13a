"""``argtree loop``: the model asks itself questions, grows trees, asks an oracle, learns where to dig."""

from __future__ import annotations

import math
import multiprocessing
import os
import time

import click
from rich.markup import escape

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


def _make_backend(backend: str, model: str | None, device: str | None, timeout: float | None = None,
                  concurrency: int | None = None, database: str | None = None):
    from ..llm import open_backend

    try:  # model names (adapter, bundled, registered versions, latest) resolve in llm.local, as for every command
        return open_backend(backend, model, device=device, timeout=timeout, concurrency=concurrency,
                            database=database)
    except (ValueError, RuntimeError, OSError) as err:
        raise InputError(f"--model {model!r} ({backend}): {err}") from None
    except ImportError as err:
        raise InputError(f"the {backend} backend needs the llm extra: pip install 'argtree[llm]' ({err})") from None


def _proposer_name(backend: str, model: str | None, proposer: str | None) -> str | None:
    """The model that proposes questions (None: ``model`` itself): --proposer, else the shipped proposer
    adapter when the local model is the bundled one or the shipped StrategyQA adapter."""
    if proposer == "same":
        return None
    if proposer:
        return proposer
    if backend != "local":
        return None
    from ..llm.local import default_proposer

    return default_proposer(model)


class _LazyBackend:
    """A backend built on its first call (the proposer: a run with nothing left to propose never loads it)."""

    def __init__(self, make):
        self._make, self._be = make, None

    def _get(self):
        if self._be is None:
            self._be = self._make()
        return self._be

    def generate_json(self, *args, **kw):
        return self._get().generate_json(*args, **kw)

    def score_yes(self, *args, **kw):
        return self._get().score_yes(*args, **kw)

    @property
    def model_version(self):
        return self._get().model_version


def _proposer_backend(be, backend, proposer_name, device, timeout, concurrency, database):
    if not proposer_name:
        return be
    return _LazyBackend(lambda: _make_backend(backend, proposer_name, device, timeout, concurrency, database))


def _worker_process(url, run_id, backend, model, device, timeout, concurrency, oracle_kind, dataset,
                    deadline, proposer_name=None) -> None:
    """A second, third ... worker: its own model and oracle, the same run (PostgreSQL)."""
    from ..loop import run_worker
    from ..oracle import make_oracle
    from ..store.loops import LoopStore

    be = _make_backend(backend, model, device, timeout, concurrency, url)
    oracle = make_oracle(oracle_kind, backend=be, dataset=dataset)
    run_worker(LoopStore(url), run_id, be, oracle, deadline=deadline,
               proposer=_proposer_backend(be, backend, proposer_name, device, timeout, concurrency, url))


def _reaper(procs):
    """A ``stop`` hook for the first worker that collects exited worker processes, so a crashed one is
    no zombie: its pid reads as dead and the task it held goes back to pending."""
    def stop() -> bool:
        for p in procs:
            p.is_alive()  # waitpid(WNOHANG) on the child
        return False
    return stop


def _propose_only(topics, n, retries, seed, as_json, backend) -> None:
    """``--propose-only``: each topic's proposals, accepted and rejected, printed; nothing stored."""
    from ..propose import propose
    from ..text import escape_controls

    results = [propose(backend, t, n, seed + 1000 * i, retries=retries) for i, t in enumerate(topics)]
    summary = {"accepted": sum(len(r.accepted) for r in results), "rejected": sum(len(r.rejected) for r in results),
               "negation": sum(v.negation for r in results for v in r.accepted)}
    proposer = str(getattr(backend, "model_version", "") or "")
    if as_json:
        print_json({"proposer": proposer, "topics": [r.to_json() for r in results], "summary": summary})
        return
    out = console()
    out.print(f"[dim]proposed by {escape(proposer)}[/]")
    for r in results:
        out.print(f"[bold]{escape(escape_controls(r.topic))}[/] ({r.attempts} model calls)")
        for i, v in enumerate(r.accepted, 1):
            out.print(f"  {i}. {escape(v.text)}" + ("  [yellow](negation)[/]" if v.negation else ""))
        for v in r.rejected:
            out.print(f"  [dim]rejected ({v.reason}): {escape(escape_controls(v.text))}[/]")
        for e in r.errors:
            out.print(f"  [dim]unusable answer: {escape(e)}[/]")
    out.print(f"{summary['accepted']} accepted, {summary['rejected']} rejected, "
              f"{summary['negation']} accepted with a negation")


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
              help="Sampled retries of an unusable expansion, and of a topic's proposals while fewer than --n "
                   "passed the guards (0 is fastest on a CPU).")
@click.option("--max-new-tokens", type=click.IntRange(min=16), default=None,
              help="Token cap per model answer (default: the longest answer the schema admits, so none is cut).")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default="local", show_default=True)
@click.option("--model", default=None, help="local: 'adapter' (default: the bundled SmolLM2-135M + the shipped "
              "StrategyQA LoRA, argtree/adapters/strategyqa-lora), 'bundled' (the base alone), a registered "
              "version, 'latest', or a model or adapter directory.")
@click.option("--device", default=None, help="local backend: cpu, cuda ...")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="openai backend: seconds per request before it is retried (default 120).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="openai backend: requests in flight at once, per worker (default 8).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--new", "fresh", is_flag=True,
              help="Start a new run: never resume an unfinished run, and run again what a finished run did.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="Print the final stats as JSON.")
@click.option("--propose-only", is_flag=True,
              help="Print the questions the model proposes for each topic (accepted, and rejected with the "
                   "guard's reason) and stop: no tree is grown, nothing is stored, no database is opened.")
@click.option("--n", "per_topic", type=click.IntRange(1, 5), default=3, show_default=True,
              help="Questions proposed per topic.")
@click.option("--proposer", default=None,
              help="The model that proposes questions about topics. Default: with the local backend and the "
                   "bundled model or the shipped StrategyQA adapter (the default), the shipped proposer adapter "
                   "(argtree/adapters/proposer-lora); otherwise --model itself. 'same' proposes with --model; "
                   "any other name or directory as for --model.")
def loop(topics_file, topic_list, question_list, hours, max_questions, oracle_kind, dataset, poll_seconds, workers,
         budget, ask_top, retries, max_new_tokens, backend, model, device, timeout, concurrency, seed, fresh, database,
         as_json, propose_only, per_topic, proposer) -> None:
    """Run the autonomous loop until the budget is spent or Ctrl-C.

    The model proposes questions about the topics, grows a tree for each
    within --budget, keeps the ones whose root it is unsure about, sends their
    highest-VoI premises to the oracle, folds the answers in, and grows again
    where the answers moved the root.  State lives in the database: a killed
    (or Ctrl-C'd, or out of --hours) loop started again with the same options
    resumes its run without repeating an expansion; with other options it
    refuses and names them (--new starts a fresh run); a finished run is not
    run twice (it says so; --new runs it again).

    Exit status: 0 done (or already done); 2 bad input, other options than the
    unfinished run's, or a database problem; 6 a worker process crashed; 130 Ctrl-C.
    """
    from ..loop import LoopConfig, RunConflict, run_worker, start_or_resume
    from ..oracle import make_oracle
    from ..store import SchemaError, database_url
    from ..store.loops import LoopStore
    from ..tree import TreeError
    from .exits import INTERRUPTED, WORKER_FAILED, Failed

    topics = list(topic_list) + (_read_topics(topics_file) if topics_file else [])
    # The proposer (a second model) is loaded only where there are topics to propose for.
    proposer_name = _proposer_name(backend, model, proposer) if topics else None
    if propose_only:
        if not topics:
            raise InputError("--propose-only needs --topic or --topics FILE (questions are proposed about topics)")
        return _propose_only(topics, per_topic, retries, seed, as_json,
                             _make_backend(backend, proposer_name or model, device, timeout, concurrency, database))
    url = database or database_url()
    if workers > 1 and url.startswith("sqlite"):  # refused before anything is stored
        raise InputError("--workers > 1 needs PostgreSQL (ARGTREE_DATABASE_URL=postgresql+psycopg://...)")
    store = LoopStore(url)
    be = _make_backend(backend, model, device, timeout, concurrency, url)
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
                     label_root=oracle_kind == "dataset", retries=retries, per_topic=per_topic, max_new_tokens=max_new_tokens,
                     poll_seconds=poll_seconds)
    settings = {"backend": backend, "model": model, "dataset": os.path.abspath(dataset) if dataset else None,
                "proposer": proposer_name}
    out = console()
    try:
        run_id, resumed, cfg = start_or_resume(store, cfg, oracle.name, resume=not fresh, **settings)
    except SchemaError as err:
        raise InputError(str(err)) from None
    except RunConflict as conflict:
        if not conflict.finished:
            raise InputError(str(conflict)) from None
        stats = store.stats(conflict.run_id)
        if as_json:
            print_json({"run_id": conflict.run_id, "resumed": False, "already_done": True, "stop": str(conflict),
                        **stats})
        else:
            out.print(f"{escape(str(conflict))}.")
        return
    deadline = time.time() + cfg.hours * 3600 if cfg.hours else None
    procs: list = []

    def show(ev):
        if as_json:
            return
        unc = ev["root_uncertainty"]
        out.print(f"[dim]{ev['kind']:>8}[/] {escape(ev['outcome'])}  |  questions {ev['questions']}, "
                  f"trees {ev['trees']}, nodes {ev['nodes']}, labels {ev['labels']}, root uncertainty "
                  f"{'-' if unc is None else f'{unc:.2f}'}")

    interrupted = False
    try:  # from here on a Ctrl-C stops the run cleanly (marked stopped, stats printed, exit 130)
        if not as_json:
            out.print(f"loop run {run_id} ({'resumed' if resumed else 'new'}): oracle {oracle.name}, "
                      f"{len(cfg.topics)} topics, {len(cfg.questions)} questions, budget {cfg.budget} per tree")
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            for _ in range(workers - 1):
                p = ctx.Process(target=_worker_process, args=(url, run_id, backend, model, device, timeout,
                                                              concurrency, oracle_kind, dataset, deadline,
                                                              proposer_name),
                                daemon=True)
                p.start()
                procs.append(p)
        # Every worker waits while others hold tasks (those add follow-ups), so this returns when the
        # run is done or out of time, and the other workers stop then too.
        why = run_worker(store, run_id, be, oracle, deadline=deadline, progress=show, stop=_reaper(procs),
                         proposer=_proposer_backend(be, backend, proposer_name, device, timeout, concurrency, url))
    except KeyboardInterrupt:
        store.finish_run(run_id, "stopped")
        why, interrupted = "stopped (Ctrl-C)", True
        for p in procs:  # they got the Ctrl-C too: their tasks go back to pending
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    for p in procs:
        p.join()
    crashed = [p.exitcode for p in procs if p.exitcode] if not interrupted else []
    stats = store.stats(run_id)
    if as_json:
        print_json({"run_id": run_id, "resumed": resumed, "stop": why, "workers_failed": len(crashed), **stats})
    else:
        out.print(f"loop run {run_id}: {why}. questions {stats['questions']}, trees {stats['trees']}, "
                  f"nodes {stats['nodes']}, labels {stats['labels']}")
    if interrupted:
        click.echo("argtree: interrupted; run the same command again to resume", err=True)
        click.get_current_context().exit(INTERRUPTED)
    if crashed:
        raise Failed(f"{len(crashed)} of {len(procs)} extra workers failed (exit status "
                     f"{', '.join(map(str, crashed))}); the tasks they held went back to the queue, run the same "
                     "command again to finish them", WORKER_FAILED)
