"""Brute-force reference: enumerate the full joint of a small tree (independent of argtree.inference)."""

from __future__ import annotations

import itertools
import math


def joint_table(nodes, evidence):
    """nodes: list of (id, parent_id|None, prior|p_if_true, p_if_false); returns ids, [(assignment, weight)]."""
    ids = [n[0] for n in nodes]
    idx = {nid: i for i, nid in enumerate(ids)}
    rows = []
    for x in itertools.product((0, 1), repeat=len(ids)):
        w = 1.0
        for nid, parent, pt, pf in nodes:
            if parent is None:
                p = pt
            else:
                p = pt if x[idx[parent]] else pf
            w *= p if x[idx[nid]] else 1.0 - p
        for node, value, rel in evidence:
            w *= rel if x[idx[node]] == int(value) else 1.0 - rel
        rows.append((x, w))
    return ids, rows


def brute(nodes, evidence):
    """Beliefs and the three VoI metrics straight from the definitions in DESIGN.md.

    Returns None when the evidence has probability zero.
    """
    ids, rows = joint_table(nodes, evidence)
    Z = sum(w for _, w in rows)
    if Z == 0:
        return None
    root = next(i for i, n in enumerate(nodes) if n[1] is None)
    bel = {nid: sum(w for x, w in rows if x[i]) / Z for i, nid in enumerate(ids)}
    R = bel[ids[root]]

    def H(p):
        return -sum(q * math.log2(q) for q in (p, 1 - p) if q > 0)

    hard = {node for node, _, rel in evidence if rel == 1.0}
    out = {"beliefs": bel, "shift": {}, "decision": {}, "info": {}}
    for i, nid in enumerate(ids):
        if i == root or nid in hard:
            continue
        shift = decision = cond_h = 0.0
        for v in (0, 1):
            pv = sum(w for x, w in rows if x[i] == v) / Z
            if pv == 0:
                continue
            rv = sum(w for x, w in rows if x[i] == v and x[root]) / Z / pv
            shift += pv * abs(rv - R)
            decision += pv * max(rv, 1 - rv)
            cond_h += pv * H(rv)
        out["shift"][nid] = shift
        out["decision"][nid] = decision - max(R, 1 - R)
        out["info"][nid] = H(R) - cond_h
    return out
