"""The synthetic world (issue 17): answers follow from the gold facts by the rules (an independent solver
written here, sharing nothing with argtree.world's inference), the oracle answers atomic statements only,
seeds reproduce the world, and rounds of `argtree improve` run on it (fake backend, recording trainer; the
idealized learner)."""

from __future__ import annotations

import json
import re

import pytest

from argtree.world import (QUESTION_TYPES, LearnerTrainer, PolicyOracle, WorldLearner, WorldOracle, make_world,
                           normalize_statement, split_stats, to_records, write_questions)

SEEDS = [(0, 12), (1, 3), (2, 7), (3, 20), (4, 12)]

# -- an independent solver: the statements' grammar and the rules, written out again ----------------------

_FACT_RULES = [  # (regex, key, value)
    (r"^(\w+) does not live in (\w+)\.$", "lives_in", False),
    (r"^(\w+) lives in (\w+)\.$", "lives_in", True),
    (r"^(\w+) is not on the coast\.$", "coastal", False),
    (r"^(\w+) is on the coast\.$", "coastal", True),
    (r"^(\w+) does not have cold winters\.$", "cold", False),
    (r"^(\w+) has cold winters\.$", "cold", True),
    (r"^(\w+) does not own an? (\w+)\.$", "owns", False),
    (r"^(\w+) owns an? (\w+)\.$", "owns", True),
    (r"^An? (\w+) does not eat fish\.$", "fish", False),
    (r"^An? (\w+) eats fish\.$", "fish", True),
    (r"^An? (\w+) cannot fly\.$", "fly", False),
    (r"^An? (\w+) can fly\.$", "fly", True),
    (r"^(\w+)'s best friend is not (\w+)\.$", "friend", False),
    (r"^(\w+)'s best friend is (\w+)\.$", "friend", True),
]


def parse_fact(text: str):
    for rx, key, value in _FACT_RULES:
        m = re.match(rx, text)
        if m:
            return key, m.groups(), value
    raise AssertionError(f"not a statement of the world's grammar: {text!r}")


def solve(question: str, facts) -> bool:
    """The answer from the facts alone, by the rules (DESIGN of issue 17), no access to the world."""
    kb_links, kb_attr = {}, {}
    for f in facts:
        key, args, value = parse_fact(f)
        if key in ("lives_in", "owns", "friend"):
            assert value, f"a gold fact about a link should say what it is: {f!r}"
            kb_links[(key, args[0])] = args[1]
        else:
            kb_attr[(key, args[0])] = value
    m = re.match(r"^Can (\w+) swim\?$", question)
    if m:
        return kb_attr[("coastal", kb_links[("lives_in", m[1])])]
    m = re.match(r"^Does (\w+) own a winter coat\?$", question)
    if m:
        return kb_attr[("cold", kb_links[("lives_in", m[1])])]
    m = re.match(r"^Does (\w+)'s pet eat fish\?$", question)
    if m:
        return kb_attr[("fish", kb_links[("owns", m[1])])]
    m = re.match(r"^Can (\w+)'s pet fly\?$", question)
    if m:
        return kb_attr[("fly", kb_links[("owns", m[1])])]
    m = re.match(r"^Can (\w+)'s best friend swim\?$", question)
    if m:
        return kb_attr[("coastal", kb_links[("lives_in", kb_links[("friend", m[1])])])]
    m = re.match(r"^Does (\w+)'s best friend's pet eat fish\?$", question)
    if m:
        return kb_attr[("fish", kb_links[("owns", kb_links[("friend", m[1])])])]
    m = re.match(r"^Can (\w+)'s pet catch fish near home\?$", question)
    if m:
        return kb_attr[("coastal", kb_links[("lives_in", m[1])])] and kb_attr[("fish", kb_links[("owns", m[1])])]
    raise AssertionError(f"no rule answers {question!r}")


@pytest.mark.parametrize("seed,entities", SEEDS)
def test_every_answer_follows_from_its_facts_by_the_rules(seed, entities):
    world = make_world(seed, entities)
    questions = world.all_questions()
    assert len(questions) == len(QUESTION_TYPES) * entities
    truth = world.statements()
    for q in questions:
        assert 2 <= len(q.facts) <= 4, q
        assert all(truth[f] is True for f in q.facts), q  # gold facts are true statements of the world
        assert solve(q.question, q.facts) == q.answer, q
        assert q.decomposition and all(d.endswith("?") for d in q.decomposition)


def test_the_solver_is_not_vacuous():
    """Flipping one attribute fact (to its negation) changes the solver's answer where the rules say so."""
    world = make_world(0, 12)
    q = world.question("swim", world.people[0])
    flipped = [q.facts[0], q.facts[1].replace(" is not on", " is on") if " is not on" in q.facts[1]
               else q.facts[1].replace(" is on", " is not on")]
    assert solve(q.question, flipped) != q.answer
    with pytest.raises(AssertionError):
        parse_fact("Velra lives near the sea.")


@pytest.mark.parametrize("seed,entities", SEEDS)
def test_split_is_balanced_disjoint_and_mixes_seen_and_unseen_facts(seed, entities):
    world = make_world(seed, entities)
    train, held = world.split()
    assert train and held
    assert sum(q.answer for q in train) * 2 == len(train)
    assert sum(q.answer for q in held) * 2 == len(held)
    assert not {q.qid for q in train} & {q.qid for q in held}
    assert {q.split for q in train} == {"train"} and {q.split for q in held} == {"heldout"}
    if entities >= 12:
        st = split_stats(train, held)
        assert st["heldout_questions_with_an_unseen_fact"] > 0      # facts never asked about in training
        assert st["heldout_questions_all_facts_seen"] > 0           # seen facts in new combinations
        seen = {f for q in train for f in q.facts}
        assert any(q.question not in {t.question for t in train} and all(f in seen for f in q.facts) for q in held)


def test_seeds_reproduce_the_world_exactly():
    a, b = make_world(5, 12), make_world(5, 12)
    assert a.statements() == b.statements()
    assert to_records(a.all_questions()) == to_records(b.all_questions())
    assert [to_records(p) for p in a.split()] == [to_records(p) for p in b.split()]
    c = make_world(6, 12)
    assert c.statements() != a.statements()


def test_names_are_invented_and_distinct():
    world = make_world(0, 30)
    names = world.people + world.towns + world.kinds
    assert len(set(n.lower() for n in names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z]{4,14}", n) for n in names)


def test_records_load_as_questions(tmp_path):
    from argtree.questions import load_questions

    world = make_world(0, 6)
    train, held = world.split()
    path = tmp_path / "held.json"
    assert write_questions(held, path) == len(held)
    loaded = load_questions(path)
    assert [(q.qid, q.question, q.answer, q.facts, q.decomposition) for q in loaded] == \
        [(q.qid, q.question, q.answer, q.facts, q.decomposition) for q in held]
    raw = json.loads(path.read_text())
    assert set(raw[0]) >= {"qid", "question", "answer", "facts", "decomposition"}


# -- the oracle ---------------------------------------------------------------------------------------------


def _ask(oracle, texts):
    from argtree.oracle import Query

    return oracle.answer([Query(t) for t in texts])


def test_oracle_answers_every_atomic_statement_exactly():
    from argtree.oracle import Oracle

    world = make_world(1, 7)
    oracle = WorldOracle(world)
    assert isinstance(oracle, Oracle) and oracle.synchronous and oracle.name == "oracle-world"
    items = list(world.statements().items())
    answers = _ask(oracle, [t for t, _ in items])
    assert all(a is not None and a.value is v for a, (_, v) in zip(answers, items))
    # the same statements with other spacing, case or a curly apostrophe are still the world's
    variants = ["  " + t.upper().replace("'", "\u2019") + "  " for t, _ in items[:50]]
    assert [a.value for a in _ask(oracle, variants)] == [v for _, v in items[:50]]
    # a statement and its negation never agree
    pos = world.fact("coastal", world.towns[0])
    neg = world.fact("coastal", world.towns[0], value=False)
    a, b = _ask(oracle, [pos, neg])
    assert a.value is not b.value


def test_oracle_abstains_on_anything_that_is_not_an_atomic_statement():
    world = make_world(1, 7)
    oracle = WorldOracle(world)
    p, t, k = world.people[0], world.towns[0], world.kinds[0]
    stranger = "Zzyxquor"
    assert stranger not in world.people + world.towns
    not_atomic = [
        f"Can {p} swim?", f"{p} can swim.", f"{p} owns a winter coat.",               # questions and conclusions
        f"{p} lives in {t} and {t} is on the coast.",                                  # conjunctions
        f"{p} lives in a town on the coast.", f"{p}'s pet eats fish.",                 # not in the world's words
        f"It is not true that {p} lives in {t}.", f"{p} doesn't live in {t}.",         # other negations
        f"{stranger} lives in {t}.", f"{p} lives in {stranger}.", f"A {stranger} eats fish.",  # unknown names
        f"{p} lives in {t} today.", f"Maybe {t} is on the coast.", f"{p} owns {k}.",
        "", "Someone who lives in a town on the coast can swim.",
    ]
    answers = _ask(oracle, not_atomic)
    assert answers == [None] * len(not_atomic)
    assert oracle.asked == len(not_atomic) and oracle.answered == 0
    # only the world's statements are answered, in a mixed batch too
    mixed = not_atomic[:3] + [world.true_fact("lives_in", p, world.lives_in[p])]
    assert [a is not None for a in _ask(oracle, mixed)] == [False, False, False, True]


def test_policy_oracle_spends_the_same_budget_and_differs_only_in_order():
    from argtree.oracle import Query

    world = make_world(0, 12)
    atomic = [world.true_fact("coastal", t) for t in world.towns] + [world.true_fact("eats_fish", k)
                                                                      for k in world.kinds]
    texts = ["Junk one.", atomic[0], "Junk two.", atomic[1], atomic[2], atomic[3], atomic[4]]
    queries = [Query(x, tree_id=3) for x in texts]
    voi = PolicyOracle(WorldOracle(world), 2, "voi", seed=0).answer(queries)
    assert [i for i, a in enumerate(voi) if a is not None] == [1, 3]   # the first two answerable, in order
    rnd = [PolicyOracle(WorldOracle(world), 2, "random", seed=s).answer(queries) for s in range(6)]
    assert all(sum(a is not None for a in r) == 2 for r in rnd)
    assert all(texts[i] in atomic for r in rnd for i, a in enumerate(r) if a is not None)
    assert len({tuple(a is not None for a in r) for r in rnd}) > 1       # other premises for other seeds
    again = PolicyOracle(WorldOracle(world), 2, "random", seed=3).answer(queries)
    assert [a is not None for a in again] == [a is not None for a in rnd[3]]  # seeded


# -- the idealized learner (a control for the machinery) -----------------------------------------------------


def test_learner_learns_exactly_its_fact_records_and_reasons_with_the_rules(tmp_path):
    from argtree.datasets import fact_record, write_jsonl
    from argtree.expand import direct_prompt, yes_no_prompt

    world = make_world(0, 12)
    vocab = WorldLearner.vocab_of(world)
    q = world.question("swim", world.people[0])
    blank = WorldLearner(vocab)
    assert blank.score_yes([direct_prompt(q.question)]) == [0.5]
    recs = [fact_record(f, True, {"round": 1}) for f in q.facts]
    write_jsonl(recs, tmp_path / "sft.jsonl")
    info = LearnerTrainer().sft(str(tmp_path / "sft.jsonl"), None, str(tmp_path / "v1"), steps=1)
    assert info["learned"]["facts"] == 2
    learned = WorldLearner.load(vocab, str(tmp_path / "v1"))
    p_direct, p_fact = learned.score_yes([direct_prompt(q.question), yes_no_prompt(q.facts[1])])
    assert (p_direct > 0.5) == q.answer and p_fact > 0.9
    # a question that shares no fact with what it learned stays open
    other = next(p for p in world.people if world.lives_in[p] != world.lives_in[world.people[0]])
    assert learned.score_yes([direct_prompt(world.question("swim", other).question)]) != [0.97]
    # its premises are the facts that settle the question
    from argtree.expand import expansion_prompt, expansion_schema

    side = "for" if q.answer else "against"
    out = json.loads(learned.generate_json([expansion_prompt(q.question, side)], expansion_schema(side))[0].text)
    assert q.facts[1] in [p["text"] for p in out["premises"]]


def test_a_learner_that_knows_the_world_answers_heldout_trees_right():
    """The tree (grow + model evidence) carries a learner's knowledge to the root: with every fact known,
    held-out tree accuracy is 1; with none, it is near chance."""
    from argtree.questions import evaluate_questions, parse_questions

    world = make_world(0, 12)
    _, held = world.split()
    qs = parse_questions(json.dumps(to_records(held)))
    facts = {normalize_statement(k): v for k, v in world.statements().items()}
    full = evaluate_questions(WorldLearner(WorldLearner.vocab_of(world), {"facts": facts}), qs, budget=1)
    assert full["tree"]["accuracy"] == 1.0 and full["direct"]["accuracy"] == 1.0
    blank = evaluate_questions(WorldLearner(WorldLearner.vocab_of(world)), qs, budget=1)
    assert blank["tree"]["accuracy"] <= 0.65 and blank["direct"]["accuracy"] <= 0.65


# -- rounds of argtree improve on the world ---------------------------------------------------------------------


def _run(tmp_path, backend, policy="voi", rounds=2, probe=0):
    """Two rounds of argtree improve on a 6-person world (about 3 s at load 5 on 2 cores; most of it
    improve's per-round curve plot)."""
    pytest.importorskip("sqlalchemy")
    from argtree.commands.bench import run_world_policy

    world = make_world(0, 6)
    train, held = world.split()
    tf, hf = tmp_path / "train.json", tmp_path / "held.json"
    write_questions(train, tf)
    write_questions(held, hf)
    out = run_world_policy(world, str(tf), str(hf), tmp_path / f"run-{backend}-{policy}", policy=policy, seed=0,
                           rounds=rounds, per_round=4, answers=2, backend=backend, steps=1, budget=1, eval_budget=1,
                           probe=probe)
    return world, out, tmp_path / f"run-{backend}-{policy}"


def _labels_and_facts(rundir):
    from sqlalchemy import select

    from argtree.store import Annotator, Label, Proposition, session_scope

    url = f"sqlite:///{rundir / 'argtree.db'}"
    with session_scope(url) as s:
        rows = s.execute(select(Proposition.text, Label.value, Annotator.name).join(
            Label, Label.proposition_id == Proposition.id).join(Annotator, Annotator.id == Label.annotator_id)).all()
    facts = []
    for path in sorted((rundir / "work").glob("run-*/r*/sft.jsonl")):
        facts += [json.loads(line) for line in path.read_text().splitlines() if '"fact"' in line]
    return rows, facts


def test_two_rounds_with_the_fake_backend_and_the_recording_trainer(tmp_path):
    world, out, rundir = _run(tmp_path, "fake")
    rows = out["rows"]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r["tree_accuracy"] is not None and r["direct_accuracy"] is not None for r in rows)
    # the fake's premises are never the world's statements: the oracle answers none, and says so
    assert all(r["answers"] == 0 for r in rows)
    assert rows[1]["premise_quality_train"] == 0.0 and rows[0]["premise_quality_heldout"] == 0.0
    labels, facts = _labels_and_facts(rundir)
    assert not [r for r in labels if r.name == "oracle-world"] and not facts
    assert (rundir / "work" / f"run-{out['run_id']}" / "curve.png").exists()


def test_two_rounds_with_the_learner_carry_oracle_answers_into_training_data(tmp_path):
    world, out, rundir = _run(tmp_path, "learner", probe=1)
    rows = out["rows"]
    # test-time answers on the final default's held-out trees: none at k = 0, some at k = 1, both policies
    assert [x["k"] for x in out["probe"]["voi"]] == [0, 1] and out["probe"]["voi"][0]["answered"] == 0
    assert out["probe"]["voi"][1]["answered"] > 0 and out["probe"]["random"][1]["answered"] > 0
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[1]["answers"] > 0 and rows[2]["answers_total"] >= rows[1]["answers_total"]
    assert rows[1]["premise_quality_train"] > 0.5
    labels, facts = _labels_and_facts(rundir)
    ours = [r for r in labels if r.name == "oracle-world"]
    assert len(ours) == rows[-1]["answers_total"]
    assert all(world.lookup(r.text) is r.value for r in ours)        # every answer is the world's truth
    assert facts and all(r["argtree"]["provenance"]["label_sources"] == ["dataset"] for r in facts)
    for r in facts:  # the facts taught are exactly the world's
        stmt = re.search(r"^Statement: (.*)$", r["messages"][-2]["content"], re.M).group(1)
        assert world.lookup(stmt) is (r["messages"][-1]["content"] == "Yes")
    # the candidate of round 1 knows what round 1's oracle said
    known = json.loads((rundir / "versions" / rows[1]["version"] / "world_learner.json").read_text())["facts"]
    assert len(known) >= rows[1]["answers"] and all(world.lookup(k) is v for k, v in known.items())


def test_settled_facts_cover_a_question_only_when_all_its_facts_are_settled():
    world = make_world(0, 12)
    p = world.people[0]
    q = world.question("swim", p)
    t = world.lives_in[p]
    wrong = next(x for x in world.towns if x != t)
    # the true link and the coast settle it; a false link ("does not live in" another town) does not
    assert world.covered(q, world.settled({f"{p} lives in {t}.": True, f"{t} is on the coast.": world.coastal[t]}))
    assert not world.covered(q, world.settled({f"{p} lives in {wrong}.": False, f"{t} is on the coast.": True}))
    # either form of an attribute settles it; text outside the world settles nothing
    assert world.covered(q, world.settled({f"{p} does not live in {t}.": False,
                                           f"{t} is not on the coast.": not world.coastal[t]}))
    assert world.settled({"Velra can swim.": True, f"Can {p} swim?": True}) == set()


def test_gold_facts_trainer_adds_the_used_questions_gold_facts(tmp_path):
    from argtree.commands.bench import GoldFactsTrainer
    from argtree.datasets import distill_records, read_jsonl, write_jsonl
    from argtree.expand import direct_prompt

    world = make_world(0, 12)
    train, held = world.split()
    used = train[:3]
    data = [r for q in used for r in distill_records(direct_prompt(q.question), float(q.answer), "gold", {"qid": q.qid})]
    write_jsonl(data, tmp_path / "sft.jsonl")
    trainer = GoldFactsTrainer(LearnerTrainer(), world)
    info = trainer.sft(str(tmp_path / "sft.jsonl"), None, str(tmp_path / "v1"), steps=1)
    gold = read_jsonl(tmp_path / "sft-gold.jsonl")[len(data):]
    facts = {r["messages"][-2]["content"].split("Statement: ")[1] for r in gold if r["argtree"]["kind"] == "fact"}
    assert facts == {f for q in used for f in q.facts}
    assert all(r["argtree"]["provenance"]["source"] == "gold facts" for r in gold)
    assert sum(r["argtree"]["kind"] == "expansion" for r in gold) == len(used)
    assert info["gold_records"] == len(gold) and info["learned"]["facts"] == len(facts)
    # nothing about the held-out questions is added unless a used question shares the fact
    held_only = {f for q in held for f in q.facts} - {f for q in used for f in q.facts}
    assert held_only and not facts & held_only


def test_argtree_eval_reads_a_world_question_file(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from argtree.cli import main

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path / "home"))
    _, held = make_world(0, 6).split()
    path = tmp_path / "held.json"
    write_questions(held, path)
    r = CliRunner().invoke(main, ["eval", "--questions", str(path), "--backend", "fake", "--budget", "0", "--part",
                                  "all", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["n"] == len(held) and doc["share_yes"] == 0.5


def test_bench_world_refuses_more_rounds_than_questions(tmp_path):
    from click.testing import CliRunner

    from argtree.cli import main

    r = CliRunner().invoke(main, ["bench", "world", "--backend", "fake", "--entities", "3", "--rounds", "50",
                                  "--per-round", "10", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "training questions" in r.output
