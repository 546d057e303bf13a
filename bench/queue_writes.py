"""What one answer writes, counted, not timed: the load-independent side of ``queue_bench.py``.

    python bench/queue_writes.py --sqlite-path /tmp/qb15/bench.db            # a COPY of it is used
    python bench/queue_writes.py --db postgres --pg-schema qb15               # answers stay in the schema
    python bench/queue_writes.py ... --answers 50 --out bench/results/queue_writes_sqlite.json

Runs the same ask-and-answer loop as ``queue_bench.py`` on a forest that bench built and kept, and counts:

* SQLite: the WAL frames (4 KiB pages written and fsynced) of each answer's COMMIT, by table or index
  (page numbers from the frame headers, names from the ``dbstat`` table).  Checkpoints are switched off
  in this process so the WAL only grows; the database is copied first and the copy deleted afterwards.
* PostgreSQL: WAL bytes per answer (``pg_current_wal_lsn``) and, from the statistics collector, how many
  of the propositions' and nodes' row updates were HOT (no index entry written).

Both numbers depend on the data and the schema only, not on how busy the machine is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from argtree.store import add_annotator, next_question, session_scope, submit_label  # noqa: E402
from argtree.store.testing import fast_password_hashing  # noqa: E402


def wal_pages(wal: Path, start: int, page_size: int) -> tuple[list[int], int]:
    """Page numbers of the frames in ``wal`` from byte ``start`` on, and the new end."""
    data = wal.read_bytes() if wal.exists() else b""
    start = max(start, 32)
    frame = 24 + page_size
    pages = [struct.unpack(">I", data[o:o + 4])[0] for o in range(start, len(data) - frame + 1, frame)]
    return pages, start + len(pages) * frame


def answer_loop(url: str, answers: int, seed: int, after_each) -> None:
    rng = random.Random(seed)
    with session_scope(url) as s:
        people = [add_annotator(s, f"writes{seed}-{i}-{os.getpid()}", "password123").id for i in range(4)]
    for k in range(answers):
        who = people[k % 4]
        with session_scope(url) as s:
            q = next_question(s, who)
        if q is None:
            break
        with session_scope(url) as s:
            kind = rng.random()
            kw = {"value": kind < 0.5} if kind < 0.9 else {"probability": round(rng.random(), 2)}
            submit_label(s, who, q.proposition_id, request_id=f"writes-{seed}-{os.getpid()}-{k}", **kw)
        after_each()


def sqlite_writes(path: str, answers: int, seed: int) -> dict:
    import sqlite3

    import argtree.store.db as db

    db._Checkpointer.kick = lambda self: None  # no checkpoints: the WAL keeps every frame written
    db.FALLBACK_AUTOCHECKPOINT = 10 ** 9
    tmp = Path(tempfile.mkdtemp(prefix="queue-writes-"))
    copy = tmp / "bench.db"
    src = sqlite3.connect(path)
    src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    src.close()
    shutil.copy(path, copy)
    try:
        url = f"sqlite:///{copy}"
        con = sqlite3.connect(copy)
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        name_of = dict(con.execute("SELECT pageno, name FROM dbstat"))
        con.close()
        wal = Path(f"{copy}-wal")
        state = {"end": 0, "per": [], "by": Counter()}

        def after_each():
            pages, state["end"] = wal_pages(wal, state["end"], page_size)
            state["per"].append(len(pages))
            state["by"].update(name_of.get(p, "(new page)") for p in pages)

        after_each()  # frames written before the first answer (the annotators) are not counted
        state["per"].clear()
        state["by"].clear()
        answer_loop(url, answers, seed, after_each)
        from argtree.store.testing import dispose
        dispose(url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(state["per"])
    per = sorted(state["per"])
    return {"db": "sqlite", "answers": n, "page_size": page_size,
            "wal_frames_per_answer": {"mean": round(sum(per) / n, 1), "p50": per[n // 2], "max": per[-1]},
            "frames_by_btree_per_answer": {k: round(v / n, 1) for k, v in state["by"].most_common()}}


def postgres_writes(schema: str, answers: int, seed: int) -> dict:
    from queue_bench import kept_postgres_schema

    url, built = kept_postgres_schema(schema)
    if not built:
        raise SystemExit(f"schema {schema} holds no forest: build it with bench/queue_bench.py --pg-schema {schema}")
    stats = ("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
             "WHERE schemaname = :s AND relname IN ('propositions', 'queue_entries', 'nodes')")

    def snapshot():
        with session_scope(url) as s:
            s.execute(text("SELECT pg_stat_clear_snapshot()"))
            lsn = s.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar()
            rows = {r[0]: (r[1], r[2]) for r in s.execute(text(stats), {"s": schema})}
        return float(lsn), rows

    lsn0, rows0 = snapshot()
    lsns = [lsn0]
    answer_loop(url, answers, seed, lambda: lsns.append(snapshot()[0]))
    import time

    from argtree.store.testing import dispose

    dispose(url)      # closed sessions hand their table counters to the statistics system on exit,
    time.sleep(2.0)   # which takes a moment (a wait for the counters, not a measurement)
    _, rows1 = snapshot()
    per = sorted(b - a for a, b in zip(lsns, lsns[1:]))
    n = len(per)
    out = {"db": "postgres", "schema": schema, "answers": n,
           "wal_bytes_per_answer": {"mean": round(sum(per) / n), "p50": round(per[n // 2]), "max": round(per[-1])}}
    for table in ("propositions", "queue_entries", "nodes"):
        if table not in rows1 or table not in rows0:   # a schema before (or after) migration 0009
            continue
        upd = rows1[table][0] - rows0[table][0]
        hot = rows1[table][1] - rows0[table][1]
        out[f"{table}_updates_per_answer"] = round(upd / n, 1)
        out[f"{table}_hot_share"] = round(hot / upd, 3) if upd else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--sqlite-path", help="a database built by queue_bench.py --sqlite-path (copied, not changed)")
    ap.add_argument("--pg-schema", help="a schema built by queue_bench.py --pg-schema")
    ap.add_argument("--answers", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="also write the JSON result here")
    args = ap.parse_args()
    fast_password_hashing()
    if args.db == "sqlite":
        if not args.sqlite_path:
            ap.error("--sqlite-path is required with --db sqlite")
        out = sqlite_writes(args.sqlite_path, args.answers, args.seed)
    else:
        if not args.pg_schema:
            ap.error("--pg-schema is required with --db postgres")
        out = postgres_writes(args.pg_schema, args.answers, args.seed)
    import subprocess

    out["code"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout.strip() or None
    out["command"] = " ".join([sys.executable] + sys.argv)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
