"""Model evidence (DESIGN.md): virtual evidence from the model's credence, the frontier rule, the three
root numbers; checked against brute-force enumeration of the joint (tests/reference.py)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree.calibration import IDENTITY, CalibrationMap
from argtree.inference import beliefs
from argtree.io import dumps, loads
from argtree.model_evidence import evidence_for_nodes, model_evidence, recalibrate, root_numbers
from argtree.tree import ArgumentTree, Evidence, Node, TreeError
from argtree.voi import voi

from reference import brute
from strategies import as_reference, trees


def _tree():
    return ArgumentTree([
        Node("q", "Question?", prior=0.5),
        Node("a", "Premise a.", parent="q", p_if_true=0.9, p_if_false=0.4),
        Node("b", "Premise b.", parent="q", p_if_true=0.2, p_if_false=0.7),
        Node("c", "Premise c.", parent="a", p_if_true=0.8, p_if_false=0.3),
    ], {"direct": {"p": 0.7, "calibrated": 0.6}})


def _ref(tree, evidence):
    """Brute-force beliefs with every given evidence entry counted (the caller filters)."""
    nodes, _ = as_reference(tree, ())
    return brute(nodes, [(e.node, e.value, e.reliability) for e in evidence])["beliefs"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_alone_model_evidence_sets_the_marginal_to_the_calibrated_credence(data):
    tree, _ = data.draw(trees(max_nodes=8, with_evidence=False))
    node = data.draw(st.sampled_from([n for n in tree.nodes if n != tree.root] or [tree.root]))
    if node == tree.root:
        return
    c = data.draw(st.floats(0.0, 1.0))
    m = _ref(tree, [])[node]
    # Within 1e-6 of 0 or 1 the likelihood ratio needs more digits than 1 - reliability keeps in a float
    # (m = 1 - 2e-8 gave 0.0099999956 for 0.01); elicited CPTs stay in [0.01, 0.99], far from that.
    if not 1e-6 < m < 1.0 - 1e-6:
        return
    cal = CalibrationMap("platt", a=0.5, b=0.2)
    ev = model_evidence(node, c, m, cal)
    assert ev.is_model and not ev.is_hard
    target = min(max(cal(c), 0.01), 0.99)
    assert _ref(tree, [ev])[node] == pytest.approx(target, abs=1e-9)       # the reference agrees ...
    if not tree.children(node):                                             # ... and argtree, at the frontier
        assert beliefs(tree, [ev])[node] == pytest.approx(target, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_frontier_rule_matches_brute_force_with_labels(data):
    tree, labels = data.draw(trees(max_nodes=8, with_evidence=True))
    credences = {n: data.draw(st.floats(0.02, 0.98)) for n in tree.nodes}
    model = evidence_for_nodes(tree, credences)
    assert all(e.node != tree.root for e in model)  # the root's credence is the direct answer, never evidence
    frontier = [e for e in model if not tree.children(e.node)]
    ev = tuple(labels) + tuple(model)
    try:
        ref_frontier = _ref(tree, list(labels) + frontier)
        ref_all = _ref(tree, list(labels) + list(model))
        ref_none = _ref(tree, list(labels))
    except TypeError:  # brute() returns None: contradictory hard labels
        return
    for mode, ref in (("frontier", ref_frontier), ("all", ref_all), ("none", ref_none)):
        got = beliefs(tree, ev, model=mode)
        for nid in tree.nodes:
            assert got[nid] == pytest.approx(ref[nid], abs=1e-9), (mode, nid)


def test_expanding_a_node_retires_its_model_evidence_and_keeps_the_record():
    leaf = ArgumentTree([Node("q", "Q?", prior=0.5), Node("a", "A.", parent="q", p_if_true=0.9, p_if_false=0.4)])
    ev = evidence_for_nodes(leaf, {"a": 0.95})
    before = beliefs(leaf, ev)
    assert before["a"] == pytest.approx(0.95)
    grown = leaf.replace(Node("c", "C.", parent="a", p_if_true=0.8, p_if_false=0.3))
    after = beliefs(grown, ev)  # a is expanded now: its premises speak for it
    assert after["a"] == pytest.approx(beliefs(grown, ())["a"])
    assert beliefs(grown, ev, model="all")["a"] == pytest.approx(0.95)
    # the record survives a round trip through argtree/1 and stays distinguishable from labels
    tree2, ev2 = loads(dumps(grown, ev))
    assert [e.is_model for e in ev2] == [True] and ev2[0].extra["credence"] == 0.95


def test_a_human_label_on_a_node_with_model_evidence_multiplies_and_a_hard_one_overrides():
    t = _tree()
    ev = evidence_for_nodes(t, {"b": 0.9, "c": 0.2})
    soft = Evidence("b", False, 0.8)
    got = beliefs(t, ev + [soft])
    ref = _ref(t, ev + [soft])
    assert all(got[n] == pytest.approx(ref[n], abs=1e-12) for n in t.nodes)
    hard = Evidence("b", False)
    assert beliefs(t, ev + [hard])["b"] == 0.0
    assert beliefs(t, ev + [hard])["q"] == pytest.approx(beliefs(t, [e for e in ev if e.node != "b"] + [hard])["q"])


def test_three_root_numbers_and_voi_on_the_trees_belief():
    t = _tree()
    ev = evidence_for_nodes(t, {"b": 0.9, "c": 0.2})
    nums = root_numbers(t, ev)
    assert nums["direct"] == 0.6 and nums["labels_only"] == pytest.approx(0.5)
    assert nums["tree"] != pytest.approx(0.5, abs=1e-3)
    assert voi(t, ev) != voi(t, ())  # VoI ranks on the belief with model evidence
    assert root_numbers(ArgumentTree([Node("q", "Q?", prior=0.3)]))["direct"] is None


def test_model_evidence_is_soft_and_named_when_bad():
    with pytest.raises(TreeError, match="'credence'"):
        model_evidence("a", 1.5, 0.5)
    with pytest.raises(TreeError, match="'marginal'"):
        model_evidence("a", 0.5, 1.0)
    with pytest.raises(TreeError, match="model evidence is soft"):
        Evidence("a", True, 1.0, {"source": "model"})
    # credence equal to the marginal says nothing: reliability 0.5 is allowed for model evidence only
    assert model_evidence("a", 0.3, 0.3).reliability == pytest.approx(0.5)
    with pytest.raises(TreeError):
        Evidence("a", True, 0.5)


def test_recalibrate_rebuilds_model_evidence_from_the_record():
    t = _tree()
    ev = evidence_for_nodes(t, {"b": 0.9})
    shrunk = recalibrate(t, ev, CalibrationMap("platt", a=0.0, b=0.0))  # maps everything to 0.5
    assert beliefs(t, shrunk)["b"] == pytest.approx(0.5)
    assert recalibrate(t, ev, IDENTITY) == tuple(ev)
    assert math.isclose(beliefs(t, ev)["b"], 0.9)


def test_exports_never_take_model_evidence_for_truth():
    from argtree.datasets import LabeledTree, examples, truth

    t = _tree()
    ev = evidence_for_nodes(t, {"b": 0.95, "c": 0.05})
    assert truth(ev) is None
    assert examples([LabeledTree(t, tuple(ev), source="t")], "facts") == []
    labeled = examples([LabeledTree(t, tuple(ev) + (Evidence("b", True),), source="t")], "facts")
    assert [(e.completion) for e in labeled] == ["Yes"]
