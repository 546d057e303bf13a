"""bench/load_bench.py at a tiny size: it runs, records wall and CPU ratios, and its report says both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_load_bench_records_wall_and_cpu_ratios(tmp_path):
    out = tmp_path / "load.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "load_bench.py"), "--sizes", "300", "--repeat", "2",
                    "--dir", str(tmp_path), "--out", str(out)], check=True, capture_output=True, cwd=ROOT)
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["nodes"] == 300 and result["repeat"] == 2
    for kind in ("baseline", "voi", "infer"):
        assert len(row["all_s"][kind]) == len(row["all_cpu_s"][kind]) == 2
        assert row["best_s"][kind] == min(row["all_s"][kind]) > 0
        assert row["best_cpu_s"][kind] == min(row["all_cpu_s"][kind]) > 0
    assert row["ratio_voi"] == row["best_s"]["voi"] / row["best_s"]["baseline"]
    assert row["ratio_voi_cpu"] == row["best_cpu_s"]["voi"] / row["best_cpu_s"]["baseline"]
    assert list(row["breakdown_s"]) == list(row["breakdown_cpu_s"]) == [
        "read", "decode (msgspec, typed structs)", "check columns + compile + upward pass",
        "VoI (two downward passes)", "rank + JSON out", "free"]
    assert len(result["load_average_before"]) == 3 and result["cpus"] >= 1

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from load_bench import markdown
    finally:
        sys.path.remove(str(ROOT / "bench"))
    text = markdown(result)
    assert "| 300 |" in text and f"x{row['ratio_voi_cpu']:.2f}" in text
    assert "wall time" in text and "CPU time" in text
    row["ratio_voi"], row["ratio_voi_cpu"] = 3.0, 2.0  # the verdict follows each ratio
    assert "wall time not met at 300 nodes; CPU time met at 300 nodes" in markdown(result)
