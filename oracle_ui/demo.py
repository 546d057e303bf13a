"""A reproducible demo/test database: random argument trees and a few accounts.

Used by the UI tests, the browser tests and ``bench/ui_latency.py``; also handy
to try the app: ``python -m oracle_ui.demo sqlite:///demo.db --trees 50``.
"""

from __future__ import annotations

import random
from typing import Iterable

from argtree.tree import ArgumentTree, Node

CLAIMS = ["remote work raises output", "the bridge will be finished by 2030", "the drug lowers blood pressure",
          "the new policy reduced traffic", "the model generalizes to new domains", "the startup will turn a profit"]
REASONS = ["commutes are saved", "costs went up", "a pilot study agrees", "the sample was small",
           "experts disagree", "the trend started earlier", "a rival effect explains it", "the data are recent"]


def make_tree(rng: random.Random, index: int, n_nodes: int = 12, branching: int = 3) -> ArgumentTree:
    """Tree ``index``: a root question and ``n_nodes - 1`` premises with model credences and rationales."""
    claim = rng.choice(CLAIMS)
    nodes = [Node(id="q", text=f"Q{index}: is it true that {claim}?", prior=round(rng.uniform(0.2, 0.8), 3),
                  extra={"credence": None, "rationale": "The question itself."})]
    for j in range(1, n_nodes):
        parent = nodes[(j - 1) // branching].id
        support = rng.random() < 0.6
        hi, lo = rng.uniform(0.6, 0.95), rng.uniform(0.05, 0.45)
        nodes.append(Node(id=f"n{j}", parent=parent,
                          text=f"T{index}.{j}: {rng.choice(REASONS)} ({'for' if support else 'against'} {parent})",
                          p_if_true=round(hi if support else lo, 3), p_if_false=round(lo if support else hi, 3),
                          extra={"credence": round(rng.uniform(0.1, 0.9), 3),
                                 "rationale": f"Reason {j}: {rng.choice(REASONS)}."}))
    return ArgumentTree(nodes, {"source": "oracle_ui.demo"})


def add_users(url: str, users: Iterable[tuple[str, str, bool]]) -> None:
    from argtree.store.accounts import add_annotator
    from argtree.store.db import session_scope

    with session_scope(url) as s:
        for name, password, admin in users:
            add_annotator(s, name, password, admin)


def add_trees(url: str, trees: Iterable[ArgumentTree], *, chunk: int = 200, priority: float = 1.0) -> list[int]:
    from argtree.store.db import session_scope
    from argtree.store.trees import save_tree

    ids: list[int] = []
    batch: list[ArgumentTree] = []

    def flush() -> None:
        with session_scope(url) as s:
            ids.extend(save_tree(s, t, priority=priority) for t in batch)
        batch.clear()

    for t in trees:
        batch.append(t)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    return ids


def seed(url: str, n_trees: int = 20, n_nodes: int = 12, *, seed: int = 0, migrate: bool = True,
         users: Iterable[tuple[str, str, bool]] = (("alice", "alice-pass-1", False), ("bob", "bob-pass-22", False),
                                                    ("admin", "admin-pass-3", True))) -> list[int]:
    """Migrate ``url``, add the accounts and ``n_trees`` random trees; return the tree ids."""
    if migrate:
        from argtree.store.db import upgrade

        upgrade(url)
    add_users(url, users)
    rng = random.Random(seed)
    return add_trees(url, (make_tree(rng, i, n_nodes) for i in range(n_trees)))


if __name__ == "__main__":  # pragma: no cover
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("url")
    ap.add_argument("--trees", type=int, default=20)
    ap.add_argument("--nodes", type=int, default=12)
    ns = ap.parse_args()
    print(len(seed(ns.url, ns.trees, ns.nodes)), "trees")
