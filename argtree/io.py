"""Read and write the ``argtree/1`` JSON interchange format (DESIGN.md).

Checks are hand-written rather than a schema library's so that every message
names the node and the field at fault.  Unknown keys are kept (``Node.extra``,
``Evidence.extra``, ``ArgumentTree.meta``) so a round trip loses nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .tree import ArgumentTree, Evidence, Node, TreeError

__all__ = ["FORMAT", "read_json", "load", "loads", "from_dict", "to_dict", "dumps", "dump"]

FORMAT = "argtree/1"
NODE_KEYS = ("id", "parent", "text", "prior", "p_if_true", "p_if_false")
EVIDENCE_KEYS = ("node", "value", "reliability")


def read_json(path: str | os.PathLike) -> Any:
    """Any JSON file's content; TreeError naming the file when it cannot be read or parsed."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as err:
        raise TreeError(f"cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise TreeError(f"{path!r} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise TreeError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None


def load(path: str | os.PathLike) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as err:
        raise TreeError(f"cannot read {os.fspath(path)!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise TreeError(f"{os.fspath(path)!r} is not UTF-8 text") from None
    return loads(text)


def loads(text: str) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TreeError(f"not JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except RecursionError:
        raise TreeError("not JSON this program can read: nested too deeply") from None
    return from_dict(data)


def from_dict(data: Any) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    if not isinstance(data, dict):
        raise TreeError(f"the top level must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise TreeError(f"expected {FORMAT!r}, got {data.get('format')!r}", field="format")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        raise TreeError("must be a list of nodes", field="nodes")
    nodes = [_node(raw, i) for i, raw in enumerate(raw_nodes)]
    meta = {k: v for k, v in data.items() if k not in ("format", "nodes", "evidence")}
    tree = ArgumentTree(nodes, meta)
    raw_ev = data.get("evidence", [])
    if not isinstance(raw_ev, list):
        raise TreeError("must be a list of labels", field="evidence")
    evidence = tree.check_evidence(_evidence(raw, i) for i, raw in enumerate(raw_ev))
    # Contradictory hard labels are an input error too: find them now, not at inference time.
    from .inference import propagate

    propagate(tree, evidence)
    return tree, evidence


def _node(raw: Any, i: int) -> Node:
    if not isinstance(raw, dict):
        raise TreeError(f"nodes[{i}] must be an object, got {type(raw).__name__}")
    nid = raw.get("id")
    if not isinstance(nid, str) or not nid:
        raise TreeError(f"nodes[{i}] needs a non-empty string id, got {nid!r}", None, "id")
    if "text" not in raw or not isinstance(raw["text"], str):
        raise TreeError(f"must be a string, got {raw.get('text')!r}", nid, "text")
    parent = raw.get("parent")
    if parent is None:
        for key in ("p_if_true", "p_if_false"):
            if key in raw:
                raise TreeError("the root has no parent, so it carries 'prior', not this", nid, key)
        if "prior" not in raw:
            raise TreeError("the root (the node without 'parent') needs a prior", nid, "prior")
    else:
        if "prior" in raw:
            raise TreeError("only the root carries 'prior'; premises carry p_if_true/p_if_false", nid, "prior")
        for key in ("p_if_true", "p_if_false"):
            if key not in raw:
                raise TreeError("missing", nid, key)
    return Node(
        id=nid, text=raw["text"], parent=parent,
        prior=raw.get("prior"), p_if_true=raw.get("p_if_true"), p_if_false=raw.get("p_if_false"),
        extra={k: v for k, v in raw.items() if k not in NODE_KEYS},
    )


def _evidence(raw: Any, i: int) -> Evidence:
    if not isinstance(raw, dict):
        raise TreeError(f"evidence[{i}] must be an object, got {type(raw).__name__}")
    node = raw.get("node")
    if not isinstance(node, str):
        raise TreeError(f"evidence[{i}] must name a node id, got {node!r}", None, "node")
    if "value" not in raw:
        raise TreeError("missing (true or false)", node, "value")
    return Evidence(node=node, value=raw["value"], reliability=raw.get("reliability", 1.0),
                    extra={k: v for k, v in raw.items() if k not in EVIDENCE_KEYS})


def to_dict(tree: ArgumentTree, evidence: tuple[Evidence, ...] | list[Evidence] = ()) -> dict[str, Any]:
    nodes = []
    for node in tree.nodes.values():
        out: dict[str, Any] = {"id": node.id}
        if node.parent is None:
            out.update(text=node.text, prior=node.prior)
        else:
            out.update(parent=node.parent, text=node.text, p_if_true=node.p_if_true, p_if_false=node.p_if_false)
        out.update(node.extra)
        nodes.append(out)
    evs = []
    for ev in evidence:
        item: dict[str, Any] = {"node": ev.node, "value": ev.value}
        if ev.reliability != 1.0:
            item["reliability"] = ev.reliability
        item.update(ev.extra)
        evs.append(item)
    return {"format": FORMAT, **tree.meta, "nodes": nodes, "evidence": evs}


def dumps(tree: ArgumentTree, evidence: tuple[Evidence, ...] | list[Evidence] = (), indent: int | None = 1) -> str:
    return json.dumps(to_dict(tree, evidence), indent=indent, ensure_ascii=False, allow_nan=False)


def dump(tree: ArgumentTree, evidence, path: str | os.PathLike) -> None:
    """Write atomically: a killed process leaves the old file or the new one, never half of one."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(dumps(tree, evidence))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
