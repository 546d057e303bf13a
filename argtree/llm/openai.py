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
  top tokens (0.5 when neither appears, which the caller can see in
  ``last_scoring_misses``).

Errors (connection refused, timeouts, 5xx, bad JSON bodies) come back as
``Generation.error``; nothing raises.  Configuration: ``base_url`` (e.g.
``http://127.0.0.1:8080/v1``), ``model`` (the server's model id), ``api_key``
(ARGTREE_OPENAI_API_KEY or OPENAI_API_KEY; most local servers need none).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from .base import Generation

__all__ = ["OpenAIBackend"]

DEFAULT_URL = "http://127.0.0.1:8080/v1"
YES = {"yes", "Yes", "YES", " yes", " Yes", "yes.", "Yes."}
NO = {"no", "No", "NO", " no", " No", "no.", "No."}


class OpenAIBackend:
    kind = "openai"

    def __init__(self, base_url: str = DEFAULT_URL, model: str | None = None, *, api_key: str | None = None,
                 timeout: float = 120.0, concurrency: int = 8, schema_mode: str = "json_schema",
                 transport: Any = None):
        import httpx  # the llm extra

        self.base_url = base_url.rstrip("/")
        self.model = model or os.environ.get("ARGTREE_OPENAI_MODEL") or "default"
        self.model_version = f"openai:{self.model}"
        key = api_key or os.environ.get("ARGTREE_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, transport=transport)
        self.concurrency = max(1, concurrency)
        if schema_mode not in ("json_schema", "json_object"):
            raise ValueError(f"schema_mode must be json_schema or json_object, got {schema_mode!r}")
        self.schema_mode = schema_mode
        self.calls = 0
        self.tokens_generated = 0
        self.last_scoring_misses = 0

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
            return Generation("", seconds=time.perf_counter() - t0, error=_describe(err))
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
        self.calls += 1
        self.last_scoring_misses = 0

        def one(prompt: str) -> float:
            body = {"model": self.model, "messages": self._messages(prompt, system), "max_tokens": 1,
                    "temperature": 0.0, "logprobs": True, "top_logprobs": 20}
            try:
                data = self._post(body)
                top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            except Exception:  # noqa: BLE001 - no logprobs: no information
                self.last_scoring_misses += 1
                return 0.5
            py = sum(math.exp(t["logprob"]) for t in top if t.get("token") in YES)
            pn = sum(math.exp(t["logprob"]) for t in top if t.get("token") in NO)
            if py + pn <= 0:
                self.last_scoring_misses += 1
                return 0.5
            return py / (py + pn)

        with ThreadPoolExecutor(min(self.concurrency, max(len(prompts), 1))) as pool:
            return list(pool.map(one, prompts))


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
