"""Medians of the queue A/B runs (bench/queue_ab.sh): one markdown row per database and code.

    python bench/queue_ab_report.py bench/results/queue_ab
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(folder: str) -> None:
    runs: dict[tuple[str, str], list[dict]] = {}
    for f in sorted(Path(folder).glob("*_*_*.json")):
        db, code, _ = f.stem.split("_")
        runs.setdefault((db, code), []).append(json.loads(f.read_text()))
    med = lambda rs, *keys: statistics.median(_get(r, keys) for r in rs)  # noqa: E731
    print("| database | code | runs | load avg | baseline p50 / p95 | next_question p50 / p95 "
          "| submit_label p50 / p95 (median of runs) | submit_label p95, each run | CPU p95 submit |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for (db, code), rs in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1] != "before")):
        loads = [x for r in rs for x in r["load_average"]]
        each = ", ".join(f"{r['submit_label_ms']['p95']:.1f}" for r in rs)
        print(f"| {db} | {code} | {len(rs)} | {min(loads):.1f}–{max(loads):.1f} "
              f"| {med(rs, 'baseline_ms', 'p50'):.2f} / {med(rs, 'baseline_ms', 'p95'):.2f} ms "
              f"| {med(rs, 'next_question_ms', 'p50'):.1f} / {med(rs, 'next_question_ms', 'p95'):.1f} ms "
              f"| **{med(rs, 'submit_label_ms', 'p50'):.1f} / {med(rs, 'submit_label_ms', 'p95'):.1f} ms** "
              f"| {each} | {med(rs, 'cpu_ms', 'submit_label', 'p95'):.1f} ms |")


def _get(d: dict, keys: tuple) -> float:
    for k in keys:
        d = d[k]
    return float(d)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/queue_ab")
