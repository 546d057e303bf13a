"""The linear-time compile (no comparison sort) gives exactly the old layout and the same beliefs.

``old_from_arrays`` is the compile as it was before issue 15 (children lists from one stable
argsort of the parent array), frozen here as the reference: the new one must give the very same
arrays (so every pass sums children in the same order and results are bit-identical), and the
beliefs must equal brute-force enumeration.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node, TreeError
from argtree.inference import CompiledTree, Propagation, _counting_order, beliefs, compile_tree
from argtree.voi import voi_arrays

from reference import brute
from strategies import as_reference, trees


def old_from_arrays(parent, p1, p0, prior):
    """The pre-issue-15 compile, verbatim but for the dataclass: one argsort, BFS level by level."""
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    roots = np.flatnonzero(parent < 0)
    nonroot = np.flatnonzero(parent >= 0)
    kids = nonroot[np.argsort(parent[nonroot], kind="stable")]
    counts = np.bincount(parent[nonroot], minlength=n)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    frontier = roots
    chunks, levels = [], [0]
    while len(frontier):
        chunks.append(frontier)
        levels.append(levels[-1] + len(frontier))
        cnt = counts[frontier]
        total = int(cnt.sum())
        if total == 0:
            break
        starts = offsets[frontier]
        first = np.repeat(starts - np.concatenate(([0], np.cumsum(cnt)[:-1])), cnt)
        frontier = kids[first + np.arange(total)]
    order = np.concatenate(chunks)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    par = parent[order]
    bfs_parent = np.where(par >= 0, position[np.maximum(par, 0)], -1)
    return dict(order=order, position=position, parent=bfs_parent, levels=np.asarray(levels, dtype=np.int64),
                p1=np.asarray(p1, dtype=float)[order], p0=np.asarray(p0, dtype=float)[order])


def assert_same_layout(ct: CompiledTree, want: dict) -> None:
    for field, value in want.items():
        got = getattr(ct, field)
        assert got.dtype == value.dtype, field
        np.testing.assert_array_equal(got, value, err_msg=field)


def shuffled_tree(n: int, rng: np.random.Generator, shape: str):
    """A random tree whose nodes are listed in a random order (parents need not come first)."""
    if shape == "random":
        raw = np.r_[-1, (rng.random(n - 1) * np.arange(1, n)).astype(np.int64)]
    elif shape == "fan":
        raw = np.r_[-1, np.zeros(n - 1, dtype=np.int64)]
    elif shape == "chain":
        raw = np.arange(-1, n - 1)
    else:  # "bushy-deep": a few long spines with fans
        raw = np.r_[-1, np.maximum(np.arange(1, n) - 1 - (rng.random(n - 1) * 50).astype(np.int64), 0)]
    perm = rng.permutation(n)            # node i of `raw` is listed at perm[i]
    parent = np.full(n, -1, dtype=np.int64)
    parent[perm[1:]] = perm[raw[1:]]
    return parent, rng.uniform(0, 1, n), rng.uniform(0, 1, n)


@pytest.mark.parametrize("shape", ["random", "fan", "chain", "bushy-deep"])
@pytest.mark.parametrize("n", [1, 2, 3, 100, 5_000])
def test_layout_is_identical_to_the_argsort_compile(shape, n):
    rng = np.random.default_rng(n * 7 + len(shape))
    parent, p1, p0 = shuffled_tree(n, rng, shape)
    ct = CompiledTree.from_arrays(parent, p1, p0, 0.3)
    assert_same_layout(ct, old_from_arrays(parent, p1, p0, 0.3))
    assert ct.prior == 0.3 and ct.n == n


def test_layout_is_identical_past_one_radix_digit():
    """Over 65,536 nodes the counting sort takes a second 16-bit pass; still the exact same layout."""
    rng = np.random.default_rng(15)
    for shape in ("random", "bushy-deep"):
        parent, p1, p0 = shuffled_tree(200_003, rng, shape)
        ct = CompiledTree.from_arrays(parent, p1, p0, 0.5)
        assert_same_layout(ct, old_from_arrays(parent, p1, p0, 0.5))


@pytest.mark.parametrize("n", [1, 5, 65_536, 65_537, 300_000])
def test_counting_order_is_a_stable_argsort(n):
    rng = np.random.default_rng(n)
    key = rng.integers(0, n, size=min(n * 2, 400_000))
    np.testing.assert_array_equal(_counting_order(key, n), np.argsort(key, kind="stable"))


def test_layout_is_breadth_first_by_level():
    rng = np.random.default_rng(3)
    parent, p1, p0 = shuffled_tree(2_000, rng, "random")
    ct = CompiledTree.from_arrays(parent, p1, p0, 0.5)
    depth = np.zeros(ct.n, dtype=int)
    for pos in range(1, ct.n):
        assert ct.parent[pos] < pos
        depth[pos] = depth[ct.parent[pos]] + 1
    for d in range(len(ct.levels) - 1):
        assert np.all(depth[ct.levels[d]:ct.levels[d + 1]] == d)
    # parent positions refer to the same nodes as the caller's parent array
    np.testing.assert_array_equal(ct.order[ct.parent[1:]], parent[ct.order[1:]])


@settings(max_examples=150, deadline=None)
@given(trees())
def test_new_compile_matches_brute_force_and_the_old_layout(case):
    tree, evidence = case
    ct = compile_tree(tree)
    ids, parent, p1, p0, prior = tree.arrays()
    assert_same_layout(ct, old_from_arrays(parent, p1, p0, prior))
    ref = brute(*as_reference(tree, evidence))
    if ref is None:  # evidence of probability zero: refused, as before
        with pytest.raises(TreeError):
            beliefs(ct, evidence)
        return
    got = beliefs(ct, evidence)
    assert got.keys() == ref["beliefs"].keys()
    for nid, p in ref["beliefs"].items():
        assert got[nid] == pytest.approx(p, abs=1e-9), nid


def test_default_ids_are_the_indices_made_lazily():
    ct = CompiledTree.from_arrays([-1, 0, 0, 1], [0.5] * 4, [0.5] * 4, 0.5)
    assert len(ct.ids) == 4 and list(ct.ids) == ["0", "1", "2", "3"]
    assert ct.ids[3] == "3" and ct.ids[-1] == "3" and ct.ids[1:3] == ("1", "2")
    assert ct.ids == ("0", "1", "2", "3") and "2" in ct.ids and ct.ids.index("2") == 2
    with pytest.raises(IndexError):
        ct.ids[4]
    bel = beliefs(ct, [Evidence("3", True)])
    assert set(bel) == {"0", "1", "2", "3"} and bel["3"] == 1.0


def test_bad_parent_arrays_are_refused():
    with pytest.raises(TreeError, match="exactly one root"):
        CompiledTree.from_arrays([-1, -1], [0.5, 0.5], [0.5, 0.5], 0.5)
    with pytest.raises(TreeError, match="not reachable"):
        CompiledTree.from_arrays([-1, 2, 1], [0.5] * 3, [0.5] * 3, 0.5)   # 1 and 2 are each other's parent
    with pytest.raises(TreeError, match="out of range"):
        CompiledTree.from_arrays([-1, 0, 7], [0.5] * 3, [0.5] * 3, 0.5)


def test_results_are_bit_identical_to_the_old_layout_on_a_big_tree():
    """Beliefs and all-node VoI from the new compile equal those from the old layout exactly."""
    rng = np.random.default_rng(11)
    n = 100_000
    parent, p1, p0 = shuffled_tree(n, rng, "random")
    p1, p0 = 0.05 + 0.9 * p1, 0.05 + 0.9 * p0
    ct = CompiledTree.from_arrays(parent, p1, p0, 0.4)
    old = CompiledTree(ids=ct.ids, prior=0.4, **old_from_arrays(parent, p1, p0, 0.4))
    labeled = rng.choice(np.arange(1, n), size=1_000, replace=False)
    labeled = labeled[parent[labeled] >= 0]
    results = []
    for c in (ct, old):
        le = np.zeros((n, 2))
        pos = c.position[labeled]
        le[pos[::2], 0] = -np.inf
        le[pos[1::2], 1] = np.log(0.2)
        prop = Propagation(c, le)
        values, askable = voi_arrays(c, le, "info", prop)
        results.append((c.to_caller(prop.down()), c.to_caller(values), c.to_caller(askable), prop.log_evidence))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_tree_compile_keeps_the_trees_ids():
    tree = ArgumentTree([Node("q", "q", prior=0.5), Node("b", "b", "q", p_if_true=0.9, p_if_false=0.2),
                         Node("a", "a", "b", p_if_true=0.6, p_if_false=0.1)])
    ct = compile_tree(tree)
    assert isinstance(ct.ids, tuple) and set(ct.ids) == {"q", "a", "b"}
    assert ct.ids[ct.order[0]] == "q"


def test_voi_bench_runs_and_its_peers_agree_with_argtree(tmp_path):
    """bench/voi_bench.py at tiny sizes: every method best-of-N, the JSON record, pyAgrum and pgmpy = argtree."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("pyagrum")
    import importlib.util

    pgmpy = importlib.util.find_spec("pgmpy") is not None  # optional peer: the bench leaves it out when missing
    out = tmp_path / "voi.json"
    r = subprocess.run([sys.executable, "bench/voi_bench.py", "--sizes", "200,1000", "--repeat", "2",
                        "--pgmpy-sizes", "60", "--cli-nodes", "500", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text())
    assert rec["command"].endswith(f"--out {out}") and len(rec["load_average_before"]) == 3
    assert rec["blas_threads"] == os.environ.get("OPENBLAS_NUM_THREADS", "1")  # single-threaded unless set
    assert rec["warmup_calls"] == 1  # one untimed call of every method before its timed tries
    rows = {row["nodes"]: row for row in rec["sizes"]}
    assert set(rows) == ({60, 200, 1000} if pgmpy else {200, 1000})
    for row in rows.values():
        assert len(row["tries_total_s"]) == 2 and row["total_s"] == min(row["tries_total_s"])
        assert row["floor_s"] > 0 and row["total_over_floor"] == row["total_s"] / row["floor_s"]
        assert row["argsort_compile_same_layout"] is True and len(row["tries_argsort_compile_s"]) == 2
        for peer in ("pyagrum_fresh", "pyagrum_reuse"):
            assert len(row[peer]["tries_s"]) == 2 and row[peer]["max_abs_diff"] < 1e-9
        assert row["speedup_vs_pyagrum"] == row["pyagrum_best_s"] / row["total_s"]
        assert row["speedup_vs_pyagrum_cpu"] == row["pyagrum_best_cpu_s"] / row["total_cpu_s"] > 0
    if pgmpy:
        assert rows[60]["pgmpy"]["max_abs_diff"] < 1e-9 and "pgmpy" not in rows[200]
    else:
        assert all("pgmpy" not in row for row in rows.values())
    assert rec["cli"][0]["nodes"] == 500 and rec["cli"][0]["ratio"] > 0
