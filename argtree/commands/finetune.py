"""``argtree finetune``: train a new model version (LoRA by default) on an exported dataset."""

from __future__ import annotations

import shlex
import sys

import click

from . import InputError, print_json


@click.command()
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="JSONL from `argtree export` (text, prompt-completion or conversational records).")
@click.option("--base", default=None,
              help="Model to start from: 'bundled' (default), a model directory, a .gguf file, or a registered version.")
@click.option("--name", "name", default=None, help="Name of the new version (default ft-<UTC time>); select it "
              "later with --model NAME or --model latest.")
@click.option("--out", "old_name", default=None, hidden=True,
              help="Deprecated spelling of --name (--out means a file or directory to write everywhere else).")
@click.option("--lora/--full", default=True, show_default=True,
              help="Train a LoRA adapter (small, fast) or every weight.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps (default: --epochs passes).")
@click.option("--epochs", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default 2e-4 for LoRA, 2e-5 for full).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batches per optimizer step; --batch-size 1 --grad-accum 8 trains without padding waste.")
@click.option("--rank", type=click.IntRange(min=1), default=16, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=click.IntRange(min=1), default=None, help="LoRA alpha (default 2 x rank).")
@click.option("--top-layers", type=click.IntRange(min=1), default=None,
              help="Put LoRA on the last N layers only (backward stops below them: faster on CPU).")
@click.option("--max-length", type=click.IntRange(min=16), default=384, show_default=True,
              help="Tokens per example; longer ones are cut.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present, else cpu).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch.")
@click.option("--dir", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write the version here instead of the model store (e.g. argtree/adapters/NAME to ship it).")
@click.option("--json", "as_json", is_flag=True, help="Print the registered version as JSON.")
def finetune(data: str, base: str | None, name: str | None, old_name: str | None, lora: bool, steps: int | None, epochs: float,
             lr: float | None, batch_size: int, grad_accum: int, rank: int, alpha: int | None, top_layers: int | None, max_length: int,
             seed: int, device: str | None, threads: int | None, out_dir: str | None, as_json: bool) -> None:
    """Fine-tune a model on DATA and register the result as a new model version.

    Runs TRL's SFTTrainer (with a PEFT LoRA adapter unless --full), on the GPU
    when there is one and on the CPU otherwise, showing progress and the loss.
    The loss counts the answer only, under the chat template the local backend
    serves with.  The version is written to a temporary directory and renamed
    into place when complete, so a run that is killed or fails leaves every
    earlier version usable; `ask`, `loop` and `eval` select it with
    --model NAME or --model latest.
    """
    if old_name is not None:
        if name is not None and name != old_name:
            raise InputError("--out is the old spelling of --name: give one of them")
        click.echo("argtree: warning: finetune --out NAME is now --name NAME", err=True)
        name = old_name
    from ..finetune import FinetuneError, TrainConfig, train

    config = TrainConfig(lora=lora, max_steps=steps, epochs=epochs, learning_rate=lr, batch_size=batch_size,
                         grad_accum=grad_accum, rank=rank, alpha=alpha or 2 * rank, top_layers=top_layers, max_length=max_length,
                         seed=seed, device=device, threads=threads,
                         logging_steps=max(1, min(10, (steps or 10) // 10)))
    command = "argtree finetune " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else None
    log = (lambda msg: click.echo(msg, err=True))
    import contextlib

    # Trainer prints its log dicts on stdout; keep stdout for the result (--json) alone.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            entry = train(data, base, name, config, out_dir=out_dir, log=log, command=command)
    except FinetuneError as err:
        raise InputError(str(err)) from None
    except ImportError as err:
        raise InputError(f"fine-tuning needs the train extra: pip install 'argtree[train]' ({err})") from None
    if as_json:
        print_json(entry)
        return
    click.echo(f"model version {entry['name']}: {entry['path']}")
    click.echo(f"use it: argtree ask \"...\" --model {entry['name']}   (or --model latest)")
