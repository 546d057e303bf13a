"""The learning curve of an ``argtree improve`` run: one row per round, as JSON, Markdown and a PNG.

Round 0 is the starting default; round r >= 1 is that round's candidate, evaluated on the run's
held-out questions (same questions, seed and budget every round).  Columns:

* ``direct_*`` / ``tree_*``: accuracy and Brier of the model's direct answer and of the tree's belief,
  each ``[lo, value, hi]`` (95% bootstrap interval); ECE of each;
* ``tree_minus_direct``: paired Brier difference tree - direct on the same questions;
* ``gate``: the paired tree-Brier difference candidate - default and whether the candidate was promoted;
* premise quality of the held-out trees: ``rejected_share`` (proposals the guards rejected, of all
  proposals), ``negation_share`` (accepted premises that are mechanical negations "X is not Y"),
  ``fact_overlap`` (mean over premises of the best content-word overlap with the question's gold
  facts); ``oracle_decided_share``: of the premises the round put to the oracle, the share it answered;
* ``seconds``: wall time of each step of the round.

matplotlib is imported only by ``plot_curve``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["curve_rows", "to_markdown", "plot_curve"]

STEP_ORDER = ("grow", "oracle", "data", "sft", "dpo", "eval", "gate")


def curve_rows(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (one per round with a finished evaluation) from ``argtree.improve.run_state``."""
    rows = []
    for rnd in state.get("rounds", []):
        h = rnd.get("heldout")
        if not h:
            continue
        q = h.get("quality", {})
        gate = rnd.get("gate") or {}
        rows.append({
            "round": rnd["round"], "version": rnd.get("version"), "parent": rnd.get("parent"), "n": h["n"],
            "direct_accuracy": h["direct"]["accuracy_ci"], "direct_brier": h["direct"]["brier_ci"],
            "tree_accuracy": h["tree"]["accuracy_ci"], "tree_brier": h["tree"]["brier_ci"],
            "direct_ece": h["direct"]["ece"], "tree_ece": h["tree"]["ece"],
            "direct_log_loss": h["direct"]["log_loss"], "tree_log_loss": h["tree"]["log_loss"],
            "tree_minus_direct": h["paired"]["brier_tree_minus_direct"],
            "gate_diff": gate.get("tree_brier_diff"), "promoted": gate.get("promote") if gate else None,
            "rejected_share": q.get("rejected_share"), "negation_share": q.get("negation_share"),
            "fact_overlap": q.get("fact_overlap"), "premises": q.get("accepted"),
            "oracle_decided_share": rnd.get("oracle_decided_share"),
            "data": {k: v for k, v in (rnd.get("data") or {}).items()
                     if not isinstance(v, dict) and k != "seconds"} or None,
            "seconds": rnd.get("seconds", {}),
        })
    return rows


def _ci(v) -> str:
    if not v:
        return "-"
    return f"{v[1]:.3f} [{v[0]:.3f}, {v[2]:.3f}]"


def _num(v, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def to_markdown(rows: Sequence[Mapping[str, Any]], run_id: int | None = None) -> str:
    """Two tables: held-out numbers per round, then premise quality, gate and wall time."""
    head = f"### Learning curve, improve run {run_id}\n\n" if run_id is not None else ""
    t1 = ["| round | version | n | direct acc | direct Brier | tree acc | tree Brier | tree - direct | "
          "ECE direct | ECE tree |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t1.append(f"| {r['round']} | {r['version']} | {r['n']} | {_ci(r['direct_accuracy'])} | "
                  f"{_ci(r['direct_brier'])} | {_ci(r['tree_accuracy'])} | {_ci(r['tree_brier'])} | "
                  f"{_ci(r['tree_minus_direct'])} | {_num(r['direct_ece'])} | {_num(r['tree_ece'])} |")
    t2 = ["| round | gate: tree Brier cand - default | promoted | rejected share | negation share | "
          "oracle decided | fact overlap | seconds (" + ", ".join(STEP_ORDER) + ") |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        secs = r.get("seconds") or {}
        wall = " / ".join(_num(secs.get(s), "{:.0f}") for s in STEP_ORDER)
        promoted = "-" if r["promoted"] is None else ("yes" if r["promoted"] else "no")
        t2.append(f"| {r['round']} | {_ci(r['gate_diff'])} | {promoted} | {_num(r['rejected_share'])} | "
                  f"{_num(r['negation_share'])} | {_num(r['oracle_decided_share'])} | {_num(r['fact_overlap'])} | "
                  f"{wall} |")
    return head + "\n".join(t1) + "\n\n" + "\n".join(t2) + "\n"


def plot_curve(rows: Sequence[Mapping[str, Any]], path: str, title: str = "argtree improve") -> str:
    """A PNG with rounds on the x axis: Brier and accuracy (direct, tree, with intervals), ECE, premise
    quality and wall time per step; promoted rounds are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["round"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))

    def band(ax, key, label, color):
        vals = [r[key] for r in rows]
        mid = [v[1] for v in vals]
        err = [[v[1] - v[0] for v in vals], [v[2] - v[1] for v in vals]]
        ax.errorbar(xs, mid, yerr=err, marker="o", capsize=3, label=label, color=color)

    ax = axes[0][0]
    band(ax, "direct_brier", "direct", "tab:blue")
    band(ax, "tree_brier", "tree", "tab:orange")
    ax.axhline(0.25, ls=":", color="grey", label="constant 0.5")
    ax.set_title("held-out Brier (lower is better)")
    ax.legend()
    ax = axes[0][1]
    band(ax, "direct_accuracy", "direct", "tab:blue")
    band(ax, "tree_accuracy", "tree", "tab:orange")
    ax.set_title("held-out accuracy")
    ax.legend()
    ax = axes[0][2]
    ax.plot(xs, [r["direct_ece"] for r in rows], marker="o", label="direct")
    ax.plot(xs, [r["tree_ece"] for r in rows], marker="o", label="tree")
    ax.set_title("ECE")
    ax.legend()
    ax = axes[1][0]
    for key, label in (("rejected_share", "rejected by guards"), ("negation_share", "mechanical negations"),
                       ("oracle_decided_share", "oracle decided"), ("fact_overlap", "overlap with gold facts")):
        ys = [r.get(key) for r in rows]
        if any(y is not None for y in ys):
            ax.plot([x for x, y in zip(xs, ys) if y is not None], [y for y in ys if y is not None], marker="o",
                    label=label)
    ax.set_ylim(0, 1)
    ax.set_title("premise quality")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    bottom = [0.0] * len(rows)
    for step in STEP_ORDER:
        ys = [float((r.get("seconds") or {}).get(step, 0.0) or 0.0) for r in rows]
        if any(ys):
            ax.bar(xs, ys, bottom=bottom, label=step)
            bottom = [b + y for b, y in zip(bottom, ys)]
    ax.set_title("wall time per step (s)")
    ax.legend(fontsize=8)
    ax = axes[1][2]
    diffs = [(r["round"], r["gate_diff"], r["promoted"]) for r in rows if r.get("gate_diff")]
    for x, d, promoted in diffs:
        ax.errorbar([x], [d[1]], yerr=[[d[1] - d[0]], [d[2] - d[1]]], marker="o", capsize=3,
                    color="tab:green" if promoted else "tab:red")
    ax.axhline(0.0, ls=":", color="grey")
    ax.set_title("gate: tree Brier candidate - default (green: promoted)")
    for a in axes.flat:
        a.set_xlabel("round")
        if xs:
            a.set_xticks(xs)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    import os

    os.replace(tmp, path)
    return path
