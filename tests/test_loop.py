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
from argtree.loop import LoopConfig, RunConflict, run_worker, start_or_resume
from argtree.oracle import DatasetOracle

pytest.importorskip("sqlalchemy")  # the store extra; an import error inside argtree fails, it does not skip
from argtree.store import LoopTask, list_trees, load_tree, session_scope  # noqa: E402
from argtree.store.loops import LoopStore  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402

QUESTIONS = ["Is the sun a star?", "Can fish fly over mountains?"]
TRUTH = {"Is the sun a star?": True, "Can fish fly over mountains?": False}


def _tasks(url):
    from sqlalchemy import select

    with session_scope(url) as s:
        return [(t.kind, t.key, t.status, t.attempts, t.result) for t in s.scalars(select(LoopTask).order_by(LoopTask.id))]


def test_loop_with_dataset_oracle_labels_reexpands_and_finishes(tmp_path):
    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
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
    # Started again as it was, it says the run did this already, instead of growing every tree again.
    with pytest.raises(RunConflict, match=f"loop run {run_id} already did this") as err:
        start_or_resume(scope, LoopConfig(questions=tuple(QUESTIONS), budget=3, label_root=True, max_rounds=1),
                        "oracle-dataset")
    assert err.value.finished and err.value.run_id == run_id
    # Other options start a new run; nothing of the old run reruns.
    run2, resumed2, _ = start_or_resume(scope, LoopConfig(questions=tuple(QUESTIONS[:1])), "oracle-dataset")
    assert run2 != run_id and not resumed2
    with session_scope(url) as s:
        assert len(list_trees(s, status="active")) == 2  # nothing was grown by starting
    dispose(url)


def test_resuming_with_other_options_refuses_and_names_them(tmp_path):
    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    cfg = LoopConfig(questions=tuple(QUESTIONS), budget=3)
    run_id, resumed, _ = start_or_resume(scope, cfg, "oracle-dataset", backend="fake", model=None)
    assert not resumed  # ... and killed before any work: the run stays 'running'
    other = LoopConfig(questions=(QUESTIONS[0], "Is the moon made of rock?"), budget=5, hours=2.0)
    with pytest.raises(RunConflict) as err:
        start_or_resume(scope, other, "oracle-model", backend="openai", model=None)
    msg = str(err.value)
    assert f"loop run {run_id} is unfinished" in msg and "--new" in msg
    assert not err.value.finished
    assert sorted(d.split(":")[0] for d in err.value.differences) == ["backend", "budget", "hours", "oracle",
                                                                       "questions"]
    assert "budget: 3 -> 5" in msg and "hours: null -> 2.0" in msg and 'backend: "fake" -> "openai"' in msg
    assert [r.id for r in scope.loop_runs()] == [run_id]  # the refusal stored nothing
    # The same options resume it, with the run's own stored config.
    again, resumed, kept = start_or_resume(scope, cfg, "oracle-dataset", backend="fake", model=None)
    assert (again, resumed, kept) == (run_id, True, cfg)
    # --new starts a fresh run whatever is unfinished.
    fresh, resumed, _ = start_or_resume(scope, other, "oracle-model", resume=False, backend="openai", model=None)
    assert fresh != run_id and not resumed
    assert [r.id for r in scope.loop_runs()] == [fresh, run_id]
    # Two unfinished runs: each command resumes its own, the older one too.
    assert start_or_resume(scope, cfg, "oracle-dataset", backend="fake", model=None)[:2] == (run_id, True)
    assert start_or_resume(scope, other, "oracle-model", backend="openai", model=None)[:2] == (fresh, True)
    assert len(scope.loop_runs()) == 2
    dispose(url)


def test_a_stopped_run_with_work_left_resumes_and_a_run_before_settings_were_recorded_too(tmp_path):
    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    cfg = LoopConfig(questions=tuple(QUESTIONS), budget=1, hours=1.0)
    run_id, _, _ = start_or_resume(scope, cfg, "oracle-dataset")  # no backend/model recorded, as older runs
    scope.finish_run(run_id, "stopped")  # Ctrl-C or out of --hours, tasks left
    again, resumed, _ = start_or_resume(scope, cfg, "oracle-dataset", backend="fake", model=None)
    assert (again, resumed) == (run_id, True) and scope.run(run_id).status == "running"
    dispose(url)


SCRIPT = textwrap.dedent('''
    import json, sys, time
    from argtree.llm.fake import FakeBackend
    from argtree.loop import LoopConfig, run_worker, start_or_resume
    from argtree.oracle import DatasetOracle
    from argtree.store.loops import LoopStore

    url, log = sys.argv[1], sys.argv[2]

    class Slow(FakeBackend):
        def generate_json(self, prompts, schema, **kw):
            with open(log, "a") as fh:
                for p in prompts:
                    fh.write(json.dumps(p) + "\\n")
            time.sleep(0.4)
            return super().generate_json(prompts, schema, **kw)

    scope = LoopStore(url)
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
    assert res.returncode == 2 and "PostgreSQL" in res.stderr
    assert not (tmp_path / "x.db").exists()  # refused before the database was touched
    url = sqlite_db(tmp_path)
    res = _cli("--backend", "fake", "--topic", "x", "--workers", "2", "--database", url, home=tmp_path)
    assert res.returncode == 2 and "needs PostgreSQL" in res.stderr and "Traceback" not in res.stderr
    assert LoopStore(url).loop_runs() == []  # a refused start leaves no 'running' run behind
    dispose(url)


def test_cli_runs_and_resumes_nothing_when_done(tmp_path):
    url = sqlite_db(tmp_path)
    data = tmp_path / "s.json"
    data.write_text(json.dumps([{"qid": "1", "question": "Is the sun a star?", "answer": True,
                                 "facts": ["The sun is a star."]}]))
    res = _cli("--backend", "fake", "--oracle", "dataset", "--dataset", str(data), "--budget", "2", "--json",
               "--database", url, home=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # (labels: the dataset oracle for a StrategyQA file answers only premises its facts settle; the fake
    # backend's premises may match none, so the count is not asserted here.)
    assert out["stop"] == "all done" and out["questions"] == 1 and out["trees"] >= 1
    assert _stored_loop_config(url, out["run_id"])["poll_seconds"] == 5.0  # the default without --poll-seconds
    with session_scope(url) as s:
        trees = len(list_trees(s))
    # The same command again: the run is finished, it says so and grows nothing twice.
    args = ("--backend", "fake", "--oracle", "dataset", "--dataset", str(data), "--budget", "2", "--database", url)
    res = _cli(*args, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"loop run {out['run_id']} already did this" in res.stdout and "--new" in res.stdout
    res = _cli(*args, "--json", home=tmp_path)
    again = json.loads(res.stdout)
    assert again["already_done"] is True and again["run_id"] == out["run_id"] and again["trees"] == out["trees"]
    with session_scope(url) as s:
        assert len(list_trees(s)) == trees
    # --new runs it again, as a run of its own.
    res = _cli(*args, "--new", "--json", home=tmp_path)
    fresh = json.loads(res.stdout)
    assert res.returncode == 0 and fresh["run_id"] != out["run_id"] and fresh["stop"] == "all done"
    dispose(url)


def _stored_loop_config(url, run_id):
    from argtree.store import get_loop_run

    with session_scope(url) as s:
        return dict(get_loop_run(s, run_id).config["loop"])


def test_cli_poll_seconds_is_checked_stored_and_used_by_the_human_oracle(tmp_path):
    from sqlalchemy import func, select

    from argtree.store import LoopRun

    url = sqlite_db(tmp_path)
    human = ("--backend", "fake", "--oracle", "human", "--question",
             "Should cities ban private cars from their centres?", "--budget", "1", "--database", url)
    for bad, why in (("0", "0.0 is not in the range x>0"), ("-1.5", "-1.5 is not in the range x>0"),
                     ("nan", "nan is not a finite number of seconds"), ("soon", "'soon' is not a valid float")):
        res = _cli(*human, "--poll-seconds", bad, home=tmp_path)
        assert res.returncode == 2, (bad, res.stderr)
        assert f"Invalid value for '--poll-seconds': {why}" in res.stderr and "Traceback" not in res.stderr
    with session_scope(url) as s:
        assert s.scalar(select(func.count()).select_from(LoopRun)) == 0  # refused before a run started
    # A good value goes into the run's stored config, and the human oracle's waiting tree is looked at
    # that often: within a 3.6 s budget, several times (the default 5 s would allow one look).
    res = _cli(*human, "--poll-seconds", "0.2", "--hours", "0.001", "--json", home=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["stop"] == "time budget spent" and out["tasks"]["ask"] == {"pending": 1}
    assert _stored_loop_config(url, out["run_id"])["poll_seconds"] == 0.2
    ask = [t for t in _tasks(url) if t[0] == "ask"]
    assert len(ask) == 1 and ask[0][4]["waiting"] is True and ask[0][3] >= 3, ask
    # Out of time with a tree still waiting: the same command resumes that run; other options are refused.
    res = _cli(*human, "--poll-seconds", "0.2", "--hours", "0.0002", "--json", home=tmp_path)
    assert res.returncode == 2 and f"loop run {out['run_id']} is unfinished" in res.stderr
    assert "hours: 0.001 -> 0.0002" in res.stderr and "Traceback" not in res.stderr
    res = _cli(*human, "--poll-seconds", "0.2", "--hours", "0.001", "--json", home=tmp_path)
    again = json.loads(res.stdout)
    assert res.returncode == 0 and again["run_id"] == out["run_id"] and again["resumed"] is True
    assert len([t for t in _tasks(url) if t[0] == "question"]) == 1  # the question was not grown again
    dispose(url)


# -- several worker processes on PostgreSQL (argtree loop --workers) -----------------------------------------

WORKER_QUESTIONS = [f"Does policy number {i} reduce {topic} in the region?" for i, topic in
                    enumerate(["traffic", "pollution", "crime", "poverty", "noise", "flooding", "obesity",
                               "unemployment", "smoking", "littering", "homelessness", "drought", "wildfires",
                               "congestion"])]


def _check_run_shared_without_repeats(url, out, questions, oracle_name):
    """The database after `argtree loop --workers W`: nothing done twice, and it says what the run reported."""
    from collections import Counter

    from sqlalchemy import func, select

    from argtree.store import Annotator, Label, LoopRun, Node, Tree

    with session_scope(url) as s:
        runs = list(s.scalars(select(LoopRun)))
        assert [(r.id, r.status) for r in runs] == [(out["run_id"], "done")]
        tasks = list(s.scalars(select(LoopTask).where(LoopTask.run_id == out["run_id"])))
        # Every task ran once, by one worker, and finished; several workers took part.
        assert all(t.status == "done" and t.attempts == 1 for t in tasks), \
            [(t.kind, t.key, t.status, t.attempts) for t in tasks if t.status != "done" or t.attempts != 1]
        workers = Counter(t.worker for t in tasks)
        assert len(workers) >= 2, f"one worker did everything: {workers}"
        by_kind = Counter(t.kind for t in tasks)
        assert by_kind["question"] == len(questions)
        assert sorted(t.payload["question"] for t in tasks if t.kind == "question") == sorted(questions)
        # One saved tree per growing task (question or reexpand), and no tree saved by no task.
        grow = [t for t in tasks if t.kind in ("question", "reexpand")]
        trees = {t.id: t for t in s.scalars(select(Tree))}
        assert sorted(t.result["tree_id"] for t in grow) == sorted(trees)
        assert sorted(tr.meta["loop_task"] for tr in trees.values()) == sorted(t.id for t in grow)
        for t in grow:  # the checkpointed expansion count is what the saved tree holds, within the budget
            assert 1 <= t.result["expansions"] <= (3 if t.kind == "question" else 2)
            assert trees[t.result["tree_id"]].n_nodes == t.result["nodes"]
        # Per question: one live tree, the older versions archived (one per re-expansion).
        reexpanded = Counter(trees[t.payload["tree_id"]].question for t in tasks if t.kind == "reexpand")
        for q in questions:
            versions = Counter(tr.status for tr in trees.values() if tr.question == q)
            assert versions == Counter({"active": 1, **({"archived": reexpanded[q]} if reexpanded[q] else {})}), q
        assert by_kind["reexpand"] == sum(1 for t in tasks if t.kind == "ask" and t.result["reexpand"])
        # Every premise the oracle answered was labelled once: no second label, live or retracted.
        aid = s.scalar(select(Annotator.id).where(Annotator.name == oracle_name))
        per_prop = Counter(s.scalars(select(Label.proposition_id).where(Label.annotator_id == aid)))
        assert per_prop and max(per_prop.values()) == 1
        assert sum(t.result["labels"] for t in tasks if t.kind == "ask") >= len(per_prop)
        # What the command printed is the run's stored stats and what the database holds.
        stats = {k: v for k, v in out.items() if k not in ("run_id", "resumed", "stop", "workers_failed")}
        assert runs[0].stats == stats
        assert stats["tasks"] == {k: {"done": n} for k, n in by_kind.items()}
        assert stats["questions"] == len(questions) and stats["trees"] == len(trees)
        assert stats["nodes"] == s.scalar(select(func.count()).select_from(Node)) == sum(
            tr.n_nodes for tr in trees.values())
        assert stats["labels"] == len(per_prop) == s.scalar(select(func.count()).select_from(Label))
        return trees, tasks, s.scalars(select(Label)).all()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("oracle", ["dataset", "model"])
def test_cli_workers_share_a_postgres_run_without_doing_anything_twice(tmp_path, oracle):
    from argtree.store.testing import postgres_schema

    truth = {q: i % 2 == 0 for i, q in enumerate(WORKER_QUESTIONS)}
    if oracle == "dataset":
        # Known truth as an argtree/1 file whose labeled nodes are the questions (the dataset oracle answers any
        # proposition whose text it holds; a StrategyQA list would get the facts oracle, which answers only what
        # a gold fact settles and so would leave these roots unlabeled).
        data = tmp_path / "truth.json"
        nodes = [{"id": "r", "text": "Which of these policies work?", "prior": 0.5}]
        nodes += [{"id": f"q{i}", "parent": "r", "text": q, "p_if_true": 0.6, "p_if_false": 0.4}
                  for i, q in enumerate(truth)]
        data.write_text(json.dumps({"format": "argtree/1", "nodes": nodes,
                                    "evidence": [{"node": f"q{i}", "value": a} for i, a in enumerate(truth.values())]}))
        args = ["--oracle", "dataset", "--dataset", str(data)] + [a for q in WORKER_QUESTIONS for a in ("--question", q)]
    else:
        args = ["--oracle", "model"] + [a for q in WORKER_QUESTIONS for a in ("--question", q)]
    with postgres_schema() as url:
        res = _cli("--backend", "fake", *args, "--workers", "3", "--budget", "3", "--max-questions", "20",
                   "--retries", "0", "--json", "--database", url, home=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr and "warning" not in res.stderr, res.stderr
        out = json.loads(res.stdout)
        assert out["stop"] == "all done" and not out["resumed"]
        trees, tasks, labels = _check_run_shared_without_repeats(url, out, WORKER_QUESTIONS,
                                                                 f"oracle-{oracle}")
        if oracle == "dataset":
            # Benchmark mode: each question's truth is a label on its root, in its live tree.
            with session_scope(url) as s:
                for tr in trees.values():
                    if tr.status == "active":
                        tree, evidence = load_tree(s, tr.id)
                        assert [ev.value for ev in evidence if ev.node == tree.root] == [truth[tr.question]]
        else:
            # The model judges premises (soft labels), never the question itself.
            assert labels and all(lab.probability is not None and lab.value is None for lab in labels)
            assert sum(1 for t in tasks if t.kind == "ask") >= 1


# -- the human oracle: the loop waits for labels from the web app's queue --------------------------------------

def _wait_for(what, get, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = get()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _task(url, kind, **where):
    from sqlalchemy import select

    with session_scope(url) as s:
        for t in s.scalars(select(LoopTask).where(LoopTask.kind == kind).order_by(LoopTask.id)):
            if all(t.payload.get(k) == v for k, v in where.items()):
                return {"id": t.id, "status": t.status, "attempts": t.attempts, "payload": dict(t.payload),
                        "result": t.result}
    return None


def _annotate_until_moved(url, annotator_id, tree_id, root_before, delta, limit=10):
    """Answer the queue's questions as a person in the web app would (next_question, then submit_label with
    the answer that moves the root most) until the tree's root has moved by ``delta``; the labelled texts."""
    from argtree.store import get_tree, next_question, submit_label, tree_nodes

    answered = []
    for _ in range(limit):
        with session_scope(url) as s:
            q = next_question(s, annotator_id)
            assert q is not None, "the queue ran dry before the root moved"
            # Shown in the only live tree, the one the loop waits on; never in an archived version.
            assert q.tree_id == tree_id and q.tree_ids == (tree_id,)
            node = next(n for n in tree_nodes(s, tree_id) if n.proposition_id == q.proposition_id)
            root = get_tree(s, tree_id).root_belief
            value = abs(node.root_if_true - root) >= abs(node.root_if_false - root)
            submit_label(s, annotator_id, q.proposition_id, value, request_id=f"ui:{q.proposition_id}")
            answered.append((q.text, value))
        with session_scope(url) as s:
            if abs(get_tree(s, tree_id).root_belief - root_before) >= delta:
                return answered
    pytest.fail(f"{limit} labels did not move the root by {delta}")


def test_human_oracle_loop_waits_for_queue_labels_and_folds_them_in(tmp_path):
    import threading

    from sqlalchemy import select

    from argtree.inference import beliefs
    from argtree.oracle import HumanQueueOracle
    from argtree.store import LoopRun, Tree, add_annotator, get_tree
    from argtree.store.testing import fast_password_hashing

    fast_password_hashing()
    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    cfg = LoopConfig(questions=("Should cities ban private cars from their centres?",), budget=2,
                     reexpand_budget=2, max_rounds=1, uncertain=(0.0, 1.0), poll_seconds=0.05)
    run_id, _, cfg = start_or_resume(scope, cfg, "human")
    with session_scope(url) as s:
        alice = add_annotator(s, "alice", "password123").id
    events, why = [], []
    worker = threading.Thread(target=lambda: why.append(run_worker(scope, run_id, FakeBackend(), HumanQueueOracle(),
                                                                   progress=events.append)), daemon=True)
    worker.start()
    try:
        # Round 0: the tree is grown and queued; with nobody answering, the loop keeps looking and waits.
        ask = _wait_for("the loop to wait on its first tree", lambda: (
            (t := _task(url, "ask", round=0)) and t["attempts"] >= 3 and t["status"] != "done" and t))
        tree1, root0 = ask["payload"]["tree_id"], ask["payload"]["root_before"]
        assert _task(url, "reexpand") is None and worker.is_alive() and not why
        waits = [e for e in events if e["kind"] == "ask"]
        assert len(waits) >= 2 and all(e["outcome"] == "waiting for people's labels" and e["labels"] == 0
                                       for e in waits)
        with session_scope(url) as s:
            assert s.get(LoopRun, run_id).status == "running"
        labelled = _annotate_until_moved(url, alice, tree1, root0, cfg.reexpand_delta)

        # The loop notices the moved root, records the move and grows the labelled tree again.
        ask = _wait_for("round 0's ask to finish", lambda: (t := _task(url, "ask", round=0))
                        and t["status"] == "done" and t)
        with session_scope(url) as s:
            tree, evidence = load_tree(s, tree1)
            root_now = beliefs(tree, evidence)[tree.root]
        assert ask["result"]["root_before"] == root0 and ask["result"]["reexpand"] is True
        assert ask["result"]["root_after"] == pytest.approx(root_now)
        assert abs(root_now - root0) >= cfg.reexpand_delta
        re = _wait_for("the re-expansion", lambda: (t := _task(url, "reexpand")) and t["status"] == "done" and t)
        tree2 = re["result"]["tree_id"]
        with session_scope(url) as s:
            assert get_tree(s, tree1).status == "archived" and get_tree(s, tree2).status == "active"
            grown, evidence2 = load_tree(s, tree2)
        assert len(grown) > len(tree)
        # alice's answers are evidence in the new version (her labels live on the propositions).
        labels2 = [ev for ev in evidence2 if not ev.is_model]  # the rest is the model's own credences
        texts = {ev.node: grown[ev.node].text for ev in labels2}
        assert sorted((texts[ev.node], ev.value) for ev in labels2) == sorted(labelled)
        assert any(ev.is_model for ev in evidence2)  # model evidence travelled with the re-grown tree

        # Round 1 (the last: max_rounds=1): waits again, and finishes once the answers move the root.
        ask1 = _wait_for("the loop to wait on the new version", lambda: (
            (t := _task(url, "ask", round=1)) and t["attempts"] >= 2 and t["status"] != "done" and t))
        assert ask1["payload"]["tree_id"] == tree2 and worker.is_alive()
        _annotate_until_moved(url, alice, tree2, ask1["payload"]["root_before"], cfg.reexpand_delta)
        worker.join(timeout=10)
        assert not worker.is_alive() and why == ["all done"]
    finally:
        if worker.is_alive():  # on failure, let the thread end: with every task done it finds nothing left
            with session_scope(url) as s:
                from sqlalchemy import update

                s.execute(update(LoopTask).values(status="done"))
            worker.join(timeout=10)
    ask1 = _task(url, "ask", round=1)
    assert ask1["status"] == "done" and ask1["result"]["reexpand"] is False  # no round beyond max_rounds
    with session_scope(url) as s:
        assert s.get(LoopRun, run_id).status == "done"
        assert [t.status for t in s.scalars(select(Tree).order_by(Tree.id))] == ["archived", "active"]
    assert events[-1]["labels"] >= len(labelled) + 1
    dispose(url)


PROPOSER = textwrap.dedent('''
    import json, sys
    from argtree.llm.base import Generation
    from argtree.llm.fake import FakeBackend
    from argtree.loop import run_worker
    from argtree.oracle import ModelOracle
    from argtree.store.loops import LoopStore

    url, run_id = sys.argv[1], int(sys.argv[2])
    # Names a word of every topic, so the proposal guards (argtree.propose) let it through each time.
    SHARED = ("Should every city fund urban cycling, school meals, river cleanups, night trains, public "
              "libraries and tiny homes?")

    class Proposer(FakeBackend):
        """The fake backend, plus questions for a topic (it only writes premises): two of the topic's own,
        and one every topic proposes."""
        def generate_json(self, prompts, schema, **kw):
            if "questions" not in schema.get("properties", {}):
                return super().generate_json(prompts, schema, **kw)
            out = []
            for p in prompts:
                topic = p.splitlines()[0].removeprefix("Topic: ")
                qs = [f"Will {topic} matter more in ten years?", f"Is {topic} studied enough today?",
                      SHARED]
                out.append(Generation(json.dumps({"questions": qs})))
            return out

    be = Proposer()
    print(run_worker(LoopStore(url), run_id, be, ModelOracle(be)), flush=True)
''')


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_proposing_at_once_keep_to_max_questions(tmp_path):
    """Three worker processes on one run, each starting with the topics' propose tasks: together they add
    exactly --max-questions questions, the one every topic proposes once, and finish the run."""
    from collections import Counter

    from sqlalchemy import select

    from argtree.store import LoopRun, Tree
    from argtree.store.testing import postgres_schema

    topics = ("urban cycling", "school meals", "river cleanups", "night trains", "public libraries", "tiny homes")
    script = tmp_path / "proposer.py"
    script.write_text(PROPOSER)
    with postgres_schema() as url:
        scope = LoopStore(url)
        cfg = LoopConfig(topics=topics, per_topic=3, max_questions=7, budget=1, max_rounds=0, retries=0)
        run_id, _, _ = start_or_resume(scope, cfg, "oracle-model")
        env = dict(os.environ, PYTHONPATH=os.getcwd())
        procs = [subprocess.Popen([sys.executable, str(script), url, str(run_id)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
        assert [out.strip() for out, _ in outs] == ["all done"] * 3
        with session_scope(url) as s:
            assert s.get(LoopRun, run_id).status == "done"
            tasks = list(s.scalars(select(LoopTask).where(LoopTask.run_id == run_id)))
            assert all(t.status == "done" and t.attempts == 1 for t in tasks)
            questions = [t.payload["question"] for t in tasks if t.kind == "question"]
            assert len(questions) == 7 == len(set(questions))
            proposes = [t for t in tasks if t.kind == "propose"]
            assert len(proposes) == len(topics) and sum(t.result["new"] for t in proposes) == 7
            assert Counter(q.startswith("Should every city fund urban cycling") for q in questions)[True] == 1
            trees = Counter(tr.question for tr in s.scalars(select(Tree)))
            assert sorted(trees) == sorted(questions) and set(trees.values()) == {1}


def test_a_long_task_keeps_its_claim_and_one_taken_over_saves_nothing(tmp_path):
    """claim_loop_task hands a task claimed more than stale_after (600 s) ago to another worker, for the
    claims of dead workers.  A live worker's long task renews its claim with every checkpoint; and a worker
    whose task was taken over all the same stops and saves nothing, so no question gets two trees."""
    from datetime import timedelta

    from sqlalchemy import update

    from argtree.grow import GrowConfig, grow
    from argtree.io import to_dict
    from argtree.loop import TAKEN_OVER, _checkpoint, _grow_task, worker_name
    from argtree.store import claim_loop_task, utcnow

    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    run_id, _, cfg = start_or_resume(scope, LoopConfig(questions=("Is the sun a star?",), budget=3, batch=1),
                                     "oracle-dataset")

    def age(seconds):  # the claim was made this long ago
        with session_scope(url) as s:
            s.execute(update(LoopTask).values(claimed_at=utcnow() - timedelta(seconds=seconds)))

    with session_scope(url) as s:
        task = claim_loop_task(s, run_id, worker_name())
        task_id, payload = task.id, dict(task.payload)
    age(700)  # grown for 700 s, a batch just finished:
    assert _checkpoint(scope, task_id, {"expansions": 1})
    with session_scope(url) as s:
        assert claim_loop_task(s, run_id, "elsewhere:1") is None  # not stale: it was just renewed
    age(700)  # silent for 700 s: taken over (as a dead worker's claim would be)
    with session_scope(url) as s:
        assert claim_loop_task(s, run_id, "elsewhere:1").id == task_id
    assert not _checkpoint(scope, task_id, {"expansions": 2})
    # Taken over while growing: it stops at the next checkpoint; after its last one: at the save.
    assert _grow_task(scope, run_id, cfg, FakeBackend(), task_id, "question", payload, None) == TAKEN_OVER
    with session_scope(url) as s:
        assert list_trees(s) == []
    full = grow(payload["question"], FakeBackend(), GrowConfig(expansions=3)).tree  # the whole budget grown:
    res = _grow_task(scope, run_id, cfg, FakeBackend(), task_id, "question", payload,  # straight to the save
                     {"partial": to_dict(full), "expansions": 3})
    assert res == TAKEN_OVER
    with session_scope(url) as s:
        assert list_trees(s) == []
        t = s.get(LoopTask, task_id)
        assert (t.worker, t.status, t.attempts) == ("elsewhere:1", "running", 2)
    # The worker holding it finishes it: one tree.  (Here that is this process again, after a takeover.)
    age(700)
    assert run_worker(scope, run_id, FakeBackend(), DatasetOracle({})) == "all done"
    with session_scope(url) as s:
        assert len(list_trees(s)) == 1
        assert s.get(LoopTask, task_id).attempts == 3
    dispose(url)


# -- question proposals: the schema, its token bound, the fake's answers and the real model's ----------------

def test_question_bound_is_the_longest_answer_the_schema_admits():
    import jsonschema

    from argtree.loop import (MAX_QUESTION, MIN_QUESTION, QUESTION_PATTERN, QUESTION_SCHEMA, question_bound,
                              question_schema)

    assert QUESTION_SCHEMA == question_schema(5)
    item = QUESTION_SCHEMA["properties"]["questions"]["items"]
    assert item == {"type": "string", "pattern": QUESTION_PATTERN}  # no min/maxLength beside the pattern
    for n in (1, 3, 5):
        schema = question_schema(n)
        longest = {"questions": ["W" + "x" * (MAX_QUESTION - 2) + "?"] * n}
        jsonschema.validate(longest, schema)
        assert len(json.dumps(longest)) == question_bound(n)  # ", " and ": ", as xgrammar writes one line
        assert len(json.dumps(longest, separators=(",", ":"))) < question_bound(n)
        # Every character the pattern allows in a question writes as itself: nothing is escaped.
        every = "".join(chr(c) for c in range(32, 127) if chr(c) not in '"\\')
        assert len(json.dumps("A" + every + "?")) == len(every) + 4
        jsonschema.validate({"questions": ["A" + every + "?"]}, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"questions": ["W" + "x" * (MAX_QUESTION - 1) + "?"]}, schema)  # one char more
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"questions": ["Wx?"] * (n + 1)}, schema)  # one question more
    schema = question_schema(3)
    ok = "Is urban cycling safe in winter?"
    jsonschema.validate({"questions": [ok, "W" + "x" * (MIN_QUESTION - 2) + "?"]}, schema)
    for bad in ("Is urban cycling \"safe\" in winter?",   # a quote
                "Is urban cycling safe in winter",         # no '?'
                "Is urban cycling safe? In winter.",       # '?' not last
                "is urban cycling safe in winter?",        # no capital first
                "Is urban cycling\\safe in winter?",       # a backslash
                "Is urban cycling\nsafe in winter?",       # a control character
                "Is café cycling safe in winter?",         # not ASCII (a token may be part of a character)
                "W" + "x" * (MIN_QUESTION - 3) + "?"):     # one char short
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"questions": [bad]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"questions": []}, schema)
    with pytest.raises(ValueError):
        question_schema(0)


def test_xgrammar_compiles_the_question_schema_and_keeps_its_bound():
    """As LocalBackend compiles it (cached compiler, one-line JSON); a tiny ASCII vocabulary stands in for
    the model's.  xgrammar 0.2.8 fails on a pattern repeat above {,128} with its cache on: this catches it."""
    xgr = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    from argtree.loop import MAX_QUESTION, question_schema

    info = xgr.TokenizerInfo([chr(c) for c in range(32, 127)] + ["</s>"], stop_token_ids=[95])
    for n in (1, 3, 5):
        xgr.GrammarCompiler(info).compile_json_schema(json.dumps(question_schema(n)), any_whitespace=False)
    grammar = xgr.Grammar.from_json_schema(json.dumps(question_schema(2)), any_whitespace=False)
    longest = "W" + "x" * (MAX_QUESTION - 2) + "?"
    assert accepts(grammar, json.dumps({"questions": [longest, longest]}))
    assert not accepts(grammar, json.dumps({"questions": ["W" + "x" * (MAX_QUESTION - 1) + "?"]}))  # one char more
    assert not accepts(grammar, json.dumps({"questions": ["Is urban cycling safe in winter."]}))
    assert not accepts(grammar, json.dumps({"questions": ["Is urban cycling safe in winter?"] * 3}))
    assert not accepts(grammar, json.dumps({"questions": ["Is urban cycling safe in winter?"]}, indent=1))


def test_propose_questions_asks_with_the_bound_and_filters():
    from argtree.llm.base import Generation
    from argtree.loop import propose_questions, question_bound, question_schema

    class Scripted(FakeBackend):
        def generate_json(self, prompts, schema, **kw):
            self.asked = (schema, kw)
            return super().generate_json(prompts, schema, **kw)

    answer = {"questions": ["Urban cycling?",                            # the topic (normalized), under 15 characters
                            "Is urban  cycling safe in winter?",          # kept, spaces collapsed
                            "is urban cycling safe in winter?",           # no capital first (breaks the pattern)
                            "Safe enough?",                               # too short (breaks the pattern)
                            "Does cycling cut commuting costs.",           # no question (breaks the pattern)
                            "Do bike lanes reduce traffic deaths?",       # off the topic (no word of it)
                            "Is urban cycling safe during winter?",       # a near-duplicate of the first
                            "Will cycling grow in cold cities?",          # kept
                            "Can urban cycling replace delivery vans?",   # kept
                            "Does urban cycling cut costs in Lyon?"]}     # past n
    be = Scripted([json.dumps(answer)])
    seen = []
    assert propose_questions(be, "urban cycling?", 3, seed=4, retries=0, report=seen.append) == [
        "Is urban cycling safe in winter?", "Will cycling grow in cold cities?",
        "Can urban cycling replace delivery vans?"]
    assert [v.reason for v in seen[0].rejected] == ["not-a-question"] * 4 + ["off-topic", "near-duplicate"]
    schema, kw = be.asked
    assert schema == question_schema(3) and kw["max_new_tokens"] == question_bound(3) and kw["seed"] == 4
    assert propose_questions(FakeBackend(["not json"]), "x", 3, retries=0) == []
    assert propose_questions(FakeBackend([Generation("", error="boom")]), "x", 3, retries=0) == []
    assert propose_questions(FakeBackend(['{"questions": "Is it one string?"}']), "x", 3, retries=0) == []


def test_cli_fake_proposes_and_grows_questions_about_a_topic(tmp_path):
    import re
    from collections import Counter

    from sqlalchemy import func, select

    from argtree.datasets import normalize
    from argtree.loop import QUESTION_PATTERN
    from argtree.store import Label, LoopRun, Node, Tree

    url = sqlite_db(tmp_path)
    res = _cli("--backend", "fake", "--topic", "urban cycling", "--oracle", "model", "--max-questions", "3",
               "--json", "--database", url, home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    out = json.loads(res.stdout)
    assert out["stop"] == "all done" and not out["resumed"]
    with session_scope(url) as s:
        tasks = list(s.scalars(select(LoopTask).where(LoopTask.run_id == out["run_id"])))
        assert all(t.status == "done" for t in tasks), [(t.kind, t.status, t.result) for t in tasks]
        (propose,) = [t for t in tasks if t.kind == "propose"]
        questions = [t.payload["question"] for t in tasks if t.kind == "question"]
        assert propose.result["questions"] == questions and propose.result["new"] == 3
        assert len(questions) == 3 and len({normalize(q) for q in questions}) == 3  # distinct
        for t in tasks:
            if t.kind == "question":
                q = t.payload["question"]
                assert q.endswith("?") and re.match(QUESTION_PATTERN, q) and "urban cycling" in q
                assert t.payload["topic"] == "urban cycling"
        # Each question grew a tree; the live ones are one per question.
        trees = list(s.scalars(select(Tree)))
        assert sorted(t.result["tree_id"] for t in tasks if t.kind in ("question", "reexpand")) == \
            sorted(tr.id for tr in trees)
        assert sorted(tr.question for tr in trees if tr.status == "active") == sorted(questions)
        assert all(tr.n_nodes > 1 for tr in trees)
        # What the command printed is the run's stored stats and what the database holds.
        stats = {k: v for k, v in out.items() if k not in ("run_id", "resumed", "stop", "workers_failed")}
        assert s.get(LoopRun, out["run_id"]).stats == stats
        assert stats["tasks"] == {k: {"done": n} for k, n in Counter(t.kind for t in tasks).items()}
        assert stats["questions"] == 3 and stats["trees"] == len(trees)
        assert stats["nodes"] == s.scalar(select(func.count()).select_from(Node)) == sum(tr.n_nodes for tr in trees)
        assert stats["labels"] == s.scalar(select(func.count()).select_from(Label))
    dispose(url)


@pytest.mark.model
@pytest.mark.slow
def test_real_model_proposes_untruncated_questions_about_a_topic():
    import re

    from argtree.datasets import normalize
    from argtree.loop import QUESTION_PATTERN, propose_questions, question_bound

    class Recording:
        """The real backend, keeping what it generated for propose_questions."""
        def __init__(self, backend):
            self.backend, self.asked = backend, []

        def generate_json(self, prompts, schema, **kw):
            gens = self.backend.generate_json(prompts, schema, **kw)
            self.asked.append((kw, gens))
            return gens

    # What `argtree loop` proposes with by default: the shipped proposer on the bundled model (the default
    # model's own proposals about a topic rarely pass the guards, so it no longer proposes for the loop).
    from argtree.llm.local import LocalBackend, default_proposer

    proposer = default_proposer(None)
    assert proposer is not None, "argtree/adapters/proposer-lora is not shipped (or peft is missing)"
    be = Recording(LocalBackend(proposer))
    questions = propose_questions(be, "microplastics", 3)
    assert 1 <= len(questions) <= 3, questions
    for q in questions:
        assert isinstance(q, str) and q.endswith("?") and re.match(QUESTION_PATTERN, q), q
        assert normalize(q) != normalize("microplastics")
    assert len({normalize(q) for q in questions}) == len(questions)
    # The generations themselves: one answer per call (a sampled retry asks for the questions the guards
    # left missing), schema-valid JSON, not cut off by the token cap.
    assert 1 <= len(be.asked) <= 3 and be.asked[0][0]["max_new_tokens"] == question_bound(3)
    for kw, (g,) in be.asked:
        cap = kw["max_new_tokens"]
        assert g.ok and not g.truncated and 0 < g.tokens < cap, g
        items = json.loads(g.text)["questions"]
        assert 1 <= len(items) <= 3 and all(re.match(QUESTION_PATTERN, q) for q in items), items
        print(f"\nproposed in {g.seconds:.1f} s, {g.tokens} tokens (cap {cap}): {items}")


def test_the_uncertainty_filter_uses_the_trees_own_belief(tmp_path):
    """A tree whose model evidence already settles it is not put to the oracle; one left near 0.5 is."""
    from argtree.inference import beliefs

    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    qs = tuple(f"Is example claim number {i} true?" for i in range(8))
    cfg = LoopConfig(questions=qs, budget=1, max_rounds=0, uncertain=(0.45, 0.55))
    run_id, _, cfg = start_or_resume(scope, cfg, "oracle-dataset")
    assert run_worker(scope, run_id, FakeBackend(), DatasetOracle({})) == "all done"
    grown = [r for k, _, _, _, r in _tasks(url) if k == "question"]
    kept = {r["tree_id"] for r in grown if r["uncertain"]}
    asked = {int(key.split(":")[1]) for k, key, *_ in _tasks(url) if k == "ask"}
    with session_scope(url) as s:
        roots = {}
        for r in grown:
            tree, evidence = load_tree(s, r["tree_id"])
            roots[r["tree_id"]] = beliefs(tree, evidence)[tree.root]
            assert r["root_belief"] == roots[r["tree_id"]]          # the filter saw the tree's belief ...
            assert any(ev.is_model for ev in evidence)             # ... which holds the model's credences
    assert asked == kept == {t for t, p in roots.items() if 0.45 <= p <= 0.55}
    assert 0 < len(kept) < len(grown)  # it filters: some trees are settled by their premises, some are not
    dispose(url)
