"""Labeled yes/no questions: load them, split them for good, and score the model and its trees on them.

``argtree eval --questions FILE`` and ``argtree improve`` both stand on this.

Files: a JSON list or JSONL of ``{"question": str, "answer": bool}`` (extra
keys kept; ``qid`` or ``id`` name a question, ``facts`` are its gold facts);
StrategyQA's own files are such lists and are read as they are.

The held-out split is fixed by a hash of the question's id, never by chance:
``heldout_value(qid)`` = the first 8 bytes of sha256("argtree-heldout:" + qid)
as a number in [0, 1); a question is held out when that is >= 1 - share
(``HELDOUT_SHARE`` = 0.15).  The id is ``qid`` (StrategyQA), else ``id``, else
the normalized question text.  The same question is held out in every run,
every round and every file that contains it.

Per question, three numbers for the root (DESIGN.md): the model's ``direct``
answer (its P(yes) for the question, calibrated), the ``tree``'s belief
(model evidence + oracle labels) and ``labels_only``.  Aggregates carry 95%
percentile-bootstrap intervals over questions (seeded); the paired difference
tree - direct is bootstrapped on per-question differences.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .evaluate import brier, ece, log_loss
from .expand import normalize
from .model_evidence import NONE as NO_CALIBRATION, ModelCalibration, recalibrate, root_numbers
from .tree import ArgumentTree, Evidence, TreeError

__all__ = ["Question", "QuestionError", "HELDOUT_SHARE", "load_questions", "parse_questions", "heldout_value",
           "split_heldout", "Grown", "grow_questions", "oracle_answers", "score_question", "summarize",
           "bootstrap", "evaluate_questions"]

HELDOUT_SHARE = 0.15
MAX_QUESTION = 2000


class QuestionError(ValueError):
    """A questions file that cannot be used; the message names the record and the field."""


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answer: bool | None = None
    facts: tuple[str, ...] = ()
    decomposition: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)


def _record(raw: Any, i: int, where: str) -> Question:
    if not isinstance(raw, dict):
        raise QuestionError(f"{where} record {i}: must be an object with 'question' and 'answer'")
    q = raw.get("question")
    if not isinstance(q, str) or not q.strip():
        raise QuestionError(f"{where} record {i}: field 'question' must be a non-empty string")
    if len(q) > MAX_QUESTION:
        raise QuestionError(f"{where} record {i}: field 'question' is {len(q)} characters; at most {MAX_QUESTION}")
    ans = raw.get("answer")
    if ans is not None and not isinstance(ans, bool):
        raise QuestionError(f"{where} record {i}: field 'answer' must be true or false, got {ans!r}")
    qid = raw.get("qid", raw.get("id"))
    qid = str(qid) if qid is not None else normalize(q)
    facts = raw.get("facts") or ()
    if not isinstance(facts, (list, tuple)) or not all(isinstance(f, str) for f in facts):
        raise QuestionError(f"{where} record {i}: field 'facts' must be a list of strings")
    dec = raw.get("decomposition") or ()
    dec = tuple(d for d in dec if isinstance(d, str)) if isinstance(dec, (list, tuple)) else ()
    extra = {k: v for k, v in raw.items() if k not in ("qid", "id", "question", "answer", "facts", "decomposition")}
    return Question(qid, q.strip(), ans, tuple(facts), dec, extra)


def parse_questions(text: str, where: str = "questions") -> list[Question]:
    """A JSON list (StrategyQA's files) or JSONL of question records."""
    stripped = text.lstrip()
    if not stripped:
        raise QuestionError(f"{where} is empty")
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise QuestionError(f"{where}: not JSON or JSONL ({err.msg} at line {err.lineno})") from None
    except (ValueError, RecursionError) as err:
        raise QuestionError(f"{where}: not readable JSON ({err})") from None
    out = [_record(r, i, where) for i, r in enumerate(rows, 1)]
    seen: dict[str, int] = {}
    for i, q in enumerate(out, 1):
        if q.qid in seen:
            raise QuestionError(f"{where} record {i}: id {q.qid!r} repeats record {seen[q.qid]}")
        seen[q.qid] = i
    if not out:
        raise QuestionError(f"{where} has no questions")
    return out


def load_questions(path: str | os.PathLike) -> list[Question]:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise QuestionError(f"cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise QuestionError(f"{path!r} is not UTF-8 text") from None
    return parse_questions(text, path)


def heldout_value(qid: str) -> float:
    digest = hashlib.sha256(("argtree-heldout:" + qid).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_heldout(questions: Sequence[Question], share: float = HELDOUT_SHARE) -> tuple[list[Question], list[Question]]:
    """(train, held out) by the hash of each question's id (module doc)."""
    if not 0.0 < share < 1.0:
        raise QuestionError(f"the held-out share must be strictly between 0 and 1, got {share}")
    held = [q for q in questions if heldout_value(q.qid) >= 1.0 - share]
    ids = {q.qid for q in held}
    return [q for q in questions if q.qid not in ids], held


# -- growing and scoring ---------------------------------------------------------

@dataclass
class Grown:
    """One question's direct answer (raw) and its grown tree with the model evidence recorded."""

    question: Question
    direct_raw: float | None
    tree: ArgumentTree | None = None
    evidence: tuple[Evidence, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def grow_questions(backend, questions: Sequence[Question], *, budget: int = 1, calibration: ModelCalibration = NO_CALIBRATION,
                   grow_config=None, progress: Callable[[int, int], None] | None = None) -> list[Grown]:
    """Direct answers for all questions in batched calls, then a tree per question (``budget`` expansions)."""
    from .expand import direct_prompt
    from .grow import GrowConfig, grow

    direct: list[float | None] = []
    for i in range(0, len(questions), 32):
        chunk = questions[i:i + 32]
        try:
            direct.extend(float(x) for x in backend.score_yes([direct_prompt(q.question) for q in chunk]))
        except Exception:  # noqa: BLE001 - a failed direct answer is missing, never 0.5
            direct.extend([None] * len(chunk))
    out: list[Grown] = []
    for i, (q, d) in enumerate(zip(questions, direct)):
        g = Grown(q, d)
        if budget > 0:
            cfg = replace(grow_config or GrowConfig(), expansions=budget, direct=False)
            t0 = time.perf_counter()
            res = grow(q.question, backend, cfg, calibration=calibration)
            g.seconds = time.perf_counter() - t0
            meta = dict(res.tree.meta)
            if d is not None:
                from .model_evidence import direct_record

                meta["direct"] = direct_record(d, calibration.direct_map)
            g.tree = ArgumentTree(res.tree.nodes.values(), meta)
            g.evidence, g.stats, g.rejected = res.evidence, dict(res.stats), list(res.rejected)
        out.append(g)
        if progress:
            progress(i + 1, len(questions))
    return out


def oracle_answers(tree: ArgumentTree, evidence: Sequence[Evidence], oracle, question: Question, k: int, *,
                   policy: str = "voi", seed: int = 0, model: str = "frontier") -> tuple[list[Evidence], dict[str, Any]]:
    """Ask ``oracle`` about premises in ``policy`` order (VoI, recomputed after each answer, or a seeded
    random order) until ``k`` are answered or none are left; abstentions cost an ask, not an answer."""
    from .oracle import Query
    from .voi import voi

    labels: list[Evidence] = []
    asked: set[str] = set()
    log = {"asked": 0, "answered": 0, "abstained": 0, "answers": []}
    order = [n for n in tree.nodes if n != tree.root]
    random.Random(f"{seed}:{question.qid}").shuffle(order)
    while len(labels) < k:
        if policy == "voi":
            scores = voi(tree, tuple(evidence) + tuple(labels), model=model)
            cands = sorted((n for n in scores if n not in asked), key=lambda n: (-round(scores[n], 12), n))
        elif policy == "random":
            cands = [n for n in order if n not in asked]
        else:
            raise ValueError(f"policy must be 'voi' or 'random', got {policy!r}")
        if not cands:
            break
        nid = cands[0]
        asked.add(nid)
        log["asked"] += 1
        ans = oracle.answer([Query(tree[nid].text, node=nid, question=question.question, facts=question.facts)])[0]
        if ans is None or ans.value is None:
            log["abstained"] += 1
            continue
        rel = float(getattr(oracle, "reliability", 1.0))
        labels.append(Evidence(nid, bool(ans.value), rel, {"source": getattr(oracle, "name", "oracle")}))
        log["answered"] += 1
        log["answers"].append({"node": nid, "value": bool(ans.value), "text": tree[nid].text})
    return labels, log


def score_question(g: Grown, *, calibration: ModelCalibration | None = None, model: str = "frontier", oracle=None,
                   k: int = 0, policy: str = "voi", seed: int = 0) -> dict[str, Any]:
    """The three root numbers of one grown question (optionally recalibrated, with ``k`` oracle answers)."""
    q = g.question
    rec: dict[str, Any] = {"qid": q.qid, "question": q.question, "answer": q.answer, "direct_raw": g.direct_raw}
    direct = g.direct_raw
    if direct is not None and calibration is not None:
        direct = float(calibration.direct_map(direct))
    elif g.tree is not None and isinstance(g.tree.meta.get("direct"), Mapping):
        direct = g.tree.meta["direct"].get("calibrated", direct)
    rec["direct"] = direct
    if g.tree is None:
        return rec
    ev = tuple(g.evidence) if calibration is None else recalibrate(g.tree, g.evidence, calibration.premise)
    labels, log = ([], None) if oracle is None or k <= 0 else oracle_answers(g.tree, ev, oracle, q, k, policy=policy,
                                                                               seed=seed, model=model)
    nums = root_numbers(g.tree, ev + tuple(labels), model)
    rec.update(tree=nums["tree"], labels_only=nums["labels_only"], nodes=len(g.tree))
    if log is not None:
        rec["oracle"] = log
    return rec


def bootstrap(values: np.ndarray, seed: int = 0, n: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _metrics(p: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    correct = ((p >= 0.5) == (y == 1)).astype(float)
    sq = (p - y) ** 2
    q = np.clip(p, 1e-6, 1 - 1e-6)
    ll = -(y * np.log(q) + (1 - y) * np.log(1 - q))
    return {"accuracy": float(correct.mean()), "accuracy_ci": bootstrap(correct, seed),
            "brier": brier(p, y), "brier_ci": bootstrap(sq, seed),
            "log_loss": log_loss(p, y), "log_loss_ci": bootstrap(ll, seed),
            "ece": ece(p, y), "mean_p": float(p.mean())}


def summarize(records: Sequence[Mapping[str, Any]], keys: Iterable[str] = ("direct", "tree"), seed: int = 0,
              baseline: str = "direct") -> dict[str, Any]:
    """Aggregates with intervals for each key, over the records that have an answer and every key."""
    keys = list(keys)
    rows = [r for r in records if r.get("answer") is not None and all(r.get(k) is not None for k in keys)]
    out: dict[str, Any] = {"n": len(rows), "share_yes": float(np.mean([r["answer"] for r in rows])) if rows else None}
    if not rows:
        return out
    y = np.array([1.0 if r["answer"] else 0.0 for r in rows])
    for key in keys:
        p = np.array([float(r[key]) for r in rows])
        out[key] = _metrics(p, y, seed)
        if key != baseline and baseline in keys:
            b = np.array([float(r[baseline]) for r in rows])
            diff = (p - y) ** 2 - (b - y) ** 2
            out[key][f"brier_minus_{baseline}"] = float(diff.mean())
            out[key][f"brier_minus_{baseline}_ci"] = bootstrap(diff, seed)
    return out


def evaluate_questions(backend, questions: Sequence[Question], *, budget: int = 1, oracle=None, answers: int = 0,
                       policy: str = "voi", seed: int = 0, calibration: ModelCalibration = NO_CALIBRATION,
                       model: str = "frontier", grow_config=None,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Direct answers and (``budget`` > 0) grown trees, with ``answers`` oracle answers each; aggregates."""
    if not questions:
        raise QuestionError("no questions to evaluate")
    grown = grow_questions(backend, questions, budget=budget, calibration=calibration, grow_config=grow_config,
                           progress=progress)
    records = []
    for g in grown:
        rec = score_question(g, calibration=calibration, model=model, oracle=oracle, k=answers, policy=policy,
                             seed=seed)
        if g.tree is not None:
            from .io import to_dict

            rec["tree_json"] = to_dict(g.tree, g.evidence)
            rec["seconds"] = round(g.seconds, 3)
        records.append(rec)
    keys = ["direct"] + (["tree"] if budget > 0 else [])
    summary = summarize(records, keys, seed)
    summary["n_questions"] = len(questions)
    summary["budget"] = budget
    summary["answers"] = answers
    if oracle is not None and answers > 0:
        asked = sum(r.get("oracle", {}).get("asked", 0) for r in records)
        answered = sum(r.get("oracle", {}).get("answered", 0) for r in records)
        summary["oracle"] = {"asked": asked, "answered": answered,
                             "abstention_rate": (1 - answered / asked) if asked else None}
    summary["records"] = records
    return summary
