"""Hypothesis strategies for random small trees with random evidence."""

from __future__ import annotations

from hypothesis import strategies as st

from argtree import ArgumentTree, Evidence, Node

# Probabilities include the exact edges 0 and 1, which the inference must handle without NaN.
# Rounded to 6 decimals so the brute-force reference's products stay clear of subnormal floats,
# where the reference itself (a plain product of 12 numbers) loses precision.
prob = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0.0, 1.0).map(lambda p: round(p, 6)),
                 st.floats(0.01, 0.99))
reliability = st.one_of(st.just(1.0), st.floats(0.51, 0.999))


@st.composite
def trees(draw, max_nodes=12, with_evidence=True):
    n = draw(st.integers(1, max_nodes))
    nodes = [Node("n0", "root", prior=draw(prob))]
    for i in range(1, n):
        parent = draw(st.integers(0, i - 1))
        nodes.append(Node(f"n{i}", f"premise {i}", f"n{parent}", p_if_true=draw(prob), p_if_false=draw(prob)))
    evidence = []
    if with_evidence and n:
        for _ in range(draw(st.integers(0, min(n, 6)))):
            evidence.append(Evidence(f"n{draw(st.integers(0, n - 1))}", draw(st.booleans()), draw(reliability)))
    return ArgumentTree(nodes), tuple(evidence)


def as_reference(tree: ArgumentTree, evidence):
    nodes = [(n.id, n.parent, n.prior if n.parent is None else n.p_if_true, n.p_if_false) for n in tree.nodes.values()]
    ev = [(e.node, e.value, e.reliability) for e in evidence]
    return nodes, ev
