"""Tables for bench/heldout_eval.py: every condition scored on the same grown trees (paired).

    python bench/heldout_eval.py report

Reads bench/results/heldout/{MODEL}.jsonl (grown trees) and pairs_{MODEL}.json (train-split calibration
pairs), fits the maps, and scores: the direct answer raw and calibrated; the tree with model evidence
uncalibrated and calibrated; the tree plus K = 1, 2, 3 oracle answers (the honest facts oracle), picked by
VoI or at random; and, where `heldout_eval.py direct` ran, the direct answer alone on every clean
held-out question.  Writes bench/results/heldout/report.{md,json} (BENCHMARKS.md quotes them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argtree.calibration import IDENTITY, fit  # noqa: E402
from argtree.io import from_dict  # noqa: E402
from argtree.model_evidence import ModelCalibration  # noqa: E402
from argtree.oracle import FactsOracle  # noqa: E402
from argtree.questions import Grown, load_questions, score_question, summarize  # noqa: E402
from argtree.strategyqa import default_path  # noqa: E402

OUT = ROOT / "bench" / "results" / "heldout"
KS = (1, 2, 3)


def _grown(path: Path) -> list[Grown]:
    qs = {q.qid: q for q in load_questions(default_path())}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        tree, ev = from_dict(r["tree"])
        out.append(Grown(qs[r["qid"]], r["direct_raw"], tree, ev, r.get("stats", {}), r.get("rejected", []),
                         r.get("seconds", 0.0)))
    return out


def _maps(model: str) -> tuple[ModelCalibration, dict]:
    d = json.loads((OUT / f"pairs_{model}.json").read_text())
    prem = fit(d["premise"]["credence"], d["premise"]["truth"], "auto")
    direct = fit(d["direct"]["credence"], d["direct"]["truth"], "auto")
    info = {"premise_pairs": len(d["premise"]["credence"]), "direct_pairs": len(d["direct"]["credence"]),
            "premise_map": prem.to_dict(), "direct_map": direct.to_dict()}
    return ModelCalibration(prem, direct), info


def _premise_quality(grown: list[Grown]) -> dict:
    import re

    neg = re.compile(r"\b(not|no|never|n't|cannot)\b", re.I)
    texts = [g.tree[n].text for g in grown for n in g.tree.nodes if n != g.tree.root]
    rejected = sum(len(g.rejected) for g in grown)
    return {"premises": len(texts), "per_tree": len(texts) / max(len(grown), 1),
            "share_negations": float(np.mean([bool(neg.search(t)) for t in texts])) if texts else None,
            "rejected_by_guards": rejected,
            "share_rejected": rejected / max(rejected + len(texts), 1)}


def report(args) -> dict:
    doc = {"models": {}}
    lines = []
    for model in ("adapter", "bundled"):
        path = OUT / f"{model}.jsonl"
        if not path.exists() or not (OUT / f"pairs_{model}.json").exists():
            continue
        grown = _grown(path)
        cal, info = _maps(model)
        recs: dict[str, list[dict]] = {}
        base = [score_question(g) for g in grown]                       # as grown: identity maps
        calib = [score_question(g, calibration=cal) for g in grown]
        rows = []
        for b, c in zip(base, calib):
            rows.append({"qid": b["qid"], "answer": b["answer"], "direct raw": b["direct"], "direct calibrated": c["direct"],
                         "tree (model evidence, uncalibrated premises)": b["tree"],
                         "tree (premise map fitted on facts/negations)": c["tree"],
                         "labels only (prior)": b["labels_only"]})
        oracle_log = {}
        shipped = ModelCalibration(IDENTITY, cal.direct)  # what argtree ships: identity premise map
        for policy in ("voi", "random"):
            for k in KS:
                o = FactsOracle()
                scored = [score_question(g, calibration=shipped, oracle=o, k=k, policy=policy, seed=args.seed)
                          for g in grown]
                key = f"tree (uncalibrated premises) + {k} oracle answer(s), {policy}"
                for row, s in zip(rows, scored):
                    row[key] = s["tree"]
                asked = sum(s["oracle"]["asked"] for s in scored)
                answered = sum(s["oracle"]["answered"] for s in scored)
                oracle_log[key] = {"asked": asked, "answered": answered, "reasons": dict(o.reasons)}
        keys = [k for k in rows[0] if k not in ("qid", "answer")]
        summary = summarize(rows, keys, args.seed, baseline="direct calibrated")
        raw_vs = summarize(rows, ["direct raw", "tree (model evidence, uncalibrated premises)",
                                  "tree (premise map fitted on facts/negations)"],
                           args.seed, baseline="direct raw")
        doc["models"][model] = {"n": summary["n"], "share_yes": summary["share_yes"], "calibration": info,
                                "summary": summary, "vs_raw_direct": raw_vs, "oracle": oracle_log,
                                "premises": _premise_quality(grown),
                                "seconds_per_tree": float(np.mean([g.seconds for g in grown]))}
        lines += [f"**{model}** ({grown[0].tree.meta.get('model_version', model)}): {summary['n']} held-out questions "
                  f"(share yes {summary['share_yes']:.2f}); premises {doc['models'][model]['premises']}", "",
                  "| root number | accuracy [95% CI] | Brier [95% CI] | log loss | ECE | Brier − calibrated direct [95% CI] |",
                  "|---|---|---|---|---|---|"]
        for k in keys:
            r = summary[k]
            diff = (f"{r['brier_minus_direct calibrated']:+.4f} [{r['brier_minus_direct calibrated_ci'][0]:+.4f}, "
                    f"{r['brier_minus_direct calibrated_ci'][1]:+.4f}]") if "brier_minus_direct calibrated" in r else "—"
            lines.append(f"| {k} | {r['accuracy']:.3f} [{r['accuracy_ci'][0]:.3f}, {r['accuracy_ci'][1]:.3f}] | "
                         f"{r['brier']:.4f} [{r['brier_ci'][0]:.4f}, {r['brier_ci'][1]:.4f}] | {r['log_loss']:.4f} | "
                         f"{r['ece']:.4f} | {diff} |")
        t = raw_vs["tree (model evidence, uncalibrated premises)"]
        lines += ["", f"Tree (uncalibrated) − raw direct: {t['brier_minus_direct raw']:+.4f} "
                      f"[{t['brier_minus_direct raw_ci'][0]:+.4f}, {t['brier_minus_direct raw_ci'][1]:+.4f}].  "
                      f"Oracle: " + "; ".join(f"{k.split(' + ')[1]}: {v['answered']}/{v['asked']} answered"
                                             for k, v in oracle_log.items() if k.endswith("voi")), ""]
    direct_rows = []
    for model in ("adapter", "bundled"):
        path, pairs = OUT / f"direct_{model}.json", OUT / f"pairs_{model}.json"
        if not path.exists() or not pairs.exists():
            continue
        d = json.loads(path.read_text())
        cal, _ = _maps(model)
        rows = [{"answer": t, "raw": c, "calibrated": float(cal.direct_map(c)), "coin": 0.5}
                for c, t in zip(d["credence"], d["truth"])]
        s = summarize(rows, ["coin", "raw", "calibrated"], args.seed, baseline="coin")
        from sklearn.metrics import roc_auc_score

        s["auc_raw"] = float(roc_auc_score(d["truth"], d["credence"]))
        s["share_p_above_half_raw"] = float(np.mean(np.array(d["credence"]) > 0.5))
        doc.setdefault("direct_all_heldout", {})[model] = s
        for k in ("raw", "calibrated"):
            r = s[k]
            direct_rows.append(f"| {model} ({d['model']}) | {k} | {s['n']} | {r['accuracy']:.3f} | {r['brier']:.4f} "
                               f"[{r['brier_ci'][0]:.4f}, {r['brier_ci'][1]:.4f}] | {r['brier_minus_coin']:+.4f} "
                               f"[{r['brier_minus_coin_ci'][0]:+.4f}, {r['brier_minus_coin_ci'][1]:+.4f}] | "
                               f"{s['auc_raw']:.3f} | {s['share_p_above_half_raw']:.2f} |")
    if direct_rows:
        lines += ["**The direct answer on every clean held-out question**", "",
                  "| model | direct | n | accuracy | Brier [95% CI] | Brier − constant 0.5 [95% CI] | AUC (raw) | "
                  "share P(yes) > 0.5 (raw) |", "|---|---|---|---|---|---|---|---|"] + direct_rows + [""]
    (OUT / "report.json").write_text(json.dumps(doc, indent=1))
    md = "\n".join(lines) + "\n"
    (OUT / "report.md").write_text(md)
    print(md)
    return doc
