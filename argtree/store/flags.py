"""Consistency flags (issue 13): contradictions the trees and the labels hold, for an admin to review.

- ``negation``: a proposition and its negation (same content words, negations differing in parity:
  "Ad-hoc collaboration drops." / "... does not drop.", ``argtree.fact_match``) both believed above
  ``believed`` in one live tree, or both labeled true (a live true label, or a probability above 0.5).
- ``labels``: one proposition labeled true by one annotator and false by another, both at least
  ``reliable`` (learned reliability, else the one they were created with).
- ``numbers``: one proposition whose belief differs by more than ``spread`` between live trees.

Each flag has a stable key (``negation:12:34``, ``labels:7``, ``numbers:7``); ``resolve_flag`` records
who resolved it, when and why (table ``flag_resolutions``), and a resolved flag is listed only on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..fact_match import NEGATIONS, content, words
from .errors import StoreError
from .models import Annotator, AnnotatorEstimate, FlagResolution, Label, Node, Proposition, Tree, utcnow
from .text import check_text

__all__ = ["Flag", "find_flags", "resolve_flag", "negation_key"]


@dataclass(frozen=True)
class Flag:
    key: str
    kind: str                       # negation | labels | numbers
    proposition_ids: tuple[int, ...]
    texts: tuple[str, ...]
    why: str
    tree_ids: tuple[int, ...] = ()
    resolved: dict | None = field(default=None)


def negation_key(text: str) -> tuple[tuple[str, ...], int]:
    """(content words, stemmed and without negations; parity of the negations) of a proposition's text."""
    ws = words(text)
    return tuple(content(ws)), sum(w in NEGATIONS for w in ws) % 2


def _live_beliefs(session: Session, believed: float):
    return session.execute(
        select(Node.tree_id, Node.proposition_id, Node.belief, Proposition.text)
        .join(Tree, Tree.id == Node.tree_id).join(Proposition, Proposition.id == Node.proposition_id)
        .where(Tree.status != "archived", Node.belief > believed)).all()


def _pairs(items: dict[int, str]) -> list[tuple[int, int]]:
    """Pairs of proposition ids whose texts are each other's negation."""
    by_key: dict[tuple, dict[int, list[int]]] = {}
    for pid, text in items.items():
        words_, parity = negation_key(text)
        if words_:
            by_key.setdefault(words_, {}).setdefault(parity, []).append(pid)
    out = []
    for sides in by_key.values():
        for a in sides.get(0, ()):
            for b in sides.get(1, ()):
                out.append((min(a, b), max(a, b)))
    return out


def find_flags(session: Session, *, believed: float = 0.7, reliable: float = 0.8, spread: float = 0.3,
               include_resolved: bool = False) -> list[Flag]:
    """Every consistency flag (see the module doc), unresolved ones only unless ``include_resolved``."""
    flags: dict[str, Flag] = {}
    text_of: dict[int, str] = {}
    # 1. A proposition and its negation, both believed above the threshold in one live tree ...
    per_tree: dict[int, dict[int, str]] = {}
    for tid, pid, _, text in _live_beliefs(session, believed):
        per_tree.setdefault(tid, {})[pid] = text
        text_of[pid] = text
    for tid, items in sorted(per_tree.items()):
        for a, b in _pairs(items):
            key = f"negation:{a}:{b}"
            old = flags.get(key)
            trees = (old.tree_ids if old else ()) + (tid,)
            flags[key] = Flag(key, "negation", (a, b), (items[a], items[b]),
                              f"both believed above {believed:g} in tree(s) {', '.join(map(str, trees))}", trees)
    # ... or both labeled true.
    rows = session.execute(
        select(Label.proposition_id, Proposition.text).join(Proposition, Proposition.id == Label.proposition_id)
        .where(Label.retracted_at.is_(None), (Label.value.is_(True)) | (Label.probability > 0.5)).distinct()).all()
    true_items = {pid: text for pid, text in rows}
    text_of.update(true_items)
    for a, b in _pairs(true_items):
        key = f"negation:{a}:{b}"
        if key not in flags:
            flags[key] = Flag(key, "negation", (a, b), (true_items[a], true_items[b]), "both labeled true")
    # 2. Conflicting labels from reliable annotators.
    weight = func.coalesce(Label.reliability, AnnotatorEstimate.reliability, Annotator.reliability)
    rows = session.execute(
        select(Label.proposition_id, Annotator.name, Label.value, Label.probability, Proposition.text)
        .join(Annotator, Annotator.id == Label.annotator_id)
        .outerjoin(AnnotatorEstimate, AnnotatorEstimate.annotator_id == Label.annotator_id)
        .join(Proposition, Proposition.id == Label.proposition_id)
        .where(Label.retracted_at.is_(None), weight >= reliable,
               (Label.value.is_not(None)) | (Label.probability.is_not(None)))).all()
    sides: dict[int, dict[bool, set[str]]] = {}
    for pid, name, value, prob, text in rows:
        side = value if value is not None else (prob > 0.5 if prob != 0.5 else None)
        if side is None:
            continue
        sides.setdefault(pid, {}).setdefault(bool(side), set()).add(name)
        text_of[pid] = text
    for pid, s in sorted(sides.items()):
        if s.get(True) and s.get(False):
            key = f"labels:{pid}"
            flags[key] = Flag(key, "labels", (pid,), (text_of[pid],),
                              f"true by {', '.join(sorted(s[True]))}; false by {', '.join(sorted(s[False]))} "
                              f"(all at reliability ≥ {reliable:g})")
    # 3. Conflicting numbers across trees.
    rows = session.execute(
        select(Node.proposition_id, func.min(Node.belief), func.max(Node.belief), func.count(func.distinct(Node.tree_id)))
        .join(Tree, Tree.id == Node.tree_id).where(Tree.status != "archived", Node.belief.is_not(None))
        .group_by(Node.proposition_id)
        .having(func.max(Node.belief) - func.min(Node.belief) > spread)).all()
    if rows:
        texts = dict(session.execute(select(Proposition.id, Proposition.text)
                                     .where(Proposition.id.in_([r[0] for r in rows]))).all())
        for pid, lo, hi, n in rows:
            key = f"numbers:{pid}"
            trees = tuple(sorted(set(session.scalars(select(Node.tree_id).join(Tree, Tree.id == Node.tree_id).where(
                Node.proposition_id == pid, Tree.status != "archived")))))
            flags[key] = Flag(key, "numbers", (pid,), (texts[pid],),
                              f"believed from {lo:.2f} to {hi:.2f} across {n} trees", trees)
    resolved = {r.key: r for r in session.scalars(select(FlagResolution).where(FlagResolution.key.in_(list(flags))))} \
        if flags else {}
    names = dict(session.execute(select(Annotator.id, Annotator.name)).all()) if resolved else {}
    out = []
    for key in sorted(flags, key=lambda k: (k.split(":")[0], [int(x) for x in k.split(":")[1:]])):
        r = resolved.get(key)
        if r is not None and not include_resolved:
            continue
        f = flags[key]
        if r is not None:
            f = Flag(f.key, f.kind, f.proposition_ids, f.texts, f.why, f.tree_ids,
                     {"by": names.get(r.resolved_by), "at": r.resolved_at, "note": r.note or ""})
        out.append(f)
    return out


def resolve_flag(session: Session, key: str, *, by: int | None = None, note: str | None = None) -> FlagResolution:
    """Record that an admin resolved the flag ``key`` (again: the newest resolution replaces the older)."""
    if not isinstance(key, str) or not key or len(key) > 200 or key.split(":")[0] not in ("negation", "labels",
                                                                                          "numbers"):
        raise StoreError(f"must be a flag key such as 'labels:7', got {key!r}", "key")
    note = check_text(note, "note", optional=True)
    row = session.get(FlagResolution, key)
    if row is None:
        row = FlagResolution(key=key, resolved_by=by, note=note, resolved_at=utcnow())
        session.add(row)
    else:
        row.resolved_by, row.note, row.resolved_at = by, note, utcnow()
    session.flush()
    return row
