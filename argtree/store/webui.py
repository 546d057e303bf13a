"""What the oracle web app reads and writes, as store functions (the app itself holds no SQL).

Every function takes the browser's session token and checks it first (``sessions.check_session``),
in the same transaction as what it does: a write (an answer, an undo, an edit, an admin action)
locks the session row, so a logout, a password change or a deactivation that commits first makes
the write fail with ``SessionEnded`` and nothing is stored.  Admin-only functions also check the
role as it is now, not as it was at login.

**Blind answers** (issue 13): nobody but an admin sees others' answers to a proposition before
answering it.  A non-admin sees every tree as if the only labels were those on propositions they
have answered themselves (a live label of any kind, don't-know included): the beliefs, VoI and
root-if numbers of every node, the tree's root numbers and the asked question's numbers are
recomputed without the other labels (``_Blind``), the label count and the labels themselves
(``node_labels``) of an unanswered proposition are withheld, and the root's history (which moves
with every label) is withheld while the tree holds any such proposition.  Admins see everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import StoreError
from .models import Annotator, Label, LoopRun, Node, Proposition, RootBelief, Tree
from .sessions import check_session, revoke_session

__all__ = ["Account", "RootNumbers", "TreeListing", "TreeView", "Agreement", "KINDS", "account", "logout",
           "question", "stats", "answer", "undo", "tree_list", "tree_view", "edit_node", "node_labels",
           "blind_propositions", "reliabilities", "estimate_reliability", "reliability_if_due", "reliability_due",
           "gold_answer",
           "set_gold", "queue_settings_view", "set_queue", "flags", "resolve_flag",
           "human_labels", "agreement", "labeled_trees", "label_counts", "users", "end_sessions", "add_user", "set_user", "loop_runs"]

KINDS = ("true", "false", "probability", "dont_know", "ill_posed")


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class RootNumbers:
    """The three numbers every report shows for a root (DESIGN.md, "Model evidence")."""

    direct: float | None        # the model's direct answer (None: not asked)
    belief: float | None        # the tree's belief: model evidence + labels
    labels_only: float | None   # from human labels alone (None: not computed)


@dataclass(frozen=True)
class TreeListing:
    id: int
    question: str
    n_nodes: int
    root: RootNumbers


@dataclass(frozen=True)
class TreeView:
    summary: Any            # argtree.store.trees.TreeSummary
    root: RootNumbers
    nodes: list             # [NodeInfo]
    history: list           # [dict]: one point per change of the root, oldest first
    blind: int = 0          # propositions whose others' labels are withheld from this viewer (0 for admins)


def _account(row: Annotator) -> Account:
    return Account(row.id, row.name, row.role)


def _numbers(t: Tree) -> RootNumbers:
    return RootNumbers(t.direct_answer, t.root_belief, t.root_labels_only)


def account(session: Session, token: str | None) -> Account:
    """The account a live session belongs to (``SessionEnded`` otherwise)."""
    return _account(check_session(session, token))


def logout(session: Session, token: str | None) -> bool:
    """End this session and give back the question it held; True if it was live."""
    from .queue import release_lease
    from .models import WebSession
    from .sessions import _hash

    aid = session.scalar(select(WebSession.annotator_id).where(WebSession.token_hash == _hash(token or "")))
    live = revoke_session(session, token, "logout")
    if live and aid is not None:
        release_lease(session, aid)
    return live


# -- blind answers --------------------------------------------------------

def _answered(annotator_id: int):
    """Propositions this annotator holds a live label on (any kind): they may see others' answers there."""
    return select(Label.proposition_id).where(Label.annotator_id == annotator_id, Label.retracted_at.is_(None))


def blind_propositions(session: Session, viewer: Annotator, tree_id: int) -> set[int]:
    """Propositions of ``tree_id`` with live labels by others that ``viewer`` has not answered
    (always empty for admins): their labels are withheld from the viewer."""
    if viewer.role == "admin":
        return set()
    in_tree = select(Node.proposition_id).where(Node.tree_id == tree_id)
    return set(session.scalars(
        select(Label.proposition_id).where(Label.proposition_id.in_(in_tree), Label.retracted_at.is_(None),
                                           Label.annotator_id != viewer.id,
                                           Label.proposition_id.not_in(_answered(viewer.id))).distinct()))


@dataclass(frozen=True)
class _BlindTree:
    """A tree recomputed without the labels on the viewer's blind propositions."""

    blind: frozenset
    by_node: dict            # node id -> (belief, voi, root_if_true, root_if_false), None for NaN
    root: RootNumbers


def _blind_tree(session: Session, viewer: Annotator, tree_id: int) -> _BlindTree | None:
    """None when nothing is withheld from ``viewer`` in this tree (admins, or no blind proposition)."""
    from .compute import compute_tree, load_state, queue_settings

    blind = blind_propositions(session, viewer, tree_id)
    if not blind:
        return None
    state, ids, _ = load_state(session, tree_id)
    hidden = {str(nid) for nid, pid in zip(state.node_ids, state.proposition_ids) if pid in blind}
    state.evidence = [e for e in state.evidence if e.is_model or e.node not in hidden]
    out = compute_tree(state, queue_settings(session)["queue.metric"])

    def num(x) -> float | None:
        x = float(x)
        return None if math.isnan(x) else x

    by_node = {int(nid): (num(b), num(v) or 0.0, num(t), num(f)) for nid, b, v, t, f in zip(
        ids, out["belief"], out["voi"], out["root_if_true"], out["root_if_false"])}
    row = session.get(Tree, tree_id)
    return _BlindTree(frozenset(blind), by_node,
                      RootNumbers(row.direct_answer, float(out["root_belief"]), float(out["labels_only"])))


def _blind_question(session: Session, viewer: Annotator, q):
    """The question with every number recomputed without the labels withheld from ``viewer``."""
    bt = _blind_tree(session, viewer, q.tree_id)
    if bt is None:
        return q, None
    b, v, t, f = bt.by_node[q.node_id]
    chain = tuple(replace(link, belief=bt.by_node[link.node_id][0]) for link in q.chain)
    forest = 0.0
    for tid in q.tree_ids:  # the forest VoI, blind in every live tree that holds it
        other = bt if tid == q.tree_id else _blind_tree(session, viewer, tid)
        prio = session.scalar(select(Tree.priority).where(Tree.id == tid)) or 0.0
        for nid in session.scalars(select(Node.id).where(Node.tree_id == tid,
                                                         Node.proposition_id == q.proposition_id)):
            nv = other.by_node[nid][1] if other is not None else (session.get(Node, nid).voi or 0.0)
            forest += prio * nv
    return replace(q, belief=b, voi=v, root_if_true=t, root_if_false=f, root_belief=bt.root.belief, chain=chain,
                   forest_voi=forest), bt.root


# -- answering ------------------------------------------------------------

def _with_root(session: Session, q, viewer: Annotator | None = None):
    if q is None:
        return None
    numbers = None
    if viewer is not None:
        q, numbers = _blind_question(session, viewer, q)
    if numbers is None:
        t = session.get(Tree, q.tree_id)
        numbers = _numbers(t) if t is not None else RootNumbers(None, q.root_belief, None)
    return q, numbers


def question(session: Session, token: str | None):
    """(the question leased to this session's annotator, its tree's RootNumbers), or None when none is left."""
    from .queue import next_question

    me = check_session(session, token, for_write=True)  # leasing writes
    return _with_root(session, next_question(session, me.id), me)


def stats(session: Session, token: str | None):
    from .queue import annotator_stats

    return annotator_stats(session, check_session(session, token).id)


def answer(session: Session, token: str | None, proposition_id: int, kind: str, *, probability: float | None = None,
           rewrite: str | None = None, comment: str | None = None, seconds: float | None = None,
           request_id: str | None = None, then_next: bool = False):
    """Store one answer of ``kind`` (see KINDS); the label id, or with ``then_next`` (label id,
    the next question as ``question`` gives it), both in one transaction."""
    from .queue import next_question, submit_label

    if kind not in KINDS:
        raise StoreError(f"must be one of {', '.join(KINDS)}, got {kind!r}", "kind")
    me = check_session(session, token, for_write=True)
    label = submit_label(
        session, me.id, proposition_id, True if kind == "true" else False if kind == "false" else None,
        probability=probability if kind == "probability" else None, dont_know=kind == "dont_know",
        ill_posed=kind == "ill_posed", rewrite=(rewrite or None) if kind == "ill_posed" else None,
        comment=comment or None, seconds=seconds, request_id=request_id)
    if not then_next:
        return label.id
    return label.id, _with_root(session, next_question(session, me.id), me)


def undo(session: Session, token: str | None) -> str | None:
    """Retract this annotator's last answer; the text of the proposition it was on, or None."""
    from .queue import undo_last_label

    me = check_session(session, token, for_write=True)
    label = undo_last_label(session, me.id)
    return None if label is None else session.get(Proposition, label.proposition_id).text


# -- trees ----------------------------------------------------------------

def tree_list(session: Session, token: str | None, search: str | None = None, limit: int = 200) -> list[TreeListing]:
    """Trees newest first: all of them for admins, those with the viewer's live answers otherwise."""
    me = check_session(session, token)
    q = select(Tree)
    if search:
        if not isinstance(search, str):
            raise StoreError(f"must be text, got {type(search).__name__}", "search")
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(Tree.question.ilike(pattern, escape="\\"))
    if me.role != "admin":
        mine = (select(Node.tree_id).join(Label, Label.proposition_id == Node.proposition_id)
                .where(Label.annotator_id == me.id, Label.retracted_at.is_(None)))
        q = q.where(Tree.id.in_(mine))
    rows = session.scalars(q.order_by(Tree.id.desc()).limit(max(1, min(int(limit), 10_000)))).all()
    out = []
    for t in rows:
        bt = _blind_tree(session, me, t.id)
        out.append(TreeListing(t.id, t.question, t.n_nodes, _numbers(t) if bt is None else bt.root))
    return out


def tree_view(session: Session, token: str | None, tree_id: int) -> TreeView:
    from .trees import TreeSummary, get_tree, tree_nodes

    me = check_session(session, token)
    row = get_tree(session, tree_id)
    mv = row.model_version.name if row.model_version is not None else None
    nodes = tree_nodes(session, tree_id)
    bt = _blind_tree(session, me, tree_id)
    if bt is None:
        summary = TreeSummary(row.id, row.question, row.status, row.priority, row.root_belief, row.n_nodes, mv,
                              row.created_at, row.updated_at)
        return TreeView(summary, _numbers(row), nodes, _history(session, tree_id))
    summary = TreeSummary(row.id, row.question, row.status, row.priority, bt.root.belief, row.n_nodes, mv,
                          row.created_at, row.updated_at)
    shown = []
    for n in nodes:
        b, v, t, f = bt.by_node[n.id]
        shown.append(replace(n, belief=b, voi=v, root_if_true=t, root_if_false=f,
                             n_labels=None if n.proposition_id in bt.blind else n.n_labels))
    # The root's history moves with every label, so it would tell the withheld answers: not shown.
    return TreeView(summary, bt.root, shown, [], blind=len(bt.blind))


def _history(session: Session, tree_id: int) -> list[dict]:
    rows = session.execute(
        select(RootBelief, Label, Annotator.name)
        .outerjoin(Label, Label.id == RootBelief.label_id).outerjoin(Annotator, Annotator.id == Label.annotator_id)
        .where(RootBelief.tree_id == tree_id).order_by(RootBelief.id))
    return [{"at": rb.created_at, "belief": rb.belief, "direct": rb.direct, "labels_only": rb.labels_only,
             "cause": rb.cause, "by": name, "answer": label.kind if label is not None else None}
            for rb, label, name in rows]


def edit_node(session: Session, token: str | None, node_id: int, **numbers: float | None) -> None:
    """An admin edits a node's numbers (``trees.update_node``)."""
    from .trees import update_node

    check_session(session, token, for_write=True, admin=True)
    update_node(session, node_id, **numbers)


def _answer_text(label: Label) -> str:
    kind = label.kind
    if kind == "probability":
        return f"p = {label.probability:.2f}"
    return {"dont_know": "don't know", "ill_posed": "ill-posed"}.get(kind, kind)


def node_labels(session: Session, token: str | None, proposition_id: int) -> list[dict]:
    """Live labels on a proposition with who gave them, newest first; for a non-admin who has not
    answered it (blind answers), only their own (none)."""
    me = check_session(session, token)
    if me.role != "admin" and session.scalar(
            select(func.count()).where(Label.proposition_id == proposition_id, Label.annotator_id == me.id,
                                       Label.retracted_at.is_(None))) == 0:
        return []
    rows = session.execute(select(Label, Annotator.name).join(Annotator, Annotator.id == Label.annotator_id)
                           .where(Label.proposition_id == proposition_id, Label.retracted_at.is_(None))
                           .order_by(Label.id.desc()))
    return [{"annotator": name, "answer": _answer_text(lab), "comment": lab.comment or "",
             "rewrite": lab.rewrite or "", "at": lab.created_at} for lab, name in rows]


# -- agreement (admin) ----------------------------------------------------

def human_labels(session: Session, token: str | None) -> list[dict]:
    """Every live label of a person (not imported evidence): one dict per label."""
    from .reliability import all_labels

    check_session(session, token, admin=True)
    return all_labels(session, people_only=True)


@dataclass(frozen=True)
class Agreement:
    units: int                    # propositions answered (true/false/probability) by two or more people
    alpha_nominal: float | None   # Krippendorff's alpha on true/false (probabilities cut at 0.5)
    alpha_interval: float | None  # on the numbers themselves (true = 1, false = 0)
    disagreements: list[dict]     # overlapped propositions whose true/false answers differ
    note: str = ""


def agreement(labels: list[dict]) -> Agreement:
    """Agreement on overlapped propositions (``human_labels``' rows) with the ``krippendorff`` package."""
    import numpy as np

    people = sorted({r["annotator"] for r in labels})
    by_unit: dict[int, list[dict]] = {}
    for r in labels:
        if r["value"] is not None:
            by_unit.setdefault(r["proposition_id"], []).append(r)
    units = sorted(pid for pid, rs in by_unit.items() if len({r["annotator"] for r in rs}) >= 2)
    disagreements = []
    for pid in units:
        rs = by_unit[pid]
        if len({_side(r["value"]) for r in rs} - {None}) > 1:
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


# -- export (admin) -------------------------------------------------------

def labeled_trees(session: Session, token: str | None, only_labeled: bool = True) -> list:
    """Every stored tree as ``argtree.datasets.LabeledTree`` (with its live labels as evidence)."""
    from ..datasets import LabeledTree
    from .trees import load_tree

    check_session(session, token, admin=True)
    q = select(Tree.id).order_by(Tree.id)
    if only_labeled:
        q = q.where(Tree.id.in_(select(Node.tree_id).join(Label, Label.proposition_id == Node.proposition_id)
                                .where(Label.retracted_at.is_(None))))
    out = []
    for tid in session.scalars(q).all():
        t, ev = load_tree(session, tid)
        row = session.get(Tree, tid)
        mv = row.model_version.name if row.model_version is not None else None
        out.append(LabeledTree(t, ev, source=f"db:tree/{tid}", model=mv))
    return out


# -- admin ----------------------------------------------------------------

def label_counts(session: Session) -> dict[int, int]:
    """Live labels per annotator id (also for ``argtree users list``)."""
    return dict(session.execute(select(Label.annotator_id, func.count()).where(Label.retracted_at.is_(None))
                                .group_by(Label.annotator_id)).all())


def users(session: Session, token: str | None) -> list[dict]:
    from .accounts import list_annotators

    check_session(session, token, admin=True)
    counts = label_counts(session)
    return [{"name": a.name, "role": a.role, "active": a.active, "reliability": a.reliability,
             "labels": counts.get(a.id, 0), "created": a.created_at} for a in list_annotators(session)]


def add_user(session: Session, token: str | None, name: str, password: str, admin: bool = False) -> None:
    from .accounts import add_annotator

    check_session(session, token, for_write=True, admin=True)
    add_annotator(session, name, password, admin)


def set_user(session: Session, token: str | None, name: str, **changes: Any) -> None:
    """Change another account (``accounts.set_annotator``); deactivating ends its sessions."""
    from .accounts import set_annotator

    me = check_session(session, token, for_write=True, admin=True)
    if name == me.name:
        raise StoreError("admins cannot change their own account here", "name")
    set_annotator(session, name, **changes)


def end_sessions(session: Session, token: str | None, name: str) -> int:
    """An admin ends every web session of another account (a lost laptop); how many were live."""
    from .accounts import get_annotator
    from .sessions import revoke_sessions

    me = check_session(session, token, for_write=True, admin=True)
    target = get_annotator(session, name)
    if target.id == me.id:
        raise StoreError("use Log out to end your own session", "name")
    return revoke_sessions(session, target.id, "admin")


def loop_runs(session: Session, token: str | None, limit: int = 50) -> list[dict]:
    import json

    check_session(session, token, admin=True)
    rows = session.scalars(select(LoopRun).order_by(LoopRun.id.desc()).limit(limit))
    return [{"id": r.id, "status": r.status, "started": r.started_at, "heartbeat": r.heartbeat_at,
             "finished": r.finished_at, "stats": json.dumps(r.stats or {}, default=str)[:300]} for r in rows]


# -- learned reliability, gold questions, queue settings (admin; issue 13) ---------------------------

def reliabilities(session: Session, token: str | None) -> list[dict]:
    """Every annotator with labels: prior, learned reliability with its 90% interval, gold answered."""
    from .reliability import reliability_table

    check_session(session, token, admin=True)
    return reliability_table(session)


def estimate_reliability(session: Session, token: str | None) -> dict:
    """An admin re-estimates every annotator's reliability now (trees whose weights moved are recomputed)."""
    from .reliability import update_reliability

    check_session(session, token, for_write=True, admin=True)
    return update_reliability(session)


RELIABILITY_EVERY = 25  # answers between automatic re-estimations (setting 'reliability.every'; 0: never)


def _reliability_every(session: Session) -> int:
    from .models import Setting

    row = session.get(Setting, "reliability.every")
    return RELIABILITY_EVERY if row is None else int(row.value)


def _answers_since_estimate(session: Session) -> int:
    from .models import Setting

    last = session.get(Setting, "reliability.last_count")
    return _label_mark(session) - (int(last.value) if last is not None else 0)


def _label_mark(session: Session) -> int:
    """The newest label id: labels stored so far, read from the primary key's index (a count would scan)."""
    return int(session.scalar(select(func.max(Label.id))) or 0)


def reliability_due(session: Session, token: str | None) -> bool:
    """Whether ``reliability_if_due`` would re-estimate now (a read: cheap after every answer)."""
    check_session(session, token)
    every = _reliability_every(session)
    return every > 0 and _answers_since_estimate(session) >= every


def reliability_if_due(session: Session, token: str | None) -> dict | None:
    """Re-estimate reliabilities when ``reliability.every`` labels (of anyone) came in since the last time.

    The web app calls it after an answer has committed, in a transaction of its own (re-estimation may
    recompute many trees, which must not hold the answer's locks).  Any live session may trigger it; two
    at once both re-estimate (the same result), or one fails on the setting's key and the caller moves on."""
    from .reliability import reestimate_if_due

    check_session(session, token, for_write=True)
    return reestimate_if_due(session)


def gold_answer(session: Session, token: str | None, proposition_id: int) -> bool | None:
    """The gold answer of a proposition (admins only: nobody else may learn what is gold)."""
    from .models import GoldAnswer

    check_session(session, token, admin=True)
    row = session.get(GoldAnswer, proposition_id)
    return None if row is None else row.value


def set_gold(session: Session, token: str | None, proposition_id: int, value: bool | None,
             note: str | None = None) -> None:
    """An admin marks a proposition's known answer (``value`` True/False) or unmarks it (None)."""
    from .reliability import mark_gold, unmark_gold

    me = check_session(session, token, for_write=True, admin=True)
    if value is None:
        unmark_gold(session, proposition_id)
    else:
        mark_gold(session, proposition_id, value, by=me.id, note=note)


def queue_settings_view(session: Session, token: str | None) -> dict:
    from .compute import queue_settings

    check_session(session, token, admin=True)
    return queue_settings(session, fresh=True)


def set_queue(session: Session, token: str | None, **changes: Any) -> dict:
    """An admin changes the queue settings (overlap, gold_rate, lease_seconds, metric)."""
    from .queue import set_queue_settings

    check_session(session, token, for_write=True, admin=True)
    return set_queue_settings(session, **changes)


def flags(session: Session, token: str | None, include_resolved: bool = False) -> list:
    """Consistency flags for review (admins: they name labels and numbers others may not see yet)."""
    from .flags import find_flags

    check_session(session, token, admin=True)
    return find_flags(session, include_resolved=include_resolved)


def resolve_flag(session: Session, token: str | None, key: str, note: str | None = None) -> None:
    """An admin records that a flag is resolved (who, when, why)."""
    from .flags import find_flags, resolve_flag as _resolve

    me = check_session(session, token, for_write=True, admin=True)
    if key not in {f.key for f in find_flags(session, include_resolved=True)}:
        raise StoreError(f"no flag {key!r} now", "key")
    _resolve(session, key, by=me.id, note=note)
