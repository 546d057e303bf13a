"""Read and write the ``argtree/1`` JSON interchange format (DESIGN.md): the one validator.

Every command that reads a tree file (``argtree infer``, ``argtree voi``,
``argtree import``) goes through ``load_columns`` or ``load`` here, so they
accept and refuse the same files with the same message: one line naming the
node and the field (``TreeError``).  Checks are hand-written rather than a
schema library's for that reason.  Unknown keys are kept (``Node.extra``,
``Evidence.extra``, ``ArgumentTree.meta``) so a round trip loses nothing.

Limits (README, "The exact core"): ``MAX_FILE_BYTES``, ``MAX_NODES``,
``MAX_EVIDENCE``, ``MAX_ID`` (the store's column), ``MAX_TEXT`` (the store's,
counted as stored: NFC, whitespace runs collapsed), ``MAX_EXTRA`` (one node's or
evidence entry's extra keys as compact JSON), ``MAX_META`` (the file's own
extra keys).  Text holds no NUL and no lone surrogate (neither can be stored);
numbers are finite (JSON has no NaN) and fit a double (at most 1.8e308: the
store reads JSON numbers back as doubles), and number literals have at most
4,300 digits (Python's limit).

Two ways through, one set of rules:

* ``from_dict`` is the specification: node by node, building ``Node`` objects,
  in a fixed order of checks (the file's top level, then every node's own keys,
  then ``ArgumentTree``'s checks node by node, roots, parents, cycles, then
  evidence entry by entry, unknown nodes, contradictions).
* ``validate`` (the columnar path, issue 15) does the same checks on whole
  columns with numpy and builds no ``Node``; where a check fails it finds the
  first failing node of the first failing stage and runs the specification's
  own check on it, so the message is the specification's, word for word.
  ``tests/test_columnar.py`` and ``tests/test_fuzz_inputs.py`` hold them equal.
* ``typed_columns`` (tried first by ``loads_columns``) takes only *plain* valid files (the
  format's own keys, nothing else) and decodes them straight into msgspec structs, about twice as
  fast as into dicts; it makes no error of its own: for any other file it steps aside and the
  columnar path reads it (``tests/test_typed_path.py``).

Parsing uses msgspec: a maintained C parser as fast as orjson here (0.34 s for
a 135 MB, 1M-node file against 0.70 s for ``json``), strict RFC 8259 (no NaN,
no lone surrogates, valid UTF-8 only), and, unlike orjson, exact for integers
past 64 bits (orjson turns 2**64 into a float, which would break lossless round
trips of extra keys).  When msgspec refuses a file, the standard library parses
it again with hooks that keep NaN, Infinity and over-long integers as
``Unreadable`` values, so the validator can name the node and field that hold
them; a file it cannot parse either is "not JSON" with line and column.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from operator import attrgetter, eq, is_, is_not
from typing import Any

import numpy as np

from .tree import (ArgumentTree, Evidence, Node, TreeError, check_node, check_probability, cycle_error,
                   parent_error, roots_error, show)

__all__ = ["FORMAT", "read_json", "load", "loads", "load_columns", "loads_columns", "parse", "from_dict",
           "validate", "Columns", "Unreadable", "to_dict", "dumps", "dump", "MAX_FILE_BYTES", "MAX_NODES",
           "MAX_EVIDENCE", "MAX_ID", "MAX_TEXT", "MAX_EXTRA", "MAX_META", "MAX_DIGITS"]

FORMAT = "argtree/1"
NODE_KEYS = ("id", "parent", "text", "prior", "p_if_true", "p_if_false")
EVIDENCE_KEYS = ("node", "value", "reliability")

MAX_FILE_BYTES = 1 << 30    # 1 GiB: a 1M-node file is about 135 MB
MAX_NODES = 2_000_000
MAX_EVIDENCE = 2_000_000
MAX_ID = 200                # characters: the store's nodes.local_id
MAX_TEXT = 10_000           # characters as stored: argtree.store.models.MAX_TEXT
MAX_EXTRA = 65_536          # bytes of compact JSON: one node's (or evidence entry's) extra keys
MAX_META = 8 << 20          # bytes of compact JSON: the top-level extra keys (model, growth, failures...)
MAX_DIGITS = 4_300          # Python's limit for int <-> str (sys.get_int_max_str_digits)

_MISSING = object()


class Unreadable:
    """A number the file holds that no argtree value can: NaN, Infinity, or an integer over 4,300 digits.

    Only the standard library's fallback parse makes these, so the validator can say where they are."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return self.what


# -- parsing ------------------------------------------------------------------

def _parse_int(literal: str):
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_DIGITS:
        return Unreadable(f"an integer of {digits:,} digits (the limit is {MAX_DIGITS:,})")
    return int(literal)


def parse(raw: bytes | str) -> tuple[Any, bool]:
    """(the JSON document, clean).  ``clean``: msgspec read it and no string can hold a NUL, so no
    string, number or key in it can break a rule except by length; otherwise the document came
    from the standard library's fallback and may hold NaN, lone surrogates or ``Unreadable``."""
    import msgspec

    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError, ValueError):
        pass
    else:
        return data, ("\\u0000" if isinstance(raw, str) else b"\\u0000") not in raw
    text = raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            raise TreeError(f"not UTF-8 text (byte {err.start})") from None
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=Unreadable), False
    except json.JSONDecodeError as err:
        raise TreeError(f"not JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except RecursionError:
        raise TreeError("not JSON this program can read: nested too deeply") from None
    except ValueError as err:  # anything else the parser refuses: still one line
        raise TreeError(f"not JSON this program can read: {str(err).splitlines()[0][:200]}") from None


def _read(path: str | os.PathLike) -> bytes:
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise TreeError(f"the file is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}")
            return fh.read()
    except OSError as err:
        raise TreeError(f"cannot read {show(path)}: {err.strerror}") from None


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
    except RecursionError:
        raise TreeError(f"{path}: not JSON this program can read (nested too deeply)") from None
    except ValueError as err:  # e.g. an integer literal over 4,300 digits
        raise TreeError(f"{path}: not JSON this program can read ({str(err).splitlines()[0][:120]})") from None


# -- the rules, one value at a time (the specification) -------------------------

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_SPACE = re.compile(r"\s+")


def _string_problem(s: str) -> str | None:
    m = _BAD_CHAR.search(s)
    if m is None:
        return None
    if m.group() == "\x00":
        return "must not contain NUL characters"
    return f"contains a lone surrogate (U+{ord(m.group()):04X}), which is not Unicode text"


def _stored_length(text: str) -> int:
    """Length as the store keeps text: NFC, runs of whitespace collapsed, stripped (store.text.normalize)."""
    return len(_SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip())


def _text_problem(text: str) -> str | None:
    bad = _string_problem(text)
    if bad:
        return bad
    if not text or text.isspace():
        return "must not be empty"
    n = len(text)
    if n > MAX_TEXT:
        return f"is {n:,} characters long; the limit is {MAX_TEXT:,}"
    # NFC can make a text up to 3 times longer; ASCII is already NFC.
    if n > MAX_TEXT // 3 and not text.isascii():
        m = _stored_length(text)
        if m > MAX_TEXT:
            return f"is {m:,} characters long once normalized (NFC); the limit is {MAX_TEXT:,}"
    return None


def _id_problem(nid: str) -> str | None:
    if len(nid) > MAX_ID:
        return f"is {len(nid):,} characters long; the limit is {MAX_ID}"
    return _string_problem(nid)


def _value_problem(value: Any) -> str | None:
    """What is wrong inside an extra key's value (walked without recursion), or None."""
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str:
            bad = _string_problem(v)
            if bad:
                return f"holds text that {bad}"
        elif t is float:
            if not math.isfinite(v):
                return f"must hold finite numbers only, got {v!r}"
        elif t is int:
            if v.bit_length() > 1000 and _too_big_for_double(v):
                return f"must hold numbers that fit a double (at most 1.8e308), got {show(v)}"
        elif t is Unreadable:
            return f"must hold numbers JSON can carry, got {v!r}"
        elif t is dict:
            for k in v:
                bad = _string_problem(k)
                if bad:
                    return f"holds a key that {bad}"
            stack.extend(reversed(list(v.values())))
        elif t is list:
            stack.extend(reversed(v))
    return None


def _json_size(value: Any) -> int:
    import msgspec

    return len(msgspec.json.encode(value))


def _check_extra(extra: dict, node: str | None, limit: int) -> None:
    """Extra keys: clean text, finite numbers, and at most ``limit`` bytes of compact JSON in all."""
    for key, value in extra.items():
        bad = _string_problem(key)
        if bad:
            raise TreeError(f"a key that {bad}", node, key)
        bad = _value_problem(value)
        if bad:
            raise TreeError(bad, node, key)
    if not extra:
        return
    size = _json_size(extra)
    if size > limit:
        sizes = {k: _json_size(v) for k, v in extra.items()}
        big = max(sizes, key=sizes.__getitem__)
        raise TreeError(f"the extra keys take {size:,} bytes of JSON (this one {sizes[big]:,}); "
                        f"the limit is {limit:,}", node, big)


def _too_big_for_double(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _top(data: Any) -> tuple[list, dict]:
    """The file's top level: (raw nodes, meta)."""
    if not isinstance(data, dict):
        raise TreeError(f"the top level must be a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise TreeError(f"expected {FORMAT!r}, got {show(data.get('format'))}", field="format")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        raise TreeError("must be a list of nodes", field="nodes")
    if len(raw_nodes) > MAX_NODES:
        raise TreeError(f"has {len(raw_nodes):,} nodes; the limit is {MAX_NODES:,}", field="nodes")
    meta = {k: v for k, v in data.items() if k not in ("format", "nodes", "evidence")}
    _check_extra(meta, None, MAX_META)
    return raw_nodes, meta


def _evidence_list(data: dict) -> list:
    raw_ev = data.get("evidence", [])
    if not isinstance(raw_ev, list):
        raise TreeError("must be a list of labels", field="evidence")
    if len(raw_ev) > MAX_EVIDENCE:
        raise TreeError(f"has {len(raw_ev):,} entries; the limit is {MAX_EVIDENCE:,}", field="evidence")
    return raw_ev


def _node(raw: Any, i: int) -> Node:
    """One node's own keys, checked in order; the Node."""
    if not isinstance(raw, dict):
        raise TreeError(f"nodes[{i}] must be an object, got {type(raw).__name__}")
    nid = raw.get("id")
    if not isinstance(nid, str) or not nid:
        raise TreeError(f"nodes[{i}] needs a non-empty string id, got {show(nid)}", None, "id")
    bad = _id_problem(nid)
    if bad:
        raise TreeError(f"nodes[{i}]: the id {show(nid)} {bad}", None, "id")
    text = raw.get("text", _MISSING)
    if not isinstance(text, str):
        raise TreeError(f"must be a string, got {show(None if text is _MISSING else text)}", nid, "text")
    bad = _text_problem(text)
    if bad:
        raise TreeError(bad, nid, "text")
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
    extra = {k: v for k, v in raw.items() if k not in NODE_KEYS}
    _check_extra(extra, nid, MAX_EXTRA)
    return Node(id=nid, text=text, parent=parent, prior=raw.get("prior"), p_if_true=raw.get("p_if_true"),
                p_if_false=raw.get("p_if_false"), extra=extra)


def _evidence(raw: Any, j: int) -> Evidence:
    """One evidence entry, checked in order (Evidence's own checks, with short messages); the Evidence."""
    if not isinstance(raw, dict):
        raise TreeError(f"evidence[{j}] must be an object, got {type(raw).__name__}")
    node = raw.get("node")
    if not isinstance(node, str):
        raise TreeError(f"evidence[{j}] must name a node id, got {show(node)}", None, "node")
    if "value" not in raw:
        raise TreeError("missing (true or false)", node, "value")
    value = raw["value"]
    if not isinstance(value, bool):
        raise TreeError(f"must be true or false, got {show(value)}", node, "value")
    r = raw.get("reliability", 1.0)
    if isinstance(r, bool) or not isinstance(r, (int, float)) or (isinstance(r, float) and math.isnan(r)):
        raise TreeError(f"must be a number, got {show(r)}", node, "reliability")
    model = raw.get("source") == "model"
    if isinstance(r, int) and not 0 <= r <= 1:  # the same messages as Evidence's, for any size of integer
        if model:
            raise TreeError(f"model evidence is soft: must be in [0.5, 1), got {show(r)}", node, "reliability")
        raise TreeError(f"must be in (0.5, 1], got {show(r)}", node, "reliability")
    extra = {k: v for k, v in raw.items() if k not in EVIDENCE_KEYS}
    ev = Evidence(node=node, value=value, reliability=r, extra=extra)
    _check_extra(extra, node, MAX_EXTRA)
    return ev


def from_dict(data: Any) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    """A parsed argtree/1 document -> (tree, evidence), checked node by node (the specification)."""
    raw_nodes, meta = _top(data)
    nodes = [_node(raw, i) for i, raw in enumerate(raw_nodes)]
    tree = ArgumentTree(nodes, meta)
    raw_ev = _evidence_list(data)
    evidence = tree.check_evidence(_evidence(raw, j) for j, raw in enumerate(raw_ev))
    # Contradictory hard labels are an input error too: find them now, not at inference time.
    from .inference import propagate

    propagate(tree, evidence)
    return tree, evidence


# -- the columnar path ------------------------------------------------------------

@dataclass
class Columns:
    """A validated argtree/1 document as arrays, ready for inference; objects only on request.

    ``ct`` is the compiled tree (``ct.ids`` in file order), ``loglik`` the evidence as
    log-likelihoods (BFS order, model evidence counted by the frontier rule), ``prop`` the
    upward pass over them.  ``tree`` and ``evidence`` build ``Node``/``Evidence`` objects
    the first time they are read (human output, ``--batch``, import)."""

    data: Any                   # the parsed document: a dict, or the typed path's struct
    ct: Any
    loglik: np.ndarray
    prop: Any
    _objects: tuple | None = field(default=None, repr=False)
    _id_array: np.ndarray | None = field(default=None, repr=False)

    @property
    def ids(self):
        return self.ct.ids

    def id_array(self) -> np.ndarray:
        """The ids in file order as a numpy object array (made once)."""
        if self._id_array is None:
            self._id_array = np.array(self.ct.ids, dtype=object)
        return self._id_array

    def _build(self) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
        if self._objects is None and not isinstance(self.data, dict):
            self._objects = _typed_objects(self.data)
        if self._objects is None:
            data = self.data
            nodes = [Node(id=r["id"], text=r["text"], parent=r.get("parent"), prior=r.get("prior"),
                          p_if_true=r.get("p_if_true"), p_if_false=r.get("p_if_false"),
                          extra={k: v for k, v in r.items() if k not in NODE_KEYS}) for r in data["nodes"]]
            meta = {k: v for k, v in data.items() if k not in ("format", "nodes", "evidence")}
            tree = ArgumentTree(nodes, meta)
            evidence = tuple(Evidence(node=r["node"], value=r["value"], reliability=r.get("reliability", 1.0),
                                      extra={k: v for k, v in r.items() if k not in EVIDENCE_KEYS})
                             for r in data.get("evidence", []))
            self._objects = (tree, evidence)
        return self._objects

    @cached_property
    def tree(self) -> ArgumentTree:
        return self._build()[0]

    @cached_property
    def evidence(self) -> tuple[Evidence, ...]:
        return self._build()[1]


def _lengths(col: list) -> np.ndarray:
    """len() of each string, -1 where the value is not a string."""
    if _all_type(col, str):
        return np.fromiter(map(len, col), np.int64, len(col))
    return np.array([len(x) if type(x) is str else -1 for x in col], dtype=np.int64)


def _all_type(col: list, t: type) -> bool:
    types = set(map(type, col))
    return not types or types == {t}


def _present(col: list) -> np.ndarray:
    return np.fromiter(map(is_not, col, repeat(_MISSING)), bool, len(col))


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _probabilities(values: list) -> tuple[np.ndarray, np.ndarray]:
    """(as floats, bad): ``bad`` where check_probability would refuse the value."""
    types = set(map(type, values))
    arr = None
    if types <= {float, int}:
        try:
            arr = np.array(values, dtype=float) if values else np.zeros(0)
        except OverflowError:
            arr = None
    if arr is None:  # odd types or integers too large for a float: value by value
        ok = []
        for v in values:
            try:
                check_probability(v, None, "")
                ok.append(True)
            except TreeError:
                ok.append(False)
        ok = np.array(ok, dtype=bool)
        arr = np.array([float(v) if g else 0.0 for v, g in zip(values, ok)], dtype=float)
        return arr, ~ok
    return arr, ~((arr >= 0.0) & (arr <= 1.0))  # NaN fails both


def _extra_too_big(raws: list, has_extra: np.ndarray, keys: tuple, limit: int, size: float) -> np.ndarray:
    """Entries whose extra keys exceed ``limit`` bytes of JSON (none can when the file is smaller)."""
    n = len(raws)
    bad = np.zeros(n, dtype=bool)
    if size <= limit or n == 0:
        return bad
    import msgspec

    cand = np.flatnonzero(has_extra)
    if not len(cand):
        return bad
    encode = msgspec.json.encode
    whole = np.fromiter(map(len, map(encode, (raws[i] for i in cand))), np.int64, len(cand))
    for i in cand[whole > limit]:  # the whole entry is big: measure its extra keys alone
        extra = {k: v for k, v in raws[i].items() if k not in keys}
        bad[i] = len(encode(extra)) > limit
    return bad


class _Index:
    """Node id -> file position, for a million ids without a million-entry dict.

    Building and probing a dict that size is bound by memory latency (one cache miss per id, and
    a second per probe); here the ids' hashes are sorted once and the probes are sorted and
    merged in (``searchsorted``), so memory is walked in order, and every match is confirmed by
    comparing the strings.  Equal hashes among the ids (a duplicate id, or a collision) fall back
    to a dict, which then answers exactly as before."""

    def __init__(self, ids: list):
        self.ids = ids
        self.n = len(ids)
        self.dict = None
        self._objects = None
        h = np.fromiter(map(hash, ids), np.int64, self.n)
        self.order = np.argsort(h)
        self.sorted = h[self.order]
        if self.n > 1 and bool((self.sorted[1:] == self.sorted[:-1]).any()):
            self.dict = dict(zip(ids, range(self.n)))

    def has_duplicates(self) -> bool:
        return self.dict is not None and len(self.dict) != self.n

    def lookup(self, keys: list, skip: np.ndarray | None = None) -> np.ndarray:
        """Position of each key (hashable; -1 where it is no id), and -1 wherever ``skip`` is True."""
        m = len(keys)
        if self.dict is not None or self.n == 0:
            get = (self.dict or {}).get
            out = np.fromiter(map(get, keys, repeat(-1)), np.int64, m)
            if skip is not None:
                out[skip] = -1
            return out
        q = np.fromiter(map(hash, keys), np.int64, m)
        qo = np.argsort(q)
        qs = q[qo]
        pos = np.minimum(np.searchsorted(self.sorted, qs), self.n - 1)
        hit = self.sorted[pos] == qs
        out = np.full(m, -1, dtype=np.int64)
        out[qo[hit]] = self.order[pos[hit]]
        # Confirm each hash match by the strings themselves (object arrays: one C loop).
        if self._objects is None:
            self._objects = np.array(self.ids, dtype=object)
        found = out >= 0
        same = self._objects[np.where(found, out, 0)] == np.array(keys, dtype=object)
        out[found & ~same] = -1
        if skip is not None:
            out[skip] = -1
        return out


def _fail(check, *args) -> None:
    """Run the specification's check on the entry the columns flagged; it must raise."""
    check(*args)
    raise TreeError(f"internal error: the columnar check refused {show(args[-1])} but the per-node check "
                    "accepts it; please report this file")


_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 309  # an integer too large for a double has at least 309 digits


class _Unclean(Exception):
    """Extra keys may hold integers too large for a double: the per-node path must look."""


def _long_digit_run(raw: bytes | str | None) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return _LONG_RUN in raw.translate(_DIGITS)


def validate(data: Any, size: int | None = None, model: str = "frontier", raw: bytes | str | None = None) -> Columns:
    """The columnar validator for a *clean* parsed document (see ``parse``): the same checks and
    messages as ``from_dict``, on whole columns.  ``size``: the file's length in bytes (an upper
    bound on every string and extra key, so most size checks can be skipped); None if unknown.
    ``raw``: the file's text; where extra keys exist and it holds a run of 309 digits (or is not
    given), their numbers are checked by the per-node path."""
    try:
        return _validate(data, size, model, raw)
    except _Unclean:
        return _from_spec(data, model)


def _from_spec(data: Any, model: str) -> Columns:
    from .inference import Propagation, compile_tree

    tree, evidence = from_dict(data)
    ct = compile_tree(tree)
    le = ct.loglik(evidence, model)
    return Columns(data, ct, le, Propagation(ct, le), (tree, evidence))


def _validate(data: Any, size: int | None, model: str, raw) -> Columns:
    from .inference import CompiledTree, Propagation

    # Re-encoding can make a value longer than it was in the file (9e15 -> 9000000000000000.0):
    # 5 bytes out per byte in bounds it, so files under MAX_EXTRA / 5 skip the size checks.
    size = float("inf") if size is None else 5 * size
    raw_nodes, meta = _top(data)
    n = len(raw_nodes)
    if not _all_type(raw_nodes, dict):
        i = next(k for k, r in enumerate(raw_nodes) if type(r) is not dict)
        _fail(_node, raw_nodes[i], i)
    get = dict.get
    ids = list(map(get, raw_nodes, repeat("id")))
    texts = list(map(get, raw_nodes, repeat("text")))
    parents = list(map(get, raw_nodes, repeat("parent")))
    priors = list(map(get, raw_nodes, repeat("prior"), repeat(_MISSING)))
    p1s = list(map(get, raw_nodes, repeat("p_if_true"), repeat(_MISSING)))
    p0s = list(map(get, raw_nodes, repeat("p_if_false"), repeat(_MISSING)))

    # Stage 1: every node's own keys (io._node).
    id_len = _lengths(ids)
    text_len = _lengths(texts)
    bad = (id_len <= 0) | (id_len > MAX_ID) | (text_len <= 0) | (text_len > MAX_TEXT)
    if n and text_len.min() >= 0:
        bad |= np.fromiter(map(str.isspace, texts), bool, n)
    elif n:
        bad |= np.array([type(t) is str and t.isspace() for t in texts], dtype=bool)
    for i in np.flatnonzero((text_len > MAX_TEXT // 3) & ~bad):  # may grow past the limit under NFC
        bad[i] = _text_problem(texts[i]) is not None
    root = np.fromiter(map(is_, parents, repeat(None)), bool, n)
    has_prior, has_p1, has_p0 = _present(priors), _present(p1s), _present(p0s)
    bad |= np.where(root, has_p1 | has_p0 | ~has_prior, has_prior | ~has_p1 | ~has_p0)
    has_parent_key = ~root
    for k in np.flatnonzero(root).tolist():
        has_parent_key[k] = "parent" in raw_nodes[k]
    known = 2 + has_prior.astype(np.int64) + has_p1 + has_p0 + has_parent_key
    has_extra = np.fromiter(map(len, raw_nodes), np.int64, n) > known
    extras_anywhere = bool(has_extra.any()) or bool(meta)
    if extras_anywhere and _long_digit_run(raw):
        raise _Unclean
    bad |= _extra_too_big(raw_nodes, has_extra, NODE_KEYS, MAX_EXTRA, size)
    i = _first(bad)
    if i is not None:
        _fail(_node, raw_nodes[i], i)

    # Stage 2: ArgumentTree's checks on each node (tree.check_node).
    index = _Index(ids)
    bad = np.zeros(n, dtype=bool)
    dup = None
    if index.has_duplicates():
        seen: set = set()
        for k, nid in enumerate(ids):
            if nid in seen:
                dup = k
                break
            seen.add(nid)
        bad[dup] = True
    prem = np.flatnonzero(~root)
    roots = np.flatnonzero(root)
    if len(roots) == 1:
        r = int(roots[0])
        take = (lambda col: col[:r] + col[r + 1:])
    else:
        take = (lambda col: [col[k] for k in prem])
    p1, bad1 = _probabilities(take(p1s))
    p0, bad0 = _probabilities(take(p0s))
    prem_parents = take(parents)
    bad[prem] |= bad1 | bad0
    if not _all_type(prem_parents, str):
        bad[prem] |= np.array([type(x) is not str for x in prem_parents], dtype=bool)
    _, bad_prior = _probabilities([priors[k] for k in roots])
    bad[roots] |= bad_prior
    i = _first(bad)
    if i is not None:
        _fail(lambda raw, k: check_node(_node(raw, k), k == dup), raw_nodes[i], i)

    # Stage 3: exactly one root; every parent known and not the node itself; no cycles.
    if len(roots) != 1:
        raise roots_error([ids[k] for k in roots])
    parent_idx = index.lookup(parents, root)
    bad = (~root & (parent_idx < 0)) | (parent_idx == np.arange(n))
    i = _first(bad)
    if i is not None:
        raise parent_error(ids[i], parents[i], parent_idx[i] >= 0)
    full1, full0 = np.zeros(n), np.zeros(n)
    full1[prem], full0[prem] = p1, p0
    try:
        ct = CompiledTree.from_arrays(parent_idx, full1, full0, float(priors[r]), ids)
    except TreeError:
        raise _cycle(ids, parent_idx, r) from None

    # Stage 4: evidence, entry by entry (io._evidence), then unknown nodes.
    raw_ev = _evidence_list(data)
    m = len(raw_ev)
    if not _all_type(raw_ev, dict):
        j = next(k for k, e in enumerate(raw_ev) if type(e) is not dict)
        _fail(_evidence, raw_ev[j], j)
    ev_nodes = list(map(get, raw_ev, repeat("node")))
    values = list(map(get, raw_ev, repeat("value"), repeat(_MISSING)))
    rels = list(map(get, raw_ev, repeat("reliability"), repeat(1.0)))
    is_model = np.fromiter(map(eq, map(get, raw_ev, repeat("source")), repeat("model")), bool, m)
    bad = np.zeros(m, dtype=bool)
    if not _all_type(ev_nodes, str):
        bad |= np.array([type(x) is not str for x in ev_nodes], dtype=bool)
    if not _all_type(values, bool):
        bad |= np.array([type(x) is not bool for x in values], dtype=bool)
    rel, rel_bad = _probabilities(rels)
    with np.errstate(invalid="ignore"):
        in_range = np.where(is_model, (rel >= 0.5) & (rel < 1.0), (rel > 0.5) & (rel <= 1.0))
    bad |= rel_bad | ~in_range
    if m:
        known = (np.fromiter(map(dict.__contains__, raw_ev, repeat("node")), np.int64, m)
                 + _present(values) + np.fromiter(map(dict.__contains__, raw_ev, repeat("reliability")), bool, m))
        has_extra = np.fromiter(map(len, raw_ev), np.int64, m) > known
        if has_extra.any() and not extras_anywhere and _long_digit_run(raw):
            raise _Unclean
        bad |= _extra_too_big(raw_ev, has_extra, EVIDENCE_KEYS, MAX_EXTRA, size)
    j = _first(bad)
    if j is not None:
        _fail(_evidence, raw_ev[j], j)
    ev_idx = index.lookup(ev_nodes)
    j = _first(ev_idx < 0)
    if j is not None:
        raise TreeError("evidence on an unknown node", ev_nodes[j], "node")
    value_arr = np.fromiter(values, bool, m) if m else np.zeros(0, dtype=bool)
    le = loglik(ct, ev_idx, value_arr, rel, is_model, model)
    # Stage 5: contradictory or impossible evidence (the upward pass says where).
    prop = Propagation(ct, le)
    return Columns(data, ct, le, prop, _id_array=index._objects)


def _cycle(ids: list, parent_idx: np.ndarray, root: int) -> TreeError:
    """tree.cycle_error for the first node (in file order) not reachable from the root."""
    n = len(ids)
    children: list[list[int]] = [[] for _ in range(n)]
    for k in np.flatnonzero(parent_idx >= 0).tolist():
        children[parent_idx[k]].append(k)
    seen = np.zeros(n, dtype=bool)
    seen[root] = True
    stack = [root]
    while stack:
        for c in children[stack.pop()]:
            seen[c] = True
            stack.append(c)
    start = int(np.argmin(seen))
    position = {nid: k for k, nid in enumerate(ids)}
    return cycle_error(ids[start], lambda nid: ids[parent_idx[position[nid]]])


def loglik(ct, ev_idx: np.ndarray, value: np.ndarray, reliability: np.ndarray, is_model: np.ndarray,
           model: str = "frontier") -> np.ndarray:
    """``CompiledTree.loglik`` on evidence columns (``ev_idx``: file-order node index), bit for bit:
    the same terms added in the same order (one ``np.add.at`` over the entries in file order)."""
    from .inference import MODEL_MODES

    if model not in MODEL_MODES:
        raise ValueError(f"model evidence mode must be one of {MODEL_MODES}, got {model!r}")
    le = np.zeros((ct.n, 2))
    if not len(ev_idx):
        return le
    pos = ct.position[ev_idx]
    keep = np.ones(len(pos), dtype=bool)
    if is_model.any():
        if model == "none":
            keep &= ~is_model
        else:
            keep &= ~(is_model & (pos == 0))
            if model == "frontier":
                keep &= ~(is_model & ct.expanded()[pos])
    pos, v, a = pos[keep], value[keep].astype(np.intp), reliability[keep]
    with np.errstate(divide="ignore"):
        terms = np.stack([np.log(a), np.log1p(-a)], axis=1).ravel()
    rows = np.repeat(pos, 2)
    cols = np.stack([v, 1 - v], axis=1).ravel()
    np.add.at(le, (rows, cols), terms)
    return le


# -- the typed path: a plain file straight into structs ----------------------------------

_DECODER = None


def _typed_decoder():
    """msgspec's decoder for a *plain* argtree/1 file: only the format's own keys (plus an evidence
    entry's ``source``), each of its JSON type.  Any other key or type fails the decode at once."""
    global _DECODER
    if _DECODER is None:
        import msgspec

        from typing import Annotated

        nan = float("nan")  # "missing": JSON cannot hold a NaN
        number = int | float
        # Lengths in code points, checked by the decoder.  A text of at most MAX_TEXT / 3 characters
        # cannot outgrow MAX_TEXT under NFC; a longer one (rare) takes the general path.
        nid = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
        text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT // 3)]
        kw = {"forbid_unknown_fields": True, "gc": False}
        node = msgspec.defstruct("TNode", [("id", nid), ("text", text), ("parent", str | None, None),
                                           ("prior", number, nan), ("p_if_true", number, nan),
                                           ("p_if_false", number, nan)], **kw)
        entry = msgspec.defstruct("TEvidence", [("node", str), ("value", bool), ("reliability", number, 1.0),
                                                ("source", str | None | msgspec.UnsetType, msgspec.UNSET)], **kw)
        doc = msgspec.defstruct("TDoc", [("format", str), ("nodes", list[node]), ("evidence", list[entry], [])],
                                **kw)
        _DECODER = msgspec.json.Decoder(doc)
    return _DECODER


def typed_columns(raw: bytes | str, model: str = "frontier") -> Columns | None:
    """The fast path for a plain, valid file; None for any other (the general path then decides).

    Most large files are plain: the format's keys and nothing else (no extra keys on the file, a
    node or an evidence entry but an entry's ``source``; texts of at most MAX_TEXT / 3 characters).
    msgspec decodes them into typed structs, which is about twice as fast as into dicts and checks
    every key's JSON type and every id's and text's length on the way; the columns are then
    checked as in ``validate``.  This path never makes an error: at the first
    sign of one (or of anything it does not handle: a NUL escape, extra keys, an unexpected type, a
    file that breaks any rule), it returns None and the general path, the one that words the
    errors, reads the file again.  A file it accepts gives the same arrays, numbers and objects as
    the general path, bit for bit (tests/test_columnar.py).  A file with extra keys costs at most
    one extra decode up to its first extra key (usually the first node: ``dumps`` writes the
    file's own extra keys first)."""
    import msgspec

    if (b"\\u0000" if isinstance(raw, (bytes, bytearray)) else "\\u0000") in raw:
        return None  # a string may hold a NUL
    try:
        doc = _typed_decoder().decode(raw)
    except (msgspec.DecodeError, RecursionError, ValueError):  # ValidationError is a DecodeError
        return None
    try:
        return _typed_validate(doc, model)
    except (TreeError, OverflowError):  # a cycle, contradictory evidence, a huge integer...
        return None


def _unit(x: np.ndarray) -> bool:
    """Every value in [0, 1] (a NaN fails)."""
    return not len(x) or bool(x.min() >= 0.0) and bool(x.max() <= 1.0)


def _typed_validate(doc, model: str) -> Columns | None:
    from .inference import CompiledTree, Propagation

    nodes, evs = doc.nodes, doc.evidence
    n, m = len(nodes), len(evs)
    if doc.format != FORMAT or not 0 < n <= MAX_NODES or m > MAX_EVIDENCE:
        return None
    ids = tuple(map(attrgetter("id"), nodes))  # a tuple: CompiledTree keeps it as it is
    parents = list(map(attrgetter("parent"), nodes))
    # Every node's own keys (io._node): the decoder checked the lengths; no blank text.
    if any(map(str.isspace, map(attrgetter("text"), nodes))):
        return None
    # Exactly one root, which alone carries a prior; premises carry both probabilities, all in [0, 1].
    root = np.fromiter(map(is_, parents, repeat(None)), bool, n)
    roots = np.flatnonzero(root)
    if len(roots) != 1:
        return None
    r = int(roots[0])
    prior = np.fromiter(map(attrgetter("prior"), nodes), float, n)
    p1 = np.fromiter(map(attrgetter("p_if_true"), nodes), float, n)
    p0 = np.fromiter(map(attrgetter("p_if_false"), nodes), float, n)
    root_prior = float(prior[r])
    if not (0.0 <= root_prior <= 1.0 and np.isnan(p1[r]) and np.isnan(p0[r])):
        return None
    prior[r] = np.nan
    p1[r] = p0[r] = 0.0
    if not (np.isnan(prior).all() and _unit(p1) and _unit(p0)):
        return None
    # Unique ids; every parent a known node other than itself; no cycle (from_arrays refuses one).
    index = _Index(ids)
    if index.dict is not None:  # a duplicate id (or two ids of equal hash): the general path
        return None
    parent_idx = index.lookup(parents, root)
    if bool(((parent_idx < 0) != root).any()) or bool((parent_idx == np.arange(n)).any()):
        return None
    ct = CompiledTree.from_arrays(parent_idx, p1, p0, root_prior, ids)
    # Evidence: reliabilities in range, known nodes; a source's text is short enough for MAX_EXTRA.
    ev_nodes = list(map(attrgetter("node"), evs))
    values = np.fromiter(map(attrgetter("value"), evs), bool, m)
    rel = np.fromiter(map(attrgetter("reliability"), evs), float, m)
    sources = list(map(attrgetter("source"), evs))
    is_model = np.fromiter(map(eq, sources, repeat("model")), bool, m)
    if any(type(s) is str and len(s) > MAX_EXTRA // 8 for s in sources):  # 6 bytes a character at most
        return None
    with np.errstate(invalid="ignore"):
        in_range = np.where(is_model, (rel >= 0.5) & (rel < 1.0), (rel > 0.5) & (rel <= 1.0))
    if not in_range.all():
        return None
    ev_idx = index.lookup(ev_nodes)
    if m and int(ev_idx.min()) < 0:
        return None
    le = loglik(ct, ev_idx, values, rel, is_model, model)
    return Columns(doc, ct, le, Propagation(ct, le), _id_array=index._objects)


def _missing(x):
    return None if x != x else x  # NaN marks a key the file does not have


def _typed_objects(doc) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    """``Columns._build`` for a typed document: the same Node and Evidence objects as from dicts."""
    import msgspec

    nodes = [Node(id=r.id, text=r.text, parent=r.parent, prior=_missing(r.prior), p_if_true=_missing(r.p_if_true),
                  p_if_false=_missing(r.p_if_false), extra={}) for r in doc.nodes]
    evidence = tuple(Evidence(node=e.node, value=e.value, reliability=e.reliability,
                              extra={} if e.source is msgspec.UNSET else {"source": e.source}) for e in doc.evidence)
    return ArgumentTree(nodes, {}), evidence


# -- entry points -----------------------------------------------------------------

def loads_columns(raw: bytes | str, model: str = "frontier") -> Columns:
    """Parse and validate an argtree/1 document; arrays for inference, objects only on request.

    A plain, valid file goes the typed way (``typed_columns``); any other file the general one."""
    cols = typed_columns(raw, model)
    if cols is not None:
        return cols
    data, clean = parse(raw)
    if clean:
        return validate(data, len(raw) * (1 if isinstance(raw, bytes) else 4), model, raw)
    return _from_spec(data, model)  # unusual content (NaN, surrogates, NUL...): the per-node path says where


def load_columns(path: str | os.PathLike, model: str = "frontier") -> Columns:
    return loads_columns(_read(path), model)


def loads(text: bytes | str) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    """Parse and validate an argtree/1 document into (tree, evidence)."""
    cols = loads_columns(text)
    return cols.tree, cols.evidence


def load(path: str | os.PathLike) -> tuple[ArgumentTree, tuple[Evidence, ...]]:
    cols = load_columns(path)
    return cols.tree, cols.evidence


# -- writing ----------------------------------------------------------------------

# Characters that are valid in JSON strings but act on a terminal or reorder the text shown
# (DEL, C1 controls, bidi and other invisible format characters, line/paragraph separators):
# written as \\uXXXX escapes, which every JSON reader turns back into the same text.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]")


def escape_json(text: str) -> str:
    """JSON text with terminal-unsafe characters escaped (lossless: the same document)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
    return escape_json(json.dumps(to_dict(tree, evidence), indent=indent, ensure_ascii=False, allow_nan=False))


def dump(tree: ArgumentTree, evidence, path: str | os.PathLike) -> None:
    """Write atomically: a killed process leaves the old file or the new one, never half of one."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(dumps(tree, evidence))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
