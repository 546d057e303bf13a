"""Argument trees in other tools' formats: BIF and XMLBIF (Bayesian networks), GraphML, DOT and SVG.

An argument tree *is* a Bayesian network (DESIGN.md): one binary variable per node, states
``false`` and ``true`` in that order, an arc parent -> child, the root's table ``[1 - prior,
prior]`` and each premise's table ``P(node | parent = false) = [1 - p_if_false, p_if_false]``,
``P(node | parent = true) = [1 - p_if_true, p_if_true]``.

* **BIF / XMLBIF** are written and read by pgmpy (``pip install 'argtree[interop]'``), whose
  writers keep every probability to full double precision (pyAgrum's XMLBIF writer keeps six
  digits, and its BIF reader parses numbers as 32-bit floats: fine for looking, not for a
  round trip).  Variable names are the node ids where they are plain identifiers, else ``n<k>``.
  Each variable carries one property ``argtree``, a JSON object with the node's id, text, place
  in the file and extra keys (the root's also holds the tree's top-level keys), so a tree
  exported and imported again is the same tree.  BIF has no string escapes and pgmpy's readers
  split properties at ``=`` (and its BIF reader drops quotes), so the JSON (ASCII, with
  ``\\u`` escapes) is percent-encoded where it holds ``% ; " = { } \\ / *`` (spaces and other
  punctuation stay readable).  pyAgrum reads XMLBIF only from a ``.bifxml`` file name; argtree
  also takes ``.xml`` and ``.xmlbif``.  Evidence is not part of a network: enter it in the
  other tool (a hard label is an observation; a soft label of reliability ``a`` saying ``v`` is
  virtual evidence with likelihoods ``a`` for ``v`` and ``1 - a`` for the other value).
* **Importing** a BIF/XMLBIF network (``read_network``) accepts tree-shaped networks of binary
  variables whose states say which one is true (false/true, no/yes, 0/1, f/t, n/y,
  absent/present, off/on, negative/positive; any case, either order); anything else is refused
  with a one-line ``TreeError`` naming the variable.  Without the ``argtree`` property a node's
  id is the variable's name and its text the description the file gives, else the name.
* **GraphML** through networkx: nodes with text, stance, the CPT numbers, belief, VoI and labels;
  edges parent -> child.  **DOT** is written here (a picture: colour = belief, green/red arcs =
  supports/attacks, a double border = labeled); **SVG** runs Graphviz's ``dot`` on it.

Heavy imports (pgmpy, networkx) happen inside the functions that need them.  Cost (2,000 nodes,
busy 2-core machine): pgmpy's import ~5 s once; BIF write ~2 s, read ~7 ms a variable (pgmpy's
pyparsing grammar); XMLBIF write and read ~1.3 s each; GraphML 0.2 s; DOT 0.05 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any, Iterable, Sequence
from urllib.parse import quote, unquote

from .tree import ArgumentTree, Evidence, TreeError, show

__all__ = ["FORMATS", "NETWORK_SUFFIXES", "SUFFIX_FORMATS", "InteropError", "variable_names", "to_bif",
           "to_xmlbif", "to_graph", "to_graphml", "to_dot", "to_svg", "export", "read_network", "load_any",
           "is_network_file"]

FORMATS = ("bif", "xmlbif", "graphml", "dot", "svg")
NETWORK_SUFFIXES = {".bif": "bif", ".xmlbif": "xmlbif", ".bifxml": "xmlbif", ".xml": "xmlbif"}
SUFFIX_FORMATS = {**NETWORK_SUFFIXES, ".graphml": "graphml", ".dot": "dot", ".gv": "dot", ".svg": "svg"}
STATES = ("false", "true")
PROPERTY = "argtree"
# Pairs of state names that say which state is "true" (lower case; the second of each pair is true).
TRUTH_PAIRS = (("false", "true"), ("no", "yes"), ("0", "1"), ("f", "t"), ("n", "y"), ("absent", "present"),
               ("off", "on"), ("negative", "positive"))
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"network", "variable", "probability", "property", "type", "discrete", "default", "table"}


class InteropError(TreeError):
    """A network file argtree cannot take (not a tree, not binary, unreadable), or a missing extra.

    Like TreeError, one line; ``node`` is the network's variable, so the line says "variable 'x'"."""

    def __init__(self, message: str, node: str | None = None, field: str | None = None):
        super().__init__(message, node, field)
        if node is not None:
            ValueError.__init__(self, "variable " + str(self)[len("node "):])


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise InteropError(f"BIF/XMLBIF needs pgmpy ({err}): pip install 'argtree[interop]'") from None


# -- writing ---------------------------------------------------------------------------------------

def variable_names(tree: ArgumentTree) -> dict[str, str]:
    """Node id -> network variable name: the id where it is a plain identifier, else ``n<k>``."""
    out: dict[str, str] = {}
    taken = {nid for nid in tree.nodes if _NAME.fullmatch(nid) and nid.lower() not in _RESERVED}
    used: set[str] = set()
    for k, nid in enumerate(tree.nodes):
        name = nid if nid in taken else f"n{k}"
        while name in used or (name != nid and name in taken):
            name = "_" + name
        used.add(name)
        out[nid] = name
    return out


def _payload(tree: ArgumentTree, k: int, nid: str) -> dict[str, Any]:
    node = tree[nid]
    data: dict[str, Any] = {"i": k, "id": nid, "text": node.text}
    if node.extra:
        data["extra"] = dict(node.extra)
    if nid == tree.root and tree.meta:
        data["meta"] = dict(tree.meta)
    return data


# Characters a property value keeps as they are; the rest (% ; " = { } \\, control and non-ASCII characters,
# which BIF or pgmpy's readers would take apart) are percent-encoded.
_SAFE = " !#$&'()+,-.:<>?@[]^_`|~"  # not / or *: pgmpy's BIF reader cuts // and /* */ comments out first


def _encode(data: dict[str, Any]) -> str:
    # ensure_ascii: any text (lone surrogates, control characters) becomes plain ASCII escapes first
    return quote(json.dumps(data, ensure_ascii=True, separators=(",", ":")), safe=_SAFE)


def _pgmpy_network(tree: ArgumentTree, encode) -> Any:
    """The tree as a pgmpy DiscreteBayesianNetwork whose variables carry the ``argtree`` property."""
    _need("pgmpy")
    import logging
    import warnings

    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    names = variable_names(tree)
    model = DiscreteBayesianNetwork()
    model.add_nodes_from(names[nid] for nid in tree.nodes)
    model.add_edges_from((names[n.parent], names[n.id]) for n in tree.nodes.values() if n.parent is not None)
    cpds = []
    for k, (nid, node) in enumerate(tree.nodes.items()):
        v = names[nid]
        model.nodes[v][PROPERTY] = encode(_payload(tree, k, nid))
        if node.parent is None:
            cpds.append(TabularCPD(v, 2, [[1.0 - node.prior], [node.prior]], state_names={v: list(STATES)}))
        else:
            p = names[node.parent]
            cpds.append(TabularCPD(v, 2, [[1.0 - node.p_if_false, 1.0 - node.p_if_true],
                                          [node.p_if_false, node.p_if_true]],
                                   evidence=[p], evidence_card=[2], state_names={v: list(STATES), p: list(STATES)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.add_cpds(*cpds)
    return model


def _exact_tables(text: str, tree: ArgumentTree) -> None:
    """Check the writer kept every probability exactly (it prints floats with repr precision)."""
    wanted = [x for n in tree.nodes.values()
              for x in ((n.prior,) if n.parent is None else (n.p_if_false, n.p_if_true))]
    numbers = set(re.findall(r"[-+0-9.eE]+", text))
    missing = [x for x in wanted if x not in (0.0, 1.0) and repr(float(x)) not in numbers]
    if missing:  # pragma: no cover - a pgmpy release that rounds would make exports lossy
        raise InteropError(f"the network writer rounded probabilities (e.g. {missing[0]!r}); not exported")


def to_bif(tree: ArgumentTree) -> str:
    """The tree as a BIF network (pgmpy's BIFWriter; the ``argtree`` property percent-encoded)."""
    from pgmpy.readwrite import BIFWriter

    model = _pgmpy_network(tree, _encode)
    text = str(BIFWriter(model))
    _exact_tables(text, tree)
    return text


def to_xmlbif(tree: ArgumentTree) -> str:
    """The tree as an XMLBIF 0.3 network (pgmpy's XMLBIFWriter; the ``argtree`` property as JSON)."""
    from pgmpy.readwrite import XMLBIFWriter

    model = _pgmpy_network(tree, _encode)
    text = str(XMLBIFWriter(model))
    if text.startswith("b'") or text.startswith('b"'):  # pragma: no cover - older pgmpy returned bytes' repr
        raise InteropError("this pgmpy version's XMLBIFWriter does not return text; upgrade pgmpy")
    _exact_tables(text, tree)
    return text if text.endswith("\n") else text + "\n"


def _numbers(tree: ArgumentTree, evidence: Sequence[Evidence], metric: str = "shift"):
    from .inference import beliefs
    from .voi import voi

    return beliefs(tree, evidence), voi(tree, evidence, metric)


def _labels(evidence: Iterable[Evidence]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ev in evidence:
        mark = ("T" if ev.value else "F") + ("" if ev.is_hard else f"@{ev.reliability:g}")
        out.setdefault(ev.node, []).append(("model:" if ev.is_model else "") + mark)
    return out


def to_graph(tree: ArgumentTree, evidence: Sequence[Evidence] = (), metric: str = "shift"):
    """A networkx DiGraph (parent -> child) with every node's text and numbers as plain attributes.

    Node attributes: ``text``, ``stance``, ``prior`` (root) or ``p_if_true``/``p_if_false``,
    ``belief`` (given the evidence), ``voi`` (``metric``; nodes that can be asked), ``labels``
    (e.g. ``"T"``, ``"F@0.9"``, ``"model:T@0.7"``), ``extra`` (JSON, when the node has extra keys).
    """
    import networkx as nx

    bel, vals = _numbers(tree, evidence, metric)
    labels = _labels(evidence)
    g = nx.DiGraph(format="argtree/1", root=tree.root, metric=metric)
    for nid, node in tree.nodes.items():
        attrs: dict[str, Any] = {"text": node.text, "stance": node.stance, "belief": bel[nid]}
        if node.parent is None:
            attrs["prior"] = float(node.prior)
        else:
            attrs["p_if_true"], attrs["p_if_false"] = float(node.p_if_true), float(node.p_if_false)
        if nid in vals:
            attrs["voi"] = vals[nid]
        if nid in labels:
            attrs["labels"] = " ".join(labels[nid])
        if node.extra:
            attrs["extra"] = json.dumps(dict(node.extra), ensure_ascii=False, sort_keys=True)
        g.add_node(nid, **attrs)
    g.add_edges_from((n.parent, n.id) for n in tree.nodes.values() if n.parent is not None)
    return g


def to_graphml(tree: ArgumentTree, evidence: Sequence[Evidence] = (), metric: str = "shift") -> str:
    """GraphML (networkx's writer) of ``to_graph``."""
    import networkx as nx

    lines = nx.generate_graphml(to_graph(tree, evidence, metric))
    return "<?xml version='1.0' encoding='utf-8'?>\n" + "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "") + '"'


def _wrap(text: str, width: int = 38, lines: int = 4) -> str:
    import textwrap

    out = textwrap.wrap(" ".join(text.split()), width) or [""]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: width - 1] + "…"
    return "\n".join(out)


def _colour(p: float) -> str:
    """Belief as a fill colour: red (0) through white (0.5) to green (1)."""
    t = abs(p - 0.5) * 2
    r, g, b = (255, round(255 * (1 - t * 0.6)), round(255 * (1 - t * 0.6))) if p < 0.5 else \
        (round(255 * (1 - t * 0.6)), 255, round(255 * (1 - t * 0.6)))
    return f"#{r:02x}{g:02x}{b:02x}"


def to_dot(tree: ArgumentTree, evidence: Sequence[Evidence] = (), metric: str = "shift") -> str:
    """A Graphviz picture: each node's text, belief and VoI; colour = belief; double border = labeled."""
    bel, vals = _numbers(tree, evidence, metric)
    labels = _labels(evidence)
    out = ["digraph argtree {", "  graph [rankdir=TB, nodesep=0.25, ranksep=0.4];",
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
           '  edge [arrowsize=0.6];']
    for nid, node in tree.nodes.items():
        numbers = f"P = {bel[nid]:.3f}" + (f"   VoI = {vals[nid]:.3f}" if nid in vals else "")
        if nid in labels:
            numbers += "   labeled " + " ".join(labels[nid])
        attrs = [f"label={_dot_string(_wrap(node.text) + chr(10) + numbers)}", f'fillcolor="{_colour(bel[nid])}"',
                 f"tooltip={_dot_string(nid)}"]
        if nid in labels:
            attrs.append("peripheries=2")
        if node.parent is None:
            attrs.append("penwidth=2")
        out.append(f"  {_dot_string(nid)} [{', '.join(attrs)}];")
    for node in tree.nodes.values():
        if node.parent is not None:
            style = {"supports": 'color="#2e7d32", label="+"', "attacks": 'color="#c62828", label="−"',
                     "neutral": 'color="#9e9e9e", style=dashed'}[node.stance]
            out.append(f"  {_dot_string(node.parent)} -> {_dot_string(node.id)} [{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(dot_text: str, timeout: float = 120.0) -> str:
    """Render DOT with Graphviz's ``dot`` (Debian: apt-get install graphviz)."""
    exe = shutil.which("dot")
    if exe is None:
        raise InteropError("SVG needs Graphviz's 'dot' program (Debian: apt-get install graphviz); "
                           "--format dot writes the picture's source")
    try:
        run = subprocess.run([exe, "-Tsvg"], input=dot_text.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InteropError(f"Graphviz's dot took over {timeout:g} s; use --format dot") from None
    if run.returncode != 0:
        why = run.stderr.decode(errors="replace").strip().splitlines()
        raise InteropError(f"Graphviz's dot failed: {why[0] if why else run.returncode}")
    return run.stdout.decode()


def export(tree: ArgumentTree, evidence: Sequence[Evidence], fmt: str, metric: str = "shift") -> str:
    """The tree in format ``fmt`` (one of FORMATS) as text."""
    if fmt == "bif":
        return to_bif(tree)
    if fmt == "xmlbif":
        return to_xmlbif(tree)
    if fmt == "graphml":
        return to_graphml(tree, evidence, metric)
    if fmt == "dot":
        return to_dot(tree, evidence, metric)
    if fmt == "svg":
        return to_svg(to_dot(tree, evidence, metric))
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


# -- reading ---------------------------------------------------------------------------------------

def is_network_file(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in NETWORK_SUFFIXES


def _truth(var: str, states: Sequence[Any]) -> int:
    """Index of the state that means "true" in a binary variable's states, or a TreeError."""
    names = [str(s) for s in states]
    if len(names) != 2:
        raise InteropError(f"has {len(names)} states ({', '.join(map(show, names[:5]))}); argtree imports binary "
                           "variables only", var, "states")
    low = [s.strip().lower() for s in names]
    for f, t in TRUTH_PAIRS:
        if set(low) == {f, t}:
            return low.index(t)
    raise InteropError(f"states {show(names[0])} and {show(names[1])} do not say which one is true (use "
                       f"{', '.join('/'.join(p) for p in TRUTH_PAIRS)})", var, "states")


def _decode_property(raw: Any, fmt: str) -> dict | None:
    """The ``argtree`` property's JSON object, or None when absent or not ours."""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.startswith(f"{PROPERTY} ="):  # XMLBIF keeps "name = value" as one string
        text = text[len(PROPERTY) + 2:].strip()
    try:
        data = json.loads(unquote(text))
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("id"), str) else None


def _read_pgmpy(text: str, fmt: str):
    """(model, variable names in file order, {variable: argtree property or None}, {variable: description})."""
    _need("pgmpy")
    import logging
    import warnings

    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "bif":
            from pgmpy.readwrite import BIFReader

            reader = BIFReader(string=text, include_properties=True)
            model = reader.get_model()
            order = list(reader.variable_names)
            props = {v: _decode_property(model.nodes[v].get(PROPERTY), fmt) for v in order}
            descriptions = {v: model.nodes[v].get("description") for v in order}
        else:
            import xml.etree.ElementTree as ET

            from pgmpy.readwrite import XMLBIFReader

            # Properties are read here and taken out before pgmpy sees the file: its reader insists on
            # exactly one "=" in every property ("description = a = b" elsewhere would stop it).
            doc = ET.fromstring(text)
            props, descriptions = {}, {}
            for var in doc.iter("VARIABLE"):
                name = (var.findtext("NAME") or "").strip()
                for prop in var.findall("PROPERTY"):
                    key, _, value = (prop.text or "").partition("=")
                    if key.strip() == PROPERTY:
                        props[name] = _decode_property(value, "xmlbif")
                    elif key.strip() == "description" and value.strip():
                        descriptions[name] = value.strip()
                    var.remove(prop)
            reader = XMLBIFReader(string=ET.tostring(doc, encoding="unicode"))
            model = reader.get_model()
            order = list(reader.get_variables())
    return model, order, props, descriptions


def read_network(path: str | os.PathLike, fmt: str | None = None) -> ArgumentTree:
    """A tree-shaped BIF/XMLBIF network of binary variables as an ArgumentTree (see the module doc).

    Refused with a one-line ``TreeError`` (an ``InteropError``) naming the variable: more or fewer
    than one root, a variable with two or more parents, a variable that is not binary or whose
    states do not say which is true, an unreadable file.
    """
    path = os.fspath(path)
    fmt = fmt or NETWORK_SUFFIXES.get(os.path.splitext(path)[1].lower())
    if fmt not in ("bif", "xmlbif"):
        raise InteropError(f"{show(path)} is not a .bif or .xml/.xmlbif network")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise InteropError(f"cannot read {show(path)}: {getattr(err, 'strerror', None) or err}") from None
    return network_to_tree(text, fmt)


def network_to_tree(text: str, fmt: str) -> ArgumentTree:
    """``read_network`` on the file's text (``fmt``: 'bif' or 'xmlbif')."""
    from .io import from_dict

    try:
        model, order, props, descriptions = _read_pgmpy(text, fmt)
    except InteropError:
        raise
    except Exception as err:  # noqa: BLE001 - a parser's error of any kind is one line for the user
        why = str(err).strip().splitlines()
        why = why[0][:200] if why else type(err).__name__
        raise InteropError(f"not a {fmt.upper()} network pgmpy can read: {why}") from None
    if not order:
        raise InteropError(f"no variables found: not a {fmt.upper()} network, or an empty one")
    missing = [v for v in model.nodes if v not in order]
    order += missing
    parents = {v: list(model.get_parents(v)) for v in order}
    roots = [v for v in order if not parents[v]]
    for v in order:
        if len(parents[v]) > 1:
            raise InteropError(f"has {len(parents[v])} parents ({', '.join(map(show, parents[v][:5]))}): not a tree; "
                               "argtree imports tree-shaped networks (one parent per variable)", v, "parents")
    if len(roots) != 1:
        raise InteropError(f"the network has {len(roots)} variables without parents ({', '.join(map(show, roots[:5]))})"
                           ": not a tree; argtree imports networks with exactly one root")
    cpds = {cpd.variable: cpd for cpd in model.get_cpds()}
    nodes = []
    ids: dict[str, str] = {}
    meta: dict[str, Any] = {}
    for v in order:
        prop = props.get(v)
        ids[v] = prop["id"] if prop else v
    if len(set(ids.values())) != len(ids):
        raise InteropError("two variables carry the same argtree id")
    for v in order:
        cpd = cpds.get(v)
        if cpd is None:
            raise InteropError("has no probability table", v, "probability")
        states = cpd.state_names[v]
        t = _truth(v, states)
        prop = props.get(v) or {}
        raw = {"id": ids[v], "text": prop.get("text", descriptions.get(v) or v)}
        values = cpd.get_values()  # rows: this variable's states; columns: the parent's states
        if not parents[v]:
            raw["prior"] = float(values[t, 0])
        else:
            p = parents[v][0]
            tp = _truth(p, cpd.state_names[p])
            raw["parent"] = ids[p]
            raw["p_if_true"], raw["p_if_false"] = float(values[t, tp]), float(values[t, 1 - tp])
        if isinstance(prop.get("extra"), dict):
            raw.update({k: x for k, x in prop["extra"].items() if k not in raw})
        if isinstance(prop.get("meta"), dict) and not parents[v]:
            meta = prop["meta"]
        nodes.append((prop.get("i", len(order)) if isinstance(prop.get("i"), int) else len(order), len(nodes), raw))
    nodes.sort(key=lambda x: (x[0], x[1]))
    data = {k: x for k, x in meta.items() if k not in ("format", "nodes", "evidence")}
    data.update({"format": "argtree/1", "nodes": [raw for _, _, raw in nodes]})
    tree, _ = from_dict(data)
    return tree


def load_any(path: str | os.PathLike) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    """An argtree/1 JSON file, or a BIF/XMLBIF network (by extension; no evidence) as (tree, evidence)."""
    if is_network_file(path):
        return read_network(path), ()
    from .io import load

    return load(path)
