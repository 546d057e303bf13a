"""``argtree export-tree`` and importing BIF/XMLBIF: other tools read our trees with the same numbers.

* pyAgrum loads the exported XMLBIF and BIF and, with the same labels entered (hard ones as
  observations, soft ones as likelihood vectors), gives the beliefs ``argtree infer`` prints, to 1e-9.
  pyAgrum's BIF *reader* parses numbers as 32-bit floats, so the BIF check uses probabilities a
  float32 holds exactly (k/1024); for any probability, pgmpy's BIF reader gives back every table
  entry bit for bit and pyAgrum agrees to float32 precision.
* GraphML read back by networkx has the same nodes, arcs and numbers.
* A tree exported to BIF/XMLBIF and imported again (``argtree import``) is the same tree.
* Networks that are not trees of binary propositions are refused with one line, exit status 2.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

gum = pytest.importorskip("pyagrum", reason="pyAgrum is a test dependency: pip install -e '.[test]'")
pytest.importorskip("pgmpy", reason="BIF/XMLBIF need pgmpy: pip install -e '.[interop,test]'")

from argtree import ArgumentTree, Evidence, Node, TreeError  # noqa: E402
from argtree.inference import beliefs  # noqa: E402
from argtree.interop import network_to_tree, read_network, to_bif, to_xmlbif, variable_names  # noqa: E402
from argtree.io import dump, load  # noqa: E402
from argtree.voi import voi  # noqa: E402
from strategies import trees  # noqa: E402
from store_fixtures import run  # noqa: E402

EXAMPLE = "argtree/examples/remote_work.json"


def random_case(seed: int, n: int = 40, dyadic: bool = False):
    """A random tree with awkward ids and texts, extra keys, hard and soft labels (two on one node)."""
    rng = np.random.default_rng(seed)

    def p():
        if dyadic:  # exactly representable as float32 too
            return float(rng.integers(1, 1024)) / 1024
        return float(rng.uniform(0.01, 0.99))

    ids = ["root"] + [f"n{i}" if i % 5 else f"node {i}; \"q\" {{{i}}} é" for i in range(1, n)]
    ids[3] = "variable"     # a BIF keyword
    ids[4] = "n7_"          # looks like a generated name
    ids[6] = "n10"          # the name node 10 (not an identifier) would get
    nodes = [Node(ids[0], "Is the root claim true?\nSecond line; with {braces} and \"quotes\" %41.", prior=p(),
                  extra={"model_credence": 0.7, "provenance": {"model": "x", "round": 1}})]
    for i in range(1, n):
        parent = int(rng.integers(max(0, i - 4), i)) if rng.random() < 0.6 else int(rng.integers(0, i))
        extra = {"rationale": f"because  {i}\t(tab)"} if i % 3 == 0 else {}
        nodes.append(Node(ids[i], f"Premise {i}: ünïcode, = signs, semicolons; 100% http://x.org/a /* not a "
                          f"comment */ // nor this", ids[parent],
                          p_if_true=p(), p_if_false=p(), extra=extra))
    tree = ArgumentTree(nodes, {"question": "Is the root claim true?", "model": {"name": "fake"}})
    evidence = []
    for k in rng.choice(n - 1, size=8, replace=False) + 1:
        rel = 1.0 if rng.random() < 0.5 else float(rng.uniform(0.6, 0.95))
        evidence.append(Evidence(ids[k], bool(rng.random() < 0.5), rel))
    evidence.append(Evidence(evidence[-1].node, not evidence[-1].value, 0.7))  # two labels on one node multiply
    return tree, tuple(evidence)


def enter_evidence(ie, evidence, names):
    """The same labels in pyAgrum: a likelihood vector per node (a hard label is [0, 1] or [1, 0])."""
    lik = {}
    for ev in evidence:
        a = ev.reliability
        v = [1 - a, a] if ev.value else [a, 1 - a]
        lik[names[ev.node]] = [x * y for x, y in zip(lik.get(names[ev.node], [1.0, 1.0]), v)]
    # scaled to a maximum of 1 (pyAgrum takes [0, 0.3] as P = 0.3, not as a likelihood of zero and 0.3)
    ie.setEvidence({k: [x / max(v) for x in v] for k, v in lik.items()})


def gum_beliefs(path, tree, evidence):
    bn = gum.loadBN(str(path))
    names = variable_names(tree)
    ie = gum.LazyPropagation(bn)
    enter_evidence(ie, evidence, names)
    ie.makeInference()
    return bn, {nid: ie.posterior(names[nid])[1] for nid in tree.nodes}


def infer_cli(home, tree, evidence, tmp_path):
    path = tmp_path / "tree.json"
    dump(tree, evidence, path)
    r = run(home, "infer", str(path), "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["beliefs"], path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pyagrum_reads_xmlbif_with_the_same_beliefs(tmp_path, seed):
    tree, evidence = random_case(seed)
    want, path = infer_cli(tmp_path, tree, evidence, tmp_path)
    out = tmp_path / "tree.bifxml"   # pyAgrum picks its reader by extension
    r = run(tmp_path, "export-tree", str(path), "--format", "xmlbif", "--out", str(out))
    assert r.returncode == 0, r.stderr
    bn, got = gum_beliefs(out, tree, evidence)
    assert bn.size() == len(tree) and bn.sizeArcs() == len(tree) - 1
    for nid in tree.nodes:
        assert got[nid] == pytest.approx(want[nid], abs=1e-9), nid
    # the root's table holds the prior exactly (full double precision in the file)
    assert bn.cpt(variable_names(tree)[tree.root])[1] == tree[tree.root].prior


@pytest.mark.parametrize("seed", [0, 1])
def test_pyagrum_reads_bif_with_the_same_beliefs(tmp_path, seed):
    tree, evidence = random_case(seed, dyadic=True)
    want, path = infer_cli(tmp_path, tree, evidence, tmp_path)
    out = tmp_path / "tree.bif"
    r = run(tmp_path, "export-tree", str(path), "--out", str(out))   # format from the extension
    assert r.returncode == 0, r.stderr
    bn, got = gum_beliefs(out, tree, evidence)
    assert bn.size() == len(tree) and bn.sizeArcs() == len(tree) - 1
    names = variable_names(tree)
    for nid, node in tree.nodes.items():
        assert got[nid] == pytest.approx(want[nid], abs=1e-9), nid
        if node.parent is not None:  # arcs point parent -> child
            assert bn.parents(names[nid]) == {bn.idFromName(names[node.parent])}


def test_bif_keeps_every_probability_exactly(tmp_path):
    """Any double survives the BIF file (pgmpy reads it back bit for bit); pyAgrum's float32 reader is close."""
    tree, evidence = random_case(5)
    path = tmp_path / "t.bif"
    path.write_text(to_bif(tree))
    from pgmpy.readwrite import BIFReader

    model = BIFReader(str(path)).get_model()
    names = variable_names(tree)
    for nid, node in tree.nodes.items():
        table = model.get_cpds(names[nid]).get_values()
        if node.parent is None:
            assert table[1, 0] == node.prior
        else:
            assert (table[1, 1], table[1, 0]) == (node.p_if_true, node.p_if_false)
    want = beliefs(tree, evidence)
    _, got = gum_beliefs(path, tree, evidence)
    assert max(abs(got[nid] - want[nid]) for nid in tree.nodes) < 1e-5


def test_graphml_read_back_by_networkx_has_the_same_nodes_edges_and_numbers(tmp_path):
    import networkx as nx

    tree, evidence = random_case(3)
    src = tmp_path / "t.json"
    dump(tree, evidence, src)
    out = tmp_path / "t.graphml"
    r = run(tmp_path, "export-tree", str(src), "--format", "graphml", "--out", str(out), "--metric", "info")
    assert r.returncode == 0, r.stderr
    g = nx.read_graphml(out)
    assert set(g.nodes) == set(tree.nodes)
    assert set(g.edges) == {(n.parent, n.id) for n in tree.nodes.values() if n.parent is not None}
    bel, info = beliefs(tree, evidence), voi(tree, evidence, "info")
    labeled = {ev.node for ev in evidence}
    for nid, node in tree.nodes.items():
        a = g.nodes[nid]
        assert a["text"] == node.text and a["stance"] == node.stance
        assert a["belief"] == bel[nid]
        if node.parent is None:
            assert a["prior"] == node.prior and "p_if_true" not in a
        else:
            assert (a["p_if_true"], a["p_if_false"]) == (node.p_if_true, node.p_if_false)
        assert a.get("voi") == info.get(nid)
        assert ("labels" in a) == (nid in labeled)
        assert json.loads(a.get("extra", "{}")) == dict(node.extra)
    assert g.graph["root"] == tree.root and g.graph["metric"] == "info"


@pytest.mark.parametrize("fmt", ["bif", "xmlbif"])
def test_a_tree_imported_from_a_network_equals_the_original(tmp_path, fmt):
    tree, _ = random_case(4)
    path = tmp_path / f"t.{'bif' if fmt == 'bif' else 'xml'}"
    path.write_text(to_bif(tree) if fmt == "bif" else to_xmlbif(tree))
    back = read_network(path)
    assert list(back.nodes) == list(tree.nodes)
    assert back.nodes == tree.nodes          # ids, texts, parents, numbers and extra keys
    assert back.meta == tree.meta


def test_argtree_import_of_bif_stores_the_same_tree(tmp_path):
    home = tmp_path / "home"
    assert run(home, "db", "upgrade").returncode == 0
    tree, _ = load(EXAMPLE)
    bif = tmp_path / "remote.bif"
    r = run(home, "export-tree", EXAMPLE, "--format", "bif", "--out", str(bif))
    assert r.returncode == 0, r.stderr
    assert "note: 2 label(s) are not part of the network" in r.stderr   # the example's two labels
    r = run(home, "import", str(bif), "--json")
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["trees"][str(bif)]
    dumped = run(home, "dump", str(tid))
    assert json.loads(dumped.stdout)["nodes"] == json.load(open(EXAMPLE))["nodes"]
    # ... and a stored tree exports by its id (XMLBIF from the database, read back equal)
    xml = tmp_path / "back.xml"
    r = run(home, "export-tree", str(tid), "--format", "xmlbif", "--out", str(xml))
    assert r.returncode == 0, r.stderr
    assert read_network(xml).nodes == tree.nodes


def test_networks_written_by_other_tools_import(tmp_path):
    """pyAgrum's own BIF and XMLBIF (states 0/1, no argtree property): ids are names, text the description."""
    bn = gum.BayesNet("other")
    q = bn.add(gum.LabelizedVariable("claim", "Is it so?", 2))
    a = bn.add(gum.LabelizedVariable("why", "Because.", ["no", "yes"]))
    bn.addArc(q, a)
    bn.cpt(q).fillWith([0.75, 0.25])
    bn.cpt(a).fillWith([0.875, 0.125, 0.5, 0.5])     # P(why | claim=0) then P(why | claim=1)
    for ext in ("bif", "bifxml"):
        path = tmp_path / f"other.{ext}"
        gum.saveBN(bn, str(path))
        tree = read_network(path, "bif" if ext == "bif" else "xmlbif")
        assert tree.root == "claim" and tree["claim"].prior == 0.25
        assert (tree["why"].parent, tree["why"].p_if_true, tree["why"].p_if_false) == ("claim", 0.5, 0.125)
        assert tree["why"].text == ("Because." if ext == "bifxml" else "why")


def _bif(variables: dict[str, list[str]], tables: list[str]) -> str:
    out = ["network unknown {", "}"]
    for v, states in variables.items():
        out += [f"variable {v} {{", f"    type discrete [ {len(states)} ] {{ {', '.join(states)} }};", "}"]
    return "\n".join(out + tables) + "\n"


BAD = {
    "two_parents": (_bif({"a": ["false", "true"], "b": ["false", "true"], "c": ["false", "true"]},
                         ["probability ( a ) { table 0.5, 0.5 ; }", "probability ( b ) { table 0.5, 0.5 ; }",
                          "probability ( c | a, b ) { ( false, false ) 0.5, 0.5; ( false, true ) 0.5, 0.5; "
                          "( true, false ) 0.5, 0.5; ( true, true ) 0.5, 0.5; }"]),
                    "variable 'c', field 'parents': has 2 parents"),
    "two_roots": (_bif({"a": ["false", "true"], "b": ["false", "true"]},
                       ["probability ( a ) { table 0.5, 0.5 ; }", "probability ( b ) { table 0.5, 0.5 ; }"]),
                  "2 variables without parents"),
    "three_states": (_bif({"a": ["false", "true"], "b": ["low", "mid", "high"]},
                          ["probability ( a ) { table 0.5, 0.5 ; }",
                           "probability ( b | a ) { ( false ) 0.2, 0.3, 0.5; ( true ) 0.1, 0.1, 0.8; }"]),
                     "variable 'b', field 'states': has 3 states"),
    "unclear_states": (_bif({"a": ["low", "high"]}, ["probability ( a ) { table 0.5, 0.5 ; }"]),
                       "states 'low' and 'high' do not say which one is true"),
    "garbage": ("this is not a network {", "no variables found: not a BIF network"),
    "bad_table": (_bif({"a": ["false", "true"]}, ["probability ( a ) { table 0.5 ; }"]),
                  "not a BIF network pgmpy can read"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_networks_that_are_not_trees_of_binary_propositions_are_refused(tmp_path, case):
    text, message = BAD[case]
    home = tmp_path / "home"
    assert run(home, "db", "upgrade").returncode == 0
    path = tmp_path / f"{case}.bif"
    path.write_text(text)
    ok = tmp_path / "ok.json"
    shutil.copy(EXAMPLE, ok)
    r = run(home, "import", str(ok), str(path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"argtree: error: {path}: ") and message in lines[0], lines
    assert "Traceback" not in r.stderr
    # all or none: the good file before it was not stored either
    assert json.loads(run(home, "import", str(ok), "--json").stdout)["trees"][str(ok)] == 1
    r = run(home, "export-tree", str(path), "--format", "dot")
    assert r.returncode == 2 and message in r.stderr


def test_dot_and_svg_pictures(tmp_path):
    tree, evidence = load(EXAMPLE)
    r = run(tmp_path, "export-tree", EXAMPLE, "--format", "dot")
    assert r.returncode == 0, r.stderr
    dot = r.stdout
    assert dot.startswith("digraph argtree {") and dot.rstrip().endswith("}")
    for n in tree.nodes.values():
        assert f'"{n.id}" [label="' in dot
        if n.parent is not None:
            assert f'"{n.parent}" -> "{n.id}"' in dot
    bel = beliefs(tree, evidence)
    assert f"P = {bel['q']:.3f}" in dot
    assert dot.count("peripheries=2") == len({ev.node for ev in evidence})
    if shutil.which("dot") is None:
        r = run(tmp_path, "export-tree", EXAMPLE, "--format", "svg")
        assert r.returncode == 2 and "apt-get install graphviz" in r.stderr
        pytest.skip("Graphviz's dot is not installed (Debian: apt-get install graphviz)")
    out = tmp_path / "tree.svg"
    r = run(tmp_path, "export-tree", EXAMPLE, "--out", str(out))
    assert r.returncode == 0, r.stderr
    svg = out.read_text()
    assert "<svg" in svg and svg.count('class="node"') == len(tree) and svg.count('class="edge"') == len(tree) - 1


def test_export_tree_bad_arguments(tmp_path):
    r = run(tmp_path, "export-tree", "no-such-file.json", "--format", "bif")
    assert r.returncode == 2 and "no such file, and not a tree id" in r.stderr
    r = run(tmp_path, "export-tree", EXAMPLE)
    assert r.returncode == 2 and "say --format" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "argtree/1", "nodes": []}')
    r = run(tmp_path, "export-tree", str(bad), "--format", "graphml")
    assert r.returncode == 2 and r.stderr.startswith(f"argtree: error: {bad}: ")


def test_variable_names_are_plain_unique_identifiers():
    tree, _ = random_case(7, n=60)
    names = variable_names(tree)
    assert len(set(names.values())) == len(tree)
    import re

    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) for v in names.values())
    assert names["root"] == "root" and names["variable"] != "variable" and names["n7_"] == "n7_"
    assert names["n10"] == "n10" and names[list(tree.nodes)[10]] not in ("n10", list(tree.nodes)[10])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(max_nodes=8, with_evidence=False), st.lists(st.text(min_size=1, max_size=40), min_size=8, max_size=8),
       st.sampled_from(["bif", "xmlbif"]))
def test_any_tree_and_text_survives_a_network_round_trip(case, texts, fmt):
    """Random trees (CPT entries of exactly 0 and 1 included) with arbitrary Unicode texts and ids
    (any that argtree/1 itself accepts)."""
    from argtree.io import from_dict, to_dict

    tree, _ = case
    data = to_dict(tree)
    rename = {}
    for k, raw in enumerate(data["nodes"]):
        raw["text"] = texts[k]
        if k % 2:
            rename[raw["id"]] = raw["id"] = f"{texts[k][:5]}#{k}"
    for raw in data["nodes"]:
        if "parent" in raw:
            raw["parent"] = rename.get(raw["parent"], raw["parent"])
    try:
        tree, _ = from_dict(data)
    except TreeError:
        assume(False)  # a text argtree/1 refuses (empty, control characters...): not this test's business
    text = to_bif(tree) if fmt == "bif" else to_xmlbif(tree)
    back = network_to_tree(text, fmt)
    assert back.nodes == tree.nodes


def test_xmlbif_descriptions_with_equals_signs_import(tmp_path):
    """pyAgrum writes 'description = TEXT'; a TEXT holding '=' must not stop the import (pgmpy alone refuses it)."""
    bn = gum.BayesNet("eq")
    q = bn.add(gum.LabelizedVariable("q", "Is E = mc^2 = true?", ["false", "true"]))
    a = bn.add(gum.LabelizedVariable("a", "x = y", ["false", "true"]))
    bn.addArc(q, a)
    bn.cpt(q).fillWith([0.5, 0.5])
    bn.cpt(a).fillWith([0.25, 0.75, 0.5, 0.5])
    path = tmp_path / "eq.bifxml"
    gum.saveBN(bn, str(path))
    tree = read_network(path)
    assert tree["q"].text == "Is E = mc^2 = true?" and tree["a"].text == "x = y"
    assert (tree["a"].p_if_true, tree["a"].p_if_false) == (0.5, 0.75)
