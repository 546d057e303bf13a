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

each a fresh process with stdout to /dev/null.  The goal is voi <= 2.5x the baseline.  Each run's
wall time and its CPU time (user + system, from the child's resource usage) are recorded: on a
shared machine the wall times depend on what else runs, so the ratio is given both ways (best wall
over best wall, best CPU over best CPU).  An in-process breakdown (best of ``--repeat``, wall and
CPU) says where the time goes.  Results, the command and the machine's load average go to
bench/results/load_bench.json; ``--markdown`` rewrites the "load_bench" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: the child's user + system time) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def breakdown(path: Path, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """In-process stages of `argtree voi --json` as the command runs them (the cyclic GC off, the
    typed path for these plain files): best of ``repeat`` each, wall and CPU (this process)."""
    import gc

    gc.disable()
    from argtree import io
    from argtree.commands.core import _json_object, ranked
    from argtree.voi import voi_arrays

    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}

    def keep(name, t0):
        t, c = time.perf_counter(), time.process_time()
        best[name] = min(best.get(name, float("inf")), t - t0[0])
        best_cpu[name] = min(best_cpu.get(name, float("inf")), c - t0[1])
        return time.perf_counter(), time.process_time()

    for _ in range(repeat):
        t = time.perf_counter(), time.process_time()
        raw = io._read(path)
        t = keep("read", t)
        doc = io._typed_decoder().decode(raw)
        t = keep("decode (msgspec, typed structs)", t)
        cols = io._typed_validate(doc, "frontier")
        assert cols is not None, "the bench's files are plain and valid: the typed path takes them"
        t = keep("check columns + compile + upward pass", t)
        ct = cols.ct
        values, askable = voi_arrays(ct, cols.loglik, "shift", cols.prop)
        t = keep("VoI (two downward passes)", t)
        values, askable = ct.to_caller(values), ct.to_caller(askable)
        keep_idx, kept, order, enc = ranked(ct.ids, cols.id_array(), values, askable, True)
        out = _json_object(ct.ids, kept[order].tolist(), keep_idx[order], enc)
        t = keep("rank + JSON out", t)
        del out, cols, doc, raw, ct
        keep("free", t)
    gc.enable()
    return best, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the tree files go (default: a temporary directory)")
    ap.add_argument("--markdown", action="store_true", help="rewrite BENCHMARKS.md's load_bench section")
    ap.add_argument("--out", default=str(RESULTS), help="where the results go (JSON)")
    ap.add_argument("--from-results", action="store_true",
                    help="only rewrite the section from bench/results/load_bench.json (no new measurement)")
    args = ap.parse_args()
    if args.from_results:
        sys.path.insert(0, str(ROOT / "bench"))
        from _report import write_section

        write_section("load_bench", markdown(json.loads(Path(args.out).read_text(encoding="utf-8"))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    nice = f"nice -n {os.nice(0)} " if os.nice(0) else ""
    command = f"{nice}.venv/bin/python bench/load_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    load_before = os.getloadavg()
    rows = []
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)  # a --dir that does not exist yet is made, not an error
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in sizes:
            path = Path(tmp) / f"tree{n}.json"
            write_tree(path, n)
            base_cmd = [sys.executable, "-c", f"import json, numpy; json.load(open({str(path)!r}))"]
            voi_cmd = argtree_cmd() + ["voi", str(path), "--json"]
            infer_cmd = argtree_cmd() + ["infer", str(path), "--json"]
            run(voi_cmd)  # warm the page cache and any .pyc once
            times = {"baseline": [], "voi": [], "infer": []}
            cpu = {"baseline": [], "voi": [], "infer": []}
            for _ in range(args.repeat):  # alternate, so a burst of load hits both sides alike
                for name, cmd in (("baseline", base_cmd), ("voi", voi_cmd), ("infer", infer_cmd)):
                    w, c = run(cmd)
                    times[name].append(w)
                    cpu[name].append(c)
            best = {k: min(v) for k, v in times.items()}
            best_cpu = {k: min(v) for k, v in cpu.items()}
            stages, stages_cpu = breakdown(path, args.repeat)
            row = {"nodes": n, "file_bytes": path.stat().st_size, "best_s": best, "all_s": times,
                   "ratio_voi": best["voi"] / best["baseline"], "ratio_infer": best["infer"] / best["baseline"],
                   "best_cpu_s": best_cpu, "all_cpu_s": cpu,
                   "ratio_voi_cpu": best_cpu["voi"] / best_cpu["baseline"],
                   "ratio_infer_cpu": best_cpu["infer"] / best_cpu["baseline"],
                   "breakdown_s": stages, "breakdown_cpu_s": stages_cpu}
            rows.append(row)
            print(f"{n:>9,} nodes ({row['file_bytes'] / 1e6:.0f} MB): baseline {best['baseline']:.3f} s, "
                  f"voi --json {best['voi']:.3f} s (x{row['ratio_voi']:.2f}), "
                  f"infer --json {best['infer']:.3f} s (x{row['ratio_infer']:.2f}); goal <= x{GOAL}", flush=True)
            print(f"    CPU: baseline {best_cpu['baseline']:.3f} s, voi {best_cpu['voi']:.3f} s "
                  f"(x{row['ratio_voi_cpu']:.2f}), infer {best_cpu['infer']:.3f} s (x{row['ratio_infer_cpu']:.2f})")
            for stage, s in stages.items():
                print(f"    {stage:<42} {s:.3f} s (CPU {stages_cpu[stage]:.3f} s)")
    result = {"bench": "load_bench", "command": command, "goal_ratio": GOAL,
              "baseline_command": 'python -c "import json, numpy; json.load(open(FILE))"',
              "argtree_command": "argtree voi FILE --json", "repeat": args.repeat,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "cpus": os.cpu_count(), "niceness": os.nice(0), "python": platform.python_version(),
              "machine": platform.platform(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "results": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"load average before {load_before[0]:.2f}, after {result['load_average_after'][0]:.2f}; wrote {out}")
    if args.markdown:
        sys.path.insert(0, str(ROOT / "bench"))
        from _report import write_section

        write_section("load_bench", markdown(result))


def markdown(result: dict) -> str:
    rows = result["results"]
    has_cpu = all("best_cpu_s" in r for r in rows)
    lines = ["## Loading a file: `argtree voi FILE --json` end to end (issue 15)", "",
             f"Run on {result['date']} ({result['cpus']} CPUs, load average {result['load_average_before'][0]:.2f} "
             f"before, {result['load_average_after'][0]:.2f} after): `{result['command']}`; best of "
             f"{result['repeat']}, each command a fresh process, baseline and argtree alternating in the same run. "
             "Raw numbers: `bench/results/load_bench.json`."
             + (f" Run at niceness {result['niceness']} (`nice -n {result['niceness']}`, both sides alike) because the "
                "machine's 2 cores were shared with other work." if result.get("niceness") else ""), ""]
    if has_cpu:
        lines += ["Wall time is what a user waits for, but on a shared machine it depends on what else runs "
                  "(a 6 s command is preempted more than a 2 s one); the CPU time of each process (user + "
                  "system, from its resource usage) does not, so the ratio is given both ways, each from the "
                  "best of the tries.", "",
                  "| nodes | file | baseline `python -c \"import json, numpy; json.load(open(FILE))\"` wall / CPU | "
                  "`argtree voi FILE --json` wall / CPU | ratio wall / CPU (goal <= 2.5) | "
                  "`argtree infer FILE --json` wall / CPU (ratios) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            b, c = r["best_s"], r["best_cpu_s"]
            lines.append(f"| {r['nodes']:,} | {r['file_bytes'] / 1e6:.0f} MB | {b['baseline']:.3f} / {c['baseline']:.3f} s | "
                         f"{b['voi']:.3f} / {c['voi']:.3f} s | x{r['ratio_voi']:.2f} / **x{r['ratio_voi_cpu']:.2f}** | "
                         f"{b['infer']:.3f} / {c['infer']:.3f} s (x{r['ratio_infer']:.2f} / x{r['ratio_infer_cpu']:.2f}) |")
    else:
        lines += ["| nodes | file | baseline `python -c \"import json, numpy; json.load(open(FILE))\"` | "
                  "`argtree voi FILE --json` | ratio (goal <= 2.5) | `argtree infer FILE --json` |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            b = r["best_s"]
            lines.append(f"| {r['nodes']:,} | {r['file_bytes'] / 1e6:.0f} MB | {b['baseline']:.3f} s | {b['voi']:.3f} s | "
                         f"x{r['ratio_voi']:.2f} | {b['infer']:.3f} s (x{r['ratio_infer']:.2f}) |")
    lines += ["", "Rerun: `nice -n -10 .venv/bin/python bench/load_bench.py --markdown` (as root; without `nice` "
              "on a quiet machine), or `--sizes 100000` for the small file alone."]

    def verdict(key: str) -> str:
        met = [f"{r['nodes']:,}" for r in rows if r[key] <= result["goal_ratio"]]
        missed = [f"{r['nodes']:,}" for r in rows if r[key] > result["goal_ratio"]]
        return "; ".join(x for x in (f"met at {', '.join(met)} nodes" if met else "",
                                     f"not met at {', '.join(missed)} nodes" if missed else "") if x)

    lines += ["", f"Goal (voi <= {result['goal_ratio']}x the baseline), in this run: wall time {verdict('ratio_voi')}"
              + (f"; CPU time {verdict('ratio_voi_cpu')}." if has_cpu else ".")]
    lines += ["", "The baseline is the floor for any command that reads the file: start Python, import numpy, "
              "parse.  `voi` adds to it: the checks that make every bad file one named line "
              "(`argtree/io.py`), the breadth-first compile, the upward pass, the two downward passes of VoI, "
              "ranking ties by id, and writing every askable node's VoI as JSON.  A plain file (only the "
              "format's keys, as these are) is decoded by msgspec straight into typed structs, which checks "
              "every key's type and every id's and text's length on the way and is about twice as fast as "
              "decoding into dicts; any other file, and every file with an error, goes through the dicts and "
              "the column checks as before (`typed_columns`, `tests/test_typed_path.py`).  What is left is "
              "mostly memory-bound work on a million Python objects (a pass per column, resolving a million "
              "parent ids through their hashes and confirming each match by comparing the strings) and the "
              "page faults of fresh memory, which is why the ratio grows with size and with the load of a "
              "shared machine.", "",
              "Where the time goes in `voi` (in process, best of each stage" + (", wall / CPU" if has_cpu else "")
              + "):", ""]
    stages = list(rows[0]["breakdown_s"])
    lines.append("| stage | " + " | ".join(f"{r['nodes']:,} nodes" for r in rows) + " |")
    lines.append("|---|" + "---:|" * len(rows))
    for st in stages:
        if has_cpu and all(st in r.get("breakdown_cpu_s", {}) for r in rows):
            cells = [f"{r['breakdown_s'][st]:.3f} / {r['breakdown_cpu_s'][st]:.3f} s" for r in rows]
        else:
            cells = [f"{r['breakdown_s'][st]:.3f} s" for r in rows]
        lines.append(f"| {st} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
