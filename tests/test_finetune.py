"""Fine-tuning: data checks, the version registry, killed runs, and the loop -> export -> LoRA -> answer path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from argtree.finetune import FinetuneError, register, registry, resolve_version, sft_records, train


def _model_cache() -> str:
    """The converted bundled model is shared (converting takes a while); versions and registry are not."""
    from argtree.llm.local import model_cache_dir

    return str(model_cache_dir())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "versions"


def test_sft_records_become_conversational_prompt_completion():
    fmt, rows = sft_records([{"prompt": "Is A true?\n", "completion": "Yes"}])
    assert fmt == "prompt-completion"
    assert rows == [{"prompt": [{"role": "user", "content": "Is A true?"}],
                     "completion": [{"role": "assistant", "content": "Yes"}]}]
    fmt, rows = sft_records([{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                                           {"role": "assistant", "content": "A"}]}])
    assert fmt == "conversational" and rows[0]["completion"] == [{"role": "assistant", "content": "A"}]
    assert sft_records([{"text": "hello"}]) == ("text", [{"text": "hello"}])


@pytest.mark.parametrize("records, message", [
    ([], "empty"),
    ([{"prompt": "Q", "chosen": "Yes", "rejected": "No"}], "preference dataset"),
    ([{"prompt": "Q", "completions": ["a"], "labels": [True]}], "stepwise dataset"),
    ([{"text": "a"}, {"prompt": "Q", "completion": "A"}], "mixes formats"),
    ([{"question": "Q"}], "matches none"),
    ([{"messages": [{"role": "user", "content": "Q"}]}], "ending with the assistant"),
    ([{"prompt": "Q", "completion": ""}], "non-empty"),
])
def test_bad_training_data_is_refused(records, message):
    with pytest.raises(FinetuneError, match=message):
        sft_records(records)


def test_registry_names_and_latest(cache, tmp_path):
    with pytest.raises(FinetuneError, match="no fine-tuned model version yet"):
        resolve_version("latest")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    register("v1", str(a), "bundled", "lora", {})
    register("v2", str(b), "bundled", "lora", {})
    assert [v["name"] for v in registry()] == ["v1", "v2"]
    assert resolve_version("latest") == str(b) and resolve_version("v1") == str(a)
    assert resolve_version("bundled") == "bundled"  # not a version: passed on to the loader
    b.rmdir()
    with pytest.raises(FinetuneError, match="gone"):
        resolve_version("v2")


def test_train_refuses_before_loading_anything(cache, tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(FinetuneError, match="empty"):
        train(str(empty), name="x")
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"prompt": "Q", "completion": "A"}) + "\n")
    with pytest.raises(FinetuneError, match="use letters"):
        train(str(good), name="../evil")
    with pytest.raises(FinetuneError, match="use letters"):
        train(str(good), name="latest")
    (cache / "taken").mkdir(parents=True)
    with pytest.raises(FinetuneError, match="already exists"):
        train(str(good), name="taken")


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "argtree.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_cli_bad_data_exits_2(tmp_path):
    env = dict(os.environ, ARGTREE_HOME=str(tmp_path / "h"))
    wrong = tmp_path / "w.jsonl"
    wrong.write_text(json.dumps({"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}) + "\n")
    res = _cli("finetune", "--data", str(wrong), env=env)
    assert res.returncode == 2 and "openai-dpo dataset" in res.stderr and "Traceback" not in res.stderr
    res = _cli("finetune", "--data", str(tmp_path / "missing.jsonl"), env=env)
    assert res.returncode == 2 and "missing.jsonl" in res.stderr


FACTS = [{"messages": [{"role": "user", "content": f"Is the following statement true? Answer Yes or No.\n"
                                                   f"Statement: {s}"},
                       {"role": "assistant", "content": a}]}
         for s, a in [("Water is wet.", "Yes"), ("Fire is cold.", "No"), ("The sun is a star.", "Yes"),
                      ("Fish can fly.", "No")]]


@pytest.mark.model
def test_unknown_base_and_killed_run_leave_versions_intact(tmp_path):
    env = dict(os.environ, ARGTREE_MODEL_CACHE=_model_cache(), ARGTREE_HOME=str(tmp_path / "h"))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in FACTS * 50))
    res = _cli("finetune", "--data", str(data), "--base", "no-such-model-xyz", "--name", "x", env=env)
    assert res.returncode == 2 and "no-such-model-xyz" in res.stderr and "Traceback" not in res.stderr
    models = tmp_path / "versions"
    first = _cli("finetune", "--data", str(data), "--name", "v1", "--steps", "1", "--batch-size", "1",
                 "--top-layers", "1", "--rank", "2", "--dir", str(models / "v1"), "--json", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    v1 = json.loads(first.stdout)
    before = sorted(p.name for p in (models / "v1").iterdir())
    proc = subprocess.Popen([sys.executable, "-m", "argtree.cli", "finetune", "--data", str(data), "--name", "v2",
                             "--steps", "200", "--batch-size", "1", "--dir", str(models / "v2")],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    seen = ""
    while time.time() < deadline and "Tokenizing" not in seen and "step" not in seen:
        seen += proc.stderr.read(200) or ""
    time.sleep(3)  # now inside the training loop
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (models / "v2").exists()
    assert sorted(p.name for p in (models / "v1").iterdir()) == before
    reg = json.loads((tmp_path / "h" / "versions" / "registry.json").read_text())
    assert [v["name"] for v in reg["versions"]] == ["v1"]  # the killed run registered nothing
    from argtree.llm import make_backend

    be = make_backend("local", v1["path"], device="cpu")
    p = be.score_yes(["Is the following statement true? Answer Yes or No.\nStatement: Water is wet."])[0]
    assert 0.0 <= p <= 1.0


@pytest.mark.model
@pytest.mark.slow
def test_loop_export_finetune_and_the_new_version_answers(tmp_path):
    """End to end with the bundled model: loop (dataset oracle) -> export -> LoRA a few steps -> load -> answer."""
    from argtree.store.testing import dispose, sqlite_db

    url = sqlite_db(tmp_path)
    env = dict(os.environ, ARGTREE_HOME=str(tmp_path / "h"), ARGTREE_DATABASE_URL=url,
               ARGTREE_MODEL_CACHE=_model_cache())
    data = tmp_path / "sqa.json"
    data.write_text(json.dumps([{"qid": "1", "question": "Is the sun a star?", "answer": True,
                                 "facts": ["The sun is a star."]}]))
    res = _cli("loop", "--oracle", "dataset", "--dataset", str(data), "--budget", "1", "--retries", "0",
               "--json", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["questions"] == 1 and out["labels"] >= 1 and out["nodes"] >= 2
    res = _cli("export", "--kind", "posteriors", "--format", "conversational", "--out", str(tmp_path / "p.jsonl"),
               "--json", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout)["records"]["all"] >= 1
    res = _cli("finetune", "--data", str(tmp_path / "p.jsonl"), "--name", "e2e", "--steps", "2", "--batch-size", "1",
               "--rank", "4", "--top-layers", "2", "--json", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    version = json.loads(res.stdout)
    assert version["name"] == "e2e" and version["meta"]["steps"] == 2
    assert "loss" in res.stderr  # progress and loss shown
    # The new version loads by name ('latest') and answers.
    env_py = dict(env)
    code = ("import json; from argtree.finetune import resolve_version; from argtree.llm import make_backend; "
            "from argtree.expand import yes_no_prompt, credence_prompt, credence_schema; "
            "be = make_backend('local', resolve_version('latest'), device='cpu'); "
            "p = be.score_yes([yes_no_prompt('The sun is a star.')])[0]; "
            "g = be.generate_json([credence_prompt('The sun is a star.')], credence_schema(), max_new_tokens=20)[0]; "
            "print(json.dumps({'p': p, 'text': g.text, 'version': be.model_version}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_py, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    answer = json.loads(res.stdout.strip().splitlines()[-1])
    assert 0.0 <= answer["p"] <= 1.0
    assert 0.0 <= json.loads(answer["text"])["probability"] <= 1.0
    assert answer["version"].endswith("e2e")
    dispose(url)
