"""Argument trees: nodes, evidence and the checks that make a tree well formed.

An argument tree is a tree-shaped Bayesian network over binary propositions,
directed from the root claim down to its premises (see DESIGN.md).  The root
carries ``prior`` = P(root); every other node carries ``p_if_true`` /
``p_if_false`` = P(node | parent true / false).

Validation happens when a tree is built and names the node and field at fault,
so every later stage (inference, storage, the UI) can trust its input.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["TreeError", "Node", "Evidence", "ArgumentTree", "check_probability", "show"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 4
_REPR.maxlevel = 2


def show(value: Any) -> str:
    """A short, one-line, escaped repr of ``value`` for error messages.

    Long strings and containers are cut (a 10 MB text must not become a 10 MB
    message), integers too long to print whole say how many digits they have,
    and control characters and lone surrogates come out as escapes (repr's).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        if value.bit_length() > 14_000:  # past Python's 4,300-digit limit for str(int)
            return "an integer of over 4,300 digits"
        return f"an integer of {len(str(abs(value))):,} digits"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + f"… ({len(value):,} characters)"
    try:
        return _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a repr that fails must not hide the real error
        return f"a {type(value).__name__}"


class TreeError(ValueError):
    """A tree, a file or a piece of evidence is malformed.

    ``node`` and ``field`` say where; ``str(err)`` is one line for a human.
    """

    def __init__(self, message: str, node: str | None = None, field: str | None = None):
        self.node = node
        self.field = field
        self.detail = message
        where = []
        if node is not None:
            where.append(f"node {show(node)}")
        if field is not None:
            where.append(f"field {show(field)}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


def check_probability(value: Any, node: str | None, name: str) -> float:
    """Return ``value`` as a float in [0, 1] or raise a TreeError naming it.

    Integers of any size are fine to pass (a 401-digit one is out of range, not an OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TreeError(f"must be a number in [0, 1], got {show(value)}", node, name)
    if isinstance(value, int) and not 0 <= value <= 1:
        raise TreeError(f"must be a probability in [0, 1], got {show(value)}", node, name)
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise TreeError(f"must be a probability in [0, 1], got {value!r}", node, name)
    return value


@dataclass(frozen=True)
class Node:
    """One proposition in a tree.

    ``extra`` keeps any other keys (model output, rationale, provenance) so a
    file round-trips losslessly.
    """

    id: str
    text: str
    parent: str | None = None
    prior: float | None = None
    p_if_true: float | None = None
    p_if_false: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=True)

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def stance(self) -> str:
        """'supports' / 'attacks' / 'neutral' towards the parent ('root' for the root)."""
        if self.parent is None:
            return "root"
        if self.p_if_true > self.p_if_false:
            return "supports"
        if self.p_if_true < self.p_if_false:
            return "attacks"
        return "neutral"


@dataclass(frozen=True)
class Evidence:
    """An observation on a node: an oracle's label, or the model's own credence.

    ``reliability`` 1.0 is a hard label; a value in (0.5, 1) is a soft one that
    multiplies the node's likelihood by ``reliability`` for ``value`` and
    ``1 - reliability`` for the other value.  Several labels on one node are
    independent observations and multiply.

    ``extra["source"] == "model"`` marks *model evidence* (DESIGN.md): virtual
    evidence from the model's credence, never a label.  It is always soft (a
    reliability in [0.5, 1); 0.5 says nothing) and counts only where the
    frontier rule lets it (``argtree.inference``); ``argtree.model_evidence``
    makes it.
    """

    node: str
    value: bool
    reliability: float = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.value, bool):
            raise TreeError(f"must be true or false, got {self.value!r}", self.node, "value")
        r = self.reliability
        if isinstance(r, bool) or not isinstance(r, (int, float)) or math.isnan(r):
            raise TreeError(f"must be a number, got {r!r}", self.node, "reliability")
        if self.is_model:
            if not 0.5 <= r < 1.0:
                raise TreeError(f"model evidence is soft: must be in [0.5, 1), got {r!r}", self.node, "reliability")
        elif not 0.5 < r <= 1.0:
            raise TreeError(f"must be in (0.5, 1], got {r!r}", self.node, "reliability")

    @property
    def is_hard(self) -> bool:
        return self.reliability == 1.0

    @property
    def is_model(self) -> bool:
        """Model evidence (the model's credence as virtual evidence), not an oracle's label."""
        return isinstance(self.extra, Mapping) and self.extra.get("source") == "model"


def check_node(node: Node, duplicate: bool = False) -> None:
    """The checks ArgumentTree makes on one node, in order (``duplicate``: its id came earlier)."""
    if not isinstance(node.id, str) or not node.id:
        raise TreeError("must be a non-empty string", show(node.id), "id")
    if duplicate:
        raise TreeError("duplicate id", node.id, "id")
    if not isinstance(node.text, str):
        raise TreeError(f"must be a string, got {show(node.text)}", node.id, "text")
    if node.parent is None:
        check_probability(node.prior, node.id, "prior")
    else:
        if not isinstance(node.parent, str):
            raise TreeError(f"must be a node id, got {show(node.parent)}", node.id, "parent")
        check_probability(node.p_if_true, node.id, "p_if_true")
        check_probability(node.p_if_false, node.id, "p_if_false")


def roots_error(roots: list[str]) -> TreeError:
    """The error for a tree with no root or with more than one (``roots``: root ids in order)."""
    if not roots:
        return TreeError("no root: exactly one node must have no 'parent' and carry 'prior'")
    return TreeError(f"two or more roots ({', '.join(map(show, roots[:5]))}): exactly one node may lack 'parent'",
                     roots[1], "parent")


def parent_error(node: str, parent: str, known: bool) -> TreeError:
    if not known:
        return TreeError(f"unknown parent {show(parent)}", node, "parent")
    return TreeError("a node cannot be its own parent", node, "parent")


def cycle_error(start: str, parent_of) -> TreeError:
    """The error for a node not reachable from the root: walk up from ``start`` to the cycle."""
    path, seen, at = [], set(), start
    while at not in seen:
        path.append(at)
        seen.add(at)
        at = parent_of(at)
    cycle = path[path.index(at):]
    shown = cycle + [at] if len(cycle) <= 8 else cycle[:4] + ["…"] + cycle[-3:] + [at]
    return TreeError("cycle through parents: " + " -> ".join(x if x == "…" else show(x) for x in shown), at, "parent")


class ArgumentTree:
    """A validated argument tree.

    Nodes are kept in the order given; ``graph`` is a networkx DiGraph
    (parent -> child) built on first use, since large trees never need it.
    """

    def __init__(self, nodes: Iterable[Node], meta: Mapping[str, Any] | None = None):
        self.nodes: dict[str, Node] = {}
        self.meta: dict[str, Any] = dict(meta or {})
        roots: list[str] = []
        for node in nodes:
            check_node(node, node.id in self.nodes if isinstance(node.id, str) else False)
            if node.parent is None:
                roots.append(node.id)
            self.nodes[node.id] = node
        if len(roots) != 1:
            raise roots_error(roots)
        self.root: str = roots[0]
        self._children: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        for node in self.nodes.values():
            if node.parent is not None:
                known = node.parent in self.nodes
                if not known or node.parent == node.id:
                    raise parent_error(node.id, node.parent, known)
                self._children[node.parent].append(node.id)
        self._check_connected()

    def _check_connected(self) -> None:
        seen = {self.root}
        stack = [self.root]
        while stack:
            for child in self._children[stack.pop()]:
                seen.add(child)
                stack.append(child)
        if len(seen) == len(self.nodes):
            return
        # Every node not reachable from the root sits on or below a parent cycle.
        start = next(nid for nid in self.nodes if nid not in seen)
        raise cycle_error(start, lambda nid: self.nodes[nid].parent)

    def __repr__(self) -> str:
        return f"ArgumentTree({list(self.nodes.values())!r})"

    # -- structure -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nodes

    def __getitem__(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def children(self, node_id: str) -> list[str]:
        return self._children[node_id]

    def ancestors(self, node_id: str) -> list[str]:
        """Parent, grandparent, ... up to the root."""
        out, at = [], self.nodes[node_id].parent
        while at is not None:
            out.append(at)
            at = self.nodes[at].parent
        return out

    def depth(self, node_id: str) -> int:
        return len(self.ancestors(node_id))

    def bfs(self) -> list[str]:
        """Node ids in breadth-first order from the root (children in given order)."""
        order = [self.root]
        for nid in order:
            order.extend(self._children[nid])
        return order

    @cached_property
    def graph(self):
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes.values():
            g.add_node(node.id, node=node)
        g.add_edges_from((n.parent, n.id) for n in self.nodes.values() if n.parent is not None)
        return g

    def check_evidence(self, evidence: Iterable[Evidence]) -> tuple[Evidence, ...]:
        """Return evidence as a tuple after checking every label names a node of this tree."""
        out = tuple(evidence)
        for ev in out:
            if ev.node not in self.nodes:
                raise TreeError("evidence on an unknown node", ev.node, "node")
        return out

    def replace(self, node: Node) -> "ArgumentTree":
        """A new tree with ``node`` added or replacing the node of the same id."""
        nodes = dict(self.nodes)
        nodes[node.id] = node
        return ArgumentTree(nodes.values(), self.meta)

    # -- arrays for inference -------------------------------------------
    def arrays(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, float]:
        """(ids, parent index (-1 for root), p_if_true, p_if_false, prior) in node order."""
        ids = list(self.nodes)
        index = {nid: i for i, nid in enumerate(ids)}
        n = len(ids)
        parent = np.empty(n, dtype=np.int64)
        p1 = np.zeros(n)
        p0 = np.zeros(n)
        for i, node in enumerate(self.nodes.values()):
            if node.parent is None:
                parent[i] = -1
            else:
                parent[i] = index[node.parent]
                p1[i] = node.p_if_true
                p0[i] = node.p_if_false
        return ids, parent, p1, p0, float(self.nodes[self.root].prior)
