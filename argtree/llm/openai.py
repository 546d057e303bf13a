"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp, Ollama, SGLang).

This is how argtree scales past one machine: the server batches requests
from many concurrent prompts (continuous batching), so this client simply
sends a batch's prompts concurrently (``concurrency`` at a time) and lets the
serving engine do the rest.

* Structured output: ``response_format = {"type": "json_schema", ...}`` (the
  OpenAI form, spoken by vLLM, llama.cpp's llama-server, Ollama and SGLang).
  A server that rejects it (400/422/500 naming ``response_format``) is asked once more in the older
  ``{"type": "json_object", "schema": ...}`` form (llama-cpp-python's server),
  and that form is then kept for the session.
* Log-probabilities: ``logprobs=true, top_logprobs=K, max_tokens=1`` on the
  chat endpoint; P(yes) is renormalized over the yes/no spellings among the
  top tokens.  A prompt that cannot be scored (the request failed for good, no
  logprobs came back, or neither yes nor no is among the top tokens) gives
  ``nan``, never a made-up 0.5: it is counted in ``scoring_failures`` (and
  ``last_scoring_misses`` for the last call), its reason kept in
  ``last_scoring_errors``, and callers treat it as "no credence".
* Retries: a request that hits a transient failure (HTTP 429, 5xx, a timeout,
  a refused or dropped connection) is sent again up to ``retries`` times
  (default 4, ARGTREE_OPENAI_RETRIES) with
  exponential backoff and full jitter (tenacity's ``wait_random_exponential``:
  a random wait in [0, min(max_backoff, backoff * 2^(n-1))] after the n-th failure), never less than a 429's
  ``Retry-After``.  Other 4xx answers are not retried.  ``retried`` counts them.
* ``timeout`` (seconds per request) and ``concurrency`` (requests in flight at
  once) are the ``--timeout`` and ``--concurrency`` options of the commands.

Errors (connection refused, timeouts, 5xx, bad JSON bodies) come back as
``Generation.error`` once the retries are spent; nothing raises.  Configuration: ``base_url`` (e.g.
``http://127.0.0.1:8080/v1``), ``model`` (the server's model id), ``api_key``
(ARGTREE_OPENAI_API_KEY or OPENAI_API_KEY; most local servers need none).
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from .base import Generation

__all__ = ["OpenAIBackend"]

DEFAULT_URL = "http://127.0.0.1:8080/v1"
DEFAULT_TIMEOUT = 120.0     # seconds per request
DEFAULT_CONCURRENCY = 8     # requests in flight at once
DEFAULT_RETRIES = 4         # transient failures retried per request (ARGTREE_OPENAI_RETRIES)
YES = {"yes", "Yes", "YES", " yes", " Yes", "yes.", "Yes."}
NO = {"no", "No", "NO", " no", " No", "no.", "No."}


class OpenAIBackend:
    kind = "openai"

    def __init__(self, base_url: str = DEFAULT_URL, model: str | None = None, *, api_key: str | None = None,
                 timeout: float | None = None, concurrency: int | None = None, schema_mode: str = "json_schema",
                 retries: int | None = None, backoff: float = 0.5, max_backoff: float = 30.0, transport: Any = None):
        import httpx  # the llm extra

        if retries is None:
            try:
                retries = int(os.environ.get("ARGTREE_OPENAI_RETRIES", DEFAULT_RETRIES))
            except ValueError:
                raise ValueError(f"ARGTREE_OPENAI_RETRIES must be a whole number, got "
                                 f"{os.environ['ARGTREE_OPENAI_RETRIES']!r}") from None

        timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        concurrency = DEFAULT_CONCURRENCY if concurrency is None else int(concurrency)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must not be negative")
        self.timeout = timeout
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)

        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("ARGTREE_OPENAI_MODEL") or "default"
        self.model_version = f"openai:{self.model}"
        key = api_key or os.environ.get("ARGTREE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, transport=transport,
                                   limits=limits)
        self.concurrency = concurrency
        if schema_mode not in ("json_schema", "json_object"):
            raise ValueError(f"schema_mode must be json_schema or json_object, got {schema_mode!r}")
        self.schema_mode = schema_mode
        self.calls = 0
        self.tokens_generated = 0
        self.last_scoring_misses = 0
        self.scoring_failures = 0          # prompts that got nan from score_yes, over the backend's life
        self.last_scoring_errors: list[str] = []
        self.retried = 0                   # requests sent again after a transient failure
        self._count = threading.Lock()

    @classmethod
    def from_option(cls, model: str | None = None, **options) -> "OpenAIBackend":
        """``--model`` is the base URL (``http...``, optionally ``URL#model-id``) or, with
        ARGTREE_OPENAI_BASE_URL set, the server's model id."""
        if model and model.startswith(("http://", "https://")):
            url, _, mid = model.partition("#")
            return cls(url, mid or None, **options)
        return cls(os.environ.get("ARGTREE_OPENAI_BASE_URL", DEFAULT_URL), model, **options)

    def close(self) -> None:
        self.client.close()

    # -- requests -----------------------------------------------------------
    def _messages(self, prompt: str, system: str | None) -> list[dict]:
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]

    def _format(self, schema: dict) -> dict:
        if self.schema_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        return {"type": "json_object", "schema": schema}

    def _post(self, body: dict) -> dict:
        """POST with retries on transient failures (see the module doc); raises the last error."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt

        def count(state) -> None:
            with self._count:
                self.retried += 1

        for attempt in Retrying(retry=retry_if_exception(_transient), wait=self._wait, reraise=True,
                                stop=stop_after_attempt(self.retries + 1), before_sleep=count):
            with attempt:
                return self._post_once(body)
        raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or reraises

    def _wait(self, state) -> float:
        """Seconds before the next attempt: full jitter, random in [0, min(max_backoff, backoff * 2^(n-1))] after
        the n-th failed attempt, and at least what a 429's Retry-After asks for."""
        from tenacity import wait_random_exponential

        jitter = wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)(state)
        return max(jitter, _retry_after(state.outcome.exception() if state.outcome else None, self.max_backoff))

    def _why(self, err: Exception) -> str:
        """What went wrong, saying so when it was still wrong after the retries."""
        gave_up = f" (still failing after {self.retries} retries)" if self.retries and _transient(err) else ""
        return _describe(err) + gave_up

    def _post_once(self, body: dict) -> dict:
        r = self.client.post("/chat/completions", json=body)
        fmt = body.get("response_format") or {}
        if (r.status_code in (400, 422, 500) and fmt.get("type") == "json_schema"
                and ("json_schema" in r.text or "response_format" in r.text)):
            # An older server (llama-cpp-python's answers 500 with a validation error naming
            # response_format): ask again in the json_object form, and keep that form if it works.
            body = {**body, "response_format": {"type": "json_object", "schema": fmt["json_schema"]["schema"]}}
            r = self.client.post("/chat/completions", json=body)
            if r.status_code < 400:
                self.schema_mode = "json_object"
        r.raise_for_status()
        return r.json()

    def _one(self, prompt: str, schema: dict, system: str | None, max_new_tokens: int, temperature: float,
             seed: int | None) -> Generation:
        body: dict[str, Any] = {"model": self.model, "messages": self._messages(prompt, system),
                                "max_tokens": max_new_tokens, "temperature": temperature,
                                "response_format": self._format(schema)}
        if seed is not None:
            body["seed"] = seed
        t0 = time.perf_counter()
        try:
            data = self._post(body)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
        except Exception as err:  # noqa: BLE001 - every failure becomes a recorded error
            return Generation("", seconds=time.perf_counter() - t0, error=self._why(err))
        self.tokens_generated += tokens
        return Generation(text, tokens=tokens, seconds=time.perf_counter() - t0,
                          truncated=choice.get("finish_reason") == "length")

    def generate_json(self, prompts: Sequence[str], schema: dict | Sequence[dict], *, system: str | None = None,
                      max_new_tokens: int = 256, temperature: float = 0.0,
                      seed: int | None = None) -> list[Generation]:
        schemas = [schema] * len(prompts) if isinstance(schema, dict) else list(schema)
        if len(schemas) != len(prompts):
            raise ValueError("need one schema per prompt")
        self.calls += 1
        jobs = [(p, s, system, max_new_tokens, temperature, None if seed is None else seed + i)
                for i, (p, s) in enumerate(zip(prompts, schemas))]
        if len(jobs) <= 1 or self.concurrency == 1:
            return [self._one(*j) for j in jobs]
        with ThreadPoolExecutor(min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda j: self._one(*j), jobs))

    def score_yes(self, prompts: Sequence[str], *, system: str | None = None) -> list[float]:
        """P(yes) per prompt; ``nan`` where it could not be scored (counted and explained, see the module doc)."""
        self.calls += 1
        errors: list[str] = []

        def miss(why: str) -> float:
            with self._count:
                errors.append(why)
            return math.nan

        def one(prompt: str) -> float:
            body = {"model": self.model, "messages": self._messages(prompt, system), "max_tokens": 1,
                    "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
            try:
                data = self._post(body)
            except Exception as err:  # noqa: BLE001 - the request failed for good
                return miss(self._why(err))
            try:
                top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
                py = sum(math.exp(float(t["logprob"])) for t in top if t.get("token") in YES)
                pn = sum(math.exp(float(t["logprob"])) for t in top if t.get("token") in NO)
            except Exception as err:  # noqa: BLE001 - a body without logprobs
                return miss(f"no logprobs in the answer: {_describe(err)}")
            if not py + pn > 0:
                return miss("neither yes nor no among the top tokens")
            return py / (py + pn)

        with ThreadPoolExecutor(min(self.concurrency, max(len(prompts), 1))) as pool:
            out = list(pool.map(one, prompts))
        self.last_scoring_misses = len(errors)
        self.last_scoring_errors = errors
        self.scoring_failures += len(errors)
        return out


def _transient(err: BaseException) -> bool:
    """Worth asking again: 429, 5xx (not the json_schema fallback, handled before), timeouts, connection errors."""
    import httpx

    if isinstance(err, httpx.HTTPStatusError):
        return err.response.status_code == 429 or err.response.status_code >= 500
    # Timeouts, refused/reset connections, a server that hung up mid-answer; not a bad URL or our own bug.
    return isinstance(err, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def _retry_after(err: BaseException | None, cap: float) -> float:
    """Seconds a 429/503's Retry-After header asks for (capped), else 0."""
    import httpx

    if not isinstance(err, httpx.HTTPStatusError):
        return 0.0
    try:
        value = float(err.response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0
    return min(max(value, 0.0), cap) if math.isfinite(value) else 0.0


def _describe(err: Exception) -> str:
    import httpx

    if isinstance(err, httpx.HTTPStatusError):
        body = err.response.text[:300].replace("\n", " ")
        return f"HTTP {err.response.status_code} from {err.request.url}: {body}"
    if isinstance(err, httpx.TimeoutException):
        return f"timeout: {type(err).__name__}"
    if isinstance(err, httpx.TransportError):
        return f"connection failed: {type(err).__name__}: {err}"
    if isinstance(err, (KeyError, IndexError, TypeError, ValueError)):
        return f"unexpected response: {type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"
