"""The protocol every model backend implements, and its result type (pure: no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

__all__ = ["Generation", "Backend"]


@dataclass(frozen=True)
class Generation:
    """One model answer.  ``error`` is set (and ``text`` may be empty) when the call failed."""

    text: str
    tokens: int = 0             # new tokens generated (0 when unknown)
    seconds: float = 0.0        # wall time of the batch this answer came from
    truncated: bool = False     # hit the token cap: the JSON may be cut off
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Backend(Protocol):
    """A language model behind a batch interface.

    ``generate_json``: one answer per prompt, constrained to ``schema`` (one
    JSON schema for all prompts, or one per prompt) where the backend can.
    ``temperature`` 0 is greedy; > 0 samples, reproducibly for a given ``seed``.
    Errors never raise: they come back as ``Generation.error``.

    ``score_yes``: for each prompt (a yes/no question), P(yes) from the first
    answer token's log-probabilities, renormalized over yes and no; ``nan`` for a
    prompt that could not be scored (never a stand-in such as 0.5), so callers
    can tell "no credence" from "50%".  A backend that can fail counts these in
    ``scoring_failures``.
    """

    kind: str
    model_version: str
    calls: int

    def generate_json(self, prompts: Sequence[str], schema: dict | Sequence[dict], *, system: str | None = None,
                      max_new_tokens: int = 256, temperature: float = 0.0,
                      seed: int | None = None) -> list[Generation]: ...

    def score_yes(self, prompts: Sequence[str], *, system: str | None = None) -> list[float]: ...
