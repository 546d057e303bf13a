"""All-node VoI on random trees: argtree vs pyAgrum and pgmpy, every method best-of-N in the same run.

    .venv/bin/python bench/voi_bench.py                                   # writes bench/results/voi_bench.json
    .venv/bin/python bench/voi_bench.py --sizes 1000,5000 --repeat 5 --out bench/results/voi_quick.json
    .venv/bin/python bench/voi_bench.py --cli-nodes 100000,1000000      # also the end-to-end command at 1M

argtree: one upward pass, beliefs, and two clamped downward passes (inference + VoI for every
node), timed from arrays (file parsing excluded); the one-off compile (breadth-first layout of a
tree shape) is timed separately and every speed-up counts both.

Compile baseline: the layout as argtree made it before (one stable argsort of the parent array,
ids made eagerly), timed best-of-N in the same run and checked to give the same layout.

Floor estimate: one level-free pass over the same arrays (the upward message arithmetic with one
``bincount`` scatter into the parents, then the downward multiply-add with one gather), i.e. what a
single compiled pass over n nodes costs in numpy without any per-level loop.  argtree's total
(compile + inference + VoI: four passes plus the layout) is reported as a multiple of it.

Peers, each best-of-N like argtree, on the very same tree and evidence:
  * pyAgrum, two ways: a fresh ``LazyPropagation`` per root value (root clamped true, then false:
    two inferences) and one ``LazyPropagation`` whose root evidence is changed between the two
    inferences (the junction tree is kept); every node's posterior is read.  The speed-up uses the
    faster of the two.  Up to ``--pyagrum-max`` nodes.
  * pgmpy: the junction tree of the network, hard evidence multiplied into its cliques, one
    ``BeliefPropagation.calibrate`` per root value, every node's marginal read off its clique
    belief.  pgmpy's calibration is quadratic in the number of cliques, so it runs up to
    ``--pgmpy-max`` nodes (default 300: ~7 s a try).
Each peer's posteriors are checked against argtree's (max |difference| is stored).

Also times ``argtree voi FILE --json`` end to end on files of ``--cli-nodes`` nodes, best-of-N, with
the baseline ``python -c "import json, numpy; json.load(open(FILE))"`` on the same file.

Everything goes to ``--out`` (JSON: the command, load averages before and after, versions, all
tries of every method, CPU times of this process beside wall times: on a busy machine the CPU
ratios are the fair ones) and is printed as a table.  Results are summarized in BENCHMARKS.md.

Every method is warmed up before its timed tries, as timeit-style harnesses do: untimed calls until
they add up to ``WARMUP_S`` (0.2 s), at least ``WARMUP`` (1).  A sub-millisecond method's first calls
at a new size pay one-off costs (cold caches, numpy's first use of a shape, Python's adaptive
bytecode, the allocator growing its heap) that its later calls do not, while a 1-second peer's do not
matter; one call was not enough for argtree (its 5k-node tries measured 0.9 ms when 5k was the only
size, and 0.6 ms after the smaller sizes had run).  Every peer gets the same rule, so a peer slower
than 0.2 s a call still gets its one warm-up call.

BLAS runs single-threaded in this process for every method (``OPENBLAS_NUM_THREADS=1`` unless set
otherwise, recorded as ``blas_threads``): OpenBLAS worker threads that pgmpy's calls wake keep the
cores busy afterwards, and argtree's 1M-node run right after pgmpy measured 2-5x slower (wall and
this process's CPU, which counts those threads).  No method here gains from BLAS threads: argtree
makes no large BLAS call, pgmpy's factors are 2x2 and pyAgrum does not use OpenBLAS.
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
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS (see the module doc)

import numpy as np  # noqa: E402

from argtree.inference import CompiledTree, Propagation  # noqa: E402
from argtree.voi import voi_arrays  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def random_tree(n: int, seed: int):
    """Uniform random recursive tree (parent uniform among earlier nodes), random CPTs, 1% labeled."""
    rng = np.random.default_rng(seed)
    parent = np.r_[-1, (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    p1, p0 = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    labeled = rng.choice(np.arange(1, n), size=max(1, n // 100), replace=False)
    values = rng.random(len(labeled)) < 0.5
    return parent, p1, p0, 0.5, labeled, values


WARMUP = 1      # untimed calls of every method before its timed tries, at least (see the module doc)
WARMUP_S = 0.2  # ... and until they add up to this many seconds


def warm_up(fn) -> int:
    """Untimed calls of ``fn`` until at least WARMUP of them and WARMUP_S seconds (the count made)."""
    calls, start = 0, time.perf_counter()
    while calls < WARMUP or time.perf_counter() - start < WARMUP_S:
        fn()
        calls += 1
    return calls


def best_of(fn, repeat: int, cpu: list | None = None):
    """(best seconds, every try's seconds, the last result) of ``fn()`` run ``repeat`` times, after
    ``warm_up(fn)``.

    ``cpu``, when given, receives each try's CPU time of this process (immune to other processes
    taking the cores: on a busy machine a long run is preempted more than a short one)."""
    tries, out = [], None
    warm_up(fn)
    for _ in range(repeat):
        c = time.process_time()
        t = time.perf_counter()
        out = fn()
        tries.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
    return min(tries), tries, out


def argtree_run(case):
    """(compile s, inference + VoI s, (compiled tree, propagation), CPU s of both)."""
    parent, p1, p0, prior, labeled, values = case
    c = time.process_time()
    t = time.perf_counter()
    ct = CompiledTree.from_arrays(parent, p1, p0, prior)
    t1 = time.perf_counter()
    le = np.zeros((ct.n, 2))
    pos = ct.position[labeled]
    le[pos[values], 0] = -np.inf
    le[pos[~values], 1] = -np.inf
    prop = Propagation(ct, le)
    prop.down()
    voi_arrays(ct, le, "shift", prop)
    t2 = time.perf_counter()
    return t1 - t, t2 - t1, (ct, prop), time.process_time() - c


def argtree_time(case, repeat: int) -> dict:
    """Best-of-``repeat`` of the compile, of inference + VoI, and of their sum (per try)."""
    warm_up(lambda: argtree_run(case))
    tries = [argtree_run(case) for _ in range(repeat)]
    ct, prop = tries[-1][2]
    clamped = (ct.to_caller(prop.down(True)), ct.to_caller(prop.down(False)))
    return {"compile_s": min(t[0] for t in tries), "infer_voi_s": min(t[1] for t in tries),
            "total_s": min(t[0] + t[1] for t in tries),
            "tries_total_s": [t[0] + t[1] for t in tries], "total_cpu_s": min(t[3] for t in tries),
            "clamped": clamped}


def argsort_compile(parent: np.ndarray) -> np.ndarray:
    """The layout as argtree computed it before issue 15 (one stable argsort of the parent array, then
    BFS by level): the baseline for the linear-time compile.  Returns the BFS order."""
    n = len(parent)
    nonroot = np.flatnonzero(parent >= 0)
    kids = nonroot[np.argsort(parent[nonroot], kind="stable")]
    counts = np.bincount(parent[nonroot], minlength=n)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    frontier, chunks = np.flatnonzero(parent < 0), []
    while len(frontier):
        chunks.append(frontier)
        cnt = counts[frontier]
        total = int(cnt.sum())
        if total == 0:
            break
        first = np.repeat(offsets[frontier] - np.concatenate(([0], np.cumsum(cnt)[:-1])), cnt)
        frontier = kids[first + np.arange(total)]
    order = np.concatenate(chunks)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    par = parent[order]
    np.where(par >= 0, position[np.maximum(par, 0)], -1)
    tuple(str(i) for i in range(n))  # the ids it made eagerly
    return order


def floor_pass(case, repeat: int) -> tuple[float, list[float], float]:
    """One level-free upward + downward pass over n nodes in numpy (see the module doc)."""
    parent, p1, p0, prior, labeled, values = case
    n = len(parent)
    ct = CompiledTree.from_arrays(parent, p1, p0, prior)
    par = np.maximum(ct.parent, 0)
    le = np.zeros((n, 2))
    P1, P0 = ct.p1, ct.p0

    def one_pass():
        lam = np.exp(le - le.max(axis=1)[:, None])
        m1 = P1 * lam[:, 1] + (1.0 - P1) * lam[:, 0]
        m0 = P0 * lam[:, 1] + (1.0 - P0) * lam[:, 0]
        s1 = np.bincount(par, weights=np.log(m1), minlength=n)
        s0 = np.bincount(par, weights=np.log(m0), minlength=n)
        t1, t0 = P1 * lam[:, 1] / m1, P0 * lam[:, 1] / m0
        bel = t0 + (t1 - t0) * (s1 - s0)[par]
        return bel

    cpu: list[float] = []
    best, tries, _ = best_of(one_pass, repeat, cpu)
    return best, tries, min(cpu)


def pyagrum_network(case):
    import pyagrum as gum

    parent, p1, p0, prior, labeled, values = case
    n = len(parent)
    bn = gum.BayesNet()
    ids = [bn.add(gum.LabelizedVariable(f"n{i}", "", 2)) for i in range(n)]
    for i in range(1, n):
        bn.addArc(ids[parent[i]], ids[i])
    bn.cpt(ids[0]).fillWith([1 - prior, prior])
    for i in range(1, n):
        bn.cpt(ids[i]).fillWith([1 - p0[i], p0[i], 1 - p1[i], p1[i]])
    evidence = {f"n{i}": int(v) for i, v in zip(labeled, values)}
    return bn, ids, evidence


def pyagrum_fresh(bn, ids, evidence):
    """A new LazyPropagation per root value."""
    import pyagrum as gum

    post = []
    for root_value in (1, 0):
        ie = gum.LazyPropagation(bn)
        ie.setEvidence({**evidence, "n0": root_value})
        ie.makeInference()
        post.append(np.array([ie.posterior(i)[1] for i in ids]))
    return post


def pyagrum_reuse(bn, ids, evidence):
    """One LazyPropagation; only the root's evidence changes between the two inferences."""
    import pyagrum as gum

    ie = gum.LazyPropagation(bn)
    ie.setEvidence({**evidence, "n0": 1})
    ie.makeInference()
    post = [np.array([ie.posterior(i)[1] for i in ids])]
    ie.chgEvidence("n0", 0)
    ie.makeInference()
    post.append(np.array([ie.posterior(i)[1] for i in ids]))
    return post


def pgmpy_network(case):
    import logging

    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    parent, p1, p0, prior, labeled, values = case
    n = len(parent)
    bn = DiscreteBayesianNetwork([(f"n{parent[i]}", f"n{i}") for i in range(1, n)])
    cpds = [TabularCPD("n0", 2, [[1 - prior], [prior]])]
    for i in range(1, n):
        cpds.append(TabularCPD(f"n{i}", 2, [[1 - p0[i], 1 - p1[i]], [p0[i], p1[i]]],
                               evidence=[f"n{parent[i]}"], evidence_card=[2]))
    bn.add_cpds(*cpds)
    evidence = {f"n{i}": int(v) for i, v in zip(labeled, values)}
    return bn, n, evidence


def pgmpy_calibrate(bn, n, evidence):
    """Junction tree, evidence multiplied into cliques, one calibration per root value."""
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.inference import BeliefPropagation

    post = []
    for root_value in (1, 0):
        jt = bn.to_junction_tree()
        home = {}
        for factor in jt.factors:
            for var in factor.scope():
                home.setdefault(var, factor)
        for var, val in {**evidence, "n0": root_value}.items():
            home[var].product(DiscreteFactor([var], [2], [1.0 - val, float(val)]), inplace=True)
        bp = BeliefPropagation(jt)
        bp.calibrate()
        p = np.full(n, np.nan)
        for clique, phi in bp.get_clique_beliefs().items():
            for var in clique:
                m = phi.marginalize([u for u in clique if u != var], inplace=False).values
                p[int(var[1:])] = m[1] / m.sum()
        post.append(p)
    return post


def write_file(n: int) -> str:
    parent, p1, p0, prior, labeled, values = random_tree(n, 7)
    nodes = [{"id": "n0", "text": "root claim", "prior": prior}]
    nodes += [{"id": f"n{i}", "parent": f"n{parent[i]}", "text": f"premise number {i}",
               "p_if_true": float(p1[i]), "p_if_false": float(p0[i])} for i in range(1, n)]
    evidence = [{"node": f"n{i}", "value": bool(v)} for i, v in zip(labeled, values)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"format": "argtree/1", "nodes": nodes, "evidence": evidence}, fh)
    return fh.name


def cli_time(n: int, repeat: int) -> dict:
    """``argtree voi FILE --json`` vs ``json.load`` of the same file, both in a fresh process, best-of-N."""
    path = write_file(n)
    argtree_bin = os.path.join(os.path.dirname(sys.executable), "argtree")
    cmd = [argtree_bin, "voi", path, "--json"]
    base = [sys.executable, "-c", f"import json, numpy; json.load(open({path!r}))"]
    run = lambda c: subprocess.run(c, check=True, stdout=subprocess.DEVNULL)  # noqa: E731
    try:
        b, b_tries, _ = best_of(lambda: run(base), repeat)
        c, c_tries, _ = best_of(lambda: run(cmd), repeat)
    finally:
        size = os.path.getsize(path)
        os.unlink(path)
    return {"nodes": n, "file_mb": round(size / 1e6, 1), "argtree_voi_json_s": c, "json_load_s": b,
            "ratio": c / b, "tries_argtree_s": c_tries, "tries_json_load_s": b_tries}


def versions() -> dict:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("pyagrum", "pgmpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - an optional peer that is missing is just not run
            out[name] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=3, help="tries per method; each reports its best")
    ap.add_argument("--pyagrum-max", type=int, default=5000)
    ap.add_argument("--pgmpy-sizes", default="100,300", help="sizes for pgmpy (comma list; '' for none)")
    ap.add_argument("--cli-nodes", default="100000", help="file sizes for the end-to-end command ('' for none)")
    ap.add_argument("--out", default=str(RESULTS / "voi_bench.json"))
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", module="pgmpy")
    record = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average_before": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "versions": versions(), "repeat": args.repeat,
              "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "warmup_calls": WARMUP, "warmup_s": WARMUP_S,
              "sizes": []}
    have = record["versions"]
    sizes = [int(x) for x in args.sizes.split(",") if x]
    pgmpy_sizes = [int(x) for x in args.pgmpy_sizes.split(",") if x] if have["pgmpy"] else []
    for n in sorted(set(pgmpy_sizes) - set(sizes)):
        sizes.append(n)
    print(f"load average {record['load_average_before']}; times are wall-clock, best of {args.repeat}")
    print(f"{'nodes':>9} {'argsort s':>10} {'compile s':>10} {'infer+VoI s':>12} {'total s':>9} {'floor s':>9} "
          f"{'x floor':>8} {'pyAgrum s':>10} {'speed-up':>10} {'pgmpy s':>9} {'speed-up':>10}")
    for n in sorted(sizes):
        case = random_tree(n, n)
        a = argtree_time(case, args.repeat)
        ref_true, ref_false = a.pop("clamped")
        row = {"nodes": n, **a}
        row["floor_s"], row["tries_floor_s"], row["floor_cpu_s"] = floor_pass(case, args.repeat)
        row["total_over_floor_cpu"] = a["total_cpu_s"] / row["floor_cpu_s"]
        best, tries, order = best_of(lambda: argsort_compile(case[0]), args.repeat)
        row["argsort_compile_s"], row["tries_argsort_compile_s"] = best, tries
        row["argsort_compile_same_layout"] = bool(np.array_equal(
            order, CompiledTree.from_arrays(case[0], case[1], case[2], case[3]).order))
        row["total_over_floor"] = a["total_s"] / row["floor_s"]
        if have["pyagrum"] and n <= args.pyagrum_max:
            net = pyagrum_network(case)
            peers = {}
            for name, fn in (("pyagrum_fresh", pyagrum_fresh), ("pyagrum_reuse", pyagrum_reuse)):
                cpu: list[float] = []
                best, tries, post = best_of(lambda: fn(*net), args.repeat, cpu)
                diff = max(float(np.abs(post[0] - ref_true).max()), float(np.abs(post[1] - ref_false).max()))
                peers[name] = {"best_s": best, "tries_s": tries, "best_cpu_s": min(cpu), "max_abs_diff": diff}
            row.update(peers)
            row["pyagrum_best_s"] = min(p["best_s"] for p in peers.values())
            row["speedup_vs_pyagrum"] = row["pyagrum_best_s"] / a["total_s"]
            row["pyagrum_best_cpu_s"] = min(p["best_cpu_s"] for p in peers.values())
            row["speedup_vs_pyagrum_cpu"] = row["pyagrum_best_cpu_s"] / a["total_cpu_s"]
        if n in pgmpy_sizes:
            net = pgmpy_network(case)
            cpu = []
            best, tries, post = best_of(lambda: pgmpy_calibrate(*net), args.repeat, cpu)
            diff = max(float(np.abs(post[0] - ref_true).max()), float(np.abs(post[1] - ref_false).max()))
            row["pgmpy"] = {"best_s": best, "tries_s": tries, "best_cpu_s": min(cpu), "max_abs_diff": diff}
            row["speedup_vs_pgmpy"] = best / a["total_s"]
            row["speedup_vs_pgmpy_cpu"] = min(cpu) / a["total_cpu_s"]
        record["sizes"].append(row)
        line = (f"{n:>9} {row['argsort_compile_s']:>10.4f} {a['compile_s']:>10.4f} {a['infer_voi_s']:>12.4f} "
                f"{a['total_s']:>9.4f} "
                f"{row['floor_s']:>9.4f} {row['total_over_floor']:>7.1f}x")
        line += (f" {row['pyagrum_best_s']:>10.3f} {row['speedup_vs_pyagrum']:>9.0f}x"
                 if "pyagrum_best_s" in row else f" {'':>10} {'':>10}")
        if "pgmpy" in row:
            line += f" {row['pgmpy']['best_s']:>9.2f} {row['speedup_vs_pgmpy']:>9.0f}x"
        cpu_line = f"{'':>9} CPU: total {a['total_cpu_s']:.4f} s, {row['total_over_floor_cpu']:.1f}x floor"
        if "pyagrum_best_cpu_s" in row:
            cpu_line += f", pyAgrum {row['pyagrum_best_cpu_s']:.3f} s ({row['speedup_vs_pyagrum_cpu']:.0f}x)"
        if "pgmpy" in row:
            cpu_line += f", pgmpy {row['pgmpy']['best_cpu_s']:.2f} s ({row['speedup_vs_pgmpy_cpu']:.0f}x)"
        print(line, flush=True)
        print(cpu_line, flush=True)
    record["cli"] = []
    for n in [int(x) for x in args.cli_nodes.split(",") if x]:
        c = cli_time(n, args.repeat)
        record["cli"].append(c)
        print(f"argtree voi --json on a {n:,}-node file ({c['file_mb']} MB), end to end: "
              f"{c['argtree_voi_json_s']:.2f} s; json.load baseline {c['json_load_s']:.2f} s; "
              f"ratio {c['ratio']:.2f}x", flush=True)
    record["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
        print(f"written: {args.out} (load average before {record['load_average_before']}, "
              f"after {record['load_average_after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
