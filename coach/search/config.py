"""The one frozen search configuration: every tuned number of the query side, recorded in each index manifest.

The evidence for each value (grids, leave-one-essay-out runs, held-out batches) is in eval/results.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchConfig:
    # fusion weights of the rankers (coach/search/rankers.py); a weight of 0 leaves the ranker out
    dense: float = 1.0  # question vs passage
    sentence: float = 1.0  # question vs the passage's best sentence
    keyword: float = 2.0  # BM25 over words (Chinese questions: their own, mainland and bridged words)
    # the same ranker for an English question, whose words reach the essays only through the bridge's Chinese
    # terms: its glossary and themes were written for the seed essays' vocabulary, so at full weight they pull
    # questions about essays added later towards seed passages
    keyword_english: float = 1.25
    bigram: float = 1.0  # BM25 over Chinese character pairs (Chinese questions)
    description: float = 2.0  # question vs the passage's best situation description (described passages only)
    description_terms: float = 2.0  # BM25 words + character pairs vs the best description (described passages only)
    # How much the descriptions count for a question: fully when its best description is closer than its best
    # passage sentence by description_gap + description_width or more, not at all below description_gap. A
    # question about an essay nobody described matches that essay's sentences about as well as any description,
    # so the descriptions of other essays cannot outvote it.
    description_gap: float = 0.08
    description_width: float = 0.05
    # out-of-domain: the question's evidence, max(best description, best sentence + description_gap) on the
    # descriptions' cosine scale, must reach the floor of its language (English questions score lower against
    # Chinese text), and no out-of-scope prototype (coach/data/out_of_scope.tsv) may come closer
    ood_floor: float = 0.76
    ood_floor_english: float = 0.745
    # ... than max(best description, best sentence + ood_prototype_lift). A prototype is a question, like a
    # description, so it needs a smaller lift over the passage sentences than the floor does: with the full
    # description_gap, a near-domain request ("the MPF rate of a Hong Kong call centre") that shares the essays'
    # vocabulary outscored every prototype on its sentence evidence alone
    ood_prototype_lift: float = 0.04

    def as_dict(self) -> dict:
        return asdict(self)

    def weights(self) -> dict[str, float]:
        return {
            "dense": self.dense,
            "sentence": self.sentence,
            "keyword": self.keyword,
            "bigram": self.bigram,
            "description": self.description,
            "description_terms": self.description_terms,
        }


# How many candidates each ranker contributes to the fusion (not tuned: the corpus is small, any value >= 10 gives
# the same top 10).
CANDIDATES = 50
# A corpus with no descriptions at all: the question's own words scoring this much in BM25 count as in-domain
# evidence too (not tuned: every evaluation corpus has descriptions, so nothing measures it).
NO_DESCRIPTION_KEYWORD_FLOOR = 4.0
# Cards, not ranking (the evaluation ranks with diversity off, so nothing tunes it): a second passage of an essay
# already shown must beat a new essay's best by this factor to take a card.
DIVERSITY_MARGIN = 2.0
