"""Ill-posed rewrites, their undo and co-authoring edits at once with answers, on trees that share their
propositions (issue 13), on SQLite and PostgreSQL.

Every rewrite and edit here names a text that other trees already hold, so each one recounts propositions
that live in trees the answer did not start from: the case where taking a tree's lock after a proposition's
(or a second round of proposition locks after the first) could deadlock on PostgreSQL.  Nothing may fail
but the refusals the API documents; every acknowledged answer is stored once, every undo retracts exactly
its label, and every stored number equals a from-scratch recomputation (nothing lost, nothing counted
twice)."""

from __future__ import annotations

import random
import threading

import pytest

pytest.importorskip("sqlalchemy")
import argtree.store  # noqa: E402,F401
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from argtree.store import (Label, NotFound, StoreError, add_annotator, next_question, save_tree,  # noqa: E402
                           session_scope, set_queue_settings, submit_label, undo_last_label)
from argtree.store.coauthor import add_premise, edit_text  # noqa: E402
from argtree.store.models import Node, TreeEdit  # noqa: E402
from argtree.store.testing import check_consistency, fast_password_hashing  # noqa: E402
from argtree.tree import ArgumentTree, Node as TNode  # noqa: E402
from store_fixtures import pg_module, url  # noqa: F401, E402

pytestmark = pytest.mark.slow

POOL = [f"Shared premise number {i} holds." for i in range(14)]
TREES = 6
ANSWERERS = 4
PER = 12
AUTHORS = 2
EDITS = 10


def _forest(seed: int) -> list[ArgumentTree]:
    rng = random.Random(seed)
    out = []
    for t in range(TREES):
        texts = rng.sample(POOL, 6)
        nodes = [TNode("r", f"Question {t}: does it hold?", prior=0.5)]
        for i, text in enumerate(texts):
            parent = "r" if i < 3 else f"n{rng.randrange(3)}"
            p1 = 0.2 + 0.6 * rng.random()
            nodes.append(TNode(f"n{i}", text, parent=parent, p_if_true=p1, p_if_false=1.0 - p1))
        out.append(ArgumentTree(nodes))
    return out


def test_rewrites_undos_and_edits_with_answers_on_shared_propositions(url):
    fast_password_hashing()
    with session_scope(url) as s:
        set_queue_settings(s, overlap=3)
        for t in _forest(11):
            save_tree(s, t)
        answerers = [add_annotator(s, f"ann{i}", "password123").id for i in range(ANSWERERS)]
        authors = [add_annotator(s, f"author{i}", "password123").id for i in range(AUTHORS)]
    acked: list[tuple[int, str, int]] = []    # (annotator, request id, label id)
    undone: list[int] = []                    # label ids an undo retracted
    edits: list[int] = []
    counts = {"rewrite": 0, "undo": 0, "refused": 0, "deadlocks": 0}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def retried(fn):
        """``fn()`` in its own transaction, again when PostgreSQL picked it as a deadlock's victim (it is
        rolled back whole; a client resends it with the same request id), and counted.  Before answers and
        undos took their trees through coauthor.lock_scope, a tree that joined late was locked after the
        others, and this mix deadlocked in 1 of 3 full CI runs; since, none was seen in 8 runs."""
        for attempt in range(5):
            try:
                with session_scope(url) as s:
                    return fn(s)
            except OperationalError as err:
                if "deadlock detected" not in str(err) or attempt == 4:
                    raise
                with lock:
                    counts["deadlocks"] += 1

    def answer(i: int, aid: int) -> None:
        rng = random.Random(i)
        try:
            for k in range(PER):
                with session_scope(url) as s:
                    q = next_question(s, aid)
                if q is None:
                    break
                rid = f"{aid}-{k}"
                ill = rng.random() < 0.4
                kw = {"ill_posed": True, "rewrite": rng.choice(POOL)} if ill else {"value": rng.random() < 0.5}
                for _ in range(2):   # sent twice: stored once
                    lab = retried(lambda s: submit_label(s, aid, q.proposition_id, request_id=rid, **kw))
                with lock:
                    acked.append((aid, rid, lab.id))
                    counts["rewrite"] += ill
                if rng.random() < 0.35:
                    back = retried(lambda s: undo_last_label(s, aid))
                    with lock:
                        undone.append(back.id)
                        counts["undo"] += 1
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def author(i: int, aid: int) -> None:
        rng = random.Random(100 + i)
        try:
            for k in range(EDITS):
                with session_scope(url, readonly=True) as s:
                    live = s.execute(select(Node.id, Node.parent_id).order_by(Node.id)).all()
                nid, parent = rng.choice(live)
                text = rng.choice(POOL)
                try:
                    if k % 2 == 0 or parent is None:
                        res = retried(lambda s: add_premise(s, aid, nid, text, p_if_true=0.7, p_if_false=0.3,
                                                            request_id=f"e{aid}-{k}"))
                    else:
                        res = retried(lambda s: edit_text(s, aid, nid, text, request_id=f"e{aid}-{k}"))
                except (NotFound, StoreError):   # restates an ancestor, already there, unchanged: refused
                    with lock:
                        counts["refused"] += 1
                    continue
                with lock:
                    edits.append(res.edit_id)
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=answer, args=(i, a)) for i, a in enumerate(answerers)]
    threads += [threading.Thread(target=author, args=(i, a)) for i, a in enumerate(authors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []       # nothing surfaced but deadlocks, each rolled back whole and resent once more
    print(f"deadlocks retried: {counts['deadlocks']}")
    assert counts["rewrite"] and counts["undo"] and edits
    with session_scope(url, readonly=True) as s:
        rows = {(a, r): (i, retracted is not None) for a, r, i, retracted in s.execute(
            select(Label.annotator_id, Label.request_id, Label.id, Label.retracted_at)
            .where(Label.annotator_id.in_(answerers)))}
        assert len(rows) == len(acked)                         # each acknowledged answer stored once
        assert all(rows[(a, r)][0] == i for a, r, i in acked)
        gone = {i for i, retracted in rows.values() if retracted}
        assert gone == set(undone)                             # retracted: exactly what was undone
        assert len(set(edits)) == len(edits) == s.scalar(
            select(func.count()).select_from(TreeEdit).where(TreeEdit.request_id.is_not(None)))
        rewrites = s.scalars(select(TreeEdit).where(TreeEdit.action == "rewrite")).all()
        assert rewrites
        # an undone rewrite was put back in every tree it changed: one reverting edit per rewrite edit
        done = {e.id: e for e in rewrites if not (e.detail or {}).get("reverts")}
        reverted = {(e.detail or {})["reverts"] for e in rewrites if (e.detail or {}).get("reverts")}
        assert {i for i, e in done.items() if e.label_id in set(undone)} == reverted
    check_consistency(url)


@pytest.mark.postgres
def test_an_answer_counts_in_a_tree_its_proposition_joined_while_it_waited(pg_module):
    """An answer reads its proposition's trees, then waits for one of their locks; meanwhile an author puts
    the proposition into another tree and commits.  The answer must count there too (PostgreSQL: SQLite's
    writer holds the database from its first read).  Waits on what the server says (a lock not granted),
    never on time."""
    import time

    from sqlalchemy import text

    from argtree.store.compute import lock_trees
    from argtree.store.models import Proposition
    from argtree.store.testing import reset_postgres

    fast_password_hashing()
    url = pg_module
    reset_postgres(url)
    with session_scope(url) as s:
        a = save_tree(s, ArgumentTree([TNode("r", "Question A?", prior=0.5),
                                       TNode("x", POOL[0], parent="r", p_if_true=0.8, p_if_false=0.3)]))
        b = save_tree(s, ArgumentTree([TNode("r", "Question B?", prior=0.5),
                                       TNode("y", POOL[1], parent="r", p_if_true=0.6, p_if_false=0.4)]))
        ann = add_annotator(s, "ann", "password123").id
        author = add_annotator(s, "author", "password123").id
        pid = s.scalar(select(Proposition.id).where(Proposition.text == POOL[0]))
        root_b = s.scalar(select(Node.id).where(Node.tree_id == b, Node.parent_id.is_(None)))
    errors: list[BaseException] = []

    def answer() -> None:
        try:
            with session_scope(url) as s:
                submit_label(s, ann, pid, True, request_id="late")
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    def waiting() -> int:
        with session_scope(url, readonly=True) as s:
            return s.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))

    with session_scope(url) as s1:
        lock_trees(s1, [a])                      # tree A is busy
        t = threading.Thread(target=answer)
        t.start()
        deadline = time.monotonic() + 60
        while waiting() == 0:                    # until the answer waits for tree A's lock
            assert t.is_alive() and time.monotonic() < deadline
        add_premise(s1, author, root_b, POOL[0], p_if_true=0.9, p_if_false=0.2, request_id="join")
    t.join()
    assert errors == []
    with session_scope(url, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Node).where(Node.proposition_id == pid)) == 2
    check_consistency(url)                       # tree B's beliefs count the answer
