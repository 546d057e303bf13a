"""``argtree ask "QUESTION"``: grow a tree with a model, store it, show it and the questions that matter."""

from __future__ import annotations

import os
from typing import Any

import click

from . import InputError, console, print_json

BACKEND_HELP = ("local: a transformers model on this machine (default: the bundled SmolLM2-135M with its "
                "StrategyQA adapter); "
                "openai: an OpenAI-compatible server (vLLM, llama.cpp, Ollama); fake: scripted, for demos.")
MODEL_HELP = ("local: 'adapter' (default: bundled + the shipped StrategyQA LoRA), 'bundled' (the base "
              "alone), a model or LoRA-adapter directory, a .gguf file, a registered "
              "model version or 'latest'.  openai: the server's base URL (or set ARGTREE_OPENAI_BASE_URL "
              "and give the model id).  fake: a JSON file with a list of scripted answers.")


@click.command()
@click.argument("question")
@click.option("--budget", type=click.IntRange(min=1), default=4, show_default=True,
              help="Node expansions the model may do (the root's included); each asks for premises for and against.")
@click.option("--backend", type=click.Choice(["local", "openai", "fake"]), default="local", show_default=True,
              help=BACKEND_HELP)
@click.option("--model", "model", default=None, help=MODEL_HELP)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the grown tree as argtree/1 JSON to this file.")
@click.option("--max-nodes", type=click.IntRange(min=2), default=60, show_default=True)
@click.option("--max-depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="Deepest premise level created (1: only the question's own premises).")
@click.option("--max-calls", type=click.IntRange(min=1), default=None, help="Prompts sent to the model, retries included.")
@click.option("--seconds", type=click.FloatRange(min=0), default=None, help="Stop expanding after this many seconds.")
@click.option("--threshold", type=click.FloatRange(min=0), default=1e-3, show_default=True,
              help="Stop when the best leaf's VoI (expected move of the root) is below this.")
@click.option("--batch", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Nodes expanded together in one batched model call.")
@click.option("--per-side", type=click.IntRange(1, 5), default=2, show_default=True,
              help="Premises asked for on each side (for, against) of a node.")
@click.option("--credence", type=click.Choice(["verbal", "logprob"]), default="logprob", show_default=True,
              help="The premise's probability: P(yes) from token log-probs, or the number the model writes "
                   "(log-probs had the better Brier score on StrategyQA facts and negations: BENCHMARKS.md).")
@click.option("--prior", type=click.FloatRange(0.01, 0.99), default=0.5, show_default=True, help="Prior of the root.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampled retries.")
@click.option("--device", default=None, help="local backend: cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="openai backend: seconds per request before it is retried (default 120).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None,
              help="openai backend: requests in flight at once (default 8).")
@click.option("--no-store", is_flag=True, help="Do not save the tree in the database.")
@click.option("--database", default=None, help="Database URL (default ARGTREE_DATABASE_URL or the local file).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (tree, root belief, questions, stats).")
def ask(question: str, budget: int, backend: str, model: str | None, out: str | None, max_nodes: int,
        max_depth: int, max_calls: int | None, seconds: float | None, threshold: float, batch: int, per_side: int,
        credence: str, prior: float, seed: int, device: str | None, timeout: float | None, concurrency: int | None,
        no_store: bool, database: str | None, as_json: bool) -> None:
    """Grow an argument tree for QUESTION with a language model, best-first on value of information.

    The model proposes premises for and against the question, then for and
    against the premises whose truth would move the answer most, until the
    budget is spent or nothing left would matter (--threshold).  The tree is
    saved in the database (unless --no-store), optionally written to --out,
    and printed with each node's belief and stance, the root's belief, and the
    five questions a person should answer first, with what each answer would
    do to the root.  Unusable model output is retried and then recorded as a
    failed expansion; the tree grown so far is always kept.

    Exit status: 0 done; 2 bad input; 3 nothing grew (every expansion failed);
    4 the model server could not be reached; 5 the tree could not be saved.
    """
    from ..grow import GrowConfig, grow

    question = question.strip()
    if not question:
        raise InputError("QUESTION is empty: say what the tree should argue about")
    if len(question) > 2000:
        raise InputError(f"QUESTION is {len(question)} characters long; keep it under 2000")
    err = console_err()
    cfg = GrowConfig(expansions=budget, max_nodes=max_nodes, max_depth=max_depth, max_calls=max_calls,
                     max_seconds=seconds, threshold=threshold, batch=batch, per_side=per_side, credence=credence,
                     prior=prior, seed=seed)
    be = _backend(backend, model, device, err, quiet=as_json, timeout=timeout, concurrency=concurrency,
                  database=database)
    from .calibrate import calibration_for

    calibration, _ = calibration_for(be.model_version, database)
    result = _grow_with_progress(question, be, cfg, grow, err, quiet=as_json, calibration=calibration)
    tree, evidence = result.tree, result.evidence
    if out:
        from ..io import dump

        try:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            dump(tree, evidence, out)
        except OSError as e:
            raise InputError(f"cannot write {out}: {e.strerror}") from None
    stored, store_note = ((None, "not stored (--no-store)") if no_store
                          else _store(tree, evidence, question, be, model, database))
    report = _report(tree, evidence)
    if as_json:
        from ..io import to_dict

        print_json({"tree": to_dict(tree, evidence), "root": report["root_numbers"], "root_belief": report["root"],
                    "questions": report["questions"],
                    "stats": result.stats, "failed_expansions": len(result.failures), "tree_id": stored,
                    "store": store_note, "out": out})
    else:
        _print(tree, report, result, stored, store_note, out)
    _exit_status(result, stored, store_note, no_store)


def _exit_status(result, stored, store_note: str, no_store: bool) -> None:
    """Non-zero when ask did not do its job (``argtree.commands.exits``), after the output is printed."""
    from .exits import NOT_SAVED, NOTHING_GROWN, UNREACHABLE, Failed

    if len(result.tree) <= 1:
        errors = [e for f in result.failures for e in f.get("errors", [])]
        unreachable = bool(errors) and all(("connection failed" in e or "timeout" in e) for e in errors)
        if unreachable:
            raise Failed(f"could not reach the model server: {errors[-1].split(': ', 1)[-1]}", UNREACHABLE)
        why = errors[-1] if errors else result.stop_reason
        raise Failed(f"grew nothing: no expansion gave a usable premise (last: {why})", NOTHING_GROWN)
    if stored is None and not no_store:
        raise Failed(store_note, NOT_SAVED)


def console_err():
    from rich.console import Console

    return Console(stderr=True)


def _backend(kind: str, model: str | None, device: str | None, err, quiet: bool, **options: Any):
    from ..llm import open_backend

    try:
        if kind == "local" and not quiet:
            with err.status("Loading the model (the first run converts the bundled GGUF once, ~20 s)..."):
                return open_backend(kind, model, device=device, **options)
        return open_backend(kind, model, device=device, **options)
    except (ValueError, RuntimeError, OSError) as e:
        raise InputError(f"--model {model!r} ({kind}): {e}") from None
    except ImportError as e:
        raise InputError(f"the {kind} backend needs the llm extra: pip install 'argtree[llm]' ({e})") from None


def make_model_backend(kind: str, model: str | None, device: str | None = None, quiet: bool = False, **options: Any):
    """A backend from command options, errors as one line (for other commands: eval, calibrate)."""
    return _backend(kind, model, device, console_err(), quiet=quiet, **options)


def _grow_with_progress(question, be, cfg, grow, err, quiet: bool, calibration=None):
    from ..model_evidence import NONE

    calibration = calibration or NONE
    if quiet:
        return grow(question, be, cfg, calibration=calibration)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]growing[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=err, transient=False) as bar:
        task = bar.add_task("expanding the question", total=cfg.expansions)

        def on(event):
            if event["event"] == "expanding":
                bar.update(task, description=f"expanding {len(event['picks'])} node(s), {event['nodes']} so far")
            elif event["event"] == "expanded":
                bar.update(task, completed=event["expansions"],
                           description=f"{event['nodes']} nodes, {event['calls']} prompts")
            elif event["event"] == "done":
                bar.update(task, completed=cfg.expansions, description=f"{event['nodes']} nodes: {event['stop_reason']}")

        return grow(question, be, cfg, progress=on, calibration=calibration)


def _store(tree, evidence, question, be, model, database: str | None = None) -> tuple[int | None, str]:
    """Save in the database; an unmigrated or unreachable one gives a message, never a crash."""
    try:
        from ..store import SchemaError, save_tree, session_scope
    except ImportError as e:
        return None, f"not stored: the store extra is missing ({e}); pip install 'argtree[store]'"
    try:
        with session_scope(database) as s:
            mv = _registered(s, model if be.kind == "local" else None)
            return save_tree(s, tree, evidence, question=question, model_version=mv), "stored"
    except SchemaError as e:
        return None, f"not stored: {e}"
    except Exception as e:  # noqa: BLE001 - the grown tree is still printed and written
        return None, f"not stored: {type(e).__name__}: {e}"


def _registered(session, model: str | None):
    """The model-version name to link the tree to, if ``model`` is a registered version."""
    if not model:
        return None
    from ..store import get_model_version

    try:
        return get_model_version(session, model).name
    except Exception:  # noqa: BLE001 - not registered: the tree's meta still names the model
        return None


def _report(tree, evidence) -> dict[str, Any]:
    from ..inference import beliefs
    from ..voi import rank, root_if, voi

    from ..model_evidence import root_numbers

    bel = beliefs(tree, evidence)
    questions = []
    for nid, value in rank(voi(tree, evidence), 5):
        if_t, if_f = root_if(tree, evidence, nid)
        questions.append({"node": nid, "text": tree[nid].text, "belief": bel[nid], "voi": value,
                          "root_if_true": if_t, "root_if_false": if_f})
    return {"beliefs": bel, "root": bel[tree.root], "root_numbers": root_numbers(tree, evidence),
            "questions": questions}


def _print(tree, report, result, stored, store_note, out) -> None:
    from rich.table import Table
    from rich.tree import Tree

    from . import markup as escape  # control and bidi characters shown escaped, then rich's brackets

    bel = report["beliefs"]
    failed = {f["node"] for f in result.failures}

    def line(nid: str) -> str:
        node = tree[nid]
        stance = {"supports": "[green]+ for[/]", "attacks": "[red]- against[/]", "neutral": "[dim]= neutral[/]",
                  "root": "[bold]?[/]"}[node.stance]
        mark = " [yellow](expansion failed)[/]" if nid in failed else ""
        return f"{stance} [bold]{bel[nid]:.2f}[/] {escape(node.text)} [dim]({escape(nid)})[/]{mark}"

    root = Tree(line(tree.root))
    stack = [(tree.root, root)]
    while stack:
        nid, branch = stack.pop()
        for child in reversed(tree.children(nid)):
            stack.append((child, branch.add(line(child))))
    out_c = console()
    out_c.print(root)
    nums = report["root_numbers"]
    labels = [e for e in result.evidence if not e.is_model]
    direct = tree.meta.get("direct") or {}
    direct_txt = (f"{nums['direct']:.3f}" if nums["direct"] is not None
                  else f"unavailable ({direct.get('error', 'not asked')})")
    out_c.print(f"\n[bold]P(yes) for the question: {nums['tree']:.3f}[/] (the tree: the model's credences in its "
                f"unexpanded premises{' and the answers so far' if labels else ''})")
    out_c.print(f"  the model's direct answer: {direct_txt}; "
                f"from people's answers alone: {nums['labels_only']:.3f}"
                f"{'' if labels else ' (none yet: the prior)'}; the table shows how answers would move the tree")
    out_c.print(f"[dim]"
                f"({len(tree)} nodes; stopped: {result.stop_reason}; {result.stats['model_calls']} prompts; "
                f"{len(result.failures)} failed expansion(s); {result.stats['rejected']} premise(s) rejected by guards)[/]")
    for f in result.failures[:3]:
        last = f["errors"][-1] if f["errors"] else "no usable answer"
        out_c.print(f"[yellow]expansion of {f['node']} failed after {f['attempts']} attempt(s): {escape(last)} "
                    "(raw output kept in the tree's failed_expansions)[/]")
    if report["questions"]:
        table = Table(title="Ask a person first (highest value of information)")
        for col, kw in (("#", {"justify": "right"}), ("node", {}), ("premise", {"overflow": "fold"}),
                        ("P(true)", {"justify": "right"}), ("VoI", {"justify": "right"}),
                        ("root if true", {"justify": "right"}), ("root if false", {"justify": "right"})):
            table.add_column(col, **kw)
        for i, q in enumerate(report["questions"], 1):
            table.add_row(str(i), escape(q["node"]), escape(q["text"]), f"{q['belief']:.2f}", f"{q['voi']:.4f}",
                          f"{q['root_if_true']:.3f}", f"{q['root_if_false']:.3f}")
        out_c.print(table)
    if stored is not None:
        out_c.print(f"Saved as tree {stored} in the database.")
    else:
        out_c.print(f"[yellow]{escape(store_note)}[/]")
    if out:
        out_c.print(f"Wrote {escape(out)} (argtree/1).")
