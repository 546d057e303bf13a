"""Model evidence: what makes a tree hold a belief of its own before anyone answers (DESIGN.md).

The model's credence c in a premise, passed through its calibration map
(``cal``), is a *virtual-evidence* observation on that node (Pearl): its
likelihood ratio is

    LR = odds(cal(c)) / odds(m),

where m is the node's marginal in the tree with no evidence at all, so alone it
moves the node to exactly cal(c).  m depends only on the node's ancestors'
numbers, which growing the tree below never changes; the ratio is fixed when
recorded and stored as an ordinary soft observation (value, reliability) with
``"source": "model"``, so evidence still commutes.  ``argtree.inference``
counts it by the frontier rule: on nodes not expanded, never on the root (the
root's credence is the model's *direct answer*, reported beside the tree).

Three numbers describe a root (``root_numbers``): the model's ``direct``
answer, the ``tree``'s belief (model evidence + labels) and ``labels_only``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .calibration import IDENTITY, CalibrationMap, shipped, shipped_file
from .inference import beliefs
from .tree import ArgumentTree, Evidence, TreeError

__all__ = ["ModelCalibration", "model_evidence", "evidence_for_nodes", "root_numbers", "direct_record",
           "recalibrate", "shipped_calibration"]

EPS = 0.01  # calibrated credences are clamped into [EPS, 1 - EPS]: model evidence is never hard


@dataclass(frozen=True)
class ModelCalibration:
    """A model version's maps: ``premise`` for credences in premises, ``direct`` for its answer to a
    question (falls back to ``premise`` when only that one is fitted)."""

    premise: CalibrationMap = IDENTITY
    direct: CalibrationMap | None = None

    @property
    def direct_map(self) -> CalibrationMap:
        return self.direct if self.direct is not None else self.premise

    def to_dict(self) -> dict[str, Any]:
        return {"premise": self.premise.to_dict(), **({"direct": self.direct.to_dict()} if self.direct else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "ModelCalibration":
        d = d or {}
        return cls(CalibrationMap.from_dict(d.get("premise")),
                   CalibrationMap.from_dict(d["direct"]) if d.get("direct") else None)


NONE = ModelCalibration()


def shipped_calibration(model_version: str) -> tuple[ModelCalibration, str]:
    """The maps the package ships for ``model_version`` (``argtree/calibrations/``), else none (identity),
    with where they came from: what is in use when no fit is stored."""
    found = shipped(model_version)
    if found is None:
        return NONE, "none (identity)"
    return ModelCalibration.from_dict(found), str(shipped_file(model_version))


def _odds(p: float) -> float:
    return p / (1.0 - p)


def model_evidence(node: str, credence: float, marginal: float, cal: CalibrationMap = IDENTITY) -> Evidence:
    """The virtual evidence that moves ``node`` from ``marginal`` (no evidence) to cal(credence)."""
    if isinstance(credence, bool) or not isinstance(credence, (int, float)) or not 0.0 <= credence <= 1.0:
        raise TreeError(f"model credence must be a probability in [0, 1], got {credence!r}", node, "credence")
    if not 0.0 < marginal < 1.0:
        raise TreeError(f"the node's marginal must be strictly between 0 and 1, got {marginal!r}", node, "marginal")
    q = min(max(float(cal(float(credence))), EPS), 1.0 - EPS)
    lr = _odds(q) / _odds(marginal)
    value = lr >= 1.0
    a = lr / (1.0 + lr) if value else 1.0 / (1.0 + lr)
    a = min(a, math.nextafter(1.0, 0.0))
    return Evidence(node, value, a, extra={"source": "model", "credence": float(credence), "calibrated": q,
                                           "marginal": float(marginal)})


def evidence_for_nodes(tree: ArgumentTree, credences: Mapping[str, float],
                       cal: CalibrationMap = IDENTITY) -> list[Evidence]:
    """Model evidence for each node in ``credences`` (the root is skipped: its credence is the direct answer)."""
    marginals = beliefs(tree, (), model="none") if credences else {}
    # A node the tree's own numbers make certain (marginal 0 or 1) cannot be moved by soft evidence.
    labels_free = {nid: marginals[nid] for nid in credences if nid != tree.root and 0.0 < marginals[nid] < 1.0}
    return [model_evidence(nid, float(credences[nid]), labels_free[nid], cal) for nid in labels_free]


def recalibrate(tree: ArgumentTree, evidence: Iterable[Evidence], cal: CalibrationMap) -> tuple[Evidence, ...]:
    """``evidence`` with each model-evidence entry made anew from its recorded credence and marginal under
    ``cal`` (for comparing maps on the same trees; stored evidence itself stays as it was recorded)."""
    out = []
    for e in evidence:
        if e.is_model and "credence" in e.extra and "marginal" in e.extra:
            e = model_evidence(e.node, float(e.extra["credence"]), float(e.extra["marginal"]), cal)
        out.append(e)
    return tuple(out)


def direct_record(p: float, cal: CalibrationMap = IDENTITY) -> dict[str, float]:
    """The root's own credence as the tree's meta keeps it: raw and calibrated."""
    return {"p": float(p), "calibrated": float(cal(float(p))), "calibration": cal.method}


def root_numbers(tree: ArgumentTree, evidence: Sequence[Evidence] = (), model: str = "frontier") -> dict[str, Any]:
    """``{"direct": p or None, "tree": p, "labels_only": p}`` for the root (see module doc)."""
    direct = tree.meta.get("direct")
    d = direct.get("calibrated", direct.get("p")) if isinstance(direct, Mapping) else None
    tree_p = beliefs(tree, evidence, model=model)[tree.root]
    labels = beliefs(tree, evidence, model="none")[tree.root]
    return {"direct": float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) else None,
            "tree": tree_p, "labels_only": labels}
