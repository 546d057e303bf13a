"""The honest dataset oracle's rules (argtree.fact_match) and FactsOracle: answer only what facts settle."""

import pytest

from argtree.fact_match import settle
from argtree.oracle import FactsOracle, Query, make_oracle

FACTS = ["Mars is a planet in the solar system.", "London is bigger than Paris.",
         "Greyhounds can run up to 45 miles per hour.", "The chair was not invented in China.",
         "Some birds cannot fly.", "Shakespeare did not win the Nobel Prize in 1990."]


@pytest.mark.parametrize("premise, expected", [
    ("Mars is a planet.", True),                          # covered by a positive fact
    ("Mars is not a planet.", False),                     # its negation
    ("Mars isn't a planet.", False),                      # contraction
    ("London is bigger than Paris.", True),
    ("Paris is bigger than London.", None),               # same words, other order: abstain
    ("Greyhounds can run 60 miles per hour.", None),      # a number the fact lacks
    ("The chair was invented in China.", False),          # a negated fact, same statement
    ("The chair was not invented in China.", True),
    ("Birds cannot fly.", None),                          # drops the fact's quantifier
    ("Some birds can fly.", None),                        # negation beside a quantifier
    ("Shakespeare won the Nobel Prize.", None),           # negated fact says more (in 1990)
    ("All planets are red.", None),                       # nothing settles it
    ("Mars.", None),                                      # too short
])
def test_rules(premise, expected):
    assert settle(premise, FACTS).value is expected


def test_disagreeing_facts_abstain():
    assert settle("Mars is a planet.", ["Mars is a planet.", "Mars is not a planet."]).value is None


def test_facts_oracle_uses_the_question_facts_or_any_gold_fact_and_abstains_otherwise():
    o = FactsOracle({"Is Mars far away?": FACTS, "Is Paris big?": ["Paris is a city."]})
    got = o.answer([Query("Mars is not a planet.", question="Is Mars far away?"),
                    Query("Mars is not a planet."),                  # no question: every gold fact is a candidate
                    Query("Paris is bigger than London.", facts=tuple(FACTS)),
                    Query("London is bigger than Paris.", facts=tuple(FACTS)),
                    Query("Jupiter is a gas giant."),                # no fact shares its words
                    Query("Paris is a city.", question="Is Mars far away?")])  # not among that question's facts
    assert got[0].value is False and got[1].value is False and got[2] is None and got[3].value is True
    assert got[4] is None and got[5] is None
    assert "London is bigger than Paris." in got[3].comment
    assert sum(o.reasons.values()) == 6


def test_dataset_oracle_for_a_strategyqa_file_is_the_facts_oracle(tmp_path):
    import json

    f = tmp_path / "q.json"
    f.write_text(json.dumps([{"qid": "1", "question": "Is Mars far away?", "answer": True, "facts": FACTS}]))
    o = make_oracle("dataset", dataset=str(f))
    assert isinstance(o, FactsOracle)
    assert o.answer([Query("Mars is a planet in the solar system.")])[0].value is True   # a labeled fact
    assert o.answer([Query("Mars is not a planet.", question="Is Mars far away?")])[0].value is False


@pytest.mark.parametrize("premise, facts", [
    # found by the hand check (BENCHMARKS.md): both were answered wrongly before these rules
    ("The western honey bee is not native to the Americas.",
     ["Western honey bees were first introduced to the Americas in the 16th century"]),
    ("Found in North America.", ["The Atlantic cod is found mostly in North America and Greenland."]),
    ("Birds can fly.", ["Some birds can fly."]),
])
def test_hand_check_errors_now_abstain(premise, facts):
    assert settle(premise, facts).value is None
