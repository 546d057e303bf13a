"""Calibration of a model's P(true) on held-out labeled propositions.

Metrics (numpy only) take predicted probabilities ``p`` and outcomes ``y`` (0/1):

* Brier score: mean (p - y)^2 (0 is perfect; always answering 0.5 scores 0.25);
* log loss: mean -[y log p + (1 - y) log(1 - p)], with p clipped into [1e-6, 1 - 1e-6];
* expected calibration error (ECE): over ``bins`` equal-width bins of p, the
  count-weighted mean |share true - mean p| (0 for a calibrated model);
* accuracy of the answer p >= 0.5.

``score_facts`` asks a backend for P(yes) on each record's yes/no prompt (the
local backend reads it from the first answer token, renormalized over yes and
no: the same number ``argtree ask --credence logprob`` uses).  Plots are drawn
with matplotlib, imported only by ``reliability_diagram``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .datasets import DatasetError, detect_format

__all__ = ["Calibration", "brier", "log_loss", "ece", "reliability", "calibration", "fact_items", "score_facts",
           "reliability_diagram"]

CLIP = 1e-6
YES = {"yes", "true"}
NO = {"no", "false"}


def _arrays(p: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"need two equal-length 1-D sequences, got shapes {p.shape} and {y.shape}")
    if len(p) == 0:
        raise ValueError("no predictions to score")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("predictions must be probabilities in [0, 1]")
    if np.any((y != 0) & (y != 1)):
        raise ValueError("outcomes must be 0 or 1")
    return p, y


def brier(p, y) -> float:
    p, y = _arrays(p, y)
    return float(np.mean((p - y) ** 2))


def log_loss(p, y) -> float:
    p, y = _arrays(p, y)
    q = np.clip(p, CLIP, 1 - CLIP)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def reliability(p, y, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean p, share true, count) for each non-empty equal-width bin; p = 1 falls in the last bin."""
    p, y = _arrays(p, y)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append((float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())))
    return out


def ece(p, y, bins: int = 10) -> float:
    p, y = _arrays(p, y)
    return float(sum(n * abs(conf - acc) for conf, acc, n in reliability(p, y, bins)) / len(p))


@dataclass(frozen=True)
class Calibration:
    n: int
    brier: float
    log_loss: float
    ece: float
    accuracy: float
    mean_p: float
    share_true: float
    std_p: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def calibration(p, y, bins: int = 10) -> Calibration:
    p, y = _arrays(p, y)
    return Calibration(n=len(p), brier=brier(p, y), log_loss=log_loss(p, y), ece=ece(p, y, bins),
                       accuracy=float(np.mean((p >= 0.5) == (y == 1))), mean_p=float(p.mean()),
                       share_true=float(y.mean()), std_p=float(p.std()))


# -- data ------------------------------------------------------------------------

def fact_items(records: Sequence[Mapping[str, Any]], source: str = "data") -> tuple[list[str], list[int], str | None]:
    """(yes/no prompts, 0/1 truths, system message) from a facts dataset (prompt-completion or conversational)."""
    prompts, truths, systems = [], [], set()
    for i, rec in enumerate(records, 1):
        try:
            fmt = detect_format(rec)
        except DatasetError as err:
            raise DatasetError(f"{source} record {i}: {err}") from None
        if fmt == "prompt-completion":
            prompt, answer, system = rec["prompt"], rec["completion"], None
        elif fmt == "conversational":
            msgs = rec["messages"]
            users = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
            if not users or not isinstance(msgs[-1], dict) or msgs[-1].get("role") != "assistant":
                raise DatasetError(f"{source} record {i}: needs a user question and the assistant's answer")
            prompt, answer = users[-1].get("content"), msgs[-1].get("content")
            system = next((m.get("content") for m in msgs if m.get("role") == "system"), None)
        else:
            raise DatasetError(f"{source} is a {fmt} dataset; eval needs yes/no facts "
                               "(argtree export --kind facts --format prompt-completion or conversational)")
        word = str(answer).strip().strip(".").casefold()
        if word not in YES | NO or not isinstance(prompt, str):
            raise DatasetError(f"{source} record {i}: the answer is {str(answer)[:40]!r}, not yes/no: "
                               "eval needs a facts dataset (argtree export --kind facts)")
        prompts.append(prompt.strip())
        truths.append(1 if word in YES else 0)
        systems.add(system)
    if not prompts:
        raise DatasetError(f"{source} is empty: no labeled propositions to evaluate on")
    if len(systems) > 1:
        raise DatasetError(f"{source} mixes system messages; evaluate one prompt style at a time")
    return prompts, truths, systems.pop()


def score_facts(backend, prompts: Sequence[str], system: str | None = None, batch: int = 32,
                progress=None) -> list[float]:
    """P(yes) for each prompt, in batches (``progress(done, total)`` after each)."""
    out: list[float] = []
    for i in range(0, len(prompts), batch):
        out.extend(float(x) for x in backend.score_yes(list(prompts[i:i + batch]), system=system))
        if progress:
            progress(len(out), len(prompts))
    bad = [i for i, x in enumerate(out) if not (0.0 <= x <= 1.0) or math.isnan(x)]
    if bad:
        raise ValueError(f"the backend returned {len(bad)} probabilities outside [0, 1] (first at item {bad[0]})")
    return out


def reliability_diagram(curves: Mapping[str, tuple[Sequence[float], Sequence[int]]], path: str,
                        bins: int = 10, title: str = "Reliability on held-out facts") -> str:
    """One PNG: for each model, share true against mean P(true) per bin, with the diagonal and counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="calibrated")
    edges = np.linspace(0, 1, bins + 1)
    for name, (p, y) in curves.items():
        rows = reliability(p, y, bins)
        cal = calibration(p, y, bins)
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o",
                label=f"{name}: Brier {cal.brier:.3f}, ECE {cal.ece:.3f}")
        hx.hist(np.asarray(p, dtype=float), bins=edges, alpha=0.5, label=name)
    ax.set_ylabel("share actually true")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    hx.set_xlabel("predicted P(true)")
    hx.set_ylabel("count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
