"""Showing text from files and models in a terminal: control and bidi characters escaped.

Node text comes from files people send and from models; printed raw, an ESC
sequence can clear the screen, set the window title or plant an OSC-8 link, and
a right-to-left override makes the shown text differ from the stored text
("RTL \\u202eevil" shows as "RTL live").  ``escape_controls`` is the one helper
every human-readable output uses (infer, voi, import, dump, ask).
"""

from __future__ import annotations

import unicodedata

__all__ = ["escape_controls"]

# Unicode categories shown as escapes: controls (C0, DEL, C1), format characters (bidi embeddings,
# overrides and isolates, zero-width characters, soft hyphen, BOM, tags), lone surrogates, and the
# line and paragraph separators.  Private-use and unassigned code points pass (newer emoji).
_ESCAPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    cp = ord(ch)
    return f"\\x{cp:02x}" if cp <= 0xFF else f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def escape_controls(text: str) -> str:
    """``text`` with every control, bidi/format character, lone surrogate and line separator
    written as a visible escape (``\\x1b``, ``\\u202e``, ``\\n``); everything else unchanged.

    Safe to print to any terminal and always one line; a plain printable string comes back as is."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) if not ch.isprintable() and unicodedata.category(ch) in _ESCAPED else ch
                   for ch in text)
