"""The queue's exact forest-VoI read (``compute.exact_forest_voi``) with the shared sum (``forest_voi_sum``, a
correlated subquery per queue row) against the join + GROUP BY it replaced, on a kept 1M-node forest.

    python bench/exact_sum_cmp.py sqlite:////tmp/queue-ab-db/now.db
    python bench/exact_sum_cmp.py postgresql+psycopg://127.0.0.1:5432/test qab_now     # URL, schema

Reads the 400 best queue rows in pages of 9 (top_exact's page for k = 1), three times, each statement in turn,
prints median and p95 per page read in ms, and checks both give the same sums.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import bindparam, create_engine, func, select, text  # noqa: E402

from argtree.store.compute import forest_voi_sum  # noqa: E402
from argtree.store.models import Node, Tree, queue_entries  # noqa: E402


def main() -> None:
    url = sys.argv[1]
    n, t, q = Node.__table__, Tree.__table__, queue_entries.c
    pids = bindparam("pids", expanding=True)
    join = (select(n.c.proposition_id, func.sum(t.c.priority * n.c.voi)).join(t, t.c.id == n.c.tree_id)
            .where(n.c.proposition_id.in_(pids), t.c.status != "archived").group_by(n.c.proposition_id))
    shared = select(q.proposition_id, forest_voi_sum(q.proposition_id)).where(q.proposition_id.in_(pids))
    with create_engine(url).connect() as c:
        if url.startswith("postgresql"):
            c.execute(text(f"SET search_path TO {sys.argv[2]}"))
        top = list(c.scalars(text("SELECT proposition_id FROM queue_entries "
                                  "ORDER BY queue_bucket DESC, queue_rank DESC, proposition_id DESC LIMIT 400")))
        times: dict[str, list[float]] = {"join + GROUP BY (before)": [], "forest_voi_sum (now)": []}
        for _ in range(3):
            for name, stmt in zip(times, (join, shared)):
                for i in range(0, len(top), 9):
                    t0 = time.perf_counter()
                    c.execute(stmt, {"pids": top[i:i + 9]}).all()
                    times[name].append(time.perf_counter() - t0)
        a, b = dict(c.execute(join, {"pids": top}).all()), dict(c.execute(shared, {"pids": top}).all())
        assert all(abs(a.get(p, 0.0) - b[p]) <= 1e-12 * max(1.0, abs(b[p])) for p in top), "the sums differ"
    for name, v in times.items():
        v.sort()
        print(f"{name}: median {statistics.median(v) * 1e3:.3f} ms, p95 {v[int(0.95 * len(v))] * 1e3:.3f} ms "
              f"({len(v)} page reads)")


if __name__ == "__main__":
    main()
