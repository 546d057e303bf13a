"""Rounds of self-improvement (expert iteration) with a gate and a learning curve: ``argtree improve``.

DESIGN.md, "Rounds of self-improvement".  One round, as steps (tasks in the store):

``grow``    the current default model grows a tree (``--budget`` expansions) for each of ``--per-round``
            questions of ``--questions`` not used in earlier rounds of the run; each tree is saved with
            the guard-rejected proposals of its expansions (``meta["improve"]["rejected"]``);
``oracle``  the oracle answers the ``--answers`` top-VoI premises of each tree (dataset: known truth;
            human: the web app's queue, waited for; model: AI feedback, stored under its own name);
``data``    this round's training records (``argtree.datasets``: expansions, DPO pairs, facts (oracle
            labels; the question file's gold facts), distillation toward the tree's belief and toward gold
            answers, proposals (topic -> the round's questions, and the loop's own proposals whose trees
            people or oracles could work with: ``loop_round_proposals``)), each with its provenance;
            added to the run's replay buffer (deduplicated by content);
``sft``     SFT on the buffer's SFT records, continuing the current default (``Trainer.sft``);
``dpo``     DPO on the buffer's pairs, continuing the SFT result (``Trainer.dpo``); the result is the
            round's candidate version, registered with its parent, round, data sizes and provenance;
``eval``    the candidate answers the held-out questions (``--heldout``: the same questions, seed and
            budget every round), in fixed chunks, each checkpointed;
``gate``    the candidate becomes the default only if its held-out tree Brier beats the current
            default's by a paired bootstrap test (the 95% interval of the per-question difference lies
            below 0); otherwise it stays a candidate and the next round starts again from the default.

Before round 1 the run evaluates its starting default (``r0:eval``): every gate compares paired
per-question numbers on the same held-out questions.

Resuming.  The run is a row of ``loop_runs`` (``config["kind"] == "improve"``, status ``improving``
until its rounds are done) and its steps are ``loop_tasks`` (kind ``improve``, key ``r<round>:<step>``).
A step's unit of work (one question's tree, one tree's answers, one held-out chunk) commits together
with the step's checkpoint; a training stage writes its adapter into a hidden directory renamed into
place when complete, and a restart that finds it there uses it.  So a run killed at any point (SIGKILL)
and started again continues at the step it was in and repeats no finished unit.  Started again with
other options, it refuses and names them (``--rounds`` may grow: more rounds continue the run).

Everything is in the store: trees (with their rejected proposals), labels (under the oracle's name),
versions (``model_versions``: parent, round, data, provenance, held-out metrics, the gate), the
buffer (each ``data`` step's records) and the curve's numbers (the tasks' results).  Files under the
run's directory (training JSONL, curve.json/.md/.png) are derived from them.

Depends on protocols only (``Deps``): a session factory, a backend factory, an oracle factory, a
trainer (``Trainer``: ``argtree.finetune.TrlTrainer`` for real weights, ``RecordingTrainer`` for the
fake backend) and an evaluator with ``argtree.questions.evaluate_questions``'s signature.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

__all__ = ["STEPS", "ImproveConfig", "ImproveError", "Trainer", "RecordingTrainer", "Deps", "start_or_resume",
           "run_improve", "round_records", "paired_interval", "gate_decision", "premise_quality", "summarize",
           "run_state", "KILL_ENV", "TRACE_ENV", "TASK_KIND"]

STEPS = ("grow", "oracle", "data", "sft", "dpo", "eval", "gate")
TASK_KIND = "improve"
EVAL_CHUNK = 10            # held-out questions per checkpointed evaluation call
BOOTSTRAP = 2000           # resamples for intervals and the gate's paired test
# Test hooks: ARGTREE_IMPROVE_KILL="r1:sft:done" makes the process SIGKILL itself at that point
# (points: "start" when a step begins, "unit" after its first committed unit of work, "done" after
# its work is complete and written, just before the step is marked done; for ``data`` and ``gate``,
# whose work is written in the transaction that marks them done, right after it); ARGTREE_IMPROVE_TRACE=FILE
# appends one line per unit of work done (what a resumed run must never do twice).
KILL_ENV = "ARGTREE_IMPROVE_KILL"
TRACE_ENV = "ARGTREE_IMPROVE_TRACE"


class ImproveError(ValueError):
    """A run that cannot start or continue (options differ from the run's, no questions left, ...)."""


@dataclass(frozen=True)
class ImproveConfig:
    questions: str                     # question file (JSON list / JSONL / StrategyQA)
    heldout: str                       # held-out question file
    questions_sha256: str = ""
    heldout_sha256: str = ""
    rounds: int = 3
    oracle: str = "dataset"            # dataset | human | model
    per_round: int = 16                # Q: questions per round
    budget: int = 3                    # B: expansions per tree
    answers: int = 2                   # K: top-VoI premises the oracle answers per tree
    steps: int = 20                    # S: optimizer steps per training stage
    backend: str = "local"
    heldout_limit: int | None = None   # the first N held-out questions (None: all)
    eval_budget: int = 1               # expansions per held-out tree
    self_labels: bool = False          # the model oracle's labels may count as truth for facts
    distill: str = "both"              # both | tree | gold | none
    question_facts: bool = True        # teach the question file's gold facts (dataset truth) as facts
    proposals: bool = True             # teach the proposer: the round's questions as answers to their topic
    dpo: bool = True
    seed: int = 0
    start: str | None = None           # model to start from (None: the current default)
    batch_size: int = 8                # training settings (recorded; the trainer is given them)
    lr: float | None = None
    top_layers: int | None = None
    rank: int = 16
    per_side: int = 2
    retries: int = 1
    poll_seconds: float = 5.0          # human oracle: seconds between looks for answers

    # options whose change would make the run another experiment (compared on resume)
    FIXED = ("questions_sha256", "heldout_sha256", "oracle", "per_round", "budget", "answers", "steps", "backend",
             "heldout_limit", "eval_budget", "self_labels", "distill", "question_facts", "proposals", "dpo", "seed", "start", "per_side", "retries",
             "batch_size", "lr", "top_layers", "rank")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ImproveConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def check(self) -> None:
        if self.rounds < 1 or self.per_round < 1 or self.budget < 1 or self.answers < 0 or self.steps < 1:
            raise ImproveError("--rounds, --per-round, --budget and --steps must be at least 1, --answers at least 0")
        if self.oracle not in ("dataset", "human", "model"):
            raise ImproveError(f"--oracle must be dataset, human or model, got {self.oracle!r}")
        if self.distill not in ("both", "tree", "gold", "none"):
            raise ImproveError(f"--distill must be both, tree, gold or none, got {self.distill!r}")


class Trainer(Protocol):
    """Training stages of a round; each continues ``parent`` and writes a model directory at ``out``
    atomically (all or nothing).  Returns what it did (steps, loss, seconds, ...)."""

    name: str
    writes_weights: bool

    def sft(self, data: str, parent: str | None, out: str, *, steps: int, seed: int = 0) -> dict[str, Any]: ...

    def dpo(self, data: str, parent: str | None, out: str, *, steps: int, seed: int = 0) -> dict[str, Any]: ...


class RecordingTrainer:
    """The trainer of the fake backend (which has no weights to train): each stage writes a real version
    directory holding its data's hash and size and the parent, atomically, and trains nothing.  It makes
    the whole round machinery run in seconds; ``argtree.finetune.TrlTrainer`` is the real one."""

    name = "recording"
    writes_weights = False

    def _write(self, stage: str, data: str, parent: str | None, out: str, steps: int, seed: int) -> dict[str, Any]:
        from .datasets import read_jsonl, sha256_file

        target = Path(out)
        if target.exists():
            raise ImproveError(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
        tmp.mkdir(parents=True, exist_ok=True)
        meta = {"stage": stage, "how": "recorded (fake backend: no weights)", "parent": parent,
                "data_sha256": sha256_file(data), "records": len(read_jsonl(data)), "steps": steps, "seed": seed,
                "seconds": 0.0}
        (tmp / "argtree_version.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, target)
        return meta

    def sft(self, data, parent, out, *, steps, seed=0):
        return self._write("sft", data, parent, out, steps, seed)

    def dpo(self, data, parent, out, *, steps, seed=0):
        return self._write("dpo", data, parent, out, steps, seed)


@dataclass
class Deps:
    """What a run needs from outside (passed in, so tests and other front ends can swap any of it)."""

    scope: Callable[[], Any]                                  # session_scope factory (commits on exit)
    backend_for: Callable[[str, str | None], Any]             # (version name, path or None) -> Backend
    oracle_for: Callable[[str, Any, Sequence[Any]], Any]      # (kind, backend, questions) -> Oracle
    trainer: Any                                              # Trainer
    workdir: Path                                             # run directories live below it
    evaluate: Callable[..., dict] | None = None               # evaluate_questions (None: argtree.questions')
    load_questions: Callable[[str], list] | None = None       # None: argtree.questions.load_questions
    log: Callable[[str], None] = lambda msg: None
    versions_dir: Path | None = None                          # None: argtree.finetune.models_dir()
    _backend: tuple[str, Any] | None = field(default=None, repr=False)

    def backend(self, name: str, path: str | None):
        """One backend at a time, reused while the same version is asked for."""
        if self._backend is None or self._backend[0] != name:
            self._backend = None  # let the old model go before the next one loads
            self._backend = (name, self.backend_for(name, path))
        return self._backend[1]


# -- small helpers ---------------------------------------------------------------------------

def _die_if(point: str) -> None:
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _trace(event: str) -> None:
    path = os.environ.get(TRACE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(event + "\n")


def _sha256(path: str) -> str:
    from .datasets import sha256_file

    return sha256_file(path)


def _order_key(seed: int, qid: str) -> str:
    return hashlib.sha256(f"{seed}:{qid}".encode("utf-8")).hexdigest()


def _qid(q) -> str:
    return str(q.qid)


def _norm(text: str) -> str:
    from .datasets import normalize

    return normalize(text)


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- run and step bookkeeping (loop_runs / loop_tasks) -------------------------------------------

def _task(session, run_id: int, key: str):
    from .store.registry import get_loop_task

    return get_loop_task(session, run_id, TASK_KIND, key)


def _ensure_task(session, run_id: int, key: str, payload: dict | None = None):
    from .store import add_loop_tasks

    add_loop_tasks(session, run_id, [{"kind": TASK_KIND, "key": key, "payload": payload or {}}])
    return _task(session, run_id, key)


def _checkpoint(session, task, result: dict) -> None:
    from .store import utcnow

    task.result = json.loads(json.dumps(result, allow_nan=False))
    task.updated_at = utcnow()
    session.flush()


def _mark_done(session, task, result: dict) -> None:
    _checkpoint(session, task, result)
    task.status = "done"
    session.flush()


def start_or_resume(deps: Deps, cfg: ImproveConfig, *, fresh: bool = False) -> tuple[int, bool, ImproveConfig]:
    """(run id, resumed?, config in force).  The newest improve run is taken up again when its options are
    these (``--rounds`` may be larger: a finished run then gets more rounds; with as many it has nothing
    left to do); an unfinished one started with other options is refused, naming each difference, and a
    finished one lets a new run start.  ``fresh`` (--new) abandons an unfinished run and starts anew."""
    from .store import start_loop_run
    from .store.registry import IMPROVE_STATUS, latest_improve_run

    cfg.check()
    with deps.scope() as s:
        run = latest_improve_run(s)
        if run is not None and fresh:
            if run.status != "done":
                run.status = "abandoned"
                s.flush()
            run = None
        if run is not None:
            old = ImproveConfig.from_json(run.config["improve"])
            diff = [f"--{k.replace('_sha256', '').replace('_', '-')}: run {run.id} has {getattr(old, k)!r}, "
                    f"now {getattr(cfg, k)!r}" for k in ImproveConfig.FIXED if getattr(old, k) != getattr(cfg, k)]
            if diff and run.status == "done":
                run = None  # a finished experiment does not hold up another one
        if run is not None:
            if diff:
                raise ImproveError(f"improve run {run.id} is unfinished and was started with other options ("
                                   + "; ".join(diff) + "); start it again with its options to continue it, "
                                   "or pass --new to abandon it")
            holder = (run.stats or {}).get("worker", "")
            host, _, pid = holder.rpartition(":")
            if host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid():
                from .process import pid_alive

                if pid_alive(int(pid)):
                    raise ImproveError(f"improve run {run.id} is being worked on by process {pid} of this host")
            rounds = max(cfg.rounds, old.rounds)
            merged = ImproveConfig.from_json({**old.to_json(), "rounds": rounds, "poll_seconds": cfg.poll_seconds,
                                              "questions": cfg.questions, "heldout": cfg.heldout})
            run.config = {**run.config, "improve": merged.to_json()}
            if run.status != "done" or rounds > old.rounds:  # a finished run with as many rounds stays done
                run.status = IMPROVE_STATUS
            run.stats = {**(run.stats or {}), "worker": _worker()}
            s.flush()
            return run.id, True, merged
        row = start_loop_run(s, {"kind": "improve", "improve": cfg.to_json()})
        row.status = IMPROVE_STATUS
        row.stats = {"worker": _worker()}
        s.flush()
        return row.id, False, cfg


# -- versions ----------------------------------------------------------------------------------

def _versions_dir(deps: Deps) -> Path:
    if deps.versions_dir is not None:
        return Path(deps.versions_dir)
    from .finetune import models_dir

    return models_dir()


def _start_default(session, cfg: ImproveConfig) -> str:
    """Name of the default version at the start, registering a built-in model so versions have a parent."""
    from .store import register_model_version
    from .store.registry import current_default_version, find_model_version

    mv = current_default_version(session)
    if cfg.start:
        name = cfg.start
        if find_model_version(session, name) is None:
            path = None
            if cfg.backend == "local":
                from .llm.local import resolve_model

                _, path = resolve_model(name)
            register_model_version(session, name, path=path, base=None, kind="builtin",
                                   meta={"round": 0, "builtin": True})
        return name
    if mv is not None:
        return mv.name
    if cfg.backend == "fake":
        name, path = "fake", None
    else:
        from .llm.local import default_model, resolve_model

        name = default_model()
        _, path = resolve_model(name)
    if find_model_version(session, name) is None:
        register_model_version(session, name, path=path, base=None, kind="builtin",
                               meta={"round": 0, "builtin": True})
    return name


def _version_path(deps: Deps, name: str) -> str | None:
    from .store import get_model_version

    with deps.scope() as s:
        return get_model_version(s, name).path


def _run_default(deps: Deps, run_id: int, start: str) -> str:
    """The run's current default: the last candidate its gates promoted, else the model it started from."""
    from .store.registry import loop_task_rows

    with deps.scope() as s:
        rows = [(key, result) for key, _, result, _ in loop_task_rows(s, run_id, TASK_KIND, "done")]
    gates = sorted((int(k[1:].split(":")[0]), res) for k, res in rows if k.endswith(":gate") and isinstance(res, dict))
    current = start
    for _, res in gates:
        if res.get("promote"):
            current = res["candidate"]
    return current


# -- the run -------------------------------------------------------------------------------------

def run_improve(deps: Deps, run_id: int, *, progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run (or continue) the run's rounds; returns the run's state (rounds, versions, curve rows)."""
    from .store import get_loop_run

    with deps.scope() as s:
        cfg = ImproveConfig.from_json(get_loop_run(s, run_id).config["improve"])
    load = deps.load_questions
    if load is None:
        from .questions import load_questions as load
    train_pool = load(cfg.questions)
    heldout = load(cfg.heldout)
    if cfg.heldout_limit:
        heldout = heldout[: cfg.heldout_limit]
    held_ids = {_qid(q) for q in heldout} | {_norm(q.question) for q in heldout}
    pool = [q for q in train_pool if _qid(q) not in held_ids and _norm(q.question) not in held_ids]
    if not pool:
        raise ImproveError(f"{cfg.questions}: no questions left once the held-out ones are taken out")
    if not heldout:
        raise ImproveError(f"{cfg.heldout}: no held-out questions")
    rundir = Path(deps.workdir) / f"run-{run_id}"
    rundir.mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda ev: None)

    # Round 0: the starting default and its held-out numbers (every gate compares against paired ones).
    # The store's default is moved only by a gate that promotes; starting a run changes nothing.
    with deps.scope() as s:
        t0 = _ensure_task(s, run_id, "r0:start")
        if t0.status != "done":
            name = _start_default(s, cfg)
            _mark_done(s, t0, {"default": name})
    start = _task_result(deps, run_id, "r0:start")["default"]
    _eval_step(deps, cfg, run_id, 0, start, heldout, rundir, emit)

    for r in range(1, cfg.rounds + 1):
        if _task_status(deps, run_id, f"r{r}:gate") == "done":
            continue
        default = _run_default(deps, run_id, start)
        with deps.scope() as s:
            first = _task(s, run_id, f"r{r}:grow")
            if first is None:  # the round's questions and parent are fixed when it starts
                used = _used_questions(s, run_id)
                fresh = sorted((q for q in pool if _qid(q) not in used), key=lambda q: _order_key(cfg.seed, _qid(q)))
                picks = [_qid(q) for q in fresh[: cfg.per_round]]
                if not picks:
                    raise ImproveError(f"round {r}: every question of {cfg.questions} was used in earlier rounds")
                _ensure_task(s, run_id, f"r{r}:grow", {"questions": picks, "parent": default})
        info = _task_payload(deps, run_id, f"r{r}:grow")
        parent = info["parent"]
        by_id = {_qid(q): q for q in pool}
        questions = [by_id[qid] for qid in info["questions"] if qid in by_id]
        _grow_step(deps, cfg, run_id, r, parent, questions, emit)
        _oracle_step(deps, cfg, run_id, r, parent, questions, emit)
        _data_step(deps, cfg, run_id, r, parent, questions, emit)
        sft_out = _sft_step(deps, cfg, run_id, r, parent, rundir, emit)
        candidate = _dpo_step(deps, cfg, run_id, r, parent, sft_out, rundir, emit)
        _eval_step(deps, cfg, run_id, r, candidate, heldout, rundir, emit)
        _gate_step(deps, cfg, run_id, r, parent, candidate, emit)
        write_curve(deps, run_id, rundir)
    state = run_state(deps, run_id)
    with deps.scope() as s:
        run = get_loop_run(s, run_id)
        run.status = "done"
        from .store import utcnow

        run.finished_at = utcnow()
        run.stats = {**(run.stats or {}), "rounds_done": cfg.rounds, "default": state["default"]}
    paths = write_curve(deps, run_id, rundir)
    state["curve_files"] = paths
    return state


def _task_status(deps: Deps, run_id: int, key: str) -> str | None:
    with deps.scope() as s:
        t = _task(s, run_id, key)
        return None if t is None else t.status


def _task_result(deps: Deps, run_id: int, key: str) -> dict:
    with deps.scope() as s:
        t = _task(s, run_id, key)
        return dict(t.result or {}) if t is not None else {}


def _task_payload(deps: Deps, run_id: int, key: str) -> dict:
    with deps.scope() as s:
        t = _task(s, run_id, key)
        return dict(t.payload or {}) if t is not None else {}


def _used_questions(session, run_id: int) -> set[str]:
    from .store.registry import loop_task_rows

    used: set[str] = set()
    for key, payload, _, _ in loop_task_rows(session, run_id, TASK_KIND):
        if key.endswith(":grow") and isinstance(payload, dict):
            used.update(payload.get("questions", []))
    return used


def _step(deps: Deps, run_id: int, r: int, step: str, payload: dict | None = None):
    """(task id, result so far) of a step, or None when it is done."""
    with deps.scope() as s:
        t = _ensure_task(s, run_id, f"r{r}:{step}", payload)
        if t.status == "done":
            return None
        if t.status != "running":
            t.status = "running"
            t.worker = _worker()
            t.attempts += 1
            s.flush()
        return t.id, dict(t.result or {})


def _save(deps: Deps, run_id: int, r: int, step: str, result: dict, done: bool = False,
          also: Callable[[Any], None] | None = None) -> None:
    """Commit a step's checkpoint (and ``also``'s writes) in one transaction."""
    with deps.scope() as s:
        if also is not None:
            also(s)
        t = _task(s, run_id, f"r{r}:{step}")
        (_mark_done if done else _checkpoint)(s, t, result)


# -- steps -----------------------------------------------------------------------------------------

def _grow_step(deps, cfg, run_id, r, parent, questions, emit) -> None:
    from .grow import GrowConfig, grow
    from .store import save_tree

    st = _step(deps, run_id, r, "grow")
    if st is None:
        return
    _, result = st
    _die_if(f"r{r}:grow:start")
    trees: dict[str, int] = dict(result.get("trees", {}))
    seconds = float(result.get("seconds", 0.0))
    backend = deps.backend(parent, _version_path(deps, parent))
    for i, q in enumerate(questions):
        if _qid(q) in trees:
            continue
        t0 = time.perf_counter()
        res = grow(q.question, backend, GrowConfig(expansions=cfg.budget, per_side=cfg.per_side, retries=cfg.retries,
                                                   seed=cfg.seed + 1000 * r + i))
        _trace(f"r{r}:grow:{_qid(q)}")
        meta = dict(res.tree.meta)
        meta["improve"] = {"run": run_id, "round": r, "qid": _qid(q), "rejected": res.rejected,
                           "answer": q.answer, "per_side": cfg.per_side}
        holder: dict[str, int] = {}

        def write(s, q=q, res=res, meta=meta):
            holder["id"] = save_tree(s, res.tree, res.evidence, question=q.question, model_version=parent, meta=meta)

        seconds += time.perf_counter() - t0
        # The tree and the checkpoint naming it commit together: a kill never leaves a tree unrecorded.
        with deps.scope() as s:
            write(s)
            trees[_qid(q)] = holder["id"]
            _checkpoint(s, _task(s, run_id, f"r{r}:grow"), {"trees": trees, "seconds": round(seconds, 3)})
        emit({"event": "grow", "round": r, "question": q.question, "tree_id": holder["id"],
              "done": len(trees), "of": len(questions)})
        if len(trees) == 1:
            _die_if(f"r{r}:grow:unit")
    _die_if(f"r{r}:grow:done")
    _save(deps, run_id, r, "grow", {"trees": trees, "seconds": round(seconds, 3)}, done=True)


def _top_queries(session, tree_id: int, k: int, question):
    """The tree's ``k`` unlabeled premises of highest VoI (as the store computed it: model evidence and
    labels), as queries that carry their question and its gold facts (an honest dataset oracle needs them)."""
    from .oracle import Query
    from .store import tree_nodes

    nodes = [n for n in tree_nodes(session, tree_id) if n.parent_id is not None and n.n_labels == 0]
    nodes.sort(key=lambda n: (-n.voi, n.id))
    facts = tuple(getattr(question, "facts", ()) or ())
    return [Query(n.text, n.proposition_id, tree_id, n.local_id, n.voi, question=question.question, facts=facts)
            for n in (nodes if k is None else nodes[:k])]


def _ask_down(oracle, ranked: Sequence[Any], k: int) -> tuple[list, list]:
    """Ask ``oracle`` down the VoI ranking until ``k`` premises are answered (an abstention, e.g. the
    honest dataset oracle's "no gold fact settles this", costs nothing and the next premise is asked);
    a person (asynchronous oracle) is asked the top ``k`` only.  Returns (queries asked, answers)."""
    if not oracle.synchronous:
        return list(ranked[:k]), (oracle.answer(list(ranked[:k])) if k and ranked else [])
    asked: list = []
    answers: list = []
    need = k
    while need > 0 and len(asked) < len(ranked):
        batch = list(ranked[len(asked):len(asked) + need])
        asked.extend(batch)
        got = oracle.answer(batch)
        answers.extend(got)
        need -= sum(a is not None for a in got)
    return asked, answers


def _oracle_step(deps, cfg, run_id, r, parent, questions, emit) -> None:
    from .oracle import record_answers

    st = _step(deps, run_id, r, "oracle")
    if st is None:
        return
    _, result = st
    _die_if(f"r{r}:oracle:start")
    trees = _task_result(deps, run_id, f"r{r}:grow")["trees"]
    asked: dict[str, list] = dict(result.get("asked", {}))
    seconds = float(result.get("seconds", 0.0))
    backend = deps.backend(parent, _version_path(deps, parent))
    oracle = deps.oracle_for(cfg.oracle, backend, questions)
    for q in questions:
        tree_id = trees.get(_qid(q))
        if tree_id is None or str(tree_id) in asked:
            continue
        t0 = time.perf_counter()
        with deps.scope() as s:
            ranked = _top_queries(s, tree_id, None if oracle.synchronous else cfg.answers, q)
        queries, answers = _ask_down(oracle, ranked, cfg.answers)
        _trace(f"r{r}:oracle:{tree_id}")
        seconds += time.perf_counter() - t0
        with deps.scope() as s:
            stored = record_answers(s, oracle, queries, answers) if oracle.synchronous else 0
            asked[str(tree_id)] = [{"node": qq.node, "text": qq.text, "proposition_id": qq.proposition_id,
                                    "voi": qq.voi, "answered": a is not None,
                                    "value": None if a is None else (a.value if a.value is not None else a.probability)}
                                   for qq, a in zip(queries, answers)]
            _checkpoint(s, _task(s, run_id, f"r{r}:oracle"), {"asked": asked, "oracle": oracle.name,
                                                                "seconds": round(seconds, 3)})
        emit({"event": "oracle", "round": r, "tree_id": tree_id, "asked": len(queries), "stored": stored})
        if len(asked) == 1:
            _die_if(f"r{r}:oracle:unit")
    if not oracle.synchronous:
        asked = _wait_for_people(deps, cfg, asked, emit)
    _die_if(f"r{r}:oracle:done")
    _save(deps, run_id, r, "oracle", {"asked": asked, "oracle": oracle.name, "seconds": round(seconds, 3)},
          done=True)


def _wait_for_people(deps, cfg, asked: dict, emit) -> dict:
    """Human oracle: the trees are in the web app's queue; wait until every asked premise has a live label
    (any kind: true/false, probability, don't know, ill-posed), looking every ``poll_seconds``."""
    from .store import labels_for

    while True:
        missing = 0
        with deps.scope() as s:
            for items in asked.values():
                for it in items:
                    labels = [lb for lb in labels_for(s, proposition_id=it["proposition_id"])
                              if lb.annotator.role != "system"]
                    it["answered"] = bool(labels)
                    missing += not labels
        if not missing:
            return asked
        emit({"event": "waiting", "missing": missing})
        time.sleep(cfg.poll_seconds)


def _label_source(annotator, oracle_kind: str, oracle_name: str) -> str | None:
    """Where a label comes from: 'human', 'dataset' or 'model' (None: not an oracle's answer, e.g. imported)."""
    if annotator.role in ("annotator", "admin"):
        return "human"
    if annotator.name == oracle_name:
        return {"dataset": "dataset", "model": "model", "human": "human"}[oracle_kind]
    if annotator.name.startswith("oracle-model"):
        return "model"
    if annotator.name.startswith(("oracle-dataset", "oracle-facts", "oracle-strategyqa")):
        return "dataset"
    return None


def _data_step(deps, cfg, run_id, r, parent, questions, emit) -> None:
    from .datasets import add_to_buffer
    from .store import get_tree, labels_for, load_tree, tree_nodes

    st = _step(deps, run_id, r, "data")
    if st is None:
        return
    _die_if(f"r{r}:data:start")
    t0 = time.perf_counter()
    trees = _task_result(deps, run_id, f"r{r}:grow")["trees"]
    oracle_info = _task_result(deps, run_id, f"r{r}:oracle")
    oracle_name = oracle_info.get("oracle", "")
    items = []
    with deps.scope() as s:
        for q in questions:
            tree_id = trees.get(_qid(q))
            if tree_id is None:
                continue
            tree, _ = load_tree(s, tree_id)
            row = get_tree(s, tree_id)
            labels: dict[str, list[dict]] = {}
            for n in tree_nodes(s, tree_id):
                for lb in labels_for(s, proposition_id=n.proposition_id):
                    src = _label_source(lb.annotator, cfg.oracle, oracle_name)
                    if src is None:
                        continue
                    labels.setdefault(n.local_id, []).append(
                        {"source": src, "annotator": lb.annotator.name, "kind": lb.kind, "value": lb.value,
                         "probability": lb.probability, "reliability": lb.annotator.reliability})
            items.append({"qid": _qid(q), "question": q.question, "answer": q.answer, "tree_id": tree_id,
                          "facts": list(getattr(q, "facts", ()) or ()),
                          "tree": tree, "rejected": (row.meta or {}).get("improve", {}).get("rejected", []),
                          "labels": labels, "root_belief": row.root_belief})
    records, stats = round_records(items, run_id=run_id, round_no=r, self_labels=cfg.self_labels,
                                   distill=cfg.distill, per_side=cfg.per_side, question_facts=cfg.question_facts)
    if cfg.proposals:
        props = round_proposals(questions, run_id=run_id, round_no=r)
        with deps.scope() as s:
            looped = loop_round_proposals(s, run_id=run_id, round_no=r)
        records.extend(props + looped)
        stats["proposal"] = len(props) + len(looped)
        stats["proposal_from_loop"] = len(looped)
    earlier = buffer_records(deps, run_id, before=r)
    merged, added = add_to_buffer(earlier, records)
    new = merged[len(earlier):]  # what this round adds: records no earlier round (nor this one) had
    _trace(f"r{r}:data")
    stats.update({"records": len(records), "added_to_buffer": added, "buffer": len(earlier) + added,
                  "seconds": round(time.perf_counter() - t0, 3)})
    # The records are written in the transaction that marks the step done: there is no window between.
    _save(deps, run_id, r, "data", {"records": new, "stats": stats, "seconds": stats["seconds"]}, done=True)
    _die_if(f"r{r}:data:done")
    emit({"event": "data", "round": r, **{k: v for k, v in stats.items() if not isinstance(v, dict)}})


def buffer_records(deps: Deps, run_id: int, before: int | None = None) -> list[dict]:
    """The run's replay buffer: every finished ``data`` step's new records, rounds in order (``before``:
    rounds below it only)."""
    from .store.registry import loop_task_rows

    out: list[dict] = []
    with deps.scope() as s:
        rows = [(key, result, status) for key, _, result, status in loop_task_rows(s, run_id, TASK_KIND)]
    parts = []
    for key, result, status in rows:
        if key.endswith(":data") and status == "done" and isinstance(result, dict):
            rnd = int(key[1:].split(":")[0])
            if before is None or rnd < before:
                parts.append((rnd, result.get("records", [])))
    for _, recs in sorted(parts, key=lambda x: x[0]):
        out.extend(recs)
    return out


def round_records(items: Sequence[Mapping[str, Any]], *, run_id: int, round_no: int, self_labels: bool = False,
                  distill: str = "both", per_side: int = 2,
                  question_facts: bool = False) -> tuple[list[dict], dict[str, Any]]:
    """A round's training records (pure; see ``argtree.datasets``) from its trees, and counts for the card.

    ``items``: per question {qid, question, answer, tree_id, tree (ArgumentTree), rejected (grow's list),
    labels ({node id: [{source, annotator, kind, value, probability}]}), root_belief}.  Facts are taught
    only from 'human' and 'dataset' labels ('model' ones too when ``self_labels``); premises marked
    ill-posed or don't-know are never taught as premises and become DPO's rejected side.

    ``question_facts``: the question file's gold facts (``items[i]["facts"]``) are dataset truth, taught
    whether or not the oracle was asked about them: each as a fact (Yes), its rule-made negation
    (``argtree.strategyqa.negate``, only where the rules are safe) as a fact (No), and the facts as the
    premises of the root's expansion on the side of the gold answer.  Provenance ``"source": "question facts"``."""
    from .datasets import (distill_records, expansion_pair_record, expansion_sft_record, fact_record,
                           is_mechanical_negation)
    from .expand import SYSTEM, TEXT_PATTERN, direct_prompt, expansion_prompt
    import re

    allowed = {"human", "dataset"} | ({"model"} if self_labels else set())
    out: list[dict] = []
    st = {"expansion": 0, "expansion-pair": 0, "fact": 0, "distill-tree": 0, "distill-gold": 0,
          "question-fact": 0, "question-expansion": 0,
          "fact_sources": {}, "skipped_self_labels": 0, "skipped_negations": 0, "skipped_ill_posed": 0}
    for it in items:
        tree = it["tree"]
        labels = it.get("labels", {})
        base_prov = {"run": run_id, "round": round_no, "tree_id": it["tree_id"], "qid": it["qid"]}
        bad = {nid for nid, ls in labels.items() if any(lb["kind"] in ("ill_posed", "dont_know") for lb in ls)}
        # expansions: per expanded node and side, the accepted premises
        for nid in tree.nodes:
            kids = tree.children(nid)
            if not kids:
                continue
            ctx = [tree[a].text for a in reversed(tree.ancestors(nid))]
            for stance in ("for", "against"):
                prompt = expansion_prompt(tree[nid].text, stance, context=ctx, per_side=per_side)
                good, pairs_bad = [], []
                for c in kids:
                    node = tree[c]
                    if node.extra.get("stance_asked") != stance:
                        continue
                    prem = {"text": node.text, "credence": _taught_credence(node, labels.get(c, []), allowed),
                            "claim_if_true": node.extra.get("claim_if_true", 0.5),
                            "claim_if_false": node.extra.get("claim_if_false", 0.5)}
                    if c in bad:
                        st["skipped_ill_posed"] += 1
                        pairs_bad.append((node.text, "ill-posed"))
                    elif is_mechanical_negation(node.text):
                        st["skipped_negations"] += 1
                        pairs_bad.append((node.text, "mechanical-negation"))
                    else:
                        good.append((c, prem))
                prov = {**base_prov, "node": nid, "stance": stance}
                if good:
                    out.append(expansion_sft_record(SYSTEM, prompt, [p for _, p in good], prov))
                    st["expansion"] += 1
                rejected = [(rj["text"], rj["reason"]) for rj in it.get("rejected", [])
                            if rj.get("node") == nid and rj.get("stance") == stance and rj.get("attempt", 0) == 0]
                for j, (text, reason) in enumerate(pairs_bad + rejected):
                    if not good or not re.match(TEXT_PATTERN, text):
                        continue  # no chosen answer to pair with, or a text the schema could never produce
                    cid, chosen = good[j % len(good)]
                    out.append(expansion_pair_record(SYSTEM, prompt, chosen, text, reason,
                                                     {**prov, "chosen_node": cid}))
                    st["expansion-pair"] += 1
        # facts
        for nid, ls in labels.items():
            if nid == tree.root:
                continue
            value = _truth(ls, allowed)
            if any(lb["source"] == "model" for lb in ls) and not self_labels:
                st["skipped_self_labels"] += 1
            if value is None:
                continue
            srcs = sorted({lb["source"] for lb in ls if lb["source"] in allowed})
            out.append(fact_record(tree[nid].text, value, {**base_prov, "node": nid, "label_sources": srcs,
                                                           "annotators": sorted({lb["annotator"] for lb in ls
                                                                                 if lb["source"] in allowed})}))
            st["fact"] += 1
            for src in srcs:
                st["fact_sources"][src] = st["fact_sources"].get(src, 0) + 1
        if question_facts and it.get("facts"):
            st_q = _question_fact_records(it, base_prov, per_side, out)
            st["question-fact"] += st_q[0]
            st["question-expansion"] += st_q[1]
            if st_q[0]:
                st["fact_sources"]["question facts"] = st["fact_sources"].get("question facts", 0) + st_q[0]
        # search distillation
        prompt = direct_prompt(it["question"])
        if distill in ("both", "tree") and it.get("root_belief") is not None:
            recs = distill_records(prompt, float(it["root_belief"]), "tree", {**base_prov, "target": "tree belief"})
            out.extend(recs)
            st["distill-tree"] += len(recs)
        if distill in ("both", "gold") and it.get("answer") is not None:
            recs = distill_records(prompt, 1.0 if it["answer"] else 0.0, "gold", {**base_prov, "target": "gold answer"})
            out.extend(recs)
            st["distill-gold"] += len(recs)
    return out, st


def round_proposals(questions: Sequence[Any], *, run_id: int, round_no: int) -> list[dict]:
    """Proposer records from the round's questions (``argtree.propose.proposal_records``: a question file's
    ``term``/``description`` is the topic, its questions the answer; the guards' rejects and held-out
    questions left out), each with its provenance.  Questions without a term teach nothing here."""
    from .propose import proposal_records

    recs, _ = proposal_records(list(questions))
    by_term: dict[str, list[str]] = {}
    for q in questions:
        term = q.extra.get("term") if isinstance(getattr(q, "extra", None), Mapping) else None
        if isinstance(term, str):
            by_term.setdefault(" ".join(term.split()), []).append(_qid(q))
    out = []
    for rec in recs:
        term = rec.pop("term")
        rec["argtree"] = {"kind": "proposal", "provenance": {"run": run_id, "round": round_no, "term": term,
                                                             "qids": by_term.get(term, []),
                                                             "source": "question file"}}
        out.append(rec)
    return out


def loop_round_proposals(session, *, run_id: int, round_no: int) -> list[dict]:
    """Proposer records from the loop's own proposals in the store whose trees people or oracles could work
    with (``argtree.propose.loop_proposal_records``), their provenance tagged with this round; the replay
    buffer's content key keeps a later round from adding the same record twice."""
    from .propose import loop_proposal_records
    from .store.proposals import loop_proposal_items

    recs, _ = loop_proposal_records(loop_proposal_items(session))
    for rec in recs:
        rec["argtree"]["provenance"].update({"run": run_id, "round": round_no})
    return recs


def _question_fact_records(it: Mapping[str, Any], base_prov: Mapping[str, Any], per_side: int,
                           out: list[dict]) -> tuple[int, int]:
    """Append what a question's gold facts teach (see ``round_records``); returns (facts, expansions)."""
    from .datasets import expansion_sft_record, fact_record
    from .expand import SYSTEM, TEXT_PATTERN, expansion_prompt
    from .strategyqa import negate
    import re

    prov = {**base_prov, "source": "question facts", "label_sources": ["dataset"]}
    facts = [" ".join(str(f).split()) for f in it["facts"] if str(f).strip()]
    n = 0
    for f in facts:
        out.append(fact_record(f, True, {**prov, "fact": f}))
        n += 1
        neg = negate(f)
        if neg:
            out.append(fact_record(neg, False, {**prov, "fact": f, "negated": True}))
            n += 1
    usable = [f for f in facts if re.match(TEXT_PATTERN, f)][:per_side]
    if not usable or it.get("answer") is None:
        return n, 0
    stance = "for" if it["answer"] else "against"
    prem = [{"text": f, "credence": 0.95, "claim_if_true": 0.8 if it["answer"] else 0.2,
             "claim_if_false": 0.3 if it["answer"] else 0.7} for f in usable]
    tree = it.get("tree")
    claim = tree[tree.root].text if tree is not None else " ".join(str(it["question"]).split())
    out.append(expansion_sft_record(SYSTEM, expansion_prompt(claim, stance, per_side=per_side), prem,
                                    {**prov, "node": tree.root if tree is not None else None, "stance": stance}))
    return n, 1


def _truth(labels: Sequence[Mapping[str, Any]], allowed: set[str]) -> bool | None:
    """Truth from allowed labels: summed log-odds of true/false (and probability) answers; None on a tie."""
    score = 0.0
    for lb in labels:
        if lb["source"] not in allowed:
            continue
        rel = min(max(float(lb.get("reliability") or 0.9), 0.51), 0.999)
        w = math.log(rel / (1 - rel))
        if lb["value"] is not None:
            score += w if lb["value"] else -w
        elif lb.get("probability") is not None:
            p = min(max(float(lb["probability"]), 1e-3), 1 - 1e-3)
            score += math.log(p / (1 - p))
    return None if abs(score) < 1e-9 else score > 0


def _taught_credence(node, labels, allowed) -> float:
    """The credence an expansion record teaches: the oracle's truth where one was given (95% / 5%),
    else the model's own number (what it said: not taught as truth, only kept)."""
    value = _truth(labels, allowed)
    if value is not None:
        return 0.95 if value else 0.05
    c = node.extra.get("credence")
    return float(c) if isinstance(c, (int, float)) else 0.5


def _write_split(records: Sequence[dict], path: Path, kinds: Sequence[str]) -> int:
    from .datasets import write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl([r for r in records if (r.get("argtree") or {}).get("kind") in kinds], path)


def _sft_step(deps, cfg, run_id, r, parent, rundir: Path, emit) -> str:
    st = _step(deps, run_id, r, "sft")
    out = rundir / f"r{r}" / "sft-model"
    if st is None:
        return _task_result(deps, run_id, f"r{r}:sft")["out"]
    _die_if(f"r{r}:sft:start")
    buffer = buffer_records(deps, run_id)
    data = rundir / f"r{r}" / "sft.jsonl"
    n = _write_split(buffer, data, ("expansion", "fact", "distill-tree", "distill-gold", "proposal"))
    if out.exists():  # trained before a kill, not yet marked done: use it
        info = json.loads((out / "argtree_version.json").read_text(encoding="utf-8"))
    else:
        if n == 0:
            raise ImproveError(f"round {r}: no SFT records in the buffer (did the oracle answer anything?)")
        info = deps.trainer.sft(str(data), _version_path(deps, parent) or parent, str(out), steps=cfg.steps,
                                seed=cfg.seed + r)
        _trace(f"r{r}:sft")
    _die_if(f"r{r}:sft:done")
    _save(deps, run_id, r, "sft", {"out": str(out), "records": n, "data": str(data), "train": info,
                                   "seconds": info.get("seconds", 0.0)}, done=True)
    emit({"event": "sft", "round": r, "records": n, "loss": info.get("train_loss")})
    return str(out)


def _dpo_step(deps, cfg, run_id, r, parent, sft_out: str, rundir: Path, emit) -> str:
    """Train DPO (if pairs and ``cfg.dpo``) and register the round's candidate; returns its name."""
    import shutil

    from .store import register_model_version

    name = f"improve{run_id}-r{r}"
    st = _step(deps, run_id, r, "dpo")
    if st is None:
        return _task_result(deps, run_id, f"r{r}:dpo")["name"]
    _die_if(f"r{r}:dpo:start")
    target = _versions_dir(deps) / name
    buffer = buffer_records(deps, run_id)
    data = rundir / f"r{r}" / "dpo.jsonl"
    n_pairs = _write_split(buffer, data, ("expansion-pair",))
    info: dict[str, Any] = {}
    if target.exists():
        info = json.loads((target / "argtree_version.json").read_text(encoding="utf-8"))
    elif cfg.dpo and n_pairs:
        info = deps.trainer.dpo(str(data), sft_out, str(target), steps=cfg.steps, seed=cfg.seed + r)
        _trace(f"r{r}:dpo")
    else:  # no pairs (or --no-dpo): the SFT model is the candidate
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{name}.tmp{os.getpid()}"
        shutil.copytree(sft_out, tmp)
        os.replace(tmp, target)
        info = {"stage": "dpo", "skipped": "no preference pairs" if cfg.dpo else "--no-dpo"}
        _trace(f"r{r}:dpo")
    data_step = _task_result(deps, run_id, f"r{r}:data")
    sft_info = _task_result(deps, run_id, f"r{r}:sft")
    kinds: dict[str, int] = {}
    for rec in buffer:
        k = (rec.get("argtree") or {}).get("kind", "?")
        kinds[k] = kinds.get(k, 0) + 1
    meta = {"round": r, "run": run_id, "parent": parent, "trainer": deps.trainer.name,
            "how": "LoRA continued from the parent's adapter (a fresh LoRA on a base without one); SFT then DPO",
            "data": {"buffer": len(buffer), "by_kind": kinds, "sft_records": sft_info.get("records"),
                     "dpo_pairs": n_pairs, "round_new": data_step.get("stats", {}).get("added_to_buffer")},
            "provenance": {"facts_from": data_step.get("stats", {}).get("fact_sources", {}),
                           "self_labels": cfg.self_labels, "oracle": cfg.oracle, "distill": cfg.distill},
            "stages": {"sft": sft_info.get("train", {}), "dpo": info}, "status": "candidate"}

    def register(s):
        from .store.registry import find_model_version

        if find_model_version(s, name) is None:
            register_model_version(s, name, path=str(target), base=None, kind="lora" if deps.trainer.writes_weights
                                   else "recorded", parent=parent, meta=meta)

    _die_if(f"r{r}:dpo:done")
    _save(deps, run_id, r, "dpo", {"name": name, "path": str(target), "pairs": n_pairs, "train": info,
                                   "seconds": info.get("seconds", 0.0)}, done=True, also=register)
    _register_file(name, str(target), parent, meta, deps)
    emit({"event": "dpo", "round": r, "pairs": n_pairs, "candidate": name})
    return name


def _register_file(name: str, path: str, parent: str, meta: dict, deps: Deps) -> None:
    """Keep the file registry (ARGTREE_HOME/versions/registry.json) in step, for --model NAME without a DB."""
    if deps.versions_dir is not None:
        return
    try:
        from .finetune import _write_registry, registry

        versions = [v for v in registry() if v["name"] != name]
        versions.append({"name": name, "path": path, "base": parent, "kind": "lora", "meta": meta,
                         "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        _write_registry(versions)
    except Exception as err:  # noqa: BLE001 - the store holds the version; the file is a convenience
        deps.log(f"note: {name} not added to the file registry ({type(err).__name__}: {err})")


# -- evaluation and the gate -----------------------------------------------------------------------

def _eval_step(deps, cfg, run_id, r, version: str, heldout, rundir: Path, emit) -> None:
    from .store.registry import update_model_version_meta

    st = _step(deps, run_id, r, "eval", {"version": version})
    if st is None:
        return
    _, result = st
    _die_if(f"r{r}:eval:start")
    evaluate = deps.evaluate
    if evaluate is None:
        from .questions import evaluate_questions as evaluate
    chunks: dict[str, list] = dict(result.get("chunks", {}))
    seconds = float(result.get("seconds", 0.0))
    backend = deps.backend(version, _version_path(deps, version))
    for c in range(0, len(heldout), EVAL_CHUNK):
        if str(c) in chunks:
            continue
        part = heldout[c:c + EVAL_CHUNK]
        t0 = time.perf_counter()
        out = evaluate(backend, part, budget=cfg.eval_budget, seed=cfg.seed)
        _trace(f"r{r}:eval:{c}")
        seconds += time.perf_counter() - t0
        chunks[str(c)] = [compact_record(rec, q) for rec, q in zip(out["records"], part)]
        with deps.scope() as s:
            # The held-out trees are kept (marked held out: no training step ever reads them) with the checkpoint.
            ids = _save_heldout_trees(s, out["records"], part, run_id=run_id, round_no=r, version=version)
            for rec, tree_id in zip(chunks[str(c)], ids):
                rec["tree_id"] = tree_id
            _checkpoint(s, _task(s, run_id, f"r{r}:eval"), {"version": version, "chunks": chunks,
                                                             "seconds": round(seconds, 3)})
        emit({"event": "eval", "round": r, "version": version, "done": min(c + EVAL_CHUNK, len(heldout)),
              "of": len(heldout)})
        if len(chunks) == 1:
            _die_if(f"r{r}:eval:unit")
    records = [rec for c in sorted(chunks, key=int) for rec in chunks[c]]
    metrics = summarize(records, seed=cfg.seed)
    heldout_meta = {"direct": metrics["direct"], "tree": metrics["tree"], "n": metrics["n"],
                    "file_sha256": cfg.heldout_sha256, "limit": cfg.heldout_limit, "budget": cfg.eval_budget,
                    "run": run_id, "round": r}
    _die_if(f"r{r}:eval:done")
    _save(deps, run_id, r, "eval", {"version": version, "chunks": chunks, "metrics": metrics,
                                    "seconds": round(seconds, 3)}, done=True,
          also=lambda s: update_model_version_meta(s, version, heldout=heldout_meta))
    emit({"event": "evaluated", "round": r, "version": version, "direct_brier": metrics["direct"]["brier"],
          "tree_brier": metrics["tree"]["brier"]})


def _save_heldout_trees(session, records, questions, *, run_id: int, round_no: int, version: str) -> list[int | None]:
    """Store each held-out record's tree (``meta["improve"]["heldout"]``: never training data, never queued);
    ids in order."""
    from .io import from_dict
    from .store import save_tree

    ids: list[int | None] = []
    for rec, q in zip(records, questions):
        doc = rec.get("tree_json")
        if not isinstance(doc, Mapping):
            ids.append(None)
            continue
        tree, evidence = from_dict(doc)
        meta = dict(tree.meta)
        meta["improve"] = {"run": run_id, "round": round_no, "qid": _qid(q), "heldout": True, "version": version,
                           "answer": getattr(q, "answer", None)}
        # archived: kept and browsable, but never in the oracle queue (nobody labels a held-out question's tree)
        ids.append(save_tree(session, tree, evidence, question=q.question, model_version=version, meta=meta,
                             status="archived", priority=0.0))
    return ids


def _eval_records_of(deps: Deps, run_id: int, version: str) -> list[dict]:
    from .store.registry import loop_task_rows

    with deps.scope() as s:
        rows = [(key, result) for key, _, result, _ in loop_task_rows(s, run_id, TASK_KIND, "done")]
    for key, result in rows:
        if key.endswith(":eval") and isinstance(result, dict) and result.get("version") == version:
            return [rec for c in sorted(result["chunks"], key=int) for rec in result["chunks"][c]]
    raise ImproveError(f"no held-out evaluation of {version!r} in run {run_id}")


def _gate_step(deps, cfg, run_id, r, parent, candidate: str, emit) -> None:
    from .store.registry import set_default_version, update_model_version_meta

    st = _step(deps, run_id, r, "gate")
    if st is None:
        return
    _die_if(f"r{r}:gate:start")
    t0 = time.perf_counter()
    cand = _eval_records_of(deps, run_id, candidate)
    base = _eval_records_of(deps, run_id, parent)
    decision = gate_decision(cand, base, seed=cfg.seed)
    decision.update({"candidate": candidate, "default_before": parent,
                     "default_after": candidate if decision["promote"] else parent,
                     "seconds": round(time.perf_counter() - t0, 3)})

    def apply(s):
        update_model_version_meta(s, candidate, gate=decision,
                                  status="default" if decision["promote"] else "candidate")
        if decision["promote"]:
            set_default_version(s, candidate)

    _trace(f"r{r}:gate")
    # The decision, the version's card and the new default commit with the step's done mark.
    _save(deps, run_id, r, "gate", decision, done=True, also=apply)
    _die_if(f"r{r}:gate:done")
    emit({"event": "gate", "round": r, **decision})


def paired_interval(a: Sequence[float], b: Sequence[float], seed: int = 0, n: int = BOOTSTRAP,
                    level: float = 0.95) -> list[float]:
    """[lo, mean, hi]: bootstrap interval of the mean of a_i - b_i (paired by position)."""
    import numpy as np

    d = np.asarray(a, float) - np.asarray(b, float)
    if d.size == 0:
        raise ImproveError("no paired numbers to compare")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(d.mean()), float(hi)]


def gate_decision(candidate: Sequence[Mapping], default: Sequence[Mapping], *, seed: int = 0) -> dict[str, Any]:
    """Promote iff the candidate's held-out tree Brier beats the default's: the 95% bootstrap interval of the
    paired per-question difference (candidate - default) lies below 0.  Records pair by question id."""
    by_id = {rec["qid"]: rec for rec in default}
    pairs = [(c, by_id[c["qid"]]) for c in candidate if c["qid"] in by_id and c.get("answer") is not None]
    if not pairs:
        raise ImproveError("the candidate and the default share no labeled held-out question")
    sq = lambda p, y: (float(p) - (1.0 if y else 0.0)) ** 2  # noqa: E731
    a = [sq(c["tree"], c["answer"]) for c, _ in pairs]
    b = [sq(d["tree"], d["answer"]) for _, d in pairs]
    interval = paired_interval(a, b, seed=seed)
    ad = [sq(c["direct"], c["answer"]) for c, _ in pairs]
    bd = [sq(d["direct"], d["answer"]) for _, d in pairs]
    return {"promote": interval[2] < 0.0, "n": len(pairs), "metric": "tree brier",
            "tree_brier_diff": interval, "direct_brier_diff": paired_interval(ad, bd, seed=seed),
            "candidate_tree_brier": sum(a) / len(a), "default_tree_brier": sum(b) / len(b)}


# -- metrics -----------------------------------------------------------------------------------------

def _p(value) -> float | None:
    """A probability from an evaluation record's field: a number, or {"calibrated"/"p"/"belief": x}."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, Mapping):
        for k in ("calibrated", "p", "belief", "tree", "value"):
            if isinstance(value.get(k), (int, float)):
                return float(value[k])
    return None


def compact_record(rec: Mapping[str, Any], question) -> dict[str, Any]:
    """What the run keeps of one held-out answer: the two root numbers, the truth, and premise quality."""
    from .io import from_dict

    direct = _p(rec.get("direct"))
    tree_p = _p(rec.get("tree"))
    tree_doc = None
    for k in ("tree_json", "argtree", "tree_doc", "tree"):
        if isinstance(rec.get(k), Mapping) and rec[k].get("format") == "argtree/1":
            tree_doc = rec[k]
            break
    quality: dict[str, Any] = {}
    if tree_doc is not None:
        try:
            tree, _ = from_dict(tree_doc)
            quality = premise_quality([tree], [tuple(getattr(question, "facts", ()) or ())])
        except Exception as err:  # noqa: BLE001 - quality is a report; a bad record must not stop the gate
            quality = {"error": f"{type(err).__name__}: {err}"[:200]}
    answer = rec.get("answer", getattr(question, "answer", None))
    return {"qid": _qid(question), "answer": answer,
            "direct": 0.5 if direct is None else direct, "tree": 0.5 if tree_p is None else tree_p,
            "direct_missing": direct is None, "quality": quality}


def premise_quality(trees: Sequence[Any], facts: Sequence[Sequence[str]] | None = None,
                    asked: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Counts behind the curve's premise-quality columns, for one or more grown trees: accepted premises,
    guard rejections, mechanical negations among the accepted, best content-word overlap (Jaccard) of
    each premise with the question's gold facts; ``asked``: oracle queries ({"answered": bool})."""
    from .datasets import is_mechanical_negation
    from .expand import similarity

    accepted = rejected = negations = 0
    overlaps: list[float] = []
    for i, tree in enumerate(trees):
        growth = tree.meta.get("growth", {}) if isinstance(tree.meta, Mapping) else {}
        rejected += int(growth.get("rejected", 0) or 0)
        gold = list(facts[i]) if facts is not None and i < len(facts) else []
        for nid, node in tree.nodes.items():
            if nid == tree.root:
                continue
            accepted += 1
            negations += is_mechanical_negation(node.text)
            if gold:
                overlaps.append(max(similarity(node.text, f) for f in gold))
    return {"accepted": accepted, "rejected": rejected, "negations": negations,
            "overlap_sum": float(sum(overlaps)), "overlap_n": len(overlaps),
            "asked": len(asked), "decided": sum(1 for a in asked if a.get("answered"))}


def _merge_quality(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("accepted", "rejected", "negations", "overlap_sum", "overlap_n", "asked", "decided")
    tot = {k: sum(p.get(k, 0) for p in parts if isinstance(p, Mapping)) for k in keys}
    share = lambda a, b: (a / b) if b else None  # noqa: E731
    return {**tot, "rejected_share": share(tot["rejected"], tot["rejected"] + tot["accepted"]),
            "negation_share": share(tot["negations"], tot["accepted"]),
            "decided_share": share(tot["decided"], tot["asked"]),
            "fact_overlap": share(tot["overlap_sum"], tot["overlap_n"])}


def summarize(records: Sequence[Mapping[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Held-out metrics from compact records: per root number (direct, tree) accuracy, Brier, log loss,
    ECE, each with a [lo, value, hi] 95% bootstrap interval (``*_ci``), the paired tree - direct Brier
    difference, and premise quality."""
    import numpy as np

    from .evaluate import ece, log_loss

    labeled = [r for r in records if r.get("answer") is not None]
    if not labeled:
        raise ImproveError("no held-out question has a gold answer: nothing to score")
    y = np.array([1.0 if r["answer"] else 0.0 for r in labeled])
    out: dict[str, Any] = {"n": len(labeled)}
    for name in ("direct", "tree"):
        p = np.array([float(r[name]) for r in labeled])
        pairs = np.stack([p, y], axis=1)
        acc = lambda m: float(np.mean((m[:, 0] >= 0.5) == (m[:, 1] == 1)))  # noqa: E731
        bri = lambda m: float(np.mean((m[:, 0] - m[:, 1]) ** 2))  # noqa: E731
        out[name] = {"accuracy": acc(pairs), "brier": bri(pairs), "log_loss": log_loss(p, y), "ece": ece(p, y),
                     "accuracy_ci": _interval_rows(pairs, acc, seed), "brier_ci": _interval_rows(pairs, bri, seed)}
    sq = lambda k: [(float(r[k]) - (1.0 if r["answer"] else 0.0)) ** 2 for r in labeled]  # noqa: E731
    out["paired"] = {"brier_tree_minus_direct": paired_interval(sq("tree"), sq("direct"), seed=seed)}
    out["quality"] = _merge_quality([r.get("quality", {}) for r in labeled])
    return out


def _interval_rows(m, stat, seed: int) -> list[float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(m), size=(BOOTSTRAP, len(m)))
    boots = np.array([stat(m[i]) for i in idx])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return [float(lo), float(stat(m)), float(hi)]


# -- state and the learning curve ---------------------------------------------------------------------

def run_state(deps: Deps, run_id: int) -> dict[str, Any]:
    """Everything the curve shows, read from the store: per round its version, gate, metrics, data,
    premise quality and the seconds of each step."""
    from .store import get_loop_run
    from .store.registry import current_default_version, loop_task_rows

    with deps.scope() as s:
        run = get_loop_run(s, run_id)
        cfg = dict(run.config.get("improve", {}))
        status = run.status
        rows = [(key, st, res, pl) for key, pl, res, st in loop_task_rows(s, run_id, TASK_KIND)]
        mv = current_default_version(s)
        store_default = None if mv is None else mv.name
    tasks = {key: (st, res or {}, pl or {}) for key, st, res, pl in rows}
    default = tasks.get("r0:start", (None, {}, {}))[1].get("default")
    for r in sorted(int(k[1:].split(":")[0]) for k in tasks if k.endswith(":gate")):
        st, res, _ = tasks[f"r{r}:gate"]
        if st == "done" and res.get("promote"):
            default = res["candidate"]
    rounds = []
    r = 0
    while f"r{r}:eval" in tasks or (r == 0 and "r0:start" in tasks):
        st, ev, pl = tasks.get(f"r{r}:eval", (None, {}, {}))
        row: dict[str, Any] = {"round": r, "version": ev.get("version") or pl.get("version"),
                               "eval_done": st == "done"}
        if st == "done":
            row["heldout"] = ev["metrics"]
        seconds = {}
        for step in STEPS:
            t = tasks.get(f"r{r}:{step}")
            if t is not None and isinstance(t[1], Mapping) and "seconds" in t[1]:
                seconds[step] = t[1]["seconds"]
        row["seconds"] = seconds
        if r > 0:
            gate = tasks.get(f"r{r}:gate", (None, {}, {}))
            row["gate"] = gate[1] if gate[0] == "done" else None
            data = tasks.get(f"r{r}:data", (None, {}, {}))
            row["data"] = data[1].get("stats") if data[0] == "done" else None
            asked = tasks.get(f"r{r}:oracle", (None, {}, {}))[1].get("asked", {})
            flat = [a for items in asked.values() for a in items]
            row["oracle_decided_share"] = (sum(1 for a in flat if a.get("answered")) / len(flat)) if flat else None
            row["parent"] = tasks.get(f"r{r}:grow", (None, {}, {}))[2].get("parent")
        rounds.append(row)
        r += 1
    return {"run_id": run_id, "status": status, "config": cfg, "default": default, "store_default": store_default,
            "rounds": rounds}


def write_curve(deps: Deps, run_id: int, rundir: Path) -> dict[str, str]:
    """curve.json, curve.md and curve.png in the run's directory (from the store's numbers)."""
    from .curve import curve_rows, plot_curve, to_markdown

    state = run_state(deps, run_id)
    rows = curve_rows(state)
    rundir.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(rundir / "curve.json"), "markdown": str(rundir / "curve.md"),
             "png": str(rundir / "curve.png")}
    _atomic_text(paths["json"], json.dumps({"run_id": run_id, "rows": rows}, indent=1))
    _atomic_text(paths["markdown"], to_markdown(rows, run_id))
    plot_curve(rows, paths["png"], title=f"argtree improve run {run_id}")
    return paths


def _atomic_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
