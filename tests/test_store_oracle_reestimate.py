"""The loop's oracles are annotators estimated like any other (issue 13): their labels, stored by
``record_answers``, trigger re-estimation of every reliability once ``reliability.every`` labels came in,
in a transaction of its own after theirs commits, and the trees' beliefs follow the new estimates.
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from argtree.oracle import Answer, Query
from argtree.tree import ArgumentTree, Node

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401
from sqlalchemy import select  # noqa: E402

from argtree.store import (AnnotatorEstimate, add_annotator, save_tree, session_scope, set_queue_settings,  # noqa: E402
                           submit_label, tree_nodes)
from argtree.store.models import Annotator, Setting, Tree  # noqa: E402
from argtree.store.oracles import record_answers  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

fast_password_hashing()


@dataclass
class ScriptedOracle:
    name: str = "dataset:test"
    reliability: float = 0.9
    synchronous: bool = True


def forest(url, every):
    tree = ArgumentTree([Node("r", "Is the harbour busy?", prior=0.5)] + [
        Node(f"p{i}", f"Ship number {i} docked this week.", parent="r", p_if_true=0.7, p_if_false=0.4)
        for i in range(6)])
    with session_scope(url) as s:
        tid = save_tree(s, tree)
        s.add(Setting(key="reliability.every", value=every))
        set_queue_settings(s, overlap=3)
        people = [add_annotator(s, n, "password123").id for n in ("ann", "bea")]
        pids = [n.proposition_id for n in tree_nodes(s, tid) if n.parent_id is not None]
        for aid in people:
            for pid in pids:
                submit_label(s, aid, pid, True)
    return tid, pids


def test_oracle_labels_trigger_reestimation_and_beliefs_follow(url):
    tid, pids = forest(url, every=1)
    with session_scope(url, readonly=True) as s:
        assert s.scalar(select(AnnotatorEstimate.annotator_id)) is None   # people's answers alone: not yet
        before = s.get(Tree, tid).root_belief
    oracle = ScriptedOracle()
    with session_scope(url) as s:   # the oracle says the opposite of both people, everywhere
        n = record_answers(s, oracle, [Query(f"q{i}", pid, tid) for i, pid in enumerate(pids)],
                           [Answer(value=False)] * len(pids))
    assert n == len(pids)
    with session_scope(url, readonly=True) as s:
        est = {s.get(Annotator, e.annotator_id).name: e for e in s.scalars(select(AnnotatorEstimate))}
        assert set(est) == {"ann", "bea", oracle.name}
        assert est[oracle.name].reliability < 0.9 and est[oracle.name].n_labels == len(pids)
        after = s.get(Tree, tid).root_belief
    assert after != pytest.approx(before, abs=1e-6)
    check_consistency(url)   # every stored belief equals the core's with the estimates stored now


def test_no_reestimation_when_switched_off_or_rolled_back(url):
    tid, pids = forest(url, every=0)
    with session_scope(url) as s:
        record_answers(s, ScriptedOracle(), [Query("q", pids[0], tid)], [Answer(value=False)])
    with session_scope(url) as s:
        assert s.scalar(select(AnnotatorEstimate.annotator_id)) is None
        s.get(Setting, "reliability.every").value = 1
    with pytest.raises(RuntimeError):
        with session_scope(url) as s:
            record_answers(s, ScriptedOracle(), [Query("q", pids[1], tid)], [Answer(value=False)])
            raise RuntimeError("the loop died before committing")
    with session_scope(url, readonly=True) as s:
        assert s.scalar(select(AnnotatorEstimate.annotator_id)) is None
    check_consistency(url)
