"""``argtree bench``: benchmarks that measure whether the system's choices pay off.

``argtree bench oracle-efficiency`` runs the question-selection policies of
:mod:`argtree.simulate` on simulated worlds with known truth and writes a JSON
file with every number, a Markdown report and a PNG plot.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import click

from ..simulate import POLICIES, SHAPES
from . import InputError, console, print_json

HEADLINE_NOISE = 1.0
REPORT_AT = (0, 1, 2, 4, 8, 16)


def default_grid() -> list[tuple[str, float, float]]:
    """(shape, cpt_noise, answer_noise) of the full benchmark."""
    grid = [(s, c, 0.0) for s in SHAPES for c in (0.0, 0.5, HEADLINE_NOISE, 2.0)]
    grid += [(s, HEADLINE_NOISE, 0.1) for s in ("random", "chain")]
    return grid


def _evaluate(cfg):
    from ..simulate import evaluate

    return evaluate(cfg)


@click.group()
def bench() -> None:
    """Benchmarks of the system's claims, each reproducible from one command and a seed."""


@bench.command("oracle-efficiency")
@click.option("--worlds", type=click.IntRange(min=2), default=500, show_default=True,
              help="Simulated worlds per configuration (the same worlds for every policy).")
@click.option("--nodes", type=click.IntRange(min=2), default=25, show_default=True, help="Nodes per tree.")
@click.option("--answers", type=click.IntRange(min=8), default=16, show_default=True,
              help="Oracle answers per world (at least 8: the report compares every policy after 8).")
@click.option("--shape", "shapes", multiple=True,
              type=click.Choice(SHAPES),
              help="Tree shapes (repeatable).  With no --shape/--cpt-noise/--answer-noise the full grid runs: "
                   "every shape at CPT noise 0, 0.5, 1, 2, plus random and chain with answer noise 0.1.")
@click.option("--cpt-noise", "cpt_noises", multiple=True, type=click.FloatRange(min=0.0),
              help="Std. dev. of the noise added to every CPT entry in log-odds (repeatable; 1.0 = moderate).")
@click.option("--answer-noise", "answer_noises", multiple=True, type=click.FloatRange(0.0, 0.5, max_open=True),
              help="Chance the oracle's answer is wrong (repeatable); the system treats answers as soft evidence.")
@click.option("--strength", type=click.FloatRange(min=0.0), default=1.0, show_default=True,
              help="Std. dev. of each edge's half log-odds gap between P(child|parent) and P(child|not parent).")
@click.option("--policy", "policies", multiple=True, type=click.Choice(list(POLICIES)),
              help="Policies to run (repeatable; default all).")
@click.option("--model-quality", "qualities", multiple=True, type=click.FloatRange(0.5, 1.0, max_open=True),
              help="The system also sees each premise through a calibrated model credence that is right with this "
                   "probability (repeatable; 0.5 = useless).  Default: no model evidence.")
@click.option("--model-evidence", "model_mode", type=click.Choice(["frontier", "all"]), default="frontier",
              show_default=True, help="With --model-quality: credences count on leaves only, or on every premise.")
@click.option("--seed", type=int, default=0, show_default=True, help="World w of a run is drawn from seed [seed, w].")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes, one configuration each.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/results", show_default=True,
              help="Where oracle_efficiency.{json,md,png} are written.")
@click.option("--json", "as_json", is_flag=True, help="Print every number as one JSON document.")
def oracle_efficiency(worlds, nodes, answers, shapes, cpt_noises, answer_noises, strength, policies, qualities,
                      model_mode, seed, processes, out_dir, as_json) -> None:
    """How many oracle answers each question-selection policy needs for a good root belief.

    Every world is a random argument tree with random CPTs whose nodes' truth is
    sampled from the tree; the system sees only a noisy copy of the CPTs and the
    oracle's answers.  After each answer we score the system's P(root) against the
    hidden root: Brier score and accuracy, averaged over the worlds.  "E-Brier" is
    the same Brier averaged over the root's truth given all premises' truths, an
    unbiased lower-variance estimate of the same mean.
    """
    from ..simulate import Config

    if shapes or cpt_noises or answer_noises:
        grid = list(itertools.product(shapes or ("random",), cpt_noises or (HEADLINE_NOISE,), answer_noises or (0.0,)))
    else:
        grid = default_grid()
    configs = [Config(shape=s, nodes=nodes, cpt_noise=c, answer_noise=a, worlds=worlds, answers=answers,
                      strength=strength, seed=seed, policies=tuple(policies) or tuple(POLICIES),
                      model_quality=mq, model_mode=model_mode)
               for s, c, a in grid for mq in (qualities or (None,))]
    results = _run_all(configs, processes, quiet=as_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = _command_line(worlds, nodes, answers, shapes, cpt_noises, answer_noises, strength, policies, seed)
    command += "".join(f" --model-quality {q:g}" for q in qualities)
    command += f" --model-evidence {model_mode}" if qualities else ""
    doc = {"command": command, "results": _rounded(results)}
    (out / "oracle_efficiency.json").write_text(json.dumps(doc) + "\n")
    (out / "oracle_efficiency.md").write_text(markdown_report(results, command))
    plot(results, out / "oracle_efficiency.png")
    if as_json:
        print_json(doc)
        return
    _print_summary(results)
    console().print(f"Wrote {out / 'oracle_efficiency.md'}, {out / 'oracle_efficiency.json'}, "
                    f"{out / 'oracle_efficiency.png'}")


def _run_all(configs, processes: int, quiet: bool) -> list[dict]:
    from rich.progress import Progress

    results: list[dict | None] = [None] * len(configs)
    with Progress(console=console(), disable=quiet, transient=True) as bar:
        task = bar.add_task("simulating", total=len(configs))
        if processes > 1 and len(configs) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(min(processes, len(configs))) as pool:
                for i, res in pool.imap_unordered(_indexed, list(enumerate(configs))):
                    results[i] = res
                    bar.advance(task)
        else:
            for i, cfg in enumerate(configs):
                results[i] = _evaluate(cfg)
                bar.advance(task)
    return results  # type: ignore[return-value]


def _rounded(value, digits: int = 6):
    """Floats to ``digits`` significant decimals, so the JSON stays small and diffs stay readable."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, digits) for v in value]
    return value


def _indexed(item):
    i, cfg = item
    return i, _evaluate(cfg)


def _command_line(worlds, nodes, answers, shapes, cpt_noises, answer_noises, strength, policies, seed) -> str:
    parts = ["argtree bench oracle-efficiency", f"--seed {seed}"]
    defaults = {"--worlds": (worlds, 500), "--nodes": (nodes, 25), "--answers": (answers, 16),
                "--strength": (strength, 1.0)}
    parts += [f"{k} {v:g}" for k, (v, d) in defaults.items() if v != d]
    parts += [f"--shape {s}" for s in shapes] + [f"--cpt-noise {c:g}" for c in cpt_noises]
    parts += [f"--answer-noise {a:g}" for a in answer_noises] + [f"--policy {p}" for p in policies]
    return " ".join(parts)


def _label(cfg: dict) -> str:
    s = f"{cfg['shape']}, CPT noise {cfg['cpt_noise']:g}"
    s += f", answer noise {cfg['answer_noise']:g}" if cfg["answer_noise"] else ""
    if cfg.get("model_quality") is not None:
        s += f", model quality {cfg['model_quality']:g} ({cfg.get('model_mode', 'frontier')})"
    return s


def _fmt_reach(n, cap: int) -> str:
    return f">{cap}" if n is None else str(n)


def _ratio(n, base: int, cap: int) -> str:
    return f">{cap / base:.1f}×" if n is None else f"{n / base:.1f}×"


def _criterion(res: dict) -> str:
    """The issue's Show criterion: uncertainty and random after 8 answers are still worse than
    voi-shift after 2 (paired E-Brier difference; "yes" when its 95% interval is above zero)."""
    pol = res["policies"]
    if not res.get("target") or "uncertainty" not in pol or "random" not in pol:
        return "n/a"
    lows = [pol[p]["vs_target"]["expected_brier"]["mean_diff"] for p in ("uncertainty", "random")]
    if all(m - h > 0 for m, h in lows):
        return "yes"
    return "yes (not significant)" if all(m > 0 for m, _ in lows) else "no"


def _diff(res: dict, policy: str) -> str:
    row = res["policies"].get(policy)
    if not row or "vs_target" not in row:
        return "–"
    m, h = row["vs_target"]["expected_brier"]["mean_diff"]
    return f"{m:+.4f} ± {h:.4f}"


GAP_POLICIES = ("voi-shift", "batch4-shift", "influence", "breadth-first", "uncertainty", "random")


def markdown_report(results: list[dict], command: str) -> str:
    lines = [f"Reproduce: `{command}`", ""]
    first = results[0]["config"]
    lines.append(f"{first['worlds']} worlds per configuration, {first['nodes']} nodes, seed {first['seed']}, "
                 f"edge strength {first['strength']:g}.  E-Brier: expected Brier given every premise's truth "
                 f"(same mean as the Brier against the sampled root, lower variance); Brier: against the sampled "
                 f"root.  ± is the 95% interval of the paired per-world difference.  \"90% gap\": answers until "
                 f"the mean E-Brier has come 90% of the way from no answers to every premise answered.")
    lines.append("")
    # Summary across configurations.
    lines += ["| configuration | voi-shift@2 | uncertainty@8 | random@8 | breadth-first@8 "
              "| all premises answered (noisy / true CPTs) | uncertainty@8 − voi-shift@2 | random@8 − voi-shift@2 "
              "| Show criterion | answers to 90% gap: " + " / ".join(GAP_POLICIES) + " |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        pol, t = res["policies"], res.get("target")
        if not t:
            continue
        cap = res["config"]["answers"]
        at = lambda p, k: f"{pol[p]['expected_brier'][k][0]:.4f}" if p in pol else "–"  # noqa: E731
        gap = " / ".join(_fmt_reach(pol[p]["to_gap90"], cap) if p in pol else "–" for p in GAP_POLICIES)
        ref = res["reference"]
        lines.append(f"| {_label(res['config'])} | {at('voi-shift', t['answers'])} | {at('uncertainty', 8)} | "
                     f"{at('random', 8)} | {at('breadth-first', 8)} | "
                     f"{ref['all_answered_noisy_cpts'][0]:.4f} / {ref['all_answered_true_cpts'][0]:.4f} | "
                     f"{_diff(res, 'uncertainty')} | {_diff(res, 'random')} | {_criterion(res)} | {gap} |")
    lines.append("")
    # Per-policy detail at the headline noise.
    for res in results:
        cfg = res["config"]
        if cfg["cpt_noise"] != HEADLINE_NOISE or cfg["answer_noise"] or not res.get("target"):
            continue
        t, cap = res["target"], cfg["answers"]
        pts = [k for k in REPORT_AT if k <= cap]
        lines += [f"**{_label(cfg)}** (target: voi-shift after {t['answers']} answers, E-Brier "
                  f"{t['expected_brier']:.4f}, Brier {t['brier']:.4f})", ""]
        lines.append("| policy | " + " | ".join(f"E-Brier@{k}" for k in pts) + " | Brier@2 | Brier@8 | acc@2 | acc@8 "
                     "| answers to target (E-Brier / Brier) | ratio | E-Brier@8 − target | depth of questions 1–2 / 1–8 |")
        lines.append("|---" * (len(pts) + 10) + "|")
        for name, row in res["policies"].items():
            eb, br, acc = row["expected_brier"], row["brier"], row["accuracy"]
            reach = row["to_target"]
            vs = row["vs_target"]["expected_brier"]["mean_diff"]
            cells = [name] + [f"{eb[k][0]:.4f}" for k in pts]
            cells += [f"{br[k][0]:.4f}" if k <= cap else "–" for k in (2, 8)]
            cells += [f"{acc[k][0]:.3f}" if k <= cap else "–" for k in (2, 8)]
            cells += [f"{_fmt_reach(reach['expected_brier'], cap)} / {_fmt_reach(reach['brier'], cap)}",
                      _ratio(reach["expected_brier"], t["answers"], cap), f"{vs[0]:+.4f} ± {vs[1]:.4f}",
                      f"{row['question_depth']['2']:.2f} / {row['question_depth']['8']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    """Root Brier vs answers per policy, one column per shape at the headline CPT noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [r for r in results if r["config"]["cpt_noise"] == HEADLINE_NOISE and not r["config"]["answer_noise"]]
    panels = panels or results[:4]
    fig, axes = plt.subplots(2, len(panels), figsize=(3.6 * len(panels), 6.4), squeeze=False, sharex=True)
    styles = {"voi-shift": ("C0", "-"), "voi-decision": ("C1", "--"), "voi-info": ("C2", ":"),
              "batch4-shift": ("C3", "-."), "uncertainty": ("C4", "-"), "influence": ("C5", "--"),
              "breadth-first": ("C6", ":"), "random": ("C7", "-")}
    for col, res in enumerate(panels):
        for row, metric in enumerate(("brier", "expected_brier")):
            ax = axes[row, col]
            for name, data in res["policies"].items():
                y = [m for m, _ in data[metric]]
                color, ls = styles.get(name, ("k", "-"))
                ax.plot(range(len(y)), y, color=color, linestyle=ls, label=name, linewidth=1.4)
            ref, suffix = res["reference"], "_brier" if metric == "brier" else ""
            ax.axhline(ref["all_answered_noisy_cpts" + suffix][0], color="0.5", linewidth=0.8, linestyle="--")
            ax.axhline(ref["all_answered_true_cpts" + suffix][0], color="0.2", linewidth=0.8, linestyle=":")
            if row == 0:
                ax.set_title(_label(res["config"]), fontsize=9)
            if row == 1:
                ax.set_xlabel("oracle answers")
            if col == 0:
                ax.set_ylabel("root Brier (vs sampled root)" if metric == "brier" else "root E-Brier")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    cfg = panels[0]["config"]
    fig.suptitle(f"Root Brier vs oracle answers ({cfg['worlds']} worlds, {cfg['nodes']} nodes, seed {cfg['seed']}); "
                 "dashed: all premises answered (noisy CPTs), dotted: same with true CPTs", fontsize=9)
    fig.tight_layout()
    # A 256-colour palette PNG: a third of the size of matplotlib's RGBA one, same look (Pillow ships with matplotlib).
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    plt.close(fig)
    Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def _print_summary(results: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="Oracle efficiency: mean E-Brier of the root (lower is better); "
                        "σ CPT noise, ε answer noise")
    for col in ("world", "VoI@2", "unc@8", "rand@8", "bfs@8", "all", "Show"):
        table.add_column(col, justify="left" if col == "world" else "right", no_wrap=True)
    for res in results:
        pol, t = res["policies"], res.get("target")
        if not t:
            continue
        at = lambda p, k: f"{pol[p]['expected_brier'][k][0]:.4f}" if p in pol else "–"  # noqa: E731
        cfg = res["config"]
        label = f"{cfg['shape']} σ={cfg['cpt_noise']:g}" + (f" ε={cfg['answer_noise']:g}" if cfg["answer_noise"] else "")
        table.add_row(label, at("voi-shift", t["answers"]), at("uncertainty", 8), at("random", 8),
                      at("breadth-first", 8), f"{res['reference']['all_answered_noisy_cpts'][0]:.4f}",
                      _criterion(res).replace("yes (not significant)", "n.s."))
    console().print(table)


# -- argtree bench world (issue 17) ----------------------------------------------------------------

WORLD_ASK_ALL = 64  # premises per tree handed to the policy oracle, which answers --answers of them


@bench.command("world")
@click.option("--seed", type=int, default=0, show_default=True, help="World, split, growth and training seed.")
@click.option("--entities", type=click.IntRange(min=3), default=12, show_default=True,
              help="People in the world (towns and kinds of animal: a third as many, at least 3 each).")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--per-round", type=click.IntRange(min=1), default=8, show_default=True,
              help="Q: training questions per round.")
@click.option("--answers", type=click.IntRange(min=0), default=2, show_default=True,
              help="K: oracle answers per training tree (the same budget for every policy).")
@click.option("--policy", "policies", multiple=True, type=click.Choice(["voi", "random"]),
              help="Which premises get the K answers: the top-VoI answerable ones, or random answerable ones "
                   "(repeatable; default both, same world, seeds and budget).")
@click.option("--backend", type=click.Choice(["local", "learner", "fake"]), default="local", show_default=True,
              help="local: the current default model, trained with TRL; learner: an idealized learner of the world "
                   "(argtree.world.WorldLearner: perfect memory of its training records, knows the rules; a control "
                   "for the machinery, not a language model); fake: the scripted backend with a trainer that records "
                   "versions (the machinery only: it learns nothing).")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Optimizer steps per training stage (SFT, then DPO).")
@click.option("--budget", type=click.IntRange(min=1), default=1, show_default=True,
              help="Expansions per training tree.")
@click.option("--eval-budget", type=click.IntRange(min=1), default=1, show_default=True,
              help="Expansions per held-out tree.")
@click.option("--per-side", type=click.IntRange(min=1, max=4), default=2, show_default=True,
              help="Premises asked for on each side of a training tree's node (more premises than --answers "
                   "leave the policy a choice).")
@click.option("--heldout-limit", type=click.IntRange(min=2), default=None,
              help="Evaluate on the first N held-out questions only (default: all).")
@click.option("--gold-facts", is_flag=True,
              help="Also teach the gold facts and decompositions of the training questions used so far (dataset "
                   "truth: fact records, and expansion records whose premises are the gold facts), added to each "
                   "SFT stage's data by the bench (argtree improve's --question-facts, kept off here unless this is given).")
@click.option("--probe", type=click.IntRange(min=0, max=8), default=0, show_default=True,
              help="After the rounds: the final default model's held-out trees with 0..N oracle answers each, "
                   "picked by VoI and at random (test-time answers; 0: skip).")
@click.option("--device", default=None, help="local backend: cpu, cuda ...")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default: the trainer's).")
@click.option("--top-layers", type=click.IntRange(min=1), default=None,
              help="local: LoRA on the last N layers only (faster on a CPU).")
@click.option("--dpo/--no-dpo", default=True, show_default=True, help="DPO after SFT in each round.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench/results/world",
              show_default=True, help="Where world_<tag>.{json,md,png}, the question files and the runs go.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def world_bench(seed, entities, rounds, per_round, answers, policies, backend, steps, budget, eval_budget,
                per_side, heldout_limit, gold_facts, probe, device, threads, batch_size, lr, top_layers, dpo, out_dir,
                as_json) -> None:
    """Rounds of `argtree improve` on a synthetic world whose every premise's truth is known.

    Writes the learning curve per policy: held-out direct and tree accuracy and Brier per round, oracle
    answers spent, and premise quality (share of premises that are atomic statements of the world, which
    its oracle can answer).  Each policy runs in a database of its own, from the same default model.
    """
    import time

    from ..world import make_world, split_stats, write_questions

    policies = tuple(dict.fromkeys(policies)) or ("voi", "random")
    world = make_world(seed, entities)
    train, held = world.split()
    if rounds * per_round > len(train):
        raise click.UsageError(f"--rounds {rounds} x --per-round {per_round} needs {rounds * per_round} training "
                               f"questions; this world (--seed {seed} --entities {entities}) has {len(train)}: "
                               "give more --entities or fewer rounds/questions")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"s{seed}-e{entities}-{backend}" + ("-gold" if gold_facts else "")
    train_file, held_file = out / f"world-{tag}-train.json", out / f"world-{tag}-heldout.json"
    write_questions(train, train_file)
    write_questions(held, held_file)
    command = (f"argtree bench world --seed {seed} --entities {entities} --rounds {rounds} --per-round {per_round} "
               f"--answers {answers} --backend {backend} --steps {steps} --budget {budget} --eval-budget {eval_budget}"
               f" --per-side {per_side}"
               + (f" --heldout-limit {heldout_limit}" if heldout_limit else "") + (" --gold-facts" if gold_facts else "")
               + (f" --probe {probe}" if probe else "") + ("" if dpo else " --no-dpo")
               + (f" --batch-size {batch_size} --top-layers {top_layers}" if top_layers else "")
               + "".join(f" --policy {p}" for p in policies))
    doc = {"command": command, "world": world.describe(), "split": split_stats(train, held),
           "files": {"train": str(train_file), "heldout": str(held_file)}, "runs": {}}
    for policy in policies:
        t0 = time.perf_counter()
        doc["runs"][policy] = run_world_policy(world, str(train_file), str(held_file), out / "runs" / f"{tag}-{policy}",
                                               policy=policy, seed=seed, rounds=rounds, per_round=per_round,
                                               answers=answers, backend=backend, steps=steps, budget=budget,
                                               eval_budget=eval_budget, per_side=per_side,
                                               heldout_limit=heldout_limit, gold_facts=gold_facts, probe=probe,
                                               device=device,
                                               threads=threads, batch_size=batch_size, lr=lr, top_layers=top_layers,
                                               dpo=dpo, quiet=as_json)
        doc["runs"][policy]["seconds"] = round(time.perf_counter() - t0, 1)
    doc["summary"] = world_summary(doc["runs"])
    (out / f"world_{tag}.json").write_text(json.dumps(_rounded(doc), indent=1) + "\n")
    (out / f"world_{tag}.md").write_text(world_markdown(doc))
    world_plot(doc, out / f"world_{tag}.png")
    if as_json:
        print_json(_rounded(doc))
        return
    click.echo(world_markdown(doc))
    console().print(f"Wrote {out / f'world_{tag}.md'}, {out / f'world_{tag}.json'}, {out / f'world_{tag}.png'}")


def run_world_policy(world, train_file: str, held_file: str, rundir: Path, *, policy: str, seed: int, rounds: int,
                     per_round: int, answers: int, backend: str, steps: int, budget: int, eval_budget: int,
                     per_side: int = 2, heldout_limit=None, gold_facts: bool = False, probe: int = 0, device=None,
                     threads=None, batch_size: int = 8, lr=None, top_layers=None, dpo: bool = True, trainer=None,
                     backend_for=None, quiet: bool = True) -> dict:
    """One policy's run of ``argtree.improve`` on the world, in a fresh database under ``rundir``; returns
    its curve (one row per round, round 0 = the starting model)."""
    import shutil

    from ..improve import Deps, ImproveConfig, RecordingTrainer, _sha256, run_improve, start_or_resume
    from ..questions import evaluate_questions, load_questions
    from ..store import session_scope
    from ..store.db import upgrade
    from ..world import PolicyOracle, WorldOracle

    if rundir.exists():
        shutil.rmtree(rundir)
    rundir.mkdir(parents=True)
    url = f"sqlite:///{rundir / 'argtree.db'}"
    upgrade(url)
    names: dict[int, str] = {}
    if backend_for is None:
        def backend_for(name, path):
            if backend == "learner":
                from ..world import WorldLearner

                return WorldLearner.load(WorldLearner.vocab_of(world), path, model_version=name)
            if backend == "fake":
                import zlib

                from ..llm.fake import FakeBackend

                return FakeBackend(model_version=name, seed=zlib.crc32(name.encode("utf-8")))
            from ..llm import open_backend

            return open_backend("local", path or name, device=device)

    def tagged_backend(name, path):
        be = backend_for(name, path)
        names[id(be)] = name
        return be

    heldout_quality: dict[str, dict] = {}

    def evaluate(be, questions, **kw):
        res = evaluate_questions(be, questions, **kw)
        q = heldout_quality.setdefault(names.get(id(be), "?"), {"premises": 0, "atomic": 0})
        for rec in res["records"]:
            for node in (rec.get("tree_json") or {}).get("nodes", []):
                if node.get("parent") is not None:
                    q["premises"] += 1
                    q["atomic"] += world.lookup(node["text"]) is not None
        return res

    if trainer is None:
        if backend == "learner":
            from ..world import LearnerTrainer

            trainer = LearnerTrainer()
        elif backend == "fake":
            trainer = RecordingTrainer()
        else:
            from ..finetune import TrainConfig, TrlTrainer

            log = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
            trainer = TrlTrainer(TrainConfig(batch_size=batch_size, learning_rate=lr, threads=threads, device=device,
                                             top_layers=top_layers, logging_steps=5), log=log)
    if gold_facts:
        trainer = GoldFactsTrainer(trainer, world)
    deps = Deps(scope=lambda: session_scope(url), backend_for=tagged_backend,
                oracle_for=lambda kind, be, qs: PolicyOracle(WorldOracle(world), answers, policy, seed),
                trainer=trainer, workdir=rundir / "work", versions_dir=rundir / "versions",
                load_questions=load_questions, evaluate=evaluate)
    cfg = ImproveConfig(questions=train_file, heldout=held_file, questions_sha256=_sha256(train_file),
                        heldout_sha256=_sha256(held_file), rounds=rounds, oracle="dataset", per_round=per_round,
                        budget=budget, answers=WORLD_ASK_ALL, steps=steps, backend="local" if backend == "local" else "fake",
                        heldout_limit=heldout_limit, eval_budget=eval_budget, seed=seed, per_side=per_side, dpo=dpo,
                        # the world's gold facts are taught only with --gold-facts (GoldFactsTrainer), so that
                        # what the oracle's answers alone teach can be measured apart
                        question_facts=False)
    run_id, _, cfg = start_or_resume(deps, cfg)

    def show(ev):
        if not quiet and ev.get("event") not in ("grow", "eval", "oracle"):
            click.echo(f"[{policy}] " + ", ".join(f"{k} {v}" for k, v in ev.items() if not isinstance(v, (dict, list))),
                       err=True)

    import contextlib
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        state = run_improve(deps, run_id, progress=show)
    result = {"policy": policy, "run_id": run_id, "default": state["default"],
              "rows": world_rows(deps, run_id, world, state, heldout_quality)}
    if probe:
        result["probe"] = world_probe(deps, world, held_file, state["default"], probe, eval_budget, seed,
                                      heldout_limit)
    return result


def world_probe(deps, world, held_file: str, version: str, k_max: int, budget: int, seed: int,
                heldout_limit=None) -> dict:
    """Held-out tree accuracy/Brier of ``version`` with k = 0..k_max oracle answers per tree, VoI vs random."""
    from ..questions import evaluate_questions, load_questions
    from ..store import get_model_version
    from ..world import WorldOracle

    with deps.scope() as s:
        path = get_model_version(s, version).path
    backend = deps.backend(version, path)
    held = load_questions(held_file)[: heldout_limit or None]
    out: dict = {"version": version, "voi": [], "random": []}
    for policy in ("voi", "random"):
        for k in range(k_max + 1):
            res = evaluate_questions(backend, held, budget=budget, oracle=WorldOracle(world), answers=k, policy=policy,
                                     seed=seed)
            answered = (res.get("oracle") or {}).get("answered", 0)
            out[policy].append({"k": k, "tree_accuracy": res["tree"]["accuracy"], "tree_brier": res["tree"]["brier"],
                                "answered": answered})
    return out


class GoldFactsTrainer:
    """Wraps a Trainer: before each SFT stage, adds to its data what the training questions' gold
    decompositions teach (questions named by the data's records' provenance ``qid``): each gold fact as a fact
    record (dataset truth), and per question an expansion record whose premises are its gold facts (for the
    side the answer lies on).  Provenance ``{"source": "gold facts", "qid": ...}``.  ``argtree improve
    --question-facts`` does the same for a question file's facts (with rule-made negations, which the world's
    own templates would not recognise); the bench keeps that off and uses this, so its runs stay comparable."""

    def __init__(self, inner, world):
        self.inner, self.world = inner, world
        self.name = f"{inner.name}+gold-facts"
        self.writes_weights = inner.writes_weights
        self.added: dict[str, int] = {}

    def sft(self, data, parent, out, *, steps, seed=0):
        from ..datasets import expansion_sft_record, fact_record, read_jsonl, write_jsonl
        from ..expand import SYSTEM, expansion_prompt

        records = read_jsonl(data)
        qids = sorted({(r.get("argtree") or {}).get("provenance", {}).get("qid") for r in records} - {None})
        by_id = {q.qid: q for q in self.world.all_questions()}
        extra, seen = [], set()
        for qid in qids:
            q = by_id.get(qid)
            if q is None:
                continue
            prov = {"source": "gold facts", "qid": qid}
            for f in q.facts:
                if f not in seen:
                    seen.add(f)
                    extra.append(fact_record(f, True, prov))
            stance = "for" if q.answer else "against"
            prem = [{"text": f, "credence": 0.95, "claim_if_true": 0.9 if q.answer else 0.1,
                     "claim_if_false": 0.3 if q.answer else 0.7} for f in q.facts[:2]]
            extra.append(expansion_sft_record(SYSTEM, expansion_prompt(q.question, stance), prem, prov))
        path = Path(data).with_name(Path(data).stem + "-gold.jsonl")
        write_jsonl(records + extra, path)
        self.added[str(out)] = len(extra)
        info = self.inner.sft(str(path), parent, out, steps=steps, seed=seed)
        return {**info, "gold_records": len(extra)}

    def dpo(self, data, parent, out, *, steps, seed=0):
        return self.inner.dpo(data, parent, out, steps=steps, seed=seed)


def world_rows(deps, run_id: int, world, state: dict, heldout_quality: Mapping) -> list[dict]:
    """Per round: held-out numbers of the round's model, answers spent, premise quality."""
    from ..store import load_tree
    from ..store.registry import loop_task_rows

    with deps.scope() as s:
        tasks = {key: (res or {}) for key, _, res, _ in loop_task_rows(s, run_id, "improve", "done")}
        grown: dict[int, dict] = {}
        for r in range(1, len(state["rounds"])):
            trees = tasks.get(f"r{r}:grow", {}).get("trees", {})
            prem = atomic = 0
            for tree_id in trees.values():
                tree, _ = load_tree(s, int(tree_id))
                for nid, node in tree.nodes.items():
                    if nid != tree.root:
                        prem += 1
                        atomic += world.lookup(node.text) is not None
            grown[r] = {"premises": prem, "atomic": atomic}
    held = world.split()[1][: (state.get("config") or {}).get("heldout_limit") or None]
    rows, spent, said = [], 0, {}
    for row in state["rounds"]:
        r = row["round"]
        asked = [a for items in tasks.get(f"r{r}:oracle", {}).get("asked", {}).values() for a in items]
        answered = sum(1 for a in asked if a.get("answered"))
        spent += answered
        said.update({a["text"]: bool(a["value"]) for a in asked if a.get("answered") and a.get("value") is not None})
        settled = world.settled(said)
        h = row.get("heldout") or {}
        hq = heldout_quality.get(row.get("version") or "", {})
        gq = grown.get(r, {})
        gate = row.get("gate") or {}
        rows.append({
            "round": r, "version": row.get("version"), "promoted": gate.get("promote") if r else None,
            "direct_accuracy": (h.get("direct") or {}).get("accuracy"),
            "direct_accuracy_ci": (h.get("direct") or {}).get("accuracy_ci"),
            "direct_brier": (h.get("direct") or {}).get("brier"),
            "tree_accuracy": (h.get("tree") or {}).get("accuracy"),
            "tree_accuracy_ci": (h.get("tree") or {}).get("accuracy_ci"),
            "tree_brier": (h.get("tree") or {}).get("brier"), "n_heldout": h.get("n"),
            "answers": answered, "answers_total": spent,
            # held-out questions whose every gold fact the oracle's answers so far settle: what a learner with
            # perfect memory and the rules could answer (the rest it can only guess)
            "heldout_settled": sum(world.covered(q, settled) for q in held) / len(held) if held else None,
            "premise_quality_heldout": (hq["atomic"] / hq["premises"]) if hq.get("premises") else None,
            "premise_quality_train": (gq["atomic"] / gq["premises"]) if gq.get("premises") else None,
            "seconds": round(sum(float(v) for v in (row.get("seconds") or {}).values()), 1)})
    return rows


def world_summary(runs: Mapping[str, dict]) -> dict:
    """Best held-out accuracies per policy, and answers VoI needed to reach random's final tree accuracy."""
    out: dict = {}
    for p, run in runs.items():
        rows = run["rows"]
        out[p] = {"final_tree_accuracy": rows[-1]["tree_accuracy"], "final_direct_accuracy": rows[-1]["direct_accuracy"],
                  "best_tree_accuracy": max((r["tree_accuracy"] or 0) for r in rows),
                  "best_direct_accuracy": max((r["direct_accuracy"] or 0) for r in rows),
                  "answers_total": rows[-1]["answers_total"]}
    if "voi" in runs and "random" in runs:
        target = runs["random"]["rows"][-1]["tree_accuracy"]
        reach = next((r["answers_total"] for r in runs["voi"]["rows"]
                      if r["round"] > 0 and r["tree_accuracy"] is not None and r["tree_accuracy"] >= target), None)
        out["voi_answers_to_random_final_tree_accuracy"] = reach
        out["random_answers_total"] = runs["random"]["rows"][-1]["answers_total"]
        out["answer_ratio"] = (out["random_answers_total"] / reach) if reach else None
        if reach == 0 and target is not None and target <= runs["voi"]["rows"][0]["tree_accuracy"]:
            out["note"] = "random's final tree accuracy is no better than the starting model's"
    return out


def world_markdown(doc: Mapping) -> str:
    fmt = lambda x, d=3: "–" if x is None else (f"{x:.{d}f}" if isinstance(x, float) else str(x))  # noqa: E731
    sp = doc["split"]
    lines = [f"`{doc['command']}`", "",
             f"World: {doc['world']['people']} people, {doc['world']['towns']} towns, {doc['world']['kinds']} kinds, "
             f"{doc['world']['statements']} atomic statements. Questions: {sp['train']} train ({sp['train_yes']} yes), "
             f"{sp['heldout']} held out ({sp['heldout_yes']} yes); {sp['heldout_questions_with_an_unseen_fact']} held-out "
             f"questions use a fact no training question uses.", ""]
    for p, run in doc["runs"].items():
        lines += [f"Policy **{p}** (run {run['run_id']}, {run.get('seconds', '?')} s):", "",
                  "| round | version | gate | direct acc | direct Brier | tree acc | tree Brier | answers (total) "
                  "| held-out settled | atomic premises held-out / train |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in run["rows"]:
            gate = "" if r["round"] == 0 else ("promoted" if r["promoted"] else "kept out")
            lines.append(f"| {r['round']} | {r['version']} | {gate} | {fmt(r['direct_accuracy'])} | "
                         f"{fmt(r['direct_brier'])} | {fmt(r['tree_accuracy'])} | {fmt(r['tree_brier'])} | "
                         f"{r['answers']} ({r['answers_total']}) | {fmt(r['heldout_settled'], 2)} | "
                         f"{fmt(r['premise_quality_heldout'], 2)} / "
                         f"{fmt(r['premise_quality_train'], 2)} |")
        lines.append("")
    for p, run in doc["runs"].items():
        pr = run.get("probe")
        if not pr:
            continue
        lines += [f"Test-time answers, final default of the **{p}** run ({pr['version']}): held-out tree accuracy "
                  "(Brier) with k oracle answers per tree:", "",
                  "| k | " + " | ".join(str(x["k"]) for x in pr["voi"]) + " |",
                  "|---|" + "---:|" * len(pr["voi"])]
        for pol in ("voi", "random"):
            lines.append(f"| {pol} | " + " | ".join(f"{x['tree_accuracy']:.3f} ({x['tree_brier']:.3f})"
                                                    for x in pr[pol]) + " |")
        lines.append("")
    s = doc.get("summary", {})
    if "answer_ratio" in s:
        lines.append(f"VoI reached random's final tree accuracy with "
                     f"{fmt(s['voi_answers_to_random_final_tree_accuracy'])} answers (random spent "
                     f"{s['random_answers_total']}): ratio {fmt(s['answer_ratio'], 2)}.")
    return "\n".join(lines) + "\n"


def world_plot(doc: Mapping, path: Path) -> None:
    """Held-out accuracy per round (tree solid, direct dashed) and tree accuracy vs answers spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    colors = {"voi": "C0", "random": "C3"}
    for p, run in doc["runs"].items():
        rows, c = run["rows"], colors.get(p, "k")
        x = [r["round"] for r in rows]
        axes[0].plot(x, [r["tree_accuracy"] for r in rows], color=c, marker="o", label=f"{p}: tree")
        axes[0].plot(x, [r["direct_accuracy"] for r in rows], color=c, marker="s", linestyle="--", label=f"{p}: direct")
        axes[1].plot([r["answers_total"] for r in rows], [r["tree_accuracy"] for r in rows], color=c, marker="o",
                     label=p)
        axes[2].plot(x, [r["premise_quality_heldout"] for r in rows], color=c, marker="o",
                     label=f"{p}: atomic premises (held-out trees)")
        axes[2].plot(x, [r.get("heldout_settled") for r in rows], color=c, marker="^", linestyle="--",
                     label=f"{p}: held-out questions settled by answers")
    axes[0].axhline(0.5, color="0.6", linewidth=0.8, linestyle=":")
    axes[0].set(xlabel="round", ylabel="held-out accuracy", ylim=(0, 1.02))
    axes[1].set(xlabel="oracle answers spent", ylabel="held-out tree accuracy", ylim=(0, 1.02))
    axes[2].set(xlabel="round", ylabel="share", ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(doc["command"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


# -- issue 13: learned annotator reliability --------------------------------------------------------

@bench.command("annotators")
@click.option("--seed", type=int, default=0, show_default=True, help="Worlds and answers are drawn from it.")
@click.option("--labels", type=click.IntRange(min=1), default=None,
              help="Labels per annotator (default 200); the worlds follow: labels x 6 / overlap.")
@click.option("--worlds", type=click.IntRange(min=10), default=None,
              help="Oracle-efficiency worlds (random shape, CPT noise 1, 25 nodes); one question each. "
                   "Instead of --labels.")
@click.option("--overlap", type=click.Choice(["1", "2", "3", "6"]), default="3", show_default=True,
              help="Annotators per question (balanced: with 3, each answers one question of every two).")
@click.option("--gold", type=click.IntRange(min=0), default=0, show_default=True,
              help="How many of the questions are gold (known answer, clamped in the estimation).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def annotators_bench(seed: int, labels: int | None, worlds: int | None, overlap: str, gold: int,
                     as_json: bool) -> None:
    """Six simulated annotators (accuracy 0.95, 0.9, 0.8, 0.7, 0.55 and an adversarial 0.3) answer the
    top-VoI premise of each world; their reliabilities are learned (Dawid-Skene, argtree.annotators) and
    the root's expected Brier is compared, paired per world, with learned weights, a fixed 0.9 for all,
    and majority vote.  Also says whether each annotator's realized accuracy (the share of their labels
    that are right: what an estimator knowing every truth would give) is within 0.05 of the true one."""
    from ..annotators import bench_annotators, bench_worlds

    if labels is not None and worlds is not None:
        raise InputError("give --labels or --worlds, not both")
    if worlds is None:
        worlds = max(10, bench_worlds(200 if labels is None else labels, int(overlap)))
    res = bench_annotators(seed=seed, worlds=worlds, overlap=int(overlap), gold=gold)
    if as_json:
        print_json(res)
        return
    from rich.table import Table

    c = console()
    t = Table(title=f"Annotators: {res['labels_per_annotator']} labels each, {res['worlds']} worlds, overlap "
                    f"{res['overlap']}, seed {seed}")
    for col in ("annotator", "true", "realized", "realized − true", "learned", "90% interval", "learned − true"):
        t.add_column(col)

    def mark(err: float, ok: bool) -> str:
        return f"{err:+.3f}" + ("" if ok else " ✗")

    for a in res["annotators"]:
        t.add_row(a["annotator"], f"{a['true']:.2f}", f"{a['realized']:.3f}",
                  mark(a["realized_error"], a["realized_within"]), f"{a['learned']:.3f}",
                  f"[{a['low']:.3f}, {a['high']:.3f}]", mark(a["error"], a["within"]))
    c.print(t)
    c.print(f"max |learned − true| = {res['max_abs_error']:.3f} (goal ≤ 0.05: {'met' if res['within_0.05'] else 'not met'}); "
            f"max |realized − true| = {res['max_abs_realized_error']:.3f} (the sampling bound: every realized "
            f"accuracy within 0.05: {'yes' if res['realized_within_0.05'] else 'no'}); "
            f"max |learned − realized| = {res['max_abs_error_realized']:.3f}")
    for k, v in res["e_brier"].items():
        c.print(f"root E-Brier, {k}: {v:.4f}")
    for k in ("learned_vs_fixed", "learned_vs_majority"):
        d = res[k]
        c.print(f"{k.replace('_', ' ')}: E-Brier lower by {d['mean']:.4f} [95% paired bootstrap {d['low']:.4f}, "
                f"{d['high']:.4f}]")
