"""16 annotators at once (threads and processes), resubmissions, and a writer killed with SIGKILL.

Sized for a 2-core CI box: about half a minute per database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, never skips
import argtree.store  # noqa: E402,F401
from sqlalchemy import select, text  # noqa: E402

from argtree.store import (Label, add_annotator, next_question, save_tree, session_scope,  # noqa: E402
                           set_queue_settings, submit_label, utcnow)
from argtree.store.testing import (check_consistency, dispose, fast_password_hashing, postgres_schema,  # noqa
                                   random_forest, sqlite_db)

pytestmark = pytest.mark.slow

HELD = text("SELECT max(q.n_answers + (SELECT count(*) FROM leases l WHERE l.proposition_id = q.proposition_id "
            "AND l.expires_at > :now)) FROM queue_entries q "
            "WHERE q.proposition_id IN (SELECT proposition_id FROM leases WHERE expires_at > :now)")
ANNOTATORS = 16
LABELS = 2000
OVERLAP = 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path):
    if request.param == "sqlite":
        u = sqlite_db(tmp_path)
        yield u
        dispose(u)
    else:
        with postgres_schema() as u:
            yield u


def populate(url, n_trees=100, nodes=20, props=1400, annotators=ANNOTATORS):
    fast_password_hashing()
    with session_scope(url) as s:
        set_queue_settings(s, overlap=OVERLAP)
        for i, tree in enumerate(random_forest(n_trees, nodes, props, seed=7)):
            save_tree(s, tree, priority=1.0 + (i % 3))
        return [add_annotator(s, f"ann{i}", "password123", reliability=0.6 + 0.02 * i).id
                for i in range(annotators)]


def answer(rng):
    r = rng.random()
    if r < 0.70:
        return {"value": rng.random() < 0.5}
    if r < 0.85:
        return {"probability": round(rng.random(), 2)}
    if r < 0.95:
        return {"dont_know": True}
    return {"ill_posed": True, "rewrite": f"A clearer claim {rng.randrange(10**6)}." if rng.random() < 0.5 else None}


def worker(url, annotator, n, seed, out_path):
    """Answer ``n`` questions; some answers are resubmitted, some after a commit that never happened."""
    rng = random.Random(seed)
    done = 0
    with open(out_path, "a") as out:
        while done < n:
            with session_scope(url) as s:
                q = next_question(s, annotator)
            if q is None:
                break
            rid = f"{annotator}-{done}"
            kw = answer(rng)
            if rng.random() < 0.05:  # the client's first try dies before commit: nothing may stay
                try:
                    with session_scope(url) as s:
                        submit_label(s, annotator, q.proposition_id, request_id=rid, **kw)
                        raise ConnectionError("client went away")
                except ConnectionError:
                    pass
            with session_scope(url) as s:
                label = submit_label(s, annotator, q.proposition_id, request_id=rid, **kw)
            out.write(json.dumps({"rid": rid, "id": label.id, "a": annotator, "p": q.proposition_id}) + "\n")
            out.flush()
            if rng.random() < 0.15:  # the ack was lost: the client sends it again
                with session_scope(url) as s:
                    again = submit_label(s, annotator, q.proposition_id, request_id=rid, **kw)
                assert again.id == label.id
                out.write(json.dumps({"rid": rid, "id": label.id, "a": annotator, "p": q.proposition_id,
                                      "resubmit": True}) + "\n")
                out.flush()
            done += 1
    dispose(url)


def test_sixteen_annotators_threads_and_processes(url, tmp_path):
    annotators = populate(url)
    per = LABELS // ANNOTATORS
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=worker, args=(url, a, per, i, tmp_path / f"acks{i}.jsonl"))
             for i, a in enumerate(annotators[: ANNOTATORS // 2])]
    dispose(url)  # children must not share the parent's pooled connections
    for p in procs:
        p.start()
    errors = []

    def run(i, a):
        try:
            worker(url, a, per, i, tmp_path / f"acks{i}.jsonl")
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i, a))
               for i, a in enumerate(annotators[ANNOTATORS // 2:], ANNOTATORS // 2)]
    stop, held = threading.Event(), []

    def watch():  # while they work: never more holders (answers + live leases) than the overlap allows
        while not stop.is_set():
            with session_scope(url, readonly=True) as s:
                held.append(s.execute(HELD, {"now": utcnow()}).scalar() or 0)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    for t in threads + [watcher]:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for p in procs:
        p.join(timeout=300)
    stop.set()
    watcher.join()
    assert not errors, errors
    assert len(held) > 10 and max(held) <= OVERLAP, (len(held), max(held))
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    acks = [json.loads(line) for i in range(ANNOTATORS) for line in open(tmp_path / f"acks{i}.jsonl")]
    first = {(a["a"], a["rid"]): a for a in acks if not a.get("resubmit")}
    assert len(first) == LABELS
    assert sum(1 for a in acks if a.get("resubmit")) > 100
    with session_scope(url, readonly=True) as s:
        rows = s.execute(select(Label.annotator_id, Label.request_id, Label.id, Label.proposition_id)
                         .where(Label.reliability.is_(None))).all()
    stored = {(a, r): (i, p) for a, r, i, p in rows}
    assert len(rows) == len(stored) == LABELS          # every acknowledged label exactly once, nothing else
    for key, ack in first.items():
        assert stored[key] == (ack["id"], ack["p"])
    worst = check_consistency(url, OVERLAP)            # counts, overlap, queue ranks (raises), numbers:
    assert max(worst.values()) < 1e-9, worst


WRITER = r"""
import sys
from argtree.store import next_question, submit_label, session_scope
url, annotator, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
k = 0
while True:
    with session_scope(url) as s:
        q = next_question(s, annotator)
        if q is None:
            break
        label = submit_label(s, annotator, q.proposition_id, k % 3 == 0, request_id=f"{prefix}{k}")
    print("ACK", f"{prefix}{k}", label.id, flush=True)
    k += 1
print("DONE", flush=True)
"""


def test_sigkilled_writer_loses_no_acknowledged_label(url):
    (annotator,) = populate(url, n_trees=40, nodes=20, props=600, annotators=1)
    dispose(url)
    acked = {}
    for round_ in range(3):  # kill it three times at different points
        proc = subprocess.Popen([sys.executable, "-c", WRITER, url, str(annotator), f"r{round_}-"],
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        target = len(acked) + 15 + 7 * round_
        deadline = time.time() + 60
        while len(acked) < target and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("ACK"):
                _, rid, lid = line.split()
                acked[rid] = int(lid)
        time.sleep(random.Random(round_).random() * 0.05)  # land the kill anywhere in the next write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout:  # anything acknowledged before the kill counts too
            if line.startswith("ACK"):
                _, rid, lid = line.split()
                acked[rid] = int(lid)
    assert len(acked) >= 15 + 22 + 29
    with session_scope(url) as s:
        rows = dict(s.execute(select(Label.request_id, Label.id).where(Label.annotator_id == annotator)).all())
        if s.get_bind().dialect.name == "sqlite":
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert s.execute(text("PRAGMA foreign_key_check")).fetchall() == []
    for rid, lid in acked.items():
        assert rows.get(rid) == lid, f"acknowledged label {rid} lost"
    # at most the one write in flight at each kill may have committed without being acknowledged
    assert len(rows) - len(acked) <= 3
    worst = check_consistency(url)  # and nothing half-written: derived numbers match a recomputation
    assert max(worst.values()) < 1e-9, worst
    with session_scope(url) as s:  # the database is still writable (no stale lock)
        q = next_question(s, annotator)
        assert q is not None
        submit_label(s, annotator, q.proposition_id, True, request_id="after")
