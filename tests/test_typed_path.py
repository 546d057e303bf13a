"""The typed load path (``argtree.io.typed_columns``, issue 15) against the general one.

A plain file (only the format's keys) is decoded straight into structs and checked by columns; it
must give exactly what the general columnar path gives (arrays, numbers, objects), and any file
that is not plain and valid must make it step aside (None), so the general path words every error.
"""

from __future__ import annotations

import json
import random

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node, TreeError
from argtree.cli import main
from argtree.commands.core import EncodedKeys, _id_argsort, json_object, rank_order
from argtree.io import MAX_TEXT, dumps, from_dict, loads_columns, parse, to_dict, typed_columns, validate
from argtree.voi import rank
from strategies import trees
from test_cli_core import BAD
from test_columnar import corrupt

relaxed = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec(text) -> str | None:
    try:
        from_dict(parse(text)[0])
    except TreeError as err:
        return str(err)
    return None


def general(text):
    data, clean = parse(text)
    assert clean
    return validate(data, len(text), raw=text)


def assert_same_columns(a, b) -> None:
    """Two Columns hold the same compiled tree, evidence and passes, bit for bit."""
    assert tuple(a.ct.ids) == tuple(b.ct.ids)
    for f in ("order", "position", "parent", "levels", "p1", "p0"):
        x, y = getattr(a.ct, f), getattr(b.ct, f)
        assert x.dtype == y.dtype, f
        np.testing.assert_array_equal(x, y, err_msg=f)
    assert a.ct.prior == b.ct.prior
    np.testing.assert_array_equal(a.loglik, b.loglik)
    np.testing.assert_array_equal(a.prop.down(), b.prop.down())
    assert a.prop.log_evidence == b.prop.log_evidence and a.prop.root_belief == b.prop.root_belief
    np.testing.assert_array_equal(a.id_array(), b.id_array())


def with_model_evidence(case, rnd: random.Random):
    tree, evidence = case
    extra = [Evidence(nid, rnd.random() < 0.5, rnd.choice([0.5, 0.6, 0.99]), {"source": "model"})
             for nid in list(tree.nodes)[1:] if rnd.random() < 0.3]
    return tree, tuple(evidence) + tuple(extra)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_matrix_steps_aside_and_the_general_path_words_it(name):
    text = BAD[name][0]
    assert typed_columns(text) is None
    assert typed_columns(text.encode()) is None
    with pytest.raises(TreeError) as err:
        loads_columns(text)
    try:
        want = spec(text)
    except TreeError as parse_err:  # not JSON: both say so the same way
        want = str(parse_err)
    assert str(err.value) == want


@relaxed
@given(trees(), st.integers(0, 2**32))
def test_random_corruptions_same_verdict_through_the_typed_path(case, seed):
    text = corrupt(case, random.Random(seed)).encode()
    want = spec(text)
    cols = typed_columns(text)
    if want is not None:
        assert cols is None
        with pytest.raises(TreeError) as err:
            loads_columns(text)
        assert str(err.value) == want
    elif cols is not None:  # valid and plain: the same as the general path
        assert_same_columns(cols, general(text))


@relaxed
@given(trees(), st.integers(0, 2**32))
def test_plain_valid_files_take_the_typed_path_and_equal_the_general_one(case, seed):
    tree, evidence = with_model_evidence(case, random.Random(seed))
    text = dumps(tree, evidence).encode()
    try:
        want = general(text)
    except TreeError as err:  # contradictory evidence: the typed path steps aside, same message
        assert typed_columns(text) is None
        with pytest.raises(TreeError) as new:
            loads_columns(text)
        assert str(new.value) == str(err)
        return
    cols = typed_columns(text)
    assert cols is not None and not isinstance(cols.data, dict)
    assert_same_columns(cols, want)
    assert cols.tree.nodes == want.tree.nodes and cols.tree.meta == want.tree.meta == {}
    assert cols.evidence == want.evidence


def test_integers_and_explicit_nulls_keep_their_types_in_the_objects():
    text = json.dumps({"format": "argtree/1", "nodes": [
        {"id": "q", "parent": None, "text": "Q", "prior": 1},
        {"id": "a", "parent": "q", "text": "A", "p_if_true": 1, "p_if_false": 0},
        {"id": "b", "parent": "q", "text": "B", "p_if_true": 0.25, "p_if_false": 0.5}],
        "evidence": [{"node": "b", "value": True, "reliability": 1}, {"node": "a", "value": True, "source": None},
                     {"node": "b", "value": False, "reliability": 0.75, "source": "model"}]})
    cols = typed_columns(text)
    want = general(text.encode())
    assert cols is not None
    assert_same_columns(cols, want)
    assert cols.tree.nodes == want.tree.nodes and cols.evidence == want.evidence
    assert type(cols.tree.nodes["q"].prior) is int and type(cols.tree.nodes["a"].p_if_true) is int
    assert type(cols.evidence[0].reliability) is int
    assert cols.evidence[1].extra == {"source": None} and cols.evidence[0].extra == {}
    assert json.loads(dumps(cols.tree, cols.evidence)) == json.loads(dumps(want.tree, want.evidence))


@pytest.mark.parametrize("change", [
    "node extra", "meta", "evidence extra", "nul escape", "source too long"])
def test_files_it_does_not_handle_go_the_general_way(change):
    nodes = [Node("q", "Q", prior=0.5), Node("a", "A", "q", p_if_true=0.9, p_if_false=0.2)]
    evidence = [Evidence("a", True, 0.8)]
    meta = {}
    if change == "node extra":
        nodes[1] = Node("a", "A", "q", p_if_true=0.9, p_if_false=0.2, extra={"rationale": "why"})
    elif change == "meta":
        meta = {"model": "m"}
    elif change == "evidence extra":
        evidence = [Evidence("a", True, 0.8, {"annotator": "x"})]
    elif change == "nul escape":
        nodes[1] = Node("a", "a backslash-u0000: \\u0000", "q", p_if_true=0.9, p_if_false=0.2)  # valid text
    else:
        evidence = [Evidence("a", True, 0.8, {"source": "s" * 9000})]
    text = dumps(ArgumentTree(nodes, meta), evidence)
    assert typed_columns(text) is None
    cols = loads_columns(text)
    assert cols.tree.nodes == ArgumentTree(nodes, meta).nodes and cols.tree.meta == meta
    assert cols.evidence == tuple(evidence)


@pytest.mark.parametrize("length", [MAX_TEXT // 3, MAX_TEXT // 3 + 1, MAX_TEXT - 1])
def test_long_texts_in_bounds_are_accepted_either_way(length):
    """Up to MAX_TEXT / 3 characters (NFC cannot make them too long) the typed path takes a text;
    past that the general path does, NFC check included."""
    nodes = [Node("q", "Q", prior=0.5), Node("a", "é" * length, "q", p_if_true=0.9, p_if_false=0.2)]
    text = dumps(ArgumentTree(nodes), ())
    cols = typed_columns(text)
    assert (cols is not None) == (length <= MAX_TEXT // 3)
    cols = loads_columns(text)
    assert_same_columns(cols, general(text.encode()))
    assert cols.tree.nodes["a"].text == "é" * length


def test_a_text_that_nfc_makes_too_long_is_refused_the_same_way():
    # U+0958 (DEVANAGARI QA) is one code point that NFC makes two, so 5,001 of them become 10,002.
    node = {"id": "a", "parent": "q", "text": "\u0958" * 5001, "p_if_true": 0.5, "p_if_false": 0.5}
    text = json.dumps({"format": "argtree/1", "nodes": [{"id": "q", "text": "Q", "prior": 0.5}, node]})
    assert typed_columns(text) is None
    with pytest.raises(TreeError) as err:
        loads_columns(text)
    assert str(err.value) == spec(text) and "NFC" in str(err.value)


# -- the JSON writer and the ranking ------------------------------------------------------------

def test_json_object_in_a_given_order_is_msgspecs_dict_encoding():
    rnd = random.Random(21)
    for trial in range(60):
        n = rnd.randint(1, 300)
        keys = [rnd.choice(["n", "é", "a,b", "\\", "\u202e", "x" * rnd.randint(1, 40)]) + str(i) for i in range(n)]
        values = [rnd.random() * 10 ** rnd.randint(-300, 300) * rnd.choice([1, -1]) for _ in range(n)]
        values[rnd.randrange(n)] = 0.0
        order = np.array(rnd.sample(range(n), rnd.randint(1, n)), dtype=np.int64)
        vals = [values[i] for i in order.tolist()]
        want = msgspec.json.encode({keys[i]: v for i, v in zip(order.tolist(), vals)})
        assert json_object(keys, vals, order) == want
        assert json_object(tuple(keys), vals, order) == want
        assert json_object(keys, values) == msgspec.json.encode(dict(zip(keys, values)))
    # A key far longer than the rest, and keys with quotes: the dict is built after all, same bytes.
    for keys in (["k"] * 0 + [f"k{i}" for i in range(5)] + ["L" * 200], ['a"b', "c"]):
        values = [float(i) for i in range(len(keys))]
        assert json_object(keys, values) == msgspec.json.encode(dict(zip(keys, values)))
        order = np.arange(len(keys))[::-1].copy()
        assert json_object(keys, values[::-1], order) == msgspec.json.encode(
            {keys[i]: values[i] for i in order.tolist()})


@pytest.mark.parametrize("alphabet", ["ascii", "unicode"])
def test_rank_order_breaks_ties_by_id_with_ascii_and_unicode_ids(alphabet):
    rnd = random.Random(len(alphabet))
    letters = "abAB_-09" if alphabet == "ascii" else "aé\u4e2d\U0001f600Z"
    for trial in range(100):
        n = rnd.randint(1, 500)
        ids = list(dict.fromkeys("".join(rnd.choice(letters) for _ in range(rnd.randint(1, 6))) for _ in range(n)))
        values = [rnd.choice([0.0, 0.5, 1e-13, rnd.random()]) for _ in ids]
        got = [(ids[i], values[i]) for i in rank_order(np.array(ids, dtype=object), np.array(values)).tolist()]
        assert got == rank(dict(zip(ids, values))), trial


def test_encoded_keys_sort_like_python_strings():
    rnd = random.Random(33)
    for trial in range(100):
        letters = rnd.choice(["ab", "aZ_09", "aé\u4e2d\U0001f600\x7f\u00ff"])
        ids = list(dict.fromkeys("".join(rnd.choice(letters) for _ in range(rnd.randint(1, 7)))
                                 for _ in range(rnd.randint(1, 300))))
        enc = EncodedKeys.encode(ids)
        assert enc is not None and enc.plain
        at = np.array(rnd.sample(range(len(ids)), rnd.randint(0, len(ids))), dtype=np.int64)
        got = at[enc.argsort(at)].tolist()
        assert [ids[i] for i in got] == sorted(ids[i] for i in at.tolist()), trial
        np.testing.assert_array_equal(enc.argsort(at), _id_argsort(ids, at))
    assert EncodedKeys.encode(['a"b', "c"]) is None
    assert not EncodedKeys.encode(["a\\b", "c"]).plain and not EncodedKeys.encode(["a\nb"]).plain


@pytest.mark.parametrize("alphabet", ["ab", "aé\u4e2d\\", "xy\t"])
def test_cli_voi_json_ranks_tied_ids_as_rank_does(tmp_path, alphabet):
    """Many premises with equal VoI (ties broken by id), ids with and without escapes."""
    from click.testing import CliRunner

    from argtree.voi import voi

    rnd = random.Random(len(alphabet))
    names = list(dict.fromkeys("".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 5))) for _ in range(80)))
    names = [x for x in names if x != "root"]
    nodes = [Node("root", "root", prior=0.5)] + [
        Node(x, f"premise {k}", "root", p_if_true=0.7 if k % 3 else 0.6, p_if_false=0.3) for k, x in enumerate(names)]
    tree = ArgumentTree(nodes)
    path = tmp_path / "t.json"
    path.write_text(dumps(tree, ()), encoding="utf-8")
    res = CliRunner().invoke(main, ["voi", str(path), "--json"])
    assert res.exit_code == 0, res.output
    got = list(json.loads(res.stdout)["voi"].items())
    assert got == rank(voi(tree, ()))
    assert len({v for _, v in got}) < len(got)  # there were ties to break
