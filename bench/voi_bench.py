"""All-node VoI on random trees: argtree vs pyAgrum, measured in the same run.

    .venv/bin/python bench/voi_bench.py [--sizes 1000,10000,100000,1000000] [--repeat 3]

argtree: one upward pass, beliefs, and two clamped downward passes (inference +
VoI for every node), timed from arrays (file parsing excluded); the one-off
compile (breadth-first layout of a tree shape) is timed separately and the
speed-up against pyAgrum counts both.  Baseline: pyAgrum's
LazyPropagation with the root clamped true and false (two inferences) and every
node's posterior read, the best way to get the same numbers from a general BN
engine; run up to 5k nodes.  Also times `argtree voi FILE --json` end to end on
a 100k-node file.  Prints times and ratios; results go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from argtree.inference import CompiledTree, Propagation
from argtree.voi import voi_arrays


def random_tree(n: int, seed: int):
    """Uniform random recursive tree (parent uniform among earlier nodes), random CPTs, 1% labeled."""
    rng = np.random.default_rng(seed)
    parent = np.r_[-1, (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    p1, p0 = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    labeled = rng.choice(np.arange(1, n), size=max(1, n // 100), replace=False)
    values = rng.random(len(labeled)) < 0.5
    return parent, p1, p0, 0.5, labeled, values


def argtree_time(case, repeat: int) -> tuple[float, float]:
    """(compile: BFS layout, once per tree shape; inference + all-node VoI, per evidence change), best of repeat."""
    parent, p1, p0, prior, labeled, values = case
    best_c = best_i = float("inf")
    for _ in range(repeat):
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
        best_c, best_i = min(best_c, t1 - t), min(best_i, t2 - t1)
    return best_c, best_i


def pyagrum_time(case) -> float:
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
    t = time.perf_counter()
    post = []
    for root_value in (1, 0):
        ie = gum.LazyPropagation(bn)
        ie.setEvidence({**evidence, "n0": root_value})
        ie.makeInference()
        post.append([ie.posterior(ids[i])[1] for i in range(n)])
    return time.perf_counter() - t


def cli_time(n: int) -> float:
    parent, p1, p0, prior, labeled, values = random_tree(n, 7)
    nodes = [{"id": "n0", "text": "root claim", "prior": prior}]
    nodes += [{"id": f"n{i}", "parent": f"n{parent[i]}", "text": f"premise number {i}",
               "p_if_true": float(p1[i]), "p_if_false": float(p0[i])} for i in range(1, n)]
    evidence = [{"node": f"n{i}", "value": bool(v)} for i, v in zip(labeled, values)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump({"format": "argtree/1", "nodes": nodes, "evidence": evidence}, fh)
    argtree_bin = os.path.join(os.path.dirname(sys.executable), "argtree")
    t = time.perf_counter()
    subprocess.run([argtree_bin, "voi", fh.name, "--json"], check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    os.unlink(fh.name)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,5000,10000,100000,1000000")
    ap.add_argument("--pyagrum-max", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cli-nodes", type=int, default=100_000)
    args = ap.parse_args()
    print(f"{'nodes':>9} {'compile s':>10} {'infer+VoI s':>12} {'total ns/node':>14} {'pyAgrum s':>10} {'speed-up':>9}")
    for n in map(int, args.sizes.split(",")):
        case = random_tree(n, n)
        c, i = argtree_time(case, args.repeat)
        t = c + i
        line = f"{n:>9} {c:>10.4f} {i:>12.4f} {t / n * 1e9:>14.0f}"
        if n <= args.pyagrum_max:
            g = pyagrum_time(case)
            line += f" {g:>10.3f} {g / t:>8.0f}x"
        print(line, flush=True)
    if args.cli_nodes:
        print(f"argtree voi --json on a {args.cli_nodes}-node file, end to end: {cli_time(args.cli_nodes):.2f} s")


if __name__ == "__main__":
    main()
