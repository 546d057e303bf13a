"""argtree models and the gated default version: what `ask`/`loop`/`eval` use when no --model is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from argtree.store import register_model_version, session_scope
from argtree.store.registry import (current_default_version, default_version_name, set_default_version,
                                    update_model_version_meta)
from argtree.store.testing import dispose, sqlite_db


def _models(url, home):
    return subprocess.run([sys.executable, "-m", "argtree.cli", "models", "--json", "--database", url],
                          capture_output=True, text=True, env=dict(os.environ, ARGTREE_HOME=str(home)), timeout=120)


def test_models_json_lists_lineage_metrics_and_the_default(tmp_path, monkeypatch):
    url = sqlite_db(tmp_path)
    adapter = tmp_path / "v1"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "bundled"}))
    with session_scope(url) as s:
        assert current_default_version(s) is None
        register_model_version(s, "bundled", kind="builtin", meta={"round": 0})
        register_model_version(s, "v1", path=str(adapter), kind="lora", parent="bundled",
                               meta={"round": 1, "data": {"sft_records": 10, "dpo_pairs": 3},
                                     "provenance": {"facts_from": {"dataset": 4}, "self_labels": False}})
        update_model_version_meta(s, "v1", heldout={"direct": {"brier": 0.24}, "tree": {"brier": 0.21}, "n": 60})
        set_default_version(s, "v1")
    res = _models(url, tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["v1"]["default"] is True and rows["bundled"]["default"] is False
    assert rows["v1"]["parent"] == "bundled" and rows["v1"]["round"] == 1
    assert rows["v1"]["heldout"]["tree"]["brier"] == 0.21 and rows["v1"]["heldout"]["direct"]["brier"] == 0.24
    assert rows["v1"]["data"]["dpo_pairs"] == 3 and rows["v1"]["provenance"]["facts_from"] == {"dataset": 4}
    # The gated default is what "no --model" resolves to.
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    from argtree.llm.local import default_model, resolve_model

    assert default_version_name() == "v1" and default_model() == "v1"
    assert resolve_model(None) == ("adapter", str(adapter))
    # Moving the default moves it; a version without weights (the fake backend's) is never served.
    with session_scope(url) as s:
        set_default_version(s, "bundled")
    assert default_model() == "bundled"
    with session_scope(url) as s:
        register_model_version(s, "rec", kind="recorded")
        set_default_version(s, "rec")
    assert default_version_name() is None and default_model() != "rec"
    # No database file: nothing is created just to look.
    missing = tmp_path / "none.db"
    assert default_version_name(f"sqlite:///{missing}") is None and not missing.exists()
    dispose(url)


def test_models_human_table_marks_the_default(tmp_path):
    url = sqlite_db(tmp_path)
    res = subprocess.run([sys.executable, "-m", "argtree.cli", "models", "--database", url], capture_output=True,
                         text=True, env=dict(os.environ, ARGTREE_HOME=str(tmp_path)), timeout=120)
    assert res.returncode == 0 and "no model versions" in res.stdout
    with session_scope(url) as s:
        register_model_version(s, "bundled", kind="builtin")
        set_default_version(s, "bundled")
    res = subprocess.run([sys.executable, "-m", "argtree.cli", "models", "--database", url], capture_output=True,
                         text=True, env=dict(os.environ, ARGTREE_HOME=str(tmp_path)), timeout=120)
    assert res.returncode == 0 and "bundled" in res.stdout and "*" in res.stdout
    with pytest.raises(Exception):
        with session_scope(url) as s:
            set_default_version(s, "nope")
    dispose(url)
