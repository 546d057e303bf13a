"""Where argtree keeps its files: the ONE home-directory function (pure: no sqlalchemy, no torch).

``ARGTREE_HOME`` if set, else the per-user data directory (``platformdirs``).  Under it: the default
SQLite database (``argtree.db``), converted models (``models/``, unless ARGTREE_MODEL_CACHE), trained
versions and their registry (``versions/``), ``argtree improve``'s work (``improve/``).  Nothing is
created here: callers make the subdirectory they write to.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HomeError", "argtree_home"]


class HomeError(ValueError):
    """ARGTREE_HOME names something that cannot be the home directory; the message says what."""


def argtree_home() -> Path:
    """ARGTREE_HOME (``~`` expanded), else the per-user data directory; HomeError if it is a file."""
    home = os.environ.get("ARGTREE_HOME")
    if home:
        path = Path(home).expanduser()
        if path.exists() and not path.is_dir():
            raise HomeError(f"ARGTREE_HOME={home!r} is not a directory")
        return path
    from platformdirs import user_data_dir

    return Path(user_data_dir("argtree", appauthor=False))
