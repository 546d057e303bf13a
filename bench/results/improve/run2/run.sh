#!/bin/sh
# The issue-12 StrategyQA run (see BENCHMARKS.md): resumable; rerun this script after a kill.
export ARGTREE_HOME=/tmp/sqa/home
/work/main/.venv/bin/argtree db upgrade >/dev/null
exec /work/main/.venv/bin/argtree improve --start adapter --questions /tmp/sqa/sqa_train.json \
  --heldout /tmp/sqa/sqa_heldout.json --heldout-limit 40 --rounds 3 --per-round 8 --budget 2 --answers 2 \
  --steps 24 --batch-size 8 --top-layers 12 --threads 2 --json
