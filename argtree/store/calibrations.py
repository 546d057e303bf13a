"""Calibration maps kept with the model version they calibrate (table ``calibrations``).

The newest row per (model, kind) is the map in use; older rows stay as the history of refits.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..calibration import CalibrationMap
from ..model_evidence import ModelCalibration
from .errors import StoreError
from .models import Calibration, Label, Node, utcnow

__all__ = ["save_calibration", "latest_calibration", "calibration_history", "credence_pairs"]

KINDS = ("premise", "direct")


def save_calibration(session: Session, model: str, kind: str, cmap: CalibrationMap,
                     meta: Mapping[str, Any] | None = None) -> int:
    if kind not in KINDS:
        raise StoreError(f"must be one of {KINDS}, got {kind!r}", "kind")
    if not model or len(model) > 500:
        raise StoreError("must be a model name of 1..500 characters", "model")
    d = cmap.to_dict()
    row = Calibration(model=model, kind=kind, method=cmap.method, params=d, n=cmap.n, meta=dict(meta or {}),
                      created_at=utcnow())
    session.add(row)
    session.flush()
    return row.id


def latest_calibration(session: Session, model: str) -> ModelCalibration | None:
    """The model's newest premise and direct maps, or None when none was ever fitted."""
    maps: dict[str, CalibrationMap] = {}
    for kind in KINDS:
        row = session.execute(select(Calibration.params).where(Calibration.model == model, Calibration.kind == kind)
                              .order_by(Calibration.id.desc()).limit(1)).scalar_one_or_none()
        if row is not None:
            maps[kind] = CalibrationMap.from_dict(row)
    if not maps:
        return None
    return ModelCalibration(maps.get("premise", CalibrationMap()), maps.get("direct"))


def calibration_history(session: Session, model: str | None = None) -> list[dict[str, Any]]:
    q = select(Calibration).order_by(Calibration.id)
    if model is not None:
        q = q.where(Calibration.model == model)
    return [{"id": c.id, "model": c.model, "kind": c.kind, "method": c.method, "n": c.n, "params": c.params,
             "meta": c.meta, "created_at": c.created_at.isoformat()} for c in session.execute(q).scalars()]


def credence_pairs(session: Session, model: str | None = None) -> tuple[list[float], list[bool]]:
    """(model credence, oracle answer) pairs the queue collected: every node with a recorded credence whose
    proposition has live true/false labels, the labels' majority as the answer (ties skipped).  With
    ``model``, only nodes whose tree was grown by that model version (``trees.meta.model_version``)."""
    from .models import Tree

    votes = (select(Label.proposition_id,
                    func.sum(case((Label.value.is_(True), 1), else_=0)).label("yes"),
                    func.count().label("n"))
             .where(Label.retracted_at.is_(None), Label.value.is_not(None))
             .group_by(Label.proposition_id)).subquery()
    rows = session.execute(select(Node.model_credence, votes.c.yes, votes.c.n, Tree.meta)
                           .join(votes, votes.c.proposition_id == Node.proposition_id)
                           .join(Tree, Tree.id == Node.tree_id)
                           .where(Node.model_credence.is_not(None), Node.parent_id.is_not(None))).all()
    cred, truth = [], []
    for c, yes, n, meta in rows:
        if model is not None and (meta or {}).get("model_version") != model:
            continue
        yes, n = int(yes or 0), int(n)
        if 2 * yes == n:
            continue
        cred.append(float(c))
        truth.append(2 * yes > n)
    return cred, truth
