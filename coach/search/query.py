"""A question made ready for the rankers: its searched form, its BM25 terms, and (once encoded) its vector."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import bridge as bridge_mod

# Characters OpenCC's t2s leaves alone because both are valid simplified characters, although traditional text
# writes one where simplified text writes the other (帶著 -> 带著; simplified essays write 带着). A question's BM25
# tokens get the other spelling too, so either script matches essays in either script.
SCRIPT_VARIANTS = {"著": "着", "着": "著"}


@dataclass(frozen=True)
class Query:
    text: str  # the sanitised question, as typed
    searched: str  # simplified, Taiwan / Hong Kong words in mainland form: what is embedded
    english: bool  # mostly English
    traditional: bool  # typed in traditional characters (or Cantonese)
    terms: dict[str, float]  # BM25 word terms: the question's own, mainland and bridged words
    own_terms: dict[str, float]  # the question's own words only (out-of-domain evidence)
    bigrams: dict[str, float]  # Chinese character pairs of `searched` (Chinese questions)
    glossary_hits: int = 0  # customer-service phrases the bridge recognised
    themes: int = 0  # situation themes matched
    vector: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False)


def prepare(text: str, bridge: bridge_mod.Bridge | None) -> Query:
    """Everything but the vector, for a sanitised question; pure apart from the bridge's lookups."""
    from ..clean import to_simplified
    from ..keyword import char_bigrams, tokenize

    own = with_variants({t: 1.0 for t in tokenize(text)})
    english = bridge_mod.is_english(text)
    searched = to_simplified(text)
    traditional = not english and (searched != text or bridge_mod.has_cantonese(text))
    terms = dict(own)
    glossary_hits = themes = 0
    if bridge is not None:
        if traditional:  # Taiwan / Hong Kong words are searched as mainland ones, densely and in BM25
            searched, mainland = bridge.mainland(searched)
            for zh in mainland:
                for tok in tokenize(zh):
                    terms[tok] = max(terms.get(tok, 0.0), bridge_mod.GLOSSARY_WEIGHT)
        bridged = bridge.expand(text)
        for zh, w in bridged.terms.items():
            for tok in tokenize(zh):
                terms[tok] = max(terms.get(tok, 0.0), w)
        for theme in bridged.themes:
            for tok in tokenize(theme.description_zh):
                terms.setdefault(tok, bridge_mod.THEME_WEIGHT)
        glossary_hits, themes = bridged.glossary_hits, len(bridged.themes)
    bigrams = {} if english else dict.fromkeys(char_bigrams(searched), 1.0)
    return Query(text, searched, english, traditional, with_variants(terms), own, bigrams, glossary_hits, themes)


def with_variants(terms: dict[str, float]) -> dict[str, float]:
    """`terms` plus, for each token containing a SCRIPT_VARIANTS character, its other spelling; a token whose other
    spelling is a stopword (著, the traditional spelling of the particle 着) is dropped."""
    from ..keyword import STOPWORDS

    out = {}
    for t, w in terms.items():
        if not any(ch in t for ch in SCRIPT_VARIANTS):
            out[t] = w
            continue
        alt = "".join(SCRIPT_VARIANTS.get(ch, ch) for ch in t)
        if alt in STOPWORDS:
            continue
        out[t] = w
        out.setdefault(alt, w)
    return out
