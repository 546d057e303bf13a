"""Fine-tuning exports: each format against its documented schema, splits that never share a proposition."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node
from argtree.datasets import (FORMATS, KINDS, DatasetError, LabeledTree, build, detect_format, examples, export,
                              normalize, read_jsonl, split_examples, split_value, truth)
from argtree.io import dump

# Schemas written from the docs, not from our code:
# TRL "Dataset formats and types" (huggingface.co/docs/trl/dataset_formats) and OpenAI's fine-tuning guides
# (supervised chat JSONL; direct preference optimization JSONL).
MSG = {"type": "object", "required": ["role", "content"],
       "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}}}
ASSISTANT = {"type": "object", "required": ["role", "content"],
             "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}}}
S = {"type": "string"}
SCHEMAS = {
    "text": {"required": ["text"], "properties": {"text": S}},
    "prompt-completion": {"required": ["prompt", "completion"], "properties": {"prompt": S, "completion": S}},
    "conversational": {"required": ["messages"], "properties": {"messages": {"type": "array", "items": MSG,
                                                                           "minItems": 2}}},
    "preference": {"required": ["prompt", "chosen", "rejected"],
                   "properties": {"prompt": S, "chosen": S, "rejected": S}},
    "unpaired-preference": {"required": ["prompt", "completion", "label"],
                            "properties": {"prompt": S, "completion": S, "label": {"type": "boolean"}}},
    "stepwise": {"required": ["prompt", "completions", "labels"],
                 "properties": {"prompt": S, "completions": {"type": "array", "items": S, "minItems": 1},
                                "labels": {"type": "array", "items": {"type": "boolean"}, "minItems": 1}}},
    "openai-chat": {"required": ["messages"], "properties": {"messages": {"type": "array", "items": MSG,
                                                                         "minItems": 2}}},
    "openai-dpo": {"required": ["input", "preferred_output", "non_preferred_output"],
                   "properties": {"input": {"type": "object", "required": ["messages"],
                                            "properties": {"messages": {"type": "array", "items": MSG},
                                                           "tools": {"type": "array"},
                                                           "parallel_tool_calls": {"type": "boolean"}}},
                                  "preferred_output": {"type": "array", "items": ASSISTANT, "minItems": 1},
                                  "non_preferred_output": {"type": "array", "items": ASSISTANT, "minItems": 1}}},
}
for schema in SCHEMAS.values():
    schema.update(type="object", additionalProperties=False)


def labeled(question: str, premises: list[tuple[str, float, float, bool | None]], prior=0.5, source="t") -> LabeledTree:
    nodes = [Node("q", question, prior=prior)]
    evidence = []
    for i, (text, p1, p0, value) in enumerate(premises):
        nodes.append(Node(f"p{i}", text, "q", p_if_true=p1, p_if_false=p0))
        if value is not None:
            evidence.append(Evidence(f"p{i}", value))
    return LabeledTree(ArgumentTree(nodes), tuple(evidence), source=source, model="base@1")


TREES = [
    labeled("Is the sky blue?", [("Air scatters blue light.", 0.9, 0.2, True), ("The sky is green.", 0.1, 0.5, False),
                                 ("Clouds exist.", 0.6, 0.5, None), ("Sunsets are red.", 0.6, 0.4, True)]),
    labeled("Do fish swim?", [("Fish have fins.", 0.95, 0.3, True), ("Fish live in water.", 0.9, 0.4, True),
                              ("Fish can fly.", 0.2, 0.3, False), ("Water is wet.", 0.5, 0.5, None),
                              ("Fins push water.", 0.8, 0.5, True)], prior=0.3),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_matches_its_documented_schema(kind, fmt):
    if fmt == "stepwise" and kind not in ("facts", "cruxes"):
        with pytest.raises(DatasetError, match="stepwise"):
            build(TREES, kind, fmt)
        return
    result = build(TREES, kind, fmt)
    records = result["splits"]["all"]
    assert records, (kind, fmt)
    for rec in records:
        jsonschema.validate(rec, SCHEMAS[fmt])
        json.dumps(rec, allow_nan=False)
        expected = "conversational" if fmt == "openai-chat" else fmt
        assert detect_format(rec) == expected
    if fmt == "stepwise":
        assert all(len(r["completions"]) == len(r["labels"]) for r in records)


def test_facts_say_what_the_oracle_said():
    recs = build(TREES, "facts", "prompt-completion")["splits"]["all"]
    answers = {r["prompt"].split("Statement: ")[1].split("\n")[0]: r["completion"] for r in recs}
    assert answers["Air scatters blue light."] == "Yes"
    assert answers["The sky is green."] == "No"
    assert "Clouds exist." not in answers  # unlabeled: no truth to teach
    assert len(recs) == 7


def test_truth_of_several_soft_labels_is_the_weight_of_evidence():
    assert truth([Evidence("a", True, 0.9), Evidence("a", False, 0.6)]) is True
    assert truth([Evidence("a", True, 0.6), Evidence("a", False, 0.9)]) is False
    assert truth([Evidence("a", True, 0.7), Evidence("a", False, 0.7)]) is None
    assert truth([Evidence("a", False, 0.99), Evidence("a", True)]) is True  # a hard label wins


def test_cruxes_rank_premises_by_how_far_their_label_moved_the_root():
    ex = examples(TREES[1:], "cruxes")[0]
    lines = ex.completion.splitlines()
    # Fish have fins (likelihood ratio 0.95/0.3) moves the root most; "can fly" labeled false
    # (ratio 0.8/0.7) least, so it is the rejected answer.
    assert lines == ["- Fish have fins.", "- Fish live in water.", "- Fins push water."]
    assert ex.rejected == "- Fish can fly."


def test_posteriors_are_the_exact_belief_given_the_labels():
    from argtree.inference import beliefs

    lt = TREES[0]
    ex = examples([lt], "posteriors")[0]
    assert ex.completion == f"{beliefs(lt.tree, lt.evidence)['q']:.2f}"
    assert ex.rejected == f"{beliefs(lt.tree, ())['q']:.2f}"


def test_split_is_by_proposition_and_deterministic():
    assert split_value("The sky is BLUE.") == split_value("  the sky is blue ")
    assert 0 <= split_value("x") < 1
    assert normalize("A  b.\n") == "a b"
    exs = examples(TREES, "facts")
    a = split_examples(exs, 0.5)
    b = split_examples(list(reversed(exs)), 0.5)
    assert sorted(e.key for e in a[0]) == sorted(e.key for e in b[0])


sentences = st.lists(st.sampled_from([f"claim {i}" for i in range(12)] + ["Claim 3.", "CLAIM 4"]),
                     min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([f"question {i}" for i in range(6)]), sentences,
                          st.lists(st.booleans(), min_size=5, max_size=5)), min_size=1, max_size=6),
       st.sampled_from(KINDS), st.floats(0.05, 0.95))
def test_splits_never_share_a_proposition(spec, kind, split):
    trees = []
    for q, texts, values in spec:
        trees.append(labeled(q, [(t, 0.8, 0.3, v) for t, v in zip(texts, values)]))
    try:
        exs = examples(trees, kind, "stepwise" if kind in ("facts", "cruxes") else "prompt-completion")
    except DatasetError:
        return
    train, held, _ = split_examples(exs, split)
    train_props = set().union(*(e.propositions for e in train)) if train else set()
    held_props = set().union(*(e.propositions for e in held)) if held else set()
    assert not train_props & held_props


def test_empty_and_wrong_input_give_clear_errors(tmp_path):
    unlabeled = labeled("Q?", [("a", 0.7, 0.2, None)])
    with pytest.raises(DatasetError, match="no facts examples in 1 tree"):
        build([unlabeled], "facts", "text")
    with pytest.raises(DatasetError, match="unknown kind"):
        build(TREES, "jokes", "text")
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError, match="empty"):
        read_jsonl(empty)
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "a"}\n[1]\n')
    with pytest.raises(DatasetError, match="b.jsonl:2"):
        read_jsonl(bad)
    with pytest.raises(DatasetError, match="matches none"):
        detect_format({"question": "x"})


def test_export_writes_splits_and_a_card_with_hashes(tmp_path):
    card = export(TREES, "facts", "openai-chat", str(tmp_path / "d.jsonl"), split=0.5)
    train, held = tmp_path / "d.train.jsonl", tmp_path / "d.eval.jsonl"
    saved = json.loads((tmp_path / "d.card.json").read_text())
    assert saved["files"]["train"]["records"] == len(train.read_text().splitlines())
    import hashlib

    assert saved["files"]["eval"]["sha256"] == hashlib.sha256(held.read_bytes()).hexdigest()
    assert saved["model_versions"] == ["base@1"]
    assert card["examples"] == 7 and saved["kind"] == "facts"


def test_cli_export_from_files(tmp_path):
    for i, lt in enumerate(TREES):
        dump(lt.tree, lt.evidence, tmp_path / f"t{i}.json")
    out = tmp_path / "x.jsonl"
    cmd = [sys.executable, "-m", "argtree.cli", "export", "--kind", "facts", "--format", "preference",
           "--out", str(out), "--json", "--from-files", str(tmp_path / "t0.json"), "--from-files",
           str(tmp_path / "t1.json")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    card = json.loads(res.stdout)
    assert card["records"] == {"all": 7}
    for line in out.read_text().splitlines():
        jsonschema.validate(json.loads(line), SCHEMAS["preference"])
    bad = subprocess.run(cmd[:-4] + ["--from-files", str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.json" in bad.stderr and "Traceback" not in bad.stderr
