"""Labeled argument trees -> fine-tuning records (pure: no torch, transformers or sqlalchemy).

Four kinds of example, each one prompt with a right answer (and, where the
tree gives one honestly, a wrong answer for preference formats):

``facts``        premise -> its oracle truth ("Yes" / "No": the answer a yes/no
                 scorer reads P(true) from).  The truth of a
                 proposition is the sign of its labels' summed weight of evidence
                 (log r/(1-r) per label; a hard label wins); ties are skipped.
``cruxes``       question -> the premises that proved most valuable: labeled
                 premises ranked by how far their label moved the root
                 (|P(root | all labels) - P(root | all labels but this one)|).
                 Rejected: the least valuable premises, when the tree has more.
``posteriors``   question -> the root's belief given all labels (two decimals):
                 the search distilled into a fast answer.  Rejected: the belief
                 the tree held before any label, when it differs by >= 0.1.
``uncertainty``  question -> how uncertain it proved (low / medium / high): how
                 far the labels moved the root, |P(root | labels) - P(root)|,
                 cut at 0.1 and 0.3.  Rejected: the level at the other end.

Formats are TRL's documented dataset types (``text``: language modeling,
``prompt-completion``, ``conversational`` messages, ``preference``,
``unpaired-preference`` with a boolean label, ``stepwise`` supervision) and
OpenAI's fine-tuning JSONL (``openai-chat``, ``openai-dpo``).

Splits are by proposition: each record has a key proposition (the premise for
facts, the question otherwise) whose normalized text is hashed to a number in
[0, 1); keys below ``split`` go to train.  A train record that mentions any
proposition of an eval record is then dropped, so no text of the eval split is
ever seen in training (the card counts what was dropped).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from .expand import yes_no_prompt
from .tree import ArgumentTree, Evidence, TreeError

__all__ = [
    "KINDS", "FORMATS", "DatasetError", "LabeledTree", "Example", "Prompts", "PROMPTS",
    "normalize", "split_value", "examples", "render", "split_examples", "split_trees", "build", "write_jsonl",
    "sha256_file", "detect_format", "read_jsonl", "export",
]

KINDS = ("facts", "cruxes", "posteriors", "uncertainty")
FORMATS = ("text", "prompt-completion", "conversational", "preference", "unpaired-preference",
           "stepwise", "openai-chat", "openai-dpo")
PREFERENCE_FORMATS = ("preference", "unpaired-preference", "openai-dpo")
# No system message by default: the local backend scores yes/no prompts without one (the chat
# template then adds its own), and records should look like what the model is served.
SYSTEM: str | None = None


class DatasetError(ValueError):
    """Input that cannot make a dataset (empty, wrong kind or format); the message says what to do."""


@dataclass(frozen=True)
class LabeledTree:
    tree: ArgumentTree
    evidence: tuple[Evidence, ...]
    source: str = ""              # file path or store id, for the dataset card
    model: str | None = None      # model version that grew the tree, if known


@dataclass(frozen=True)
class Example:
    """One training example before it is given a format."""

    kind: str
    key: str                          # normalized proposition that decides the split
    propositions: frozenset[str]      # every normalized proposition the record shows
    prompt: str
    completion: str
    rejected: str | None = None
    steps: tuple[tuple[str, bool], ...] = ()   # stepwise supervision: (step, correct?)
    source: str = ""
    model: str | None = None


@dataclass(frozen=True)
class Prompts:
    """Prompt templates: one place, so an adapter is trained on the prompts it will serve."""

    fact: Callable[[str], str] = yes_no_prompt   # the prompt the local backend's score_yes reads P(true) from
    cruxes: Callable[[str], str] = lambda q: (
        f"Question: {q}\nList the facts that would settle this question, one per line.")
    posterior: Callable[[str], str] = lambda q: (
        f"Question: {q}\nWhat is the probability that the answer is yes? Answer with a number between 0 and 1.")
    uncertainty: Callable[[str], str] = lambda q: (
        f"Question: {q}\nHow uncertain is the answer to this question? Answer with one word: low, medium or high.")


PROMPTS = Prompts()

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The proposition a text states: case-folded, whitespace collapsed, trailing punctuation dropped."""
    return _SPACE.sub(" ", text).strip().casefold().rstrip(" .!?;:")


def split_value(text: str) -> float:
    """A number in [0, 1) fixed by the proposition's normalized text (sha256, first 8 bytes)."""
    digest = hashlib.sha256(normalize(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


# -- truth and value from a labeled tree -----------------------------------------

def truth(labels: Sequence[Evidence]) -> bool | None:
    """Oracle truth from a node's labels: a hard label wins; else the summed log-odds' sign; None on a tie.
    Model evidence (the model's own credence) is never truth: it is left out."""
    labels = [ev for ev in labels if not ev.is_model]
    hard = {ev.value for ev in labels if ev.is_hard}
    if len(hard) == 1:
        return hard.pop()
    if len(hard) > 1:
        return None  # contradictory hard labels: no truth to teach
    score = sum((1 if ev.value else -1) * math.log(ev.reliability / (1 - ev.reliability)) for ev in labels)
    return None if abs(score) < 1e-12 else score > 0


def _labels_by_node(lt: LabeledTree) -> dict[str, list[Evidence]]:
    out: dict[str, list[Evidence]] = {}
    for ev in lt.evidence:
        if not ev.is_model:  # labels only: the model judging itself is not an oracle
            out.setdefault(ev.node, []).append(ev)
    return out


def _root_belief(tree: ArgumentTree, evidence: Sequence[Evidence]) -> float:
    from .inference import propagate

    return float(propagate(tree, evidence).root_belief)


def label_impact(lt: LabeledTree) -> dict[str, float]:
    """For each labeled non-root node: how far taking its labels away moves P(root | all labels)."""
    by_node = _labels_by_node(lt)
    full = _root_belief(lt.tree, lt.evidence)
    out = {}
    for nid in by_node:
        if nid == lt.tree.root:
            continue
        rest = [ev for ev in lt.evidence if ev.node != nid]
        out[nid] = abs(full - _root_belief(lt.tree, rest))
    return out


# -- examples per kind ----------------------------------------------------------

def _facts(lt: LabeledTree, prompts: Prompts) -> list[Example]:
    out = []
    for nid, labels in _labels_by_node(lt).items():
        value = truth(labels)
        if value is None:
            continue
        text = lt.tree[nid].text
        key = normalize(text)
        answer, wrong = ("Yes", "No") if value else ("No", "Yes")
        out.append(Example("facts", key, frozenset([key]), prompts.fact(text), answer, wrong,
                           source=lt.source, model=lt.model))
    return out


def _fact_steps(lt: LabeledTree, prompts: Prompts) -> list[Example]:
    """Stepwise facts: question -> its direct premises as steps, each labeled with its oracle truth."""
    by_node = _labels_by_node(lt)
    tree = lt.tree
    steps = []
    for nid in tree.children(tree.root):
        value = truth(by_node.get(nid, ()))
        if value is not None:
            steps.append((tree[nid].text, value))
    if not steps:
        return []
    q = tree[tree.root].text
    props = frozenset([normalize(q)] + [normalize(s) for s, _ in steps])
    return [Example("facts", normalize(q), props, prompts.cruxes(q), "", steps=tuple(steps),
                    source=lt.source, model=lt.model)]


def _cruxes(lt: LabeledTree, prompts: Prompts, top: int = 3) -> list[Example]:
    tree = lt.tree
    impact = label_impact(lt)
    if not impact:
        return []
    ranked = sorted(impact, key=lambda nid: (-round(impact[nid], 12), nid))
    best = ranked[:top]
    # Least valuable: premises whose labels did least, or unlabeled ones of lowest VoI.
    rest = [nid for nid in ranked[top:]]
    if not rest:
        from .voi import rank, voi

        scores = voi(tree, lt.evidence)
        rest = [nid for nid, _ in reversed(rank(scores)) if nid not in impact]
    worst = rest[-len(best):] if rest else []
    q = tree[tree.root].text
    lines = lambda ids: "\n".join(f"- {tree[nid].text}" for nid in ids)  # noqa: E731
    props = [normalize(q)] + [normalize(tree[nid].text) for nid in best + worst]
    steps = tuple((tree[nid].text, nid in best) for nid in best + worst)
    return [Example("cruxes", normalize(q), frozenset(props), prompts.cruxes(q), lines(best),
                    lines(worst) if worst else None, steps=steps, source=lt.source, model=lt.model)]


def _posteriors(lt: LabeledTree, prompts: Prompts) -> list[Example]:
    if not lt.evidence:
        return []
    tree = lt.tree
    after = _root_belief(tree, lt.evidence)
    before = _root_belief(tree, ())
    q = tree[tree.root].text
    rejected = f"{before:.2f}" if abs(after - before) >= 0.1 else None
    return [Example("posteriors", normalize(q), frozenset([normalize(q)]), prompts.posterior(q),
                    f"{after:.2f}", rejected, source=lt.source, model=lt.model)]


def uncertainty_level(moved: float) -> str:
    return "low" if moved < 0.1 else "medium" if moved < 0.3 else "high"


def _uncertainty(lt: LabeledTree, prompts: Prompts) -> list[Example]:
    if not lt.evidence:
        return []
    tree = lt.tree
    moved = abs(_root_belief(tree, lt.evidence) - _root_belief(tree, ()))
    level = uncertainty_level(moved)
    q = tree[tree.root].text
    rejected = {"low": "high", "medium": None, "high": "low"}[level]
    return [Example("uncertainty", normalize(q), frozenset([normalize(q)]), prompts.uncertainty(q),
                    level, rejected, source=lt.source, model=lt.model)]


def examples(trees: Iterable[LabeledTree], kind: str, fmt: str = "prompt-completion",
             prompts: Prompts = PROMPTS) -> list[Example]:
    """All examples of ``kind`` in ``trees``, in a deterministic order (by key, then prompt)."""
    if kind not in KINDS:
        raise DatasetError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "stepwise" and kind not in ("facts", "cruxes"):
        raise DatasetError(f"stepwise supervision needs labeled steps: use --kind facts or cruxes, not {kind!r}")
    out: list[Example] = []
    for lt in trees:
        if kind == "facts":
            out.extend(_fact_steps(lt, prompts) if fmt == "stepwise" else _facts(lt, prompts))
        elif kind == "cruxes":
            out.extend(_cruxes(lt, prompts))
        elif kind == "posteriors":
            out.extend(_posteriors(lt, prompts))
        else:
            out.extend(_uncertainty(lt, prompts))
    # One record per (key, prompt, completion): the same proposition labeled in two trees is one fact.
    unique: dict[tuple[str, str, str], Example] = {}
    for ex in out:
        unique.setdefault((ex.key, ex.prompt, ex.completion), ex)
    return sorted(unique.values(), key=lambda ex: (ex.key, ex.prompt, ex.completion))


# -- formats --------------------------------------------------------------------

def _msgs(prompt: str) -> list[dict[str, str]]:
    system = [{"role": "system", "content": SYSTEM}] if SYSTEM else []
    return system + [{"role": "user", "content": prompt}]


def render(ex: Example, fmt: str) -> list[dict[str, Any]]:
    """The record(s) for one example in ``fmt``; [] when the format needs what the example lacks."""
    sep = "\n"
    if fmt == "text":
        return [{"text": ex.prompt + sep + ex.completion}]
    if fmt == "prompt-completion":
        return [{"prompt": ex.prompt + sep, "completion": ex.completion}]
    if fmt == "conversational":
        return [{"messages": _msgs(ex.prompt) + [{"role": "assistant", "content": ex.completion}]}]
    if fmt == "openai-chat":
        return [{"messages": _msgs(ex.prompt) + [{"role": "assistant", "content": ex.completion}]}]
    if fmt == "stepwise":
        if not ex.steps:
            return []
        return [{"prompt": ex.prompt, "completions": [s for s, _ in ex.steps], "labels": [v for _, v in ex.steps]}]
    if ex.rejected is None:
        return []
    if fmt == "preference":
        return [{"prompt": ex.prompt + sep, "chosen": ex.completion, "rejected": ex.rejected}]
    if fmt == "unpaired-preference":
        return [{"prompt": ex.prompt + sep, "completion": ex.completion, "label": True},
                {"prompt": ex.prompt + sep, "completion": ex.rejected, "label": False}]
    if fmt == "openai-dpo":
        return [{"input": {"messages": _msgs(ex.prompt), "tools": [], "parallel_tool_calls": True},
                 "preferred_output": [{"role": "assistant", "content": ex.completion}],
                 "non_preferred_output": [{"role": "assistant", "content": ex.rejected}]}]
    raise DatasetError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def split_trees(trees: Sequence[LabeledTree], split: float) -> tuple[list[LabeledTree], list[LabeledTree], int]:
    """(train, eval, dropped) trees by the hash of the question; train trees sharing any proposition
    with an eval tree are dropped, so a question-level experiment never trains on eval text."""
    if not 0.0 < split < 1.0:
        raise DatasetError(f"split must be strictly between 0 and 1, got {split}")
    texts = lambda lt: {normalize(n.text) for n in lt.tree.nodes.values()}  # noqa: E731
    train = [lt for lt in trees if split_value(lt.tree[lt.tree.root].text) < split]
    held = [lt for lt in trees if split_value(lt.tree[lt.tree.root].text) >= split]
    held_props = set().union(*(texts(lt) for lt in held)) if held else set()
    kept = [lt for lt in train if not texts(lt) & held_props]
    return kept, held, len(train) - len(kept)


def split_examples(exs: Sequence[Example], split: float) -> tuple[list[Example], list[Example], int]:
    """(train, eval, dropped): by the key's hash, then train records touching an eval proposition dropped."""
    if not 0.0 < split < 1.0:
        raise DatasetError(f"--split must be strictly between 0 and 1, got {split}")
    train = [ex for ex in exs if split_value(ex.key) < split]
    held = [ex for ex in exs if split_value(ex.key) >= split]
    eval_props = set().union(*(ex.propositions for ex in held)) if held else set()
    kept = [ex for ex in train if not (ex.propositions & eval_props)]
    return kept, held, len(train) - len(kept)


# -- files ----------------------------------------------------------------------

def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write atomically (temp file + rename); returns the number of records."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return n


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSONL file; DatasetError naming the file and line on anything else."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError as err:
        raise DatasetError(f"cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path!r} is not UTF-8 text") from None
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}:{i}: not JSON ({err.msg})") from None
        if not isinstance(rec, dict):
            raise DatasetError(f"{path}:{i}: each line must be a JSON object")
        out.append(rec)
    if not out:
        raise DatasetError(f"{path} is empty: no records to train or evaluate on")
    return out


_SIGNATURES = [
    ("openai-dpo", {"input", "preferred_output", "non_preferred_output"}),
    ("stepwise", {"prompt", "completions", "labels"}),
    ("unpaired-preference", {"prompt", "completion", "label"}),
    ("preference", {"prompt", "chosen", "rejected"}),
    ("prompt-completion", {"prompt", "completion"}),
    ("conversational", {"messages"}),
    ("text", {"text"}),
]


def detect_format(record: Mapping[str, Any]) -> str:
    """Which documented format a record has, by its keys (messages: conversational = openai-chat)."""
    keys = set(record)
    for name, needed in _SIGNATURES:
        if needed <= keys:
            return name
    raise DatasetError(f"record with keys {sorted(keys)} matches none of the formats {', '.join(FORMATS)}")


def build(trees: Sequence[LabeledTree], kind: str, fmt: str, split: float | None = None,
          prompts: Prompts = PROMPTS) -> dict[str, Any]:
    """Records per split plus the facts for the card: {"splits": {name: [records]}, "card": {...}}."""
    trees = list(trees)
    exs = examples(trees, kind, fmt, prompts)
    if not exs:
        n_labels = sum(len(lt.evidence) for lt in trees)
        raise DatasetError(f"no {kind} examples in {len(trees)} tree(s) with {n_labels} label(s): "
                           "export needs trees with oracle labels")
    dropped = 0
    if split is None:
        parts = {"all": exs}
    else:
        train, held, dropped = split_examples(exs, split)
        parts = {"train": train, "eval": held}
    splits: dict[str, list[dict[str, Any]]] = {}
    skipped = 0
    for name, part in parts.items():
        recs = []
        for ex in part:
            rendered = render(ex, fmt)
            skipped += not rendered
            recs.extend(rendered)
        splits[name] = recs
    if not any(splits.values()):
        raise DatasetError(f"none of the {len(exs)} {kind} examples has what format {fmt!r} needs "
                           "(a wrong answer for preference formats, labeled steps for stepwise)")
    card = {
        "kind": kind, "format": fmt, "split": split,
        "examples": len(exs), "records": {k: len(v) for k, v in splits.items()},
        "skipped_for_format": skipped, "dropped_for_leakage": dropped,
        "trees": len(trees), "labels": sum(len(lt.evidence) for lt in trees),
        "sources": sorted({lt.source for lt in trees if lt.source})[:1000],
        "model_versions": sorted({lt.model for lt in trees if lt.model}),
    }
    return {"splits": splits, "card": card}


def output_paths(out: str, names: Iterable[str]) -> dict[str, str]:
    """data.jsonl -> data.train.jsonl / data.eval.jsonl; 'all' keeps the name; the card is data.card.json."""
    stem, ext = os.path.splitext(out)
    ext = ext or ".jsonl"
    paths = {name: (out if name == "all" else f"{stem}.{name}{ext}") for name in names}
    paths["card"] = f"{stem}.card.json"
    return paths


def export(trees: Sequence[LabeledTree], kind: str, fmt: str, out: str, split: float | None = None,
           prompts: Prompts = PROMPTS) -> dict[str, Any]:
    """Write the records (and a dataset card beside them); return the card."""
    from . import __version__

    result = build(trees, kind, fmt, split, prompts)
    paths = output_paths(out, result["splits"])
    card = dict(result["card"])
    card["files"] = {}
    for name, recs in result["splits"].items():
        write_jsonl(recs, paths[name])
        card["files"][name] = {"path": os.path.basename(paths[name]), "records": len(recs),
                               "sha256": sha256_file(paths[name])}
    card["argtree_version"] = __version__
    card["schema"] = "argtree-dataset-card/1"
    return _write_card(card, paths["card"])


def _write_card(card: dict[str, Any], path: str) -> dict[str, Any]:
    """Write the dataset card atomically (a reader never sees half a card); return it with its path."""
    tmp = path + f".tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=1, ensure_ascii=False)
    os.replace(tmp, path)
    card["card_path"] = path
    return card


def export_records(records: Sequence[Mapping[str, Any]], kind: str, fmt: str, out: str,
                   card_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ready-made records (e.g. ``argtree.propose.loop_proposal_records``) and a card beside them, as
    ``export`` does for tree examples; return the card."""
    from . import __version__

    if not records:
        raise DatasetError(f"no {kind} records to write")
    paths = output_paths(out, ["all"])
    write_jsonl(records, paths["all"])
    card = {"kind": kind, "format": fmt, "split": None, "examples": len(records), "records": {"all": len(records)},
            "skipped_for_format": 0, "dropped_for_leakage": 0, **dict(card_extra or {}),
            "files": {"all": {"path": os.path.basename(paths["all"]), "records": len(records),
                              "sha256": sha256_file(paths["all"])}},
            "argtree_version": __version__, "schema": "argtree-dataset-card/1"}
    return _write_card(card, paths["card"])


def from_files(paths: Sequence[str]) -> list[LabeledTree]:
    """argtree/1 files -> LabeledTrees; TreeError (naming the file) on a bad one."""
    from .io import load

    out = []
    for path in paths:
        try:
            tree, evidence = load(path)
        except TreeError as err:
            raise TreeError(f"{path}: {err}") from None
        model = tree.meta.get("model")
        out.append(LabeledTree(tree, tuple(evidence), source=os.fspath(path),
                               model=model if isinstance(model, str) else None))
    return out


# -- rounds of self-improvement: records with provenance, DPO pairs, a replay buffer (argtree improve) ----
#
# Every record of a round carries an "argtree" key (ignored by TRL and by ``detect_format``): its kind,
# its provenance (run, round, tree, node, who labeled what) and, for distillation, its tag.  Kinds:
#
# ``expansion``      conversational SFT: the expansion prompt ``grow`` sent (system + user, first attempt)
#                    -> the accepted premises of that side that the oracle did not mark ill-posed or
#                    undecidable and that are no mechanical negation ("X is not Y");
# ``expansion-pair`` conversational DPO (TRL's preference type): the same prompt, chosen = one accepted
#                    premise, rejected = the same answer with a guard-rejected (or ill-posed, or
#                    mechanically negated) proposal's text in its place: the pair differs in the text only;
# ``fact``           premise -> "Yes"/"No", the truth a human or dataset oracle gave (model labels only when
#                    a run says so, and then tagged "model");
# ``distill-tree`` / ``distill-gold``: the direct-answer prompt -> "Yes"/"No", ``DISTILL_COPIES`` records per
#                    question of which round(p * DISTILL_COPIES) say "Yes": SFT moves P(yes) toward the
#                    tree's belief after the oracle's answers (the search's result) or toward the gold answer.

ROUND_KINDS = ("expansion", "expansion-pair", "fact", "distill-tree", "distill-gold")
DISTILL_COPIES = 4


def record_key(record: Mapping[str, Any]) -> str:
    """Identity of a training record: sha256 of its content (the provenance excluded; a distillation
    record's copy number included, so its k "Yes" copies stay k)."""
    meta = record.get("argtree") or {}
    body = {k: v for k, v in record.items() if k != "argtree"}
    body["_kind"] = meta.get("kind")
    if "copy" in meta:
        body["_copy"] = meta["copy"]
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def add_to_buffer(buffer: Sequence[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> tuple[list[dict], int]:
    """(buffer + the new records it does not hold yet, how many were added).  A record already in the
    buffer keeps its first provenance (the round that first produced it)."""
    out = [dict(r) for r in buffer]
    seen = {record_key(r) for r in out}
    added = 0
    for rec in new:
        key = record_key(rec)
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(rec))
        added += 1
    return out, added


def is_mechanical_negation(text: str) -> bool:
    """A premise of the form "X is not Y": one negation on the main verb of a plain sentence, which
    ``strategyqa.negate`` (the rule that made the training data's negations) takes away cleanly."""
    from .strategyqa import NEGATION_WORDS, _words, negate

    if not any(w in NEGATION_WORDS for w in _words(text)):
        return False
    return negate(text) is not None


def _percent_of(p: float) -> int:
    """A probability as the schema's whole percentage (5..95, steps of 5)."""
    return int(min(95, max(5, 5 * round(float(p) * 20))))


def premise_answer(premises: Sequence[Mapping[str, Any]]) -> str:
    """The JSON answer ``expand.expansion_schema`` admits for these premises, written as xgrammar writes it."""
    items = [{"text": p["text"], "credence": _percent_of(p["credence"]),
              "claim_if_true": _percent_of(p["claim_if_true"]), "claim_if_false": _percent_of(p["claim_if_false"])}
             for p in premises]
    return json.dumps({"premises": items}, ensure_ascii=False)


def _chat(system: str | None, prompt: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def expansion_sft_record(system: str | None, prompt: str, premises: Sequence[Mapping[str, Any]],
                         provenance: Mapping[str, Any]) -> dict[str, Any]:
    return {"messages": _chat(system, prompt) + [{"role": "assistant", "content": premise_answer(premises)}],
            "argtree": {"kind": "expansion", "provenance": dict(provenance)}}


def expansion_pair_record(system: str | None, prompt: str, chosen: Mapping[str, Any], rejected_text: str,
                          reason: str, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A DPO pair: the chosen premise's answer, and the same answer with the rejected text instead."""
    bad = dict(chosen, text=rejected_text)
    return {"prompt": _chat(system, prompt),
            "chosen": [{"role": "assistant", "content": premise_answer([chosen])}],
            "rejected": [{"role": "assistant", "content": premise_answer([bad])}],
            "argtree": {"kind": "expansion-pair", "reason": reason, "provenance": dict(provenance)}}


def fact_record(text: str, value: bool, provenance: Mapping[str, Any], prompts: Prompts = PROMPTS) -> dict[str, Any]:
    return {"messages": _chat(SYSTEM, prompts.fact(text)) + [{"role": "assistant", "content": "Yes" if value else "No"}],
            "argtree": {"kind": "fact", "provenance": dict(provenance)}}


def distill_records(prompt: str, target: float, tag: str, provenance: Mapping[str, Any],
                    copies: int = DISTILL_COPIES) -> list[dict[str, Any]]:
    """``copies`` Yes/No records for the direct-answer ``prompt``, round(target * copies) of them "Yes"."""
    if tag not in ("tree", "gold"):
        raise DatasetError(f"distillation tag must be 'tree' or 'gold', got {tag!r}")
    if not 0.0 <= float(target) <= 1.0:
        raise DatasetError(f"distillation target must be a probability, got {target!r}")
    yes = int(round(float(target) * copies))
    return [{"messages": _chat(SYSTEM, prompt) + [{"role": "assistant", "content": "Yes" if j < yes else "No"}],
             "argtree": {"kind": f"distill-{tag}", "target": round(float(target), 4), "copy": j,
                         "provenance": dict(provenance)}}
            for j in range(copies)]


def check_pair(record: Mapping[str, Any]) -> str | None:
    """Why a DPO record is not well formed (None when it is): TRL's conversational preference shape,
    the prompt ending with the user, chosen and rejected single assistant answers that differ and both
    parse as expansion answers."""
    try:
        prompt, chosen, rejected = record["prompt"], record["chosen"], record["rejected"]
    except (KeyError, TypeError):
        return "needs prompt, chosen and rejected"
    if not isinstance(prompt, list) or not prompt or prompt[-1].get("role") != "user":
        return "prompt must be messages ending with the user's"
    for name, side in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(side, list) or len(side) != 1 or side[0].get("role") != "assistant":
            return f"{name} must be one assistant message"
        try:
            data = json.loads(side[0]["content"])
        except (ValueError, TypeError):
            return f"{name} is not JSON"
        if not isinstance(data, dict) or not isinstance(data.get("premises"), list) or not data["premises"]:
            return f"{name} holds no premises"
    if chosen[0]["content"] == rejected[0]["content"]:
        return "chosen and rejected are the same"
    return None
