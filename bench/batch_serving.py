"""Batch-aware serving (issue 13): what leasing the greedy batch's next pick costs next_question, and how
often it differs from the ranking's top, with every annotator holding a question while another asks.

    python bench/batch_serving.py                       # 300 trees x 100 nodes, 4 annotators, SQLite
    python bench/batch_serving.py --trees 100 --ops 60  # a quick look

The same forest twice (a copy per mode): "batch" is the queue as shipped; "ranking" is the same queue with
the batch step switched off (``argtree.store.batch.batch_order`` returning nothing: the top of one
ranking, as before issue 13).  Each op: one annotator answers the question they hold and asks for the
next while the others hold theirs (so the batch always has earlier picks).  Timed: next_question, a
whole transaction as the web app runs it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argtree.store import add_annotator, next_question, save_tree, session_scope, submit_label  # noqa: E402
from argtree.store import batch as batch_module  # noqa: E402
from argtree.store.testing import dispose, fast_password_hashing, random_forest, sqlite_db  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def run(url: str, annotators: list[int], ops: int, seed: int) -> dict:
    rng = random.Random(seed)
    held: dict[int, int] = {}
    times = []
    for k in range(ops):
        who = annotators[k % len(annotators)]
        if who in held:
            with session_scope(url) as s:
                submit_label(s, who, held.pop(who), rng.random() < 0.5, request_id=f"b{k}")
        t = time.perf_counter()
        with session_scope(url) as s:
            q = next_question(s, who)
        times.append(time.perf_counter() - t)
        if q is None:
            break
        held[who] = q.proposition_id
    return {"ops": len(times), "next_question_ms": {"p50": round(pct(times, 0.5) * 1000, 2),
                                                    "p95": round(pct(times, 0.95) * 1000, 2)}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--ops", type=int, default=200)
    ap.add_argument("--annotators", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fast_password_hashing()
    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    url = sqlite_db(tmp, "forest.db")
    t0 = time.perf_counter()
    with session_scope(url) as s:
        for i, tree in enumerate(random_forest(args.trees, args.nodes, args.trees * args.nodes // 2, args.seed)):
            save_tree(s, tree, priority=1.0 + (i % 5) * 0.25)
        people = [add_annotator(s, f"b{i}", "password123").id for i in range(args.annotators)]
    dispose(url)
    build_s = time.perf_counter() - t0
    out = {"trees": args.trees, "nodes_per_tree": args.nodes, "annotators": args.annotators, "build_s": round(build_s)}
    original = batch_module.batch_order
    for mode in ("batch", "ranking"):
        path = tmp / f"{mode}.db"
        shutil.copyfile(tmp / "forest.db", path)
        murl = f"sqlite:///{path}"
        batch_module.batch_order = original if mode == "batch" else (lambda *a, **k: [])
        try:
            out[mode] = run(murl, people, args.ops, args.seed)
        finally:
            batch_module.batch_order = original
            dispose(murl)
    out["ratio_p50"] = round(out["batch"]["next_question_ms"]["p50"] / out["ranking"]["next_question_ms"]["p50"], 2)
    out["ratio_p95"] = round(out["batch"]["next_question_ms"]["p95"] / out["ranking"]["next_question_ms"]["p95"], 2)
    print(json.dumps(out, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
