"""Fine-tuning (the one module that imports trl and peft): JSONL records -> a new model version.

``train`` runs TRL's SFTTrainer (LoRA through PEFT by default) on a dataset
exported by ``argtree export``.  Records are turned into TRL's conversational
prompt-completion form, so the loss falls on the answer only and the chat
template is the one the local backend serves with.

A run writes into a hidden temporary directory beside its target and renames
it into place only when the adapter is saved, then registers the version.  A
run killed at any point leaves every earlier version (and the registry)
exactly as it was; a leftover temporary directory is ignored and swept by the
next run.

Registry: model versions live in the store's registry when the store has one
(``argtree.store.register_model_version``), and always in
``models_dir()/registry.json`` (ARGTREE_HOME/versions, written atomically), so ``--model NAME`` and
``--model latest`` work with or without a database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .datasets import DatasetError, detect_format, read_jsonl, sha256_file
from .process import pid_alive

__all__ = ["FinetuneError", "TrainConfig", "models_dir", "registry", "resolve_version", "register",
           "sft_records", "train", "dpo_records", "continue_training", "TrlTrainer"]

SFT_FORMATS = ("text", "prompt-completion", "conversational")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class FinetuneError(ValueError):
    """A training run that cannot start or finish (bad data, unknown model, name taken)."""


@dataclass(frozen=True)
class TrainConfig:
    lora: bool = True
    max_steps: int | None = None      # None: ``epochs`` passes over the data
    epochs: float = 1.0
    learning_rate: float | None = None  # default 2e-4 for LoRA, 2e-5 for full fine-tuning
    batch_size: int = 8
    grad_accum: int = 1
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    top_layers: int | None = None     # LoRA on the last N transformer layers only: backward stops below them
    max_length: int = 384
    seed: int = 0
    device: str | None = None         # None: CUDA when present, else CPU
    logging_steps: int = 10
    threads: int | None = None


# -- where versions live -----------------------------------------------------------


def models_dir() -> Path:
    """Trained versions (and registry.json): ARGTREE_HOME/versions.  Kept apart from the converted
    base-model cache (ARGTREE_MODEL_CACHE), so a throw-away ARGTREE_HOME can share that cache."""
    from .llm.local import argtree_home

    return argtree_home() / "versions"


def _registry_path() -> Path:
    return models_dir() / "registry.json"


def registry() -> list[dict[str, Any]]:
    """Registered versions, oldest first (the file; the store's copy is kept in step)."""
    path = _registry_path()
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise FinetuneError(f"model registry {path} is unreadable ({err}); move it aside to start afresh") from None
    return list(data.get("versions", []))


def _write_registry(versions: list[dict[str, Any]]) -> None:
    path = _registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"versions": versions}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def register(name: str, path: str, base: str | None, kind: str, meta: dict[str, Any]) -> dict[str, Any]:
    """Add a version to the registry file and, when the store offers it, to the database registry."""
    entry = {"name": name, "path": str(path), "base": base, "kind": kind, "meta": meta,
             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    versions = [v for v in registry() if v["name"] != name] + [entry]
    _write_registry(versions)
    entry["store"] = _register_in_store(entry)
    return entry


def _register_in_store(entry: dict[str, Any]) -> bool:
    try:
        from . import store
    except Exception:  # noqa: BLE001 - store extra missing: the file registry is enough
        return False
    reg = getattr(store, "register_model_version", None)
    scope = getattr(store, "session_scope", None)
    if reg is None or scope is None:
        return False
    try:
        with scope() as session:
            reg(session, entry["name"], path=entry["path"], base=entry["base"], kind=entry["kind"], meta=entry["meta"])
        return True
    except Exception as err:  # noqa: BLE001 - no database here: say so, keep the file registry
        print(f"note: model version not recorded in the database ({type(err).__name__}: {err})", file=sys.stderr)
        return False


def resolve_version(name: str | None) -> str | None:
    """A registered name or 'latest' -> its directory; anything else is passed on unchanged
    (None / 'bundled', a directory, a .gguf file) for ``load_local_model`` to resolve.

    The lookup is ``argtree.llm.local``'s, the one every command uses (registry file, then the store)."""
    if name is None:
        return None
    from .llm.local import ADAPTER, BUNDLED_ALIASES, DEFAULT_ALIASES, _lookup_registered

    if name in BUNDLED_ALIASES or name in DEFAULT_ALIASES or name == ADAPTER or Path(name).expanduser().exists():
        return name  # a built-in name or a path: the loader's, no registry to look in
    try:
        found = _lookup_registered(name)
    except ValueError as err:  # registered at a directory that is gone
        raise FinetuneError(str(err)) from None
    if found is not None:
        return found
    if name == "latest":
        raise FinetuneError("no fine-tuned model version yet: 'latest' needs one (run argtree finetune)")
    return name


# -- data ------------------------------------------------------------------------

def sft_records(records: Sequence[dict[str, Any]], source: str = "data") -> tuple[str, list[dict[str, Any]]]:
    """(format, records for SFTTrainer): conversational prompt-completion, or {"text"} for language modeling."""
    if not records:
        raise FinetuneError(f"{source} is empty: no records to train on")
    formats = {}
    for i, rec in enumerate(records):
        try:
            formats.setdefault(detect_format(rec), i)
        except DatasetError as err:
            raise FinetuneError(f"{source} record {i + 1}: {err}") from None
    if len(formats) > 1:
        raise FinetuneError(f"{source} mixes formats ({', '.join(sorted(formats))}); export one format per file")
    fmt = next(iter(formats))
    if fmt not in SFT_FORMATS:
        raise FinetuneError(f"{source} is a {fmt} dataset; finetune does supervised training on text, "
                            "prompt-completion or conversational records (argtree export --format conversational)")
    out = []
    for i, rec in enumerate(records):
        if fmt == "text":
            if not isinstance(rec["text"], str) or not rec["text"].strip():
                raise FinetuneError(f"{source} record {i + 1}: 'text' must be a non-empty string")
            out.append({"text": rec["text"]})
        elif fmt == "prompt-completion":
            p, c = rec["prompt"], rec["completion"]
            if not isinstance(p, str) or not isinstance(c, str) or not c.strip():
                raise FinetuneError(f"{source} record {i + 1}: 'prompt' and 'completion' must be strings, "
                                    "the completion non-empty")
            out.append({"prompt": [{"role": "user", "content": p.strip()}],
                        "completion": [{"role": "assistant", "content": c}]})
        else:
            msgs = rec["messages"]
            if (not isinstance(msgs, list) or len(msgs) < 2
                    or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                               and m.get("role") in ("system", "user", "assistant") for m in msgs)
                    or msgs[-1]["role"] != "assistant"):
                raise FinetuneError(f"{source} record {i + 1}: 'messages' must be role/content messages "
                                    "ending with the assistant's answer")
            out.append({"prompt": [dict(role=m["role"], content=m["content"]) for m in msgs[:-1]],
                        "completion": [{"role": "assistant", "content": msgs[-1]["content"]}]})
    return fmt, out


# -- training --------------------------------------------------------------------

def _sweep_leftovers(parent: Path) -> None:
    """Remove temporary directories of runs whose process is gone (a killed run's debris)."""
    for tmp in parent.glob(".*.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def default_name() -> str:
    return "ft-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def train(data: str, base: str | None = None, name: str | None = None, config: TrainConfig = TrainConfig(),
          out_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print,
          command: str | None = None) -> dict[str, Any]:
    """Fine-tune ``base`` on the JSONL file ``data``; returns the registered version's entry.

    ``out_dir`` puts the version somewhere other than ``models_dir()/name``
    (e.g. ``argtree/adapters/<name>`` for an adapter shipped with the package).
    """
    name = name or default_name()
    base = base or "bundled"  # the plain base model: the default model may itself be an adapter
    if not NAME_RE.match(name) or name in ("latest", "bundled", "smollm2", "base", "default", "adapter"):
        raise FinetuneError(f"--out {name!r}: use letters, digits, '.', '_' or '-' (not a reserved name)")
    try:
        records = read_jsonl(data)
    except DatasetError as err:
        raise FinetuneError(str(err)) from None
    fmt, rows = sft_records(records, data)
    target = Path(out_dir) if out_dir else models_dir() / name
    if target.exists():
        raise FinetuneError(f"model version {name!r} already exists at {target}; choose another --out")
    if any(v["name"] == name for v in registry()):
        raise FinetuneError(f"model version {name!r} is already registered; choose another --out")
    base_path = resolve_version(base)

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from .llm.local import default_device, load_local_model

    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or default_device()
    t0 = time.perf_counter()
    try:
        model, tok = load_local_model(base_path, device=device, dtype=torch.float32 if device == "cpu" else None)
    except ValueError as err:
        raise FinetuneError(str(err)) from None
    if getattr(model, "peft_config", None):
        raise FinetuneError(f"--base {base!r} is itself an adapter; train from its base model instead")
    source = getattr(model, "argtree_source", {})
    log(f"loaded base {source.get('base', base_path)} on {device} in {time.perf_counter() - t0:.1f}s; "
        f"{len(rows)} {fmt} records")
    tok.padding_side = "right"
    model.train()

    peft_config = None
    if config.lora:
        from peft import LoraConfig

        layers = None
        if config.top_layers:
            n = int(model.config.num_hidden_layers)
            layers = list(range(max(0, n - config.top_layers), n))
        peft_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                 target_modules=list(config.target_modules), layers_to_transform=layers,
                                 task_type="CAUSAL_LM")
    lr = config.learning_rate or (2e-4 if config.lora else 2e-5)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(target.parent)
    tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
    work = tmp / "trainer"
    args = SFTConfig(
        output_dir=str(work), max_steps=config.max_steps or -1, num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, seed=config.seed,
        logging_steps=config.logging_steps, save_strategy="no", report_to="none",
        use_cpu=device == "cpu", bf16=False, max_length=config.max_length, packing=False,
        dataloader_num_workers=0, disable_tqdm=False,
        # Checkpointing re-runs the forward pass and (with PEFT) forces gradients through every
        # layer; a 135M model fits in memory without it and trains ~2x faster.
        gradient_checkpointing=False,
    )
    losses: list[dict[str, float]] = []

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append({"step": state.global_step, "loss": float(logs["loss"])})
                log(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                    f"({time.perf_counter() - t_train:.0f}s)")

    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft_config, callbacks=[Progress()])
    t_train = time.perf_counter()
    try:
        result = trainer.train()
        trainer.model.save_pretrained(str(tmp))
        if not config.lora:
            tok.save_pretrained(str(tmp))
        shutil.rmtree(work, ignore_errors=True)
        meta = {
            "data": os.path.abspath(data), "data_sha256": sha256_file(data), "records": len(rows), "format": fmt,
            "base": source.get("name") or base or "bundled", "lora": config.lora, "steps": result.global_step,
            "train_loss": float(result.training_loss), "losses": losses, "seconds": round(time.perf_counter() - t_train, 1),
            "device": device, "learning_rate": lr, "batch_size": config.batch_size, "rank": config.rank,
            "alpha": config.alpha, "max_length": config.max_length, "seed": config.seed,
            "command": command,
        }
        if config.lora:
            _portable_adapter_config(tmp, base or "bundled")
            _half_precision(tmp)
        (tmp / "argtree_version.json").write_text(json.dumps({"name": name, **meta}, indent=1), encoding="utf-8")
        os.replace(tmp, target)  # the version appears whole or not at all
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    entry = register(name, str(target.resolve()), meta["base"], "lora" if config.lora else "full", meta)
    log(f"saved {name} -> {target} ({meta['steps']} steps, train loss {meta['train_loss']:.4f})")
    return entry


def _portable_adapter_config(adapter_dir: Path, base: str) -> None:
    """Point the adapter at the base by name ('bundled'), not at this machine's cache path."""
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base
    cfg_path.write_text(json.dumps(cfg, indent=2))


def _half_precision(adapter_dir: Path) -> None:
    """Store LoRA weights as float16: half the size, and they are upcast to the base's dtype on load."""
    import torch
    from safetensors.torch import load_file, save_file

    path = adapter_dir / "adapter_model.safetensors"
    if not path.is_file():
        return
    tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
    tmp = path.with_name(path.name + ".half")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


# -- rounds of self-improvement (argtree improve): SFT then DPO, continuing from a version ----------
#
# A round continues from the current version.  When that version is a LoRA adapter, its own LoRA
# weights are loaded trainable (``PeftModel.from_pretrained(..., is_trainable=True)``) and trained
# further; the new version is again one adapter on the same base.  Chosen over (a) merging each round
# into a full model (about 270 MB per version for the 135M model instead of a few MB, and the
# resolver would need to serve full directories per round) and (b) stacking a new LoRA on top (the
# local resolver loads one adapter per model, and the stack would grow every round).  A parent
# without an adapter (the bundled base) gets a fresh LoRA.  DPO's reference model is the policy as it
# enters DPO (TRL copies the trained adapter into a frozen "ref" adapter), so DPO moves away from
# the SFT'd model, not from the bare base.


def dpo_records(records: Sequence[dict[str, Any]], source: str = "data") -> list[dict[str, Any]]:
    """Conversational preference records (prompt messages, chosen and rejected assistant answers) for
    TRL's DPOTrainer; our provenance key is dropped."""
    if not records:
        raise FinetuneError(f"{source} is empty: no preference pairs to train on")
    out = []
    for i, rec in enumerate(records):
        try:
            fmt = detect_format(rec)
        except DatasetError as err:
            raise FinetuneError(f"{source} record {i + 1}: {err}") from None
        if fmt != "preference" or not isinstance(rec.get("prompt"), list):
            raise FinetuneError(f"{source} record {i + 1}: DPO needs conversational preference records "
                                "(prompt messages, chosen, rejected)")
        out.append({"prompt": rec["prompt"], "chosen": rec["chosen"], "rejected": rec["rejected"]})
    return out


def _adapter_base(adapter: str) -> str:
    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    return cfg.get("base_model_name_or_path") or "bundled"


def continue_training(kind: str, data: str, parent: str | None, out: str | os.PathLike,
                      config: TrainConfig = TrainConfig(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """One training stage of a round: ``kind`` 'sft' (SFTTrainer) or 'dpo' (DPOTrainer) on the JSONL
    ``data``, continuing ``parent`` (a model or adapter directory, or a name ``load_local_model``
    knows).  Writes the adapter to ``out`` atomically (a hidden temporary directory renamed into
    place) and returns what it did; registers nothing (the caller does)."""
    if kind not in ("sft", "dpo"):
        raise FinetuneError(f"kind must be 'sft' or 'dpo', got {kind!r}")
    try:
        records = read_jsonl(data)
    except DatasetError as err:
        raise FinetuneError(str(err)) from None
    if kind == "sft":
        fmt, rows = sft_records([{k: v for k, v in r.items() if k != "argtree"} for r in records], data)
    else:
        fmt, rows = "preference", dpo_records(records, data)
    target = Path(out)
    if target.exists():
        raise FinetuneError(f"{target} already exists")

    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    from .llm.local import _local_dir, default_device

    if config.threads:
        torch.set_num_threads(config.threads)
    device = config.device or default_device()
    t0 = time.perf_counter()
    try:
        base_dir, adapter = _local_dir(parent)
    except (ValueError, OSError) as err:
        raise FinetuneError(f"cannot load {parent!r}: {err}") from None
    tok = AutoTokenizer.from_pretrained(base_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32 if device == "cpu" else None)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        how, base_name = "continued", _adapter_base(adapter)
    else:
        layers = None
        if config.top_layers:
            n = int(model.config.num_hidden_layers)
            layers = list(range(max(0, n - config.top_layers), n))
        model = get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                                 target_modules=list(config.target_modules),
                                                 layers_to_transform=layers, task_type="CAUSAL_LM"))
        how, base_name = "new-lora", parent or "bundled"
    model.to(device)
    model.train()
    log(f"{kind}: {how} from {adapter or base_dir} on {device} in {time.perf_counter() - t0:.1f}s; "
        f"{len(rows)} {fmt} records")
    lr = config.learning_rate or (2e-4 if kind == "sft" else 5e-5)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_leftovers(target.parent)
    tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
    common = dict(output_dir=str(tmp / "trainer"), max_steps=config.max_steps or -1, num_train_epochs=config.epochs,
                  per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
                  learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, seed=config.seed,
                  logging_steps=config.logging_steps, save_strategy="no", report_to="none",
                  use_cpu=device == "cpu", bf16=False, max_length=config.max_length,
                  dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=False)
    losses: list[dict[str, float]] = []

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append({"step": state.global_step, "loss": float(logs["loss"])})
                log(f"{kind} step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}")

    dataset = Dataset.from_list(rows)
    t_train = time.perf_counter()
    try:
        if kind == "sft":
            from trl import SFTConfig, SFTTrainer

            trainer = SFTTrainer(model=model, args=SFTConfig(packing=False, **common), train_dataset=dataset,
                                 processing_class=tok, callbacks=[Progress()])
        else:
            from trl import DPOConfig, DPOTrainer

            trainer = DPOTrainer(model=model, ref_model=None, args=DPOConfig(beta=0.1, **common),
                                 train_dataset=dataset, processing_class=tok, callbacks=[Progress()])
        result = trainer.train()
        trainer.model.save_pretrained(str(tmp), selected_adapters=["default"])
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        _portable_adapter_config(tmp, base_name)
        _half_precision(tmp)
        meta = {"stage": kind, "how": how, "parent": parent, "base": base_name, "data": os.path.abspath(data),
                "data_sha256": sha256_file(data), "records": len(rows), "format": fmt,
                "steps": result.global_step, "train_loss": float(result.training_loss), "losses": losses,
                "seconds": round(time.perf_counter() - t_train, 1), "device": device, "learning_rate": lr,
                "batch_size": config.batch_size, "max_length": config.max_length, "seed": config.seed}
        (tmp / "argtree_version.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, target)  # whole or not at all
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"{kind}: saved {target} ({meta['steps']} steps, loss {meta['train_loss']:.4f})")
    return meta


class TrlTrainer:
    """``argtree.improve``'s trainer protocol with TRL: ``sft`` then ``dpo``, each continuing its parent."""

    name = "trl"
    writes_weights = True

    def __init__(self, config: TrainConfig = TrainConfig(), log: Callable[[str], None] = print):
        self.config = config
        self.log = log

    def _cfg(self, steps: int, seed: int) -> TrainConfig:
        from dataclasses import replace

        return replace(self.config, max_steps=steps, seed=seed,
                       logging_steps=max(1, min(self.config.logging_steps, steps // 4 or 1)))

    def sft(self, data: str, parent: str | None, out: str, *, steps: int, seed: int = 0) -> dict[str, Any]:
        return continue_training("sft", data, parent, out, self._cfg(steps, seed), self.log)

    def dpo(self, data: str, parent: str | None, out: str, *, steps: int, seed: int = 0) -> dict[str, Any]:
        return continue_training("dpo", data, parent, out, self._cfg(steps, seed), self.log)
