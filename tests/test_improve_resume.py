"""argtree improve killed with SIGKILL at every step (and inside the steps that have units of work) continues
where it stopped and repeats no finished unit: the command runs in subprocesses that kill themselves at a
named point (ARGTREE_IMPROVE_KILL); every unit of work done is traced (ARGTREE_IMPROVE_TRACE)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from argtree.improve import KILL_ENV, STEPS, TRACE_ENV

pytest.importorskip("argtree.store")
from argtree.store import session_scope  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402

QUESTIONS = [{"qid": f"q{i}", "question": f"Is the {w} older than the bridge over river {i}?", "answer": i % 2 == 0,
              "facts": [f"The {w} was built long ago."]}
             for i, w in enumerate(["tower", "castle", "church", "mill", "harbour", "market", "school", "theatre",
                                    "library", "station", "museum", "palace", "prison", "temple", "stadium",
                                    "garden", "lighthouse", "fortress", "monastery", "canal"])]

# Every point a kill can hit, in the order a run passes them (one round; 12 held-out questions = 2 chunks).
POINTS = (["r0:eval:start", "r0:eval:unit", "r0:eval:done"]
          + [f"r1:{step}:{point}" for step in STEPS for point in ("start", "unit", "done")
             if point != "unit" or step in ("grow", "oracle", "eval")])


def _run(tmp_path, url, home, trace, kill=None, extra=()):
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, TRACE_ENV)}
    env.update(ARGTREE_HOME=str(home), **{TRACE_ENV: str(trace)})
    if kill:
        env[KILL_ENV] = kill
    cmd = [sys.executable, "-m", "argtree.cli", "improve", "--backend", "fake", "--oracle", "model",
           "--self-labels", "--questions", str(tmp_path / "train.json"), "--heldout", str(tmp_path / "held.json"),
           "--rounds", "1", "--per-round", "3", "--budget", "2", "--answers", "2", "--steps", "1",
           "--database", url, "--workdir", str(home / "work"), "--json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _state(url):
    from sqlalchemy import func, select

    from argtree.store import Label, LoopTask, ModelVersion, Tree
    from argtree.store.registry import current_default_version

    with session_scope(url) as s:
        tasks = {t.key: t.status for t in s.scalars(select(LoopTask))}
        return {"trees": s.scalar(select(func.count()).select_from(Tree)),
                "labels": s.scalar(select(func.count()).select_from(Label)),
                "versions": sorted(n for (n,) in s.execute(select(ModelVersion.name))),
                "default": getattr(current_default_version(s), "name", None), "tasks": tasks}


@pytest.mark.slow
def test_killed_at_every_step_resumes_and_repeats_nothing(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps(QUESTIONS[:8]))
    (tmp_path / "held.json").write_text(json.dumps(QUESTIONS[8:20]))
    # The reference: one run, never killed.
    url_a = sqlite_db(tmp_path, "a.db")
    ref = _run(tmp_path, url_a, tmp_path / "home_a", tmp_path / "trace_a")
    assert ref.returncode == 0, ref.stderr
    ref_trace = (tmp_path / "trace_a").read_text().splitlines()
    assert len(ref_trace) == len(set(ref_trace))
    assert {"r1:sft", "r1:dpo", "r1:gate", "r0:eval:0", "r0:eval:10", "r1:eval:0", "r1:eval:10"} <= set(ref_trace)
    # The same run killed at each point in turn, started again each time.
    url_b = sqlite_db(tmp_path, "b.db")
    trace_b = tmp_path / "trace_b"
    for point in POINTS:
        res = _run(tmp_path, url_b, tmp_path / "home_b", trace_b, kill=point)
        assert res.returncode == -signal.SIGKILL, f"{point}: {res.returncode} {res.stderr[-2000:]}"
    final = _run(tmp_path, url_b, tmp_path / "home_b", trace_b)
    assert final.returncode == 0, final.stderr
    trace = trace_b.read_text().splitlines()
    # Nothing was done twice, and everything the uninterrupted run did was done.
    assert len(trace) == len(set(trace)), [t for t in trace if trace.count(t) > 1]
    assert sorted(trace) == sorted(ref_trace)
    a, b = _state(url_a), _state(url_b)
    assert a == b and all(st == "done" for st in b["tasks"].values())
    # The same numbers: the curve of the killed run is the uninterrupted one's (wall times aside).
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(json.loads(final.stdout)["curve"]) == strip(json.loads(ref.stdout)["curve"])
    dispose(url_a)
    dispose(url_b)


def test_cli_refuses_other_options_and_names_them(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps(QUESTIONS[:8]))
    (tmp_path / "held.json").write_text(json.dumps(QUESTIONS[8:12]))
    url = sqlite_db(tmp_path)
    home = tmp_path / "home"
    killed = _run(tmp_path, url, home, tmp_path / "t", kill="r1:data:start")
    assert killed.returncode == -signal.SIGKILL
    res = _run(tmp_path, url, home, tmp_path / "t", extra=("--answers", "3"))  # later --answers wins in click
    assert res.returncode == 2 and "--answers" in res.stderr and "Traceback" not in res.stderr
    ok = _run(tmp_path, url, home, tmp_path / "t")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["resumed"] is True and [r["round"] for r in out["curve"]] == [0, 1]
    models = subprocess.run([sys.executable, "-m", "argtree.cli", "models", "--json", "--database", url],
                            capture_output=True, text=True, env=dict(os.environ, ARGTREE_HOME=str(home)), timeout=120)
    assert models.returncode == 0, models.stderr
    rows = json.loads(models.stdout)
    assert {r["name"] for r in rows} == {"fake", f"improve{out['run_id']}-r1"}
    cand = [r for r in rows if r["round"] == 1][0]
    # Only a promoting gate sets the default; the start model is not made the default by starting.
    assert [r["name"] for r in rows if r["default"]] == ([cand["name"]] if cand["gate"]["promote"] else [])
    assert cand["parent"] == "fake" and set(cand["heldout"]) >= {"direct", "tree"}
    assert isinstance(cand["heldout"]["tree"]["brier"], float)
    assert cand["provenance"]["self_labels"] is True  # the card records the flag
    dispose(url)
