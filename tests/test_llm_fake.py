"""The backend factory and the scripted fake backend."""

import json

import pytest

from argtree.expand import expansion_schema, parse_expansion, Guard
from argtree.llm import BACKENDS, Backend, make_backend
from argtree.llm.base import Generation
from argtree.llm.fake import FakeBackend


def test_factory_knows_its_backends():
    assert BACKENDS == ("local", "openai", "fake")
    assert isinstance(make_backend("fake"), Backend)
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("telepathy")


def test_importing_llm_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, argtree.llm, argtree.grow, argtree.expand; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_fake_default_answers_fit_the_schema_and_side():
    fb = FakeBackend(seed=1)
    gens = fb.generate_json(["Claim: Bikes beat cars.", "Claim: Bikes beat cars."],
                            [expansion_schema("for"), expansion_schema("against")])
    for g, stance in zip(gens, ("for", "against")):
        parsed = parse_expansion(g.text, stance, Guard("Bikes beat cars."))
        assert parsed.ok
        for p in parsed.proposals:
            assert (p.p_if_true > p.p_if_false) == (stance == "for")
    assert fb.calls == 1 and len(fb.prompts) == 2


def test_fake_script_replays_in_order_and_errors(tmp_path):
    fb = FakeBackend(["first", Generation("", error="boom"), ValueError("bad")])
    g = fb.generate_json(["a", "b", "c"], {"type": "object"})
    assert [x.text for x in g] == ["first", "", ""]
    assert g[1].error == "boom" and g[2].error == "ValueError: bad"
    path = tmp_path / "s.json"
    path.write_text(json.dumps(["x", {"premises": []}]))
    fb = FakeBackend.from_option(str(path))
    assert [x.text for x in fb.generate_json(["a", "b"], {})] == ["x", '{"premises": []}']
    path.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="JSON list"):
        FakeBackend.from_option(str(path))


def test_fake_yes_scores():
    fb = FakeBackend(yes_scores=[0.2])
    a, b = fb.score_yes(["q1", "q2"])
    assert a == 0.2 and 0.05 <= b <= 0.95
    assert FakeBackend().score_yes(["q2"]) == [b]  # hashed: deterministic


def test_fake_answers_question_proposals_within_the_schema():
    import re

    import jsonschema

    from argtree.datasets import normalize
    from argtree.loop import QUESTION_PATTERN, question_schema

    prompt = "Topic: urban cycling\nWrite 3 different yes/no questions about this topic."
    answers = {}
    for seed in (0, 1):
        for n in (1, 3, 5):
            (g,) = FakeBackend(seed=seed).generate_json([prompt], question_schema(n))
            data = json.loads(g.text)
            jsonschema.validate(data, question_schema(n))
            qs = data["questions"]
            assert len(qs) == n and len({normalize(q) for q in qs}) == n  # as many as allowed, all different
            assert all(re.match(QUESTION_PATTERN, q) and "urban cycling" in q for q in qs), qs
            answers[seed, n] = qs
    assert FakeBackend(seed=1).generate_json([prompt], question_schema(3))[0].text == \
        json.dumps({"questions": answers[1, 3]})  # deterministic from the seed
    assert answers[0, 3] != answers[1, 3]
    # A topic the pattern could not hold as it is (quotes, backslash, accents, length) still gives valid questions.
    odd = 'Topic: "Café" culture\\ in Paris' + ", and more" * 20 + "?\nWrite 3 questions."
    (g,) = FakeBackend().generate_json([odd], question_schema(3))
    jsonschema.validate(json.loads(g.text), question_schema(3))
    assert all("Cafe culture in Paris" in q for q in json.loads(g.text)["questions"])
