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

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "strategyqa" / "train.json"
PARSE_ERRORS = ("empty", "not-json", "too-long", "no-premises")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=int, default=50, help="trees; each gets 2 expansions")
    ap.add_argument("--chunk", type=int, default=8, help="nodes expanded per batched call (2 prompts each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="write the result section into BENCHMARKS.md")
    ap.add_argument("--dump", default=None, help="write every tree (argtree/1 list) to this JSON file")
    args = ap.parse_args()

    from argtree.grow import GrowConfig, expand_many
    from argtree.io import to_dict
    from argtree.llm.local import LocalBackend
    from argtree.strategyqa import load
    from argtree.tree import ArgumentTree, Node
    from argtree.voi import voi

    recs = load(DATA)
    random.Random(args.seed).shuffle(recs)
    questions = [r["question"] for r in recs[: args.questions]]
    be = LocalBackend(args.model, max_batch=2 * args.chunk)
    cfg = GrowConfig(max_new_tokens=args.max_new_tokens, seed=args.seed, retries=args.retries)
    trees = [ArgumentTree([Node("q", q, prior=0.5)]) for q in questions]
    outcomes = []
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
            print(f"  {len(outcomes)} expansions, {sent} prompts, {time.perf_counter() - t0:.0f} s", flush=True)

    expand([(ti, "q") for ti in range(len(trees))])
    step2 = []
    for ti, tree in enumerate(trees):
        scores = voi(tree)
        if scores:
            step2.append((ti, max(sorted(scores), key=lambda n: scores[n])))
    expand(step2)
    seconds = time.perf_counter() - t0

    # -- numbers ----------------------------------------------------------------
    per_node = [len(o.proposals) for _, _, o in outcomes]
    answers = sent
    parse_fail = sum(1 for _, _, o in outcomes for e in o.errors if e.split(": ", 1)[-1].split(" ")[0] in PARSE_ERRORS)
    truncated = sum(1 for _, _, o in outcomes for e in o.errors if "token cap" in e)
    rej = collections.Counter(r["reason"] for _, _, o in outcomes for r in o.rejected)
    accepted = sum(per_node)
    proposed = accepted + sum(rej.values())
    dups = rej["duplicate-sibling"] + rej["duplicate-in-tree"]
    attacks = sum(1 for _, _, o in outcomes for p in o.proposals if p.p_if_true < p.p_if_false)
    failed = sum(1 for n in per_node if n == 0)
    retried = sum(1 for _, _, o in outcomes if o.attempts > 1)
    dist = collections.Counter(per_node)
    res = {"expansions": len(outcomes), "answers": answers, "parse_failures": parse_fail, "truncated": truncated,
           "parse_rate": 1 - parse_fail / answers, "accepted": accepted, "proposed": proposed,
           "rejections": dict(rej), "duplicate_rate": dups / proposed if proposed else 0.0,
           "attack_share": attacks / accepted if accepted else 0.0, "failed_expansions": failed,
           "expansions_retried": retried, "premises_per_node": dict(sorted(dist.items())),
           "mean_premises": accepted / len(outcomes), "seconds": seconds,
           "tokens": be.tokens_generated, "tokens_per_s": be.tokens_generated / seconds}
    print(json.dumps(res, indent=1))
    if args.dump:
        Path(args.dump).write_text(json.dumps([to_dict(t) for t in trees], indent=1))
    examples = [(o.proposals[0].text, trees[ti][nid].text) for ti, nid, o in outcomes[:40] if o.proposals][:3]
    dist_row = ", ".join(f"{k}: {v}" for k, v in sorted(dist.items()))
    rej_rows = "\n".join(f"| {k} | {v} |" for k, v in rej.most_common())
    md = f"""## Expansion quality: 100 expansions with the bundled model (issue 4)

    .venv/bin/python bench/expansion_quality.py --questions {args.questions} --chunk {args.chunk} --write

SmolLM2-135M-Instruct (bundled), CPU, xgrammar-constrained; {len(questions)} StrategyQA questions as roots,
each expanded, then each tree's highest-VoI premise expanded: {len(outcomes)} expansions, {answers} answers
(a for and an against prompt per expansion, plus sampled retries), {seconds:.0f} s, {res['tokens_per_s']:.1f} tokens/s
on a shared, busy 2-core machine.

| measure | value |
|---|---:|
| answers that parsed (schema-valid JSON) | {answers - parse_fail}/{answers} = {100 * res['parse_rate']:.1f}% |
| answers cut at the {args.max_new_tokens}-token cap | {truncated} |
| premises proposed / accepted | {proposed} / {accepted} |
| mean accepted premises per expanded node | {res['mean_premises']:.2f} |
| premises per node (count: nodes) | {dist_row} |
| share of attack premises (accepted) | {100 * res['attack_share']:.1f}% |
| duplicate rate (duplicates / proposed) | {100 * res['duplicate_rate']:.1f}% |
| expansions needing a sampled retry | {retried} |
| failed expansions (nothing acceptable after retries) | {failed} |

What the guards rejected:

| reason | premises |
|---|---:|
{rej_rows}

Examples of accepted premises: {'; '.join(f'"{p}" (for "{c}")' for p, c in examples)}.
"""
    if args.write:
        from _report import write_section

        write_section("expansion_quality", md)
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
