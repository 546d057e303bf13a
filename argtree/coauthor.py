"""Numbers the model elicits for a premise a person wrote (issue 13: co-authoring the trees).

Pure prompts plus one call to a backend's ``score_yes`` (the protocol in ``argtree.llm.base``); the store
side is ``argtree.store.coauthor.add_premise``.  The elicitation is the one DESIGN.md gives for grown
premises: the model's credence c = P(premise), q1 = P(claim | premise), q0 = P(claim | not premise),
turned into the canonical ``p_if_true`` / ``p_if_false`` by ``expand.cpt_from_elicitation``.
"""

from __future__ import annotations

from typing import Any

from .expand import cpt_from_elicitation, yes_no_prompt

__all__ = ["premise_prompts", "elicit_premise"]


def premise_prompts(claim: str, premise: str) -> list[str]:
    """[P(premise), P(claim | premise), P(claim | not premise)] as yes/no prompts."""
    return [yes_no_prompt(premise),
            f"Suppose this is true: {premise}\n" + yes_no_prompt(claim),
            f"Suppose this is false: {premise}\n" + yes_no_prompt(claim)]


def elicit_premise(backend: Any, claim: str, premise: str) -> dict[str, Any]:
    """{"p_if_true", "p_if_false", "model": {"credence", "claim_if_true", "claim_if_false", ...}} for a
    premise under ``claim``, from the backend's P(yes) of the three prompts."""
    c, q1, q0 = (float(x) for x in backend.score_yes(premise_prompts(claim, premise)))
    p1, p0 = cpt_from_elicitation(c, q1, q0)
    return {"p_if_true": p1, "p_if_false": p0,
            "model": {"credence": c, "claim_if_true": q1, "claim_if_false": q0,
                      "elicited_by": getattr(backend, "model_version", None) or getattr(backend, "kind", "model")}}
