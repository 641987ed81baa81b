"""The rankers: each scores every passage of one loaded index for a prepared question.

A ranker is a small named object with `score(query) -> np.ndarray` (one score per passage, -inf where it has no
evidence), `floor`, the score of "no match" used by the fusion (None: the lowest of its candidates), and
`sees(query)`, the passages it can judge for that question (None: all). A ranker that cannot judge a passage abstains
for it instead of scoring it 0: a Chinese question's words and character pairs cannot match an English passage, so
the lexical rankers abstain there and the passage is fused on the evidence that can see it. Descriptions add
evidence for the passages they describe and never take any away from the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .config import CANDIDATES, SearchConfig
from .query import Query

if TYPE_CHECKING:
    from ..pipeline import LoadedIndex


class Ranker(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def floor(self) -> float | None: ...

    def score(self, query: Query) -> np.ndarray: ...

    def sees(self, query: Query) -> np.ndarray | None: ...


class SeesAll:
    """A ranker that can judge every passage for every question."""

    def sees(self, query: Query) -> np.ndarray | None:
        return None


class SeesSameScript:
    """A lexical ranker over Chinese text: a question not written in English cannot match English passages."""

    index: "LoadedIndex"

    def sees(self, query: Query) -> np.ndarray | None:
        english = self.index.english_passages
        return None if query.english or not english.any() else ~english


@dataclass(frozen=True)
class DensePassages(SeesAll):
    """Cosine of the question and each passage (FAISS; outside its top candidates a passage gets -inf)."""

    index: "LoadedIndex"
    name: str = "dense"
    floor: float | None = None

    def score(self, query: Query) -> np.ndarray:
        out = np.full(len(self.index.chunks), -np.inf)
        scores, ids = self.index.vectors.search(query.vector[None, :], CANDIDATES)
        for i, s in zip(ids[0], scores[0]):
            if i >= 0 and np.isfinite(s):
                out[int(i)] = float(s)
        return out


@dataclass(frozen=True)
class BestSentence(SeesAll):
    """Cosine of the question and each passage's best sentence: a passage is as good as its sharpest line."""

    index: "LoadedIndex"
    name: str = "sentence"
    floor: float | None = None

    def score(self, query: Query) -> np.ndarray:
        return best_per_group(self.index.sentence_vectors @ query.vector, self.index.sentence_rows)


@dataclass(frozen=True)
class Keyword(SeesSameScript):
    """BM25 over jieba words of the passages (simplified), with the question's bridged and mainland terms."""

    index: "LoadedIndex"
    name: str = "keyword"
    floor: float | None = 0.0

    def score(self, query: Query) -> np.ndarray:
        return self.index.keyword.weighted_scores(query.terms)[0] if query.terms else _none(self.index)


@dataclass(frozen=True)
class Bigram(SeesSameScript):
    """BM25 over Chinese character pairs of the passages: paraphrases share characters where jieba splits
    differently (Chinese questions only)."""

    index: "LoadedIndex"
    name: str = "bigram"
    floor: float | None = 0.0

    def score(self, query: Query) -> np.ndarray:
        if not query.bigrams or self.index.bigram is None:
            return _none(self.index)
        return self.index.bigram.weighted_scores(query.bigrams)[0]


@dataclass(frozen=True)
class Descriptions(SeesAll):
    """Cosine of the question and each described passage's best situation description (corpus/situations.toml and
    learned ones); -inf for a passage nobody described."""

    index: "LoadedIndex"
    name: str = "description"
    floor: float | None = None

    def score(self, query: Query) -> np.ndarray:
        if not len(self.index.situation_texts):
            return _none(self.index)
        return best_per_passage(
            self.index.situation_vectors @ query.vector, self.index.situation_chunks, len(self.index.chunks)
        )


@dataclass(frozen=True)
class DescriptionTerms(SeesAll):
    """BM25 of the question's words and character pairs against each described passage's best situation description:
    the words agents use for a situation, which the passages' literary text may not share (described passages
    only)."""

    index: "LoadedIndex"
    name: str = "description_terms"
    floor: float | None = 0.0

    def score(self, query: Query) -> np.ndarray:
        terms = {**query.terms, **query.bigrams}
        if self.index.situation_terms is None or not terms:
            return _none(self.index)
        return best_per_passage(
            self.index.situation_terms.weighted_scores(terms)[0], self.index.situation_chunks, len(self.index.chunks)
        )


def rankers_for(index: "LoadedIndex", config: SearchConfig) -> list[Ranker]:
    """The rankers with a non-zero weight in `config` (the keyword ranker: for questions in either language), over
    `index`."""
    all_rankers: list[Ranker] = [
        DensePassages(index),
        BestSentence(index),
        Keyword(index),
        Bigram(index),
        Descriptions(index),
        DescriptionTerms(index),
    ]
    weights = {**config.weights(), "keyword": max(config.keyword, config.keyword_english)}
    return [r for r in all_rankers if weights[r.name] > 0]


def best_per_group(scores: np.ndarray, rows: list[range]) -> np.ndarray:
    """Each passage's best row score (`rows[i]`: passage i's rows); -inf for a passage with no rows."""
    return np.array([scores[r.start : r.stop].max() if len(r) else -np.inf for r in rows])


def best_per_passage(scores: np.ndarray, labels: list[tuple[int, ...]], n_passages: int) -> np.ndarray:
    """Each passage's best score among the rows labelled with it (row i labels passages `labels[i]`); -inf for a
    passage no row labels."""
    best = np.full(n_passages, -np.inf)
    for score, docs in zip(scores, labels):
        for d in docs:
            if score > best[d]:
                best[d] = score
    return best


def _none(index: "LoadedIndex") -> np.ndarray:
    return np.full(len(index.chunks), -np.inf)
