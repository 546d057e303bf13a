"""Bad input (issue 14): mutated tree files through `infer`, `voi` and `import`, terminal-safe output, bad settings.

The fuzz test mutates the example file with a seeded generator (structure: keys deleted or set to
nasty values, nodes duplicated, parents rewired, evidence and extra keys added; text: raw NaN,
401- and 5,000-digit numbers, 1e400, lone surrogates, NUL, over-long text and ids, escape
sequences; bytes: truncation, stray bytes, a BOM) and runs every file through the three commands:
no traceback, every rejection one line that names what is wrong and is the same in all three,
every acceptance the same in all three, and the beliefs after import + dump equal infer's.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.io import from_dict, parse, validate
from argtree.text import escape_controls
from argtree.tree import TreeError

pytest.importorskip("sqlalchemy")  # import needs the store extra

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "argtree", "examples", "remote_work.json")
N_FAST = 300

# Raw JSON tokens a mutation may put anywhere (they are spliced into the text, so NaN and
# over-long numbers reach the parser as written).
RAW = [
    "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "-1" + "0" * 400, "1" + "0" * 5000, "1e400", "-1e-400",
    '"\\ud800"', '"a\\udc00b"', '"\\u0000"', '"x\\u0000y"', '""', '"   "', '"\\t\\n"',
    json.dumps("x" * 10_001), json.dumps("y" * 201), json.dumps("\u0958" * 5_001), json.dumps("z" * 70_000),
    json.dumps("\x1b]0;owned\x07\x1b[2J clear"), json.dumps("RTL \u202eevil"),
    json.dumps("\x1b]8;;http://example.invalid\x1b\\link\x1b]8;;\x1b\\"), json.dumps("\x9b31m C1"),
    "null", "true", "false", "0", "1", "-0.5", "1.5", "0.5", "0.9", "2", "[]", "{}", '[1, "a"]', '{"a": NaN}',
    "[" * 40 + "]" * 40, '"q"', '"a"', '"b1"', '"model"', '"nope"', '"a\\nb"',
]
NODE_FIELDS = ["id", "parent", "text", "prior", "p_if_true", "p_if_false", "rationale", "credence", "model_output"]
EV_FIELDS = ["node", "value", "reliability", "source", "annotator"]


class Raw(str):
    """A placeholder for a raw token in the document."""


def _mutate(doc: dict, rnd: random.Random, raws: list[str], tag: str) -> None:
    def nasty(text=False):
        token = rnd.choice(RAW)
        if text and token.startswith('"') and "\\u" not in token and json.loads(token).strip():
            token = f'"{tag} {token[1:]}'  # a text that may be accepted stays unique to this file
        raws.append(token)
        return f"@@RAW{len(raws) - 1}@@"

    nodes = doc["nodes"] if isinstance(doc.get("nodes"), list) else None
    ev = doc["evidence"] if isinstance(doc.get("evidence"), list) else None
    kind = rnd.randrange(12)
    if kind <= 3 and nodes:
        node = rnd.choice(nodes)
        if isinstance(node, dict):
            key = rnd.choice(NODE_FIELDS)
            node[key] = nasty(text=key == "text")
    elif kind == 4 and nodes:
        node = rnd.choice(nodes)
        if isinstance(node, dict) and node:
            del node[rnd.choice(sorted(node))]
    elif kind == 5 and nodes:
        nodes.insert(rnd.randrange(len(nodes) + 1), copy.deepcopy(rnd.choice(nodes)))
    elif kind == 6 and nodes:
        a, b = rnd.choice(nodes), rnd.choice(nodes)
        if isinstance(a, dict) and isinstance(b, dict) and "id" in b:
            a["parent"] = b["id"]
    elif kind == 7 and nodes and len(nodes) > 1:
        nodes.pop(rnd.randrange(len(nodes)))
    elif kind == 8 and ev is not None:
        ids = [n.get("id") for n in nodes or [] if isinstance(n, dict)] or ["q"]
        entry = {"node": rnd.choice(ids), "value": rnd.random() < 0.5}
        if rnd.random() < 0.5:
            entry["reliability"] = rnd.choice([0.6, 0.9, 0.5, 1, 0.75])
        if rnd.random() < 0.3:
            entry["source"] = "model"
        ev.append(entry)
    elif kind == 9 and ev:
        entry = rnd.choice(ev)
        if isinstance(entry, dict):
            entry[rnd.choice(EV_FIELDS)] = nasty()
    elif kind == 10:
        doc[rnd.choice(["format", "nodes", "evidence", "model", "growth"])] = nasty()
    elif nodes:
        node = rnd.choice(nodes)
        if isinstance(node, dict):
            node["rationale"] = {"why": nasty(), "more": [nasty(), 1]}


def mutated_files(n: int, seed: int = 14):
    """``n`` (name, bytes) pairs, reproducible from ``seed``.  Every node text gets a per-file tag so
    imported files share no proposition (labels of one file never reach another's tree)."""
    base = json.load(open(EXAMPLE, encoding="utf-8"))
    base["evidence"].append({"node": "c1", "value": True, "reliability": 0.7, "source": "model"})
    rnd = random.Random(seed)
    for k in range(n):
        doc = copy.deepcopy(base)
        tag = f"[f{seed}-{k}]"
        for node in doc["nodes"]:
            node["text"] = f"{tag} {node['text']}"
        raws: list[str] = []
        for _ in range(rnd.choice([0, 1, 1, 1, 2, 3])):
            _mutate(doc, rnd, raws, tag)
        text = json.dumps(doc, ensure_ascii=False)
        for i, token in enumerate(raws):
            text = text.replace(f'"@@RAW{i}@@"', token)
        data = text.encode("utf-8")
        r = rnd.random()
        if r < 0.05:
            data = data[: rnd.randrange(len(data))]
        elif r < 0.08:
            i = rnd.randrange(len(data))
            data = data[:i] + rnd.choice([b"\xff", b"\x00", b",", b"}", b'"']) + data[i:]
        elif r < 0.09:
            data = b"\xef\xbb\xbf" + data
        yield f"m{k:04d}", data


NAMED = re.compile(r"node '|field '|nodes\[\d+\]|evidence\[\d+\]|^not JSON|^not UTF-8|"
                   r"the top level|no root|the file is")


def _invoke(home, *args):
    env = {"ARGTREE_DATABASE_URL": None, "ARGTREE_HOME": str(home), "ARGTREE_SQLITE_SYNCHRONOUS": "NORMAL",
           "COLUMNS": "400"}
    res = CliRunner().invoke(main, list(args), env=env)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"{args}: {type(res.exception).__name__}: {res.exception}") from res.exception
    return res


def _spec_error(data: bytes) -> str | None:
    try:
        from_dict(parse(data)[0])
    except TreeError as err:
        return str(err)
    return None


def _check_files(files, tmp_path, home):
    outcomes = {"accepted": 0, "rejected": 0}
    for name, data in files:
        path = tmp_path / f"{name}.json"
        path.write_bytes(data)
        results = {cmd: _invoke(home, cmd, str(path), "--json") for cmd in ("infer", "voi", "import")}
        codes = {cmd: r.exit_code for cmd, r in results.items()}
        assert set(codes.values()) <= {0, 2}, (name, codes)
        assert len(set(codes.values())) == 1, f"{name}: the commands disagree: {codes} " + \
            " | ".join(r.stderr for r in results.values())
        if codes["infer"] == 2:
            outcomes["rejected"] += 1
            errs = {cmd: r.stderr for cmd, r in results.items()}
            for cmd, err in errs.items():
                assert err.endswith("\n") and err.count("\n") == 1, (name, cmd, err)
                assert err.startswith(f"argtree: error: {path}: "), (name, cmd, err)
                assert results[cmd].stdout == ""
            assert len(set(errs.values())) == 1, (name, errs)
            message = errs["infer"][len(f"argtree: error: {path}: "):].strip()
            assert NAMED.search(message), (name, message)
            spec = _spec_error(data)  # the per-node specification gives the very same message
            assert spec is not None and message == escape_controls(spec), (name, message, spec)
            continue
        outcomes["accepted"] += 1
        beliefs = json.loads(results["infer"].stdout)["beliefs"]
        tid = json.loads(results["import"].stdout)["trees"][str(path)]
        dumped = _invoke(home, "dump", str(tid))
        assert dumped.exit_code == 0, dumped.stderr
        back = tmp_path / f"{name}.back.json"
        back.write_text(dumped.stdout, encoding="utf-8")
        again = _invoke(home, "infer", str(back), "--json")
        assert again.exit_code == 0, (name, again.stderr)
        assert json.loads(again.stdout)["beliefs"] == pytest.approx(beliefs, abs=1e-9), name
    return outcomes


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-home")
    res = _invoke(home, "db", "upgrade")
    assert res.exit_code == 0, res.stderr
    return home


def test_mutated_files_through_infer_voi_and_import(tmp_path, home):
    outcomes = _check_files(mutated_files(N_FAST), tmp_path, home)
    assert sum(outcomes.values()) == N_FAST
    # The generator must exercise both sides, or the test proves little.
    assert outcomes["accepted"] >= 30 and outcomes["rejected"] >= 100, outcomes


@pytest.mark.slow
def test_many_more_mutated_files(tmp_path, home):
    outcomes = _check_files(mutated_files(3000, seed=1514), tmp_path, home)
    assert outcomes["accepted"] >= 300 and outcomes["rejected"] >= 1000, outcomes


def test_columnar_and_per_node_validators_agree_on_mutated_files():
    """Where msgspec reads the file cleanly the columnar validator runs; its verdict and message must
    be the per-node specification's (tests/test_columnar.py does the same on the bad-input matrix)."""
    clean = 0
    for name, data in mutated_files(N_FAST):
        try:
            doc, is_clean = parse(data)
        except TreeError:
            continue
        if not is_clean:
            continue
        clean += 1
        try:
            validate(doc, len(data), raw=data)
            columnar = None
        except TreeError as err:
            columnar = str(err)
        assert columnar == _spec_error(data), name
    assert clean >= 150


# -- the issue's reproductions, one by one ------------------------------------------------

def _doc(nodes_json: str, evidence_json: str = "[]", top: str = "") -> str:
    return f'{{"format": "argtree/1"{top}, "nodes": [{nodes_json}], "evidence": {evidence_json}}}'


ROOT = '{"id": "q", "text": "Q?", "prior": 0.5}'


def _child(**fields) -> str:
    base = {"id": "a", "parent": "q", "text": "A.", "p_if_true": 0.7, "p_if_false": 0.3}
    parts = [f'"{k}": {v if isinstance(v, Raw) else json.dumps(v)}' for k, v in {**base, **fields}.items()]
    return "{" + ", ".join(parts) + "}"


CASES = {
    "401-digit probability": (_doc(f"{ROOT}, {_child(p_if_true=Raw('1' + '0' * 400))}"), "a", "p_if_true"),
    "5000-digit literal": (_doc(f"{ROOT}, {_child(p_if_false=Raw('1' + '0' * 5000))}"), "a", "p_if_false"),
    "5000-digit literal in an extra key": (_doc(f"{ROOT}, {_child(score=Raw('9' * 5000))}"), "a", "score"),
    "1e400 probability": (_doc(f"{ROOT}, {_child(p_if_true=Raw('1e400'))}"), "a", "p_if_true"),
    "surrogate in text": (_doc(ROOT + ", " + _child(text=Raw('"\\ud800"'))), "a", "text"),
    "surrogate in id": (_doc(f'{ROOT}, {{"id": "\\ud800", "parent": "q", "text": "A.", "p_if_true": 0.5, '
                             f'"p_if_false": 0.5}}'), None, "id"),
    "surrogate in an extra key": (_doc(ROOT + ", " + _child(rationale=Raw('"\\udfff"'))), "a", "rationale"),
    "NaN in an extra key": (_doc(f"{ROOT}, {_child(credence=Raw('NaN'))}"), "a", "credence"),
    "Infinity deep in an extra key": (_doc(ROOT + ", " + _child(model_output=Raw('{"x": [1, -Infinity]}'))),
                                      "a", "model_output"),
    "NaN in meta": (_doc(ROOT, top=', "model": {"t": NaN}'), None, "model"),
    "NaN reliability": (_doc(f"{ROOT}, {_child()}", '[{"node": "a", "value": true, "reliability": NaN}]'),
                        "a", "reliability"),
    "huge reliability": (_doc(f"{ROOT}, {_child()}", '[{"node": "a", "value": true, "reliability": 1' + "0" * 400
                              + "}]"), "a", "reliability"),
    "empty text": (_doc(f"{ROOT}, {_child(text='')}"), "a", "text"),
    "blank text": (_doc(f"{ROOT}, {_child(text=' ' * 3)}"), "a", "text"),
    "NUL in text": (_doc(f"{ROOT}, {_child(text='a' + chr(0) + 'b')}"), "a", "text"),
    "10 MB text": (_doc(f"{ROOT}, {_child(text='x' * 10_000_000)}"), "a", "text"),
    "text that grows past the limit under NFC": (_doc(f"{ROOT}, {_child(text=chr(0x958) * 5001)}"), "a", "text"),
    "201-char id": (_doc(f'{ROOT}, {_child(id="i" * 201)}'), None, "id"),
    "10 MB rationale": (_doc(f"{ROOT}, {_child(rationale='r' * 10_000_000)}"), "a", "rationale"),
    "NUL in an evidence extra key": (_doc(f"{ROOT}, {_child()}", '[{"node": "a", "value": true, "who": "\\u0000"}]'),
                                     "a", "who"),
    "model evidence reliability 1": (_doc(f"{ROOT}, {_child()}",
                                          '[{"node": "a", "value": true, "reliability": 1, "source": "model"}]'),
                                     "a", "reliability"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_issue_reproductions_are_one_named_line_in_all_three_commands(tmp_path, home, name):
    text, node, field = CASES[name]
    path = tmp_path / "t.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    errs = set()
    for cmd in ("infer", "voi", "import"):
        res = _invoke(home, cmd, str(path), "--json")
        assert res.exit_code == 2, (cmd, res.stdout, res.stderr)
        err = res.stderr
        assert err.count("\n") == 1 and err.startswith("argtree: error: ") and len(err) < 400, (cmd, err)
        if node is not None:
            assert f"node {node!r}" in err, err
        assert f"field {field!r}" in err, err
        errs.add(err)
    assert len(errs) == 1, errs


def test_model_evidence_with_reliability_one_half_is_accepted(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(_doc(f"{ROOT}, {_child()}", '[{"node": "a", "value": true, "reliability": 0.5, '
                                                 '"source": "model"}]'))
    res = _invoke(tmp_path, "infer", str(path), "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["beliefs"]["a"] == pytest.approx(0.5)


def test_limits_on_nodes_and_evidence_counts(tmp_path, monkeypatch):
    import argtree.io as io

    monkeypatch.setattr(io, "MAX_NODES", 2)
    monkeypatch.setattr(io, "MAX_EVIDENCE", 1)
    path = tmp_path / "t.json"
    path.write_text(_doc(f"{ROOT}, {_child()}, {_child(id='b')}"))
    res = _invoke(tmp_path, "infer", str(path), "--json")
    assert res.exit_code == 2 and "field 'nodes'" in res.stderr and "the limit is 2" in res.stderr
    path.write_text(_doc(f"{ROOT}, {_child()}", '[{"node": "a", "value": true}, {"node": "a", "value": true}]'))
    res = _invoke(tmp_path, "voi", str(path), "--json")
    assert res.exit_code == 2 and "field 'evidence'" in res.stderr and "the limit is 1" in res.stderr


# -- terminal-safe human output ---------------------------------------------------------

EVIL = "RTL \u202eevil \x1b]0;owned\x07\x1b[2J"
LINK = "\x1b]8;;http://example.invalid\x1b\\link\x1b]8;;\x1b\\ \x9b31m C1"


def test_human_output_shows_control_and_bidi_characters_escaped(tmp_path, home):
    doc = json.load(open(EXAMPLE, encoding="utf-8"))
    doc["nodes"][1]["text"] = EVIL
    doc["nodes"][4]["text"] = LINK
    doc["nodes"][2]["id"] = "b\x1b[31m"
    for n in doc["nodes"]:
        if n.get("parent") == "b":
            n["parent"] = "b\x1b[31m"
    doc["evidence"] = [e for e in doc["evidence"] if e["node"] != "b"]
    path = tmp_path / "evil\x1b[2J.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    for args in (["infer", str(path)], ["voi", str(path)], ["import", str(path)]):
        res = _invoke(home, *args)
        assert res.exit_code == 0, res.stderr
        out = res.stdout + res.stderr
        for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert raw not in out, (args, out)
        if args[0] != "import":
            assert "\\x1b]0;owned\\x07" in out and "\\u202e" in out, out
            assert "\\x1b]8;;http" in out and "\\x9b31m" in out, out
        else:
            assert "evil\\x1b[2J.json" in out
    tid = json.loads(_invoke(home, "import", str(path), "--json").stdout)["trees"][str(path)]
    dumped = _invoke(home, "dump", str(tid))
    assert dumped.exit_code == 0 and "\x1b" not in dumped.stdout and "\u202e" not in dumped.stdout
    back = json.loads(dumped.stdout)  # the JSON still holds the exact text
    assert back["nodes"][1]["text"] == EVIL


def test_bad_file_errors_are_escaped(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(_doc(ROOT + ", " + _child(parent="zz\x1b[2J")))
    res = _invoke(tmp_path, "infer", str(path), "--json")
    assert res.exit_code == 2 and "\x1b" not in res.stderr and "\\x1b[2J" in res.stderr


# -- settings ----------------------------------------------------------------------------

def _real(env_extra, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("ARGTREE_DATABASE_URL", "ARGTREE_HOME")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "argtree.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("setting, expect", [
    ({"ARGTREE_HOME": "FILE"}, "is not a directory"),
    ({"ARGTREE_DATABASE_URL": "garbage://x"}, "no database driver for 'garbage'"),
    ({"ARGTREE_DATABASE_URL": "notaurl"}, "is not a database URL"),
    ({"ARGTREE_DATABASE_URL": "sqlite:///MISSING/x.db"}, "does not exist"),
])
def test_bad_settings_are_one_line_and_create_nothing(tmp_path, setting, expect):
    afile = tmp_path / "a-file"
    afile.write_text("")
    env = {k: v.replace("FILE", str(afile)).replace("MISSING", str(tmp_path / "nonexistent_dir"))
           for k, v in setting.items()}
    for args in (["db", "current"], ["db", "upgrade"], ["import", EXAMPLE], ["dump", "1"]):
        res = _real(env, *args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1 and expect in res.stderr, res.stderr
    assert not (tmp_path / "nonexistent_dir").exists()


def test_default_home_is_still_created(tmp_path):
    home = tmp_path / "new-home"
    res = _real({"ARGTREE_HOME": str(home)}, "db", "upgrade", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (home / "argtree.db").exists()
