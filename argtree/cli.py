"""The ``argtree`` command.

Each subcommand lives in ``argtree/commands/<name>.py`` and is registered here
lazily, so ``argtree --help`` and ``argtree infer`` never import torch,
sqlalchemy or streamlit.  Errors a user can fix are ``click.ClickException``
subclasses (exit status 2 for bad input) with one line that says what to do.
"""

from __future__ import annotations

import importlib
import sys

import click

from .interrupt import caused_by_ctrl_c

# command name -> (module under argtree.commands, attribute, one-line help for the listing)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "ask": ("ask", "ask", "Grow an argument tree for a question with a language model (best-first on VoI)."),
    "infer": ("core", "infer", "Exact belief of every node given the evidence in an argtree/1 file."),
    "voi": ("core", "voi", "Rank the unlabeled nodes of a tree by value of information."),
    "db": ("db", "db", "Create, migrate (upgrade) and inspect (current) the database."),
    "import": ("db", "import_", "Store argtree/1 files in the database; their evidence becomes labels."),
    "dump": ("db", "dump", "Write a stored tree as argtree/1 JSON, labels as evidence."),
    "export-tree": ("interop", "export_tree", "A tree as BIF, XMLBIF (Bayesian-network tools), GraphML, DOT or SVG."),
    "users": ("db", "users", "Manage annotator accounts: users add NAME [--admin], users list."),
    "ui": ("ui", "ui", "Start the oracle's web app (Streamlit): answer the highest-VoI questions, browse trees."),
    "export": ("export", "export", "Export labeled trees as a fine-tuning dataset (TRL / OpenAI JSONL) with a card."),
    "finetune": ("finetune", "finetune", "Fine-tune a model (LoRA) on an exported dataset; registers a new version."),
    "eval": ("eval", "eval_cmd", "Score a model: labeled questions (direct answer vs grown tree) or labeled facts."),
    "calibrate": ("calibrate", "calibrate", "Fit the model's calibration maps (credence -> probability) from oracle answers."),
    "loop": ("loop", "loop", "Autonomous loop: propose questions, grow trees, ask an oracle, re-expand; resumable."),
    "bench": ("bench", "bench", "Benchmarks: question-selection policies on simulated worlds with known truth."),
    "improve": ("improve", "improve", "Rounds of self-improvement: grow, ask the oracle, train (SFT+DPO), gate on held-out."),
    "models": ("models", "models", "Model versions: parent, round, data, provenance, held-out metrics, the default."),
    "queue": ("queue", "queue", "The question queue: forest ranking, settings (overlap, gold rate), gold questions."),
    "agreement": ("agreement", "agreement", "Krippendorff's alpha, learned annotator reliability, disagreements."),
    "flags": ("flags", "flags", "Consistency flags: negations both believed, conflicting labels or numbers; resolve."),
    "tree": ("tree", "tree", "Co-author a stored tree: add a premise, edit a premise's text, move/delete a node."),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"argtree.commands.{module}"), attr)

    def invoke(self, ctx):
        """Ctrl-C exits 130 with one line; a database that is down or unmigrated is one line (status 2) in
        every command, never a traceback (``argtree.commands.exits``)."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Exception) as err:  # noqa: BLE001 - only Ctrl-C and database trouble are caught
            if caused_by_ctrl_c(err):  # also when Python wrapped it (during an import: argtree/interrupt.py)
                click.echo("argtree: interrupted", err=True)
                ctx.exit(130)
            from .commands import InputError
            from .commands.exits import database_problem

            line = database_problem(err)
            if line is None:
                raise
            raise InputError(line) from None

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="argtree")
def main() -> None:
    """argtree: grow Bayesian argument trees with a language model, ask people the
    questions that matter most (value of information), and train the model on
    their answers.

    Trees are argtree/1 JSON files (see DESIGN.md) or live in the database
    (ARGTREE_DATABASE_URL, default a SQLite file under ARGTREE_HOME).
    Every command takes --help; most take --json for scripts.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
