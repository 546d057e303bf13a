"""Subcommands of the ``argtree`` CLI, one module per area; shared helpers here.

Text from files, models and people goes through ``escape_controls`` (re-exported
from ``argtree.text``) before a human-readable output prints it; error messages
do too (``InputError.show``).  JSON output keeps text exact but writes terminal-
unsafe characters as ``\\uXXXX`` escapes (``argtree.io.escape_json``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..text import escape_controls

__all__ = ["InputError", "print_json", "console", "escape_controls", "markup"]


class InputError(click.ClickException):
    """Bad input the user can fix: one line on stderr, exit status 2, no traceback."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"argtree: error: {escape_controls(self.format_message())}", err=True)


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    from ..io import escape_json

    sys.stdout.write(escape_json(json.dumps(data, ensure_ascii=False, allow_nan=False)) + "\n")


def markup(text: str) -> str:
    """Text for rich markup: control/bidi characters escaped (``escape_controls``), then rich's brackets."""
    from rich.markup import escape

    return escape(escape_controls(text))


def console():
    from rich.console import Console

    return Console()
