"""Question proposals (issue 16): the guards on a table of good and bad questions, sampled retries,
``argtree loop --propose-only`` with the fake backend, StrategyQA training data for the proposer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from argtree.llm.base import Generation
from argtree.llm.fake import FakeBackend
from argtree.propose import (REASONS, ProposalGuard, is_yes_no, mentions_topic, negations, propose,
                             proposal_prompt)

# (topic, question, reason or None when accepted, holds one negation)
TABLE = [
    # accepted
    ("urban cycling", "Is urban cycling safe in winter?", None, False),
    ("urban cycling", "Do cyclists in Paris live longer than drivers?", None, False),   # cyclists ~ cycling
    ("cycling in a city", "Are bike lanes in cities cheaper to build than bus lanes?", None, False),  # city(ies)
    ("renewable energy", "Can renewable energy supply all of Germany's electricity by 2040?", None, False),
    ("renewable energy", "Did solar power produce more energy than coal in 2023?", None, False),
    ("renewable energy", "Isn't wind energy cheaper than nuclear power?", None, True),   # negated auxiliary
    ("renewable energy", "Has any country run on renewables for a whole year?", None, False),  # renewable(s)
    ("Hippopotamus (large semiaquatic mammal)", "Are hippos dangerous to humans?", None, False),  # hippo ~ hippopotamus
    ("the Panthéon", "Is the Pantheon older than the Eiffel Tower?", None, False),        # accents dropped
    ("urban cycling", "Should cyclists never ride on city pavements?", None, True),      # one negation: flagged
    ("urban cycling", "Could urban cycling cut traffic in Paris by half?", None, False),
    ("urban cycling", "Can a personal injury claim follow an urban cycling crash?", None, False),  # "personal"
    ("urban cycling", "Was urban cycling common in Amsterdam in 1950?", None, False),    # ends on a number
    ("urban cycling", "Do most urban cycling trips end within 5 km of home?", None, False),
    ("urban cycling", "Do cities know what urban cycling is?", None, False),             # may end on 'is'
    # rejected
    ("renewable energy", "What is the renewable energy?", "not-yes-no", False),
    ("renewable energy", "Renewable energy is not a renewable resource that is not being used to produce "
                         "electricity in the United States of America?", "not-yes-no", True),
    ("renewable energy", "Is renewable energy not a form of energy that is not being used to produce "
                         "electricity and is not?", "unfinished", True),
    ("renewable energy", "Is renewable energy not a form of energy that is never used for electricity?",
     "stacked-negation", True),
    ("renewable energy", "Doesn't renewable energy fail to not cut emissions?", "stacked-negation", True),
    ("renewable energy", "How much does renewable energy cost today?", "not-yes-no", False),
    ("renewable energy", "Renewable energy is cheap in most countries?", "not-yes-no", False),
    ("renewable energy", "Is renewable energy cheap? Is it clean?", "not-a-question", False),   # two questions
    ("renewable energy", "Is renewable energy cheap in Spain.", "not-a-question", False),       # no '?'
    ("renewable energy", "is renewable energy cheap in Spain?", "not-a-question", False),      # no capital
    ("renewable energy", 'Is "renewable energy" cheap in Spain?', "not-a-question", False),    # outside the schema
    ("renewable energy", "Is renewable energy?", "too-short", False),
    ("renewable energy", "Is renewable energy cheaper than the?", "unfinished", False),
    ("renewable energy", "Is energy energy energy energy energy energy energy energy?", "degenerate", False),
    ("renewable energy", "Is the Eiffel Tower taller than Big Ben?", "off-topic", False),
    ("renewable energy", "Is this the renewable energy?", "copies-topic", False),    # no word beyond the topic
    ("high-speed rail", "Is high-speed rail a good idea?", "evaluative", False),
    ("renewable energy", "Is renewable energy a viable solution to combat climate change?", "evaluative", False),
    ("rooftop solar panels", "Are rooftop solar panels worth it?", "evaluative", False),
    ("coral reef bleaching", "Is coral reef bleaching a serious issue?", "evaluative", False),
    ("microplastics", "Are microplastics in the ocean a problem?", "evaluative", False),
    # The meaning guards written from the first run's hand labels (vague, to-reader, no-content, repeats-word)
    ("lab-grown meat", "Is lab-grown meat a sustainable alternative to animal agriculture?", "evaluative", False),
    ("lab-grown meat", "Does lab-grown meat have a place in the future of farming?", "evaluative", False),
    ("sourdough baking", "Does sourdough baking require a lot of flour?", "vague", False),
    ("self-driving trucks", "Is there a way to make self-driving trucks cheaper?", "vague", False),
    ("self-driving trucks", "Are self-driving trucks becoming more affordable?", "vague", False),
    ("UNCTAD", "Would UNCTAD be able to end poverty in Chad?", "vague", False),
    ("urban cycling", "Are you ready to explore urban cycling?", "to-reader", False),
    ("urban cycling", "Can you please list urban cycling routes in Rome?", "to-reader", False),
    ("Cape Town", "Is this answer to a question about Cape Town?", "no-content", False),
    ("High Speed 1", "Is the answer about High Speed 1 a lie?", "no-content", False),
    ("Cape Town", "Is there a well-informed person who could answer this about Cape Town?", "no-content", False),
    ("microplastics", "Is there a scientific fact about microplastics?", "no-content", False),
    ("binary number", "Is there a checkable claim about the binary number?", "no-content", False),
    ("cultural hegemony", "Is the concept of cultural hegemony a topic of cultural hegemony?", "repeats-word", False),
    ("Chevrolet Cruze", "Did Chevrolet Cruze have a 2019 Chevrolet Cruze?", "repeats-word", False),
    ("coral reef bleaching", "Would a coral reef be extinct if the world had 1000 people?", "hypothetical", False),
    ("open-plan offices", "Can a person work in a 20-bedroom open-plan office?", "hypothetical", False),
    ("urban cycling", "Is urban cycling a popular activity in the United States?", "loose", False),
    ("open-plan offices", "Are open-plan offices in the United States the most expensive in the world?", "loose",
     False),
    ("carbon capture", "Can they run carbon capture plants in deserts?", "loose", False),
    # judgment (run 3): what no single fact settles, fitted on the third set's labels
    ("carbon taxes", "Are carbon taxes necessary to combat climate change?", "judgment", False),
    ("standing desks", "Are standing desks better for the environment?", "judgment", False),
    ("electric cars", "Are electric cars more expensive than gas cars?", "judgment", False),
    ("ocean acidification", "Is ocean acidification a major threat to marine life?", "judgment", False),
    ("cryptocurrency mining", "Is cryptocurrency mining a profitable business?", "judgment", False),
    # ... and what it lets through: "a major source", "a threat to" and other checkable facts
    ("lithium mining", "Is lithium mining a major source of electricity in the world?", None, False),
    ("invasive species", "Are invasive species a threat to the ecosystem?", None, False),
    ("electric cars", "Can electric cars run on gasoline?", None, False),
    # ... and what they let through: a fact, a comparison, a trivial but answerable question
    ("Chevrolet Cruze", "Was the Chevrolet Cruze sold in Australia as a Holden?", None, False),
    ("lab-grown meat", "Was lab-grown meat approved for sale in Singapore in 2020?", None, False),
    ("urban cycling", "Can you rent a bike in Paris for urban cycling?", None, False),   # 'you' in general
    ("urban cycling", "Do bike lanes reduce traffic deaths in Lyon?", "off-topic", False),
    ("Internet", "Is interstellar travel possible by 2100?", "off-topic", False),   # inter-, not internet
    # On the topic to a reader, but no word of it: the guard is literal (the topic or a word of it).
    ("renewable energy", "Would wind farms be profitable without subsidies?", "off-topic", False),
]


@pytest.mark.parametrize("topic,question,reason,negated", TABLE, ids=[f"{i}-{r or 'ok'}" for i, (_, _, r, _) in
                                                                       enumerate(TABLE)])
def test_guards_on_a_table_of_good_and_bad_questions(topic, question, reason, negated):
    v = ProposalGuard(topic).check(question)
    assert v.reason == reason, (question, v)
    assert v.ok == (reason is None)
    if reason is None:
        assert v.negation == negated and is_yes_no(question) and mentions_topic(question, topic)
    else:
        assert reason in REASONS
    assert (negations(question) > 0) == negated


def test_the_table_covers_every_reason_but_the_run_level_ones():
    seen = {r for _, _, r, _ in TABLE if r}
    # near-duplicate needs earlier questions, low-score a backend that scores: both tested below
    assert seen == set(REASONS) - {"near-duplicate", "low-score"}


def test_near_duplicates_of_earlier_questions_of_the_run_and_copies_of_the_topic():
    g = ProposalGuard("urban cycling", earlier=["Is urban cycling safe in winter?"])
    assert g.check("Is urban cycling safe during winter?").reason == "near-duplicate"  # Jaccard 4/5
    assert g.check("Is urban cycling safe?").reason == "near-duplicate"               # 3/4
    assert g.check("Is urban cycling faster than driving in Paris?").ok               # 2/7
    g.accept("Is urban cycling faster than driving in Paris?")
    assert g.check("Is urban cycling faster than driving in Paris at rush hour?").reason == "near-duplicate"
    assert ProposalGuard("Is coffee bad for your heart?").check("Is coffee bad for your heart?").reason == \
        "copies-topic"
    # Spaces are collapsed before anything is judged; the verdict keeps the collapsed text.
    v = ProposalGuard("urban cycling").check("Is  urban cycling   safe in winter?")
    assert v.ok and v.text == "Is urban cycling safe in winter?"


def test_negations_and_yes_no_starts():
    assert negations("Is it not true that nobody cannot swim?") == 3
    assert negations("Isn't it cheap?") == negations("Can't it fly?") == negations("Won\u2019t it rain?") == 1
    assert negations("Is snow white in Norway?") == 0
    assert negations("Is a knot a nautical unit?") == 0  # 'knot' is no 'not'
    for q in ("Is it?", "Are they?", "Does it?", "Did it?", "Can it?", "Could it?", "Would it?", "Will it?",
              "Was it?", "Were they?", "Has it?", "Have they?", "Had it?", "Should it?", "Do they?",
              "Isn't it?", "Won't it?", "Can't it?"):
        assert is_yes_no(q), q
    for q in ("What is it?", "Why is it?", "It is?", "Island is big?", "Is it? Yes?", "Is it", "is it?",
              "Willow trees grow fast?"):
        assert not is_yes_no(q), q


def _answer(*questions) -> str:
    return json.dumps({"questions": list(questions)})


class Recording(FakeBackend):
    def generate_json(self, prompts, schema, **kw):
        self.asked = getattr(self, "asked", []) + [(list(prompts), schema, kw)]
        return super().generate_json(prompts, schema, **kw)


def test_rejected_proposals_are_recorded_and_retried_with_sampling_and_new_seeds():
    from argtree.loop import question_bound, question_schema

    be = Recording([
        _answer("Is urban cycling safe in winter?", "What is urban cycling?",
                "Is urban cycling not never safe in winter?"),
        _answer("Is urban cycling safe during winter?", "Do bike lanes cut deaths in Lyon?"),
        _answer("Can urban cycling cut traffic in Paris by half?"),
    ])
    out = propose(be, "urban cycling", 3, seed=5, retries=2)
    assert out.questions == ["Is urban cycling safe in winter?", "Can urban cycling cut traffic in Paris by half?"]
    assert [(v.text, v.reason) for v in out.rejected] == [
        ("What is urban cycling?", "not-yes-no"), ("Is urban cycling not never safe in winter?", "stacked-negation"),
        ("Is urban cycling safe during winter?", "near-duplicate"), ("Do bike lanes cut deaths in Lyon?", "off-topic")]
    assert out.attempts == 3
    (p0, s0, k0), (p1, s1, k1), (p2, s2, k2) = be.asked
    # Greedy first; then sampling with a new seed each time, asking for the questions still missing.
    assert k0["temperature"] == 0 and k1["temperature"] > 0 and k2["temperature"] > 0
    assert len({k0["seed"], k1["seed"], k2["seed"]}) == 3 and k0["seed"] == 5
    assert p0 == [proposal_prompt("urban cycling", 3)] and s0 == question_schema(3)
    assert p1 == [proposal_prompt("urban cycling", 2)] and s1 == question_schema(2)
    assert k1["max_new_tokens"] == question_bound(2) and p2 == [proposal_prompt("urban cycling", 2)]
    assert out.to_json()["rejected"][0] == {"question": "What is urban cycling?", "negation": False,
                                            "reason": "not-yes-no"}


def test_no_retry_once_enough_passed_and_broken_answers_are_counted():
    be = Recording([_answer("Is urban cycling safe in winter?", "Is urban cycling faster than driving?")])
    out = propose(be, "urban cycling", 2, retries=3)
    assert out.attempts == 1 and len(out.questions) == 2 and not out.rejected
    out = propose(FakeBackend(["not json", Generation("", error="boom"), '{"questions": "one string?"}']),
                  "urban cycling", 2, retries=2)
    assert out.questions == [] and out.attempts == 3 and len(out.errors) == 3
    out = propose(FakeBackend([_answer(7, "Is urban cycling safe in winter?")]), "urban cycling", 1, retries=0)
    assert out.questions == ["Is urban cycling safe in winter?"] and out.rejected[0].reason == "not-a-question"


class Scoring(Recording):
    """A fake that also scores its candidates (as LocalBackend.answer_logprob): the score of a question is
    looked up in ``scores`` (by the question's text), else -5."""

    def __init__(self, script, scores, **kw):
        super().__init__(script, **kw)
        self.scores, self.scored = scores, []

    def answer_logprob(self, prompts, answers, *, prefix="", system=None):
        qs = [json.loads('"' + a[:-len('"]}')] + '"') for a in answers]
        self.scored.append((list(prompts), qs, prefix))
        return [self.scores.get(q, -5.0) for q in qs]


def test_a_scoring_backend_over_generates_and_takes_the_best_scored_first():
    from argtree.loop import question_schema
    from argtree.propose import ANSWER_PREFIX, SAMPLE_TEMPERATURE, SCORE_FLOOR

    greedy = _answer("Is urban cycling safe in winter?", "Is urban cycling a sport played on streets?")
    samples = [_answer("Does urban cycling cut commuting costs in Paris?", "What is urban cycling?"),
               _answer("Is urban cycling safe in winter?"),                      # the greedy one again: judged once
               _answer("Is urban cycling safe during winter?"),                  # near-duplicate of a better one
               _answer("Are urban cycling helmets compulsory in Australia?")]
    scores = {"Is urban cycling safe in winter?": -9.0, "Is urban cycling a sport played on streets?": -25.0,
              "Does urban cycling cut commuting costs in Paris?": -6.0,
              "Is urban cycling safe during winter?": -8.0,
              "Are urban cycling helmets compulsory in Australia?": -12.0}
    be = Scoring([greedy, *samples], scores)
    out = propose(be, "urban cycling", 2, seed=3, retries=2)
    # Taken best first: -6, then -8 ("safe during winter"), which makes -9 ("safe in winter") its near-duplicate;
    # -12 is left over once n were taken, and -25 is under the floor.
    assert out.questions == ["Does urban cycling cut commuting costs in Paris?", "Is urban cycling safe during winter?"]
    assert [v.score for v in out.accepted] == [-6.0, -8.0]
    assert [(v.text, v.reason) for v in out.rejected] == [
        ("What is urban cycling?", "not-yes-no"),
        ("Is urban cycling safe in winter?", "near-duplicate"),
        ("Is urban cycling a sport played on streets?", "low-score")]
    assert [v.text for v in out.unused] == ["Are urban cycling helmets compulsory in Australia?"]
    assert out.attempts == 1 and SCORE_FLOOR > -25.0
    # One greedy call, then the samples in one batched call with the same prompt asking for n.
    (p0, s0, k0), (p1, s1, k1) = be.asked
    assert p0 == [proposal_prompt("urban cycling", 2)] and k0["temperature"] == 0 and k0["seed"] == 3
    assert p1 == [proposal_prompt("urban cycling", 2)] * 4 and s1 == question_schema(2)
    assert k1["temperature"] == SAMPLE_TEMPERATURE and k1["seed"] != 3
    # Each candidate the guards pass is scored once, alone, as the whole answer to a one-question prompt.
    [(sp, sq, prefix)] = be.scored
    assert sp == [proposal_prompt("urban cycling", 1)] * 5 and prefix == ANSWER_PREFIX
    assert sorted(sq) == sorted(scores)
    j = out.to_json()
    assert j["accepted"][0] == {"question": "Does urban cycling cut commuting costs in Paris?", "negation": False,
                                "score": -6.0}
    assert j["unused"][0]["score"] == -12.0 and j["rejected"][-1]["reason"] == "low-score"


def test_selection_retries_when_too_few_pass_and_can_be_switched_off():
    # Everything the first call writes scores under the floor: the retry (sampled, batched) supplies them.
    low = _answer("Is urban cycling a sport played on streets?")
    be = Scoring([low] * 5 + [_answer("Is urban cycling legal on sidewalks in Tokyo?")] + [low] * 4,
                 {"Is urban cycling a sport played on streets?": -30.0})
    out = propose(be, "urban cycling", 1, seed=0, retries=1, samples=4)
    assert out.attempts == 2 and out.questions == ["Is urban cycling legal on sidewalks in Tokyo?"]
    assert [v.reason for v in out.rejected] == ["low-score"]        # judged once, though written five times
    assert [k["temperature"] > 0 for _, _, k in be.asked] == [False, True, True, True]
    # samples=0 (or a backend without answer_logprob): the answers in the order written, nothing scored.
    be = Scoring([_answer("Is urban cycling a sport played on streets?", "Is urban cycling legal in Tokyo?")],
                 {"Is urban cycling a sport played on streets?": -30.0})
    out = propose(be, "urban cycling", 1, samples=0)
    assert out.questions == ["Is urban cycling a sport played on streets?"] and not be.scored
    assert out.accepted[0].score is None and "score" not in out.to_json()["accepted"][0]
    # floor=None: ranked, never rejected for the score.
    be = Scoring([_answer("Is urban cycling a sport played on streets?")] * 2,
                 {"Is urban cycling a sport played on streets?": -30.0})
    out = propose(be, "urban cycling", 1, samples=1, floor=None)
    assert out.questions == ["Is urban cycling a sport played on streets?"] and out.accepted[0].score == -30.0


def test_the_fake_backend_retries_to_n_distinct_questions_on_the_topic():
    from argtree.loop import QUESTION_PATTERN, propose_questions

    seen = []
    # (the fake writes some questions the guards reject: "Would better ...", "... decide the future of ...")
    qs = propose_questions(FakeBackend(), "urban cycling", 4, seed=1, retries=3, report=seen.append)
    assert len(qs) == 4 and len(set(qs)) == 4
    assert all(re.match(QUESTION_PATTERN, q) and "urban cycling" in q for q in qs)
    assert seen[0].questions == qs


# -- argtree loop --propose-only ----------------------------------------------------------

def _cli(*args, home):
    env = dict(os.environ, ARGTREE_HOME=str(home), PYTHONIOENCODING="utf-8")
    env.pop("ARGTREE_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "argtree.cli", "loop", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_propose_only_prints_proposals_and_touches_no_store(tmp_path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([
        _answer("Is urban cycling safe in winter?", "What is urban cycling?"),
        _answer("Does urban cycling cut commuting costs in Paris?"),
        _answer("Is renewable energy cheaper than coal?", "Is renewable energy cheap? Or not?"),
    ]))
    db = tmp_path / "never.db"
    res = _cli("--backend", "fake", "--model", str(script), "--topic", "urban cycling", "--topic",
               "renewable energy", "--propose-only", "--n", "2", "--retries", "1", "--json",
               "--database", f"sqlite:///{db}", home=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [t["topic"] for t in out["topics"]] == ["urban cycling", "renewable energy"]
    cyc, ren = out["topics"]
    assert [a["question"] for a in cyc["accepted"]] == ["Is urban cycling safe in winter?",
                                                        "Does urban cycling cut commuting costs in Paris?"]
    assert cyc["rejected"] == [{"question": "What is urban cycling?", "negation": False, "reason": "not-yes-no"}]
    assert cyc["attempts"] == 2
    # The script ran out for the second topic's retry: the fake answered it like a model would.
    assert ren["accepted"][0]["question"] == "Is renewable energy cheaper than coal?"
    assert ren["rejected"][0]["reason"] == "not-a-question" and ren["attempts"] == 2
    # What the fake samples for the retry depends on the retry temperature: whatever it wrote was judged.
    guard = ProposalGuard("renewable energy")
    for a in ren["accepted"]:
        assert guard.check(a["question"]).ok
        guard.accept(a["question"])
    assert 1 <= len(ren["accepted"]) <= 2 and all(r["reason"] in REASONS for r in ren["rejected"])
    assert out["summary"] == {"accepted": 2 + len(ren["accepted"]), "rejected": 1 + len(ren["rejected"]),
                              "negation": 0}
    assert out["proposer"] == "fake"  # who proposed (the fake backend proposes itself: no proposer adapter)
    # Nothing stored, no database created, not even the default one under ARGTREE_HOME.
    assert not db.exists() and not list(tmp_path.glob("**/*.db"))

    # The table form says the same.
    script.write_text(json.dumps([_answer("Is urban cycling safe in winter?", "What is urban cycling?")]))
    res = _cli("--backend", "fake", "--model", str(script), "--topic", "urban cycling", "--propose-only",
               "--n", "1", home=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Is urban cycling safe in winter?" in res.stdout
    assert "What is urban cycling?" in res.stdout and "not-yes-no" in res.stdout
    assert "proposed by fake" in res.stdout
    assert not list(tmp_path.glob("**/*.db"))


def test_propose_only_needs_a_topic(tmp_path):
    res = _cli("--backend", "fake", "--question", "Is it?", "--propose-only", home=tmp_path)
    assert res.returncode == 2 and "--propose-only" in res.stderr and "Traceback" not in res.stderr


# -- training data for the proposer from StrategyQA ------------------------------------------------

def _strategyqa_like(n_terms=60, per_term=3):
    """StrategyQA-shaped question records: several questions per term, one with two negations, one off
    the topic, one with a quote (outside the schema)."""
    from argtree.questions import parse_questions

    rows = []
    for t in range(n_terms):
        term = f"Gadget{t}"
        for j in range(per_term):
            rows.append({"qid": f"q{t}-{j}", "term": term, "description": f"a made-up device number {t}",
                         "question": f"Is Gadget{t} sold in {('Peru', 'Chile', 'Kenya')[j]}?", "answer": bool(j % 2),
                         "facts": []})
    rows[0]["question"] = "Is Gadget0 not never used in any country today?"
    rows[1]["question"] = "Is the Eiffel Tower taller than Big Ben?"
    rows[2]["question"] = 'Is Gadget0 called "the box" in Spain?'
    return parse_questions(json.dumps(rows))


def _check_records(records, questions):
    import jsonschema

    from argtree.loop import question_schema
    from argtree.questions import split_heldout

    _, held = split_heldout(questions)
    held_texts = {q.question for q in held}
    assert held_texts  # the check below could fail
    pat = re.compile(r"^Topic: (.*)\nWrite (\d) different yes/no questions")
    for rec in records:
        user, assistant = rec["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        answer = json.loads(assistant["content"])
        k = len(answer["questions"])
        jsonschema.validate(answer, question_schema(k))
        m = pat.match(user["content"])
        assert m and int(m.group(2)) == k and user["content"] == proposal_prompt(m.group(1), k)
        assert assistant["content"] == json.dumps(answer)  # one line, ", " and ": " as the decoder writes
        assert not set(answer["questions"]) & held_texts
    return [q for rec in records for q in json.loads(rec["messages"][1]["content"])["questions"]]


def test_proposal_records_hold_no_heldout_question_and_fit_the_schema():
    from argtree.propose import proposal_records, proposal_topic
    from argtree.questions import split_heldout

    questions = _strategyqa_like()
    records, counts = proposal_records(questions)
    used = _check_records(records, questions)
    train, held = split_heldout(questions)
    assert counts["train"] == len(train) and counts["heldout"] == len(held) > 0
    assert counts["stacked-negation"] + counts["off-topic"] + counts["pattern"] == \
        sum(q.qid in {"q0-0", "q0-1", "q0-2"} for q in train)
    assert counts["used"] == len(used) == len(train) - (counts["stacked-negation"] + counts["off-topic"] + counts["pattern"])
    assert counts["near-duplicate"] == counts["same_as_heldout"] == 0
    # Several questions per prompt where a term has several: the train questions of a term share one record.
    by_term = {}
    for q in train:
        by_term.setdefault(q.extra["term"], []).append(q.question)
    for rec in records:
        qs = json.loads(rec["messages"][1]["content"])["questions"]
        assert rec["messages"][0]["content"].startswith("Topic: " + proposal_topic(rec["term"], None) + " (")
        assert qs == [q for q in by_term[rec["term"]] if q in qs]
    assert max(len(json.loads(r["messages"][1]["content"])["questions"]) for r in records) == 3
    assert proposal_records(questions) == (records, counts)  # deterministic
    # At most max_per_prompt questions per record: a term with more is cut into several records.
    small, _ = proposal_records(questions, max_per_prompt=2)
    assert max(len(json.loads(r["messages"][1]["content"])["questions"]) for r in small) == 2
    assert sorted(_check_records(small, questions)) == sorted(used)
    # A held-out question's text under another id (StrategyQA has such pairs) stays out of training too.
    from dataclasses import replace

    copies = [replace(q, qid=q.qid + "-copy") for q in held]
    assert split_heldout(copies)[0]  # some copies land in the train split ...
    records2, counts2 = proposal_records(questions + copies)
    assert counts2["same_as_heldout"] == len(split_heldout(copies)[0])
    assert _check_records(records2, questions + copies) == used  # ... and none is taught


def test_proposal_records_from_strategyqa_itself(tmp_path):
    from argtree.questions import load_questions, split_heldout
    from argtree.strategyqa import default_path

    if not os.path.exists(default_path()):
        pytest.skip(f"StrategyQA not found at {default_path()}")
    from argtree.propose import heldout_terms, proposal_records

    questions = load_questions(default_path())
    records, counts = proposal_records(questions)
    used = _check_records(records, questions)
    assert counts["used"] == len(used) > 1500 and counts["heldout"] > 250
    assert any(len(json.loads(r["messages"][1]["content"])["questions"]) > 1 for r in records)
    # Held-out terms name no training record, and every question of theirs is held out.
    train, held = split_heldout(questions)
    terms = {t for t, _ in heldout_terms(questions)}
    assert terms and not terms & {r["term"] for r in records}
    assert not terms & {q.extra["term"] for q in train}
    # finetune reads them as conversational records.
    from argtree.finetune import sft_records

    fmt, rows = sft_records(records[:20], "proposals")
    assert fmt == "conversational" and len(rows) == 20
    # strict (run 3): the proposer-only guards reject StrategyQA's questions too; what is left is the same
    # records' questions less the "Would ..." and "popular/many ..." ones.
    strict, sc = proposal_records(questions, strict=True)
    kept = _check_records(strict, questions)
    assert sc["hypothetical"] > 100 and sc["loose"] > 10 and counts["hypothetical"] == counts["loose"] == 0
    assert set(kept) < set(used) and not any(q.startswith("Would ") for q in kept)
    assert sum(q.startswith("Would ") for q in used) > 100


# -- the real model ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_backend():
    from argtree.llm.local import LocalBackend

    return LocalBackend(None)  # the default model (bundled SmolLM2-135M + the shipped adapter)


@pytest.mark.model
@pytest.mark.slow
def test_real_model_proposals_are_guarded_and_retried(local_backend):
    """The default model's proposals for a topic: every answer schema-valid and not cut off, every question
    it wrote either accepted (and then yes/no, on the topic, at most one negation, no near-duplicate) or
    rejected with a reason; retries sample with new seeds and ask only for what is missing."""
    from argtree.loop import QUESTION_PATTERN, question_bound
    from argtree.expand import similarity

    class Recording:
        def __init__(self, backend):
            self.backend, self.asked = backend, []
            self.model_version = backend.model_version

        def generate_json(self, prompts, schema, **kw):
            gens = self.backend.generate_json(prompts, schema, **kw)
            self.asked.append((kw, gens))
            return gens

    be = Recording(local_backend)
    out = propose(be, "renewable energy", 3, seed=0, retries=2)
    assert out.attempts == len(be.asked) and 1 <= out.attempts <= 3
    written = 0
    for a, (kw, (g,)) in enumerate(be.asked):
        assert g.ok and not g.truncated, g
        items = json.loads(g.text)["questions"]
        assert all(re.match(QUESTION_PATTERN, q) for q in items), items
        want = kw["max_new_tokens"]
        assert want in {question_bound(k) for k in (1, 2, 3)} and g.tokens < want
        assert (kw["temperature"] == 0) == (a == 0)
        written += len(items)
    assert not out.errors
    # Every question written was judged: accepted (up to 3) or rejected with a reason.
    assert len(out.accepted) + len(out.rejected) == written and len(out.accepted) <= 3
    assert all(v.reason in REASONS for v in out.rejected)
    for i, v in enumerate(out.accepted):
        assert is_yes_no(v.text) and negations(v.text) <= 1 and mentions_topic(v.text, "renewable energy"), v
        assert all(similarity(v.text, w.text) < 0.7 for w in out.accepted[:i])
    if len(out.accepted) < 3:
        assert out.attempts == 3  # it kept trying
    print(f"\naccepted {out.questions}\nrejected {[(v.text, v.reason) for v in out.rejected]}")


def test_loop_n_sets_the_questions_proposed_per_topic_and_records_rejections(tmp_path):
    """Without --propose-only, --n is the loop's questions per topic; the propose task keeps the rejections."""
    pytest.importorskip("sqlalchemy")
    from sqlalchemy import select

    from argtree.store import LoopTask, session_scope
    from argtree.store.testing import dispose, sqlite_db

    url = sqlite_db(tmp_path)
    script = tmp_path / "script.json"
    script.write_text(json.dumps([_answer("Is urban cycling safe in winter?", "What is urban cycling?")]))
    res = _cli("--backend", "fake", "--model", str(script), "--topic", "urban cycling", "--n", "2",
               "--oracle", "model", "--budget", "1", "--json", "--database", url, home=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    with session_scope(url) as s:
        tasks = list(s.scalars(select(LoopTask).where(LoopTask.run_id == out["run_id"])))
        (prop,) = [t for t in tasks if t.kind == "propose"]
        assert prop.result["new"] == 2 and prop.result["questions"][0] == "Is urban cycling safe in winter?"
        assert prop.result["rejected"] == [{"question": "What is urban cycling?", "negation": False,
                                            "reason": "not-yes-no"}]
        assert prop.result["negation"] == []
        assert sorted(t.payload["question"] for t in tasks if t.kind == "question") == sorted(prop.result["questions"])
    dispose(url)


@pytest.mark.model
@pytest.mark.slow
def test_the_shipped_proposer_proposes_guarded_questions():
    """The shipped proposer adapter (what `argtree loop` proposes with by default): every accepted proposal
    passes the guards, none repeats another, and some topic gets a question."""
    from argtree.llm.local import LocalBackend, shipped_proposer
    from argtree.propose import SCORE_FLOOR

    if shipped_proposer() is None:
        pytest.fail("argtree/adapters/proposer-lora is not shipped")
    be = LocalBackend("proposer")
    assert be.model_version == "bundled+proposer-lora"
    accepted = {}
    # A topic may get nothing that passes: before over-generation, "renewable energy" got nothing (its greedy
    # answer is "Is renewable energy a viable source of energy ...?" and the retries sampled close to it); with
    # it, it gets questions.  So only "some topic" is required, whatever the sampler does on another machine.
    for topic in ("renewable energy", "microplastics", "Leipzig (Place in Saxony, Germany)"):
        out = propose(be, topic, 3, seed=0, retries=2)
        guard = ProposalGuard(topic)
        for v in out.accepted:
            assert guard.check(v.text).ok, (topic, v)
            guard.accept(v.text)
        assert all(v.reason in REASONS for v in out.rejected) and out.attempts <= 3
        assert out.accepted or out.rejected   # something was written and judged
        # The local backend scores: it over-generated, and what it took is scored at or above the floor, best first.
        assert all(v.score is not None and v.score >= SCORE_FLOOR for v in out.accepted)
        if out.attempts == 1:
            assert [v.score for v in out.accepted] == sorted((v.score for v in out.accepted), reverse=True)
            assert all(u.score <= out.accepted[-1].score for u in out.unused)
        accepted[topic] = out.questions
        print(f"\n{topic}: accepted {out.questions}\nrejected {[(v.text, v.reason) for v in out.rejected]}")
    assert any(accepted.values()), accepted


def test_fact_questions_move_the_auxiliary_to_the_front():
    from argtree.propose import fact_question, lowercase_words

    lower = lowercase_words(["Most people ride a dandelion.", "Many dandelions grow; there are some.",
                             "We saw Memphis and Memphis again."])
    assert fact_question("Rede Globo is a Brazilian television network.") == \
        "Is Rede Globo a Brazilian television network?"
    assert fact_question("The official language of Brazil is Portuguese.") == "Is the official language of Brazil Portuguese?"
    assert fact_question("Shrimp have been found to contain microplastics.") == \
        "Have Shrimp been found to contain microplastics?"   # not known as a lower-case word: kept as written
    assert fact_question("Dandelions are plants.", lower) == "Are dandelions plants?"      # lower case by use
    assert fact_question("Memphis is a city in Tennessee.", lower) == "Is Memphis a city in Tennessee?"
    assert fact_question("There are 168 hours in a week.") == "Are there 168 hours in a week?"
    assert fact_question("Sean Connery was born in Scotland.") == "Was Sean Connery born in Scotland?"
    # None: no auxiliary, a negation, has as the main verb, a fronted phrase, a long subject with a comma
    assert fact_question("Grey seals hear better underwater.") is None
    assert fact_question("The Police were not law enforcement officers.") is None
    assert fact_question("Leipzig has a zoo.") is None
    assert fact_question("In South Asia the plant is called brinjal.") is None
    assert fact_question("Paris, the capital, is big.") is None


def test_proposal_records_with_bare_fact_subjects():
    """Run 4: ``subjects`` adds records whose topic is a fact's subject alone (a bare noun phrase, no
    description, as a user types a topic) and whose answer is that subject's fact questions; a subject that is a
    held-out term, or one of ``exclude``, makes none."""
    from argtree.propose import fact_subject, proposal_records, topic_key
    from argtree.questions import parse_questions, split_heldout

    assert fact_subject("The Eiffel Tower is in Paris.") == "Eiffel Tower"
    assert fact_subject("Olive oil is made from olives.", frozenset({"olive"})) == "olive oil"
    for fact in ("It is a device.", "Menthol itself is addictive.", "Will Ferrell was born in 1967.",
                 "The first tall office building in a big city was in Chicago.", "Leipzig has a zoo.",
                 "The A380 (a plane) is big."):
        assert fact_subject(fact) is None, fact
    assert topic_key("The Police") == topic_key("police") == "police" and topic_key("The") == "the"

    rows = [{"qid": f"s{t}", "term": f"Gadget{t}", "description": f"a made-up device number {t}",
             "question": f"Is Gadget{t} sold in Peru?", "answer": True, "facts": []} for t in range(40)]
    train, held = split_heldout(parse_questions(json.dumps(rows)))
    assert held and len(train) >= 2
    h, i, j = "Copper kettles", int(train[0].qid[1:]), int(train[1].qid[1:])
    rows[int(held[0].qid[1:])]["term"] = h   # a held-out term (its only question is held out)
    rows[i]["facts"] = ["Tap water is treated with chlorine.", "Tap water can contain fluoride.",
                        f"{h} is made of copper.", "Plastic bags are made from polyethylene.", "It is a device."]
    rows[j]["facts"] = ["Tap water was chlorinated in 1908.", "Tap water can contain fluoride."]
    questions = parse_questions(json.dumps(rows))
    plain, pc = proposal_records(questions)
    records, counts = proposal_records(questions, subjects=True, exclude=["plastic bags"])
    assert records[:len(plain)] == plain   # the term records as before, the subject records after them
    added = records[len(plain):]
    _check_records(records, questions)
    got = {r["term"]: json.loads(r["messages"][1]["content"])["questions"] for r in added}
    # "tap" is nowhere written in lower case here, so it stays as the fact writes it (as fact_question does)
    assert got == {"Tap water": ["Is Tap water treated with chlorine?", "Can Tap water contain fluoride?",
                                 "Was Tap water chlorinated in 1908?"]}   # the repeated fact: a near-duplicate
    rec = added[0]
    assert rec["source"] == "fact-subject" and rec["messages"][0]["content"] == proposal_prompt("Tap water", 3)
    assert " (" not in rec["messages"][0]["content"].split("\n")[0]   # no description: a bare topic
    assert counts["subject_heldout"] == 1 and counts["subject_excluded"] == 1 and counts["near-duplicate"] == 1
    assert counts["subject_records"] == 1 and counts["from_subjects"] == 3 and counts["records"] == len(records)
    assert not any(topic_key(r["term"]) == topic_key(h) for r in records)   # a held-out term is no topic
    assert proposal_records(questions, subjects=True, exclude=["plastic bags"]) == (records, counts)


def test_proposal_records_from_hand_labeled_loop_proposals():
    """Run 5: ``labeled`` turns the loop's proposals hand-labeled answerable on our topic sets into records in the
    loop's prompt for the typed topic, with provenance; held-out terms' rows, unanswerable rows, a held-out
    question's text and what the guards reject are left out, and the other records do not change."""
    from argtree.propose import proposal_records
    from argtree.questions import split_heldout

    questions = _strategyqa_like()
    _, held = split_heldout(questions)
    plain, pc = proposal_records(questions)
    rows = [
        {"set": "topics", "topic": "tap water", "question": "Is tap water treated with chlorine?", "answerable": True,
         "model": "loop-a", "file": "labels5.jsonl"},
        {"set": "topics", "topic": "tap water", "question": "Is tap water safe?", "answerable": False,
         "model": "loop-a", "file": "labels5.jsonl"},
        {"set": "topics", "topic": "tap water", "question": "Can tap water contain fluoride?", "answerable": True,
         "model": "loop-b", "file": "labels3.jsonl"},
        {"set": "topics", "topic": "tap water", "question": "Is tap water treated with chlorine?", "answerable": True,
         "model": "loop-b", "file": "labels5.jsonl"},                       # the same pair for another loop
        {"set": "heldout", "topic": held[0].extra["term"] + " (a made-up device)", "answerable": True,
         "question": f"Is {held[0].extra['term']} made of copper?", "model": "loop-a", "file": "labels5.jsonl"},
        {"set": "topics", "topic": "tap water", "question": "Is tap water not never drunk?", "answerable": True,
         "model": "loop-a", "file": "labels.jsonl"},                        # the guards: stacked negation
        {"set": "topics", "topic": "Gadgets", "question": held[0].question, "answerable": True,
         "model": "loop-a", "file": "labels.jsonl"},                        # a held-out question's text
        {"set": "topics", "topic": "urban cycling", "question": "Is urban cycling banned in Amsterdam?",
         "answerable": True, "model": "loop-c", "file": "labels2.jsonl"},
    ]
    records, counts = proposal_records(questions, labeled=rows)
    assert records[:len(plain)] == plain and {k: v for k, v in counts.items() if k in pc and k not in
                                              ("records", "used", "stacked-negation", "same_as_heldout")} == \
        {k: v for k, v in pc.items() if k not in ("records", "used", "stacked-negation", "same_as_heldout")}
    added = records[len(plain):]
    _check_records(records, questions)
    got = {r["term"]: json.loads(r["messages"][1]["content"])["questions"] for r in added}
    assert got == {"tap water": ["Is tap water treated with chlorine?", "Can tap water contain fluoride?"],
                   "urban cycling": ["Is urban cycling banned in Amsterdam?"]}
    tap = added[0]
    assert tap["messages"][0]["content"] == proposal_prompt("tap water", 2)   # the loop's prompt, no description
    assert tap["source"] == "labeled"
    assert tap["argtree"] == {"kind": "proposal", "provenance": {
        "source": "hand-label", "label": "hand label answerable", "topic": "tap water",
        "files": ["labels3.jsonl", "labels5.jsonl"], "models": ["loop-a", "loop-b"]}}
    assert not any(held[0].extra["term"] in r["messages"][0]["content"] for r in added)   # held-out rows: none
    assert counts["labeled_heldout_set"] == 1 and counts["labeled_unanswerable"] == 1 and counts["labeled_repeat"] == 1
    assert counts["stacked-negation"] == pc["stacked-negation"] + 1 and counts["same_as_heldout"] == 1
    assert counts["labeled_records"] == 2 and counts["from_labeled"] == 3 and counts["records"] == len(records)
    assert proposal_records(questions, labeled=rows) == (records, counts)   # deterministic
    assert proposal_records(questions, labeled=[]) == (plain, pc)           # nothing labeled: as before


def test_export_described_repeat_weights_up_only_the_term_with_description_records():
    """Run 7: ``export --described-repeat K`` writes each StrategyQA record whose topic is "term (description)" K
    times (the held-out half's form) and no other (bare term, fact subject, labeled); K = 1 leaves the export as
    it was."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from proposal_quality import described, repeat_described

    from argtree.propose import proposal_records

    questions = _strategyqa_like()
    rows = [{"set": "topics", "topic": "tap water", "question": "Is tap water treated with chlorine?",
             "answerable": True, "model": "loop-a", "file": "labels7.jsonl"}]
    records, _ = proposal_records(questions, bare=True, labeled=rows)
    kinds = [("desc" if " (a made-up device" in r["messages"][0]["content"].split("\n")[0] else "other")
             for r in records]
    assert "desc" in kinds and kinds.count("other") > 1   # bare-term records and the labeled one
    assert [described(r) for r in records] == [k == "desc" for k in kinds]
    assert repeat_described(records, 1) == records and repeat_described(records, 0) == records
    twice = repeat_described(records, 2)
    assert len(twice) == len(records) + kinds.count("desc")
    assert [r for r in twice if not described(r)] == [r for r in records if not described(r)]
    assert [r for r in twice if described(r)] == [r for r in records if described(r) for _ in range(2)]


def test_blind_pool_hides_models_and_unpool_gives_every_model_its_labels(tmp_path):
    """Run 7: ``pool`` writes each accepted (topic, question) once, with no model name, in a seeded order;
    ``unpool`` refuses an unlabeled sheet and gives each loop's accepted questions the sheet's label;
    ``agreement`` counts agreeing keys and computes Cohen's kappa."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import argparse

    from proposal_quality import agreement, cmd_pool, cmd_unpool

    def loop(name, questions):
        path = tmp_path / f"{name}.loop.jsonl"
        rows = [{"model": name, "set": "topics", "topic": "kettles", "question": q, "i": i} for i, q in enumerate(questions)]
        rows.append({"model": name, "set": "topics", "topic": "kettles", "question": "Kettle?", "rejected": "yes/no"})
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    a = loop("model-a", ["Do kettles boil water?", "Are kettles blue?"])
    b = loop("model-b", ["Do kettles boil water?", "Can kettles fly?"])
    sheet = tmp_path / "sheet.jsonl"
    cmd_pool(argparse.Namespace(loops=[a, b], out=str(sheet), seed=3))
    rows = [json.loads(x) for x in sheet.read_text().splitlines()]
    assert sorted(r["question"] for r in rows) == ["Are kettles blue?", "Can kettles fly?", "Do kettles boil water?"]
    assert all("model" not in json.dumps(r) for r in rows) and all(r["answerable"] is None for r in rows)
    out = tmp_path / "labels.jsonl"
    with pytest.raises(SystemExit, match="label every row"):
        cmd_unpool(argparse.Namespace(sheet=str(sheet), loops=[a, b], out=str(out)))
    for r in rows:
        r["answerable"] = r["question"] != "Are kettles blue?"
    sheet.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd_unpool(argparse.Namespace(sheet=str(sheet), loops=[a, b], out=str(out)))
    labels = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["model"], x["question"], x["answerable"]) for x in labels] == [
        ("model-a", "Do kettles boil water?", True), ("model-a", "Are kettles blue?", False),
        ("model-b", "Do kettles boil water?", True), ("model-b", "Can kettles fly?", True)]
    x = {1: True, 2: True, 3: False, 4: False}
    y = {1: True, 2: False, 3: False, 4: False, 5: True}
    g = agreement(x, y)
    assert (g["n"], g["agree"]) == (4, 3)
    assert g["kappa"] == pytest.approx((0.75 - 0.5) / 0.5)  # chance = 0.5*0.25 + 0.5*0.75
    with pytest.raises(SystemExit, match="share no"):
        agreement({1: True}, {2: True})
    c = loop("model-c", ["Are kettles heavy?"])  # a loop the sheet was not pooled from: refused, nothing written
    with pytest.raises(SystemExit, match="not on the sheet"):
        cmd_unpool(argparse.Namespace(sheet=str(sheet), loops=[a, c], out=str(tmp_path / "c.jsonl")))
    assert not (tmp_path / "c.jsonl").exists()
