"""100 expansions with the bundled model: parse rate, premises per node, attack share, what the guards catch.

The expansion policy of ``argtree ask`` with budget 2, run across many trees
at once so the model works in batches: the roots are StrategyQA questions
(../shared/data/strategyqa/train.json); step 1 expands every root (premises for
and against), step 2 expands each tree's highest-VoI premise.  Every answer
goes through the real pipeline (xgrammar-constrained generation, parsing,
guards, sampled retries).  Counted:

* parse rate: answers that were schema-valid JSON (cut-off answers count as failures);
* premises per expanded node (accepted), its distribution, and failed expansions;
* share of attack premises (p_if_true < p_if_false) among accepted ones;
* guard rejections by reason, and the duplicate rate = duplicates / premises proposed.

    .venv/bin/python bench/expansion_quality.py [--questions 50] [--chunk 8] [--write]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from argtree.strategyqa import default_path  # noqa: E402
DATA = Path(default_path())
PARSE_ERRORS = ("empty", "not-json", "too-long", "no-premises")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=50, help="trees; each gets 2 expansions")
    ap.add_argument("--chunk", type=int, default=8, help="nodes expanded per batched call (2 prompts each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="bundled", help="bundled (the base), adapter (the shipped one, the default model) or a directory")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: grow's (answer_bound)")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="write the result section into BENCHMARKS.md")
    ap.add_argument("--dump", default=None, help="write every tree (argtree/1 list) to this JSON file")
    ap.add_argument("--offset", type=int, default=0, help="skip this many questions (to run shards in parallel)")
    ap.add_argument("--records", default=None, help="append one JSON line per expansion here (for --merge)")
    ap.add_argument("--merge", nargs="+", default=None, help="report on the --records files of several shards")
    args = ap.parse_args()
    if args.merge:
        recs = [json.loads(line) for f in args.merge for line in Path(f).read_text().splitlines() if line.strip()]
        return report(recs, args, len({(r["shard"], r["tree"]) for r in recs}), None)

    from argtree.grow import GrowConfig, expand_many
    from argtree.io import to_dict
    from argtree.llm.local import LocalBackend
    from argtree.strategyqa import load
    from argtree.tree import ArgumentTree, Node
    from argtree.voi import voi

    recs = load(DATA)
    random.Random(args.seed).shuffle(recs)
    questions = [r["question"] for r in recs[args.offset: args.offset + args.questions]]
    be = LocalBackend(args.model, max_batch=2 * args.chunk)
    print("model:", be.model_version, flush=True)
    cfg = GrowConfig(max_new_tokens=args.max_new_tokens, seed=args.seed, retries=args.retries)
    trees = [ArgumentTree([Node("q", q, prior=0.5)]) for q in questions]
    outcomes = []
    records: list[dict] = []
    sent = 0
    t0 = time.perf_counter()

    def expand(targets: list[tuple[int, str]]) -> None:
        nonlocal sent
        for i in range(0, len(targets), args.chunk):
            part = targets[i:i + args.chunk]
            outs, n = expand_many(be, [(trees[ti], nid) for ti, nid in part], cfg, seed=args.seed + 7 * i)
            sent += n
            for (ti, nid), o in zip(part, outs):
                outcomes.append((ti, nid, o))
                trees[ti] = _add(trees[ti], nid, o.proposals)
                rec = {"shard": args.offset, "tree": ti, "node": nid, "claim": trees[ti][nid].text,
                       "attempts": o.attempts, "errors": o.errors, "rejected": [r["reason"] for r in o.rejected],
                       "accepted": [{"text": p.text, "attack": p.p_if_true < p.p_if_false} for p in o.proposals]}
                records.append(rec)
                if args.records:
                    with open(args.records, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
            print(f"  {len(outcomes)} expansions, {sent} prompts, {time.perf_counter() - t0:.0f} s", flush=True)

    expand([(ti, "q") for ti in range(len(trees))])
    step2 = []
    for ti, tree in enumerate(trees):
        scores = voi(tree)
        if scores:
            step2.append((ti, max(sorted(scores), key=lambda n: scores[n])))
    expand(step2)
    seconds = time.perf_counter() - t0

    if args.dump:
        Path(args.dump).write_text(json.dumps([to_dict(t) for t in trees], indent=1))
    report(records, args, len(trees), {"answers": sent, "seconds": seconds, "tokens": be.tokens_generated})


def report(records, args, n_trees, run) -> None:
    """Numbers and the BENCHMARKS.md section from per-expansion records (one run or merged shards)."""
    from argtree.expand import answer_bound

    per_node = [len(r["accepted"]) for r in records]
    errors = [e for r in records for e in r["errors"]]
    # two first answers per expansion, plus one retry per failed answer that was not the last attempt
    answers = sum(2 + sum(int(e.split(":", 1)[0].split("#")[1]) < args.retries for e in r["errors"])
                  for r in records)
    parse_fail = sum(1 for e in errors if e.split(": ", 1)[-1].split(" ")[0] in PARSE_ERRORS)
    truncated = sum(1 for e in errors if "token cap" in e)
    rej = collections.Counter(x for r in records for x in r["rejected"])
    accepted = sum(per_node)
    proposed = accepted + sum(rej.values())
    dups = rej["duplicate-sibling"] + rej["duplicate-in-tree"]
    attacks = sum(1 for r in records for p in r["accepted"] if p["attack"])
    failed = sum(1 for n in per_node if n == 0)
    retried = sum(1 for r in records if r["attempts"] > 1)
    dist = collections.Counter(per_node)
    res = {"expansions": len(records), "trees": n_trees, "answers": answers, "parse_failures": parse_fail,
           "truncated": truncated, "parse_rate": 1 - parse_fail / answers, "accepted": accepted,
           "proposed": proposed, "rejections": dict(rej), "duplicate_rate": dups / proposed if proposed else 0.0,
           "attack_share": attacks / accepted if accepted else 0.0, "failed_expansions": failed,
           "expansions_retried": retried, "premises_per_node": dict(sorted(dist.items())),
           "mean_premises": accepted / len(records), **(run or {})}
    print(json.dumps(res, indent=1))
    examples = [(p["text"], r["claim"]) for r in records if r["accepted"] for p in r["accepted"][:1]][:4]
    dist_row = ", ".join(f"{k}: {v}" for k, v in sorted(dist.items()))
    depth_rows = []
    for label, part in (("roots (questions)", [r for r in records if r["node"] == "q"]),
                        ("deeper nodes (premises)", [r for r in records if r["node"] != "q"])):
        c = collections.Counter(x for r in part for x in r["rejected"])
        acc = sum(len(r["accepted"]) for r in part)
        prop = acc + sum(c.values()) or 1
        copies = c["copies-claim"] + c["restates-ancestor"]
        dup = c["duplicate-sibling"] + c["duplicate-in-tree"]
        depth_rows.append(f"| {label} | {len(part)} | {acc} / {prop} | {100 * copies / prop:.0f}% | "
                          f"{100 * dup / prop:.0f}% | {sum(1 for r in part if not r['accepted'])} |")
    depth_table = "\n".join(depth_rows)
    rej_rows = "\n".join(f"| {k} | {v} |" for k, v in rej.most_common())
    speed = (f", {run['seconds']:.0f} s, {run['tokens'] / run['seconds']:.1f} tokens/s on the 2-core CPU"
             if run else " (report merged from per-expansion records; timing below)")
    from argtree.llm.local import BUNDLED_ALIASES

    adapted = args.model not in BUNDLED_ALIASES
    who = ("SmolLM2-135M-Instruct + the shipped adapter strategyqa-lora (the default model)"
           if args.model == "adapter" else f"SmolLM2-135M-Instruct + adapter `{args.model}`" if adapted
           else "SmolLM2-135M-Instruct (bundled base, no adapter)")
    md = f"""## Expansion quality: 100 expansions, {'base + adapter' if adapted else 'bundled base model'} (issue 4)

    .venv/bin/python bench/expansion_quality.py --questions 50 --model {args.model} --write
    # keep per-expansion records: --records r.jsonl; report from them (or from shards): --merge r*.jsonl --write

{who}, CPU, xgrammar-constrained; {n_trees} StrategyQA questions as roots,
each expanded, then each tree's highest-VoI premise expanded: {len(records)} expansions, {answers} answers
(a for and an against prompt per expansion, plus sampled retries of failed sides){speed}.

| measure | value |
|---|---:|
| answers that parsed (schema-valid JSON) | {answers - parse_fail}/{answers} = {100 * res['parse_rate']:.1f}% |
| answers cut at the {args.max_new_tokens or answer_bound(2)}-token cap (counted as not parsed) | {truncated} |
| premises proposed / accepted | {proposed} / {accepted} |
| mean accepted premises per expanded node | {res['mean_premises']:.2f} |
| premises per node (count: nodes) | {dist_row} |
| share of attack premises (accepted) | {100 * res['attack_share']:.1f}% |
| duplicate rate (duplicates / proposed) | {100 * res['duplicate_rate']:.1f}% |
| expansions needing a sampled retry | {retried} |
| failed expansions (nothing acceptable after retries) | {failed} |

By depth:

| expanded | nodes | accepted / proposed | copies of the claim or an ancestor | duplicates | failed |
|---|---:|---:|---:|---:|---:|
{depth_table}

What the guards rejected:

| reason | premises |
|---|---:|
{rej_rows}

Examples of accepted premises: {'; '.join(f'"{p}" (for "{c}")' for p, c in examples)}.
"""
    if args.write:
        from _report import write_section

        write_section("expansion_quality_adapter" if adapted else "expansion_quality", md)
    print(md)


def _add(tree, nid, proposals):
    from argtree.tree import ArgumentTree, Node

    nodes = list(tree.nodes.values())
    start = len(nodes)
    for j, p in enumerate(proposals):
        nodes.append(Node(f"n{start + j}", p.text, parent=nid, p_if_true=p.p_if_true, p_if_false=p.p_if_false,
                          extra=p.extra()))
    return ArgumentTree(nodes, tree.meta)


if __name__ == "__main__":
    main()
