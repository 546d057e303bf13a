"""Subcommands of the ``argtree`` CLI, one module per area; shared helpers here."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


class InputError(click.ClickException):
    """Bad input the user can fix: one line on stderr, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"argtree: error: {self.format_message()}", err=True)


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n")


def console():
    from rich.console import Console

    return Console()
