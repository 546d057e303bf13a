"""The loop's own proposals as proposer training data (issue 16): which ones teach (``workable``), the records
and their provenance, a real SQLite store filled by the loop with the fake backend, ``argtree export --kind
proposals`` and ``argtree improve``'s proposer records."""

from __future__ import annotations

import json

import pytest

from argtree.propose import ProposalGuard, label_source, loop_proposal_records, proposal_prompt, workable


def _lab(kind, *, root=False, source="human", annotator="alice", node="n1", probability=None):
    return {"node": node, "root": root, "kind": kind, "probability": probability, "source": source,
            "annotator": annotator}


def _item(tree_id, question, labels, topic="urban cycling", run=7):
    return {"tree_id": tree_id, "run": run, "topic": topic, "question": question, "labels": labels}


def test_workable_wants_an_informative_answer_and_no_ill_posed_root():
    assert workable(_item(1, "Q?", [_lab("true")])) is None
    assert workable(_item(1, "Q?", [_lab("false", root=True)])) is None            # the question itself answered
    assert workable(_item(1, "Q?", [_lab("probability", probability=0.8)])) is None
    assert workable(_item(1, "Q?", [_lab("probability", probability=0.5)])) == "no-answer"   # says nothing
    assert workable(_item(1, "Q?", [_lab("dont_know")])) == "no-answer"
    assert workable(_item(1, "Q?", [])) == "no-answer"
    # An ill-posed answer on the question counts against it, whatever else was answered ...
    assert workable(_item(1, "Q?", [_lab("true"), _lab("ill_posed", root=True, annotator="bob")])) == "ill-posed"
    # ... on a premise it does not (that premise was the problem, not the question).
    assert workable(_item(1, "Q?", [_lab("true"), _lab("ill_posed", node="n2")])) is None
    # The model judging itself is no oracle here unless asked for; the dataset oracle is.
    assert workable(_item(1, "Q?", [_lab("true", source="model")])) == "no-answer"
    assert workable(_item(1, "Q?", [_lab("true", source="model")]), sources=("model",)) is None
    assert workable(_item(1, "Q?", [_lab("true", source="dataset")])) is None
    assert workable(_item(1, "Q?", [_lab("ill_posed", root=True, source="model"), _lab("true")])) is None


def test_label_sources():
    assert label_source("alice", "annotator") == label_source("root", "admin") == "human"
    assert label_source("oracle-model", "system") == "model"
    assert label_source("oracle-dataset", "system") == label_source("oracle-facts", "system") == "dataset"
    assert label_source("imported", "system") is None


def test_loop_proposal_records_keep_the_workable_guarded_ones_with_provenance():
    items = [
        _item(3, "Is urban cycling safer in Copenhagen than in Rome?", [_lab("true")]),
        _item(1, "Do urban cycling lanes in Paris cut car traffic?", [_lab("false", root=True, source="dataset",
                                                                           annotator="oracle-dataset")]),
        _item(2, "Is urban cycling allowed on motorways in France?", [_lab("ill_posed", root=True), _lab("true")]),
        _item(4, "Is urban cycling a good idea?", [_lab("true")]),                     # evaluative: the guards
        _item(5, "Do urban cycling lanes in Paris cut car traffic?", [_lab("true")]),   # the same question again
        _item(6, "Was urban cycling common in Amsterdam in 1950?", [_lab("dont_know")]),
        _item(8, "Is coral reef bleaching seen in the Maldives?", [_lab("true", annotator="carol")],
              topic="coral reef bleaching", run=9),
        _item(9, "Is the sun a star?", [_lab("true")], topic=""),                       # a given question: no topic
    ]
    records, counts = loop_proposal_records(items)
    assert counts == {"trees": 8, "no-topic": 1, "ill-posed": 1, "no-answer": 1, "guards": 2, "records": 2,
                      "used": 3}
    coral, cycling = records   # topics sorted
    assert cycling["messages"][0] == {"role": "user", "content": proposal_prompt("urban cycling", 2)}
    assert json.loads(cycling["messages"][1]["content"]) == {"questions": [
        "Do urban cycling lanes in Paris cut car traffic?", "Is urban cycling safer in Copenhagen than in Rome?"]}
    assert cycling["messages"][1]["content"] == json.dumps(json.loads(cycling["messages"][1]["content"]))
    prov = cycling["argtree"]["provenance"]
    assert cycling["argtree"]["kind"] == "proposal"
    assert prov == {"source": "loop", "topic": "urban cycling", "runs": [7], "trees": [1, 3],
                    "label_sources": ["dataset", "human"], "annotators": ["alice", "oracle-dataset"]}
    assert coral["argtree"]["provenance"]["trees"] == [8] and coral["argtree"]["provenance"]["runs"] == [9]
    for rec in records:  # every taught question passes today's guards for its topic
        topic = rec["argtree"]["provenance"]["topic"]
        assert all(ProposalGuard(topic).check(q).ok for q in json.loads(rec["messages"][1]["content"])["questions"])
    assert loop_proposal_records(list(reversed(items))) == (records, counts)   # deterministic
    small, _ = loop_proposal_records(items, max_per_prompt=1)
    assert len(small) == 3


# -- a real SQLite store, filled by the loop with the fake backend ------------------------------------------

pytest.importorskip("sqlalchemy")


def _grow_loop(url):
    from argtree.llm.fake import FakeBackend
    from argtree.loop import LoopConfig, run_worker, start_or_resume
    from argtree.oracle import DatasetOracle
    from argtree.store.loops import LoopStore

    scope = LoopStore(url)
    cfg = LoopConfig(topics=("urban cycling",), questions=("Is the sun a star?",), per_topic=3, max_questions=4,
                     budget=2, max_rounds=0, uncertain=(0.0, 1.0))
    run_id, _, cfg = start_or_resume(scope, cfg, "oracle-dataset")
    assert run_worker(scope, run_id, FakeBackend(), DatasetOracle({})) == "all done"
    return run_id


def _answer(url, run_id):
    """alice answers a premise of the first proposed tree and calls the second's question ill-posed (with a
    premise answered too); the third gets only "don't know"; the given question's tree gets an answer."""
    from sqlalchemy import select

    from argtree.store import Node, Tree, add_annotator, session_scope, submit_label
    from argtree.store.testing import fast_password_hashing

    fast_password_hashing()
    with session_scope(url) as s:
        alice = add_annotator(s, "alice", "password123").id
        trees = list(s.scalars(select(Tree).where(Tree.status == "active").order_by(Tree.id)))
        proposed = [t for t in trees if t.meta.get("topic") == "urban cycling"]
        given = [t for t in trees if "topic" not in t.meta]
        assert len(proposed) == 3 and len(given) == 1 and all(t.meta["loop_run"] == run_id for t in trees)

        def nodes(t):
            return list(s.scalars(select(Node).where(Node.tree_id == t.id).order_by(Node.position, Node.id)))

        root = {t.id: next(n for n in nodes(t) if n.parent_id is None) for t in trees}
        premise = {t.id: next(n for n in nodes(t) if n.parent_id is not None) for t in trees}
        submit_label(s, alice, premise[proposed[0].id].proposition_id, True, request_id="a1")
        submit_label(s, alice, premise[proposed[1].id].proposition_id, False, request_id="a2")
        submit_label(s, alice, root[proposed[1].id].proposition_id, ill_posed=True, request_id="a3")
        submit_label(s, alice, premise[proposed[2].id].proposition_id, dont_know=True, request_id="a4")
        submit_label(s, alice, premise[given[0].id].proposition_id, True, request_id="a5")
        return [(t.id, t.question) for t in proposed]


def test_loop_trees_in_a_real_store_become_proposer_records(tmp_path):
    from argtree.store import session_scope
    from argtree.store.proposals import loop_proposal_items
    from argtree.store.testing import dispose, sqlite_db

    url = sqlite_db(tmp_path)
    run_id = _grow_loop(url)
    proposed = _answer(url, run_id)
    with session_scope(url, readonly=True) as s:
        items = loop_proposal_items(s)
    assert [(i["tree_id"], i["question"]) for i in items] == proposed     # the given question has no topic
    assert all(i["run"] == run_id and i["topic"] == "urban cycling" for i in items)
    kinds = [sorted((lb["kind"], lb["root"], lb["source"]) for lb in i["labels"]) for i in items]
    assert kinds[0] == [("true", False, "human")]
    assert ("ill_posed", True, "human") in kinds[1]
    assert kinds[2] == [("dont_know", False, "human")]
    records, counts = loop_proposal_records(items)
    assert counts["ill-posed"] == 1 and counts["no-answer"] == 1 and counts["used"] == 1
    (rec,) = records
    assert json.loads(rec["messages"][1]["content"]) == {"questions": [proposed[0][1]]}
    assert rec["argtree"]["provenance"] == {"source": "loop", "topic": "urban cycling", "runs": [run_id],
                                            "trees": [proposed[0][0]], "label_sources": ["human"],
                                            "annotators": ["alice"]}
    # improve's rounds take the same records, tagged with the round.
    from argtree.improve import loop_round_proposals

    with session_scope(url, readonly=True) as s:
        (imp,) = loop_round_proposals(s, run_id=42, round_no=3)
    assert imp["messages"] == rec["messages"]
    assert imp["argtree"]["provenance"] == {**rec["argtree"]["provenance"], "run": 42, "round": 3}
    dispose(url)


def test_export_kind_proposals_writes_the_records_and_a_card(tmp_path):
    from argtree.store.testing import dispose, sqlite_db
    from store_fixtures import run

    url = sqlite_db(tmp_path)
    empty = run(tmp_path, "export", "--kind", "proposals", "--format", "conversational", "--out",
                str(tmp_path / "none.jsonl"), "--database", url)
    assert empty.returncode == 2 and "no loop proposal has a tree with an informative answer" in empty.stderr
    run_id = _grow_loop(url)
    proposed = _answer(url, run_id)
    out = tmp_path / "proposals.jsonl"
    res = run(tmp_path, "export", "--kind", "proposals", "--format", "conversational", "--out", str(out),
              "--database", url, "--json")
    assert res.returncode == 0, res.stderr
    card = json.loads(res.stdout)
    (rec,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert json.loads(rec["messages"][1]["content"])["questions"] == [proposed[0][1]]
    assert rec["argtree"]["provenance"]["trees"] == [proposed[0][0]]
    assert card["kind"] == "proposals" and card["records"] == {"all": 1}
    assert card["counts"]["trees"] == 3 and card["sources"] == [f"tree:{proposed[0][0]}"]
    assert json.loads((tmp_path / "proposals.card.json").read_text())["files"]["all"]["records"] == 1
    # finetune reads them as conversational records.
    from argtree.finetune import sft_records

    fmt, rows = sft_records([rec], "proposals")
    assert fmt == "conversational" and len(rows) == 1
    bad = run(tmp_path, "export", "--kind", "proposals", "--format", "preference", "--out", str(out),
              "--database", url)
    assert bad.returncode == 2 and "conversational or openai-chat" in bad.stderr
    dispose(url)


# -- which model proposes ---------------------------------------------------------------------------------

def test_the_loop_proposes_with_the_shipped_proposer_when_the_model_is_the_bundled_one(tmp_path, monkeypatch):
    from argtree.commands.loop import _proposer_name
    from argtree.llm import local

    shipped = tmp_path / "proposer-lora"
    shipped.mkdir()
    (shipped / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(local, "shipped_proposer", lambda: str(shipped))
    monkeypatch.setattr(local, "default_model", lambda: local.ADAPTER)
    for model in (None, "default", "adapter", "bundled", "base"):
        assert _proposer_name("local", model, None) == "proposer", model
    assert local.resolve_model("proposer") == ("adapter", str(shipped))
    assert _proposer_name("local", str(tmp_path), None) is None            # a model of its own proposes itself
    assert _proposer_name("fake", None, None) is None
    assert _proposer_name("openai", "http://x", None) is None
    assert _proposer_name("local", None, "same") is None                     # asked for: the model itself
    assert _proposer_name("fake", None, "other") == "other"
    # A version argtree improve's gate made the default learned proposals itself: it proposes.
    monkeypatch.setattr(local, "default_model", lambda: "improve3-r2")
    assert _proposer_name("local", None, None) is None
    assert _proposer_name("local", "adapter", None) == "proposer"
    # Without the shipped proposer the model proposes.
    monkeypatch.setattr(local, "shipped_proposer", lambda: None)
    assert _proposer_name("local", "adapter", None) is None


def test_run_worker_proposes_with_the_proposer_and_grows_with_the_model(tmp_path):
    from argtree.llm.fake import FakeBackend
    from argtree.loop import LoopConfig, run_worker, start_or_resume
    from argtree.oracle import DatasetOracle
    from argtree.store.loops import LoopStore
    from argtree.store.testing import dispose, sqlite_db

    class Counting(FakeBackend):
        def generate_json(self, prompts, schema, **kw):
            self.seen = getattr(self, "seen", []) + list(prompts)
            return super().generate_json(prompts, schema, **kw)

    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    cfg = LoopConfig(topics=("urban cycling",), per_topic=2, max_questions=2, budget=1, max_rounds=0)
    run_id, _, cfg = start_or_resume(scope, cfg, "oracle-dataset")
    proposer = Counting([json.dumps({"questions": ["Is urban cycling common in Utrecht?",
                                                   "Was urban cycling banned in Shanghai in 1990?"]})])
    model = Counting()
    assert run_worker(scope, run_id, model, DatasetOracle({}), proposer=proposer) == "all done"
    assert proposer.seen == [proposal_prompt("urban cycling", 2)]
    assert model.seen and not any(p.startswith("Topic: ") for p in model.seen)   # it grew the trees
    from argtree.store import list_trees, session_scope

    with session_scope(url) as s:
        assert sorted(t.question for t in list_trees(s, status="active")) == [
            "Is urban cycling common in Utrecht?", "Was urban cycling banned in Shanghai in 1990?"]
    dispose(url)
