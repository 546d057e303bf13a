"""Co-authoring, batch-aware serving and assignment under concurrency (issue 13), on SQLite and PostgreSQL:
annotators answer (ill-posed rewrites included) while others add premises and edit texts and an admin moves
and deletes nodes and changes who may answer a tree, all at once, every request sent twice.  Nothing is lost
(every acknowledged answer and change is stored), nothing is counted twice (a resent request changes
nothing), and every stored number equals a from-scratch recomputation by the core."""

from __future__ import annotations

import random
import threading

import pytest

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401
from sqlalchemy import func, select  # noqa: E402

from argtree.store import (Label, NotFound, StoreError, add_annotator, next_question, save_tree,  # noqa: E402
                           session_scope, set_queue_settings, submit_label)
from argtree.store.assignment import set_assignment  # noqa: E402
from argtree.store.coauthor import add_premise, delete_node, edit_text, move_node  # noqa: E402
from argtree.store.models import Node, Tree, TreeEdit  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing, random_forest  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

ANSWERERS = 4
PER = 10
AUTHORS = 2
EDITS = 8
ADMIN_OPS = 6


def _nodes(url):
    with session_scope(url, readonly=True) as s:
        return [(nid, tid, parent) for nid, tid, parent in s.execute(select(Node.id, Node.tree_id, Node.parent_id))]


def test_answers_and_edits_at_once(url):
    fast_password_hashing()
    with session_scope(url) as s:
        set_queue_settings(s, overlap=2)
        trees = [save_tree(s, t) for t in random_forest(5, 10, 40, seed=5)]
        answerers = [add_annotator(s, f"ann{i}", "password123").id for i in range(ANSWERERS)]
        authors = [add_annotator(s, f"author{i}", "password123").id for i in range(AUTHORS)]
        admin = add_annotator(s, "boss", "password123", admin=True).id
    nodes = _nodes(url)
    labels: list[tuple[int, str, int]] = []      # (annotator, request id, label id)
    edits: list[tuple[int, str, int]] = []       # (annotator, request id, edit id)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def answer(i: int, aid: int) -> None:
        rng = random.Random(i)
        try:
            for k in range(PER):
                with session_scope(url) as s:
                    q = next_question(s, aid)
                if q is None:
                    break
                rid = f"{aid}-{k}"
                kind = rng.random()
                kw = ({"ill_posed": True, "rewrite": f"A clearer claim {aid}.{k}."} if kind < 0.2
                      else {"value": kind < 0.6})
                for _ in range(2):   # sent twice: stored once
                    with session_scope(url) as s:
                        lab = submit_label(s, aid, q.proposition_id, request_id=rid, **kw)
                with lock:
                    labels.append((aid, rid, lab.id))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def author(i: int, aid: int) -> None:
        rng = random.Random(100 + i)
        try:
            for k in range(EDITS):
                nid, tid, parent = rng.choice(nodes)
                rid = f"e{aid}-{k}"
                first = None
                for attempt in range(2):
                    try:
                        with session_scope(url) as s:
                            if k % 2 == 0 or parent is None:
                                res = add_premise(s, aid, nid, f"Premise {aid}.{k} of the authors.",
                                                  p_if_true=0.2 + 0.6 * rng.random(), p_if_false=0.5,
                                                  request_id=rid)
                            else:
                                res = edit_text(s, aid, nid, f"Edited text {aid}.{k}.", request_id=rid)
                    except NotFound:
                        break   # the admin deleted that node meanwhile: refused, nothing stored
                    assert res.repeated == (attempt == 1)
                    if attempt == 0:
                        first = res.edit_id
                        with lock:
                            edits.append((aid, rid, res.edit_id))
                    else:
                        assert res.edit_id == first   # the resent request: the same change, not a second
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def boss() -> None:
        rng = random.Random(7)
        try:
            for k in range(ADMIN_OPS):
                rid = f"b{k}"
                with session_scope(url) as s:
                    if k == 2:
                        set_assignment(s, trees[0], ["ann0", "ann1"])
                        continue
                    live = s.execute(select(Node.id, Node.tree_id, Node.parent_id)
                                     .where(Node.parent_id.is_not(None)).order_by(Node.id)).all()
                nid, tid, _ = rng.choice(live)
                try:
                    with session_scope(url) as s:
                        if k % 2:
                            res = delete_node(s, admin, nid, request_id=rid)
                        else:
                            root = s.scalar(select(Node.id).where(Node.tree_id == tid, Node.parent_id.is_(None)))
                            res = move_node(s, admin, nid, root, request_id=rid)
                except (NotFound, StoreError):
                    continue   # deleted meanwhile, or already under the root: refused, nothing stored
                with lock:
                    edits.append((admin, rid, res.edit_id))
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=answer, args=(i, a)) for i, a in enumerate(answerers)]
    threads += [threading.Thread(target=author, args=(i, a)) for i, a in enumerate(authors)]
    threads.append(threading.Thread(target=boss))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert labels and edits
    with session_scope(url, readonly=True) as s:
        # every acknowledged answer is stored, once
        stored = {(a, r): i for a, r, i in s.execute(select(Label.annotator_id, Label.request_id, Label.id))}
        assert all(stored.get((a, r)) == i for a, r, i in labels)
        assert s.scalar(select(func.count()).select_from(Label).where(Label.annotator_id.in_(answerers))) \
            == len(labels)
        # every acknowledged change is recorded, once (rewrites are recorded with their label instead)
        rows = {(a, r): i for a, r, i in s.execute(select(TreeEdit.annotator_id, TreeEdit.request_id, TreeEdit.id)
                                                  .where(TreeEdit.request_id.is_not(None)))}
        assert rows == {(a, r): i for a, r, i in edits}
        actions = set(s.scalars(select(TreeEdit.action)))
        assert {"add", "edit", "rewrite"} <= actions and actions & {"move", "delete"}
        # every tree's node count is its nodes
        for tid, n in s.execute(select(Tree.id, Tree.n_nodes)):
            assert n == s.scalar(select(func.count()).select_from(Node).where(Node.tree_id == tid))
    check_consistency(url)
