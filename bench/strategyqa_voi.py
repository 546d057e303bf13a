"""StrategyQA: the model's direct answer vs the tree it grows vs a few oracle answers.

    .venv/bin/python bench/strategyqa_voi.py --n 30 --seed 0          # run and write the results
    .venv/bin/python bench/strategyqa_voi.py --report                 # re-print the stored results

For each question of a seeded subset of ../shared/data/strategyqa/train.json (the root is
the question, the gold answer is the truth):

(a) direct:  the model's P(yes) for the question itself (``score_yes``: first-token
    log-probabilities of Yes vs No).
(b) tree:    ``argtree.grow`` grows a tree (``--expansions``; 1 = the root's premises for
    and against); every premise carries the model's own credence c as *virtual
    evidence* (a soft label whose likelihood ratio would, alone, move the premise's
    marginal in the tree to c).  Without that the tree's root belief is just its
    prior (0.5, the grow default), whatever the premises say: reported as "tree, no
    evidence".
(c) oracle:  k = 1, 2, 3 premises, picked by VoI (shift) given the evidence so far, get
    the dataset oracle's hard label, which replaces the model's soft one.  The same
    with k premises picked at random (seeded) is the baseline; "all" labels every premise.

The dataset oracle is a model-as-judge: the same model reads the question's gold
facts and decomposition and answers whether the premise is true (P(yes) >= 0.5).
Its own accuracy is measured against hand labels of a sample of premises stored in
bench/results/strategyqa_handcheck.json (written by ``--handcheck-sample`` for a
person to fill in: true, false or "undecidable", judged by the gold facts and common
knowledge; see BENCHMARKS.md).

Accuracy: P(root) > 0.5 matches the gold answer (0.5 counts one half).  Brier:
(P(root) - answer)^2.  Intervals: 95% percentile bootstrap over questions (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from argtree.strategyqa import default_path  # noqa: E402
DATA = Path(default_path())
OUT = ROOT / "bench" / "results" / "strategyqa_voi.json"
HANDCHECK = ROOT / "bench" / "results" / "strategyqa_handcheck.json"
KS = (1, 2, 3)


def direct_prompt(question: str) -> str:
    return f"Answer the question with Yes or No.\nQuestion: {question}"


def judge_prompt(rec: dict, premise: str) -> str:
    facts = "\n".join(f"- {f}" for f in rec["facts"])
    steps = "\n".join(f"- {d}" for d in rec.get("decomposition", []))
    return (f"Facts:\n{facts}\nSteps to answer \"{rec['question']}\":\n{steps}\n\n"
            f"Using only the facts above, is the following statement true? Answer Yes or No.\n"
            f"Statement: {premise}")


def virtual_evidence(tree, credences: dict[str, float]):
    """Soft labels that would, one at a time, set each premise's marginal to the model's credence."""
    from argtree.inference import beliefs
    from argtree.tree import Evidence

    prior = beliefs(tree)
    out = []
    for nid, c in credences.items():
        m = min(max(prior[nid], 1e-9), 1 - 1e-9)
        lr = (c / (1 - c)) / (m / (1 - m))
        if abs(lr - 1.0) < 1e-12:
            continue
        a = lr / (1 + lr) if lr > 1 else 1 / (1 + lr)
        out.append(Evidence(nid, lr > 1, min(a, 1 - 1e-9), extra={"source": "model credence"}))
    return out


def root_belief(tree, evidence) -> float:
    from argtree.inference import propagate

    return float(propagate(tree, evidence).root_belief)


def oracle_path(tree, soft, labels: dict[str, bool], k: int, order: str, rng) -> list[float]:
    """Root belief after 1..k oracle labels; premises picked by VoI (shift) or at random."""
    from argtree.tree import Evidence
    from argtree.voi import rank, voi

    answered: dict[str, bool] = {}
    out = []
    for _ in range(k):
        evidence = [e for e in soft if e.node not in answered] + [Evidence(n, v) for n, v in answered.items()]
        left = [n for n in labels if n not in answered]
        if not left:
            out.append(out[-1] if out else root_belief(tree, evidence))
            continue
        if order == "voi":
            scores = voi(tree, evidence, "shift")
            pick = rank({n: scores.get(n, 0.0) for n in left})[0][0]
        else:
            pick = left[int(rng.integers(len(left)))]
        answered[pick] = labels[pick]
        evidence = [e for e in soft if e.node not in answered] + [Evidence(n, v) for n, v in answered.items()]
        out.append(root_belief(tree, evidence))
    return out


def run_direct(args) -> dict:
    """(a) only, on a larger subset: one forward pass per question, so it fits where growing does not."""
    from argtree import strategyqa
    from argtree.llm import make_backend

    records = strategyqa.load(args.data)
    rng = np.random.default_rng(args.seed)
    subset = [records[i] for i in rng.choice(len(records), size=args.direct_only, replace=False)]
    options = {"threads": args.threads} if args.backend == "local" else {}
    backend = make_backend(args.backend, args.model or ("bundled" if args.backend == "local" else None), **options)
    t0 = time.perf_counter()
    p = backend.score_yes([direct_prompt(r["question"]) for r in subset])
    y = np.array([r["answer"] for r in subset])
    p = np.array(p)
    doc = {"command": " ".join(["bench/strategyqa_voi.py"] + sys.argv[1:]), "n": len(subset), "seed": args.seed,
           "model": backend.model_version, "seconds": round(time.perf_counter() - t0, 1),
           "accuracy": _boot(_acc(p, y), args.seed), "brier": _boot((p - y) ** 2, args.seed),
           "mean_p_yes": float(p.mean()), "share_p_yes_above_half": float((p > 0.5).mean()),
           "gold_yes_share": float(y.mean())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def run(args) -> dict:
    from argtree import strategyqa
    from argtree.grow import GrowConfig, grow
    from argtree.llm import make_backend
    from argtree.tree import Evidence

    records = strategyqa.load(args.data)
    rng = np.random.default_rng(args.seed)
    subset = [records[i] for i in rng.choice(len(records), size=args.n, replace=False)]
    t0 = time.perf_counter()
    options = {"threads": args.threads} if args.backend == "local" else {}
    backend = make_backend(args.backend, args.model or ("bundled" if args.backend == "local" else None), **options)
    load_s = time.perf_counter() - t0
    cfg = GrowConfig(expansions=args.expansions, seed=args.seed, max_new_tokens=args.max_new_tokens)
    rows = []
    for i, rec in enumerate(subset):
        if args.max_minutes and time.perf_counter() - t0 > 60 * args.max_minutes:
            print(f"time budget of {args.max_minutes} min spent: stopping after {i} of {len(subset)} questions")
            break
        t1 = time.perf_counter()
        direct = backend.score_yes([direct_prompt(rec["question"])])[0]
        grown = grow(rec["question"], backend, cfg)
        tree = grown.tree
        premises = [n for n in tree.nodes if n != tree.root]
        credences = {n: float(tree[n].extra.get("credence", 0.5)) for n in premises}
        judge_p = dict(zip(premises, backend.score_yes([judge_prompt(rec, tree[n].text) for n in premises]))) \
            if premises else {}
        labels = {n: p >= 0.5 for n, p in judge_p.items()}
        soft = virtual_evidence(tree, credences) if premises else []
        qrng = np.random.default_rng([args.seed, i])
        row = {
            "qid": rec["qid"], "question": rec["question"], "answer": rec["answer"],
            "direct": direct,
            "tree_no_evidence": root_belief(tree, []),
            "tree": root_belief(tree, soft),
            "voi": oracle_path(tree, soft, labels, max(KS), "voi", qrng),
            "random": oracle_path(tree, soft, labels, max(KS), "random", qrng),
            "all": root_belief(tree, [Evidence(n, v) for n, v in labels.items()]),
            "premises": [{"id": n, "text": tree[n].text, "parent": tree[n].parent, "stance": tree[n].stance,
                          "credence": credences[n], "p_if_true": tree[n].p_if_true,
                          "p_if_false": tree[n].p_if_false, "judge_p_yes": judge_p[n]} for n in premises],
            "stop_reason": grown.stop_reason, "failed_expansions": len(grown.failures),
            "seconds": round(time.perf_counter() - t1, 1),
        }
        rows.append(row)
        print(f"[{i + 1}/{len(subset)}] {row['seconds']:.0f}s answer={rec['answer']} direct={direct:.2f} "
              f"tree={row['tree']:.2f} voi@3={row['voi'][-1]:.2f} premises={len(premises)}", flush=True)
        if args.out:  # keep partial results: the run is long
            _write(args, rows, load_s, backend, t0)
    return _write(args, rows, load_s, backend, t0)


def _write(args, rows, load_s, backend, t0) -> dict:
    doc = {"command": " ".join(["bench/strategyqa_voi.py"] + sys.argv[1:]),
           "config": {"n": args.n, "done": len(rows), "seed": args.seed, "expansions": args.expansions,
                      "backend": args.backend,
                      "model": backend.model_version, "max_minutes": args.max_minutes,
                      "max_new_tokens": args.max_new_tokens, "threads": args.threads},
           "load_seconds": round(load_s, 1), "total_seconds": round(time.perf_counter() - t0, 1),
           "tokens_generated": getattr(backend, "tokens_generated", None), "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


# -- scoring ----------------------------------------------------------------

def _acc(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(p == 0.5, 0.5, ((p > 0.5) == y).astype(float))


def _boot(x: np.ndarray, seed: int, n: int = 4000) -> tuple[float, float, float]:
    idx = np.random.default_rng(seed).integers(0, len(x), (n, len(x)))
    means = x[idx].mean(axis=1)
    return float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def conditions(doc: dict) -> dict[str, np.ndarray]:
    rows = doc["rows"]
    out = {"(a) direct answer": np.array([r["direct"] for r in rows]),
           "(b) tree, no evidence": np.array([r["tree_no_evidence"] for r in rows]),
           "(b) tree + model credences": np.array([r["tree"] for r in rows])}
    for k in KS:
        out[f"(c) k={k}, VoI"] = np.array([r["voi"][k - 1] for r in rows])
    for k in KS:
        out[f"(c) k={k}, random"] = np.array([r["random"][k - 1] for r in rows])
    out["(c) every premise judged"] = np.array([r["all"] for r in rows])
    return out


def report(doc: dict, seed: int = 0) -> str:
    rows = doc["rows"]
    y = np.array([r["answer"] for r in rows])
    direct = np.array([r["direct"] for r in rows])
    lines = [f"{len(rows)} questions (the first {len(rows)} of a {doc['config']['n']}-question subset, seed "
             f"{doc['config']['seed']}), model {doc['config']['model']}, "
             f"expansions {doc['config']['expansions']}; {doc['total_seconds'] / 60:.0f} min in all "
             f"({doc['total_seconds'] / max(len(rows), 1):.0f} s per question); "
             f"{np.mean([len(r['premises']) for r in rows]):.1f} premises per tree; gold 'yes' share "
             f"{y.mean():.2f}.", "",
             "| condition | accuracy [95% CI] | Brier [95% CI] | Brier − direct [95% CI] |", "|---|---|---|---|"]
    for name, p in conditions(doc).items():
        a = _boot(_acc(p, y), seed)
        b = _boot((p - y) ** 2, seed)
        d = _boot((p - y) ** 2 - (direct - y) ** 2, seed)
        lines.append(f"| {name} | {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] | {b[0]:.3f} [{b[1]:.3f}, {b[2]:.3f}] | "
                     f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |")
    judged = [p for r in rows for p in r["premises"]]
    if judged:
        yes = np.mean([p["judge_p_yes"] >= 0.5 for p in judged])
        lines += ["", f"Judge said yes to {yes:.0%} of {len(judged)} premises."]
    if HANDCHECK.exists():
        lines.append(handcheck_summary(json.loads(HANDCHECK.read_text())))
    return "\n".join(lines) + "\n"


def handcheck_summary(items: list[dict]) -> str:
    done = [i for i in items if i.get("hand") in (True, False, "undecidable")]
    dec = [i for i in done if i["hand"] in (True, False)]
    if not dec:
        return "Hand check: no hand labels yet."
    agree = np.array([(i["judge_p_yes"] >= 0.5) == i["hand"] for i in dec], dtype=float)
    m, lo, hi = _boot(agree, 0)
    base = np.mean([i["hand"] for i in dec])
    return (f"Hand check of the judge: {len(done)} premises read by hand, {len(done) - len(dec)} not decidable "
            f"(fragments, gibberish, invented entities, nothing to check); on the {len(dec)} decidable ones "
            f"(gold facts plus common knowledge) the judge agrees with the hand label {m:.0%} "
            f"[{lo:.0%}, {hi:.0%}] of the time (hand-label 'true' share {base:.0%}).")


def handcheck_sample(doc: dict, size: int, seed: int) -> None:
    """Write a seeded sample of judged premises, with the gold facts, for a person to label ("hand")."""
    items = [(r, p) for r in doc["rows"] for p in r["premises"]]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(size, len(items)), replace=False)
    data = json.loads(DATA.read_text())
    facts = {rec["qid"]: rec["facts"] for rec in data}
    old = {(i["qid"], i["premise"]): i for i in json.loads(HANDCHECK.read_text())} if HANDCHECK.exists() else {}
    out = []
    for j in sorted(pick):
        r, p = items[j]
        prev = old.get((r["qid"], p["text"]), {})
        out.append({"qid": r["qid"], "question": r["question"], "facts": facts[r["qid"]], "premise": p["text"],
                    "judge_p_yes": p["judge_p_yes"], "hand": prev.get("hand"), "note": prev.get("note", "")})
    HANDCHECK.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(out)} premises to {HANDCHECK}; set each 'hand' to true, false or \"undecidable\"")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="questions in the seeded subset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--expansions", type=int, default=1, help="grow budget: nodes the model expands")
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--backend", default="local", choices=["local", "openai", "fake"],
                    help="argtree.llm backend (fake: scripted, for tests of this script)")
    ap.add_argument("--model", default=None, help="model for argtree.llm (default for --backend local: the bundled SmolLM2-135M base)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop starting new questions after this long (the subset's order is fixed, so the "
                         "questions done are the first K of the same subset)")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report", action="store_true", help="only print the table from --out")
    ap.add_argument("--direct-only", type=int, default=0, metavar="N",
                    help="only (a), the direct answer, on a seeded subset of N questions (write to --out)")
    ap.add_argument("--handcheck-sample", type=int, default=0, metavar="N",
                    help="write N judged premises from --out to the hand-check file (keeps existing labels)")
    args = ap.parse_args(argv)
    if args.direct_only:
        print(json.dumps(run_direct(args), indent=1))
        return 0
    if args.report or args.handcheck_sample:
        doc = json.loads(Path(args.out).read_text())
        if args.handcheck_sample:
            handcheck_sample(doc, args.handcheck_sample, args.seed)
        else:
            print(report(doc, args.seed))
        return 0
    print(report(run(args), args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
