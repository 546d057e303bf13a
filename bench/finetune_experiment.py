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

from argtree.strategyqa import default_path  # noqa: E402
DATA = default_path()


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
    m.add_argument("--retries", type=int, default=0, help="sampled retries of a failed expansion (grow's default is 2)")
    m.add_argument("--max-new-tokens", type=int, default=160)
    m.add_argument("--part", choices=["facts", "questions", "both"], default="both",
                   help="run one half (two processes can share the work); results merge by role")
    m.add_argument("--only", choices=["base", "adapted"], default=None,
                   help="measure one side now (results kept in --out), the table is written once both exist")
    r = sub.add_parser("report", help="merge base.json and adapted.json in DIR: metrics.json, reliability.png, table")
    r.add_argument("dir")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args)
    elif args.cmd == "report":
        report(args.dir)
    else:
        measure(args)


ROWS = [("facts", "brier", "Brier", 3), ("facts", "log_loss", "log loss", 3), ("facts", "ece", "ECE", 3),
        ("facts", "accuracy", "accuracy", 3), ("facts", "mean_p", "mean P(true)", 3), ("facts", "std_p", "std of P(true)", 3),
        ("questions", "proposed", "premises proposed", 0), ("questions", "accepted", "premises accepted", 0),
        ("questions", "copy_share", "share rejected as copying the claim", 3),
        ("questions", "duplicate_share", "share rejected as duplicates", 3),
        ("questions", "failed_share", "questions with no usable premise", 3),
        ("questions", "credence_std", "std of credences", 3), ("questions", "numbers_std", "std of all numbers", 3),
        ("questions", "share_at_bounds", "share of numbers at 0.05 / 0.95", 3),
        ("questions", "distinct_numbers", "distinct numbers", 0),
        ("questions", "gold_overlap_mean", "overlap with gold facts (mean best Jaccard)", 3),
        ("questions", "gold_overlap_share_ge_0.3", "premises overlapping a gold fact >= 0.3", 3),
        ("root_direct", "accuracy", "root accuracy, direct P(yes)", 3), ("root_direct", "brier", "root Brier, direct", 3),
        ("root_tree", "accuracy", "root accuracy, tree + self-judged premises", 3),
        ("root_tree", "brier", "root Brier, tree + self-judged premises", 3)]


def report(dest: str) -> None:
    from argtree.evaluate import reliability_diagram

    sides = {}
    for role in ("base", "adapted"):
        with open(os.path.join(dest, f"{role}.json")) as fh:
            sides[role] = json.load(fh)
    n = len(sides["base"]["truths"])
    reliability_diagram({f"{role}: {os.path.basename(str(side['model']))}": (side["probs"], side["truths"])
                         for role, side in sides.items()}, os.path.join(dest, "reliability.png"),
                        title=f"Held-out StrategyQA facts and negations (n={n})")
    out = {role: {k: v for k, v in side.items() if k not in ("probs", "truths")} for role, side in sides.items()}
    with open(os.path.join(dest, "metrics.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    print("| metric | base | base + adapter |\n|---|---:|---:|")
    for part, key, name, digits in ROWS:
        vals = []
        for role in ("base", "adapted"):
            block = sides[role].get("questions" if part.startswith("root") else part, {})
            v = block.get(part, {}).get(key) if part.startswith("root") else block.get(key)
            vals.append("-" if v is None else f"{v:.{digits}f}")
        print(f"| {name} | {vals[0]} | {vals[1]} |")


def measure(args) -> None:
    """Held-out metrics for --base and --model: fact calibration, then root expansions of held-out questions."""
    import numpy as np

    from argtree import datasets
    from argtree.evaluate import calibration, fact_items, reliability_diagram, score_facts
    from argtree.expand import similarity, yes_no_prompt
    from argtree.finetune import resolve_version
    from argtree.grow import GrowConfig, grow
    from argtree.inference import beliefs
    from argtree.llm import make_backend
    from argtree.tree import Evidence

    rng = random.Random(args.seed)
    recs = datasets.read_jsonl(os.path.join(args.data, "heldout_facts.jsonl"))
    pos = [r for r in recs if r["completion"] == "Yes"]
    neg = [r for r in recs if r["completion"] == "No"]
    rng.shuffle(pos)
    rng.shuffle(neg)
    sample = pos[: args.facts // 2] + neg[: args.facts // 2]
    prompts, truths, system = fact_items(sample, "heldout_facts")
    with open(os.path.join(args.data, "heldout_questions.json")) as fh:
        questions = json.load(fh)
    rng.shuffle(questions)
    questions = questions[: args.questions]
    dest = args.out or os.path.join(args.data, "measure")
    os.makedirs(dest, exist_ok=True)
    for role, name in (("base", args.base), ("adapted", args.model)):
        if args.only and role != args.only:
            continue
        path = os.path.join(dest, f"{role}.json")
        backend = make_backend("local", resolve_version(name))
        if args.part in ("facts", "both"):
            t0 = time.perf_counter()
            probs = score_facts(backend, prompts, system)
            cal = calibration(probs, truths)
            fresh = {"facts": {**cal.as_dict(), "seconds": round(time.perf_counter() - t0, 1)},
                     "probs": probs, "truths": truths}
            print(role, "facts", json.dumps(fresh["facts"]), flush=True)
            _merge(path, {"model": name, **fresh})
        if args.part in ("questions", "both"):
            t0 = time.perf_counter()
            qs = _expansions(backend, questions, GrowConfig(expansions=1, per_side=2, retries=args.retries,
                                                       max_new_tokens=args.max_new_tokens, seed=args.seed),
                             grow, similarity, yes_no_prompt, beliefs, Evidence, np)
            qs["seconds"] = round(time.perf_counter() - t0, 1)
            print(role, "questions", json.dumps(qs), flush=True)
            _merge(path, {"model": name, "questions": qs})
        del backend
    sides = {}
    for role in ("base", "adapted"):
        path = os.path.join(dest, f"{role}.json")
        if os.path.exists(path):
            with open(path) as fh:
                sides[role] = json.load(fh)
    if len(sides) < 2 or not all("facts" in v and "questions" in v for v in sides.values()):
        return
    curves = {f"{role}: {os.path.basename(str(side['model']))}": (side["probs"], side["truths"])
              for role, side in sides.items()}
    reliability_diagram(curves, os.path.join(dest, "reliability.png"),
                        title=f"Held-out StrategyQA facts and negations (n={len(prompts)})")
    out = {"data": os.path.abspath(args.data), "n_facts": len(prompts), "n_questions": len(questions),
           **{role: {k: v for k, v in side.items() if k not in ("probs", "truths")} for role, side in sides.items()}}
    with open(os.path.join(dest, "metrics.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    print(json.dumps(out, indent=1))


def _merge(path: str, update: dict) -> dict:
    """Add one half's results to the role's file (read again: the other half may have written meanwhile)."""
    side = {}
    if os.path.exists(path):
        with open(path) as fh:
            side = json.load(fh)
    side.update(update)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(side, fh, indent=1)
    os.replace(tmp, path)
    return side


def _expansions(backend, questions, cfg, grow, similarity, yes_no_prompt, beliefs, Evidence, np) -> dict:
    """Root expansion (for + against) of each question; what the premises look like, and the root's answer.

    Root answer, two ways: 'direct' = P(yes) on the question itself; 'tree' = the
    tree's belief once the model has judged its own premises (each premise's
    P(yes) as soft evidence, as `argtree loop --oracle model` does).
    """
    proposed = accepted = copies = dups = failed = 0
    numbers, credences, overlaps = [], [], []
    direct_p, tree_p, gold = [], [], []
    for q in questions:
        res = grow(q["question"], backend, cfg)
        tree = res.tree
        kids = tree.children(tree.root)
        rej = [r for r in res.rejected if r["node"] == tree.root]
        proposed += len(kids) + len(rej)
        accepted += len(kids)
        copies += sum(r["reason"] in ("copies-claim", "restates-ancestor") for r in rej)
        dups += sum(r["reason"].startswith("duplicate") for r in rej)
        failed += not kids
        for nid in kids:
            ex = tree[nid].extra
            credences.append(ex["credence"])
            numbers.extend([ex["credence"], ex["claim_if_true"], ex["claim_if_false"]])
            overlaps.append(max((similarity(tree[nid].text, f) for f in q["facts"]), default=0.0))
        direct_p.append(backend.score_yes([yes_no_prompt(q["question"])])[0])
        ev = []
        if kids:
            for nid, p in zip(kids, backend.score_yes([yes_no_prompt(tree[n].text) for n in kids])):
                if abs(p - 0.5) > 1e-6:
                    ev.append(Evidence(nid, p > 0.5, min(max(p, 1 - p), 0.99)))
        tree_p.append(beliefs(tree, ev)[tree.root])
        gold.append(1 if q["answer"] else 0)
    gold_a = np.array(gold)

    def root(ps):
        ps = np.array(ps)
        return {"accuracy": float(np.mean((ps >= 0.5) == (gold_a == 1))), "brier": float(np.mean((ps - gold_a) ** 2)),
                "mean_p": float(ps.mean())}

    n = max(proposed, 1)
    return {"proposed": proposed, "accepted": accepted, "copy_share": copies / n, "duplicate_share": dups / n,
            "failed_share": failed / max(len(questions), 1),
            "credence_std": float(np.std(credences)) if credences else None,
            "numbers_std": float(np.std(numbers)) if numbers else None,
            "share_at_bounds": float(np.mean([x in (0.05, 0.95) or x >= 0.95 for x in numbers])) if numbers else None,
            "distinct_numbers": len(set(numbers)),
            "gold_overlap_mean": float(np.mean(overlaps)) if overlaps else None,
            "gold_overlap_share_ge_0.3": float(np.mean([o >= 0.3 for o in overlaps])) if overlaps else None,
            "root_direct": root(direct_p), "root_tree": root(tree_p)}


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"[{time.perf_counter() - t0:.0f}s]", file=sys.stderr)
