"""Which of the model's credences is better calibrated: the number it writes, or P(yes) from log-probs?

StrategyQA facts (../shared/data/strategyqa/train.json; all true) and their
rule-checked negations (``argtree.strategyqa.negate``; false) are scored two ways:

* verbal:  the model writes {"probability": p} under a JSON schema (xgrammar);
* logprob: P("Yes") / (P("Yes") + P("No")) for "Is the following statement true?".

Reported per method: Brier score (lower is better; 0.25 = always saying 0.5),
mean p on true and on false statements, the share answered > 0.5 correctly,
and AUC (chance that a true statement gets a higher p than a false one).  The
better Brier score becomes ``GrowConfig.credence``'s default (see BENCHMARKS.md).

    .venv/bin/python bench/credence_calibration.py [--n 60] [--seed 0] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from argtree.strategyqa import default_path  # noqa: E402
DATA = Path(default_path())


def pairs(n: int, seed: int) -> list[tuple[str, bool]]:
    from argtree.strategyqa import load, negate

    recs = load(DATA)
    facts = sorted({f.strip() for r in recs for f in r["facts"] if 20 <= len(f.strip()) <= 160})
    random.Random(seed).shuffle(facts)
    out = []
    for f in facts:
        neg = negate(f)
        if neg:
            out += [(f, True), (neg, False)]
        if len(out) >= 2 * n:
            break
    return out


def brier(ps, ys) -> float:
    return sum((p - y) ** 2 for p, y in zip(ps, ys)) / len(ps)


def auc(ps, ys) -> float:
    pos = [p for p, y in zip(ps, ys) if y]
    neg = [p for p, y in zip(ps, ys) if not y]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def summary(ps, ys) -> dict:
    t = [p for p, y in zip(ps, ys) if y]
    f = [p for p, y in zip(ps, ys) if not y]
    return {"brier": brier(ps, ys), "mean_true": sum(t) / len(t), "mean_false": sum(f) / len(f),
            "accuracy": sum((p > 0.5) == y for p, y in zip(ps, ys)) / len(ps), "auc": auc(ps, ys)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="facts (each with its negation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="bundled", help="the model measured (default: the base, as BENCHMARKS.md reports)")
    ap.add_argument("--write", action="store_true", help="write the result section into BENCHMARKS.md")
    args = ap.parse_args()

    from argtree.expand import credence_prompt, credence_schema, parse_credence, yes_no_prompt
    from argtree.llm.local import LocalBackend

    items = pairs(args.n, args.seed)
    texts, ys = [t for t, _ in items], [float(y) for _, y in items]
    be = LocalBackend(args.model, max_batch=16)
    t0 = time.perf_counter()
    gens = be.generate_json([credence_prompt(t) for t in texts], credence_schema(), max_new_tokens=24)
    verbal_raw = [parse_credence(g.text) for g in gens]
    parsed = sum(v is not None for v in verbal_raw)
    verbal = [0.5 if v is None else v for v in verbal_raw]
    t1 = time.perf_counter()
    logprob = be.score_yes([yes_no_prompt(t) for t in texts])
    t2 = time.perf_counter()
    res = {"statements": len(texts), "verbal_parsed": parsed, "verbal": summary(verbal, ys),
           "logprob": summary(logprob, ys), "verbal_s": t1 - t0, "logprob_s": t2 - t1,
           "distinct_verbal_values": sorted({round(v, 3) for v in verbal})[:20]}
    better = "verbal" if res["verbal"]["brier"] <= res["logprob"]["brier"] else "logprob"
    res["better"] = better
    print(json.dumps(res, indent=1))
    rows = "\n".join(
        f"| {m} | {res[m]['brier']:.3f} | {res[m]['mean_true']:.3f} | {res[m]['mean_false']:.3f} | "
        f"{res[m]['accuracy']:.2f} | {res[m]['auc']:.2f} |" for m in ("verbal", "logprob"))
    md = f"""## Verbal vs log-prob credences (issue 4)

    .venv/bin/python bench/credence_calibration.py --n {args.n} --seed {args.seed} --write

Bundled SmolLM2-135M-Instruct, CPU.  {len(texts)} statements: {len(texts) // 2} StrategyQA facts (true) and
their rule-checked negations (false).  verbal = the number the model writes under a JSON schema
({parsed}/{len(texts)} parsed, digits cut at the token cap kept; distinct values: {', '.join(map(str, res['distinct_verbal_values']))});
logprob = P(Yes)/(P(Yes)+P(No)) of the first answer token.  Brier 0.25 = always answering 0.5.

| credence | Brier | mean p (true) | mean p (false) | accuracy (p>0.5) | AUC |
|---|---:|---:|---:|---:|---:|
{rows}

Better calibrated (lower Brier): **{better}**; `argtree ask --credence` defaults to it.
"""
    if args.write:
        from _report import write_section

        write_section("credence_calibration", md)
    print(md)


if __name__ == "__main__":
    main()
