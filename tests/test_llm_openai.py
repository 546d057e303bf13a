"""The openai backend.

Error paths run against a small standard-library stub server that replays
recorded responses (server errors, timeouts, bodies that are not what the API
promises, an older server that only knows ``json_object``).  The happy path
runs against a real OpenAI-compatible server: llama-cpp-python's, serving the
bundled GGUF, started by the test (marked ``model``).
"""

import json
import math
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
    """Replays (status, body, delay[, headers]) per request; records request bodies and the most requests it
    had in flight at once.  ``delay`` stands for a slow server (the client's timeout is what is tested)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        self.in_flight = self.max_in_flight = 0
        lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    stub.requests.append(body)
                    reply = stub.replies.pop(0) if stub.replies else (500, {"error": "no more"}, 0)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                status, payload, delay, *more = reply
                time.sleep(delay)
                with lock:
                    stub.in_flight -= 1
                if payload is None:  # hang up without an answer (a server that died mid-request)
                    self.close_connection = True
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in (more[0] if more else {}).items():
                        self.send_header(k, v)
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
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

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
    b = OpenAIBackend(s.url, "m", timeout=0.5, concurrency=1, retries=0)
    (g,) = b.generate_json(["p"], expansion_schema("for"))
    assert not g.ok and expect in g.error
    assert len(s.requests) == 1 and b.retried == 0


def test_connection_refused_is_an_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    b = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout=2, retries=2, backoff=0.001)
    g = b.generate_json(["a", "b"], expansion_schema("for"))
    assert all(not x.ok and "connection failed" in x.error for x in g)
    assert b.retried == 4  # two retries for each prompt, then it gives up
    (p,) = b.score_yes(["Is it?"])
    assert math.isnan(p) and b.last_scoring_misses == 1 and b.scoring_failures == 1
    assert "connection failed" in b.last_scoring_errors[0]


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
    r = grow("Should cities ban cars?", OpenAIBackend(s.url, "m", concurrency=1, retries=0),
             GrowConfig(expansions=2, retries=2))
    assert len(r.tree) == 1 and r.failures and "HTTP 500" in r.failures[0]["errors"][0]


# -- retries, backoff, timeouts and concurrency against the stub server ------------------------------------

FAST = {"backoff": 0.001, "max_backoff": 0.01}  # real waits, just short: the test is what is retried, not how long


@pytest.mark.parametrize("first", [
    (429, {"error": "rate limited"}, 0),
    (500, {"error": "boom"}, 0),
    (502, b"<html>bad gateway</html>", 0),
    (503, {"error": "overloaded"}, 0),
    (200, completion("late"), 1.0),  # slower than the timeout
    (200, None, 0),                  # the connection dropped without an answer
])
def test_transient_failures_are_retried_until_an_answer(stub, first):
    s = stub(first, first, (200, completion(json.dumps(OK_ANSWER)), 0))
    b = OpenAIBackend(s.url, "m", timeout=0.3, concurrency=1, retries=3, **FAST)
    (g,) = b.generate_json(["p"], expansion_schema("for"))
    assert g.ok and json.loads(g.text) == OK_ANSWER
    assert len(s.requests) == 3 and b.retried == 2
    assert s.requests[0] == s.requests[2]  # the same request again


def test_retries_stop_after_the_limit_and_say_why(stub):
    s = stub(*[(503, {"error": "overloaded"}, 0)] * 5)
    b = OpenAIBackend(s.url, "m", concurrency=1, retries=2, **FAST)
    (g,) = b.generate_json(["p"], expansion_schema("for"))
    assert not g.ok and "HTTP 503" in g.error and "still failing after 2 retries" in g.error
    assert len(s.requests) == 3 and b.retried == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(stub, status):
    s = stub((status, {"error": "no"}, 0), (200, completion(json.dumps(OK_ANSWER)), 0))
    b = OpenAIBackend(s.url, "m", concurrency=1, retries=3, **FAST)
    (g,) = b.generate_json(["p"], expansion_schema("for"))
    assert not g.ok and f"HTTP {status}" in g.error and len(s.requests) == 1 and b.retried == 0


def test_retry_after_of_a_429_is_the_least_wait():
    from argtree.llm.openai import _retry_after

    def err(status, headers):
        req = httpx.Request("POST", "http://x/v1/chat/completions")
        return httpx.HTTPStatusError("x", request=req, response=httpx.Response(status, headers=headers, request=req))

    assert _retry_after(err(429, {"Retry-After": "3"}), 30) == 3.0
    assert _retry_after(err(429, {"Retry-After": "999"}), 30) == 30.0  # capped
    assert _retry_after(err(429, {"Retry-After": "Wed, 21 Oct 2015"}), 30) == 0.0
    assert _retry_after(err(503, {}), 30) == 0.0 and _retry_after(None, 30) == 0.0


def test_backoff_is_exponential_with_jitter():
    from tenacity import RetryCallState

    b = OpenAIBackend("http://127.0.0.1:9/v1", "m", backoff=1.0, max_backoff=8.0)
    seen = {}
    for n in (1, 2, 3, 6):
        state = RetryCallState(None, None, (), {})
        state.attempt_number = n
        seen[n] = [b._wait(state) for _ in range(300)]
        assert all(0 <= w <= min(8.0, 2 ** (n - 1)) for w in seen[n])
        assert len(set(seen[n])) > 250  # random (jitter), not a fixed schedule
    assert max(seen[1]) <= 1.0 < max(seen[2]) and max(seen[6]) > 6.0  # the ceiling doubles, up to max_backoff
    # A 429's Retry-After is a floor under the jitter.
    req = httpx.Request("POST", "http://x/v1/chat/completions")
    state = RetryCallState(None, None, (), {})
    state.attempt_number = 1
    state.set_exception((httpx.HTTPStatusError, httpx.HTTPStatusError(
        "x", request=req, response=httpx.Response(429, headers={"Retry-After": "5"}, request=req)), None))
    assert all(b._wait(state) == 5.0 for _ in range(50))


def test_concurrency_caps_requests_in_flight(stub):
    answers = [(200, completion(json.dumps(OK_ANSWER)), 0.2)] * 8
    s = stub(*answers)
    b = OpenAIBackend(s.url, "m", concurrency=2, retries=0)
    gens = b.generate_json([f"p{i}" for i in range(8)], expansion_schema("for"))
    assert all(g.ok for g in gens) and len(s.requests) == 8
    assert s.max_in_flight == 2


@pytest.mark.parametrize("timeout, concurrency", [(0, 1), (-1, 1), (float("nan"), 1), (1, 0)])
def test_bad_timeout_or_concurrency_is_refused(timeout, concurrency):
    with pytest.raises(ValueError):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", timeout=timeout, concurrency=concurrency)


# -- scoring failures: counted, explained, never a made-up 0.5 ---------------------------------------------

def _logprobs(pairs):
    top = [{"token": t, "logprob": math.log(p)} for t, p in pairs]
    return {"choices": [{"message": {"content": top[0]["token"]},
                         "logprobs": {"content": [{"token": top[0]["token"], "top_logprobs": top}]}}]}


def test_scoring_failures_are_nan_counted_and_explained(stub):
    s = stub((200, _logprobs([("Yes", 0.6), ("No", 0.2)]), 0),
             (500, {"error": "down"}, 0),
             (200, completion("Yes"), 0),                       # no logprobs in the body
             (200, _logprobs([("Maybe", 0.9), ("Perhaps", 0.1)]), 0))
    b = OpenAIBackend(s.url, "m", concurrency=1, retries=0)
    p = b.score_yes(["a?", "b?", "c?", "d?"])
    assert p[0] == pytest.approx(0.75) and all(math.isnan(x) for x in p[1:])
    assert b.last_scoring_misses == 3 and b.scoring_failures == 3
    assert "HTTP 500" in b.last_scoring_errors[0] or any("HTTP 500" in e for e in b.last_scoring_errors)
    assert any("no logprobs" in e for e in b.last_scoring_errors)
    assert any("neither yes nor no" in e for e in b.last_scoring_errors)
    s2 = stub((200, _logprobs([("No", 0.5)]), 0))
    b.base_url = s2.url
    b.client = httpx.Client(base_url=s2.url, timeout=5)
    assert b.score_yes(["e?"]) == [0.0] and b.last_scoring_misses == 0 and b.scoring_failures == 3


def test_scoring_is_retried_too(stub):
    s = stub((429, {"error": "slow down"}, 0), (200, _logprobs([("Yes", 0.3), ("No", 0.1)]), 0))
    b = OpenAIBackend(s.url, "m", concurrency=1, retries=2, **FAST)
    assert b.score_yes(["a?"]) == [pytest.approx(0.75)] and b.retried == 1 and b.scoring_failures == 0


def test_model_oracle_abstains_where_scoring_failed(stub):
    from argtree.oracle import ModelOracle, Query

    s = stub((500, {"error": "down"}, 0), (200, _logprobs([("Yes", 0.9), ("No", 0.1)]), 0))
    b = OpenAIBackend(s.url, "m", concurrency=1, retries=0)
    a = ModelOracle(b).answer([Query("Is it?"), Query("Is that?")])
    assert a[0] is None and a[1] is not None and a[1].probability == pytest.approx(0.9)


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
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (make test installs it)")
    from argtree.llm.local import bundled_gguf

    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "w")
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
        if proc.poll() is not None:  # it died under a test: say how (shown with the failing test's output)
            print(f"llama_cpp.server exited with {proc.returncode}; its log ends:\n"
                  + log_path.read_text(errors="replace")[-3000:])
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


def test_grow_marks_premises_whose_scoring_failed_and_counts_them():
    """Expansions succeed, every log-prob scoring request fails (500): the premises keep the model's written
    credence and say so, the growth stats count the failures; no premise's credence is a made-up 0.5."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append("score" if body.get("logprobs") else "generate")
            status, payload = ((500, {"error": "no logprobs today"}) if body.get("logprobs")
                               else (200, completion(json.dumps(OK_ANSWER))))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        b = OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", concurrency=2, retries=0)
        r = grow("Should cities ban cars?", b, GrowConfig(expansions=1, credence="logprob"))
    finally:
        server.shutdown()
        server.server_close()
    premises = [r.tree[n] for n in r.tree.nodes if n != r.tree.root]
    assert premises and "score" in seen and b.scoring_failures >= len(premises)
    assert all(p.extra["credence"] == pytest.approx(0.8) for p in premises)  # the written 80%, not 0.5
    assert all("scoring failed" in p.extra["credence_source"] for p in premises)
    assert r.stats["scoring_failures"] >= 1
