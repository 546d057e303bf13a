"""The StrategyQA fine-tuning experiment: build the data, then measure base vs adapted.

    python bench/finetune_experiment.py build --out runs/sqa          # data + held-out sets
    argtree finetune --data runs/sqa/train.jsonl ...                  # see BENCHMARKS.md for the exact command
    python bench/finetune_experiment.py measure --data runs/sqa --model argtree/adapters/strategyqa-lora

Split: questions whose normalized text hashes below 0.9 are train, the rest
held out; a train question sharing any proposition (question, fact or
negation) with a held-out one is dropped.  Training data: a balanced sample
of facts (true) and their rule negations (false) as yes/no records, and root
expansions (question -> premises, in the prompt/JSON shape `argtree ask`
uses).  Held-out: every fact and negation of the held-out questions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

DATA = os.path.join(os.path.dirname(HERE), "..", "shared", "data", "strategyqa", "train.json")


def build(args) -> None:
    from argtree import datasets, strategyqa

    records = strategyqa.load(args.strategyqa)
    trees = strategyqa.trees(records)
    train, held, dropped = datasets.split_trees(trees, 0.9)
    rng = random.Random(args.seed)
    facts = datasets.examples(train, "facts")
    pos = [e for e in facts if e.completion == "Yes"]
    neg = [e for e in facts if e.completion == "No"]
    rng.shuffle(pos)
    rng.shuffle(neg)
    half = args.facts // 2
    fact_recs = [r for e in pos[:half] + neg[:half] for r in datasets.render(e, "conversational")]
    exp_trees = [lt for lt in train if any(ev.value is False for ev in lt.evidence if ev.node != lt.tree.root)]
    rng.shuffle(exp_trees)
    exp_recs = []
    for lt in exp_trees:
        if len(exp_recs) >= args.expansions:
            break
        exp_recs.extend(strategyqa.expansion_records(lt))
    rows = fact_recs + exp_recs[: args.expansions]
    rng.shuffle(rows)
    os.makedirs(args.out, exist_ok=True)
    datasets.write_jsonl(rows, os.path.join(args.out, "train.jsonl"))
    held_facts = datasets.examples(held, "facts")
    datasets.write_jsonl([r for e in held_facts for r in datasets.render(e, "prompt-completion")],
                         os.path.join(args.out, "heldout_facts.jsonl"))
    held_q = [{"question": lt.tree[lt.tree.root].text,
               "answer": next(ev.value for ev in lt.evidence if ev.node == lt.tree.root),
               "facts": [lt.tree[n].text for n in lt.tree.children(lt.tree.root)
                         if lt.tree[n].extra.get("origin") == "strategyqa fact"]} for lt in held]
    with open(os.path.join(args.out, "heldout_questions.json"), "w") as fh:
        json.dump(held_q, fh, indent=1)
    card = {"strategyqa": os.path.abspath(args.strategyqa), "sha256": datasets.sha256_file(args.strategyqa),
            "questions": len(records), "train_questions": len(train), "heldout_questions": len(held),
            "train_dropped_for_overlap": dropped, "train_fact_records": len(fact_recs),
            "train_expansion_records": len(rows) - len(fact_recs), "heldout_fact_records": len(held_facts),
            "heldout_true": sum(e.completion == "Yes" for e in held_facts),
            "negation_stats": strategyqa.negation_stats(records), "seed": args.seed,
            "train_sha256": datasets.sha256_file(os.path.join(args.out, "train.jsonl"))}
    with open(os.path.join(args.out, "card.json"), "w") as fh:
        json.dump(card, fh, indent=1)
    print(json.dumps(card, indent=1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write train.jsonl, heldout_facts.jsonl, heldout_questions.json, card.json")
    b.add_argument("--strategyqa", default=DATA)
    b.add_argument("--out", required=True)
    b.add_argument("--facts", type=int, default=192, help="yes/no fact records (half true, half negations)")
    b.add_argument("--expansions", type=int, default=32, help="question -> premises records")
    b.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("measure", help="held-out metrics, base vs adapted")
    m.add_argument("--data", required=True)
    m.add_argument("--model", required=True)
    m.add_argument("--base", default="bundled")
    m.add_argument("--facts", type=int, default=300, help="held-out fact records scored (balanced sample)")
    m.add_argument("--questions", type=int, default=24, help="held-out questions expanded")
    m.add_argument("--out", default=None, help="write the metrics JSON and reliability diagram here")
    m.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args)
    else:
        measure(args)


def measure(args) -> None:
    from bench_measure import run  # noqa: F401  (filled in below when evaluate.py lands)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"[{time.perf_counter() - t0:.0f}s]", file=sys.stderr)
