"""Errors the store raises for input a caller can fix (never for its own bugs)."""

from __future__ import annotations

__all__ = ["StoreError", "NotFound"]


class StoreError(ValueError):
    """Bad input to a store function; ``field`` names the argument at fault.  Nothing was written."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(StoreError, LookupError):
    """An id or name that is not in the database."""
