"""The autonomous loop: tasks in the store, dataset oracle, re-expansion, and resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from argtree.llm.fake import FakeBackend
from argtree.loop import LoopConfig, run_worker, start_or_resume
from argtree.oracle import DatasetOracle

store = pytest.importorskip("argtree.store")
from argtree.store import LoopTask, list_trees, load_tree, session_scope  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402

QUESTIONS = ["Is the sun a star?", "Can fish fly over mountains?"]
TRUTH = {"Is the sun a star?": True, "Can fish fly over mountains?": False}


def _tasks(url):
    from sqlalchemy import select

    with session_scope(url) as s:
        return [(t.kind, t.key, t.status, t.attempts, t.result) for t in s.scalars(select(LoopTask).order_by(LoopTask.id))]


def test_loop_with_dataset_oracle_labels_reexpands_and_finishes(tmp_path):
    url = sqlite_db(tmp_path)
    scope = lambda: session_scope(url)  # noqa: E731
    cfg = LoopConfig(questions=tuple(QUESTIONS), budget=3, label_root=True, max_rounds=1)
    run_id, resumed, cfg = start_or_resume(scope, cfg, "oracle-dataset")
    assert not resumed
    events = []
    why = run_worker(scope, run_id, FakeBackend(), DatasetOracle(TRUTH), progress=events.append)
    assert why == "all done"
    tasks = _tasks(url)
    kinds = [k for k, *_ in tasks]
    assert kinds.count("question") == 2 and kinds.count("ask") >= 2 and kinds.count("reexpand") == 2
    assert all(status == "done" and attempts == 1 for _, _, status, attempts, _ in tasks)
    # Every question's answer is a label now, and the re-expanded versions replaced the first ones.
    with session_scope(url) as s:
        active = list_trees(s, status="active")
        archived = list_trees(s, status="archived")
        assert len(active) == 2 and len(archived) == 2
        for summary in active:
            tree, evidence = load_tree(s, summary.id)
            root_labels = [ev.value for ev in evidence if ev.node == tree.root]
            assert root_labels == [TRUTH[summary.question]]
            assert len(tree) > 7  # grown beyond the first version
    assert events[-1]["labels"] >= 2 and events[-1]["questions"] == 2
    # A second start finds the run finished and starts a new one; nothing of the old run reruns.
    run2, resumed2, _ = start_or_resume(scope, LoopConfig(questions=tuple(QUESTIONS[:1])), "oracle-dataset")
    assert run2 != run_id and not resumed2
    dispose(url)


SCRIPT = textwrap.dedent('''
    import json, sys, time
    from argtree.llm.fake import FakeBackend
    from argtree.loop import LoopConfig, run_worker, start_or_resume
    from argtree.oracle import DatasetOracle
    from argtree.store import session_scope

    url, log = sys.argv[1], sys.argv[2]

    class Slow(FakeBackend):
        def generate_json(self, prompts, schema, **kw):
            with open(log, "a") as fh:
                for p in prompts:
                    fh.write(json.dumps(p) + "\\n")
            time.sleep(0.4)
            return super().generate_json(prompts, schema, **kw)

    scope = lambda: session_scope(url)
    cfg = LoopConfig(questions=("Is the sun a star?", "Can fish fly over mountains?"), budget=6, batch=1,
                     label_root=True, max_rounds=0)
    run_id, resumed, cfg = start_or_resume(scope, cfg, "oracle-dataset")
    print("resumed" if resumed else "new", run_id, flush=True)
    print(run_worker(scope, run_id, Slow(), DatasetOracle({"Is the sun a star?": True})), flush=True)
''')


@pytest.mark.slow
def test_sigkill_resumes_without_repeating_an_expansion(tmp_path):
    url = sqlite_db(tmp_path)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    log = tmp_path / "prompts.jsonl"
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, str(script), url, str(log)], env=env, stdout=subprocess.PIPE, text=True)
    # Kill once the first question has a checkpoint of at least two finished expansion batches.
    deadline = time.time() + 120
    while time.time() < deadline:
        done = [r for k, _, st, _, r in _tasks(url) if k == "question" and isinstance(r, dict)
                and r.get("expansions", 0) >= 2 and st == "running"]
        if done:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the loop never checkpointed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    out = subprocess.run([sys.executable, str(script), url, str(log)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("resumed")
    prompts = log.read_text().splitlines()
    # The expansion in flight at the kill may be asked again; no finished one is.
    finished_before = len(before) - 2  # one batch = 2 prompts (for, against) with batch=1
    assert len(prompts) - len(set(prompts)) <= 2, "a finished expansion was repeated"
    assert len(set(prompts[:finished_before]) & set(prompts[len(before):])) == 0
    tasks = _tasks(url)
    assert [k for k, *_ in tasks].count("question") == 2
    assert all(st == "done" for _, _, st, _, _ in tasks)
    with session_scope(url) as s:
        assert len(list_trees(s)) == 2  # one tree per question: nothing saved twice
    dispose(url)


def _cli(*args, home):
    env = dict(os.environ, ARGTREE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "argtree.cli", "loop", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_bad_input(tmp_path):
    res = _cli("--backend", "fake", "--oracle", "dataset", home=tmp_path)
    assert res.returncode == 2 and "--dataset" in res.stderr and "Traceback" not in res.stderr
    res = _cli("--backend", "fake", "--oracle", "model", home=tmp_path)
    assert res.returncode == 2 and "nothing to ask about" in res.stderr
    res = _cli("--backend", "fake", "--topic", "x", "--workers", "2", "--database",
               f"sqlite:///{tmp_path}/x.db", home=tmp_path)
    assert res.returncode == 2 and ("PostgreSQL" in res.stderr or "schema" in res.stderr)


def test_cli_runs_and_resumes_nothing_when_done(tmp_path):
    url = sqlite_db(tmp_path)
    data = tmp_path / "s.json"
    data.write_text(json.dumps([{"qid": "1", "question": "Is the sun a star?", "answer": True,
                                 "facts": ["The sun is a star."]}]))
    res = _cli("--backend", "fake", "--oracle", "dataset", "--dataset", str(data), "--budget", "2", "--json",
               "--database", url, home=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stop"] == "all done" and out["questions"] == 1 and out["labels"] >= 1
    dispose(url)
