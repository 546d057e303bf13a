"""``argtree improve``: rounds of expert iteration with a held-out gate and a learning curve."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from . import InputError, console, print_json


def _oracle_factory(dataset_file: str | None = None):
    def make(kind: str, backend, questions):
        from ..oracle import HumanQueueOracle, ModelOracle

        if kind == "human":
            return HumanQueueOracle()
        if kind == "model":
            return ModelOracle(backend)
        from ..oracle import FactsOracle

        # The honest dataset oracle: answers a premise only where the question's gold facts settle it.
        facts = {q.question: list(q.facts) for q in questions}
        exact = {f: True for q in questions for f in q.facts}
        return FactsOracle(facts, exact=exact, questions=[q.question for q in questions])
    return make


def _backend_factory(kind: str, device: str | None):
    def make(name: str, path: str | None):
        if kind == "fake":
            import zlib

            from ..llm.fake import FakeBackend

            # Each version answers differently (seeded by its name), as a trained model would.
            return FakeBackend(model_version=name, seed=zlib.crc32(name.encode("utf-8")))
        from ..llm import open_backend

        return open_backend(kind, path or name, device=device)
    return make


@click.command()
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds to run (a resumed run may be given more rounds than it had).")
@click.option("--questions", "questions_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Training questions: JSON list / JSONL of {question, answer[, facts]} (StrategyQA files as they are).")
@click.option("--heldout", "heldout_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Held-out questions, the same every round (never trained on; removed from --questions).")
@click.option("--heldout-limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N held-out questions.")
@click.option("--oracle", "oracle_kind", type=click.Choice(["dataset", "human", "model"]), default="dataset",
              show_default=True, help="dataset: answers only what the question's gold facts settle; human: the web "
              "app's queue (waits for answers); model: the model judges (AI feedback, stored as such).")
@click.option("--per-round", type=click.IntRange(min=1), default=16, show_default=True,
              help="Q: new questions per round.")
@click.option("--budget", type=click.IntRange(min=1), default=3, show_default=True, help="B: expansions per tree.")
@click.option("--answers", type=click.IntRange(min=0), default=2, show_default=True,
              help="K: top-VoI premises per tree the oracle answers.")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True,
              help="S: optimizer steps of each training stage (SFT, then DPO).")
@click.option("--eval-budget", type=click.IntRange(min=0), default=1, show_default=True,
              help="Expansions per held-out tree (0: direct answers only; the gate then has no tree to compare).")
@click.option("--self-labels", is_flag=True,
              help="Let the model oracle's own judgements count as truth for facts (recorded on the version's card).")
@click.option("--distill", type=click.Choice(["both", "tree", "gold", "none"]), default="both", show_default=True,
              help="Train the direct answer toward the tree's belief after the oracle's answers, toward gold "
                   "answers, both (tagged apart), or neither.")
@click.option("--question-facts/--no-question-facts", default=True, show_default=True,
              help="Teach the question file's gold facts (dataset truth: StrategyQA's 'facts') as facts, with "
                   "their rule-made negations, and as the root's premises on the gold answer's side.")
@click.option("--proposals/--no-proposals", default=True, show_default=True,
              help="Teach the question proposer: each round question's term (and description) as the topic, "
                   "the question as the answer (what `argtree loop` proposes from).")
@click.option("--dpo/--no-dpo", default=True, show_default=True,
              help="DPO on guard-rejected proposals after SFT.")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default="local", show_default=True,
              help="local: transformers on this machine (trained with TRL); fake: scripted, with a trainer that "
                   "records versions without weights (tests, demos).")
@click.option("--device", default=None, help="local backend: cpu, cuda ...")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default 2e-4 for SFT, 5e-5 for DPO).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--top-layers", type=click.IntRange(min=1), default=None,
              help="A new LoRA on the last N transformer layers only (faster on a CPU); a continued one keeps its own.")
@click.option("--rank", type=click.IntRange(min=1), default=16, show_default=True, help="Rank of a new LoRA.")
@click.option("--start", "start_model", default=None,
              help="Model to start from (e.g. bundled, adapter, a registered version); default: the current "
                   "default model (the last one a gate promoted, else the built-in default).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--poll-seconds", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="--oracle human: seconds between looks for people's answers.")
@click.option("--new", "fresh", is_flag=True, help="Abandon an unfinished run and start a new one.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where run directories (training files, curve) go (default ARGTREE_HOME/improve).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's state and curve as JSON.")
def improve(rounds, questions_file, heldout_file, heldout_limit, oracle_kind, per_round, budget, answers, steps,
            eval_budget, self_labels, distill, question_facts, proposals, dpo, backend, device, batch_size, lr, threads, top_layers, rank, start_model,
            seed, poll_seconds,
            fresh, database, workdir, as_json) -> None:
    """Rounds of self-improvement: grow trees with the current model, let the oracle answer the
    top-VoI premises, build training data with provenance (a replay buffer), fine-tune (SFT then
    DPO) continuing from the current version, evaluate on --heldout, and make the candidate the
    default only if its held-out tree Brier beats the current default's (paired bootstrap).

    Resumable: killed at any step, the same command continues where it stopped and repeats no
    finished work; with other options it refuses and names them. Writes a learning curve
    (curve.json, curve.md, curve.png) into the run's directory.
    """
    from ..improve import Deps, ImproveConfig, ImproveError, RecordingTrainer, run_improve, start_or_resume
    from ..questions import QuestionError, load_questions
    from ..store import SchemaError, database_url, session_scope

    if backend == "openai":
        raise InputError("--backend openai: improve trains the model's weights, which a remote server does not "
                         "expose; run it with --backend local (or fake to try the machinery)")
    if eval_budget == 0:
        raise InputError("--eval-budget 0 leaves no tree to gate on; give at least 1")
    url = database or database_url()
    scope = lambda: session_scope(url)  # noqa: E731
    from ..improve import _sha256

    cfg = ImproveConfig(questions=os.path.abspath(questions_file), heldout=os.path.abspath(heldout_file),
                        questions_sha256=_sha256(questions_file), heldout_sha256=_sha256(heldout_file),
                        rounds=rounds, oracle=oracle_kind, per_round=per_round, budget=budget, answers=answers,
                        steps=steps, backend=backend, heldout_limit=heldout_limit, eval_budget=eval_budget,
                        self_labels=self_labels, distill=distill, question_facts=question_facts, proposals=proposals, dpo=dpo, seed=seed, poll_seconds=poll_seconds,
                        start=start_model, batch_size=batch_size, lr=lr, top_layers=top_layers, rank=rank)
    log = (lambda msg: click.echo(msg, err=True))
    if backend == "fake":
        trainer = RecordingTrainer()
    else:
        from ..finetune import TrainConfig, TrlTrainer

        trainer = TrlTrainer(TrainConfig(batch_size=batch_size, learning_rate=lr, threads=threads, device=device,
                                         top_layers=top_layers, rank=rank, alpha=2 * rank, logging_steps=5), log=log)
    if workdir is None:
        from ..llm.local import argtree_home

        workdir = str(argtree_home() / "improve")
    deps = Deps(scope=scope, backend_for=_backend_factory(backend, device), oracle_for=_oracle_factory(),
                trainer=trainer, workdir=Path(workdir), load_questions=load_questions, log=log)
    try:
        load_questions(questions_file)
        load_questions(heldout_file)
        run_id, resumed, cfg = start_or_resume(deps, cfg, fresh=fresh)
    except (ImproveError, QuestionError, SchemaError) as err:
        raise InputError(str(err)) from None
    out = console()
    if not as_json:
        out.print(f"improve run {run_id} ({'resumed' if resumed else 'new'}): {cfg.rounds} rounds of "
                  f"{cfg.per_round} questions, oracle {cfg.oracle} x {cfg.answers}, {cfg.steps} steps per stage")

    def show(ev):
        if as_json:
            return
        kind = ev.get("event")
        if kind == "gate":
            verdict = "PROMOTED" if ev["promote"] else "kept as candidate"
            d = ev["tree_brier_diff"]
            out.print(f"round {ev['round']} gate: {ev['candidate']} tree Brier {ev['candidate_tree_brier']:.3f} vs "
                      f"default {ev['default_tree_brier']:.3f}, paired diff {d[1]:+.3f} [{d[0]:+.3f}, {d[2]:+.3f}]: "
                      f"{verdict}")
        elif kind in ("grow", "eval"):
            pass
        else:
            out.print(f"[dim]{kind}[/] " + ", ".join(f"{k} {v}" for k, v in ev.items() if k != "event"))

    try:
        # Trainer and library chatter goes to stderr; stdout keeps the result (--json).
        with contextlib.redirect_stdout(sys.stderr):
            state = run_improve(deps, run_id, progress=show)
    except ImproveError as err:
        raise InputError(str(err)) from None
    if as_json:
        from ..curve import curve_rows

        print_json({"run_id": run_id, "resumed": resumed, "default": state["default"],
                    "curve": curve_rows(state), "files": state.get("curve_files", {})})
        return
    from ..curve import curve_rows, to_markdown

    click.echo(to_markdown(curve_rows(state), run_id))
    click.echo(f"default model: {state['default']}; curve: {state.get('curve_files', {}).get('png')}")
