"""grow.py with the scripted fake backend: budgets, both sides, best-first order, failures never crash."""

import json

import pytest

from argtree.grow import GrowConfig, grow
from argtree.inference import beliefs
from argtree.llm.base import Generation
from argtree.llm.fake import FakeBackend
from argtree.voi import voi

Q = "Is remote work more productive than office work?"


def answer(*texts, q1=0.8, q0=0.3, c=0.6):
    """A model answer: the schema asks for whole percentages."""
    return json.dumps({"premises": [{"text": t, "credence": round(100 * c), "claim_if_true": round(100 * q1),
                                     "claim_if_false": round(100 * q0)} for t in texts]})


def test_root_gets_premises_for_and_against():
    r = grow(Q, FakeBackend(), GrowConfig(expansions=1))
    kids = r.tree.children(r.tree.root)
    stances = {r.tree[k].stance for k in kids}
    assert stances == {"supports", "attacks"}
    assert len(kids) == 4 and r.stop_reason == "budget"
    for k in kids:
        n = r.tree[k]
        assert 0.01 <= n.p_if_true <= 0.99 and 0.01 <= n.p_if_false <= 0.99
        assert n.extra["credence_source"] == "logprob" and n.extra["model_version"] == "fake"


def test_best_first_expands_the_highest_voi_leaf():
    # Root: one strong premise (a) and one weak one (b); the next expansion must pick a.
    fb = FakeBackend([answer("Strong evidence from many studies.", q1=0.95, q0=0.05, c=0.5),
                      answer("A weak anecdote from one blog post.", q1=0.40, q0=0.55, c=0.5)])
    r = grow(Q, fb, GrowConfig(expansions=2, batch=1))
    scores = voi(r.tree.__class__([n for n in r.tree.nodes.values() if n.parent in (None, "q")]))
    best = max(scores, key=scores.get)
    assert r.tree[best].text.startswith("Strong")
    assert r.tree.children(best) and not any(r.tree.children(n) for n in scores if n != best)


def test_budgets_nodes_depth_calls_seconds():
    assert len(grow(Q, FakeBackend(), GrowConfig(expansions=50, max_nodes=7)).tree) == 7
    r = grow(Q, FakeBackend(), GrowConfig(expansions=50, max_depth=1))
    assert r.stop_reason == "nothing-to-expand" and max(r.tree.depth(n) for n in r.tree.nodes) == 1
    r = grow(Q, FakeBackend(), GrowConfig(expansions=50, max_calls=4, batch=1))
    assert r.stats["model_calls"] <= 4 and r.stop_reason == "max-calls"
    r = grow(Q, FakeBackend(), GrowConfig(expansions=50, max_seconds=0))
    assert r.stop_reason == "max-seconds" and len(r.tree) == 1


def test_stops_when_voi_is_below_threshold():
    r = grow(Q, FakeBackend(), GrowConfig(expansions=50, threshold=0.9))
    assert r.stop_reason == "voi-below-threshold" and r.stats["expansions"] == 1


@pytest.mark.parametrize("bad", [
    "not json", "", "x" * 20000, json.dumps({"premises": [{"text": Q, "credence": 50, "claim_if_true": 90,
                                                           "claim_if_false": 10}]}),
    json.dumps({"premises": [{"text": "Some fact about offices.", "credence": 700, "claim_if_true": 90,
                              "claim_if_false": 10}]}),
    Generation("", error="HTTPError: 500 server error"), Generation("", error="ReadTimeout: timed out"),
    RuntimeError("backend exploded"),
])
def test_bad_output_is_retried_then_recorded_never_raised(bad):
    fb = FakeBackend([bad] * 6)  # 2 sides x (1 greedy + 2 sampled retries)
    r = grow(Q, fb, GrowConfig(expansions=1, retries=2))
    assert len(r.tree) == 1 and r.stats["failed"] == 1
    (f,) = r.failures
    assert f["node"] == "q" and f["attempts"] == 3 and len(f["errors"]) == 6 and len(f["raw"]) == 6
    assert r.tree.meta["failed_expansions"] == r.failures
    assert all(len(raw) <= 2001 for raw in f["raw"])


def test_retry_uses_sampling_and_recovers():
    seen = []

    def responder(prompt, schema, temperature, seed):
        seen.append(temperature)
        text = "Long commutes drain energy." if "answer NO" in prompt else "Open offices are noisy places."
        return "garbage" if temperature == 0 else answer(text)

    r = grow(Q, FakeBackend(responder=responder), GrowConfig(expansions=1, retries=2, temperature=0.7))
    assert seen == [0.0, 0.0, 0.7, 0.7]
    assert len(r.tree.children("q")) == 2 and not r.failures


def test_a_backend_that_raises_is_contained():
    class Boom(FakeBackend):
        def generate_json(self, *a, **k):
            raise ConnectionError("refused")

    r = grow(Q, Boom(), GrowConfig(expansions=3))
    assert len(r.tree) == 1 and "ConnectionError: refused" in r.failures[0]["errors"][0]


def test_short_answer_lists_are_fine_and_growth_continues():
    fb = FakeBackend([answer("Teams waste time commuting daily."), "nonsense", "nonsense", "nonsense"])
    r = grow(Q, fb, GrowConfig(expansions=2, retries=1, batch=1))
    assert [r.tree[k].text for k in r.tree.children("q")] == ["Teams waste time commuting daily."]


def test_duplicates_across_nodes_expanded_together_are_merged():
    fb = FakeBackend([answer("Commute time is saved every day."), answer("Meetings are harder to schedule.", q1=0.2, q0=0.7),
                      answer("Home internet is reliable for most."), answer("Quiet rooms are scarce at home.", q1=0.2, q0=0.6),
                      answer("Home internet is reliable for most."), answer("Desk setups cost money.", q1=0.3, q0=0.6)])
    r = grow(Q, fb, GrowConfig(expansions=3, batch=2, retries=0))
    texts = [n.text for n in r.tree.nodes.values()]
    assert texts.count("Home internet is reliable for most.") == 1
    assert any(x["reason"] == "duplicate-in-tree" for x in r.rejected)


def test_logprob_credence_replaces_the_verbal_number():
    fb = FakeBackend([answer("Commute time is saved every day.", c=0.9),
                      answer("Meetings are harder to schedule.", q1=0.2, q0=0.7)], yes_scores=[0.8, 0.3, 0.4])
    r = grow(Q, fb, GrowConfig(expansions=1, credence="logprob"))
    creds = sorted(r.tree[k].extra["credence"] for k in r.tree.children("q"))
    assert creds == [0.3, 0.4]
    assert r.tree.meta["direct"]["p"] == 0.8  # the first score is the question's own, asked directly
    # verbal keeps the number the model wrote
    fb = FakeBackend([answer("Commute time is saved every day.", c=0.9),
                      answer("Meetings are harder to schedule.", q1=0.2, q0=0.7, c=0.6)])
    r = grow(Q, fb, GrowConfig(expansions=1, credence="verbal"))
    assert sorted(r.tree[k].extra["credence"] for k in r.tree.children("q")) == [0.6, 0.9]


def test_seeded_growth_is_reproducible():
    a = grow(Q, FakeBackend(seed=3), GrowConfig(expansions=4))
    b = grow(Q, FakeBackend(seed=3), GrowConfig(expansions=4))
    assert [(n.id, n.text, n.p_if_true) for n in a.tree.nodes.values()] == \
           [(n.id, n.text, n.p_if_true) for n in b.tree.nodes.values()]


def test_each_new_premise_credence_becomes_model_evidence_that_moves_it_to_the_credence():
    fb = FakeBackend([answer("Commute time is saved every day.", c=0.9),
                      answer("Meetings are harder to schedule.", q1=0.2, q0=0.7)], yes_scores=[0.8, 0.3, 0.6])
    r = grow(Q, fb, GrowConfig(expansions=1, credence="logprob"))
    model_ev = [e for e in r.evidence if e.is_model]
    kids = r.tree.children("q")
    assert sorted(e.node for e in model_ev) == sorted(kids)  # one per premise, none on the root
    for e in model_ev:
        alone = beliefs(r.tree, [e])[e.node]
        assert alone == pytest.approx(r.tree[e.node].extra["credence"], abs=1e-9)
    # the tree now holds a belief of its own; the root's own credence is not evidence in it
    assert beliefs(r.tree, r.evidence)[r.tree.root] != pytest.approx(0.5, abs=1e-6)
    assert r.stats["model_evidence"] == 2


def test_scoring_failure_is_counted_and_marked_never_silently_half():
    class NoScores(FakeBackend):
        def score_yes(self, prompts, *, system=None):
            raise RuntimeError("server said 500")

    fb = NoScores([answer("Commute time is saved every day.", c=0.9),
                   answer("Meetings are harder to schedule.", q1=0.2, q0=0.7, c=0.6)])
    r = grow(Q, fb, GrowConfig(expansions=1, credence="logprob"))
    assert "error" in r.tree.meta["direct"] and "500" in r.tree.meta["direct"]["error"]
    assert r.stats["scoring_failures"] == 1
    kids = r.tree.children("q")
    assert all(r.tree[k].extra["credence_source"].startswith("verbal") for k in kids)
    assert sorted(r.tree[k].extra["credence"] for k in kids) == [0.6, 0.9]


def test_one_unscorable_premise_keeps_its_written_number_and_the_others_their_scores():
    fb = FakeBackend([answer("Commute time is saved every day.", c=0.9),
                      answer("Meetings are harder to schedule.", q1=0.2, q0=0.7, c=0.6)],
                     yes_scores=[0.8, float("nan"), 0.35])
    r = grow(Q, fb, GrowConfig(expansions=1, credence="logprob"))
    kids = {r.tree[k].text: r.tree[k].extra for k in r.tree.children("q")}
    assert kids["Commute time is saved every day."]["credence"] == 0.9
    assert kids["Commute time is saved every day."]["credence_source"].startswith("verbal")
    assert kids["Meetings are harder to schedule."]["credence"] == 0.35
    assert kids["Meetings are harder to schedule."]["credence_source"] == "logprob"
    assert r.stats["scoring_failures"] == 1 and "1 of 2" in r.tree.meta["growth"]["scoring_errors"][0]
