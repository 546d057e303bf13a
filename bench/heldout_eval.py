"""Held-out StrategyQA: the model's direct answer vs the tree it grows (model evidence, calibrated or
not, frontier or every node) vs the tree plus K oracle answers (VoI-picked or random).

    python bench/heldout_eval.py grow --model adapter --n 120          # grown trees -> bench/results/heldout/
    python bench/heldout_eval.py grow --model bundled --n 120
    python bench/heldout_eval.py pairs --model adapter --n 400          # calibration pairs from the TRAIN split
    python bench/heldout_eval.py direct --model adapter                 # direct answers, all held-out questions
    python bench/heldout_eval.py report                                 # tables -> bench/results/heldout/report.md

The held-out questions: ``argtree.questions.split_heldout`` (sha256 of "argtree-heldout:" + qid, top
15%), minus every question whose text or any gold fact occurs in the shipped adapter's training file
(``argtree/adapters/strategyqa-lora/train.jsonl``: that adapter was trained on a different, text-hash
split), so no model measured here saw them.  The subset is the first N of them in the order of the
seeded shuffle.  Growing is resumable: a rerun skips questions already in the output file.

Calibration maps are fitted only on the TRAIN split (questions not held out), minus the questions the
shipped adapter trained on: the premise map on the model's P(yes) for gold facts (true) and their
rule-made negations (false), the direct map on the model's P(yes) for train questions against their
gold answers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argtree.questions import Question, load_questions, split_heldout  # noqa: E402
from argtree.strategyqa import default_path  # noqa: E402

OUT = ROOT / "bench" / "results" / "heldout"
ADAPTER_TRAIN = ROOT / "argtree" / "adapters" / "strategyqa-lora" / "train.jsonl"


def _split() -> tuple[list[Question], list[Question], str]:
    """(train, held out, the shipped adapter's training text)."""
    train, held = split_heldout(load_questions(default_path()))
    return train, held, ADAPTER_TRAIN.read_text(encoding="utf-8") if ADAPTER_TRAIN.exists() else ""


def _unseen(questions: list[Question], seen: str) -> list[Question]:
    return [q for q in questions if q.question not in seen and not any(f in seen for f in q.facts)]


def _shuffled(questions: list[Question], seed: int) -> list[Question]:
    random.Random(seed).shuffle(questions)
    return questions


def heldout_questions(seed: int = 0) -> list[Question]:
    _, held, seen = _split()
    return _shuffled(_unseen(held, seen), seed)


def train_questions(seed: int = 0) -> list[Question]:
    """The train split minus what the shipped adapter trained on: pairs from text a model memorized
    would make its credences look far better than they are on new premises (AUC 0.89 vs 0.5)."""
    train, _, seen = _split()
    return _shuffled(_unseen(train, seen), seed)


def seen_questions(seed: int = 0) -> list[Question]:
    """Train-split questions the shipped adapter trained on (its facts are in its training file): the pool
    for hand-checking the facts oracle, since on held-out questions the adapter's premises are mechanical
    negations no gold fact settles.  Never used for any held-out number."""
    train, _, seen = _split()
    return _shuffled([q for q in train if q.question in seen], seed)


def _backend(model: str):
    from argtree.llm import make_backend

    return make_backend("local", None if model == "adapter" else model)


def cmd_grow(args) -> None:
    from argtree.grow import GrowConfig
    from argtree.io import to_dict
    from argtree.questions import grow_questions

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / (f"{args.model}.jsonl" if args.pool == "heldout" else f"{args.model}_{args.pool}.jsonl")
    done = set()
    if path.exists():
        done = {json.loads(line)["qid"] for line in path.read_text().splitlines() if line.strip()}
    pool = heldout_questions(args.seed) if args.pool == "heldout" else seen_questions(args.seed)
    todo = [q for q in pool[:args.n] if q.qid not in done]
    print(f"{len(done)} done, {len(todo)} to grow with {args.model}", flush=True)
    if not todo:
        return
    be = _backend(args.model)
    cfg = GrowConfig(expansions=args.budget, seed=args.seed)
    t0 = time.time()
    for i in range(0, len(todo), args.chunk):
        chunk = todo[i:i + args.chunk]
        grown = grow_questions(be, chunk, budget=args.budget, grow_config=cfg)
        with open(path, "a", encoding="utf-8") as fh:
            for g in grown:
                fh.write(json.dumps({"qid": g.question.qid, "question": g.question.question,
                                     "answer": g.question.answer, "direct_raw": g.direct_raw,
                                     "tree": to_dict(g.tree, g.evidence), "stats": dict(g.stats),
                                     "rejected": g.rejected, "seconds": round(g.seconds, 2),
                                     "model": be.model_version}, ensure_ascii=False) + "\n")
        print(f"{len(done) + i + len(chunk)} grown, {time.time() - t0:.0f}s, load {os.getloadavg()[0]:.1f}",
              flush=True)


def cmd_pairs(args) -> None:
    """(credence, truth) pairs on the TRAIN split: facts/negations (premise map), questions (direct map)."""
    from argtree.evaluate import score_facts
    from argtree.expand import direct_prompt, yes_no_prompt
    from argtree.strategyqa import negate

    OUT.mkdir(parents=True, exist_ok=True)
    train = train_questions(args.seed)[:args.n]
    facts, truths = [], []
    for q in train:
        f = q.facts[0] if q.facts else None
        if not f:
            continue
        neg = negate(f)
        facts.append(f)
        truths.append(True)
        if neg:
            facts.append(neg)
            truths.append(False)
    be = _backend(args.model)
    t0 = time.time()
    pc = score_facts(be, [yes_no_prompt(t) for t in facts])
    dq = score_facts(be, [direct_prompt(q.question) for q in train])
    out = {"model": be.model_version, "seconds": round(time.time() - t0, 1),
           "premise": {"credence": pc, "truth": truths, "text": facts},
           "direct": {"credence": dq, "truth": [bool(q.answer) for q in train], "qid": [q.qid for q in train]}}
    (OUT / f"pairs_{args.model}.json").write_text(json.dumps(out))
    print(f"{len(pc)} premise pairs, {len(dq)} direct pairs in {out['seconds']}s")


def cmd_direct(args) -> None:
    """The direct answer alone (one batched scoring pass) on every clean held-out question."""
    from argtree.evaluate import score_facts
    from argtree.expand import direct_prompt

    held = heldout_questions(args.seed)
    be = _backend(args.model)
    t0 = time.time()
    p = score_facts(be, [direct_prompt(q.question) for q in held])
    out = {"model": be.model_version, "seconds": round(time.time() - t0, 1), "qid": [q.qid for q in held],
           "credence": p, "truth": [bool(q.answer) for q in held]}
    (OUT / f"direct_{args.model}.json").write_text(json.dumps(out))
    print(f"{len(p)} direct answers in {out['seconds']}s")


def cmd_ship(args) -> None:
    """Write the shipped maps of a model (argtree/calibrations/<version>.json) from its train-split pairs.

    The direct map is fitted on the model's P(yes) for train questions against their gold answers (the
    same kind of pairs as held-out questions, none of them held out).  The premise map stays the identity:
    no oracle answered the premises these models grow (the facts oracle settles almost none of them), and
    pairs from gold facts and their rule-made negations are another distribution (a map fitted on them
    made held-out trees worse, see BENCHMARKS.md), so DESIGN's rule holds: an uncalibrated model's
    evidence is what it is, until `argtree calibrate` or the loop fits a map from real answers."""
    from argtree.calibration import IDENTITY, fit, shipped_file
    from argtree.model_evidence import ModelCalibration

    d = json.loads((OUT / f"pairs_{args.model}.json").read_text())
    direct = fit(d["direct"]["credence"], d["direct"]["truth"], "auto")
    direct = type(direct)(direct.method, direct.a, direct.b, direct.x, direct.y, direct.n,
                          {**dict(direct.meta), "pairs": "train-split StrategyQA questions (argtree.questions."
                           "split_heldout), minus those the shipped adapter trained on",
                           "command": f"python bench/heldout_eval.py pairs --model {args.model} --n 600 && "
                                      f"python bench/heldout_eval.py ship --model {args.model}"})
    mc = ModelCalibration(IDENTITY, direct)
    path = shipped_file(d["model"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mc.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: direct {direct.to_dict()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("grow")
    g.add_argument("--model", default="adapter")
    g.add_argument("--n", type=int, default=120)
    g.add_argument("--budget", type=int, default=1)
    g.add_argument("--chunk", type=int, default=8)
    g.add_argument("--pool", choices=["heldout", "seen"], default="heldout",
                   help="seen: train questions the shipped adapter trained on (hand-check pool only)")
    g.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("pairs")
    p.add_argument("--model", default="adapter")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    d = sub.add_parser("direct")
    d.add_argument("--model", default="adapter")
    d.add_argument("--seed", type=int, default=0)
    sh = sub.add_parser("ship")
    sh.add_argument("--model", default="adapter")
    r = sub.add_parser("report")
    r.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    {"grow": cmd_grow, "pairs": cmd_pairs, "direct": cmd_direct, "ship": cmd_ship,
     "report": lambda a: __import__("heldout_report").report(a)}[args.cmd](args)


if __name__ == "__main__":
    main()
