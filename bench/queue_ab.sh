#!/bin/sh
# The queue at 1M nodes, before and after a change, on the same machine in one sitting: runs
# bench/queue_bench.py alternately with the code of commit BEFORE (exported to /tmp/queue-ab-BEFORE) and
# with this checkout, N times per database, each on its own kept forest, and prints the medians
# (bench/queue_ab_report.py).  The forests are built on first use (~4 min SQLite, ~7 min PostgreSQL each).
#
#   sh bench/queue_ab.sh d6303f2 5          # BEFORE commit, runs per database
#   OUT=bench/results/queue_ab3 sh bench/queue_ab.sh 84c05a2 5   # the third round (narrow queue table)
set -e
BEFORE=${1:?usage: sh bench/queue_ab.sh BEFORE_COMMIT [RUNS]}
RUNS=${2:-5}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=$HERE/.venv/bin/python
OLD=/tmp/queue-ab-$BEFORE
OUT=${OUT:-$HERE/bench/results/queue_ab}   # OUT=folder to keep an earlier sitting's runs
mkdir -p "$OUT" /tmp/queue-ab-db
[ -d "$OLD" ] || (mkdir -p "$OLD" && git -C "$HERE" archive "$BEFORE" | tar -x -C "$OLD")
i=1
while [ $i -le "$RUNS" ]; do
  (cd "$OLD" && nice -n -10 "$PY" bench/queue_bench.py --sqlite-path /tmp/queue-ab-db/before.db --out "$OUT/sqlite_before_$i.json" >/dev/null)
  (cd "$HERE" && nice -n -10 "$PY" bench/queue_bench.py --sqlite-path /tmp/queue-ab-db/now.db --out "$OUT/sqlite_now_$i.json" >/dev/null)
  V=--no-vacuum; [ $i = 1 ] && V=
  (cd "$OLD" && nice -n -10 "$PY" bench/queue_bench.py --db postgres --pg-schema qab_before $V --out "$OUT/postgres_before_$i.json" >/dev/null)
  (cd "$HERE" && nice -n -10 "$PY" bench/queue_bench.py --db postgres --pg-schema qab_now $V --out "$OUT/postgres_now_$i.json" >/dev/null)
  i=$((i + 1))
done
"$PY" "$HERE/bench/queue_ab_report.py" "$OUT"
