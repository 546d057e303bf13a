"""bench/queue_bench.py stays runnable (a tiny forest; the real run is in BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store  # noqa: E402,F401


@pytest.mark.slow
def test_queue_bench_runs_and_reports_ratios():
    r = subprocess.run([sys.executable, "bench/queue_bench.py", "--trees", "30", "--nodes", "20", "--ops", "15",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["nodes"] == 600 and out["ops"] == 15
    for key in ("baseline_ms", "next_question_ms", "submit_label_ms"):
        assert 0 < out[key]["p50"] <= out[key]["p95"]
    assert out["ratio_p95"]["next_question"] > 0 and out["ratio_p95"]["submit_label"] > 0
