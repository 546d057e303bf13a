"""`argtree eval --questions` and `argtree calibrate` with the scripted fake backend; argtree.questions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.llm.fake import FakeBackend
from argtree.oracle import FactsOracle
from argtree.questions import (QuestionError, bootstrap, evaluate_questions, heldout_value, load_questions,
                               parse_questions, split_heldout, summarize)

QS = [{"qid": f"q{i}", "question": f"Is thing number {i} bigger than a breadbox?", "answer": i % 3 == 0,
       "facts": [f"Thing number {i} is bigger than a breadbox."] if i % 3 == 0 else
                [f"Thing number {i} is not bigger than a breadbox."]}
      for i in range(12)]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ARGTREE_DATABASE_URL", raising=False)
    return tmp_path


def test_parse_json_list_jsonl_and_errors_name_the_record():
    assert [q.qid for q in parse_questions(json.dumps(QS[:2]))] == ["q0", "q1"]
    jl = "\n".join(json.dumps({"question": q["question"], "answer": q["answer"]}) for q in QS[:3])
    got = parse_questions(jl)
    assert len(got) == 3 and got[0].answer is True and got[0].qid == "is thing number 0 bigger than a breadbox"
    for bad, msg in [("[1]", "record 1"), ('[{"question": ""}]', "'question'"),
                     ('[{"question": "Q?", "answer": "yes"}]', "'answer'"), ("{oops", "not JSON"),
                     (json.dumps([QS[0], QS[0]]), "repeats record 1"), ("", "empty")]:
        with pytest.raises(QuestionError, match=msg):
            parse_questions(bad)


def test_heldout_split_is_fixed_by_the_id_hash():
    qs = parse_questions(json.dumps(QS * 1 + [{"qid": f"x{i}", "question": f"Q {i}?", "answer": True}
                                               for i in range(200)]))
    train, held = split_heldout(qs)
    assert {q.qid for q in held} == {q.qid for q in qs if heldout_value(q.qid) >= 0.85}
    assert 10 < len(held) < 60 and len(train) + len(held) == len(qs)
    # the same question is held out whatever file it is in and in whatever order
    t2, h2 = split_heldout(list(reversed(qs))[:50])
    assert {q.qid for q in h2} == {q.qid for q in held} & {q.qid for q in list(reversed(qs))[:50]}


def test_summary_intervals_and_paired_difference():
    recs = [{"answer": bool(i % 2), "direct": 0.5, "tree": 0.8 if i % 2 else 0.2} for i in range(40)]
    s = summarize(recs, ("direct", "tree"))
    assert s["n"] == 40 and s["direct"]["brier"] == pytest.approx(0.25) and s["tree"]["brier"] == pytest.approx(0.04)
    lo, hi = s["tree"]["brier_minus_direct_ci"]
    assert lo <= s["tree"]["brier_minus_direct"] <= hi < 0
    assert bootstrap(np.ones(10)) == (1.0, 1.0)


def test_evaluate_questions_with_the_fake_model_and_the_facts_oracle():
    qs = parse_questions(json.dumps(QS))
    out = evaluate_questions(FakeBackend(), qs, budget=1, oracle=FactsOracle(), answers=2)
    assert out["n"] == len(QS) and {"direct", "tree", "oracle"} <= set(out)
    for r in out["records"]:
        assert 0 < r["direct"] < 1 and 0 < r["tree"] < 1 and r["labels_only"] is not None
        assert r["oracle"]["asked"] >= r["oracle"]["answered"]
    direct_only = evaluate_questions(FakeBackend(), qs, budget=0)
    assert "tree" not in direct_only and direct_only["direct"]["brier"] == pytest.approx(out["direct"]["brier"])


def test_eval_questions_cli_json_and_records(home):
    path = home / "qs.json"
    path.write_text(json.dumps(QS))
    rec = home / "recs.jsonl"
    r = CliRunner().invoke(main, ["eval", "--questions", str(path), "--backend", "fake", "--budget", "1",
                                  "--oracle", "dataset", "--answers", "1", "--records", str(rec), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["n"] == 12 and set(data["direct"]) >= {"accuracy", "brier"} and set(data["tree"]) >= {"accuracy", "brier"}
    assert "brier_minus_direct_ci" in data["tree"]
    lines = rec.read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["tree_json"]["format"] == "argtree/1"
    out = home / "out.jsonl"   # --out FILE.jsonl means the same with --questions
    r = CliRunner().invoke(main, ["eval", "--questions", str(path), "--backend", "fake", "--budget", "1",
                                  "--out", str(out), "--json"])
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 12 and json.loads(r.output)["records"] == str(out)
    r = CliRunner().invoke(main, ["eval", "--questions", str(path), "--backend", "fake", "--budget", "0"])
    assert r.exit_code == 0 and "direct" in r.output and "Brier" in r.output


def test_eval_questions_bad_input_is_one_line(home):
    bad = home / "bad.json"
    bad.write_text('[{"question": 3}]')
    r = CliRunner().invoke(main, ["eval", "--questions", str(bad), "--backend", "fake"])
    assert r.exit_code == 2 and "record 1" in r.output and "Traceback" not in r.output
    good = home / "qs.json"
    good.write_text(json.dumps(QS))
    r = CliRunner().invoke(main, ["eval", "--questions", str(good), "--backend", "fake", "--answers", "2"])
    assert r.exit_code == 2 and "--oracle" in r.output


def test_calibrate_cli_fits_stores_and_the_map_is_used(home, monkeypatch):
    pytest.importorskip("sklearn")
    from argtree.store.testing import sqlite_db

    url = sqlite_db(home)
    monkeypatch.setenv("ARGTREE_DATABASE_URL", url)
    qs = [{"qid": f"c{i}", "question": f"Calibration question {i}?", "answer": i % 2 == 0} for i in range(60)]
    path = home / "cal.json"
    path.write_text(json.dumps(qs))
    out = home / "out"
    r = CliRunner().invoke(main, ["calibrate", "--backend", "fake", "--questions", str(path), "--out", str(out),
                                  "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["stored"] is True and data["direct"]["n"] == len(load_questions(path)) - len(split_heldout(load_questions(path))[1])
    assert (out / "calibration.png").stat().st_size > 0
    from argtree.commands.calibrate import calibration_for

    cal, source = calibration_for("fake", url)
    assert source == "database" and cal.direct is not None and cal.direct.fitted
    # the fake model's P(yes) is a hash: no signal, so the direct map is nearly flat at the base rate
    assert abs(cal.direct_map(0.9) - cal.direct_map(0.1)) < 0.2
    r = CliRunner().invoke(main, ["calibrate", "--backend", "fake", "--no-store"])
    assert r.exit_code == 2 and "no (credence, answer) pairs" in r.output


def test_the_direct_answer_is_calibrated_with_or_without_trees():
    from argtree.calibration import CalibrationMap
    from argtree.model_evidence import ModelCalibration

    qs = parse_questions(json.dumps(QS))
    flat = ModelCalibration(direct=CalibrationMap("platt", a=0.0, b=0.0))  # every direct answer -> 0.5
    for budget in (0, 1):
        out = evaluate_questions(FakeBackend(), qs, budget=budget, calibration=flat)
        assert all(r["direct"] == pytest.approx(0.5) for r in out["records"])
        assert all(r["direct_raw"] != pytest.approx(0.5) for r in out["records"])


def test_the_shipped_maps_load_and_the_direct_map_is_a_probability_everywhere(home):
    from argtree.calibration import SHIPPED_DIR
    from argtree.commands.calibrate import calibration_for

    files = sorted(SHIPPED_DIR.glob("*.json"))
    assert files, "the package ships the default model's calibration"
    for f in files:
        cal, source = calibration_for(f.stem)   # no database under this ARGTREE_HOME: the shipped file
        assert source == str(f)
        xs = np.linspace(0, 1, 101)
        ys = cal.direct_map(xs)
        assert np.all(np.diff(ys) >= -1e-12) and ys.min() >= 0.01 and ys.max() <= 0.99
    assert not (home / "home").exists()  # looking did not create a database
