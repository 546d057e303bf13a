"""``argtree infer`` and ``argtree voi``: the exact core on an argtree/1 file.

Both read the file through the one validator (``argtree.io.load_columns``): the
columnar path goes from the file to arrays, inference and VoI without building a
``Node`` per node; objects are built only for the human-readable output and
``--annotators``.  ``--json`` is written with msgspec (fast, exact float round trip).
"""

from __future__ import annotations

import sys

import click

from . import InputError, console, escape_controls, markup

METRIC_HELP = ("shift: expected move of P(root) (default); decision: expected gain in the chance of "
               "answering the root right; info: mutual information with the root, in bits.")


def _load(path: str):
    import gc

    from ..io import load_columns
    from ..tree import TreeError

    # A one-shot command over a million parsed dicts: the cyclic collector would only walk them
    # again and again as arrays are made (nothing here forms cycles worth collecting early).
    gc.disable()
    try:
        return load_columns(path)
    except TreeError as err:
        raise InputError(f"{path}: {err}") from None


def json_object(keys: list, values: list, order=None) -> bytes:
    """``msgspec.json.encode(dict(zip(keys, values)))``, byte for byte, without building the dict.

    With ``order`` (indices into ``keys``), the entries are ``keys[order[i]]: values[i]``: the keys
    are encoded once in their own order (the order they lie in memory) and put in place by numpy.

    A million-entry dict costs more to build than to encode, and so do a million small bytes
    objects; here the keys and the values are encoded as two lists, and numpy splices them: each
    key (quotes included) and each value becomes one row of a byte matrix padded with NUL bytes,
    a ':' and a ',' column go between, and the matrix read row by row without its padding is the
    object.  Exact: an encoded key or number holds no NUL byte (msgspec escapes control
    characters), and the quotes in the keys' list are only the keys' own unless a key holds a
    quote, and then the dict is built after all (as for keys too long for the matrix)."""
    out = _json_object(keys, values, order)
    return out if isinstance(out, bytes) else out.tobytes()


class EncodedKeys:
    """A list of strings encoded once as a JSON array (msgspec), with where each one lies in it:
    ``buf[start[i]:start[i] + length[i]]`` is string i, quotes included.  None from ``encode``
    when a string holds a quote (its escaped quote would look like a boundary)."""

    __slots__ = ("buf", "start", "length", "plain")

    @classmethod
    def encode(cls, keys) -> "EncodedKeys | None":
        import msgspec
        import numpy as np

        raw = msgspec.json.encode(keys)
        if raw.count(b'"') != 2 * len(keys):
            return None
        self = cls()
        self.buf = np.frombuffer(raw, np.uint8)
        quotes = np.flatnonzero(self.buf == 34)
        self.start = quotes[0::2]
        self.length = quotes[1::2] + 1 - self.start
        # No escapes at all (no backslash): each string's bytes between its quotes are its UTF-8.
        self.plain = b"\\" not in raw
        return self

    def argsort(self, at) -> np.ndarray:
        """Stable argsort of strings ``at`` by code point (needs ``plain``): UTF-8 byte order is code
        point order, and the NUL padding of numpy's bytes dtype sorts first as a shorter string
        does in Python (the strings hold no NUL: ``plain`` rules out an escaped one)."""
        import numpy as np

        start, length = self.start[at] + 1, self.length[at] - 2
        if not len(at):
            return np.zeros(0, dtype=np.int64)
        w = max(int(length.max()), 1)
        pad = np.zeros(w, dtype=np.uint8)
        rows = np.lib.stride_tricks.sliding_window_view(np.concatenate((self.buf, pad)), w)[start]
        rows *= np.arange(w) < length[:, None]
        return np.argsort(rows.view(f"S{w}").ravel(), kind="stable")


def _json_object(keys, values, order=None, encoded: EncodedKeys | None = None):
    """``json_object``'s bytes, or a uint8 array holding them (written out without a copy).
    ``encoded``: ``EncodedKeys.encode(keys)`` if already made."""
    import msgspec
    import numpy as np

    encode = msgspec.json.encode
    n = len(values)
    if order is not None and n != len(keys):
        order = np.asarray(order, dtype=np.int64)
    enc = encoded or (EncodedKeys.encode(keys) if n else None)
    if enc is None:
        pairs = zip(keys, values) if order is None else zip((keys[i] for i in order.tolist()), values)
        return encode(dict(pairs))
    V = encode(values)
    kb, kstart, klen = enc.buf, enc.start, enc.length
    vb = np.frombuffer(V, np.uint8)
    commas = np.flatnonzero(vb == 44)
    vstart = np.concatenate(([1], commas + 1))
    vlen = np.concatenate((commas, [len(vb) - 1])) - vstart
    if order is not None:
        kstart, klen = kstart[order], klen[order]
    wk, wv = int(klen.max()), int(vlen.max())
    if n * (wk + wv + 2) > 64 << 20:  # one key far longer than the rest: the matrix would be too big
        pairs = zip(keys, values) if order is None else zip((keys[i] for i in order.tolist()), values)
        return encode(dict(pairs))
    # Row i: [the '{' in row 0, else NUL] key i (NUL-padded to wk) ':' value i (NUL-padded to wv) ','
    rows = np.empty((n, wk + wv + 3), dtype=np.uint8)
    rows[:, 0] = 0
    rows[0, 0] = 123  # '{'
    pad = np.zeros(max(wk, wv), dtype=np.uint8)
    window = np.lib.stride_tricks.sliding_window_view  # row i of window(b, w) is b[i:i + w], no copy
    # A fancy index copies only the rows taken (np.take would copy the whole window first).
    np.multiply(window(np.concatenate((kb, pad)), wk)[kstart], np.arange(wk) < klen[:, None],
                out=rows[:, 1:wk + 1])
    rows[:, wk + 1] = 58  # ':'
    np.multiply(window(np.concatenate((vb, pad)), wv)[vstart], np.arange(wv) < vlen[:, None],
                out=rows[:, wk + 2:wk + 2 + wv])
    rows[:, -1] = 44  # ','
    flat = rows.reshape(-1)
    out = flat[flat != 0]  # a boolean mask copies directly (np.compress would make an index array)
    out[-1] = 125  # the last ',' becomes '}'
    return out


def _write_json(*chunks) -> None:
    """One JSON document on stdout (msgspec: a million floats in milliseconds, each read back exactly),
    given as a dict, or as pieces already encoded (bytes, or uint8 arrays from ``_json_object``)
    that are written one after the other without joining them."""
    import msgspec
    import numpy as np

    if len(chunks) == 1 and isinstance(chunks[0], dict):
        chunks = (msgspec.json.encode(chunks[0]),)
    unsafe = any(int(c.max(initial=0)) >= 0x7F if isinstance(c, np.ndarray) else (not c.isascii() or b"\x7f" in c)
                 for c in chunks)
    if unsafe:  # terminal-unsafe characters as \uXXXX, losslessly
        from ..io import escape_json

        whole = b"".join(c.tobytes() if isinstance(c, np.ndarray) else c for c in chunks)
        chunks = (escape_json(whole.decode("utf-8")).encode("utf-8"),)
    sys.stdout.flush()
    for c in chunks:
        sys.stdout.buffer.write(c)
    sys.stdout.buffer.write(b"\n")
    sys.stdout.buffer.flush()


def _label(tree, nid: str, width: int = 70) -> str:
    text = escape_controls(tree[nid].text)
    return text if len(text) <= width else text[: width - 1] + "…"


def rank_order(ids, values, id_argsort=None) -> np.ndarray:
    """Indices (an array) of ``values`` in ``argtree.voi.rank`` order: value rounded to 12 decimals, highest
    first, ties by id; without a Python sort of every (value, id) pair.

    ``np.round(x, 12)`` equals Python's ``round(x, 12)`` except where ``x * 1e12`` lies within
    rounding error of a half (then Python's correctly rounded result is taken), so the order is
    ``rank``'s exactly (tests/test_columnar.py).  ``id_argsort(at)``: a stable argsort of
    ``ids[at]`` by code point, if the caller has a faster one (``EncodedKeys.argsort``)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    key = np.round(values, 12)
    scaled = values * 1e12
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-3
    if near_half.any():
        key[near_half] = [round(v, 12) for v in values[near_half].tolist()]
    order = np.argsort(-key)  # ties are put in id order below, so the sort need not be stable
    sk = key[order]
    cut = np.flatnonzero(sk[1:] != sk[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [len(sk)]))
    tied = ends - starts > 1
    if not tied.any():
        return order
    # Ties: order by id within each run of equal keys.  The tied ids are sorted in the caller's
    # order (file order: the order they lie in memory, and often nearly sorted already, which a
    # stable sort exploits), then grouped by run, a stable sort that keeps id order within a run.
    run = np.repeat(np.arange(len(starts)), ends - starts)
    members = np.flatnonzero(tied[run])
    tied_at = np.sort(order[members])  # caller indices of the tied values, ascending
    run_of = np.empty(len(values), dtype=np.int64)
    run_of[order[members]] = run[members]
    by_id = tied_at[id_argsort(tied_at) if id_argsort else _id_argsort(ids, tied_at)]
    grouped = by_id[np.argsort(run_of[by_id], kind="stable")]
    order[members] = grouped
    return order


def _id_argsort(ids, at) -> np.ndarray:
    """Stable argsort of ``ids[at]`` by code point, as Python compares strings."""
    import numpy as np

    id_list = ids[at].tolist() if isinstance(ids, np.ndarray) else [ids[i] for i in at.tolist()]
    if not id_list:
        return np.zeros(0, dtype=np.int64)
    # numpy compares fixed-width strings by code point as Python does (ids hold no NUL, the one
    # character numpy's padding would confuse): bytes when all are ASCII (at most 200 bytes an
    # id), else UCS-4 unless that takes over 128 MB, and then Python's sort.
    try:
        arr = np.array(id_list, dtype="S")
    except UnicodeEncodeError:
        width = int(np.fromiter(map(len, id_list), np.int64, len(id_list)).max())
        if len(id_list) * width > 32_000_000:
            return np.array(sorted(range(len(id_list)), key=id_list.__getitem__), dtype=np.int64)
        arr = np.array(id_list, dtype=f"U{width}")
    return np.argsort(arr, kind="stable")


def ranked(ids, id_array, values, askable, encode: bool):
    """(keep, kept, order, encoded) for ``argtree voi``: the askable nodes' indices (file order) and
    VoI, their ``rank_order``, and, when ``encode`` (--json), the ids encoded once
    (``EncodedKeys``), used for the output and, when no id needs an escape, for sorting tied ids
    by their bytes."""
    import numpy as np

    keep = np.flatnonzero(askable)
    kept = values[keep]
    enc = EncodedKeys.encode(ids) if encode and len(keep) else None
    small = enc is not None and len(keep) * int(enc.length.max()) <= 64 << 20  # the byte matrix
    by_bytes = (lambda at: enc.argsort(keep[at])) if small and enc.plain else None
    return keep, kept, rank_order(id_array[keep], kept, by_bytes), enc


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help='Print {"beliefs": {id: P(true)}} for every node.')
def infer(file: str, as_json: bool) -> None:
    """Exact belief P(node = true | evidence) of every node in FILE (argtree/1 JSON).

    By default prints the tree with beliefs and each premise's stance; --json
    prints a JSON object for scripts.  Bad input exits with status 2 and a
    message naming the node and field.
    """
    cols = _load(file)
    ct = cols.ct
    bel_arr = ct.to_caller(cols.prop.down())
    if as_json:
        _write_json(b'{"beliefs":', _json_object(ct.ids, bel_arr.tolist()), b"}")
        return
    from rich.tree import Tree

    tree, evidence = cols.tree, cols.evidence
    bel = dict(zip(ct.ids, bel_arr.tolist()))
    labels = {}
    for ev in evidence:
        labels.setdefault(ev.node, []).append(("T" if ev.value else "F") + ("" if ev.is_hard else f"@{ev.reliability:g}"))

    def line(nid: str) -> str:
        node = tree[nid]
        stance = {"supports": "[green]+[/]", "attacks": "[red]-[/]", "neutral": "[dim]=[/]", "root": ""}[node.stance]
        mark = f" [bold cyan]labeled {','.join(labels[nid])}[/]" if nid in labels else ""
        return f"{stance} [bold]{bel[nid]:.3f}[/] {markup(_label(tree, nid))} [dim]({markup(nid)})[/]{mark}"

    root = Tree(line(tree.root))
    stack = [(tree.root, root)]
    shown = 0
    while stack and shown < 500:
        nid, branch = stack.pop()
        added = [(child, branch.add(line(child))) for child in tree.children(nid)]
        stack.extend(reversed(added))
        shown += len(added)
    out = console()
    out.print(root)
    if len(tree) > 501:
        out.print(f"[dim]… {len(tree) - 501} more nodes (use --json for all)[/]")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--metric", type=click.Choice(["shift", "decision", "info"]), default="shift", show_default=True,
              help=METRIC_HELP)
@click.option("--top", type=click.IntRange(min=1), default=None, help="Keep only the K best, in rank order.")
@click.option("--annotators", "batch", type=click.IntRange(1, 12), default=None,
              help="Pick K questions for K annotators answering at once (greedy, accounts for earlier picks' answers).")
@click.option("--batch", "old_batch", type=click.IntRange(1, 12), default=None, hidden=True,
              help="Deprecated spelling of --annotators (--batch is the nodes per model call in ask and loop).")
@click.option("--json", "as_json", is_flag=True, help='Print {"metric": ..., "voi": {id: value}} for scripts.')
def voi(file: str, metric: str, top: int | None, batch: int | None, old_batch: int | None, as_json: bool) -> None:
    """Value of information of every unlabeled premise in FILE, best first.

    VoI says how much learning a premise's true value is expected to move the
    root: high for premises that are both uncertain and influential.  Nodes with
    hard evidence and the root have no VoI.  For each of the top questions the
    table shows what a True or False answer would do to the root.
    """
    if old_batch is not None:
        if batch is not None and batch != old_batch:
            raise InputError("--batch is the old spelling of --annotators: give one of them")
        click.echo("argtree: warning: voi --batch K is now --annotators K", err=True)
        batch = old_batch
    import numpy as np

    from ..tree import TreeError
    from ..voi import root_if, select_batch, voi_arrays

    cols = _load(file)
    ct = cols.ct
    try:
        values, askable = voi_arrays(ct, cols.loglik, metric, cols.prop)
        picks = select_batch(ct, cols.evidence, batch, metric) if batch else None
    except TreeError as err:
        raise InputError(f"{file}: {err}") from None
    values, askable = ct.to_caller(values), ct.to_caller(askable)
    ids = ct.ids
    keep, kept, order, enc = ranked(ids, cols.id_array(), values, askable, as_json)
    ask_ids = cols.id_array()[keep]
    if top is not None:
        order = order[:top]
    if as_json:
        import msgspec

        head = b'{"metric":' + msgspec.json.encode(metric) + b',"voi":'
        tail = (b',"batch":' + msgspec.json.encode(picks) if picks is not None else b"") + b"}"
        _write_json(head, _json_object(ids, kept[order].tolist(), keep[order], enc), tail)
        return
    from rich.table import Table

    tree, evidence = cols.tree, cols.evidence
    bel = dict(zip(ids, ct.to_caller(cols.prop.down()).tolist()))
    table = Table(title=f"VoI ({metric}) — root {markup(repr(tree.root))}: P = {bel[tree.root]:.3f}")
    for col, kw in (("#", {"justify": "right"}), ("node", {}), ("premise", {"overflow": "fold"}),
                    ("P(true)", {"justify": "right"}), ("VoI", {"justify": "right"}),
                    ("root if true", {"justify": "right"}), ("root if false", {"justify": "right"})):
        table.add_column(col, **kw)
    shown = list(zip(ask_ids[order[: top or 20]].tolist(), kept[order[: top or 20]].tolist()))
    for i, (nid, value) in enumerate(shown, 1):
        if_t, if_f = root_if(ct, evidence, nid) if 0 < bel[nid] < 1 else (float("nan"), float("nan"))
        table.add_row(str(i), markup(nid), markup(_label(tree, nid)), f"{bel[nid]:.3f}", f"{value:.4f}",
                      f"{if_t:.3f}", f"{if_f:.3f}")
    out = console()
    out.print(table)
    if top is None and len(order) > 20:
        out.print(f"[dim]… {len(order) - 20} more (use --top K or --json)[/]")
    if picks is not None:
        out.print(f"Batch for {batch} annotators: {', '.join(escape_controls(p) for p in picks)}")
