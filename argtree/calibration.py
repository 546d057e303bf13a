"""Calibration maps: a model's credence -> a probability that means what it says (DESIGN.md).

A ``CalibrationMap`` is a monotone non-decreasing function on [0, 1], fitted
from pairs (model credence, oracle answer):

* ``identity``: unfitted; the credence is what it is.
* ``platt``: sigmoid(a · logit(c) + b) with a >= 0 (Platt scaling on the
  log-odds).  Two numbers: stable from a few dozen pairs, and when the
  credence carries no signal it shrinks to a ≈ 0, b = the base rate, which is
  exactly the "shrink a noisy model toward 0.5" the design asks for.
* ``isotonic``: a non-decreasing step-linear map (pool adjacent violators):
  no shape assumed, needs more pairs.

Fitting uses scikit-learn (``LogisticRegression``, ``IsotonicRegression``):
maintained, well tested, and the reference implementations of both methods;
it is imported only by ``fit``.  ``method="auto"`` picks the one with the lower
cross-validated log loss (5 folds, seeded), so a user never has to guess.
Applying a map needs numpy only, so the pure core can use it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["CalibrationMap", "IDENTITY", "METHODS", "fit", "CalibrationError", "SHIPPED_DIR", "shipped_file",
           "shipped"]

METHODS = ("auto", "platt", "isotonic")
EPS = 0.01          # outputs stay in [EPS, 1 - EPS]: model evidence is never a certainty
MIN_PAIRS = 10      # fewer pairs than this cannot fit anything honest
MIN_ISOTONIC = 40   # auto considers isotonic only from this many pairs


class CalibrationError(ValueError):
    """Pairs that cannot be fitted (too few, one class only, out of range); the message says which."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class CalibrationMap:
    method: str = "identity"
    a: float = 1.0                        # platt slope on logit(c) (>= 0)
    b: float = 0.0                        # platt intercept
    x: tuple[float, ...] = ()             # isotonic breakpoints (credence), increasing
    y: tuple[float, ...] = ()             # isotonic values there, non-decreasing
    n: int = 0                            # pairs it was fitted on
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.method not in ("identity", "platt", "isotonic"):
            raise CalibrationError(f"unknown calibration method {self.method!r}")
        if self.method == "platt" and not (math.isfinite(self.a) and math.isfinite(self.b) and self.a >= 0):
            raise CalibrationError(f"platt needs finite a >= 0 and b, got a={self.a!r}, b={self.b!r}")
        if self.method == "isotonic":
            x, y = np.asarray(self.x, float), np.asarray(self.y, float)
            if len(x) == 0 or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12) \
                    or not np.all(np.isfinite(x)) or not np.all((y >= 0) & (y <= 1)):
                raise CalibrationError("isotonic needs equal-length breakpoints, x increasing, y non-decreasing in [0, 1]")

    @property
    def fitted(self) -> bool:
        return self.method != "identity"

    def __call__(self, c):
        """The calibrated probability of credence ``c`` (a float or an array), in [EPS, 1 - EPS]."""
        arr = np.asarray(c, dtype=float)
        if self.method == "identity":
            out = arr
        elif self.method == "platt":
            out = 1.0 / (1.0 + np.exp(-(self.a * _logit(arr) + self.b)))
        else:
            out = np.interp(arr, self.x, self.y)
        out = np.clip(out, EPS, 1 - EPS)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "n": self.n}
        if self.method == "platt":
            d.update(a=self.a, b=self.b)
        if self.method == "isotonic":
            d.update(x=list(self.x), y=list(self.y))
        if self.meta:
            d["meta"] = dict(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "CalibrationMap":
        if not d:
            return IDENTITY
        try:
            return cls(method=str(d.get("method", "identity")), a=float(d.get("a", 1.0)), b=float(d.get("b", 0.0)),
                       x=tuple(float(v) for v in d.get("x", ())), y=tuple(float(v) for v in d.get("y", ())),
                       n=int(d.get("n", 0)), meta=dict(d.get("meta", {})))
        except (TypeError, ValueError) as err:
            raise CalibrationError(f"not a calibration map: {err}") from None


IDENTITY = CalibrationMap()


def _pairs(credences: Sequence[float], truths: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(credences, dtype=float)
    t = np.asarray(truths, dtype=float)
    if c.shape != t.shape or c.ndim != 1:
        raise CalibrationError(f"need as many answers as credences, got {c.shape} and {t.shape}")
    if len(c) < MIN_PAIRS:
        raise CalibrationError(f"{len(c)} (credence, answer) pairs; need at least {MIN_PAIRS} to fit a map")
    if not np.all(np.isfinite(c)) or np.any((c < 0) | (c > 1)):
        raise CalibrationError("credences must be probabilities in [0, 1]")
    if np.any((t != 0) & (t != 1)):
        raise CalibrationError("answers must be true or false")
    if t.min() == t.max():
        raise CalibrationError(f"every answer is {bool(t[0])}: a map needs both true and false answers")
    return c, t


def _fit_platt(c: np.ndarray, t: np.ndarray) -> CalibrationMap:
    from sklearn.linear_model import LogisticRegression

    # Mild L2 (C=1) on the slope: with little signal it shrinks toward the base rate, as it should.
    lr = LogisticRegression(C=1.0).fit(_logit(c)[:, None], t)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a < 0:  # anti-correlated credences: a monotone map can only say the base rate
        base = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
        a, b = 0.0, math.log(base / (1 - base))
    return CalibrationMap("platt", a=a, b=b, n=len(c))


def _fit_isotonic(c: np.ndarray, t: np.ndarray) -> CalibrationMap:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True).fit(c, t)
    return CalibrationMap("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)),
                          n=len(c))


def _cv_log_loss(fitter, c: np.ndarray, t: np.ndarray, seed: int, folds: int = 5) -> float:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(c))
    losses = []
    for k in range(folds):
        test = idx[k::folds]
        train = np.setdiff1d(idx, test)
        if t[train].min() == t[train].max():
            return math.inf
        m = fitter(c[train], t[train])
        p = np.asarray(m(c[test]))
        losses.append(-np.mean(t[test] * np.log(p) + (1 - t[test]) * np.log(1 - p)))
    return float(np.mean(losses))


def fit(credences: Sequence[float], truths: Sequence[bool], method: str = "auto", seed: int = 0) -> CalibrationMap:
    """A monotone map fitted on (credence, answer) pairs; ``method`` one of METHODS."""
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {METHODS}, got {method!r}")
    c, t = _pairs(credences, truths)
    fitters = {"platt": _fit_platt, "isotonic": _fit_isotonic}
    if method == "auto":
        options = ["platt"] + (["isotonic"] if len(c) >= MIN_ISOTONIC else [])
        scores = {m: _cv_log_loss(fitters[m], c, t, seed) for m in options}
        method = min(options, key=lambda m: (scores[m], m != "platt"))
        chosen = fitters[method](c, t)
        return CalibrationMap(chosen.method, chosen.a, chosen.b, chosen.x, chosen.y, chosen.n,
                              {"cv_log_loss": scores})
    return fitters[method](c, t)


SHIPPED_DIR = Path(__file__).resolve().parent / "calibrations"


def shipped_file(model_version: str) -> Path:
    """Where the package ships maps for ``model_version`` (the bundled model, the shipped adapter)."""
    return SHIPPED_DIR / (re.sub(r"[^A-Za-z0-9+_.-]", "_", model_version) + ".json")


def shipped(model_version: str) -> dict[str, Any] | None:
    """The shipped maps of ``model_version`` as a dict ({"premise": ..., "direct": ...}), or None."""
    path = shipped_file(model_version)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise CalibrationError(f"{path}: not a calibration file ({err})") from None
