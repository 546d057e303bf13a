r"""Showing model text: always literally, never as Markdown or HTML, and never invisibly.

A premise may contain ``<script>``, HTML, or Markdown links and images; the
oracle must see those characters, not their effect.  ``st.text`` never
parses; ``box`` escapes every character HTML treats specially before it
reaches ``st.html`` (which adds only our own styling).

Characters that change how text looks without showing themselves (bidi overrides
such as U+202E, which make "RTL \u202eevil" display as "RTL live"; zero-width
characters; C0/C1 controls other than newline and tab; lone surrogates) are shown
as visible ``\uXXXX`` escapes by ``visible``, which every function here applies.
"""

from __future__ import annotations

import html
import re

import streamlit as st


_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u206f\ufe00-\ufe0f\ufeff\ufff9-\ufffb\ud800-\udfff]")


def visible(value: object) -> str:
    """The text with every invisible or direction-changing character written as ``\\uXXXX``."""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", "" if value is None else str(value))


def rows(records: list[dict]) -> list[dict]:
    """Table rows with every text cell made ``visible`` (for st.dataframe)."""
    return [{k: visible(v) if isinstance(v, str) else v for k, v in r.items()} for r in records]


def text(value: str | None, *, key: str | None = None) -> None:
    st.text(visible(value))


def link(label: str, href: str, *, testid: str = "link") -> None:
    """A plain link that opens in this tab (our own URLs only)."""
    st.html(f'<a data-testid="{html.escape(testid, quote=True)}" href="{html.escape(href, quote=True)}" '
            f'style="font-size:1.1rem">{html.escape(label)}</a>')


def box(value: str | None, *, size: str = "1.35rem", testid: str = "premise", caption: str | None = None) -> None:
    """A large, wrapped, literal block of text (the question being asked), with an optional small caption."""
    safe = html.escape(visible(value), quote=True)
    head = (f'<div style="font-size:0.85rem;color:#808495;margin-bottom:0.3rem">{html.escape(visible(caption))}</div>'
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


def root_numbers(root, *, testid: str = "root-numbers") -> None:
    """The three numbers of a root (DESIGN.md): the model's direct answer, the tree's belief, labels only.

    ``root`` is an ``argtree.store.webui.RootNumbers``; a number not known yet shows as "—"."""
    def show(p: float | None) -> str:
        return "—" if p is None else pct(p)

    figures([("Model's direct answer", show(getattr(root, "direct", None))),
             ("Tree's belief", show(getattr(root, "belief", None))),
             ("Labels only", show(getattr(root, "labels_only", None)))], testid=testid)
