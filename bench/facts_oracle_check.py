"""The honest dataset oracle, checked by hand: which grown premises it answered, and how often it was right.

    python bench/facts_oracle_check.py list            # premises the oracle answered, for labeling
    python bench/facts_oracle_check.py report          # accuracy vs the committed hand labels, with intervals

Premises come from the grown trees in bench/results/heldout/ (adapter.jsonl: held-out questions;
adapter_seen.jsonl: train questions the shipped adapter trained on, where it writes facts it memorized,
so the oracle has something to answer).  Hand labels: bench/results/heldout/facts_oracle_handcheck.json,
one per answered premise: "true" (follows from the gold facts and common knowledge), "false" (contradicts
them) or "undecidable", with a note.  Accuracy counts "undecidable" as wrong (the oracle should have
abstained); a Wilson 95% interval.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argtree.io import from_dict  # noqa: E402
from argtree.oracle import FactsOracle, Query  # noqa: E402
from argtree.questions import load_questions  # noqa: E402
from argtree.strategyqa import default_path  # noqa: E402

OUT = ROOT / "bench" / "results" / "heldout"
LABELS = OUT / "facts_oracle_handcheck.json"
POOLS = {"heldout": OUT / "adapter.jsonl", "seen": OUT / "adapter_seen.jsonl"}


def answered() -> tuple[list[dict], dict]:
    qs = {q.qid: q for q in load_questions(default_path())}
    rows, counts = [], {}
    for pool, path in POOLS.items():
        if not path.exists():
            continue
        oracle = FactsOracle()
        asked = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            tree, _ = from_dict(r["tree"])
            q = qs[r["qid"]]
            for nid in tree.nodes:
                if nid == tree.root:
                    continue
                asked += 1
                ans = oracle.answer([Query(tree[nid].text, question=q.question, facts=q.facts)])[0]
                if ans is not None:
                    rows.append({"pool": pool, "qid": q.qid, "question": q.question, "facts": list(q.facts),
                                 "premise": tree[nid].text, "oracle": ans.value, "why": ans.comment})
        counts[pool] = {"asked": asked, "answered": sum(1 for x in rows if x["pool"] == pool),
                        "reasons": oracle.reasons}
    return rows, counts


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def written() -> dict:
    """The rules on premises written and labeled by hand before the oracle saw them."""
    qs = {q.qid: q for q in load_questions(default_path())}
    items = json.loads((OUT / "facts_oracle_written.json").read_text())["items"]
    oracle = FactsOracle()
    rows = []
    for qid, premise, label in items:
        q = qs[qid]
        ans = oracle.answer([Query(premise, question=q.question, facts=q.facts)])[0]
        rows.append({"qid": qid, "premise": premise, "label": label, "oracle": None if ans is None else ans.value})
    answered = [r for r in rows if r["oracle"] is not None]
    right = sum(1 for r in answered if r["label"] in ("true", "false") and (r["label"] == "true") == r["oracle"])
    decidable = [r for r in rows if r["label"] != "undecidable"]
    return {"items": len(rows), "answered": len(answered), "right": right,
            "accuracy": right / len(answered) if answered else None, "wilson95": wilson(right, len(answered)),
            "abstention_rate": 1 - len(answered) / len(rows),
            "decidable_items": len(decidable), "decidable_answered": sum(1 for r in decidable if r["oracle"] is not None),
            "undecidable_answered": sum(1 for r in answered if r["label"] == "undecidable"),
            "wrong": [r for r in answered if not (r["label"] in ("true", "false") and (r["label"] == "true") == r["oracle"])],
            "by_label": {lab: {"n": sum(1 for r in rows if r["label"] == lab),
                               "answered": sum(1 for r in answered if r["label"] == lab)}
                         for lab in ("true", "false", "undecidable")}}


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "report"
    if cmd == "written":
        print(json.dumps(written(), indent=1))
        return
    rows, counts = answered()
    if cmd == "list":
        for i, r in enumerate(rows):
            print(json.dumps({"i": i, **r}, ensure_ascii=False))
        print(json.dumps(counts), file=sys.stderr)
        return
    grown_labels = json.loads(LABELS.read_text())["labels"]
    first_right = sum(1 for x in grown_labels if x["label"] in ("true", "false")
                      and (x["label"] == "true") == x["oracle_first"])
    labels = {x["premise"]: x for x in grown_labels}
    out = {"counts": counts, "grown_first_rules": {"answered": len(grown_labels), "right": first_right,
                                                   "wilson95": wilson(first_right, len(grown_labels))},
           "written": written(), "pools": {}}
    for pool in POOLS:
        got = [(r, labels.get(r["premise"])) for r in rows if r["pool"] == pool]
        missing = [r for r, lab in got if lab is None]
        lab = [(r, x) for r, x in got if x is not None]
        right = sum(1 for r, x in lab if x["label"] in ("true", "false") and (x["label"] == "true") == r["oracle"])
        undecidable = sum(1 for _, x in lab if x["label"] == "undecidable")
        n = len(lab)
        out["pools"][pool] = {"labeled": n, "unlabeled": len(missing), "right": right, "undecidable": undecidable,
                              "accuracy": right / n if n else None, "wilson95": wilson(right, n),
                              "abstention_rate": 1 - counts[pool]["answered"] / counts[pool]["asked"]
                              if counts.get(pool, {}).get("asked") else None}
    allk = sum(p["right"] for p in out["pools"].values())
    alln = sum(p["labeled"] for p in out["pools"].values())
    out["all"] = {"labeled": alln, "right": allk, "accuracy": allk / alln if alln else None,
                  "wilson95": wilson(allk, alln)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
