"""Does a list of gold facts settle a premise?  Rules, not a model: answer only what the facts say.

The honest dataset oracle (``argtree.oracle.FactsOracle``) answers a premise
only when one of its question's gold facts settles it, and abstains otherwise.
A small model judging premises against facts said "no" to everything (50%
agreement with hand labels); these rules instead compare words:

1. Both texts become word sequences (lower case, "n't"/"cannot" split off so
   negations are words).  Content words drop stop words and negations but keep
   numbers and quantifiers ("all", "some", "only"...), which change meaning.
2. A fact *covers* a premise when at least ``cover`` (default 0.8) of the
   premise's content words (crude plural/-ed stemming) occur in the fact, in the
   same order (so "A is bigger than B" is not covered by "B is bigger than A"),
   every premise word the fact lacks is an ordinary word (not a number,
   negation or quantifier), and the premise keeps the fact's quantifiers and
   hedges ("some", "mostly": "The cod is mostly found in X" does not give "Found
   in X").  A premise with a negation must be covered whole ("X is not native to
   Y" is not settled by "X was introduced to Y").  The premise needs at least 2
   content words.
3. Polarity decides: if the fact has no negation, a covered premise without
   negation is true and one with an odd number of negations is false.  A fact
   with a negation settles only a premise that says the same thing (the
   fact's content words are all in the premise too) and has no quantifier
   ("some X cannot Y" does not deny "some X can Y"): then equal parity is
   true and unequal false.  Otherwise (a negated fact with more to it, whose
   "not" may bear on the extra words) it abstains.
4. Facts that disagree, or a premise covered by none, mean abstain.

Hand-checked on grown premises: BENCHMARKS.md ("The honest dataset oracle").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["Settled", "settle", "words", "content"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "neither", "nobody", "nothing", "nowhere"})
QUANTIFIERS = frozenset({"all", "every", "each", "some", "any", "only", "most", "many", "few", "several", "always",
                         "sometimes", "often", "usually", "rarely", "seldom", "may", "might", "could", "possibly",
                         "probably", "likely", "more", "less", "than", "least", "both", "either", "one",
                         "two", "three", "first", "last", "before", "after", "until", "since", "without", "except",
                         # hedges: "X is mostly found in Y" does not say "X is found in Y"
                         "mostly", "mainly", "largely", "generally", "typically", "partly", "nearly", "almost",
                         "approximately", "roughly", "around", "about", "sometimes", "occasionally"})
STOP = frozenset("""a an the is are was were be been being of to in on at for from by with and or but if then that this
these those it its as into about over under do does did has have had will would can shall should must there their
they them he she his her we our you your i me my so such very also which who whom whose what when where while
because due well just still even""".split())


def words(text: str) -> list[str]:
    """Lower-case words with negations split off ("isn't" -> "is", "not"; "cannot" -> "can", "not")."""
    t = text.lower().replace("\u2019", "'")
    t = re.sub(r"\bcannot\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = re.sub(r"n't\b", " not", t)
    return [w.strip("'") for w in _WORD.findall(t)]


def _stem(w: str) -> str:
    if w.isdigit() or len(w) <= 3:
        return w
    for suf, keep in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ing", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            return w[: len(w) - len(suf)] + keep
    return w


def content(ws: Sequence[str]) -> list[str]:
    return [_stem(w) for w in ws if w not in STOP and w not in NEGATIONS]


def _negations(ws: Sequence[str]) -> int:
    return sum(w in NEGATIONS for w in ws)


def _in_order(sub: Sequence[str], seq: Sequence[str]) -> bool:
    """Are the shared words of ``sub`` found in ``seq`` in the same order (a subsequence)?"""
    it = iter(seq)
    return all(any(w == x for x in it) for w in sub)


@dataclass(frozen=True)
class Settled:
    value: bool | None      # None: abstain
    fact: str | None = None
    reason: str = ""


def _one(premise_ws: list[str], fact: str, cover: float) -> Settled:
    pc = content(premise_ws)
    fw = words(fact)
    fc = content(fw)
    if len(pc) < 2:
        return Settled(None, fact, "premise too short to match")
    fset = set(fc)
    missing = [w for w in pc if w not in fset]
    if len(pc) - len(missing) < cover * len(pc):
        return Settled(None, fact, "not covered")
    if any(w.isdigit() or w in QUANTIFIERS for w in missing):
        return Settled(None, fact, "premise adds a number or quantifier")
    if any(w in QUANTIFIERS for w in fc if w not in set(pc)):  # "some birds fly" does not give "birds fly"
        return Settled(None, fact, "premise drops the fact's quantifier")
    if not _in_order([w for w in pc if w in fset], fc):
        return Settled(None, fact, "different order")
    pn, fn = _negations(premise_ws) % 2, _negations(fw) % 2
    if pn and missing:  # "X is not native to Y" vs "X was introduced to Y": the "not" may bear on the gap
        return Settled(None, fact, "negated premise not fully covered")
    if fn == 0:
        return Settled(pn == 0, fact, "covered by a positive fact")
    if any(w in QUANTIFIERS for w in fw):  # "some X cannot Y" does not deny "some X can Y"
        return Settled(None, fact, "negation beside a quantifier")
    extra = [w for w in fc if w not in set(pc)]
    if extra:
        return Settled(None, fact, "negated fact says more than the premise")
    return Settled(pn == fn, fact, "same statement")


def settle(premise: str, facts: Sequence[str], cover: float = 0.8) -> Settled:
    """What the facts say about ``premise``: true, false, or abstain (None) with the reason."""
    pw = words(premise)
    found = [s for s in (_one(pw, f, cover) for f in facts) if s.value is not None]
    if not found:
        return Settled(None, None, "no fact settles it")
    values = {s.value for s in found}
    if len(values) > 1:
        return Settled(None, None, "facts disagree")
    return found[0]
