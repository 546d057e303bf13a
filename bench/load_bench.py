"""`argtree voi FILE --json` end to end against reading the same file with json + numpy (issue 15).

    .venv/bin/python bench/load_bench.py [--sizes 100000,1000000] [--repeat 3] [--dir DIR] [--markdown]
    nice -n -10 .venv/bin/python bench/load_bench.py --markdown     # as BENCHMARKS.md was made (root only)

For each size, a random tree file (uniform random recursive tree, random CPTs, 1% of the nodes
hard-labeled, one sentence of text per node; about 135 bytes a node) is written once, then, in
the same run and alternating, best of ``--repeat`` wall times of

* baseline: ``python -c "import json, numpy; json.load(open(FILE))"`` (start Python, import
  numpy, parse the file: the floor for any command that reads it), and
* ``argtree voi FILE --json`` (parse with msgspec, validate the columns, compile, inference,
  all-node VoI, rank, write JSON), and ``argtree infer FILE --json`` for reference,

each a fresh process with stdout to /dev/null.  The goal is voi <= 2.5x the baseline.  An
in-process breakdown (best of ``--repeat``) says where the time goes.  Results, the command and
the machine's load average go to bench/results/load_bench.json; ``--markdown`` rewrites the
"load_bench" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "load_bench.json"
GOAL = 2.5


def write_tree(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    parent = np.r_[-1, (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    p1, p0 = rng.uniform(0.05, 0.95, n).round(6), rng.uniform(0.05, 0.95, n).round(6)
    labeled = rng.choice(np.arange(1, n), size=max(1, n // 100), replace=False)
    values = rng.random(len(labeled)) < 0.5
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"format": "argtree/1", "nodes": [\n')
        fh.write(json.dumps({"id": "n0", "text": "Is the root claim of this benchmark tree true?", "prior": 0.5}))
        for i in range(1, n):
            fh.write(",\n" + json.dumps({"id": f"n{i}", "parent": f"n{parent[i]}",
                                         "text": f"Premise number {i} says something that bears on its parent.",
                                         "p_if_true": float(p1[i]), "p_if_false": float(p0[i])}))
        fh.write('],\n"evidence": [')
        fh.write(",\n".join(json.dumps({"node": f"n{i}", "value": bool(v)}) for i, v in zip(labeled, values)))
        fh.write("]}\n")


def argtree_cmd() -> list[str]:
    script = Path(sys.executable).with_name("argtree")
    return [str(script)] if script.exists() else [sys.executable, "-m", "argtree.cli"]


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def breakdown(path: Path, repeat: int) -> dict[str, float]:
    """In-process stages of `argtree voi --json`, best of ``repeat`` each (the cyclic GC off, as the command has it)."""
    import gc

    gc.disable()
    from argtree import io
    from argtree.commands.core import json_object, rank_order
    from argtree.voi import voi_arrays

    best: dict[str, float] = {}

    def keep(name, t0):
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        return time.perf_counter()

    for _ in range(repeat):
        t = time.perf_counter()
        raw = io._read(path)
        t = keep("read", t)
        data, clean = io.parse(raw)
        t = keep("parse (msgspec)", t)
        cols = io.validate(data, len(raw), raw=raw)
        t = keep("validate columns + compile + upward pass", t)
        ct = cols.ct
        values, askable = voi_arrays(ct, cols.loglik, "shift", cols.prop)
        t = keep("VoI (two downward passes)", t)
        values, askable = ct.to_caller(values), ct.to_caller(askable)
        keep_idx = np.flatnonzero(askable)
        ids = cols.id_array()[keep_idx]
        kept = values[keep_idx]
        order = rank_order(ids, kept)
        out = b'{"metric":"shift","voi":' + json_object(ids[order].tolist(), kept[order].tolist()) + b"}"
        t = keep("rank + JSON out", t)
        del out, cols, data, raw
    gc.enable()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the tree files go (default: a temporary directory)")
    ap.add_argument("--markdown", action="store_true", help="rewrite BENCHMARKS.md's load_bench section")
    ap.add_argument("--from-results", action="store_true",
                    help="only rewrite the section from bench/results/load_bench.json (no new measurement)")
    args = ap.parse_args()
    if args.from_results:
        sys.path.insert(0, str(ROOT / "bench"))
        from _report import write_section

        write_section("load_bench", markdown(json.loads(RESULTS.read_text(encoding="utf-8"))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    nice = f"nice -n {os.nice(0)} " if os.nice(0) else ""
    command = f"{nice}.venv/bin/python bench/load_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in sizes:
            path = Path(tmp) / f"tree{n}.json"
            write_tree(path, n)
            base_cmd = [sys.executable, "-c", f"import json, numpy; json.load(open({str(path)!r}))"]
            voi_cmd = argtree_cmd() + ["voi", str(path), "--json"]
            infer_cmd = argtree_cmd() + ["infer", str(path), "--json"]
            wall(voi_cmd)  # warm the page cache and any .pyc once
            times = {"baseline": [], "voi": [], "infer": []}
            for _ in range(args.repeat):  # alternate, so a burst of load hits both sides alike
                times["baseline"].append(wall(base_cmd))
                times["voi"].append(wall(voi_cmd))
                times["infer"].append(wall(infer_cmd))
            best = {k: min(v) for k, v in times.items()}
            row = {"nodes": n, "file_bytes": path.stat().st_size, "best_s": best, "all_s": times,
                   "ratio_voi": best["voi"] / best["baseline"], "ratio_infer": best["infer"] / best["baseline"],
                   "breakdown_s": breakdown(path, args.repeat)}
            rows.append(row)
            print(f"{n:>9,} nodes ({row['file_bytes'] / 1e6:.0f} MB): baseline {best['baseline']:.3f} s, "
                  f"voi --json {best['voi']:.3f} s (x{row['ratio_voi']:.2f}), "
                  f"infer --json {best['infer']:.3f} s (x{row['ratio_infer']:.2f}); goal <= x{GOAL}", flush=True)
            for stage, s in row["breakdown_s"].items():
                print(f"    {stage:<42} {s:.3f} s")
    result = {"bench": "load_bench", "command": command, "goal_ratio": GOAL,
              "baseline_command": 'python -c "import json, numpy; json.load(open(FILE))"',
              "argtree_command": "argtree voi FILE --json", "repeat": args.repeat,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "cpus": os.cpu_count(), "niceness": os.nice(0), "python": platform.python_version(),
              "machine": platform.platform(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "results": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"load average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f}; "
          f"wrote {RESULTS.relative_to(ROOT)}")
    if args.markdown:
        sys.path.insert(0, str(ROOT / "bench"))
        from _report import write_section

        write_section("load_bench", markdown(result))


def markdown(result: dict) -> str:
    lines = ["## Loading a file: `argtree voi FILE --json` end to end (issue 15)", "",
             f"Run on {result['date']} ({result['cpus']} CPUs, load average {result['load_average_before'][0]:.2f} "
             f"before, {result['load_average_after'][0]:.2f} after): `{result['command']}`; best of "
             f"{result['repeat']}, each command a fresh process, baseline and argtree alternating in the same run. "
             "Raw numbers: `bench/results/load_bench.json`."
             + (f" Run at niceness {result['niceness']} (`nice -n {result['niceness']}`, both sides alike) because the "
                "machine's 2 cores were shared with other work." if result.get("niceness") else ""), "",
             "| nodes | file | baseline `python -c \"import json, numpy; json.load(open(FILE))\"` | "
             "`argtree voi FILE --json` | ratio (goal <= 2.5) | `argtree infer FILE --json` |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in result["results"]:
        b = r["best_s"]
        lines.append(f"| {r['nodes']:,} | {r['file_bytes'] / 1e6:.0f} MB | {b['baseline']:.3f} s | {b['voi']:.3f} s | "
                     f"x{r['ratio_voi']:.2f} | {b['infer']:.3f} s (x{r['ratio_infer']:.2f}) |")
    lines += ["", "Rerun: `nice -n -10 .venv/bin/python bench/load_bench.py --markdown` (as root; without `nice` "
              "on a quiet machine), or `--sizes 100000` for the small file alone."]
    met = [f"{r['nodes']:,}" for r in result["results"] if r["ratio_voi"] <= result["goal_ratio"]]
    missed = [f"{r['nodes']:,}" for r in result["results"] if r["ratio_voi"] > result["goal_ratio"]]
    lines += ["", f"Goal (voi <= {result['goal_ratio']}x the baseline): "
              + "; ".join(x for x in (f"met at {', '.join(met)} nodes" if met else "",
                                      f"not met at {', '.join(missed)} nodes" if missed else "") if x)
              + " in this run."]
    lines += ["", "The baseline is the floor for any command that reads the file: start Python, import numpy, "
              "parse.  `voi` adds to it: msgspec's parse (about 2.5 times faster than `json`'s), the column "
              "checks that make every bad file one named line (`argtree/io.py`), the breadth-first compile, "
              "the upward pass, the two downward passes of VoI, ranking ties by id, and writing every "
              "askable node's VoI as JSON.  At 1M nodes most of it is memory-bound work on a million "
              "Python objects (one pass per column, resolving a million parent ids), which is why the ratio "
              "grows with size and with the load of a shared machine.", "",
              "Where the time goes in `voi` (in process, best of each stage):", ""]
    stages = list(result["results"][0]["breakdown_s"])
    lines.append("| stage | " + " | ".join(f"{r['nodes']:,} nodes" for r in result["results"]) + " |")
    lines.append("|---|" + "---:|" * len(result["results"]))
    for st in stages:
        lines.append(f"| {st} | " + " | ".join(f"{r['breakdown_s'][st]:.3f} s" for r in result["results"]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
