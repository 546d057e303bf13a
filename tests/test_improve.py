"""argtree improve: the round machinery with the fake backend (gate, provenance, DPO pairs, replay buffer,
learning curve, models listing); resuming after SIGKILL at every step is in test_improve_resume.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from argtree.datasets import (add_to_buffer, check_pair, distill_records, expansion_pair_record, fact_record,
                              is_mechanical_negation, record_key)
from argtree.expand import SYSTEM, TEXT_PATTERN, expansion_prompt
from argtree.improve import (Deps, ImproveConfig, ImproveError, RecordingTrainer, buffer_records, gate_decision,
                             paired_interval, round_records, run_improve, start_or_resume)
from argtree.llm.fake import FakeBackend
from argtree.oracle import Answer, ModelOracle
from argtree.tree import ArgumentTree, Node

store = pytest.importorskip("argtree.store")
from argtree.store import session_scope  # noqa: E402
from argtree.store.testing import dispose, sqlite_db  # noqa: E402

QUESTIONS = [{"qid": f"q{i}", "question": f"Is the {w} older than the bridge over river {i}?", "answer": i % 2 == 0,
              "facts": [f"The {w} was built long ago."]}
             for i, w in enumerate(["tower", "castle", "church", "mill", "harbour", "market", "school", "theatre",
                                    "library", "station", "museum", "palace", "prison", "temple", "stadium",
                                    "garden", "lighthouse", "fortress", "monastery", "canal"])]


def _files(tmp_path, n_train=12, n_held=8):
    train, held = tmp_path / "train.json", tmp_path / "held.json"
    train.write_text(json.dumps(QUESTIONS[:n_train]))
    held.write_text(json.dumps(QUESTIONS[n_train:n_train + n_held]))
    return str(train), str(held)


# -- pure parts ------------------------------------------------------------------------------------


def test_buffer_deduplicates_by_content_and_keeps_first_provenance():
    a = fact_record("The tower is old.", True, {"round": 1, "tree_id": 1})
    b = fact_record("The tower is old.", True, {"round": 2, "tree_id": 9})   # same record, later round
    c = fact_record("The tower is old.", False, {"round": 2, "tree_id": 9})  # other answer: another record
    d = distill_records("Question: Q?", 0.75, "tree", {"round": 1})
    buf, added = add_to_buffer([], [a, *d])
    assert added == 5 and len(buf) == 5
    # Three of the four copies say Yes: identical texts stay apart by their copy number.
    assert [r["messages"][-1]["content"] for r in d] == ["Yes", "Yes", "Yes", "No"]
    assert len({record_key(r) for r in d}) == 4
    buf2, added2 = add_to_buffer(buf, [b, c, *d])
    assert added2 == 1 and len(buf2) == 6
    kept = [r for r in buf2 if r["messages"][-1]["content"] == "Yes" and r["argtree"]["kind"] == "fact"]
    assert [r["argtree"]["provenance"]["round"] for r in kept] == [1]
    # The same question distilled toward gold is told apart from the tree target by its kind.
    g = distill_records("Question: Q?", 1.0, "gold", {"round": 1})
    assert {r["argtree"]["kind"] for r in g} == {"distill-gold"}
    assert add_to_buffer(buf2, g)[1] == 4


def test_mechanical_negations_are_recognised():
    assert is_mechanical_negation("Mars is not a planet.")
    assert is_mechanical_negation("The chair is not a piece of furniture.")
    assert is_mechanical_negation("Legolas was not a knight of the White Rose.")
    assert not is_mechanical_negation("Mars is a planet.")
    assert not is_mechanical_negation("Few towns have no library.")  # a hedge: not a simple negation


def _tree_with_rejections():
    q = "Is the tower older than the bridge?"
    nodes = [Node("q", q, prior=0.5),
             Node("n1", "The tower was built in the twelfth century.", parent="q", p_if_true=0.8, p_if_false=0.3,
                  extra={"stance_asked": "for", "credence": 0.7, "claim_if_true": 0.8, "claim_if_false": 0.3}),
             Node("n2", "The bridge is not a modern structure.", parent="q", p_if_true=0.3, p_if_false=0.6,
                  extra={"stance_asked": "against", "credence": 0.4, "claim_if_true": 0.2, "claim_if_false": 0.6}),
             Node("n3", "Records of the bridge go back to Roman times.", parent="q", p_if_true=0.2, p_if_false=0.7,
                  extra={"stance_asked": "against", "credence": 0.6, "claim_if_true": 0.25, "claim_if_false": 0.7}),
             Node("n4", "Stone towers from that period often survive.", parent="q", p_if_true=0.7, p_if_false=0.4,
                  extra={"stance_asked": "for", "credence": 0.5, "claim_if_true": 0.75, "claim_if_false": 0.4})]
    tree = ArgumentTree(nodes, {"question": q})
    rejected = [{"node": "q", "stance": "for", "attempt": 0, "text": "The tower is older than the bridge.",
                 "reason": "copies-claim"},
                {"node": "q", "stance": "against", "attempt": 0, "text": "Bridge bridge bridge bridge.",
                 "reason": "degenerate"},
                {"node": "q", "stance": "for", "attempt": 1, "text": "Another sampled try at the tower claim.",
                 "reason": "copies-claim"}]
    return tree, rejected


def _item(labels):
    tree, rejected = _tree_with_rejections()
    return {"qid": "t1", "question": tree[tree.root].text, "answer": True, "tree_id": 7, "tree": tree,
            "rejected": rejected, "labels": labels, "root_belief": 0.62}


def _lab(source, value=None, probability=None, kind=None, name=None):
    return {"source": source, "annotator": name or f"oracle-{source}", "value": value, "probability": probability,
            "kind": kind or ("true" if value else "false" if value is False else "probability"),
            "reliability": 0.9}


def test_dpo_pairs_are_well_formed_and_match_their_sft_prompt():
    recs, stats = round_records([_item({})], run_id=1, round_no=1)
    pairs = [r for r in recs if r["argtree"]["kind"] == "expansion-pair"]
    sft = [r for r in recs if r["argtree"]["kind"] == "expansion"]
    assert pairs and all(check_pair(p) is None for p in pairs)
    tree, _ = _tree_with_rejections()
    for p in pairs:
        stance = p["argtree"]["provenance"]["stance"]
        # The prompt is exactly what grow sent for that side of the node (system + user message).
        assert p["prompt"] == [{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": expansion_prompt(tree["q"].text, stance)}]
        chosen = json.loads(p["chosen"][0]["content"])["premises"]
        rejected = json.loads(p["rejected"][0]["content"])["premises"]
        assert len(chosen) == len(rejected) == 1
        # The pair differs in the premise's text only; the chosen one is an accepted premise of that side.
        assert {k: v for k, v in chosen[0].items() if k != "text"} == {k: v for k, v in rejected[0].items()
                                                                      if k != "text"}
        assert chosen[0]["text"] != rejected[0]["text"]
        assert re.match(TEXT_PATTERN, rejected[0]["text"])
        assert any(n.text == chosen[0]["text"] and n.extra["stance_asked"] == stance for n in tree.nodes.values())
        same = [s for s in sft if s["messages"][:2] == p["prompt"]]
        assert len(same) == 1 and chosen[0]["text"] in same[0]["messages"][-1]["content"]
    reasons = sorted(p["argtree"]["reason"] for p in pairs)
    # The guard's rejections of the first attempt, and the accepted mechanical negation (never taught as SFT).
    assert reasons == ["copies-claim", "degenerate", "mechanical-negation"]
    assert stats["skipped_negations"] == 1
    assert not any("is not a modern" in s["messages"][-1]["content"] for s in sft)
    # A malformed pair is caught.
    bad = expansion_pair_record(SYSTEM, "p", {"text": "A b c.", "credence": 0.5, "claim_if_true": 0.6,
                                             "claim_if_false": 0.4}, "A b c.", "x", {})
    assert check_pair(bad) == "chosen and rejected are the same"


def test_facts_never_come_from_self_labels_unless_flagged():
    labels = {"n1": [_lab("model", probability=0.9)],              # the model judging itself
              "n3": [_lab("dataset", value=False)],                 # known truth
              "n4": [_lab("human", value=True, name="alice")]}
    recs, stats = round_records([_item(labels)], run_id=1, round_no=1)
    facts = [r for r in recs if r["argtree"]["kind"] == "fact"]
    assert sorted(r["argtree"]["provenance"]["node"] for r in facts) == ["n3", "n4"]
    assert all("model" not in r["argtree"]["provenance"]["label_sources"] for r in facts)
    assert stats["skipped_self_labels"] == 1 and stats["fact_sources"] == {"dataset": 1, "human": 1}
    answers = {r["argtree"]["provenance"]["node"]: r["messages"][-1]["content"] for r in facts}
    assert answers == {"n3": "No", "n4": "Yes"}
    # The expansion record teaches the oracle's truth as the credence of a labeled premise, the model's own
    # number otherwise (n1's model label does not count as truth).
    sft = [r for r in recs if r["argtree"]["kind"] == "expansion"]
    texts = {p["text"]: p["credence"] for r in sft for p in json.loads(r["messages"][-1]["content"])["premises"]}
    assert texts["Records of the bridge go back to Roman times."] == 5
    assert texts["Stone towers from that period often survive."] == 95
    assert texts["The tower was built in the twelfth century."] == 70
    recs2, stats2 = round_records([_item(labels)], run_id=1, round_no=1, self_labels=True)
    facts2 = [r for r in recs2 if r["argtree"]["kind"] == "fact"]
    assert sorted(r["argtree"]["provenance"]["node"] for r in facts2) == ["n1", "n3", "n4"]
    assert stats2["fact_sources"]["model"] == 1


def test_ill_posed_premises_are_not_taught_and_become_rejected():
    labels = {"n4": [_lab("human", kind="ill_posed", name="alice")]}
    recs, stats = round_records([_item(labels)], run_id=1, round_no=1)
    sft = [r for r in recs if r["argtree"]["kind"] == "expansion"]
    assert not any("Stone towers" in r["messages"][-1]["content"] for r in sft)
    assert stats["skipped_ill_posed"] == 1
    assert any(p["argtree"]["reason"] == "ill-posed" for p in recs if p["argtree"]["kind"] == "expansion-pair")


def test_distillation_targets_are_tagged_apart():
    recs, _ = round_records([_item({})], run_id=1, round_no=1, distill="both")
    tree_recs = [r for r in recs if r["argtree"]["kind"] == "distill-tree"]
    gold = [r for r in recs if r["argtree"]["kind"] == "distill-gold"]
    assert [r["messages"][-1]["content"] for r in tree_recs].count("Yes") == round(0.62 * 4)
    assert [r["messages"][-1]["content"] for r in gold] == ["Yes"] * 4
    assert all(r["argtree"]["target"] == 0.62 for r in tree_recs)
    only_tree, _ = round_records([_item({})], run_id=1, round_no=1, distill="tree")
    assert not [r for r in only_tree if r["argtree"]["kind"] == "distill-gold"]
    none, _ = round_records([_item({})], run_id=1, round_no=1, distill="none")
    assert not [r for r in none if r["argtree"]["kind"].startswith("distill")]


def test_gate_promotes_only_a_significantly_better_candidate():
    qs = [{"qid": f"q{i}", "answer": i % 2 == 0} for i in range(40)]

    def recs(skill):
        return [{**q, "direct": 0.5, "tree": 0.5 + (1 if q["answer"] else -1) * (skill + 0.01 * (i % 5))}
                for i, q in enumerate(qs)]

    base = recs(0.1)
    assert gate_decision(recs(0.3), base)["promote"] is True
    worse = gate_decision(recs(0.0), base)
    assert worse["promote"] is False and worse["tree_brier_diff"][0] > 0
    assert gate_decision(base, base)["promote"] is False  # a tie is no improvement
    # Noisy: better on average but not reliably -> stays a candidate.
    noisy = [{**r, "tree": (0.9 if (i % 2 == 0) == r["answer"] else 0.1)} for i, r in enumerate(base)]
    assert gate_decision(noisy, base)["promote"] is False
    lo, mid, hi = paired_interval([1, 2, 3], [1, 2, 3])
    assert lo == mid == hi == 0.0
    with pytest.raises(ImproveError):
        gate_decision([{"qid": "x", "answer": True, "tree": 0.5, "direct": 0.5}], base)


# -- the round machinery in-process ----------------------------------------------------------------


class QualityTrainer(RecordingTrainer):
    """Records versions like the fake backend's trainer and gives each round's candidate a set quality."""

    name = "quality"

    def __init__(self, qualities):
        self.qualities = qualities
        self.calls = []

    def _write(self, stage, data, parent, out, steps, seed):
        meta = super()._write(stage, data, parent, out, steps, seed)
        rnd = int(re.findall(r"r(\d+)", Path(out).as_posix())[-1])
        info = json.loads((Path(out) / "argtree_version.json").read_text())
        info["quality"] = self.qualities[rnd]
        (Path(out) / "argtree_version.json").write_text(json.dumps(info))
        self.calls.append((stage, rnd, parent))
        return meta


def _quality_of(path):
    if not path:
        return 0.1
    return json.loads((Path(path) / "argtree_version.json").read_text()).get("quality", 0.1)


def _deps(tmp_path, url, trainer, oracle_kind_map=None, evaluate=None):
    from argtree.questions import load_questions

    def backend_for(name, path):
        be = FakeBackend(model_version=name)
        be.quality = _quality_of(path)
        return be

    def oracle_for(kind, backend, questions):
        if kind == "model":
            return ModelOracle(backend)
        return AllKnowing()

    return Deps(scope=lambda: session_scope(url), backend_for=backend_for, oracle_for=oracle_for, trainer=trainer,
                workdir=tmp_path / "work", versions_dir=tmp_path / "versions", load_questions=load_questions,
                evaluate=evaluate or scripted_evaluate)


class AllKnowing:
    """A dataset oracle that knows every premise (truth: whether its text has an even number of words)."""

    name = "oracle-dataset-test"
    synchronous = True
    reliability = 0.95

    def answer(self, queries):
        return [Answer(value=len(q.text.split()) % 2 == 0) for q in queries]


def scripted_evaluate(backend, questions, *, budget=1, seed=0, **kw):
    """Held-out answers whose tree belief is as good as the version's quality (deterministic)."""
    out = []
    for i, q in enumerate(questions):
        s = 1 if q.answer else -1
        out.append({"qid": q.qid, "answer": q.answer, "direct": 0.5 + s * 0.05,
                    "tree": min(max(0.5 + s * (backend.quality + 0.02 * (i % 3)), 0.01), 0.99)})
    return {"records": out}


def test_rounds_gate_on_heldout_and_continue_from_the_default(tmp_path):
    url = sqlite_db(tmp_path)
    train, held = _files(tmp_path)
    trainer = QualityTrainer({1: 0.3, 2: 0.05, 3: 0.35})
    deps = _deps(tmp_path, url, trainer)
    cfg = ImproveConfig(questions=train, heldout=held, rounds=3, per_round=3, budget=2, answers=2, steps=1,
                        backend="fake")
    run_id, resumed, cfg = start_or_resume(deps, cfg)
    events = []
    state = run_improve(deps, run_id, progress=events.append)
    gates = [e for e in events if e["event"] == "gate"]
    # Round 1 is better than the start (promoted), round 2 worse than round 1 (kept a candidate),
    # round 3 better than round 1 (promoted).
    assert [g["promote"] for g in gates] == [True, False, True]
    assert [g["default_before"] for g in gates] == ["fake", f"improve{run_id}-r1", f"improve{run_id}-r1"]
    assert state["default"] == state["store_default"] == f"improve{run_id}-r3"
    # Every round trains from the default at its start (round 3 from round 1, not from the rejected round 2).
    sft_parents = [p for stage, _, p in trainer.calls if stage == "sft"]
    assert sft_parents[0] == "fake"
    assert sft_parents[1].endswith(f"improve{run_id}-r1") and sft_parents[2].endswith(f"improve{run_id}-r1")
    # Every round used new questions; no held-out question was grown for training.
    from sqlalchemy import select

    from argtree.store import LoopTask

    with session_scope(url) as s:
        grown = [t.payload["questions"] for t in s.scalars(select(LoopTask).where(
            LoopTask.run_id == run_id, LoopTask.key.like("%:grow")))]
    flat = [q for qs in grown for q in qs]
    assert len(flat) == 9 and len(set(flat)) == 9
    assert not set(flat) & {q["qid"] for q in QUESTIONS[12:20]}
    # The replay buffer: later rounds add records, never the same one twice.
    buf = buffer_records(deps, run_id)
    keys = [json.dumps({k: v for k, v in r.items() if k != "argtree"}, sort_keys=True) + str(r["argtree"].get("copy"))
            + r["argtree"]["kind"] for r in buf]
    assert len(keys) == len(set(keys)) and {r["argtree"]["provenance"]["round"] for r in buf} == {1, 2, 3}
    # The models listing.
    from argtree.commands.models import version_rows

    with session_scope(url) as s:
        rows = {r["name"]: r for r in version_rows(s)}
    assert [n for n, r in rows.items() if r["default"]] == [f"improve{run_id}-r3"]
    r2 = rows[f"improve{run_id}-r2"]
    assert r2["parent"] == f"improve{run_id}-r1" and r2["round"] == 2 and r2["status"] == "candidate"
    assert r2["heldout"]["tree"]["brier"] > rows[f"improve{run_id}-r1"]["heldout"]["tree"]["brier"]
    assert r2["data"]["sft_records"] > 0 and r2["provenance"]["self_labels"] is False
    assert r2["provenance"]["facts_from"] == {"dataset": 1} or r2["provenance"]["facts_from"].get("dataset", 0) > 0
    assert rows["fake"]["heldout"]["tree"]["brier"] > rows[f"improve{run_id}-r1"]["heldout"]["tree"]["brier"]
    # The learning curve: one row per evaluated version, files written.
    rundir = tmp_path / "work" / f"run-{run_id}"
    curve = json.loads((rundir / "curve.json").read_text())
    assert [r["round"] for r in curve["rows"]] == [0, 1, 2, 3]
    assert [r["promoted"] for r in curve["rows"]] == [None, True, False, True]
    assert all(len(r["tree_brier"]) == 3 and r["tree_brier"][0] <= r["tree_brier"][1] <= r["tree_brier"][2]
               for r in curve["rows"])
    assert (rundir / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (rundir / "curve.md").read_text()
    assert md.count("\n| 3 |") == 2 and "tree Brier" in md
    # The finished run started again with its options has nothing left to do.
    n_calls, n_events = len(trainer.calls), len(events)
    run2, resumed2, _ = start_or_resume(deps, cfg)
    assert run2 == run_id and resumed2
    state2 = run_improve(deps, run2, progress=events.append)
    assert len(trainer.calls) == n_calls and len(events) == n_events and state2["default"] == state["default"]
    dispose(url)


def test_self_labels_stay_out_of_facts_in_a_run_with_the_model_oracle(tmp_path):
    url = sqlite_db(tmp_path)
    train, held = _files(tmp_path)
    deps = _deps(tmp_path, url, QualityTrainer({1: 0.3}))
    # (the question file's gold facts are dataset truth, taught by default: off here, so that only labels count)
    cfg = ImproveConfig(questions=train, heldout=held, rounds=1, per_round=3, budget=2, answers=3, steps=1,
                        backend="fake", oracle="model", question_facts=False)
    run_id, _, _ = start_or_resume(deps, cfg)
    run_improve(deps, run_id)
    from sqlalchemy import func, select

    from argtree.store import Annotator, Label

    with session_scope(url) as s:  # the model did answer, stored under its own name
        n = s.scalar(select(func.count()).select_from(Label).join(Annotator).where(Annotator.name == "oracle-model"))
    assert n > 0
    buf = buffer_records(deps, run_id)
    assert not [r for r in buf if r["argtree"]["kind"] == "fact"]
    data = [r for r in buf if r["argtree"]["kind"] == "expansion"]
    assert data
    with session_scope(url) as s:
        from argtree.store import get_model_version

        card = get_model_version(s, f"improve{run_id}-r1").meta
    assert card["provenance"]["self_labels"] is False and card["provenance"]["facts_from"] == {}
    dispose(url)

    url2 = sqlite_db(tmp_path, "b.db")
    deps2 = _deps(tmp_path / "b", url2, QualityTrainer({1: 0.3}))
    cfg2 = ImproveConfig(questions=train, heldout=held, rounds=1, per_round=3, budget=2, answers=3, steps=1,
                         backend="fake", oracle="model", self_labels=True, question_facts=False)
    run2, _, _ = start_or_resume(deps2, cfg2)
    run_improve(deps2, run2)
    facts = [r for r in buffer_records(deps2, run2) if r["argtree"]["kind"] == "fact"]
    assert facts and all(r["argtree"]["provenance"]["label_sources"] == ["model"] for r in facts)
    with session_scope(url2) as s:
        from argtree.store import get_model_version

        card2 = get_model_version(s, f"improve{run2}-r1").meta
    assert card2["provenance"]["self_labels"] is True and card2["provenance"]["facts_from"]["model"] == len(facts)
    dispose(url2)


def test_other_options_are_refused_by_name(tmp_path):
    url = sqlite_db(tmp_path)
    train, held = _files(tmp_path)
    deps = _deps(tmp_path, url, QualityTrainer({1: 0.3, 2: 0.4}))
    cfg = ImproveConfig(questions=train, heldout=held, rounds=1, per_round=3, budget=2, answers=2, steps=1,
                        backend="fake")
    run_id, _, _ = start_or_resume(deps, cfg)
    from dataclasses import replace

    from argtree.store.registry import current_default_version

    with session_scope(url) as s:  # starting a run moves no default; only a gate that promotes does
        assert current_default_version(s) is None

    with pytest.raises(ImproveError) as err:
        start_or_resume(deps, replace(cfg, per_round=4, steps=2))
    assert "--per-round" in str(err.value) and "--steps" in str(err.value) and "--budget" not in str(err.value)
    # More rounds continue the same run.
    again, resumed, merged = start_or_resume(deps, replace(cfg, rounds=2))
    assert again == run_id and resumed and merged.rounds == 2
    # --new abandons it.
    fresh, resumed3, _ = start_or_resume(deps, replace(cfg, per_round=4), fresh=True)
    assert fresh != run_id and not resumed3
    from argtree.store import get_loop_run

    with session_scope(url) as s:
        assert get_loop_run(s, run_id).status == "abandoned"
    # A finished run does not hold up a run with other options.
    run_improve(deps, fresh)
    other, resumed4, _ = start_or_resume(deps, replace(cfg, per_round=2))
    assert other not in (run_id, fresh) and not resumed4
    dispose(url)


def test_human_oracle_waits_for_people_and_their_answers_become_facts(tmp_path, monkeypatch):
    """--oracle human: the trees are in the web app's queue; the round waits (polling) until every asked
    premise has a person's answer. People answer during the wait (stood in for by the poll's sleep);
    their true/false answers become facts, an ill-posed one keeps its premise out of SFT."""
    import argtree.improve as improve
    from argtree.oracle import HumanQueueOracle
    from argtree.store import LoopTask, add_annotator, submit_label
    from argtree.store.testing import fast_password_hashing

    fast_password_hashing()
    url = sqlite_db(tmp_path)
    train, held = _files(tmp_path)
    with session_scope(url) as s:
        alice = add_annotator(s, "alice", "correct horse").id
    deps = _deps(tmp_path, url, QualityTrainer({1: 0.3}))
    deps.oracle_for = lambda kind, backend, questions: HumanQueueOracle()
    polls = []

    def people_answer(seconds):
        from sqlalchemy import select

        polls.append(seconds)
        with session_scope(url) as s:
            task = s.scalar(select(LoopTask).where(LoopTask.key == "r1:oracle"))
            items = [it for v in task.result["asked"].values() for it in v]
            for i, it in enumerate(items):
                if i == 0:
                    submit_label(s, alice, it["proposition_id"], ill_posed=True, request_id=f"a{i}")
                else:
                    submit_label(s, alice, it["proposition_id"], i % 2 == 0, request_id=f"a{i}")

    monkeypatch.setattr(improve.time, "sleep", people_answer)
    cfg = ImproveConfig(questions=train, heldout=held, rounds=1, per_round=2, budget=2, answers=2, steps=1,
                        backend="fake", oracle="human", poll_seconds=7.0, question_facts=False)
    run_id, _, _ = start_or_resume(deps, cfg)
    events = []
    run_improve(deps, run_id, progress=events.append)
    assert polls == [7.0] and [e["missing"] for e in events if e["event"] == "waiting"] == [4]
    buf = buffer_records(deps, run_id)
    facts = [r for r in buf if r["argtree"]["kind"] == "fact"]
    assert len(facts) == 3 and all(r["argtree"]["provenance"]["label_sources"] == ["human"] for r in facts)
    assert all(r["argtree"]["provenance"]["annotators"] == ["alice"] for r in facts)
    with session_scope(url) as s:
        from sqlalchemy import select

        task = s.scalar(select(LoopTask).where(LoopTask.key == "r1:oracle"))
        ill = [it["text"] for v in task.result["asked"].values() for it in v][0]
        assert all(it["answered"] for v in task.result["asked"].values() for it in v)
    sft = [r["messages"][-1]["content"] for r in buf if r["argtree"]["kind"] == "expansion"]
    assert not any(json.dumps(ill)[1:-1] in c for c in sft)
    dispose(url)


def test_question_facts_are_taught_as_dataset_truth():
    item = dict(_item({}), facts=["The tower was built in 1150.", "The bridge was built in 1890."])
    recs, stats = round_records([item], run_id=1, round_no=1, question_facts=True)
    facts = [r for r in recs if r["argtree"]["kind"] == "fact"]
    said = {r["messages"][-1]["content"]: [] for r in facts}
    for r in facts:
        said[r["messages"][-1]["content"]].append(r["messages"][-2]["content"])
        prov = r["argtree"]["provenance"]
        assert prov["source"] == "question facts" and prov["label_sources"] == ["dataset"] and prov["qid"] == "t1"
    # each gold fact says Yes; its rule-made negation says No
    assert len(said["Yes"]) == 2 and len(said["No"]) == 2
    assert any("was not built in 1150" in m for m in said["No"])
    assert stats["question-fact"] == 4 and stats["fact_sources"] == {"question facts": 4}
    # the gold facts are the root's premises on the gold answer's side (answer True: "for")
    exp = [r for r in recs if r["argtree"]["kind"] == "expansion"
           and r["argtree"]["provenance"].get("source") == "question facts"]
    assert len(exp) == 1 and exp[0]["argtree"]["provenance"]["stance"] == "for"
    assert exp[0]["messages"][1]["content"] == expansion_prompt(item["tree"]["q"].text, "for")
    taught = json.loads(exp[0]["messages"][-1]["content"])["premises"]
    assert [p["text"] for p in taught] == item["facts"]
    # off: nothing from the question's facts
    off, st_off = round_records([item], run_id=1, round_no=1, question_facts=False)
    assert not [r for r in off if r["argtree"]["provenance"].get("source") == "question facts"]
    assert st_off["question-fact"] == 0
    # a question whose answer is False puts them against
    recs_no, _ = round_records([dict(item, answer=False)], run_id=1, round_no=1, question_facts=True)
    assert [r["argtree"]["provenance"]["stance"] for r in recs_no
            if r["argtree"]["kind"] == "expansion" and r["argtree"]["provenance"].get("source")] == ["against"]


def test_a_synchronous_oracle_is_asked_down_the_ranking_until_k_answer():
    from argtree.improve import _ask_down
    from argtree.oracle import Query

    class Picky:
        synchronous = True

        def __init__(self):
            self.asked = []

        def answer(self, queries):
            self.asked.extend(q.text for q in queries)
            return [Answer(value=True) if "known" in q.text else None for q in queries]

    ranked = [Query(t, node=f"n{i}") for i, t in enumerate(["a", "known b", "c", "known d", "known e"])]
    o = Picky()
    asked, answers = _ask_down(o, ranked, 2)
    # abstentions cost nothing: it goes on down the VoI order until two are answered, and no further
    assert o.asked == ["a", "known b", "c", "known d"] and [q.text for q in asked] == o.asked
    assert [a is not None for a in answers] == [False, True, False, True]
    o2 = Picky()
    assert [q.text for q in _ask_down(o2, ranked[:3], 5)[0]] == ["a", "known b", "c"]  # ran out of premises

    class Person(Picky):
        synchronous = False

    o3 = Person()
    asked3, _ = _ask_down(o3, ranked, 2)
    assert [q.text for q in asked3] == ["a", "known b"]  # people are asked the top K only


def test_heldout_trees_are_stored_archived_and_never_trained_on(tmp_path):
    from argtree.store import get_tree, list_trees, next_question

    url = sqlite_db(tmp_path)
    train, held = _files(tmp_path, n_train=4, n_held=3)
    deps = _deps(tmp_path, url, QualityTrainer({1: 0.3}), evaluate=_evaluate_real)
    cfg = ImproveConfig(questions=train, heldout=held, rounds=1, per_round=2, budget=1, answers=1, steps=1,
                        backend="fake")
    run_id, _, _ = start_or_resume(deps, cfg)
    run_improve(deps, run_id)
    with session_scope(url) as s:
        trees = {t.id: get_tree(s, t.id) for t in list_trees(s, limit=100)}
    held_ids = {i for i, t in trees.items() if (t.meta or {}).get("improve", {}).get("heldout")}
    # round 0 (the start) and round 1 (the candidate): 3 held-out trees each, archived, with version and answer
    assert len(held_ids) == 6
    assert all(trees[i].status == "archived" for i in held_ids)
    assert sorted({trees[i].meta["improve"]["version"] for i in held_ids}) == sorted({"fake", f"improve{run_id}-r1"})
    train_ids = set(trees) - held_ids
    assert len(train_ids) == 2 and all(trees[i].status == "active" for i in train_ids)
    # no training record comes from a held-out tree
    buf = buffer_records(deps, run_id)
    assert buf and not {r["argtree"]["provenance"].get("tree_id") for r in buf} & held_ids
    # and the queue never serves a held-out tree's premise
    from argtree.store import add_annotator, submit_label

    with session_scope(url) as s:
        me = add_annotator(s, "tester", "password123").id
    served: set[int] = set()
    for _ in range(100):
        with session_scope(url) as s:
            q = next_question(s, me)
            if q is None:
                break
            served.update(q.tree_ids)
            submit_label(s, me, q.proposition_id, dont_know=True)
    assert served and served <= train_ids
    dispose(url)


def _evaluate_real(backend, questions, *, budget=1, seed=0, **kw):
    from argtree.questions import evaluate_questions

    return evaluate_questions(backend, questions, budget=budget, seed=seed)


def test_round_proposals_teach_the_proposer_with_provenance():
    from argtree.improve import round_proposals
    from argtree.propose import proposal_prompt
    from argtree.questions import Question

    qs = [Question("p1", "Did the Romans build aqueducts in Gaul?", True, extra={"term": "Aqueduct",
                                                                                  "description": "water bridge"}),
          Question("p2", "Could an aqueduct carry a river over a valley?", True,
                   extra={"term": "Aqueduct", "description": "water bridge"}),
          Question("p3", "Is not the harbour not closed?", False, extra={"term": "Harbour"}),  # two negations
          Question("p4", "Was the mill built before the harbour?", True)]                     # no term
    from argtree.questions import split_heldout

    assert not split_heldout(qs)[1]  # none of these ids is held out (else it would rightly be left out)
    recs = round_proposals(qs, run_id=3, round_no=2)
    assert len(recs) == 1
    rec = recs[0]
    assert rec["argtree"] == {"kind": "proposal", "provenance": {"run": 3, "round": 2, "term": "Aqueduct",
                                                                 "qids": ["p1", "p2"], "source": "question file"}}
    assert rec["messages"][0] == {"role": "user", "content": proposal_prompt("Aqueduct (water bridge)", 2)}
    assert json.loads(rec["messages"][-1]["content"]) == {"questions": [qs[0].question, qs[1].question]}
