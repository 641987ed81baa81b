"""Answer a situation: the rankers of coach/search scored, fused once, diversified, with each passage's key sentence.

A question in traditional Chinese is searched in its simplified, mainland-worded form (dense and BM25), so either
script gets the same answer. Query vectors of recent questions and the token sets of passages are cached.

`Coach` loads once and answers many queries; the CLI and the UI both use it. It is safe to query from many
threads while `rebuild()` runs: each query works on the index reference it started with.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import unicodedata
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from . import advice
from . import bridge as bridge_mod
from . import index as ix
from . import pipeline
from .chunk import Chunk
from .config import Settings
from .clean import ErratumMismatch
from .corpus import EssayMeta, MetadataError
from .search import (
    DIVERSITY_MARGIN,
    NO_DESCRIPTION_KEYWORD_FLOOR,
    SearchConfig,
    description_confidence,
    diversify,
    fuse,
    prepare,
    ranked,
    rankers_for,
)
from .search.query import Query

# Search modes, each adding rankers to the one before; `coach eval` compares them side by side.
MODES = {
    "dense": "the question's vector against the passages' alone",
    "hybrid": "every ranker that sees every passage alike: dense passages and best sentences, BM25 over words "
    "(English questions with their bridged Chinese terms) and over Chinese character pairs",
    "full": "hybrid, plus the situation descriptions (corpus/situations.toml) as evidence for the passages they "
    "describe",
}
DEFAULT_MODE = "full"
# Questions are capped before tokenising; longer input is shortened and the answer says so.
MAX_QUERY_CHARS = 1000
# Query vectors of the last this many questions are kept, so a repeated question (a trainer's demo, a follow-up
# asked again) skips encoding. 256 x 384 floats is under 0.5 MB.
QUERY_CACHE_SIZE = 256
# Diversified answers: this many candidates beyond top_k, for cards that repeat another's passage or key sentence.
CARD_SPARE = 6


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    essay: EssayMeta
    score: float  # fused score
    dense_score: float  # cosine similarity of query and passage
    keyword_score: float  # BM25 score (0 when no term matched)
    dense_rank: int | None  # 1-based, None when not among the candidates
    keyword_rank: int | None
    highlight: str  # the sentence that best answers the query
    highlight_span: tuple[int, int]  # its offsets in the cleaned essay
    matched_terms: tuple[str, ...]
    contributions: dict[str, float] = field(default_factory=dict)  # ranker -> its weighted share of `score`

    def to_json(self) -> dict:
        """The stable `coach ask --json` result object."""
        return {
            "id": self.chunk.id,
            "text": self.chunk.text,
            "source": self.chunk.id,
            "title": self.essay.title,
            "author": self.essay.author,
            "section": self.chunk.section,
            "score": round(self.score, 6),
            "highlight": self.highlight,
        }


@dataclass(frozen=True)
class Answer:
    query: str  # the query as searched (cleaned, possibly shortened)
    out_of_domain: bool
    results: list[Hit]
    truncated: bool = False  # the question was longer than MAX_QUERY_CHARS and was shortened
    timings_ms: dict = field(default_factory=dict)
    evidence: "Evidence | None" = None  # what the out-of-domain decision was based on

    def to_json(self) -> dict:
        """The stable `coach ask --json` object. Out of the domain, `results` is empty and the passages that came
        nearest (unrelated, by definition) are listed under `nearest`."""
        hits = [h.to_json() for h in self.results]
        if self.out_of_domain:
            return {"query": self.query, "out_of_domain": True, "results": [], "nearest": hits}
        return {"query": self.query, "out_of_domain": False, "results": hits}


def sanitize_query(text: str, limit: int = MAX_QUERY_CHARS) -> tuple[str, bool]:
    """Strip control characters, lone surrogates and invisible format characters; cap the length first."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    truncated = len(text) > limit * 4
    text = text[: limit * 4]  # bound the work below before cleaning
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cs" or (cat == "Cc" and ch not in "\t\n") or cat == "Cf":
            continue
        out.append(" " if ch in "\t\n" else ch)
    cleaned = " ".join("".join(out).split())
    if len(cleaned) > limit:
        cleaned, truncated = cleaned[:limit], True
    return cleaned, truncated


@dataclass(frozen=True)
class Evidence:
    """What decides whether a question is about something the veterans wrote about."""

    best_sentence: float  # best cosine of the question against any passage sentence
    best_keyword: float  # best BM25 score of the question's own words
    glossary_hits: int = 0  # customer-service phrases the bridge recognised
    themes: int = 0  # situation themes the question matched
    english: bool = False  # the question is mostly English
    best_description: float | None = None  # best cosine against the situation descriptions (None: there are none)
    best_out_of_scope: float | None = None  # best cosine against the out-of-scope prototypes (None: there are none)

    def evidence_score(self, config: SearchConfig) -> float:
        """The question's closest evidence on the descriptions' cosine scale: its best description, or its best
        passage sentence lifted by the usual gap between the two (an essay nobody described counts as much)."""
        lifted = self.best_sentence + config.description_gap
        return lifted if self.best_description is None else max(self.best_description, lifted)

    def out_of_domain(self, config: SearchConfig) -> bool:
        """Outside the domain when the closest evidence is below the floor of the question's language, or an
        out-of-scope prototype comes closer than the best description or the best sentence lifted by
        `ood_prototype_lift` (prototypes and descriptions are both questions, so the lift is smaller)."""
        score = self.evidence_score(config)
        floor = config.ood_floor_english if self.english else config.ood_floor
        # a corpus with no descriptions: the question's own words in BM25, or the bridge's customer-service phrases
        # and themes (one generic glossary word is not enough), count as evidence too
        words = self.best_description is None and (
            self.best_keyword >= NO_DESCRIPTION_KEYWORD_FLOOR or self.glossary_hits + 2 * self.themes >= 2
        )
        if score < floor and not words:
            return True
        if self.best_out_of_scope is None:
            return False
        lifted = self.best_sentence + config.ood_prototype_lift
        return self.best_out_of_scope > (
            lifted if self.best_description is None else max(self.best_description, lifted)
        )


class Coach:
    """Loads the model and a verified index once; `ask` answers situations."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder=None,
        build: bool = True,
        progress: pipeline.Progress | None = None,
        config: SearchConfig | None = None,
    ):
        """Open the index, building it when missing, stale or corrupt (or raising with the fix if build=False).

        `embedder` is the model builds start from (default: Settings.model); when the index was built with a
        tuned model (coach/tune.py), questions are encoded with that one."""
        self.settings = settings or Settings()
        self.config = config or SearchConfig()
        self._base = embedder
        self.embedder = embedder
        self.bridge = bridge_mod.default_bridge()
        self._lock = threading.Lock()
        self._scope_vectors: np.ndarray | None = None
        self._scope_lock = threading.Lock()
        self.query_cache_size = QUERY_CACHE_SIZE
        self._query_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._query_cache_lock = threading.Lock()
        # passage token sets (for `Hit.matched_terms`), per loaded index: id -> (weak reference, sets); a rebuilt
        # index gets its own, and the entry of an index nobody holds any more is dropped
        self._passage_tokens: dict[int, tuple[weakref.ref, list]] = {}
        self._warm_thread: threading.Thread | None = None
        self.index = self._open(build, progress)
        self.embedder = self._query_embedder(self.index)

    # ------------------------------------------------------------ models

    def base_embedder(self):
        """The model builds start from, as its query encoder (ONNX Runtime unless COACH_QUERY_ENGINE=torch: the
        same vectors, no torch import); loaded on first use."""
        if self._base is None:
            from .onnx_embed import query_embedder

            self._base = query_embedder(self.settings)
        return self._base

    def _build_embedder(self):
        """The base model as sentence-transformers, which builds (and fine-tunes) need."""
        base = self.base_embedder()
        full = getattr(base, "full", None)
        return full() if callable(full) else base

    def _query_embedder(self, index: pipeline.LoadedIndex):
        """The model the index's vectors come from: the tuned one named in its manifest, else the base model."""
        tuning = index.manifest.tuning
        if not tuning:
            return self.base_embedder()
        current = self.embedder
        if current is not None and getattr(current, "fingerprint", None) == tuning["fingerprint"]:
            return current
        from .onnx_embed import query_embedder

        return query_embedder(self.settings.with_overrides(model=tuning["path"]))

    # ------------------------------------------------------------ warm-up

    def warm_up(self, background: bool = True) -> threading.Thread | None:
        """Load what the first questions would otherwise load: the word cutter's dictionary, CC-CEDICT (for English
        questions), the out-of-scope prototype vectors and the passage token sets. With background=True (the app
        at start) this runs in a daemon thread, which is returned; a question arriving meanwhile waits for the same
        locks instead of loading a second copy. Calling it again while it runs returns the running thread."""
        if not background:
            self._warm()
            return None
        with self._lock:
            if self._warm_thread is None or not self._warm_thread.is_alive():
                self._warm_thread = threading.Thread(target=self._warm, name="coach-warm-up", daemon=True)
                self._warm_thread.start()
            return self._warm_thread

    def _warm(self) -> None:
        from .keyword import tokenize

        tokenize("客户")  # the word cutter's dictionary
        if self.bridge.use_dictionary:
            self.bridge.dictionary  # CC-CEDICT (locked: loaded once)
        self._out_of_scope_vectors()  # out-of-scope prototype vectors
        index = self.index
        tokens = self._token_sets(index)
        for doc in range(len(index.chunks)):
            self._chunk_tokens(index, tokens, doc)

    # ------------------------------------------------------------ index lifecycle

    def _open(self, build: bool, progress) -> pipeline.LoadedIndex:
        try:
            loaded = pipeline.load(self.settings)
            reasons = self.stale_reasons(loaded)
            if not reasons:
                return loaded
            problem: ix.IndexError_ = ix.IndexStale(reasons)
        except (ix.IndexMissing, ix.IndexCorrupt) as exc:
            problem = exc
        if not build:
            raise problem
        try:
            return pipeline.build(self.settings, self._build_embedder(), progress)
        except (MetadataError, ErratumMismatch) as exc:  # broken metadata never takes down an intact index
            if not isinstance(problem, ix.IndexStale):
                raise
            loaded.warnings = [
                *loaded.warnings,
                *str(exc).splitlines(),
                "the corpus metadata is broken (above), so the previous index is served; fix it and run `coach build`",
            ]
            return loaded

    def stale_reasons(self, loaded: pipeline.LoadedIndex | None = None) -> list[str]:
        """Why the index is out of date with the corpus, the model and the settings (empty: it is fresh)."""
        base = self.base_embedder()
        index = loaded or self.index
        expected = pipeline.expected_manifest(
            self.settings, base.name, base.fingerprint, pipeline.tunes(self.settings, base)
        )
        reasons = ix.stale_reasons(index.manifest, expected)
        tuning = index.manifest.tuning
        if tuning and not _tuned_folder_ok(tuning):
            reasons.append(f"the tuned model {tuning['path']} is missing")
        return reasons

    def rebuild(self, progress: pipeline.Progress | None = None) -> pipeline.LoadedIndex:
        """Build a new index and swap it in; queries in flight finish on the old one."""
        return self.use(pipeline.build(self.settings, self._build_embedder(), progress))

    def use(self, new: pipeline.LoadedIndex) -> pipeline.LoadedIndex:
        """Serve `new` (built here or by another process), with the model its vectors come from."""
        embedder = self._query_embedder(new)
        if embedder is not self.embedder:
            self.clear_query_cache()
            with self._scope_lock:
                self._scope_vectors = None
        self.embedder, self.index = embedder, new
        return new

    # ------------------------------------------------------------ search

    def scores(self, query: str, mode: str = DEFAULT_MODE) -> tuple[Query, dict[str, np.ndarray]]:
        """The prepared question and every ranker's per-passage scores for it (what `ask` fuses)."""
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        index = self.index
        text, _ = sanitize_query(query)
        prepared = self._prepare(text, mode)
        return prepared, {r.name: r.score(prepared) for r in rankers_for(index, self._mode_config(mode))}

    def ask(self, query: str, top_k: int = 3, diverse: bool = True, mode: str = DEFAULT_MODE) -> Answer:
        """Best advice for one situation. Never raises on odd text: empty input gives an empty answer.

        `mode` picks the rankers (see MODES); the default is the best one, the others exist so that `coach eval`
        can compare them side by side.
        """
        if mode not in MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        t0 = time.perf_counter()
        text, truncated = sanitize_query(query)
        index = self.index  # one consistent snapshot for the whole query
        top_k = max(0, min(int(top_k), len(index.chunks)))
        if not text or top_k == 0:
            return Answer(text, out_of_domain=not text, results=[], truncated=truncated)
        config = self._mode_config(mode)
        q = self._prepare(text, mode)
        t1 = time.perf_counter()
        rankers = rankers_for(index, config)
        scores = {r.name: r.score(q) for r in rankers}
        t2 = time.perf_counter()
        evidence = self._evidence(q, index, mode, scores)
        fused, parts = fuse(
            scores,
            self.weights(config, evidence),
            {r.name: r.floor for r in rankers},
            sees={r.name: r.sees(q) for r in rankers},
        )
        ranking = ranked(fused)
        # spare candidates replace cards that repeat another's passage or key sentence (below)
        spare = CARD_SPARE if top_k > 1 else 0  # a single card cannot repeat another
        picked = (
            diversify(ranking, lambda d: index.chunks[d].essay_id, top_k + spare, DIVERSITY_MARGIN)
            if diverse
            else ranking[:top_k]
        )
        hits = self._hits(index, q, picked, parts, scores)
        if diverse:
            keep = advice.distinct_cards(
                [
                    advice.CardText(h.chunk.essay_id, h.chunk.start, h.chunk.end, h.chunk.text, h.highlight)
                    for h in hits
                ],
                top_k,
            )
            hits = [hits[i] for i in keep]
        t3 = time.perf_counter()
        timings = {"encode": (t1 - t0) * 1e3, "search": (t2 - t1) * 1e3, "fuse_highlight": (t3 - t2) * 1e3}
        return Answer(text, evidence.out_of_domain(self.config), hits, truncated, timings, evidence)

    @staticmethod
    def weights(config: SearchConfig, evidence: "Evidence") -> dict[str, float]:
        """The fusion weights for one question: the description rankers count as much as the descriptions explain
        the question beyond the passages themselves (search.description_confidence); an English question's words
        count with `keyword_english`."""
        weights = config.weights()
        if evidence.english:
            weights["keyword"] = config.keyword_english
        confidence = description_confidence(
            evidence.best_description, evidence.best_sentence, config.description_gap, config.description_width
        )
        for name in ("description", "description_terms"):
            weights[name] *= confidence
        return weights

    def _mode_config(self, mode: str) -> SearchConfig:
        if mode == "dense":
            return dataclasses.replace(
                self.config,
                sentence=0.0,
                keyword=0.0,
                keyword_english=0.0,
                bigram=0.0,
                description=0.0,
                description_terms=0.0,
            )
        if mode == "hybrid":
            return dataclasses.replace(self.config, description=0.0, description_terms=0.0)
        return self.config

    def _prepare(self, text: str, mode: str) -> Query:
        q = prepare(text, self.bridge if mode != "dense" else None)  # simplified in every mode
        return dataclasses.replace(q, vector=self._query_vector(q.searched))

    def _evidence(self, q: Query, index: pipeline.LoadedIndex, mode: str, scores: dict[str, np.ndarray]) -> Evidence:
        """The out-of-domain evidence, reusing the sentence and description rankers' scores where they ran (every
        sentence and every description belongs to a passage, so their best per passage has the same maximum)."""
        own = index.keyword.weighted_scores(q.own_terms)[0] if q.own_terms else np.zeros(0)
        sentence = scores.get("sentence")
        if sentence is None:
            sentence = index.sentence_vectors @ q.vector if len(index.sentence_vectors) else np.zeros(1)
        best_description = None
        if mode == "full" and len(index.situation_texts):
            described = scores.get("description")
            best_description = float((described if described is not None else index.situation_vectors @ q.vector).max())
        best_sentence = float(sentence.max()) if np.isfinite(sentence).any() else 0.0
        return Evidence(
            best_sentence,
            float(own.max()) if len(own) else 0.0,
            q.glossary_hits,
            q.themes,
            q.english,
            best_description,
            self._best_out_of_scope(q.vector) if mode != "dense" else None,
        )

    def _hits(
        self,
        index: pipeline.LoadedIndex,
        q: Query,
        picked: list[tuple[int, float]],
        parts: dict[int, dict[str, float]],
        scores: dict[str, np.ndarray],
    ) -> list[Hit]:
        keyword = scores.get("keyword")
        if keyword is None:
            keyword = index.keyword.weighted_scores(q.terms)[0] if q.terms else np.zeros(len(index.chunks))
        dense = scores.get("dense")
        dense_order = (
            [int(i) for i in np.argsort(-dense, kind="stable") if np.isfinite(dense[i])] if dense is not None else []
        )
        kw_order = [int(i) for i in np.argsort(-keyword, kind="stable") if keyword[i] > 0]
        token_sets = self._token_sets(index)
        hits = []
        for doc, score in picked:
            chunk = index.chunks[doc]
            cosine = (
                float(dense[doc])
                if dense is not None and np.isfinite(dense[doc])
                else (float(index.vectors.index.reconstruct(doc) @ q.vector) if index.vectors.kind == "flat" else 0.0)
            )
            sentence, span = self._key_sentence(index, doc, q.vector)
            passage_tokens = self._chunk_tokens(index, token_sets, doc)
            hits.append(
                Hit(
                    chunk=chunk,
                    essay=index.essays[chunk.essay_id].meta,
                    score=score,
                    dense_score=cosine,
                    keyword_score=float(keyword[doc]),
                    dense_rank=dense_order.index(doc) + 1 if doc in dense_order else None,
                    keyword_rank=kw_order.index(doc) + 1 if doc in kw_order else None,
                    highlight=sentence,
                    highlight_span=span,
                    matched_terms=tuple(t for t in q.terms if t in passage_tokens),
                    contributions=dict(parts.get(doc, {})),
                )
            )
        return hits

    def key_sentence(self, question: str, chunk_id: str) -> str:
        """The sentence of passage `chunk_id` that best answers `question` (what its card would highlight); "" for
        an unknown passage."""
        index = self.index
        doc = next((n for n, c in enumerate(index.chunks) if c.id == chunk_id), None)
        if doc is None:
            return ""
        text, _ = sanitize_query(question)
        q = self._prepare(text, DEFAULT_MODE)
        return self._key_sentence(index, doc, q.vector)[0]

    def _query_vector(self, text: str) -> np.ndarray:
        """The question's vector, from the LRU cache when this exact text was asked lately with this model."""
        key = (getattr(self.embedder, "fingerprint", None), text)
        if self.query_cache_size > 0:
            with self._query_cache_lock:
                hit = self._query_cache.get(key)
                if hit is not None:
                    self._query_cache.move_to_end(key)
                    return hit
        vec = self.embedder.encode_queries([text])[0]
        if self.query_cache_size > 0:
            vec.setflags(write=False)  # shared between callers: never modified in place
            with self._query_cache_lock:
                self._query_cache[key] = vec
                self._query_cache.move_to_end(key)
                while len(self._query_cache) > self.query_cache_size:
                    self._query_cache.popitem(last=False)
        return vec

    def clear_query_cache(self) -> None:
        with self._query_cache_lock:
            self._query_cache.clear()

    def _token_sets(self, index: pipeline.LoadedIndex) -> list:
        """The (lazily filled) passage token sets of `index`, created once per loaded index."""
        with self._lock:
            entry = self._passage_tokens.get(id(index))
            if entry is not None and entry[0]() is index:
                return entry[1]
            for key in [k for k, (ref, _) in self._passage_tokens.items() if ref() is None]:
                del self._passage_tokens[key]
            sets: list = [None] * len(index.chunks)
            self._passage_tokens[id(index)] = (weakref.ref(index), sets)
            return sets

    @staticmethod
    def _chunk_tokens(index: pipeline.LoadedIndex, sets: list, doc: int) -> frozenset[str]:
        tokens = sets[doc]
        if tokens is None:  # two threads may both compute it: same value, no harm
            tokens = sets[doc] = frozenset(_simplified_tokens(index.chunks[doc].text))
        return tokens

    def _best_out_of_scope(self, q: np.ndarray) -> float | None:
        vectors = self._out_of_scope_vectors()
        return float((vectors @ q).max()) if len(vectors) else None

    def _out_of_scope_vectors(self) -> np.ndarray:
        """The out-of-scope prototypes' vectors, encoded once like the situation descriptions (with the query prompt,
        so the two cosines compare); Chinese ones in the simplified, mainland-worded form a question is searched in."""
        if self._scope_vectors is not None:
            return self._scope_vectors
        with self._scope_lock:
            if self._scope_vectors is None:
                texts = [
                    p.text if bridge_mod.is_english(p.text) else self.bridge.searched_form(p.text)
                    for p in self.bridge.out_of_scope
                ]
                self._scope_vectors = self.embedder.encode_queries(texts) if texts else np.zeros((0, 0), np.float32)
            return self._scope_vectors

    @staticmethod
    def _key_sentence(index: pipeline.LoadedIndex, doc: int, q: np.ndarray) -> tuple[str, tuple[int, int]]:
        chunk = index.chunks[doc]
        rows = index.sentence_rows[doc]
        if len(rows) == 0:
            return chunk.text, (chunk.start, chunk.end)
        key = advice.choose_key_sentence(
            [s.text for s in chunk.sentences], index.sentence_vectors[rows.start : rows.stop] @ q
        )
        s = chunk.sentences[key.index]
        return key.text, (s.start, s.end)


def _tuned_folder_ok(tuning: dict) -> bool:
    from .tune import is_tuned_folder
    from pathlib import Path

    return is_tuned_folder(Path(tuning["path"]), tuning.get("key"))


def _simplified_tokens(text: str) -> set[str]:
    from .keyword import tokenize

    return set(tokenize(text))
