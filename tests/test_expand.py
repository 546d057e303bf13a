"""expand.py: elicitation math against a hand-built joint, parsing and the guards."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from argtree.expand import (EPS, MAX_RAW, MAX_TEXT, Guard, answer_bound, clamp, content_words, cpt_from_elicitation, expansion_prompt,
                            expansion_schema, normalize, parse_credence, parse_expansion, similarity)
from argtree.inference import beliefs
from argtree.tree import ArgumentTree, Evidence, Node

probs = st.floats(0.02, 0.98, allow_nan=False)


@given(c=probs, q1=probs, q0=probs)
@settings(max_examples=200, deadline=None)
def test_cpt_reproduces_what_the_model_said(c, q1, q0):
    """With parent prior pi = q1 c + q0 (1-c), the tree says P(parent | premise) = q1 and
    P(parent | not premise) = q0: the premise moves its parent exactly as the model said."""
    p1, p0 = cpt_from_elicitation(c, q1, q0, eps=1e-9)
    pi = q1 * c + q0 * (1 - c)
    tree = ArgumentTree([Node("r", "R", prior=pi), Node("x", "X", parent="r", p_if_true=p1, p_if_false=p0)])
    assert beliefs(tree)["x"] == pytest.approx(c, abs=1e-9)
    assert beliefs(tree, [Evidence("x", True)])["r"] == pytest.approx(q1, abs=1e-9)
    assert beliefs(tree, [Evidence("x", False)])["r"] == pytest.approx(q0, abs=1e-9)


def test_cpt_by_enumeration_and_clamping():
    # c = .8, q1 = .9, q0 = .3: joint P(r, x) = .72, P(r, ~x) = .06, P(~r, x) = .08, P(~r, ~x) = .14
    p1, p0 = cpt_from_elicitation(0.8, 0.9, 0.3)
    assert p1 == pytest.approx(0.72 / 0.78)
    assert p0 == pytest.approx(0.08 / 0.22)
    # "1.0 for everything" stays off 0 and 1
    for p in cpt_from_elicitation(1.0, 1.0, 0.0) + cpt_from_elicitation(0.0, 0.0, 1.0):
        assert EPS <= p <= 1 - EPS
    assert clamp(-3) == EPS and clamp(7) == 1 - EPS


def test_schema_encodes_the_side():
    f = expansion_schema("for")["properties"]["premises"]["items"]["properties"]
    a = expansion_schema("against")["properties"]["premises"]["items"]["properties"]
    assert min(f["claim_if_true"]["enum"]) > max(f["claim_if_false"]["enum"])
    assert max(a["claim_if_true"]["enum"]) < min(a["claim_if_false"]["enum"])
    for props in (f, a):
        for key in ("credence", "claim_if_true", "claim_if_false"):  # whole percentages, off 0 and 100
            assert props[key]["type"] == "integer" and all(5 <= x <= 95 for x in props[key]["enum"])
    with pytest.raises(ValueError):
        expansion_schema("sideways")


@pytest.mark.parametrize("per_side", [1, 2, 3])
def test_answer_bound_is_the_longest_valid_answer(per_side):
    """The token cap grow uses by default: every schema-valid answer's UTF-8 bytes fit in it."""
    import jsonschema
    schema = expansion_schema("against", per_side)
    props = schema["properties"]["premises"]["items"]["properties"]
    item = {"text": "A" + "\U0001F600" * (MAX_TEXT - 2) + ".",   # the widest characters UTF-8 has
            **{k: max(props[k]["enum"], key=lambda v: len(json.dumps(v))) for k in ("credence", "claim_if_true",
                                                                                   "claim_if_false")}}
    longest = {"premises": [item] * per_side}
    jsonschema.validate(longest, schema)
    wide = len(json.dumps(longest, ensure_ascii=False).encode("utf-8"))  # ", " and ": ", as xgrammar writes
    assert wide == answer_bound(per_side)
    ascii_item = {**item, "text": "A" + "x" * (MAX_TEXT - 2) + "."}
    assert len(json.dumps({"premises": [ascii_item] * per_side})) < answer_bound(per_side)
    for text in ("A" + "x" * (MAX_TEXT - 1) + ".",            # one character more
                 'He said "yes" to the plan today.',            # a quote would need an escape
                 "1.1.1.1.1.1.1.1.1.1.1.1.", "no capital letter first.", "No full stop at the end"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"premises": [{**item, "text": text}]}, schema)


def test_prompt_names_claim_side_and_avoid_list():
    p = expansion_prompt("Cats sleep a lot.", "against", context=["Are cats lazy?"], avoid=["Cats hunt at night."])
    assert "Claim: Cats sleep a lot." in p and "ARGUE AGAINST" in p and "Cats hunt at night." in p
    assert "Background question: Are cats lazy?" in p
    q = expansion_prompt("Are cats lazy?", "for")
    assert "Question: Are cats lazy?" in q and "answer YES more likely" in q and "Background" not in q
    assert "answer NO more likely" in expansion_prompt("Are cats lazy?", "against")


def test_normalize_and_similarity():
    assert normalize("Claim 1: Remote work, is GOOD!") == "remote work is good"
    assert similarity("Remote work is good.", "remote work is good") == 1.0
    assert similarity("Commuting wastes time", "Offices are noisy") == 0.0
    assert content_words("The claim is not true") == {"claim", "true"}


def _answer(*items):
    """A model answer; numbers given as probabilities are written as whole percentages, as the schema asks."""
    pct = lambda x: round(x * 100) if isinstance(x, float) else x  # noqa: E731
    return json.dumps({"premises": [dict(zip(("text", "credence", "claim_if_true", "claim_if_false"),
                                             (i[0], *map(pct, i[1:])))) for i in items]})


def test_guards_reject_copies_duplicates_restatements_and_vacuous():
    guard = Guard("Remote work is more productive than office work.",
                  ancestors=["Should our company go fully remote?"],
                  siblings=["Commuting wastes two hours a day."], tree_texts=["Office rent is expensive downtown."])
    raw = _answer(
        ("Claim 1: Remote work is more productive than office work.", 0.9, 0.9, 0.2),  # copy of the claim
        ("Our company should go fully remote.", 0.5, 0.8, 0.3),                      # restates an ancestor
        ("Commuting wastes two hours each day.", 0.7, 0.8, 0.4),                     # duplicate sibling
        ("Office rent is expensive downtown!", 0.7, 0.8, 0.4),                       # elsewhere in the tree
        ("The claim is true.", 0.9, 0.9, 0.1),                                       # says nothing
        ("Yes, absolutely yes, the answer is yes, this is true, yes yes", 0.9, 0.9, 0.1),  # says nothing
        ("Cats nap cats nap cats nap cats nap cats nap", 0.9, 0.9, 0.1),           # degenerate
        ("cryogenic_exercise_for_healing_roots", 0.9, 0.9, 0.1),                   # not a sentence
        ("11-01:20:00:00 and 12:00", 0.9, 0.9, 0.1),                               # not a sentence
        ("How to make avocados from corn", 0.9, 0.9, 0.1),                         # not a statement
        ("Was the office invented in 1900?", 0.9, 0.9, 0.1),                       # not a statement
        ("Home offices have fewer interruptions from colleagues.", 0.7, 0.8, 0.3),   # fine
        ("Fewer interruptions from colleagues happen in home offices.", 0.7, 0.8, 0.3),  # dup of the one above
        ("Video calls tire people quickly.", 0.6, 0.5, 0.5),                         # bears on nothing
    )
    parsed = parse_expansion(raw, "for", guard)
    assert [p.text for p in parsed.proposals] == ["Home offices have fewer interruptions from colleagues."]
    reasons = [r.reason for r in parsed.rejected]
    assert reasons == ["copies-claim", "restates-ancestor", "duplicate-sibling", "duplicate-in-tree", "vacuous",
                       "vacuous", "degenerate", "not-a-sentence", "not-a-sentence", "not-a-statement",
                       "not-a-statement", "duplicate-sibling", "no-bearing"]
    assert parsed.ok


@pytest.mark.parametrize("raw, error", [
    ("", "empty"), ("   ", "empty"), ("not json at all", "not-json"), ('{"premises": [', "not-json"),
    ("x" * (MAX_RAW + 1), "too-long"), ('{"premises": 3}', "no-premises"), ("[]", "no-premises"),
    ('{"other": []}', "no-premises"), ("[" * 100000 + "]" * 100000, "too-long"),
])
def test_bad_answers_are_errors_not_exceptions(raw, error):
    assert parse_expansion(raw, "for", Guard("A claim about cats.")).error == error


def test_out_of_range_numbers_are_rejected_in_range_ones_kept():
    raw = _answer(("Cats sleep sixteen hours daily.", 1.5, 0.9, 0.1), ("Kittens play most evenings.", 0.7, -0.1, 0.2),
                  ("Older cats move less often.", "high", 0.9, 0.1), ("Indoor cats gain weight easily.", 0.7, 0.9, 0.1))
    parsed = parse_expansion(raw, "for", Guard("Cats are lazy."))
    assert [r.reason for r in parsed.rejected] == ["bad-numbers"] * 3
    (p,) = parsed.proposals
    assert (p.p_if_true, p.p_if_false) == pytest.approx(cpt_from_elicitation(0.7, 0.9, 0.1))
    assert p.p_if_true > p.p_if_false


def test_wrong_way_numbers_keep_their_own_stance():
    # Without constrained decoding a "for" answer may bear against: the numbers decide the stance.
    parsed = parse_expansion(_answer(("Cats chase mice at night.", 0.7, 0.2, 0.8)), "for", Guard("Cats are lazy."))
    (p,) = parsed.proposals
    assert p.p_if_true < p.p_if_false


def test_all_rejected_is_an_error():
    parsed = parse_expansion(_answer(("Cats are lazy.", 0.7, 0.9, 0.1)), "for", Guard("Cats are lazy."))
    assert parsed.error == "no-acceptable-premise" and not parsed.ok


def test_parse_credence():
    assert parse_credence('{"probability": 0.25}') == 0.25
    assert parse_credence('{"probability": 1.5}') is None
    assert parse_credence("nope") is None
    assert parse_credence('{"probability": 0.7500000000000') == 0.75   # cut at the token cap
    assert parse_credence('{"probability": 3.5000') is None
    assert parse_credence('{"probability": true}') is None
    assert not math.isnan(parse_credence('{"probability": 0}'))


def test_numbers_are_whole_percentages():
    """0.9 is refused, not read as 0.9% (or guessed to be 90%): an unconstrained backend's fraction is ambiguous."""
    raw = json.dumps({"premises": [
        {"text": "Cats sleep sixteen hours daily.", "credence": 0.9, "claim_if_true": 90, "claim_if_false": 10},
        {"text": "Kittens play most evenings.", "credence": 70.5, "claim_if_true": 90, "claim_if_false": 10},
        {"text": "Indoor cats gain weight easily.", "credence": 70, "claim_if_true": 90.0, "claim_if_false": 10}]})
    # json.loads reads Infinity and NaN too: refused, not a crash
    raw = raw[:-2] + ', {"text": "Old cats nap in the sun.", "credence": Infinity, "claim_if_true": 90, ' \
        '"claim_if_false": NaN}]}'
    parsed = parse_expansion(raw, "for", Guard("Cats are lazy."))
    assert [r.reason for r in parsed.rejected] == ["bad-numbers", "bad-numbers", "bad-numbers"]
    (p,) = parsed.proposals
    assert (p.credence, p.claim_if_true, p.claim_if_false) == pytest.approx((0.7, 0.9, 0.1))
