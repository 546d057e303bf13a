"""Throw-away migrated databases for tests (ours and other components').

    from argtree.store.testing import sqlite_db, postgres_db
    url = sqlite_db(tmp_path)                 # migrated with Alembic to head
    with postgres_db() as url: ...           # a fresh schema of its own, dropped afterwards;
                                              # pytest.skip()s with how-to-enable when unreachable
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from .db import upgrade

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HOW_TO = ("PostgreSQL not reachable at {url} ({err}); start it (e.g. `pg_ctlcluster --skip-systemctl-redirect "
          "$(ls /etc/postgresql) main start`) or set ARGTREE_TEST_POSTGRES_URL to a server with trust auth")


_template: dict[int, Path] = {}


def sqlite_db(directory: str | os.PathLike, name: str = "argtree.db") -> str:
    """A SQLite database migrated to head (a copy of one migrated once per process)."""
    import shutil
    import tempfile

    template = _template.get(os.getpid())
    if template is None:
        template = Path(tempfile.mkdtemp(prefix="argtree-template-")) / "template.db"
        upgrade(f"sqlite:///{template}")
        _template[os.getpid()] = template
    path = Path(directory) / name
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def fast_password_hashing() -> None:
    """Cheap argon2 parameters for tests (hashing with the defaults takes ~0.5 s on a busy 2-core box)."""
    from argon2 import PasswordHasher

    from . import accounts

    accounts.HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def dispose(url: str) -> None:
    """Close this process's pooled connections to ``url``."""
    from .compute import _settings_cache
    from .db import _checked, _engines

    _settings_cache.clear()
    for key in [k for k in _engines if k[0] == url]:
        _engines.pop(key).dispose()
        _checked.discard(key)


def reset_postgres(url: str) -> None:
    """Empty every argtree table of the schema ``url`` points at (keeps the migrated schema)."""
    from sqlalchemy import text

    from .db import get_engine
    from .models import Base

    from .compute import _settings_cache

    _settings_cache.clear()
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def postgres_base_url() -> str:
    return os.environ.get("ARGTREE_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_unreachable() -> str | None:
    """None when the test PostgreSQL answers, else the reason (with how to enable the tests)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = postgres_base_url()
    u = make_url(url)
    try:
        conn = psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username or "postgres",
                               password=u.password, dbname=u.database or "postgres", connect_timeout=3)
        conn.close()
    except Exception as err:  # noqa: BLE001
        return HOW_TO.format(url=u.render_as_string(hide_password=True), err=str(err).splitlines()[0][:200])
    return None


@contextmanager
def postgres_schema(migrate: bool = True) -> Iterator[str]:
    """A URL whose connections use a new schema (search_path), dropped on exit."""
    import pytest
    from sqlalchemy import create_engine, text

    reason = postgres_unreachable()
    if reason:
        pytest.skip(reason)
    base = postgres_base_url()
    schema = f"argtree_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        dispose(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


postgres_db = postgres_schema


def random_forest(n_trees: int, nodes_per_tree: int, n_propositions: int, seed: int = 0):
    """Random recursive trees (each premise's parent uniform among the earlier nodes: depth ~ ln n, as
    in bench/voi_bench.py) whose premises are drawn from a shared pool of ``n_propositions`` texts, so
    propositions recur across trees as they do in a real forest.  An iterator of ArgumentTree."""
    import random

    from ..tree import ArgumentTree, Node

    rng = random.Random(seed)
    for t in range(n_trees):
        nodes = [Node("r", f"Question {t}: is claim {t} true?", prior=round(rng.uniform(0.2, 0.8), 3))]
        for i in range(1, nodes_per_tree):
            p1, p0 = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)
            nodes.append(Node(f"n{i}", f"Proposition {rng.randrange(n_propositions)} holds.",
                              parent=nodes[rng.randrange(i)].id,
                              p_if_true=round(p1, 3), p_if_false=round(p0, 3)))
        yield ArgumentTree(nodes)


def check_consistency(url: str, overlap: int | None = None) -> dict:
    """Compare everything derived in the database with a from-scratch recomputation by the core.

    Returns the largest differences found (beliefs, VoI, and forest VoI: how far a queue row's bound is
    below the exact value, and how far the queue's top ten as read, ``compute.top_exact``, are from the
    recount's) and raises AssertionError on any count that is off (answers per proposition, queue ranks,
    labels beyond the overlap) or on a top ten in another order.
    """
    from collections import defaultdict

    from sqlalchemy import func, select

    from ..inference import beliefs
    from ..voi import voi
    from .compute import bucket_of, queue_settings, top_exact
    from .db import session_scope
    from .models import Label, Node, Proposition, Tree, propositions, queue_entries
    from .trees import load_tree

    worst = {"belief": 0.0, "voi": 0.0, "forest_voi": 0.0}
    forest: dict[int, float] = defaultdict(float)
    with session_scope(url, readonly=True) as s:
        overlap = overlap or int(queue_settings(s)["queue.overlap"])
        for tree in s.scalars(select(Tree)):
            t, ev = load_tree(s, tree.id)
            bel, vo = beliefs(t, ev), voi(t, ev)
            for nid, local, pid, b, v in s.execute(select(Node.id, Node.local_id, Node.proposition_id, Node.belief,
                                                          Node.voi).where(Node.tree_id == tree.id)):
                worst["belief"] = max(worst["belief"], abs(b - bel[local]))
                worst["voi"] = max(worst["voi"], abs(v - vo.get(local, 0.0)))
                if tree.status != "archived":
                    forest[pid] += tree.priority * vo.get(local, 0.0)
            assert abs(tree.root_belief - bel[t.root]) < 1e-9, f"tree {tree.id}: stored root belief is stale"
        counts = dict(s.execute(select(Label.proposition_id, func.count()).where(
            Label.retracted_at.is_(None), Label.reliability.is_(None),
            (Label.value.is_not(None)) | (Label.probability.is_not(None)) | Label.ill_posed)
            .group_by(Label.proposition_id)).all())
        for p in s.scalars(select(Proposition)):
            # the row holds an upper bound (issue 15: answers write the decreases on the queue's top only)
            worst["forest_voi"] = max(worst["forest_voi"], forest.get(p.id, 0.0) - p.forest_voi)
            n = counts.get(p.id, 0)
            assert n <= overlap, f"proposition {p.id} has {n} answers, overlap is {overlap}"
            assert p.n_answers == n, f"proposition {p.id}: n_answers {p.n_answers}, labels say {n}"
            open_ = p.forest_voi > 0 and n < overlap
            assert (p.queue_rank is not None) == open_, f"proposition {p.id}: queue_rank {p.queue_rank}"
            # the indexed bucket agrees with the rank it was computed from (issue 15)
            want = bucket_of(p.queue_rank)
            assert p.queue_bucket == want, f"proposition {p.id}: queue_bucket {p.queue_bucket}, rank says {want}"
        # the queue's top as read (exact values from the nodes) is the recount's top
        top, _ = top_exact(s, (), 10)
        want = sorted(((v, pid) for pid, v in forest.items() if v > 0 and counts.get(pid, 0) < overlap),
                      key=lambda x: (-x[0], -x[1]))[:10]
        assert len(top) == len(want), f"queue top has {len(top)} open propositions, the recount {len(want)}"
        for (pid, v), (wv, wpid) in zip(top, want):
            worst["forest_voi"] = max(worst["forest_voi"], abs(v - wv))
            assert pid == wpid or abs(v - wv) < 1e-9, f"queue top: proposition {pid} ({v}), recount {wpid} ({wv})"
        # every proposition has its queue row (the ORM's Proposition is their join: one without would vanish)
        texts = s.scalar(select(func.count()).select_from(propositions))
        rows = s.scalar(select(func.count()).select_from(queue_entries))
        assert texts == rows, f"{texts} propositions but {rows} queue rows"
    return worst
