"""Question proposals (issue 16): what share pass the guards, are yes/no, hold a negation, are answerable.

Two topic sets:

* ``heldout``: StrategyQA terms none of whose questions is in the train split
  (``argtree.propose.heldout_terms``: no training record names them), the topic
  written "term (description)" as in training; the first ``--terms`` by sha256 of the term;
* ``topics``: the 20 topics of ``bench/data/proposal_topics.txt`` (none a StrategyQA term).

Per model, each topic gets one greedy answer to ``propose_questions``' prompt
asking for ``--n`` questions (the exact prompt, schema and token cap; batched;
no sampled retries: the share that passes is the first answer's).  Each
proposal is judged by the guards (``argtree.propose``) and written as one JSON
line.  ``report`` judges the stored proposals again with the current guards
(``--as-run``: the verdicts of the run), adds the hand labels ("could a well-informed person answer it
yes or no?") from ``labels.jsonl`` and prints shares with Wilson 95% intervals.

    .venv/bin/python bench/proposal_quality.py run --model bundled --label base
    .venv/bin/python bench/proposal_quality.py run --model adapter --label default
    .venv/bin/python bench/proposal_quality.py export --out /tmp/proposals.jsonl --limit 300
    .venv/bin/argtree finetune --data /tmp/proposals.jsonl --name proposer-300 ...
    .venv/bin/python bench/proposal_quality.py run --model proposer-300 --label proposer
    .venv/bin/python bench/proposal_quality.py report

Run 2 (BENCHMARKS.md): ``export --bare --facts`` builds the shipped proposer's records; ``run --retries 2``
also runs the loop's proposer (greedy, then sampled retries) and writes what it accepted to
LABEL.loop.jsonl; ``run --terms-offset 20 --topics bench/data/proposal_topics2.txt`` is the second fresh
set; ``report FILES --labels bench/results/proposals/labels2.jsonl [--as-run]`` adds the loop's table.

Run 3: the loop over-generates and selects (``argtree.propose.SAMPLES``, scored by ``question_logprob``);
``run --terms 30 --terms-offset 40 --topics bench/data/proposal_topics3.txt --retries 2`` is the third fresh set,
``--samples 0`` the loop of run 2 on it.  Rows of LABEL.loop.jsonl carry the score; "unused" ones passed but
were not asked.

Run 4: ``export --bare --facts --strict --subjects`` adds records whose topic is a fact's subject alone, a bare
noun phrase as people type a topic ("olive oil"), answered with its fact questions (proposer-v4); a subject that is
a held-out term or a topic of bench/data/proposal_topics*.txt makes none.  ``--terms 25 --terms-offset 15 --topics
bench/data/proposal_topics5.txt`` is the fifth fresh set.

Run 5: ``export ... --labeled bench/results/proposals/labels{,2,3,5}.jsonl --labeled-repeat 3`` adds the loop's own
proposals hand-labeled answerable on our topic sets (never a held-out term's) as records with provenance
(proposer-v5); ``--terms 30 --terms-offset 40 --topics bench/data/proposal_topics6.txt`` is the sixth fresh set.

Run 7: ``export ... --described-repeat 2`` writes each StrategyQA record whose topic is "term (description)" (the
held-out half's form) twice (proposer-v7); ``--terms 40 --topics bench/data/proposal_topics8.txt`` is the eighth set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "proposals"
TOPICS = ROOT / "bench" / "data" / "proposal_topics.txt"


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def topic_sets(n_terms: int, offset: int = 0, topics: Path = TOPICS) -> dict[str, list[tuple[str, str]]]:
    """{"heldout": [(term, topic)], "topics": [(topic, topic)]}: held-out terms ``offset`` .. ``offset + n_terms``
    by sha256 of the term, and the topics of ``topics``."""
    from argtree.propose import heldout_terms
    from argtree.questions import load_questions
    from argtree.strategyqa import default_path

    held = sorted(heldout_terms(load_questions(default_path())), key=lambda t: _sha(t[0]))[offset:offset + n_terms]
    return {"heldout": held, "topics": [(t, t) for t in _topic_lines(Path(topics))]}


def _topic_lines(path: Path) -> list[str]:
    """The topics of a topics file: one a line, "#" lines and blank lines skipped."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def described(record: dict) -> bool:
    """Whether a training record is a StrategyQA term's with its description in the topic ("Topic: term
    (description)"), the form of the held-out half's topics; not a bare term, fact subject or labeled record."""
    first = record["messages"][0]["content"].split("\n", 1)[0]
    return "source" not in record and first != f"Topic: {' '.join(str(record['term']).split())}"


def repeat_described(records: list[dict], k: int) -> list[dict]:
    """``records`` with each ``described`` one written ``k`` times in all (the copies right after it; the trainer
    shuffles); ``k`` <= 1 leaves them as they are."""
    return [c for r in records for c in [r] * (k if k > 1 and described(r) else 1)]


def cmd_export(args) -> None:
    """Training records for the proposer (train split only), optionally a deterministic subset."""
    from argtree.propose import proposal_records
    from argtree.questions import load_questions
    from argtree.strategyqa import default_path

    exclude_files = sorted(str(f) for f in (args.exclude_topics if args.exclude_topics is not None
                                            else TOPICS.parent.glob("proposal_topics*.txt")))
    exclude = [t for f in exclude_files for t in _topic_lines(Path(f))] if args.subjects else []
    labeled_files = [str(Path(f).resolve().relative_to(ROOT)) if Path(f).resolve().is_relative_to(ROOT) else f
                     for f in (args.labeled or [])]
    labeled = [dict(json.loads(line), file=name) for f, name in zip(args.labeled or [], labeled_files)
               for line in Path(f).read_text(encoding="utf-8").splitlines() if line.strip()]
    records, counts = proposal_records(load_questions(default_path()), max_per_prompt=args.max_per_prompt,
                                       bare=args.bare, facts=args.facts, strict=args.strict,
                                       subjects=args.subjects, exclude=exclude, labeled=labeled)
    if labeled and args.labeled_repeat > 1:   # the few labeled records, each written labeled_repeat times in all
        records = [r for r in records if r.get("source") != "labeled"] + \
            [r for r in records if r.get("source") == "labeled" for _ in range(args.labeled_repeat)]
    if args.described_repeat > 1:   # run 7: the StrategyQA records whose topic is "term (description)", weighted up
        records = repeat_described(records, args.described_repeat)
    if args.limit:
        records = sorted(records, key=lambda r: _sha(f"{args.seed}:{r['term']}:{r['messages'][0]['content']}"))
        records = records[: args.limit]
    out = Path(args.out)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    card = {"source": default_path(), "counts": counts, "written": len(records), "limit": args.limit,
            "bare": args.bare, "facts": args.facts, "strict": args.strict, "subjects": args.subjects,
            "exclude_topics": [str(Path(f).relative_to(ROOT)) if Path(f).resolve().is_relative_to(ROOT) else f
                               for f in exclude_files] if args.subjects else None,
            "max_per_prompt": args.max_per_prompt,
            **({"labeled": labeled_files, "labeled_repeat": args.labeled_repeat} if labeled_files else {}),
            **({"described_repeat": args.described_repeat} if args.described_repeat > 1 else {}),
            "seed": args.seed, "sha256": _sha(out.read_text(encoding="utf-8"))}
    out.with_suffix(".card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(card, indent=1))


class _FirstAnswers:
    """A backend that answers a greedy call whose prompt it has an answer for from that answer (the batched
    run's), and passes every other call on."""

    def __init__(self, backend, firsts):
        self.backend, self.firsts = backend, firsts
        self.model_version = backend.model_version
        if hasattr(backend, "answer_logprob"):   # a scoring backend: propose over-generates and selects
            self.answer_logprob = backend.answer_logprob

    def generate_json(self, prompts, schema, **kw):
        if not kw.get("temperature") and len(prompts) == 1 and prompts[0] in self.firsts:
            return [self.firsts[prompts[0]]]
        return self.backend.generate_json(prompts, schema, **kw)


def cmd_run(args) -> None:
    from argtree.llm import open_backend
    from argtree.loop import question_bound, question_schema
    from argtree.propose import ProposalGuard, is_yes_no, negations, proposal_prompt

    sets = topic_sets(args.terms, args.terms_offset, Path(args.topics))
    if args.threads:
        import os

        os.environ["ARGTREE_THREADS"] = str(args.threads)  # LocalBackend reads it
    t0 = time.perf_counter()
    be = open_backend(args.backend, args.model)
    load_s = time.perf_counter() - t0
    out = Path(args.out or RESULTS / f"{args.label}.jsonl")
    rows, calls, firsts = [], [], {}
    jobs = [(name, term, topic) for name in ("heldout", "topics") for term, topic in sets[name]]
    t1 = time.perf_counter()
    for i in range(0, len(jobs), args.batch):
        chunk = jobs[i:i + args.batch]
        gens = be.generate_json([proposal_prompt(topic, args.n) for _, _, topic in chunk], question_schema(args.n),
                                max_new_tokens=question_bound(args.n), seed=args.seed)
        for (name, term, topic), g in zip(chunk, gens):
            firsts[proposal_prompt(topic, args.n)] = g
            try:
                items = json.loads(g.text)["questions"] if g.ok else None
            except (ValueError, KeyError, TypeError):
                items = None
            calls.append({"set": name, "term": term, "ok": isinstance(items, list), "truncated": g.truncated,
                          "tokens": g.tokens, "error": g.error})
            guard = ProposalGuard(topic)  # near-duplicates: within the topic's answer
            for j, q in enumerate(items if isinstance(items, list) else []):
                v = guard.check(str(q))
                if v.ok:
                    guard.accept(v.text)
                rows.append({"model": args.label, "model_name": args.model, "set": name, "term": term,
                             "topic": topic, "i": j, "question": v.text, "passes": v.ok, "reason": v.reason,
                             "yes_no": is_yes_no(v.text), "negation": v.negation,
                             "negations": negations(v.text)})
        print(f"{min(i + args.batch, len(jobs))}/{len(jobs)} topics, {time.perf_counter() - t1:.0f} s", file=sys.stderr)
    gen_s = time.perf_counter() - t1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loop_s = None
    if args.retries is not None:
        # What the loop asks: argtree.propose.propose as `argtree loop` calls it (greedy, then sampled retries
        # while fewer than n passed); its greedy call is the answer above (the same prompt), not made twice.
        from argtree.propose import propose

        t2 = time.perf_counter()
        cached = _FirstAnswers(be, firsts)
        accepted = []
        for name, term, topic in jobs:
            res = propose(cached, topic, args.n, args.seed, retries=args.retries, samples=args.samples)
            for j, v in enumerate(res.accepted):
                accepted.append({"model": args.label, "set": name, "term": term, "topic": topic, "i": j,
                                 "question": v.text, "negation": v.negation, "attempts": res.attempts,
                                 "score": v.score})
            for v in res.rejected:
                accepted.append({"model": args.label, "set": name, "term": term, "topic": topic,
                                 "question": v.text, "rejected": v.reason, "attempts": res.attempts,
                                 "score": v.score})
            for v in res.unused:   # passed and scored, but n better ones were taken (not asked)
                accepted.append({"model": args.label, "set": name, "term": term, "topic": topic,
                                 "question": v.text, "rejected": "unused", "attempts": res.attempts,
                                 "score": v.score})
        loop_s = time.perf_counter() - t2
        out.with_suffix(".loop.jsonl").write_text("".join(json.dumps(r) + "\n" for r in accepted), encoding="utf-8")
        print(f"loop proposals (retries {args.retries}) in {loop_s:.0f} s -> {out.with_suffix('.loop.jsonl')}",
              file=sys.stderr)
    meta = {"label": args.label, "model": args.model, "model_version": be.model_version, "n": args.n,
            "terms": args.terms, "terms_offset": args.terms_offset, "topics": args.topics, "seed": args.seed, "batch": args.batch, "load_seconds": round(load_s, 1),
            "generate_seconds": round(gen_s, 1), "calls": calls, "retries": args.retries, "samples": args.samples,
            "loop_seconds": None if loop_s is None else round(loop_s, 1), "prompt": proposal_prompt("TOPIC", args.n),
            "command": "python bench/proposal_quality.py " + " ".join(sys.argv[1:])}
    out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} proposals for {len(jobs)} topics in {gen_s:.0f} s -> {out}", file=sys.stderr)


def _share(k: int, n: int) -> str:
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def summarize(rows: list[dict], labels: dict[tuple[str, str, str], bool], calls: dict[str, list]) -> list[dict]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for name in ("heldout", "topics", "both"):
            rs = [r for r in rows if r["model"] == model and (name == "both" or r["set"] == name)]
            cs = [c for c in calls.get(model, []) if name == "both" or c["set"] == name]
            lab = [labels[(model, r["topic"], r["question"])] for r in rs if (model, r["topic"], r["question"]) in labels]
            lab_pass = [labels[(model, r["topic"], r["question"])] for r in rs
                        if r["passes"] and (model, r["topic"], r["question"]) in labels]
            out.append({"model": model, "set": name, "topics": len(cs), "answers_ok": sum(c["ok"] for c in cs),
                        "proposals": len(rs), "passes": sum(r["passes"] for r in rs),
                        "yes_no": sum(r["yes_no"] for r in rs), "negation": sum(r["negations"] > 0 for r in rs),
                        "labeled": len(lab), "answerable": sum(lab),
                        "labeled_passing": len(lab_pass), "answerable_passing": sum(lab_pass),
                        "reasons": {k: sum(r["reason"] == k for r in rs) for k in
                                    sorted({r["reason"] for r in rs if r["reason"]})}})
    return out


def rejudge(rows: list[dict]) -> list[dict]:
    """The stored proposals judged again by the current guards (pure: no model needed), in their order per
    (model, topic) so near-duplicates are found as in the run; the run's own verdict stays in ``passes_run``."""
    from argtree.propose import ProposalGuard

    guards: dict = {}
    out = []
    for r in rows:
        g = guards.setdefault((r["model"], r["topic"]), ProposalGuard(r["topic"]))
        v = g.check(r["question"])
        if v.ok:
            g.accept(v.text)
        out.append(dict(r, passes_run=r["passes"], reason_run=r["reason"], passes=v.ok, reason=v.reason))
    return out


def load_labels(paths) -> dict[tuple[str, str, str], bool]:
    """Hand labels (labels*.jsonl rows) by (model, topic, question); a later file overrides an earlier one."""
    labels = {}
    for lab_path in map(Path, paths):
        for line in lab_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                labels[(rec["model"], rec["topic"], rec["question"])] = bool(rec["answerable"])
    return labels


def cmd_report(args) -> None:
    files = [Path(f) for f in args.files] or sorted(p for p in RESULTS.glob("*.jsonl")
                                                    if not p.name.startswith("labels") and not p.name.endswith(".loop.jsonl"))
    rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not args.as_run:
        rows = rejudge(rows)
    calls = {}
    for f in files:
        meta = f.with_suffix(".meta.json")
        if meta.exists():
            m = json.loads(meta.read_text(encoding="utf-8"))
            calls[m["label"]] = m["calls"]
    labels = load_labels(args.labels or [str(RESULTS / "labels.jsonl")])
    summary = summarize(rows, labels, calls)
    print("| model | set | topics (usable answers) | proposals | pass the guards | yes/no | with a negation "
          "| answerable (by hand) | answerable among those that pass |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        print(f"| {s['model']} | {s['set']} | {s['topics']} ({s['answers_ok']}) | {s['proposals']} "
              f"| {_share(s['passes'], s['proposals'])} | {_share(s['yes_no'], s['proposals'])} "
              f"| {_share(s['negation'], s['proposals'])} | {_share(s['answerable'], s['labeled'])} "
              f"| {_share(s['answerable_passing'], s['labeled_passing'])} |")
    print()
    for s in summary:
        if s["set"] != "both":
            print(f"- {s['model']} / {s['set']}: rejections {s['reasons']}")
    loops = loop_summary(files, labels, rejudge=not args.as_run)
    if loops:
        print()
        print("What the loop asks (greedy answer, then sampled retries while fewer than n passed; "
              + ("the guards as run" if args.as_run else "judged again with today's guards") + "):")
        print()
        print("| model | set | topics with a question | questions accepted | with a negation | answerable (by hand) "
              "| unlabeled |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for s in loops:
            print(f"| {s['model']} | {s['set']} | {_share(s['topics_with'], s['topics'])} | {s['accepted']} "
                  f"| {_share(s['negation'], s['accepted'])} | {_share(s['answerable'], s['labeled'])} "
                  f"| {s['accepted'] - s['labeled']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"first_answer": summary, "loop": loops} if loops else summary,
                                              indent=1) + "\n", encoding="utf-8")


def loop_summary(files: list[Path], labels: dict, rejudge: bool = True) -> list[dict]:
    """Per model (with a LABEL.loop.jsonl beside its file) and set: what ``propose`` accepted after retries."""
    out = []
    for f in files:
        lp = f.with_suffix(".loop.jsonl")
        if not lp.exists():
            continue
        rows = [json.loads(line) for line in lp.read_text(encoding="utf-8").splitlines() if line.strip()]
        # Accepted as run, judged again with today's guards in their order per topic (a guard added after the
        # run rejects some; the loop would have retried for those, which this cannot replay: counted as missing).
        from argtree.propose import ProposalGuard

        guards: dict = {}
        for r in rows if rejudge else ():
            if "rejected" not in r:
                g = guards.setdefault(r["topic"], ProposalGuard(r["topic"]))
                v = g.check(r["question"])
                if v.ok:
                    g.accept(v.text)
                else:
                    r["rejected"], r["rejected_today"] = v.reason, True
        model = rows[0]["model"] if rows else f.stem
        meta = json.loads(f.with_suffix(".meta.json").read_text(encoding="utf-8"))
        for name in ("heldout", "topics", "both"):
            rs = [r for r in rows if name == "both" or r["set"] == name]
            acc = [r for r in rs if "rejected" not in r]
            lab = [labels[(model, r["topic"], r["question"])] for r in acc if (model, r["topic"], r["question"]) in labels]
            n_topics = sum(name == "both" or c["set"] == name for c in meta["calls"])
            out.append({"model": model, "set": name, "topics": n_topics,
                        "topics_with": len({r["topic"] for r in acc}), "accepted": len(acc),
                        "negation": sum(r["negation"] for r in acc), "labeled": len(lab), "answerable": sum(lab),
                        "rejected_by_later_guards": sum(bool(r.get("rejected_today")) for r in rs),
                        "attempts": sum({r["topic"]: r["attempts"] for r in rs}.values())})
    return out


def _accepted(loop_files: list[Path]) -> list[dict]:
    """The questions the loops accepted (their LABEL.loop.jsonl rows without a rejection)."""
    rows = [json.loads(line) for f in loop_files for line in Path(f).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r for r in rows if "rejected" not in r]


def cmd_pool(args) -> None:
    """A blind labeling sheet: the loops' accepted (topic, question) pairs, pooled, without model names, each
    pair once, shuffled by a seed; "answerable" left null for the labeler."""
    pairs = sorted({(r["topic"], r["question"]) for r in _accepted(args.loops)})
    random.Random(args.seed).shuffle(pairs)
    with open(args.out, "w", encoding="utf-8") as f:
        for k, (topic, question) in enumerate(pairs):
            f.write(json.dumps({"id": k, "topic": topic, "question": question, "answerable": None, "why": ""}) + "\n")
    print(f"{len(pairs)} pairs -> {args.out}")


def cmd_unpool(args) -> None:
    """The labeled sheet back to per-model labels (labels*.jsonl rows) for every loop's accepted question."""
    sheet = {}
    for line in Path(args.sheet).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if not isinstance(rec.get("answerable"), bool):
                raise SystemExit(f"sheet row {rec.get('id')}: 'answerable' must be true or false, got "
                                 f"{rec.get('answerable')!r}: label every row first")
            sheet[(rec["topic"], rec["question"])] = rec
    out = []
    for r in _accepted(args.loops):
        lab = sheet.get((r["topic"], r["question"]))
        if lab is None:  # checked before anything is written
            raise SystemExit(f"{r['model']}: {r['question']!r} ({r['topic']}) is not on the sheet: "
                             "pool the same loop files again")
        out.append({"model": r["model"], "set": r["set"], "topic": r["topic"], "question": r["question"],
                    "answerable": lab["answerable"], "why": lab["why"]})
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in out)
    print(f"labels -> {args.out}")


def agreement(a: dict, b: dict) -> dict:
    """Two labelers' agreement on the keys both labeled: share agreeing (Wilson 95%) and Cohen's kappa."""
    keys = sorted(set(a) & set(b))
    n = len(keys)
    if not n:
        raise SystemExit("the two label files share no (model, topic, question): nothing to compare")
    same = sum(a[k] == b[k] for k in keys)
    pa, pb = sum(a[k] for k in keys) / n, sum(b[k] for k in keys) / n
    chance = pa * pb + (1 - pa) * (1 - pb)
    kappa = (same / n - chance) / (1 - chance) if chance < 1 else 1.0
    return {"n": n, "agree": same, "agree_ci": wilson(same, n), "kappa": kappa,
            "yes_a": sum(a[k] for k in keys), "yes_b": sum(b[k] for k in keys)}


def cmd_agree(args) -> None:
    print(json.dumps(agreement(load_labels([args.a]), load_labels([args.b])), indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="proposer training records (train split) as conversational JSONL")
    e.add_argument("--out", required=True)
    e.add_argument("--limit", type=int, default=None, help="keep this many records (a seeded, deterministic choice)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--max-per-prompt", type=int, default=5)
    e.add_argument("--bare", action="store_true", help="each record also with the term alone as the topic")
    e.add_argument("--facts", action="store_true", help="a term's facts turned into questions too (fact_question)")
    e.add_argument("--strict", action="store_true", help="the proposer-only guards (hypothetical, loose) reject "
                   "StrategyQA's questions too (run 3)")
    e.add_argument("--subjects", action="store_true", help="also the facts' subjects as bare topics (no "
                   "description), each with its fact questions (run 4; argtree.propose.fact_subject)")
    e.add_argument("--exclude-topics", nargs="*", default=None, help="with --subjects: topics files whose topics "
                   "make no record (default: every bench/data/proposal_topics*.txt, the sets measured on)")
    e.add_argument("--labeled", nargs="+", default=None, metavar="FILE", help="hand labels of the loop's proposals "
                   "(labels*.jsonl): the ones labeled answerable on our topic sets (set != heldout) become records in "
                   "the loop's prompt for their topic, with provenance (run 5)")
    e.add_argument("--labeled-repeat", type=int, default=1, help="with --labeled: write each such record this many "
                   "times (they are few against the StrategyQA records)")
    e.add_argument("--described-repeat", type=int, default=1, help="write each StrategyQA record whose topic is "
                   "'term (description)' this many times (run 7: the held-out half's form, weighted up)")
    r = sub.add_parser("run", help="propose for the held-out terms and the 20 topics with one model")
    r.add_argument("--model", default="bundled", help="bundled, adapter (the default model), a version or directory")
    r.add_argument("--label", required=True, help="name of the model in the results (base, default, proposer)")
    r.add_argument("--terms", type=int, default=20, help="held-out StrategyQA terms")
    r.add_argument("--terms-offset", type=int, default=0, help="skip this many held-out terms (a second set: 20)")
    r.add_argument("--topics", default=str(TOPICS), help="file of topics (default bench/data/proposal_topics.txt; "
                   "a second set: bench/data/proposal_topics2.txt)")
    r.add_argument("--n", type=int, default=3, help="questions asked for per topic")
    r.add_argument("--batch", type=int, default=8)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (ARGTREE_THREADS)")
    r.add_argument("--backend", default="local", help="local; fake for a dry run")
    r.add_argument("--retries", type=int, default=None, help="also run the loop's proposer (greedy + this many "
                   "sampled retries per topic, as `argtree loop`) and write what it accepts to LABEL.loop.jsonl")
    r.add_argument("--samples", type=int, default=None, help="the loop's over-generation: sampled answers per call, "
                   "scored and taken best first (argtree.propose.propose; default: SAMPLES where the backend scores, "
                   "0 = run 2's loop)")
    r.add_argument("--out", default=None)
    p = sub.add_parser("report", help="shares with Wilson 95% intervals, hand labels included")
    p.add_argument("files", nargs="*")
    p.add_argument("--labels", action="append", default=None,
                   help="hand labels (repeatable; default bench/results/proposals/labels.jsonl)")
    p.add_argument("--json", default=None)
    p.add_argument("--as-run", action="store_true", help="the guards' verdicts as stored by the run (default: "
                   "judge the stored proposals again with the current guards)")
    o = sub.add_parser("pool", help="a blind labeling sheet from loops' accepted questions (no model names)")
    o.add_argument("loops", nargs="+", type=Path, help="LABEL.loop.jsonl files")
    o.add_argument("--out", required=True)
    o.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpool", help="a labeled sheet back to labels*.jsonl rows, per model")
    u.add_argument("sheet")
    u.add_argument("--loops", nargs="+", type=Path, required=True)
    u.add_argument("--out", required=True)
    g = sub.add_parser("agree", help="two labelers' agreement (share, Wilson 95%%, Cohen's kappa)")
    g.add_argument("a")
    g.add_argument("b")
    args = ap.parse_args()
    {"export": cmd_export, "run": cmd_run, "report": cmd_report, "pool": cmd_pool, "unpool": cmd_unpool,
     "agree": cmd_agree}[args.cmd](args)


if __name__ == "__main__":
    main()
