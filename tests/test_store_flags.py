"""Consistency flags and their recorded resolution (issue 13), on SQLite and PostgreSQL, and ``argtree flags``."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import select

from argtree.store import Node as NodeRow, add_annotator, save_tree, session_scope, submit_label
from argtree.store.flags import find_flags, negation_key, resolve_flag
from argtree.store.testing import fast_password_hashing
from store_fixtures import pg_module, url  # noqa: F401
from argtree.tree import ArgumentTree, Evidence, Node

fast_password_hashing()

# The issue's tree: "Ad-hoc collaboration drops." at 0.93 and "... does not drop." at 0.83, in one tree.
TREE = ArgumentTree([Node("q", "Is remote work more productive than office work?", prior=0.5),
                     Node("b", "Ad-hoc collaboration drops.", parent="q", p_if_true=0.5, p_if_false=0.8),
                     Node("c", "Ad-hoc collaboration does not drop.", parent="q", p_if_true=0.6, p_if_false=0.4),
                     Node("d", "Offices are noisy.", parent="q", p_if_true=0.6, p_if_false=0.5)])
EVIDENCE = [Evidence("b", True, 0.93), Evidence("c", True, 0.85)]
OTHER = ArgumentTree([Node("r", "Should we keep the office?", prior=0.95),
                      Node("d", "Offices are noisy.", parent="r", p_if_true=0.99, p_if_false=0.01)])


def test_negation_key_matches_the_issue_pair():
    a, b = negation_key("Ad-hoc collaboration drops."), negation_key("Ad-hoc collaboration doesn't drop.")
    assert a[0] == b[0] and a[1] != b[1]
    assert negation_key("Ad-hoc collaboration never drops.")[1] == 1
    assert negation_key("Collaboration drops.")[0] != a[0]




def test_flags_are_found_and_a_resolution_is_recorded(url):
    with session_scope(url) as s:
        ids = {n: add_annotator(s, n, f"{n}-password", admin=n == "boss").id for n in ("amy", "ben", "boss")}
        tid = save_tree(s, TREE, EVIDENCE)
        other = save_tree(s, OTHER)
        assert find_flags(s) != []
    with session_scope(url) as s:
        d = s.scalar(select(NodeRow.proposition_id).where(NodeRow.local_id == "d").limit(1))
        submit_label(s, ids["amy"], d, True, request_id="a")
        submit_label(s, ids["ben"], d, False, request_id="b")
    with session_scope(url) as s:
        flags = {f.key: f for f in find_flags(s)}
        kinds = sorted(f.kind for f in flags.values())
        assert kinds == ["labels", "negation", "numbers"], flags
        neg = next(f for f in flags.values() if f.kind == "negation")
        assert set(neg.texts) == {"Ad-hoc collaboration drops.", "Ad-hoc collaboration does not drop."}
        assert neg.tree_ids == (tid,)
        assert "amy" in flags[f"labels:{d}"].why and "ben" in flags[f"labels:{d}"].why
        assert set(flags[f"numbers:{d}"].tree_ids) == {tid, other}
        # Unreliable annotators' conflicts are not flags.
        assert f"labels:{d}" not in {f.key for f in find_flags(s, reliable=0.95)}
        resolve_flag(s, neg.key, by=ids["boss"], note="merged the two premises")
        with pytest.raises(ValueError):
            resolve_flag(s, "bogus:1")
    with session_scope(url) as s:
        assert neg.key not in {f.key for f in find_flags(s)}
        (done,) = [f for f in find_flags(s, include_resolved=True) if f.key == neg.key]
        assert done.resolved["by"] == "boss" and done.resolved["note"] == "merged the two premises"


def test_flags_command(tmp_path):
    from click.testing import CliRunner

    from argtree.cli import main

    home = tmp_path / "home"

    def run(*args):
        r = CliRunner().invoke(main, list(args), env={"ARGTREE_DATABASE_URL": None, "ARGTREE_HOME": str(home)})
        return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)

    assert run("db", "upgrade").returncode == 0
    with session_scope(f"sqlite:///{home / 'argtree.db'}") as s:
        add_annotator(s, "boss", "boss-password", admin=True)
        save_tree(s, TREE, EVIDENCE)
    out = json.loads(run("flags", "--json").stdout)
    assert [f["kind"] for f in out] == ["negation"]
    key = out[0]["key"]
    r = run("flags", "--resolve", key, "--by", "boss", "--note", "fixed")
    assert r.returncode == 0, r.stderr
    assert json.loads(run("flags", "--json").stdout) == []
    assert json.loads(run("flags", "--all", "--json").stdout)[0]["resolved"]["by"] == "boss"
    bad = run("flags", "--resolve", "labels:999")
    assert bad.returncode == 2 and "no flag" in bad.stderr
