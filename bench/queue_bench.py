"""Queue latency on a big forest: next_question and submit_label against a plain indexed select.

    python bench/queue_bench.py                      # 10k trees x 100 nodes (~1M nodes) in SQLite
    python bench/queue_bench.py --db postgres        # the same in PostgreSQL (ARGTREE_TEST_POSTGRES_URL)
    python bench/queue_bench.py --trees 200 --ops 50 # a quick look
    python bench/queue_bench.py --db postgres --pg-schema qbench   # keep the built forest in that schema, reuse it
    python bench/queue_bench.py ... --out bench/results/queue_sqlite.json   # also write the result (command, load)

Each timed operation is a whole transaction as the web app runs it (open a session,
call, commit).  The baseline is the cheapest possible queue read in the same run:
one indexed ``SELECT proposition_id FROM queue_entries ORDER BY queue_bucket DESC, queue_rank DESC, proposition_id DESC
LIMIT 1`` in its own transaction.  Targets (issue 3): p95 of next_question <= 20 ms and of
submit_label (with the recomputation of every tree holding the proposition) <= 50 ms;
issue 15: submit_label p95 <= 25 ms at 1M nodes.  On PostgreSQL the queue's tables are
VACUUM (ANALYZE)d before measuring (``--no-vacuum`` skips it; the JSON says whether the
server runs autovacuum, which would have done it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text  # noqa: E402

from argtree.store import Node, add_annotator, next_question, save_tree, session_scope, submit_label  # noqa: E402
from argtree.store.testing import (dispose, fast_password_hashing, postgres_schema, random_forest,  # noqa: E402
                                   sqlite_db)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def build(url: str, trees: int, nodes: int, props: int, seed: int) -> float:
    t0 = time.perf_counter()
    batch = 50
    forest = random_forest(trees, nodes, props, seed)
    done = 0
    while done < trees:
        with session_scope(url) as s:
            for tree in (next(forest) for _ in range(min(batch, trees - done))):
                save_tree(s, tree, priority=1.0 + (done % 5) * 0.25)
                done += 1
        if done % 1000 == 0 or done == trees:
            print(f"  {done:,} trees stored ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        if done in (batch * 4, 1000) and url.startswith("postgresql"):
            # Fresh statistics early: on a server without autovacuum (the test server) the planner kept the
            # empty tables' statistics and the build took 266 s per 1,000 trees instead of ~35 s.
            _each_table(url, "ANALYZE", ("propositions", "queue_entries", "nodes", "trees"))
    return time.perf_counter() - t0


def kept_postgres_schema(schema: str) -> tuple[str, bool]:
    """(URL of ``schema`` on the test server, migrated; whether it already holds trees).  Never dropped."""
    import re

    from sqlalchemy import create_engine

    from argtree.store.db import upgrade
    from argtree.store.testing import postgres_base_url, postgres_unreachable

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise SystemExit(f"--pg-schema: {schema!r} is not a plain lower-case schema name")
    reason = postgres_unreachable()
    if reason:
        raise SystemExit(f"skipped: {reason}")
    base = postgres_base_url()
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    admin.dispose()
    from urllib.parse import quote

    url = f"{base}{'&' if '?' in base else '?'}options={quote(f'-csearch_path={schema}')}"
    upgrade(url)
    with session_scope(url) as s:
        built = bool(s.scalar(select(func.count()).select_from(Node)))
    return url, built


def vacuum_postgres(url: str) -> dict:
    """VACUUM (ANALYZE) the queue's tables in the schema ``url`` points at, and say whether the server runs
    autovacuum.  Building the forest updates every proposition's row once per tree that holds it (millions of
    dead row versions); a server with autovacuum on clears them within minutes of the build, one with it off
    (this test server) never does, and every later statement wades through them."""
    t0 = time.perf_counter()
    autovacuum = _each_table(url, "VACUUM (ANALYZE)", ("propositions", "queue_entries", "nodes", "trees", "labels",
                                                        "leases", "root_beliefs", "annotators"))
    return {"vacuum_analyze_s": round(time.perf_counter() - t0, 1), "server_autovacuum": autovacuum}


def _each_table(url: str, command: str, tables: tuple[str, ...]) -> str:
    """Run ``command`` (VACUUM, ANALYZE: not inside a transaction) on each table of the schema ``url`` points at;
    returns the server's autovacuum setting."""
    from sqlalchemy import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        autovacuum = conn.execute(text("SHOW autovacuum")).scalar()
        for table in tables:
            conn.execute(text(f"{command} {table}"))
    engine.dispose()
    return autovacuum


def sqlite_synchronous(url: str) -> str | None:
    """The synchronous level argtree's SQLite connections run with (None on PostgreSQL)."""
    if not url.startswith("sqlite"):
        return None
    with session_scope(url) as s:
        level = s.execute(text("PRAGMA synchronous")).scalar()
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))


def measure(url: str, ops: int, annotators: int, seed: int) -> dict:
    rng = random.Random(seed)
    fast_password_hashing()
    with session_scope(url) as s:
        people = [add_annotator(s, f"bench{seed}-{i}", "password123").id for i in range(annotators)]
        n_nodes = s.scalar(select(func.count()).select_from(Node))
    base, ask, answer, ask_cpu, answer_cpu = [], [], [], [], []
    load_before = os.getloadavg()[0]
    # The cheapest read of the queue's top on this schema (the bucket index, then the rank within it).
    plain = text("SELECT proposition_id FROM queue_entries WHERE queue_bucket >= -6000 "  # compute.ranked_open()
                 "ORDER BY queue_bucket DESC, queue_rank DESC, proposition_id DESC LIMIT 1")
    for k in range(ops):
        t = time.perf_counter()
        with session_scope(url) as s:
            s.execute(plain).scalar()
        base.append(time.perf_counter() - t)
        who = people[k % annotators]
        t, c = time.perf_counter(), time.process_time()
        with session_scope(url) as s:
            q = next_question(s, who)
        ask.append(time.perf_counter() - t)
        ask_cpu.append(time.process_time() - c)
        if q is None:
            break
        t, c = time.perf_counter(), time.process_time()
        with session_scope(url) as s:
            kind = rng.random()
            kw = {"value": kind < 0.5} if kind < 0.9 else {"probability": round(rng.random(), 2)}
            submit_label(s, who, q.proposition_id, request_id=f"bench-{seed}-{k}", **kw)
        answer.append(time.perf_counter() - t)
        answer_cpu.append(time.process_time() - c)
    ms = lambda xs, q: round(pct(xs, q) * 1000, 2)  # noqa: E731
    out = {"nodes": n_nodes, "ops": len(answer),
           "baseline_ms": {"p50": ms(base, 0.5), "p95": ms(base, 0.95)},
           "next_question_ms": {"p50": ms(ask, 0.5), "p95": ms(ask, 0.95)},
           "submit_label_ms": {"p50": ms(answer, 0.5), "p95": ms(answer, 0.95)}}
    # CPU time of this process per operation: what the work costs, whatever else the machine is doing
    # (the database server's own CPU is not in it for PostgreSQL).
    out["cpu_ms"] = {"next_question": {"p50": ms(ask_cpu, 0.5), "p95": ms(ask_cpu, 0.95)},
                     "submit_label": {"p50": ms(answer_cpu, 0.5), "p95": ms(answer_cpu, 0.95)}}
    out["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    out["ratio_p95"] = {"next_question": round(pct(ask, 0.95) / pct(base, 0.95), 1),
                        "submit_label": round(pct(answer, 0.95) / pct(base, 0.95), 1)}
    out["targets_met"] = {"next_question_p95_le_20ms": out["next_question_ms"]["p95"] <= 20,
                          "submit_label_p95_le_50ms": out["submit_label_ms"]["p95"] <= 50,
                          "submit_label_p95_le_25ms": out["submit_label_ms"]["p95"] <= 25}  # issue 15
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--trees", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100, help="nodes per tree")
    ap.add_argument("--props", type=int, default=None, help="shared proposition pool (default: half the nodes)")
    ap.add_argument("--ops", type=int, default=300, help="questions asked and answered")
    ap.add_argument("--annotators", type=int, default=4)
    ap.add_argument("--sqlite-path", help="keep the SQLite database here and reuse it on later runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--pg-schema", help="PostgreSQL: build the forest in this schema once, keep it, reuse it later")
    ap.add_argument("--out", help="also write the JSON result (with the command and load average) to this file")
    ap.add_argument("--no-vacuum", action="store_true",
                    help="PostgreSQL: measure without running VACUUM (ANALYZE) on the queue's tables first")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still drops its PostgreSQL schema
    props = args.props or max(1, args.trees * args.nodes // 2)
    result = {"db": args.db, "trees": args.trees, "nodes_per_tree": args.nodes, "propositions_pool": props}
    if args.db == "sqlite":
        if args.sqlite_path and Path(args.sqlite_path).exists():
            from argtree.store.db import upgrade

            url, build_s = f"sqlite:///{args.sqlite_path}", None
            upgrade(url)  # a forest kept from an older schema is migrated, as on PostgreSQL
        else:
            if args.sqlite_path:
                folder, name = str(Path(args.sqlite_path).parent), Path(args.sqlite_path).name
            else:
                folder, name = tempfile.mkdtemp(prefix="argtree-bench-"), "bench.db"
            url = sqlite_db(folder, name)
            build_s = build(url, args.trees, args.nodes, props, args.seed)
        result["build_s"] = build_s and round(build_s, 1)
        result["sqlite_synchronous"] = sqlite_synchronous(url)
        # Checkpoints run in a thread of this process after each write commit (argtree.store.db), so the
        # CPU times below include that thread's share.
        result["sqlite_checkpoints"] = "background thread"
        result.update(measure(url, args.ops, args.annotators, args.seed + int(time.time())))
        dispose(url)
    elif args.pg_schema:
        url, built = kept_postgres_schema(args.pg_schema)
        result["pg_schema"] = args.pg_schema
        result["build_s"] = None if built else round(build(url, args.trees, args.nodes, props, args.seed), 1)
        if not args.no_vacuum:
            result.update(vacuum_postgres(url))
        result.update(measure(url, args.ops, args.annotators, args.seed + int(time.time())))
        dispose(url)
    else:
        import pytest  # postgres_schema skips through pytest when the server is down

        try:
            with postgres_schema() as url:
                result["build_s"] = round(build(url, args.trees, args.nodes, props, args.seed), 1)
                if not args.no_vacuum:
                    result.update(vacuum_postgres(url))
                result.update(measure(url, args.ops, args.annotators, args.seed))
        except pytest.skip.Exception as err:
            print(f"skipped: {err}", file=sys.stderr)
            return 1
    result["python"] = sys.version.split()[0]
    result["cpus"] = os.cpu_count()
    if args.out:
        import shlex

        record = dict(result, command=" ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
                      load_average_1_5_15=[round(x, 2) for x in os.getloadavg()],
                      finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
        b, a, s = result["baseline_ms"], result["next_question_ms"], result["submit_label_ms"]
        print(f"\n{result['nodes']:,} nodes ({args.db}): baseline p95 {b['p95']} ms | next_question p50 {a['p50']} "
              f"p95 {a['p95']} ms ({result['ratio_p95']['next_question']}x) | submit_label p50 {s['p50']} "
              f"p95 {s['p95']} ms ({result['ratio_p95']['submit_label']}x) | CPU p95 "
              f"{result['cpu_ms']['next_question']['p95']} / {result['cpu_ms']['submit_label']['p95']} ms | "
              f"load {result['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
