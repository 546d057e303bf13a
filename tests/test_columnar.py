"""The columnar load path (issue 15) against the per-node specification (``argtree.io.from_dict``).

Same verdict and the same message on the bad-input matrix, the issue's reproductions and random
corruptions of random trees; the same beliefs and VoI (bit for bit) and the same ranking on random
valid trees, through the library and through `argtree infer/voi --json`.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node, TreeError
from argtree.cli import main
from argtree.commands.core import rank_order
from argtree.inference import MODEL_MODES, beliefs, compile_tree
from argtree.io import dumps, from_dict, loads_columns, loglik, parse, to_dict, validate
from argtree.voi import rank, voi
from strategies import trees
from test_cli_core import BAD

relaxed = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec(text) -> str | None:
    """The per-node specification's verdict: None (valid) or its message."""
    try:
        from_dict(parse(text)[0])
    except TreeError as err:
        return str(err)
    return None


def columnar(text) -> str | None:
    """The columnar validator's verdict on a cleanly parsed document."""
    data, clean = parse(text)
    assert clean
    try:
        validate(data, len(text), raw=text)
    except TreeError as err:
        return str(err)
    return None


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_matrix_same_message(name):
    text, node, field = BAD[name]
    try:
        data, clean = parse(text)
    except TreeError as err:  # not JSON at all: one path for both
        assert name == "not json" and "not JSON" in str(err)
        return
    if not clean:  # NaN: msgspec refuses it; the per-node path is the one that speaks
        assert "NaN" in text
        with pytest.raises(TreeError) as err:
            loads_columns(text)
        assert str(err.value) == spec(text)
        return
    message = columnar(text)
    assert message is not None and message == spec(text)
    if node is not None:
        assert f"node {node!r}" in message
    if field is not None:
        assert f"field {field!r}" in message


def test_issue_reproductions_same_message():
    from test_fuzz_inputs import CASES

    for name, (text, node, field) in CASES.items():
        raw = text.encode("utf-8", "surrogatepass")
        with pytest.raises(TreeError) as err:
            loads_columns(raw)
        assert str(err.value) == spec(raw), name
        assert f"field {field!r}" in str(err.value), name


# -- random corruptions of random trees: several faults at once, the first one must win in both --

CORRUPT = [
    ("p_if_true", 1.5), ("p_if_false", -0.1), ("p_if_true", True), ("p_if_false", "0.3"), ("p_if_true", None),
    ("prior", 0.5), ("prior", 2), ("parent", "nope"), ("parent", 7), ("parent", "SELF"), ("parent", "n0"),
    ("id", "n1"), ("id", ""), ("id", 5), ("id", "i" * 201), ("text", ""), ("text", "   "), ("text", None),
    ("text", "x" * 10_001), ("rationale", "r" * 70_000), ("credence", 0.7), ("DEL", "p_if_true"), ("DEL", "text"),
    ("DEL", "parent"), ("p_if_true", 10 ** 400), ("extra", {"deep": [1, {"k": "v"}]}),
]
EV_CORRUPT = [("value", "yes"), ("value", None), ("reliability", 0.5), ("reliability", 1.2), ("reliability", True),
              ("node", "nope"), ("node", 3), ("source", "model"), ("DEL", "value"), ("reliability", 10 ** 400),
              ("note", "n" * 70_000)]


def corrupt(case, rnd: random.Random) -> str:
    tree, evidence = case
    doc = to_dict(tree, evidence)
    for _ in range(rnd.randint(1, 4)):
        if doc["evidence"] and rnd.random() < 0.3:
            entry = rnd.choice(doc["evidence"])
            key, value = rnd.choice(EV_CORRUPT)
            if key == "DEL":
                entry.pop(value, None)
            else:
                entry[key] = value
            continue
        node = rnd.choice(doc["nodes"])
        key, value = rnd.choice(CORRUPT)
        if key == "DEL":
            node.pop(value, None)
        elif key == "parent" and value == "SELF":
            node["parent"] = node["id"]
        else:
            node[key] = value
    if rnd.random() < 0.2:
        doc["nodes"].append(dict(rnd.choice(doc["nodes"])))
    if rnd.random() < 0.1:
        doc["evidence"].append({"node": rnd.choice(doc["nodes"])["id"], "value": True})
    return json.dumps(doc)


@relaxed
@given(trees(), st.integers(0, 2**32))
def test_random_corruptions_same_verdict_and_message(case, seed):
    text = corrupt(case, random.Random(seed)).encode()
    assert columnar(text) == spec(text)


def test_many_random_corruptions_are_mostly_rejected():
    """The corruption generator above must mostly produce bad files, or the property proves little."""
    rnd = random.Random(15)
    rejected = 0
    for k in range(300):
        n = rnd.randint(2, 30)
        nodes = [Node("n0", "root", prior=0.5)] + [
            Node(f"n{i}", f"premise {i}", f"n{rnd.randrange(i)}", p_if_true=rnd.random(), p_if_false=rnd.random())
            for i in range(1, n)]
        ev = (Evidence(f"n{rnd.randrange(1, n)}", True, 0.8),)
        text = corrupt((ArgumentTree(nodes), ev), rnd).encode()
        message = columnar(text)
        assert message == spec(text)
        rejected += message is not None
    assert rejected >= 200


# -- valid trees: identical numbers -----------------------------------------------------------

def _with_model_evidence(case, rnd: random.Random):
    tree, evidence = case
    extra = []
    for nid in list(tree.nodes)[1:]:
        if rnd.random() < 0.3:
            extra.append(Evidence(nid, rnd.random() < 0.5, rnd.choice([0.5, 0.6, 0.83, 0.99]), {"source": "model"}))
    return tree, tuple(evidence) + tuple(extra)


@relaxed
@given(trees(), st.integers(0, 2**32))
def test_valid_trees_same_beliefs_and_voi_bit_for_bit(case, seed):
    tree, evidence = _with_model_evidence(case, random.Random(seed))
    text = dumps(tree, evidence)
    try:
        old = beliefs(tree, evidence)
    except TreeError as err:  # contradictory evidence: the same refusal
        with pytest.raises(TreeError) as new:
            loads_columns(text)
        assert str(new.value) == str(err)
        return
    cols = loads_columns(text)
    new = dict(zip(cols.ids, cols.ct.to_caller(cols.prop.down()).tolist()))
    assert new == old  # exact
    for mode in MODEL_MODES:
        ct = compile_tree(tree)
        data = json.loads(text)
        ev_idx = np.array([list(tree.nodes).index(e["node"]) for e in data["evidence"]], dtype=np.int64)
        le = loglik(ct, ev_idx, np.array([e["value"] for e in data["evidence"]], dtype=bool),
                    np.array([e.get("reliability", 1.0) for e in data["evidence"]], dtype=float),
                    np.array([e.get("source") == "model" for e in data["evidence"]], dtype=bool), mode)
        assert np.array_equal(le, ct.loglik(evidence, mode))  # bit for bit, -inf included
    assert cols.tree.nodes == tree.nodes and cols.evidence == evidence


@relaxed
@given(trees(), st.sampled_from(["shift", "decision", "info"]))
def test_cli_voi_and_infer_json_equal_the_object_path(tmp_path_factory, case, metric):
    tree, evidence = case
    try:
        scores = voi(tree, evidence, metric)
        bel = beliefs(tree, evidence)
    except TreeError:
        return
    path = tmp_path_factory.mktemp("t") / "t.json"
    path.write_text(dumps(tree, evidence), encoding="utf-8")
    res = CliRunner().invoke(main, ["voi", str(path), "--json", "--metric", metric])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["voi"]
    assert list(out.items()) == rank(scores)  # same order, same numbers
    res = CliRunner().invoke(main, ["infer", str(path), "--json"])
    assert json.loads(res.stdout) == {"beliefs": bel}


def test_rank_order_equals_rank_on_ties_and_rounding_edges():
    rnd = random.Random(7)
    for trial in range(200):
        n = rnd.randint(1, 400)
        pool = [0.0, 1e-13, 0.25, 0.1 + 0.2, 0.3]
        # Values whose 12th decimal sits on a half (where numpy's and Python's rounding can differ).
        pool += [(k + 0.5) / 1e12 for k in range(1, 50)] + [0.123456789012 + 5e-13, 0.5 - 5e-13]
        values = [rnd.choice(pool) if rnd.random() < 0.5 else rnd.random() * rnd.choice([1, 1e-6, 1e-11])
                  for _ in range(n)]
        ids = [rnd.choice(["a", "b", "n1", "n10", "n2", "é", "Z"]) + str(i) for i in range(n)]
        rnd.shuffle(ids)
        expected = rank(dict(zip(ids, values)))
        got = [(ids[i], values[i]) for i in rank_order(ids, np.array(values)).tolist()]
        assert got == expected, trial


def test_columns_build_objects_only_on_request():
    rnd = random.Random(3)
    nodes = [Node("n0", "root", prior=0.4)] + [
        Node(f"n{i}", f"p {i}", f"n{rnd.randrange(i)}", p_if_true=0.7, p_if_false=0.2, extra={"rationale": "why"})
        for i in range(1, 50)]
    text = dumps(ArgumentTree(nodes, {"model": "m"}), (Evidence("n3", True, 0.9, {"annotator": "x"}),))
    cols = loads_columns(text)
    assert cols._objects is None  # inference needed no Node
    assert cols.tree.nodes["n5"].extra == {"rationale": "why"} and cols.tree.meta == {"model": "m"}
    assert cols.evidence == (Evidence("n3", True, 0.9, {"annotator": "x"}),)


def test_index_matches_a_dict_and_falls_back_on_equal_hashes():
    from argtree.io import _Index

    rnd = random.Random(5)
    for trial in range(50):
        ids = list(dict.fromkeys(f"{rnd.choice('abcé')}{rnd.randrange(10 ** rnd.randint(1, 4))}"
                                 for _ in range(rnd.randint(1, 300))))
        keys = [rnd.choice(ids) if rnd.random() < 0.7 else rnd.choice([None, "zz", "a", ""]) for _ in range(200)]
        expected = np.array([{k: i for i, k in enumerate(ids)}.get(k, -1) for k in keys])
        index = _Index(ids)
        assert not index.has_duplicates()
        assert np.array_equal(index.lookup(keys), expected)
        forced = _Index(ids)
        forced.dict = dict(zip(ids, range(len(ids))))  # what equal hashes (a collision) lead to
        assert np.array_equal(forced.lookup(keys), expected)
    assert _Index(["a", "b", "a"]).has_duplicates()


def test_json_object_is_msgspecs_dict_encoding_byte_for_byte():
    import msgspec

    from argtree.commands.core import json_object

    rnd = random.Random(9)
    for keys in (["a", "b"], [], ['q"uote', "x"], ["é", "\\back", "tab\t", "\x1b[2J", "\u202e", "a,b", '","']):
        values = [rnd.random() * 10 ** rnd.randint(-20, 5) for _ in keys]
        assert json_object(keys, values) == msgspec.json.encode(dict(zip(keys, values)))
        assert json.loads(json_object(keys, values)) == dict(zip(keys, values))
