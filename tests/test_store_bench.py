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


@pytest.mark.slow
def test_queue_writes_counts_what_answers_write_by_table(tmp_path):
    db = tmp_path / "forest.db"
    r = subprocess.run([sys.executable, "bench/queue_bench.py", "--trees", "30", "--nodes", "20", "--ops", "5",
                        "--json", "--sqlite-path", str(db)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    before = db.stat().st_size
    r = subprocess.run([sys.executable, "bench/queue_writes.py", "--sqlite-path", str(db), "--answers", "6"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answers"] == 6 and out["wal_frames_per_answer"]["mean"] > 0
    by = out["frames_by_btree_per_answer"]
    assert by["labels"] > 0 and by["nodes"] > 0       # every answer stores a label and moves beliefs
    assert "ix_propositions_queue_rank_id" not in by   # the rank is no longer indexed (migration 0008)
    assert by["queue_entries"] > 0                      # the queue's rows, apart from the text (migration 0009)
    assert db.stat().st_size == before                # it worked on a copy
