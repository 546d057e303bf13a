"""Showing model text: always literally, never as Markdown or HTML.

A premise may contain ``<script>``, HTML, or Markdown links and images; the
oracle must see those characters, not their effect.  ``st.text`` never
parses; ``box`` escapes every character HTML treats specially before it
reaches ``st.html`` (which adds only our own styling).
"""

from __future__ import annotations

import html

import streamlit as st


def text(value: str | None, *, key: str | None = None) -> None:
    st.text("" if value is None else str(value))


def box(value: str | None, *, size: str = "1.35rem", testid: str = "premise", caption: str | None = None) -> None:
    """A large, wrapped, literal block of text (the question being asked), with an optional small caption."""
    safe = html.escape("" if value is None else str(value), quote=True)
    head = (f'<div style="font-size:0.85rem;color:#808495;margin-bottom:0.3rem">{html.escape(caption)}</div>'
            if caption else "")
    st.html(f'{head}<div data-testid="{testid}" class="argtree-{testid}" style="font-size:{size};line-height:1.4;'
            f'white-space:pre-wrap;overflow-wrap:anywhere;padding:0.6rem 0.9rem;border-left:4px solid #4a78c2;'
            f'background:rgba(74,120,194,0.08);border-radius:4px">{safe}</div>')


def pct(p: float | None) -> str:
    return "–" if p is None else f"{p:.0%}" if 0.01 <= p <= 0.99 else f"{p:.3f}"


def num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def figures(items: list[tuple[str, object]], *, testid: str = "figures") -> None:
    """A row of labelled numbers in one element (cheaper to send than one st.metric each)."""
    cells = "".join(
        f'<div data-label="{html.escape(str(label), quote=True)}" style="min-width:5.5rem">'
        f'<div style="font-size:0.85rem;color:#555">{html.escape(str(label))}</div>'
        f'<div class="value" style="font-size:1.9rem;line-height:1.3">{html.escape(str(value))}</div></div>'
        for label, value in items)
    st.html(f'<div data-testid="{testid}" style="display:flex;flex-wrap:wrap;gap:0.8rem 1.4rem">{cells}</div>')
