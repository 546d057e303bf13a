"""Gold questions and learned annotator reliability in the store (issue 13).

- ``mark_gold`` / ``unmark_gold`` / ``gold_list``: propositions an admin marks with a known answer.
  The queue mixes them in at the rate ``queue.gold_rate`` (``argtree.store.queue``); nothing an
  annotator sees says a question is gold.
- ``update_reliability``: one-coin Dawid–Skene EM (``argtree.annotators``) over every live label of
  every annotator, people and the loop's oracles alike, with gold answers clamped and each
  annotator's ``annotators.reliability`` as a Beta prior.  Estimates are stored in
  ``annotator_estimates``; from then on they weigh those annotators' soft evidence
  (``argtree.store.compute``).  Every tree holding a label of an annotator whose estimate moved is
  recomputed in the same transaction.
- Not counted: imported evidence that carries its own reliability (argtree/1 files say how much to
  trust it) and the model's own credence (model evidence: ``nodes.model_evidence``, never a label).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..annotators import PRIOR_STRENGTH, Vote, estimate
from .compute import apply_forest_deltas, lock_trees, recompute_trees, top_exact
from .errors import NotFound, StoreError
from .models import Annotator, AnnotatorEstimate, GoldAnswer, Label, Node, Proposition, utcnow
from .text import check_text

__all__ = ["mark_gold", "unmark_gold", "gold_list", "is_gold", "collect_votes", "update_reliability",
           "reliability_table", "queue_ranking", "all_labels", "MIN_MOVE"]

MIN_MOVE = 0.005  # an estimate that moved less than this keeps its stored value (no recomputation)


def _pid(session: Session, proposition_id: Any) -> int:
    if isinstance(proposition_id, bool) or not isinstance(proposition_id, int):
        raise StoreError(f"must be an integer id, got {proposition_id!r}", "proposition_id")
    if session.get(Proposition, proposition_id) is None:
        raise NotFound(f"no proposition with id {proposition_id}", "proposition_id")
    return proposition_id


def mark_gold(session: Session, proposition_id: int, value: bool, *, by: int | None = None,
              note: str | None = None) -> GoldAnswer:
    """Mark (or re-mark) a proposition's known answer."""
    if not isinstance(value, bool):
        raise StoreError(f"must be true or false, got {value!r}", "value")
    pid = _pid(session, proposition_id)
    note = check_text(note, "note", optional=True)
    row = session.get(GoldAnswer, pid)
    if row is None:
        row = GoldAnswer(proposition_id=pid, value=value, created_by=by, note=note, created_at=utcnow())
        session.add(row)
    else:
        row.value, row.created_by, row.note, row.created_at = value, by, note, utcnow()
    session.flush()
    return row


def unmark_gold(session: Session, proposition_id: int) -> bool:
    return bool(session.execute(delete(GoldAnswer).where(GoldAnswer.proposition_id == proposition_id)).rowcount)


def is_gold(session: Session, proposition_id: int) -> bool:
    return session.get(GoldAnswer, proposition_id) is not None


def gold_list(session: Session) -> list[dict]:
    rows = session.execute(select(GoldAnswer, Proposition.text).join(Proposition, Proposition.id ==
                                                                     GoldAnswer.proposition_id)
                           .order_by(GoldAnswer.proposition_id))
    return [{"proposition_id": g.proposition_id, "text": text, "value": g.value, "note": g.note or "",
             "at": g.created_at} for g, text in rows]


def collect_votes(session: Session) -> tuple[list[Vote], dict[int, float], dict[int, bool], dict[int, str]]:
    """(votes, prior reliability per annotator id, gold answers, annotator names) from the live labels."""
    rows = session.execute(
        select(Label.annotator_id, Label.proposition_id, Label.value, Label.probability)
        .where(Label.retracted_at.is_(None), Label.reliability.is_(None),
               (Label.value.is_not(None)) | (Label.probability.is_not(None)))
        .order_by(Label.id))
    votes = [Vote(aid, pid, value, probability) for aid, pid, value, probability in rows]
    people = {aid for aid, *_ in session.execute(select(Label.annotator_id).where(
        Label.retracted_at.is_(None), Label.reliability.is_(None)).distinct())}
    priors, names = {}, {}
    for aid, name, rel in session.execute(select(Annotator.id, Annotator.name, Annotator.reliability)):
        names[aid] = name
        if aid in people:
            priors[aid] = float(rel)
    gold = dict(session.execute(select(GoldAnswer.proposition_id, GoldAnswer.value)).all())
    return votes, priors, gold, names


def update_reliability(session: Session, *, min_move: float = MIN_MOVE, strength: float = PRIOR_STRENGTH,
                       recompute: bool = True) -> dict:
    """Re-estimate every annotator's reliability from all live labels and store it; recompute the trees
    holding labels of those whose estimate moved by ``min_move`` or more.  Returns
    {"annotators": n, "moved": [names], "trees": recomputed, "iterations": k}."""
    if session.get_bind().dialect.name == "postgresql":  # alone: answers in flight finish first, new ones wait
        from .compute import RELIABILITY_LOCK

        session.execute(select(func.pg_advisory_xact_lock(RELIABILITY_LOCK)))
    votes, priors, gold, names = collect_votes(session)
    res = estimate(votes, priors=priors, gold=gold, strength=strength)
    stored = {e.annotator_id: e for e in session.scalars(select(AnnotatorEstimate))}
    moved: list[int] = []
    now = utcnow()
    for aid, e in sorted(res.estimates.items()):
        row = stored.get(aid)
        before = row.reliability if row is not None else priors.get(aid)
        values = dict(reliability=e.reliability, low=min(e.low, e.reliability), high=max(e.high, e.reliability),
                      alpha=e.alpha, beta=e.beta, n_labels=e.n, n_gold=e.n_gold, gold_correct=e.gold_correct,
                      updated_at=now)
        if row is None:
            session.add(AnnotatorEstimate(annotator_id=aid, **values))
            if before is None or abs(e.reliability - before) >= min_move:
                moved.append(aid)
        else:
            if abs(e.reliability - before) >= min_move:
                moved.append(aid)
                for k, v in values.items():
                    setattr(row, k, v)
            else:  # counts and interval follow; the weight stays (no recomputation for a tiny move)
                for k in ("low", "high", "alpha", "beta", "n_labels", "n_gold", "gold_correct", "updated_at"):
                    setattr(row, k, values[k])
                row.low, row.high = min(row.low, row.reliability), max(row.high, row.reliability)
    session.flush()
    tree_ids: list[int] = []
    if moved and recompute:
        pids = select(Label.proposition_id).where(Label.annotator_id.in_(moved), Label.retracted_at.is_(None),
                                                  Label.reliability.is_(None))
        tree_ids = sorted(set(session.scalars(select(Node.tree_id).where(Node.proposition_id.in_(pids)).distinct())))
        if tree_ids:
            lock_trees(session, tree_ids)
            # every change, decreases too: a re-estimation moves many trees at once, and is not an answer
            # waiting on its commit (left as bounds, the decreases would all be fixed by the next reader)
            apply_forest_deltas(session, recompute_trees(session, tree_ids, cause="recompute"),
                                increases_only=False)
    return {"annotators": len(res.estimates), "moved": [names.get(a, str(a)) for a in moved],
            "trees": len(tree_ids), "iterations": res.iterations}


def reliability_table(session: Session) -> list[dict]:
    """Every annotator with labels or an estimate: prior, learned reliability and 90% interval, counts."""
    est = {e.annotator_id: e for e in session.scalars(select(AnnotatorEstimate))}
    counts = dict(session.execute(
        select(Label.annotator_id, func.count()).where(Label.retracted_at.is_(None), Label.reliability.is_(None))
        .group_by(Label.annotator_id)).all())
    out = []
    for a in session.scalars(select(Annotator).order_by(Annotator.name)):
        e = est.get(a.id)
        if e is None and a.id not in counts:
            continue
        out.append({"annotator": a.name, "role": a.role, "labels": int(counts.get(a.id, 0)), "prior": a.reliability,
                    "reliability": e.reliability if e else None, "low": e.low if e else None,
                    "high": e.high if e else None, "gold": e.n_gold if e else 0,
                    "gold_correct": e.gold_correct if e else 0.0,
                    "updated": e.updated_at if e else None})
    return out



def queue_ranking(session: Session, top: int = 20) -> list[dict]:
    """The forest ranking the queue serves from: open propositions by forest VoI (Σ over live trees of
    priority × node VoI), with their answers so far and how many live trees hold them."""
    from .models import Tree

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise StoreError(f"must be a positive integer, got {top!r}", "top")
    trees = (select(func.count(func.distinct(Node.tree_id))).join(Tree, Tree.id == Node.tree_id)
             .where(Node.proposition_id == Proposition.id, Tree.status != "archived")
             .correlate(Proposition).scalar_subquery())
    best, _ = top_exact(session, (), top)  # by exact forest VoI (the queue rows hold upper bounds); no writes
    rows = {r[0]: r[1:] for r in session.execute(
        select(Proposition.id, Proposition.n_answers, Proposition.text, trees)
        .where(Proposition.id.in_([pid for pid, _ in best])))}
    return [{"rank": i + 1, "proposition_id": pid, "forest_voi": fv, "answers": rows[pid][0], "trees": rows[pid][2],
             "text": rows[pid][1]} for i, (pid, fv) in enumerate(best)]


def all_labels(session: Session, *, people_only: bool = False) -> list[dict]:
    """Every live label that is an annotator's answer (not imported evidence with its own reliability), in
    the shape ``argtree.store.webui.agreement`` takes; with ``people_only``, no system annotators (oracles)."""
    from .webui import _answer_text

    q = (select(Label, Annotator.name, Proposition.text).join(Annotator, Annotator.id == Label.annotator_id)
         .join(Proposition, Proposition.id == Label.proposition_id)
         .where(Label.retracted_at.is_(None), Label.reliability.is_(None)))
    if people_only:
        q = q.where(Annotator.role != "system")
    return [{"label_id": lab.id, "annotator": name, "proposition_id": lab.proposition_id, "text": text,
             "kind": lab.kind, "answer": _answer_text(lab),
             "value": 1.0 if lab.value is True else 0.0 if lab.value is False else lab.probability,
             "seconds": lab.seconds, "at": lab.created_at} for lab, name, text in session.execute(q.order_by(Label.id))]


def reestimate_if_due(session: Session) -> dict | None:
    """Re-estimate every reliability when ``reliability.every`` labels (of anyone: people or the loop's
    oracles) came in since the last estimate (the web app's rule, ``webui.reliability_if_due``, without a
    web session); None when not due.  Run it in a transaction of its own, after the labels committed."""
    from .models import Setting
    from .webui import _answers_since_estimate, _label_mark, _reliability_every

    every = _reliability_every(session)
    if every <= 0 or _answers_since_estimate(session) < every:
        return None
    n = _label_mark(session)
    last = session.get(Setting, "reliability.last_count")
    if last is None:
        session.add(Setting(key="reliability.last_count", value=n))
    else:
        last.value = n
    session.flush()
    return update_reliability(session)


__all__ += ["reestimate_if_due"]
