"""Inference and VoI agree with brute-force enumeration of the joint (DESIGN.md definitions)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from argtree import TreeError
from argtree.inference import beliefs
from argtree.voi import METRICS, voi
from reference import brute
from strategies import as_reference, trees

TOL = 1e-9


@settings(max_examples=int(os.environ.get("ARGTREE_EXAMPLES", 300)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_beliefs_and_voi_match_enumeration(case):
    tree, evidence = case
    ref = brute(*as_reference(tree, evidence))
    if ref is None:  # evidence of probability zero must be refused, naming a node
        with pytest.raises(TreeError) as err:
            beliefs(tree, evidence)
        assert err.value.node is not None and err.value.field == "evidence"
        return
    got = beliefs(tree, evidence)
    assert got.keys() == ref["beliefs"].keys()
    for nid, p in ref["beliefs"].items():
        assert got[nid] == pytest.approx(p, abs=TOL), nid
    for metric in METRICS:
        scores = voi(tree, evidence, metric)
        assert scores.keys() == ref[metric].keys(), metric
        for nid, v in ref[metric].items():
            assert scores[nid] == pytest.approx(v, abs=TOL), (metric, nid)
