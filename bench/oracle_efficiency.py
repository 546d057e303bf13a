"""Oracle efficiency: how many oracle answers each question-selection policy needs.

Simulated worlds with known truth (argtree/simulate.py); the logic and every option
live in `argtree bench oracle-efficiency`, which this script runs.  The full grid
(every shape at four CPT-noise levels, 500 worlds each, seed 0), as in BENCHMARKS.md:

    .venv/bin/python bench/oracle_efficiency.py --seed 0

writes bench/results/oracle_efficiency.{md,json,png}.  `--help` lists the options.
"""

import sys

from argtree.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "oracle-efficiency", *sys.argv[1:]], prog_name="argtree"))
