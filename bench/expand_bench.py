"""Throughput of argtree's expansion vs raw ``model.generate`` on the same prompts, model and run.

argtree's path is the whole expansion (``argtree.grow.expand_nodes``): prompt
building, chat template, tokenization, xgrammar-constrained ``generate``,
decoding, JSON parsing and the guards.  The baseline is plain greedy
``model.generate`` on the very same token ids with no logits processor, run
for exactly as many decode steps as argtree's batch took (``min_new_tokens =
max_new_tokens = steps``), so both do the same model work and the ratio
isolates argtree's overhead:

    ratio = raw seconds / argtree seconds      (target >= 0.90)

Throughput is reported as batch x steps / second (token slots; the same for
both) and, for argtree, as useful tokens/s (tokens up to each row's end).
Then batched vs unbatched: the same prompts through argtree one at a time
and all at once.  Runs alternate (argtree, raw, argtree, raw, ...) and the
medians are kept, since this machine is shared.

    .venv/bin/python bench/expand_bench.py [--claims 4] [--max-new-tokens 128] [--reps 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLAIMS = [
    "Is remote work more productive than office work?",
    "Should cities ban cars from their centres?",
    "Is nuclear power a good way to cut carbon emissions?",
    "Does social media make teenagers less happy?",
    "Should schools stop giving homework?",
    "Is a four-day work week good for the economy?",
    "Will electric cars replace petrol cars by 2040?",
    "Is coffee good for your health?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--claims", type=int, default=4, help="claims; each gives a for and an against prompt")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default="bundled", help="the model measured (default: the base, as BENCHMARKS.md reports)")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the numbers to this file")
    args = ap.parse_args()

    import torch

    from argtree.expand import SYSTEM, expansion_prompt, expansion_schema
    from argtree.grow import GrowConfig, expand_nodes
    from argtree.llm.local import LocalBackend
    from argtree.tree import ArgumentTree, Node

    if args.threads:
        torch.set_num_threads(args.threads)
    claims = CLAIMS[: args.claims]
    n_prompts = 2 * len(claims)
    be = LocalBackend(args.model, max_batch=n_prompts)
    tok, model = be.tokenizer, be.model
    tree = ArgumentTree([Node("q", "Root question for the benchmark.", prior=0.5)]
                        + [Node(f"c{i}", c, parent="q", p_if_true=0.7, p_if_false=0.3) for i, c in enumerate(claims)])
    ids = [f"c{i}" for i in range(len(claims))]
    cfg = GrowConfig(retries=0, max_new_tokens=args.max_new_tokens, per_side=2)

    # The exact prompts argtree sends, for the raw baseline.
    prompts = [be._chat(expansion_prompt(tree[n].text, s, context=[tree["q"].text], avoid=[], per_side=2), SYSTEM)
               for n in ids for s in ("for", "against")]
    _ = [expansion_schema(s, 2) for s in ("for", "against")]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(be.device)

    def run_argtree(batch: int) -> tuple[float, int, int]:
        """(seconds, useful tokens, decode steps summed over batches)."""
        be.max_batch = batch
        steps_before = be.tokens_generated
        calls_before = be.calls
        t0 = time.perf_counter()
        expand_nodes(be, tree, ids, cfg)
        dt = time.perf_counter() - t0
        return dt, be.tokens_generated - steps_before, be.calls - calls_before

    # Measure argtree's steps for the batched run by hooking generate once.
    orig_generate = model.generate
    seen_steps: list[int] = []

    def counting_generate(*a, **k):
        out = orig_generate(*a, **k)
        seen_steps.append(out.shape[1] - k["input_ids"].shape[1])
        return out

    def run_raw(steps: int) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            orig_generate(**enc, max_new_tokens=steps, min_new_tokens=steps, do_sample=False, temperature=None,
                          top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        return time.perf_counter() - t0

    # warm-up (grammar compile, first-call allocations)
    model.generate = counting_generate
    run_argtree(n_prompts)
    seen_steps.clear()

    at_times, raw_times, useful, steps = [], [], [], 0
    for _ in range(args.reps):
        seen_steps.clear()
        dt, n_tok, _calls = run_argtree(n_prompts)
        steps = seen_steps[-1]
        at_times.append(dt)
        useful.append(n_tok)
        raw_times.append(run_raw(steps))
    model.generate = orig_generate
    at, raw = statistics.median(at_times), statistics.median(raw_times)
    slots = n_prompts * steps

    # batched vs unbatched, argtree path both times
    t_one, tok_one, _ = run_argtree(1)
    t_all, tok_all, _ = run_argtree(n_prompts)

    res = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
                   f"{torch.get_num_threads()}, device {be.device}",
        "prompts": n_prompts, "max_new_tokens": args.max_new_tokens, "steps": steps, "reps": args.reps,
        "argtree_s": at, "raw_s": raw, "argtree_slots_per_s": slots / at, "raw_slots_per_s": slots / raw,
        "argtree_useful_tok_per_s": statistics.median(useful) / at, "ratio": raw / at,
        "unbatched_tok_per_s": tok_one / t_one, "batched_tok_per_s": tok_all / t_all,
        "batch_speedup": (tok_all / t_all) / (tok_one / t_one),
        "argtree_times": at_times, "raw_times": raw_times,
    }
    print(f"machine: {res['machine']}")
    print(f"{n_prompts} prompts x {steps} decode steps (batched)")
    print(f"raw model.generate : {res['raw_slots_per_s']:8.1f} tokens/s  ({raw:.1f} s)")
    print(f"argtree expansion  : {res['argtree_slots_per_s']:8.1f} tokens/s  ({at:.1f} s; "
          f"{res['argtree_useful_tok_per_s']:.1f} useful tokens/s)")
    print(f"ratio argtree/raw  : {res['ratio']:.3f}  (target >= 0.90)")
    print(f"unbatched argtree  : {res['unbatched_tok_per_s']:8.1f} useful tokens/s")
    print(f"batched argtree    : {res['batched_tok_per_s']:8.1f} useful tokens/s  "
          f"(x{res['batch_speedup']:.2f} over unbatched)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
