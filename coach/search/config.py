"""The one frozen search configuration: every tuned number of the query side, recorded in each index manifest.

The evidence for each value (grids, leave-one-essay-out runs, held-out batches) is in eval/results.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchConfig:
    # fusion weights of the rankers (coach/search/rankers.py); a weight of 0 leaves the ranker out
    dense: float = 1.0             # question vs passage
    sentence: float = 1.0          # question vs the passage's best sentence
    keyword: float = 1.0           # BM25 over words (English questions: their bridged Chinese terms too)
    bigram: float = 1.0            # BM25 over Chinese character pairs (Chinese questions)
    description: float = 1.0       # question vs the passage's best situation description (described passages only)
    description_terms: float = 1.0  # BM25 words + character pairs vs the best description (described passages only)
    # diversity: a second passage of an essay already shown must beat a new essay's best by this factor
    diversity_margin: float = 2.0
    # out-of-domain: a question is in the domain when its best passage sentence or its best description reaches
    # the floor of its language (English questions score lower against Chinese text), and no out-of-scope prototype
    # (coach/data/out_of_scope.tsv) is closer than that evidence
    sentence_floor: float = 0.85
    sentence_floor_english: float = 0.80
    description_floor: float = 0.895
    description_floor_english: float = 0.845

    def as_dict(self) -> dict:
        return asdict(self)

    def weights(self) -> dict[str, float]:
        return {"dense": self.dense, "sentence": self.sentence, "keyword": self.keyword, "bigram": self.bigram,
                "description": self.description, "description_terms": self.description_terms}


# How many candidates each ranker contributes to the fusion (not tuned: the corpus is small, any value >= 10 gives
# the same top 10).
CANDIDATES = 50
