"""A scripted backend for tests and demos: no model, no torch, deterministic.

``FakeBackend(script)`` replays ``script`` in order: each entry is the raw
text of one answer, a ``Generation`` (e.g. one carrying an error), or an
exception instance to come back as an error.  When the script runs out (or
without one) it answers like a model would: for an expansion prompt, premises
on the asked side made from the claim's words and a seeded word bank, all
distinct, with numbers on the asked side; for a credence prompt, a number;
for a question proposal (``argtree.loop``), as many distinct yes/no questions
about the topic as the schema allows, each matching its pattern.
``score_yes`` replays ``yes_scores`` or hashes the prompt to a probability.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .base import Generation

__all__ = ["FakeBackend"]

_FACTORS = ["costs", "evidence from studies", "public opinion", "long-term effects", "regulation",
            "available technology", "historical precedent", "expert consensus", "economic incentives",
            "health outcomes", "environmental impact", "measurement problems", "local conditions",
            "early results", "the track record", "hidden trade-offs", "scaling limits", "human behaviour"]
_FOR = ["Recent data on {f} point in favour of {t}.", "Improvements in {f} make {t} easier.",
        "Studies of {f} report benefits linked to {t}.", "{F} have steadily favoured {t}."]
_AGAINST = ["Problems with {f} weigh against {t}.", "Concerns about {f} cast doubt on {t}.",
            "Studies of {f} show drawbacks for {t}.", "{F} have often worked against {t}."]

_QUESTIONS = ["Does {t} improve {f} in most places?", "Is {t} held back by {f}?",
              "Would better {f} make {t} more common?", "Has {t} changed {f} over the last decade?",
              "Do experts see {f} as important for {t}?", "Will {f} decide the future of {t}?"]


def _values(spec: dict) -> list[float]:
    """The numbers a schema entry admits: its enum, or its [minimum, maximum]."""
    return list(spec["enum"]) if "enum" in spec else [spec["minimum"], spec["maximum"]]


def _pick(spec: dict, rng: random.Random, lo: float = 0.0, hi: float = 1.0) -> float:
    """A schema-valid number, preferring [lo, hi] (as probabilities) when the schema allows it there.

    An integer enum holds percentages (argtree.expand's schema)."""
    if "enum" in spec:
        scale = 100 if spec.get("type") == "integer" else 1
        inside = [x for x in spec["enum"] if lo * scale <= x <= hi * scale] or list(spec["enum"])
        return rng.choice(inside)
    a, b = max(spec["minimum"], lo), min(spec["maximum"], hi)
    return round(rng.uniform(a, b) if a <= b else rng.uniform(spec["minimum"], spec["maximum"]), 2)


def _topic(claim: str) -> str:
    """A few of the claim's words (never all of them: that would read as a copy of the claim)."""
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", claim) if len(w) > 3]
    keep = sorted(sorted(words, key=len, reverse=True)[:max(1, min(2, len(words) - 1))], key=words.index)
    return " ".join(keep).lower() or "this"


class FakeBackend:
    kind = "fake"

    def __init__(self, script: Iterable[Any] = (), *, yes_scores: Iterable[float] = (),
                 responder: Callable[[str, dict, float, int | None], str] | None = None,
                 model_version: str = "fake", seed: int = 0):
        self.script = list(script)
        self.yes_scores = list(yes_scores)
        self.responder = responder
        self.model_version = model_version
        self.seed = seed
        self.calls = 0
        self.prompts: list[str] = []       # every prompt seen, in order (tests inspect these)
        self.tokens_generated = 0

    @classmethod
    def from_option(cls, model: str | None = None, **options) -> "FakeBackend":
        """``--model`` for the fake backend: a JSON file holding a list of raw answers, or nothing."""
        if model:
            script = json.loads(Path(model).read_text(encoding="utf-8"))
            if not isinstance(script, list):
                raise ValueError(f"{model}: a fake script is a JSON list of answer strings")
            return cls([s if isinstance(s, str) else json.dumps(s) for s in script], **options)
        return cls(**options)

    def generate_json(self, prompts: Sequence[str], schema: dict | Sequence[dict], *, system: str | None = None,
                      max_new_tokens: int = 256, temperature: float = 0.0,
                      seed: int | None = None) -> list[Generation]:
        schemas = [schema] * len(prompts) if isinstance(schema, dict) else list(schema)
        self.calls += 1
        out = []
        for i, (prompt, sch) in enumerate(zip(prompts, schemas)):
            self.prompts.append(prompt)
            if self.script:
                item = self.script.pop(0)
                if isinstance(item, Generation):
                    out.append(item)
                elif isinstance(item, BaseException):
                    out.append(Generation("", error=f"{type(item).__name__}: {item}"))
                else:
                    out.append(Generation(str(item), tokens=len(str(item)) // 4))
                continue
            rng = random.Random(f"{self.seed}|{seed}|{temperature}|{i}|{prompt}")
            text = (self.responder(prompt, sch, temperature, seed) if self.responder
                    else self._answer(prompt, sch, rng))
            self.tokens_generated += len(text) // 4
            out.append(Generation(text, tokens=len(text) // 4))
        return out

    def _answer(self, prompt: str, schema: dict, rng: random.Random) -> str:
        props = schema.get("properties", {})
        if "probability" in props:
            return json.dumps({"probability": round(rng.uniform(0.2, 0.9), 2)})
        if "questions" in props:
            return self._questions(prompt, props["questions"], rng)
        m = re.search(r"^(?:Claim|Question): (.*)$", prompt, re.M)
        topic = _topic(m.group(1) if m else prompt)
        item = props["premises"]["items"]["properties"]
        q1r, q0r = item["claim_if_true"], item["claim_if_false"]
        side_for = min(_values(q1r)) >= max(_values(q0r))
        templates = _FOR if side_for else _AGAINST
        n = props["premises"].get("maxItems", 2)
        factors = rng.sample(_FACTORS, n)
        premises = []
        for f, tpl in zip(factors, rng.sample(templates, n)):
            premises.append({
                "text": tpl.format(f=f, F=f[0].upper() + f[1:], t=topic),
                "credence": _pick(item["credence"], rng, 0.3, 0.9),
                "claim_if_true": _pick(q1r, rng),
                "claim_if_false": _pick(q0r, rng),
            })
        return json.dumps({"premises": premises})

    @staticmethod
    def _questions(prompt: str, spec: dict, rng: random.Random) -> str:
        """maxItems distinct yes/no questions about the prompt's topic, each matching the items' pattern."""
        m = re.search(r"^Topic: (.*)$", prompt, re.M)
        # The topic as printable ASCII without quotes, backslashes or end punctuation, at most 60 characters.
        topic = unicodedata.normalize("NFKD", m.group(1) if m else "")
        topic = " ".join(re.sub(r'[^ !#-\[\]-~]', lambda c: "" if unicodedata.combining(c[0]) else " ",
                                topic).split()).rstrip(".?!")
        topic = (topic[:60].rsplit(" ", 1)[0] if len(topic) > 60 else topic) or "this topic"
        pattern = spec.get("items", {}).get("pattern")
        pairs = [(tpl, f) for tpl in _QUESTIONS for f in _FACTORS]
        out = []
        for tpl, f in rng.sample(pairs, len(pairs)):
            q = tpl.format(t=topic, f=f)
            if pattern is None or re.search(pattern, q):
                out.append(q)
            if len(out) == spec.get("maxItems", 3):
                break
        return json.dumps({"questions": out})

    def score_yes(self, prompts: Sequence[str], *, system: str | None = None) -> list[float]:
        self.calls += 1
        out = []
        for p in prompts:
            self.prompts.append(p)
            if self.yes_scores:
                out.append(float(self.yes_scores.pop(0)))
            else:
                h = int(hashlib.sha256(p.encode()).hexdigest()[:8], 16)
                out.append(0.05 + 0.9 * h / 0xFFFFFFFF)
        return out
