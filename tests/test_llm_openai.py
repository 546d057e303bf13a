"""The openai backend.

Error paths run against a small standard-library stub server that replays
recorded responses (server errors, timeouts, bodies that are not what the API
promises, an older server that only knows ``json_object``).  The happy path
runs against a real OpenAI-compatible server: llama-cpp-python's, serving the
bundled GGUF, started by the test (marked ``model``).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from argtree.expand import Guard, answer_bound, expansion_prompt, expansion_schema, parse_expansion
from argtree.grow import GrowConfig, grow
from argtree.llm.openai import OpenAIBackend

httpx = pytest.importorskip("httpx")

OK_ANSWER = {"premises": [{"text": "Bicycles need less road space than cars.", "credence": 80,
                           "claim_if_true": 70, "claim_if_false": 30}]}


def completion(content, finish="stop", tokens=20):
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}


class Stub:
    """Replays (status, body, delay) per request; records request bodies."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                status, payload, delay = stub.replies.pop(0) if stub.replies else (500, {"error": "no more"}, 0)
                time.sleep(delay)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub():
    made = []

    def make(*replies):
        s = Stub(replies)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_request_carries_schema_model_and_seed(stub):
    s = stub((200, completion(json.dumps(OK_ANSWER)), 0))
    b = OpenAIBackend(s.url, "my-model", concurrency=1)
    (g,) = b.generate_json(["p"], expansion_schema("for"), system="sys", max_new_tokens=50, temperature=0.5, seed=3)
    assert g.ok and json.loads(g.text) == OK_ANSWER and g.tokens == 20
    req = s.requests[0]
    assert req["model"] == "my-model" and req["seed"] == 3 and req["max_tokens"] == 50
    assert req["response_format"]["type"] == "json_schema"
    assert req["response_format"]["json_schema"]["schema"] == expansion_schema("for")
    assert req["messages"][0] == {"role": "system", "content": "sys"}


@pytest.mark.parametrize("reply, expect", [
    ((500, {"error": "boom"}, 0), "HTTP 500"),
    ((503, b"<html>overloaded</html>", 0), "HTTP 503"),
    ((200, b"not json", 0), "JSONDecodeError"),
    ((200, {"choices": []}, 0), "unexpected response"),
    ((200, {"weird": 1}, 0), "unexpected response"),
    ((200, completion("x"), 2.0), "timeout"),
])
def test_server_failures_become_errors(stub, reply, expect):
    s = stub(reply)
    b = OpenAIBackend(s.url, "m", timeout=0.5, concurrency=1)
    (g,) = b.generate_json(["p"], expansion_schema("for"))
    assert not g.ok and expect in g.error


def test_connection_refused_is_an_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    b = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=2)
    g = b.generate_json(["a", "b"], expansion_schema("for"))
    assert all(not x.ok and "connection failed" in x.error for x in g)
    assert b.score_yes(["Is it?"]) == [0.5] and b.last_scoring_misses == 1


@pytest.mark.parametrize("status", [422, 500])
def test_older_server_gets_json_object_form(stub, status):
    s = stub((status, {"detail": "response_format.type: json_schema not allowed"}, 0),
             (200, completion(json.dumps(OK_ANSWER)), 0), (200, completion(json.dumps(OK_ANSWER)), 0))
    b = OpenAIBackend(s.url, "m", concurrency=1)
    b.generate_json(["p"], expansion_schema("for"))
    b.generate_json(["q"], expansion_schema("for"))
    kinds = [r["response_format"]["type"] for r in s.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert s.requests[1]["response_format"]["schema"] == expansion_schema("for")


def test_truncated_answer_is_flagged(stub):
    s = stub((200, completion('{"premises": [{"te', finish="length"), 0))
    (g,) = OpenAIBackend(s.url, "m").generate_json(["p"], expansion_schema("for"))
    assert g.truncated and parse_expansion(g.text, "for", Guard("c")).error == "not-json"


def test_score_yes_renormalizes_top_logprobs(stub):
    import math

    top = [{"token": "No", "logprob": math.log(0.5)}, {"token": "Yes", "logprob": math.log(0.3)},
           {"token": "Maybe", "logprob": math.log(0.2)}]
    body = {"choices": [{"message": {"content": "No"}, "logprobs": {"content": [{"token": "No",
                                                                                   "top_logprobs": top}]}}]}
    s = stub((200, body, 0))
    (p,) = OpenAIBackend(s.url, "m").score_yes(["Is it?"])
    assert p == pytest.approx(0.3 / 0.8)
    assert s.requests[0]["logprobs"] is True and s.requests[0]["max_tokens"] == 1


def test_grow_over_a_failing_server_keeps_the_root(stub):
    s = stub(*[(500, {"error": "down"}, 0)] * 6)
    r = grow("Should cities ban cars?", OpenAIBackend(s.url, "m", concurrency=1), GrowConfig(expansions=2, retries=2))
    assert len(r.tree) == 1 and r.failures and "HTTP 500" in r.failures[0]["errors"][0]


def test_from_option_parses_url_and_model(monkeypatch):
    b = OpenAIBackend.from_option("http://127.0.0.1:9/v1#qwen")
    assert b.base_url == "http://127.0.0.1:9/v1" and b.model == "qwen"
    monkeypatch.setenv("ARGTREE_OPENAI_BASE_URL", "http://127.0.0.1:7/v1")
    b = OpenAIBackend.from_option("llama")
    assert b.base_url == "http://127.0.0.1:7/v1" and b.model == "llama" and b.model_version == "openai:llama"


# -- the happy path, against a real server ---------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (make test installs it)")
    from argtree.llm.local import bundled_gguf

    port = _free_port()
    log = open(os.devnull, "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_gguf()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
                             "--model_alias", "smollm2", "--logits_all", "true"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not come up in 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.model
def test_real_server_structured_expansion_and_logprobs(llama_server):
    b = OpenAIBackend(llama_server, "smollm2", concurrency=2, timeout=600)
    claim = "Cities should ban cars from their centres."
    schemas = [expansion_schema("for", 1), expansion_schema("against", 1)]
    gens = b.generate_json([expansion_prompt(claim, "for", per_side=1), expansion_prompt(claim, "against", per_side=1)],
                           schemas, max_new_tokens=answer_bound(1))
    for g, stance, schema in zip(gens, ("for", "against"), schemas):
        assert g.ok, g.error
        assert not g.truncated, g.text  # the cap admits the longest answer the schema allows
        data = json.loads(g.text)  # the server's grammar makes it valid JSON of our schema
        item = data["premises"][0]
        assert set(item) == {"text", "credence", "claim_if_true", "claim_if_false"}
        # llama.cpp's schema grammar drops minimum/maximum (it once wrote 2 for a probability) but keeps
        # enums, which is why the schema lists the numbers it admits: every number is one of them.
        allowed = schema["properties"]["premises"]["items"]["properties"]
        for key in ("credence", "claim_if_true", "claim_if_false"):
            assert item[key] in allowed[key]["enum"], (key, item[key])
        for p in parse_expansion(g.text, stance, Guard(claim)).proposals:
            assert 0 <= p.credence <= 1 and 0 <= p.claim_if_true <= 1 and 0 <= p.claim_if_false <= 1
    ps = b.score_yes(["Is the following statement true? Answer Yes or No.\nStatement: Paris is in France."])
    assert 0.0 < ps[0] < 1.0 and b.last_scoring_misses == 0
    r = grow(claim, b, GrowConfig(expansions=1, per_side=1, retries=0))
    assert len(r.tree) > 1 or r.failures
