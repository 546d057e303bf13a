"""Everything the pages read or write, as plain values, over ``argtree.store``.

Each call opens its own short transaction (``session_scope``) and turns the
ways a database can fail into ``Unavailable`` with one readable line, so a
page can say "the database is down" instead of showing a traceback.
``StoreError`` (bad input the user can fix) passes through unchanged.

A few reads the store has no function for (labels with names for the
agreement page, the trees an annotator has answered in, loop runs) are
written here with the store's models; they need no schema change.
"""

from __future__ import annotations

import io
import json
import math
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")

KINDS = ("true", "false", "probability", "dont_know", "ill_posed")


class Unavailable(RuntimeError):
    """The database cannot be used right now (down, unmigrated, locked); the message says which."""


class LoginError(ValueError):
    """A failed login; the message is safe to show."""


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    fingerprint: str  # of the password hash: a new password ends old sessions

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def call(fn: Callable[..., T], *args: Any, readonly: bool = False, **kwargs: Any) -> T:
    """``fn(session, *args, **kwargs)`` in one transaction; database failures become ``Unavailable``."""
    from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

    from argtree.store import SchemaError, StoreError, database_url, session_scope
    from argtree.store.db import redact

    try:
        with session_scope(readonly=readonly) as session:
            return fn(session, *args, **kwargs)
    except StoreError:
        raise
    except SchemaError as err:
        raise Unavailable(str(err)) from None
    except (OperationalError, DBAPIError) as err:
        raise Unavailable(f"the database {redact(database_url())} is not reachable: {_first_line(err)}") from None
    except SQLAlchemyError as err:
        raise Unavailable(f"database error: {_first_line(err)}") from None


def database_name() -> str:
    from argtree.store import database_url
    from argtree.store.db import redact

    return redact(database_url())


# -- accounts -------------------------------------------------------------

def _fingerprint(password_hash: str | None) -> str:
    import hashlib

    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def _account(row) -> Account:
    return Account(row.id, row.name, row.role, _fingerprint(row.password_hash))


def login(name: str, password: str) -> Account:
    """The account for this name and password, or LoginError saying what was wrong."""
    from sqlalchemy import select

    from argtree.store import Annotator, verify_password

    name = (name or "").strip()
    if not name or not password:
        raise LoginError("Enter your name and password.")

    def go(session):
        row = verify_password(session, name, password)
        if row is not None:
            return _account(row), None
        other = session.scalar(select(Annotator).where(Annotator.name == name))
        if other is None or other.role == "system":
            return None, f"There is no account named {name!r}. An admin can add one with `argtree users add {name}`."
        if not other.active:
            return None, f"The account {name!r} is deactivated; ask an admin."
        return None, f"Wrong password for {name!r}."

    account, message = call(go)
    if account is None:
        raise LoginError(message)
    return account


def account(annotator_id: int) -> Account | None:
    """The active account with this id, or None."""
    from argtree.store import Annotator

    def go(session):
        row = session.get(Annotator, annotator_id)
        if row is None or not row.active or row.role == "system":
            return None
        return _account(row)

    return call(go, readonly=True)


def release(annotator_id: int) -> None:
    from argtree.store import release_lease

    call(release_lease, annotator_id)


# -- answering ------------------------------------------------------------

def next_question(annotator_id: int):
    """The question leased to this annotator (``argtree.store.queue.Question``), or None when none is left."""
    from argtree.store import next_question as nq

    return call(nq, annotator_id)


def stats(annotator_id: int):
    from argtree.store import annotator_stats

    return call(annotator_stats, annotator_id, readonly=True)


def answer(annotator_id: int, proposition_id: int, kind: str, *, probability: float | None = None,
           rewrite: str | None = None, comment: str | None = None, seconds: float | None = None,
           request_id: str | None = None, then_next: bool = False):
    """Store one answer of ``kind`` (see KINDS); returns the label id, or with ``then_next``
    (label id, the next question leased to this annotator or None), both in one transaction."""
    from argtree.store import next_question as nq
    from argtree.store import submit_label

    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}")
    args: dict[str, Any] = {
        "value": True if kind == "true" else False if kind == "false" else None,
        "probability": probability if kind == "probability" else None,
        "dont_know": kind == "dont_know", "ill_posed": kind == "ill_posed",
        "rewrite": (rewrite or None) if kind == "ill_posed" else None,
        "comment": comment or None, "seconds": seconds, "request_id": request_id or uuid.uuid4().hex,
    }

    def go(session):
        label_id = submit_label(session, annotator_id, proposition_id, args.pop("value"), **args).id
        return (label_id, nq(session, annotator_id)) if then_next else label_id

    return call(go)


def undo(annotator_id: int) -> str | None:
    """Retract this annotator's last answer; the text of the proposition it was on, or None."""
    from argtree.store import Proposition, undo_last_label

    def go(session):
        label = undo_last_label(session, annotator_id)
        return None if label is None else session.get(Proposition, label.proposition_id).text

    return call(go)


# -- trees ----------------------------------------------------------------

def trees(search: str | None, viewer: Account, limit: int = 200) -> list:
    """Tree summaries, newest first: all of them for admins, those with the viewer's answers otherwise."""
    from argtree.store import list_trees

    if viewer.is_admin:
        return call(list_trees, search or None, limit=limit, readonly=True)
    from sqlalchemy import select

    from argtree.store import Label, Node

    def go(session):
        mine = set(session.scalars(
            select(Node.tree_id).join(Label, Label.proposition_id == Node.proposition_id)
            .where(Label.annotator_id == viewer.id, Label.retracted_at.is_(None)).distinct()))
        return [t for t in list_trees(session, search or None, limit=10_000) if t.id in mine][:limit]

    return call(go, readonly=True)


@dataclass(frozen=True)
class TreeView:
    summary: Any            # argtree.store.trees.TreeSummary
    nodes: list             # [NodeInfo]
    history: list           # [RootPoint]


def tree(tree_id: int) -> TreeView:
    from argtree.store import TreeSummary, get_tree, root_history, tree_nodes

    def go(session):
        row = get_tree(session, tree_id)
        mv = row.model_version.name if row.model_version is not None else None
        summary = TreeSummary(row.id, row.question, row.status, row.priority, row.root_belief, row.n_nodes, mv,
                              row.created_at, row.updated_at)
        return TreeView(summary, tree_nodes(session, tree_id), root_history(session, tree_id))

    return call(go, readonly=True)


def edit_node(node_id: int, **numbers: float | None) -> None:
    from argtree.store import update_node

    call(update_node, node_id, **numbers)


def node_labels(proposition_id: int) -> list[dict]:
    """Live labels on a proposition with who gave them, newest first."""
    from sqlalchemy import select

    from argtree.store import Annotator, Label

    def go(session):
        rows = session.execute(select(Label, Annotator.name).join(Annotator, Annotator.id == Label.annotator_id)
                               .where(Label.proposition_id == proposition_id, Label.retracted_at.is_(None))
                               .order_by(Label.id.desc()))
        return [{"annotator": name, "answer": _answer_text(lab), "comment": lab.comment or "",
                 "rewrite": lab.rewrite or "", "at": lab.created_at} for lab, name in rows]

    return call(go, readonly=True)


def _answer_text(label) -> str:
    kind = label.kind
    if kind == "probability":
        return f"p = {label.probability:.2f}"
    return {"dont_know": "don't know", "ill_posed": "ill-posed"}.get(kind, kind)


# -- agreement ------------------------------------------------------------

def human_labels() -> list[dict]:
    """Every live label of a person (not imported evidence): one dict per label."""
    from sqlalchemy import select

    from argtree.store import Annotator, Label, Proposition

    def go(session):
        rows = session.execute(
            select(Label, Annotator.name, Proposition.text).join(Annotator, Annotator.id == Label.annotator_id)
            .join(Proposition, Proposition.id == Label.proposition_id)
            .where(Label.retracted_at.is_(None), Label.reliability.is_(None), Annotator.role != "system")
            .order_by(Label.id))
        return [{"label_id": lab.id, "annotator": name, "proposition_id": lab.proposition_id, "text": text,
                 "kind": lab.kind, "answer": _answer_text(lab),
                 "value": 1.0 if lab.value is True else 0.0 if lab.value is False else lab.probability,
                 "seconds": lab.seconds, "at": lab.created_at} for lab, name, text in rows]

    return call(go, readonly=True)


@dataclass(frozen=True)
class Agreement:
    units: int                   # propositions answered (true/false/probability) by two or more people
    alpha_nominal: float | None  # Krippendorff's alpha on true/false (probabilities cut at 0.5)
    alpha_interval: float | None  # on the numbers themselves (true = 1, false = 0)
    disagreements: list[dict]    # overlapped propositions whose true/false answers differ
    note: str = ""


def agreement(labels: list[dict]) -> Agreement:
    """Agreement on overlapped propositions with the ``krippendorff`` package."""
    import numpy as np

    people = sorted({r["annotator"] for r in labels})
    graded = [r for r in labels if r["value"] is not None]
    by_unit: dict[int, list[dict]] = {}
    for r in graded:
        by_unit.setdefault(r["proposition_id"], []).append(r)
    units = sorted(pid for pid, rs in by_unit.items() if len({r["annotator"] for r in rs}) >= 2)
    disagreements = []
    for pid in units:
        sides = {_side(r["value"]) for r in by_unit[pid]} - {None}
        if len(sides) > 1:
            rs = by_unit[pid]
            disagreements.append({"proposition_id": pid, "text": rs[0]["text"],
                                  "answers": "; ".join(f"{r['annotator']}: {r['answer']}" for r in rs)})
    if not units:
        return Agreement(0, None, None, [], "no proposition has answers from two people yet")
    col = {pid: j for j, pid in enumerate(units)}
    row = {name: i for i, name in enumerate(people)}
    interval = np.full((len(people), len(units)), np.nan)
    for pid in units:
        for r in by_unit[pid]:
            interval[row[r["annotator"]], col[pid]] = r["value"]
    nominal = np.vectorize(lambda v: np.nan if math.isnan(v) else (_side(v) if _side(v) is not None else np.nan),
                           otypes=[float])(interval)
    return Agreement(len(units), _alpha(nominal, "nominal"), _alpha(interval, "interval"), disagreements)


def _side(v: float) -> float | None:
    return 1.0 if v > 0.5 else 0.0 if v < 0.5 else None


def _alpha(data, level: str) -> float | None:
    import krippendorff
    import numpy as np

    values = data[~np.isnan(data)]
    if values.size == 0 or len(set(values.tolist())) < 2:
        return None  # one value only: alpha is undefined (perfect agreement, no variation)
    try:
        return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    except (ValueError, ZeroDivisionError):
        return None


# -- export ---------------------------------------------------------------

def labeled_trees(only_labeled: bool = True) -> list:
    """Every stored tree as ``argtree.datasets.LabeledTree`` (with its live labels as evidence)."""
    from sqlalchemy import select

    from argtree.datasets import LabeledTree
    from argtree.store import Label, Node, Tree, load_tree

    def go(session):
        ids = list(session.scalars(select(Tree.id).order_by(Tree.id)))
        if only_labeled:
            has = set(session.scalars(select(Node.tree_id).join(Label, Label.proposition_id == Node.proposition_id)
                                      .where(Label.retracted_at.is_(None)).distinct()))
            ids = [i for i in ids if i in has]
        out = []
        for tid in ids:
            t, ev = load_tree(session, tid)
            row = session.get(Tree, tid)
            mv = row.model_version.name if row.model_version is not None else None
            out.append(LabeledTree(t, ev, source=f"db:tree/{tid}", model=mv))
        return out

    return call(go, readonly=True)


def dataset(kind: str, fmt: str, split: float | None) -> dict[str, bytes]:
    """{file name: JSONL bytes} for the fine-tuning export (``argtree.datasets.build``), plus its card."""
    from argtree.datasets import build

    result = build(labeled_trees(), kind, fmt, split)
    files = {f"{kind}-{fmt}{'' if name == 'all' else '.' + name}.jsonl":
             "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in recs).encode()
             for name, recs in result["splits"].items()}
    files[f"{kind}-{fmt}.card.json"] = json.dumps(result["card"], indent=1, ensure_ascii=False, default=str).encode()
    return files


def dump_zip(only_labeled: bool = False) -> tuple[bytes, int]:
    """A zip of argtree/1 files, one per tree (labels as evidence); and how many trees it holds."""
    from argtree.io import dumps

    buf = io.BytesIO()
    trees_ = labeled_trees(only_labeled)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for lt in trees_:
            zf.writestr(f"{lt.source.replace('db:tree/', 'tree-')}.json", dumps(lt.tree, lt.evidence))
    return buf.getvalue(), len(trees_)


# -- admin ----------------------------------------------------------------

def users() -> list[dict]:
    from sqlalchemy import func, select

    from argtree.store import Label, list_annotators

    def go(session):
        counts = dict(session.execute(select(Label.annotator_id, func.count()).where(Label.retracted_at.is_(None))
                                      .group_by(Label.annotator_id)).all())
        return [{"name": a.name, "role": a.role, "active": a.active, "reliability": a.reliability,
                 "labels": counts.get(a.id, 0), "created": a.created_at} for a in list_annotators(session)]

    return call(go, readonly=True)


def add_user(name: str, password: str, admin: bool) -> None:
    from argtree.store import add_annotator

    call(add_annotator, name, password, admin)


def set_user(name: str, **changes: Any) -> None:
    from argtree.store import set_annotator

    call(set_annotator, name, **changes)


def runs(limit: int = 50) -> list[dict]:
    from sqlalchemy import select

    from argtree.store import LoopRun

    def go(session):
        rows = session.scalars(select(LoopRun).order_by(LoopRun.id.desc()).limit(limit))
        return [{"id": r.id, "status": r.status, "started": r.started_at, "heartbeat": r.heartbeat_at,
                 "finished": r.finished_at, "stats": json.dumps(r.stats or {}, default=str)[:300]} for r in rows]

    return call(go, readonly=True)

