"""Checking and normalizing the texts people and models put in the database."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

from .errors import StoreError
from .models import MAX_TEXT

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Unicode NFC with runs of whitespace collapsed: the form propositions are unique in."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def text_key(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def check_text(value: Any, field: str, *, optional: bool = False, limit: int = MAX_TEXT) -> str | None:
    """``value`` normalized, or a StoreError naming ``field`` (wrong type, empty, or too long)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise StoreError(f"must be text, got {type(value).__name__}", field)
    out = normalize(value)
    if not out:
        if optional:
            return None
        raise StoreError("must not be empty", field)
    if len(out) > limit:
        raise StoreError(f"is {len(out):,} characters long; the limit is {limit:,}", field)
    if "\x00" in out:
        raise StoreError("must not contain NUL characters", field)
    return out
