"""Where one answer's time goes: submit_label on a kept forest, timed by function and by commit.

    python bench/queue_profile.py --sqlite-path /tmp/queue-ab-db/run.db --answers 200
    python bench/queue_profile.py --db postgres --pg-schema qab_now --answers 60

The forest is one ``bench/queue_bench.py`` built and kept (``--sqlite-path`` / ``--pg-schema``); this
adds answers to it (use a copy).  Each answer is asked for (``next_question``, untimed) and then
stored in its own transaction as the web app does.  Printed:

* per function of the answer's path (wrapped in this process only, at the names ``argtree.store.queue``
  calls): wall and CPU time per answer, and calls per answer;
* the commit's share: median and p95 of COMMIT alone, and the slowest 8% of answers split into work and
  commit, with how many trees held the proposition;
* the work's median by the number of trees holding the proposition (the cost grows with it).
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select  # noqa: E402

import argtree.store.coauthor as coauthor  # noqa: E402
import argtree.store.compute as compute  # noqa: E402
import argtree.store.queue as queue  # noqa: E402
from argtree.store import add_annotator, next_question, session_scope, submit_label  # noqa: E402
from argtree.store.db import open_session  # noqa: E402
from argtree.store.models import Node  # noqa: E402
from argtree.store.testing import fast_password_hashing  # noqa: E402
from queue_bench import kept_postgres_schema, pct  # noqa: E402

# (module, name): the answer's path as queue.submit_label reaches it
TIMED = [(queue, "recompute_trees"), (queue, "apply_forest_deltas"), (queue, "refresh_propositions"),
         (queue, "lock_proposition"), (coauthor, "lock_scope"), (compute, "load_states"),
         (compute, "compute_tree"), (compute, "_write_nodes"), (compute, "_pg_array")]


def _wrap(acc: dict, module, name: str) -> None:
    fn = getattr(module, name)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            row = acc[name]
            row[0] += time.perf_counter() - t
            row[1] += time.process_time() - c
            row[2] += 1

    setattr(module, name, timed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--sqlite-path", help="a SQLite forest kept by bench/queue_bench.py (a copy: answers are added)")
    ap.add_argument("--pg-schema", help="PostgreSQL: the schema bench/queue_bench.py built and kept")
    ap.add_argument("--answers", type=int, default=100)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args(argv)
    if args.db == "sqlite":
        if not args.sqlite_path or not Path(args.sqlite_path).exists():
            ap.error("--sqlite-path: give a forest that bench/queue_bench.py built (a copy of it)")
        url = f"sqlite:///{args.sqlite_path}"
    else:
        if not args.pg_schema:
            ap.error("--pg-schema: give the schema bench/queue_bench.py built and kept")
        url, built = kept_postgres_schema(args.pg_schema)
        if not built:
            ap.error(f"schema {args.pg_schema!r} holds no forest: build it with bench/queue_bench.py first")
    acc: dict = defaultdict(lambda: [0.0, 0.0, 0])
    for module, name in TIMED:
        _wrap(acc, module, name)
    fast_password_hashing()
    with session_scope(url) as s:
        who = add_annotator(s, f"profile-{random.random():.9f}", "password123").id
    rng = random.Random(args.seed)
    rows, total = [], [0.0, 0.0]
    for _ in range(args.answers):
        with session_scope(url) as s:
            q = next_question(s, who)
            if q is None:
                break
            trees = s.scalar(select(func.count(func.distinct(Node.tree_id)))
                             .where(Node.proposition_id == q.proposition_id))
        t, c = time.perf_counter(), time.process_time()
        s = open_session(url)
        try:
            submit_label(s, who, q.proposition_id, value=rng.random() < 0.5,
                         request_id=f"profile-{random.random():.12f}")
            t2 = time.perf_counter()
            s.commit()
        finally:
            s.close()
        t3 = time.perf_counter()
        total[0] += t3 - t
        total[1] += time.process_time() - c
        rows.append((t3 - t, t2 - t, t3 - t2, trees))
    n = len(rows)
    if not n:
        print("no open question left in this forest")
        return 1
    note = " (with SQLite's checkpoint thread)" if args.db == "sqlite" else " (this process; not the server's)"
    print(f"{n} answers on {args.db}: wall {total[0] / n * 1e3:.1f} ms, CPU {total[1] / n * 1e3:.1f} ms per answer{note}")
    print(f"{'function':24s} {'wall ms':>8s} {'CPU ms':>8s} {'calls':>6s}   (per answer; nested: load_states etc. "
          "are inside recompute_trees)")
    for name, (w, c, k) in sorted(acc.items(), key=lambda x: -x[1][0]):
        print(f"{name:24s} {w / n * 1e3:8.2f} {c / n * 1e3:8.2f} {k / n:6.1f}")
    rows.sort()
    commits = [r[2] for r in rows]
    ms = lambda xs, q: pct(xs, q) * 1e3  # noqa: E731
    print(f"answer p50 {ms([r[0] for r in rows], 0.5):.1f} ms, p95 {ms([r[0] for r in rows], 0.95):.1f} ms; "
          f"COMMIT alone p50 {ms(commits, 0.5):.1f} ms, p95 {ms(commits, 0.95):.1f} ms")
    print("slowest 8%: total / work / commit ms, trees holding the proposition")
    for total_s, work, commit, trees in rows[-max(1, n * 8 // 100):]:
        print(f"  {total_s * 1e3:6.1f} {work * 1e3:6.1f} {commit * 1e3:6.1f}   {trees}")
    by_trees: dict[int, list[float]] = defaultdict(list)
    for _, work, _, trees in rows:
        by_trees[trees].append(work * 1e3)
    print("work (without COMMIT) by trees holding the proposition: " + ", ".join(
        f"{k}: {statistics.median(v):.1f} ms (n={len(v)})" for k, v in sorted(by_trees.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
