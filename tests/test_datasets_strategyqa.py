"""StrategyQA -> labeled trees, and the rule-checked negations that give facts their false counterparts."""

from __future__ import annotations

import json
import os

import pytest

from argtree.datasets import build, examples, split_examples
from argtree.strategyqa import load, negate, negation_stats, to_tree, trees
from argtree.tree import TreeError

# The shared StrategyQA split sits beside the checkout (../shared); a CI clone elsewhere finds it at
# /work/shared, or wherever ARGTREE_STRATEGYQA points.
_CANDIDATES = [os.environ.get("ARGTREE_STRATEGYQA", ""),
               os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "strategyqa", "train.json"),
               "/work/shared/data/strategyqa/train.json"]
DATA = next((p for p in _CANDIDATES if p and os.path.exists(p)), _CANDIDATES[1])


@pytest.mark.parametrize("fact, negation", [
    ("Elton John is a famous pop singer.", "Elton John is not a famous pop singer."),
    ("Josh Blue has cerebral palsy.", "Josh Blue does not have cerebral palsy."),
    ("Julius Caesar had three children.", "Julius Caesar did not have three children."),
    ("He has been to Paris.", "He has not been to Paris."),
    ("Snoring can cause a variety of symptoms.", "Snoring cannot cause a variety of symptoms."),
    ("The United States is not considered a developing country.",
     "The United States is considered a developing country."),
    ("People can't vote twice.", "People can vote twice."),
    ("Television was invented in 1927", "Television was not invented in 1927"),
])
def test_negations_of_simple_sentences(fact, negation):
    assert negate(fact) == negation


@pytest.mark.parametrize("fact", [
    "Some cats are black.",                       # quantifier: "some are not" is no negation
    "Medications may be stored in bottles.",      # hedge
    "As people age, their memory can get worse.",  # subordinate clause before the verb
    "People who live in England can't vote in the USA.",  # relative clause in the subject
    "The shotgun was not invented until the 18th century.",  # "until" needs the not
    "Bulls feed on plants located on land.",      # no auxiliary: would need a lemmatizer
    "Canon, Inc. is a large corporation.",        # comma in the subject
    "Nobody is never late.",                      # two negations
    "",
])
def test_sentences_the_rules_leave_alone(fact):
    assert negate(fact) is None


def test_tree_labels_facts_true_negations_false_and_the_root_with_the_answer():
    rec = {"qid": "x1", "question": "Did Caesar have more children than Genghis Khan?", "answer": False,
           "facts": ["Julius Caesar had three children.", "Genghis Khan had sixteen children.",
                     "Bulls feed on plants."]}
    lt = to_tree(rec)
    labels = {ev.node: ev.value for ev in lt.evidence}
    assert labels == {"q": False, "f0": True, "f1": True, "f2": True, "n0": False, "n1": False}
    assert lt.tree["n1"].text == "Genghis Khan did not have sixteen children."
    assert lt.tree["n1"].extra["negates"] == "f1"
    # A negation that is itself a fact of the dataset is not made into a false statement.
    lt2 = to_tree(rec, known_facts={"julius caesar did not have three children"})
    assert "n0" not in lt2.tree


def test_load_rejects_malformed_records(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps([{"question": "Q?", "answer": "yes", "facts": []}]))
    with pytest.raises(TreeError, match="record 0"):
        load(bad)
    with pytest.raises(TreeError, match="cannot read"):
        load(tmp_path / "none.json")


@pytest.mark.skipif(not os.path.exists(DATA), reason="StrategyQA data not found: set ARGTREE_STRATEGYQA to train.json")
def test_real_strategyqa_gives_balanced_facts_and_a_clean_split():
    records = load(DATA)
    assert len(records) == 2061
    stats = negation_stats(records)
    assert stats["negated"] > 0.5 * stats["facts"]
    lts = trees(records[:300])
    exs = examples(lts, "facts")
    true = sum(e.completion == "Yes" for e in exs)
    assert 0.5 < true / len(exs) < 0.75
    train, held, _ = split_examples(exs, 0.9)
    assert not set().union(*(e.propositions for e in train)) & set().union(*(e.propositions for e in held))
    assert build(lts, "posteriors", "text")["card"]["examples"] == 300


def test_expansion_records_are_answers_the_grammar_admits():
    """Training answers for root expansion validate against the very schema generation is held to."""
    import jsonschema

    from argtree.expand import expansion_schema
    from argtree.strategyqa import expansion_records

    recs = load(DATA)[:300]
    n = 0
    for lt in trees(recs):
        for rec in expansion_records(lt):
            user, answer = rec["messages"][1]["content"], rec["messages"][2]["content"]
            stance = "for" if ("YES more likely" in user or "SUPPORT" in user) else "against"
            data = json.loads(answer)
            jsonschema.validate(data, expansion_schema(stance))
            assert lt.tree[lt.tree.root].text in user
            n += 1
    assert n > 300
