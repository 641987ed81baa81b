"""Corpus -> chunks -> embeddings -> index on disk, and back: build a fresh index or load a verified one."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from . import chunk as chunk_stage
from . import clean as clean_stage
from . import corpus as corpus_stage
from . import index as ix
from . import keyword as keyword_stage
from . import learned as learned_stage
from . import tune as tune_stage
from .bridge import is_english
from .chunk import Chunk, Sentence, chunk_essay
from .clean import to_simplified
from .config import Settings
from .corpus import CorpusLoad, EssayMeta, Essay, Situation, load_corpus, load_situations, locate_situations

Progress = Callable[[float, str], None]

# Hidden files, editor droppings and the corpus README never count towards the corpus hash.
_IGNORED_CORPUS_FILES = {"README.md"}


class EmbedderLike(Protocol):
    name: str
    fingerprint: str
    dim: int

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...

    def encode_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...


@dataclass(frozen=True)
class EssayRecord:
    meta: EssayMeta
    text: str  # cleaned, original script
    repairs: tuple[str, ...]


@dataclass
class LoadedIndex:
    """One verified build, immutable once loaded: queries hold a reference while a rebuild swaps in a new one."""

    build_dir: Path
    manifest: ix.Manifest
    vectors: ix.VectorIndex
    sentence_vectors: np.ndarray  # [n_sentences, dim]
    sentence_rows: list[range]  # chunk position -> its rows in sentence_vectors
    chunks: list[Chunk]
    essays: dict[str, EssayRecord]
    keyword: keyword_stage.KeywordIndex
    warnings: list[str]
    # situations (corpus/situations.toml): one row per situation text (en or zh), the chunk positions it describes
    situation_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    situation_texts: list[dict] = field(default_factory=list)  # {"text", "lang", "chunks": [ids], "essay"}
    situation_chunks: list[tuple[int, ...]] = field(default_factory=list)
    # BM25 over the passages' Chinese character pairs (keyword.char_bigrams)
    bigram: keyword_stage.KeywordIndex | None = None
    # BM25 over the situation texts' words and character pairs (keyword.words_and_bigrams); None without them
    situation_terms: keyword_stage.KeywordIndex | None = None
    # chunk position -> written mostly in Latin letters (a Chinese question's words cannot match such a passage)
    english_passages: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def pipeline_version() -> str:
    """Hash of the code that shapes the indexed text: editing it makes old indexes stale."""
    h = hashlib.sha256()
    for module in (clean_stage, corpus_stage, chunk_stage, keyword_stage, tune_stage):
        h.update(Path(str(module.__file__)).read_bytes())
    h.update(EMBEDDED_TEXT.encode())
    return h.hexdigest()[:16]


def corpus_hashes(corpus_dir: Path) -> dict[str, str]:
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist; create it or set COACH_CORPUS_DIR")
    out = {}
    for p in sorted(corpus_dir.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.name not in _IGNORED_CORPUS_FILES:
            try:
                out[p.name] = ix.sha256_file(p)
            except FileNotFoundError:  # reliability fix (issue 8): a file deleted mid-listing no longer aborts a build
                continue
    return out


def source_hashes(settings: Settings) -> dict[str, str]:
    """What a build reads, hashed: the corpus files, the added essays (`uploads/<name>`, with their metadata) and
    the learned descriptions (`learned`). With no uploads and no learned file this is `corpus_hashes` alone, so
    an index built before either existed stays fresh."""
    out = corpus_hashes(settings.corpus_dir)
    if settings.upload_dir.is_dir():
        for p in sorted(settings.upload_dir.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                try:
                    out[f"uploads/{p.name}"] = ix.sha256_file(p)
                except FileNotFoundError:  # removed while listing
                    continue
    if settings.learned_file.is_file():
        out["learned"] = ix.sha256_file(settings.learned_file)
    return out


def load_sources(settings: Settings) -> CorpusLoad:
    """The essays of corpus/ and those added in the app (`Settings.upload_dir`, with its own essays.toml), as one
    load. An added essay whose id or text is already in corpus/ is renamed or skipped with a warning, like two files
    of one folder."""
    loaded = load_corpus(settings.corpus_dir)
    if not settings.upload_dir.is_dir():
        return loaded
    added = load_corpus(settings.upload_dir)
    ids = {e.meta.id for e in loaded.essays}
    texts = {e.text: e.path.name for e in loaded.essays}
    for essay in added.essays:
        if essay.text in texts:
            loaded.warnings.append(f"skipped added essay {essay.path.name}: same text as {texts[essay.text]}")
            continue
        if essay.meta.id in ids:
            n = 2
            while f"{essay.meta.id}-{n}" in ids:
                n += 1
            essay = Essay(
                **{**essay.__dict__, "meta": EssayMeta(**{**essay.meta.__dict__, "id": f"{essay.meta.id}-{n}"})}
            )
        ids.add(essay.meta.id)
        texts[essay.text] = essay.path.name
        loaded.essays.append(essay)
    loaded.warnings.extend(f"added essays: {w}" for w in added.warnings)
    return loaded


def tunes(settings: Settings, embedder) -> bool:
    """Whether a build with this embedder fine-tunes it: tuning is on and the model is a local folder that
    sentence-transformers can train (not a test double)."""
    return settings.tune and getattr(embedder, "path", None) is not None and getattr(embedder, "trainable", False)


def expected_manifest(settings: Settings, model: str, fingerprint: str, tuned: bool = False) -> dict:
    """The manifest fields a build from the current corpus, model and settings would have."""
    return {
        "model": model,
        "model_fingerprint": fingerprint,
        "chunk_settings": settings.chunk.as_dict(),
        "pipeline_version": pipeline_version(),
        "corpus": source_hashes(settings),
        "tuning_settings": settings.tuning.as_dict() if tuned else None,
        "search": _search_config(),
    }


def _search_config() -> dict:
    from .search import SearchConfig

    return SearchConfig().as_dict()


# How `_embedding_text` shapes what the passage vectors are computed from. It lives in this module, which
# pipeline_version does not hash, so a change to it must change this string to make old indexes stale.
EMBEDDED_TEXT = (
    "passages as written, prefixed by 'title | section'; sentences as written; situation texts as "
    "written, traditional ones in simplified characters, with the query prompt"
)


def _embedding_text(chunk: Chunk, meta: EssayMeta) -> str:
    # The essay title and section give a short passage its topic ("关于管理" …) without changing what is shown.
    parts = [p for p in (meta.title, chunk.section) if p]
    return (" | ".join(parts) + "\n" if parts else "") + chunk.text


def situation_embedding_text(record: dict) -> str:
    """A traditional-Chinese description is embedded in simplified characters, the form a traditional question is
    searched in (multilingual-e5 matches the two scripts poorly); its Taiwan / Hong Kong wording stays."""
    return to_simplified(record["text"]) if record["lang"] == "zh-Hant" else record["text"]


def anchor_sentence(record: dict, chunks_by_id: dict[str, Chunk]) -> str | None:
    """The sentence of a situation record's first passage that holds its anchor (the passage text when the anchor
    spans sentences): the training target of its description."""
    chunk = chunks_by_id.get(record["chunks"][0]) if record["chunks"] else None
    if chunk is None:
        return None
    return next((s.text for s in chunk.sentences if record["anchor"] in s.text), chunk.text)


def tune_model(
    settings: Settings, embedder, situations: list[dict], chunks: list[Chunk], progress: Progress
) -> tuple[Any, dict]:
    """The embedder to build with: `embedder` fine-tuned on the situation descriptions (trained now unless cached),
    and the manifest's record of it."""
    from .embed import Embedder

    by_id = {c.id: c for c in chunks}
    pairs = tune_stage.training_pairs(situations, lambda r: anchor_sentence(r, by_id))
    learned = sum(1 for r in situations if r.get("learned"))
    progress(0.0, f"model tuned on {len(pairs)} descriptions ({learned} learned): trained now unless cached")
    path = tune_stage.ensure_tuned(
        embedder.path, embedder.name, embedder.fingerprint, pairs, settings.tuning, settings.tuned_dir, progress
    )
    tuned = Embedder(str(path), cache_dir=settings.model_cache_dir)
    info = json.loads((path / tune_stage.TUNING_FILE).read_text("utf-8"))
    return tuned, {
        "key": info["key"],
        "path": str(path),
        "fingerprint": tuned.fingerprint,
        "pairs": info["pairs"],
        "train_seconds": info["seconds"],
        "base_model": embedder.name,
    }


def situation_records(
    corpus_dir: Path, essays, chunks: list[Chunk], learned: list[learned_stage.Learned] | None = None
) -> tuple[list[dict], list[str]]:
    """One record per situation text (English, simplified or traditional Chinese) with the ids of the chunks the
    situation's anchor lies in and the entry's position, and the warnings of entries left out (unknown essay,
    anchor not found). The editors' entries (corpus/situations.toml) come first, then the `learned` ones (trainers'
    "this answers that", coach/learned.py), whose records carry `"learned": True`.

    An anchor attaches to every chunk containing it whole (two, when it sits in the sentence neighbouring chunks
    share); an anchor split by a chunk boundary attaches to the chunks it overlaps."""
    texts = {e.meta.id: e.text for e in essays}
    located, warnings = locate_situations(load_situations(corpus_dir), texts)
    sources: list[tuple[Situation, int, int, bool]] = [(s, a, b, False) for s, a, b in located]
    if learned:
        found, problems = locate_situations([item.situation() for item in learned], texts)
        sources += [(s, a, b, True) for s, a, b in found]
        warnings += [f"learned descriptions: {w.split(': ', 1)[-1]}" for w in problems]
    records = []
    for entry, (situation, start, end, is_learned) in enumerate(sources):
        mine = [c for c in chunks if c.essay_id == situation.essay]
        ids = [c.id for c in mine if c.start <= start and end <= c.end] or [
            c.id for c in mine if c.start < end and start < c.end
        ]
        if not ids:
            warnings.append(f"situation anchor {situation.anchor!r} of {situation.essay!r} lies in no passage")
            continue
        for lang, text in situation.texts():
            record = {
                "text": text,
                "lang": lang,
                "essay": situation.essay,
                "anchor": situation.anchor,
                "chunks": ids,
                "entry": entry,
            }
            if is_learned:
                record["learned"] = True
            records.append(record)
    return records, warnings


def learned_descriptions(settings: Settings) -> list[learned_stage.Learned]:
    """The trainers' learned descriptions a build uses (none when the file is absent)."""
    return learned_stage.load_learned(settings.learned_file)


_build_lock = threading.Lock()


def build(settings: Settings, embedder: EmbedderLike, progress: Progress | None = None) -> LoadedIndex:
    """Build a complete index from the corpus and switch to it atomically. Returns it loaded.

    With tuning on (Settings.tune) the model is first fine-tuned on the situation descriptions (cached by
    coach/tune.py's key), and every vector of the build comes from the tuned model."""
    progress = progress or (lambda fraction, message: None)
    started = time.time()
    with _build_lock, ix.build_lock(settings.index_dir):  # threads of this process, then other processes
        tuned = tunes(settings, embedder)
        expected = expected_manifest(settings, embedder.name, embedder.fingerprint, tuned)
        progress(0.0, "reading corpus")
        loaded = load_sources(settings)
        if not loaded.essays:
            raise ValueError(f"no readable essays in {settings.corpus_dir}; add .txt, .md or .html files")
        chunks: list[Chunk] = []
        for essay in loaded.essays:
            chunks.extend(chunk_essay(essay, settings.chunk))
        metas = {e.meta.id: e.meta for e in loaded.essays}
        learned = learned_descriptions(settings)
        situations, situation_warnings = situation_records(settings.corpus_dir, loaded.essays, chunks, learned)
        tuning = None
        if tuned and situations:
            embedder, tuning = tune_model(
                settings, embedder, situations, chunks, lambda f, message: progress(0.05 + 0.6 * f, message)
            )
        elif tuned:
            expected["tuning_settings"] = None  # nothing to tune on: the base model serves as it is

        progress(0.65, f"embedding {len(chunks)} passages")
        passage_vecs = embedder.encode_passages([_embedding_text(c, metas[c.essay_id]) for c in chunks])
        sentences = [s.text for c in chunks for s in c.sentences]
        progress(0.75, f"embedding {len(sentences)} sentences")
        sentence_vecs = embedder.encode_passages(sentences) if sentences else np.zeros((0, embedder.dim), np.float32)
        progress(0.85, f"embedding {len(situations)} situation descriptions")
        # with the query prompt: matching a question to descriptions written the way agents ask is the symmetric
        # (paraphrase) task e5 prompts both sides of with "query: "
        situation_vecs = (
            embedder.encode_queries([situation_embedding_text(r) for r in situations])
            if situations
            else np.zeros((0, passage_vecs.shape[1]), np.float32)
        )

        progress(0.9, "writing index")
        tmp = ix.new_build_dir(settings.index_dir)
        try:
            vectors = ix.VectorIndex.build(passage_vecs, settings.approximate_above)
            vectors.save(tmp / ix.PASSAGES_FILE)
            ix.save_array(tmp / ix.SENTENCES_FILE, sentence_vecs)
            ix.write_jsonl(tmp / ix.CHUNKS_FILE, [_chunk_to_json(c) for c in chunks])
            essays_json = [{"meta": asdict(e.meta), "text": e.text, "repairs": list(e.repairs)} for e in loaded.essays]
            (tmp / ix.ESSAYS_FILE).write_text(json.dumps(essays_json, ensure_ascii=False, indent=1), "utf-8")
            (tmp / ix.KEYWORD_DIR).mkdir()
            keyword_stage.KeywordIndex.build([c.text for c in chunks]).save(tmp / ix.KEYWORD_DIR)
            (tmp / ix.BIGRAM_DIR).mkdir()
            keyword_stage.KeywordIndex.build([c.text for c in chunks], keyword_stage.char_bigrams).save(
                tmp / ix.BIGRAM_DIR
            )
            ix.save_array(tmp / ix.SITUATIONS_FILE, np.asarray(situation_vecs, np.float32))
            ix.write_jsonl(tmp / ix.SITUATION_TEXTS_FILE, situations)
            if situations:
                (tmp / ix.SITUATION_TERMS_DIR).mkdir()
                keyword_stage.KeywordIndex.build(
                    [situation_embedding_text(r) for r in situations], keyword_stage.words_and_bigrams
                ).save(tmp / ix.SITUATION_TERMS_DIR)
            described = {i for r in situations for i in r["chunks"]}
            manifest = ix.Manifest(
                format_version=ix.FORMAT_VERSION,
                dim=int(passage_vecs.shape[1]),
                index_type=vectors.kind,
                counts={
                    "essays": len(loaded.essays),
                    "chunks": len(chunks),
                    "sentences": len(sentences),
                    "situations": len({r["entry"] for r in situations}),
                    "learned_situations": len({r["entry"] for r in situations if r.get("learned")}),
                    "situation_texts": len(situations),
                    "chunks_with_situations": len(described),
                    "chunks_without_situations": len(chunks) - len(described),
                },
                versions=ix.versions(),
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                build_seconds=round(time.time() - started, 2),
                tuning=tuning,
                **expected,
            )
            final = ix.commit_build(settings.index_dir, tmp, manifest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        housekeeping: list[str] = []
        if tuning:  # every rebuild after "this answers that" trains a model: keep the cache from growing without end
            try:
                tune_stage.prune_tuned(
                    settings.tuned_dir,
                    tuned_models_in_use(settings.index_dir) | {Path(tuning["path"])},
                    settings.tuned_keep,
                )
            except OSError as exc:  # housekeeping: the index is built and committed whatever happens here
                housekeeping.append(f"could not prune the tuned models in {settings.tuned_dir}: {exc}")
        progress(1.0, "index ready")
        result = load_build(final)
        undescribed = [c.id for c in chunks if c.id not in described]
        notes = (
            [
                f"{len(undescribed)} of {len(chunks)} passages have no situation description (they are searched "
                f"all the same): {', '.join(undescribed[:8])}{' ...' if len(undescribed) > 8 else ''}"
            ]
            if undescribed and situations
            else []
        )
        result.warnings = list(loaded.warnings) + situation_warnings + notes + housekeeping
        return result


def tuned_models_in_use(index_dir: Path) -> set[Path]:
    """The tuned model folders the builds kept in `index_dir` were embedded with (their manifests name them)."""
    out = set()
    for manifest in (Path(index_dir) / ix.BUILDS).glob(f"*/{ix.MANIFEST}"):
        try:
            tuning = json.loads(manifest.read_text("utf-8")).get("tuning")
        except (OSError, ValueError):
            continue
        if isinstance(tuning, dict) and tuning.get("path"):
            out.add(Path(tuning["path"]))
    return out


def load(settings: Settings) -> LoadedIndex:
    """Load the current build after verifying every file against its manifest (not checked for staleness)."""
    return load_build(ix.current_build(settings.index_dir))


def load_build(build_dir: Path) -> LoadedIndex:
    manifest = ix.read_manifest(build_dir)
    ix.verify_files(build_dir, manifest)
    try:
        chunks = [_chunk_from_json(row) for row in ix.read_jsonl(build_dir / ix.CHUNKS_FILE)]
        essays = {}
        for row in json.loads((build_dir / ix.ESSAYS_FILE).read_text("utf-8")):
            meta = EssayMeta(**row["meta"])
            essays[meta.id] = EssayRecord(meta, row["text"], tuple(row.get("repairs", ())))
    except (KeyError, TypeError, ValueError) as exc:
        raise ix.IndexCorrupt(f"index metadata in {build_dir.name} is malformed ({exc}); run `coach build`") from exc
    vectors = ix.VectorIndex.load(build_dir / ix.PASSAGES_FILE)
    sentence_vectors = ix.load_array(build_dir / ix.SENTENCES_FILE)
    rows, start = [], 0
    for c in chunks:
        rows.append(range(start, start + len(c.sentences)))
        start += len(c.sentences)
    if vectors.ntotal != len(chunks) or len(sentence_vectors) != start or vectors.index.d != manifest.dim:
        raise ix.IndexCorrupt(f"index files in {build_dir.name} disagree on counts; run `coach build`")
    keyword = keyword_stage.KeywordIndex.load(build_dir / ix.KEYWORD_DIR)
    situation_vectors = ix.load_array(build_dir / ix.SITUATIONS_FILE)
    position = {c.id: n for n, c in enumerate(chunks)}
    try:
        situation_texts = ix.read_jsonl(build_dir / ix.SITUATION_TEXTS_FILE)
        situation_chunks = [tuple(position[i] for i in r["chunks"]) for r in situation_texts]
        [r["text"] for r in situation_texts]
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ix.IndexCorrupt(f"situation texts in {build_dir.name} are malformed ({exc}); run `coach build`") from exc
    if len(situation_vectors) != len(situation_texts) or (
        len(situation_texts) and situation_vectors.shape[1] != manifest.dim
    ):
        raise ix.IndexCorrupt(f"situation files in {build_dir.name} disagree on counts; run `coach build`")
    bigram = keyword_stage.KeywordIndex.load(build_dir / ix.BIGRAM_DIR)
    situation_terms = keyword_stage.KeywordIndex.load(build_dir / ix.SITUATION_TERMS_DIR) if situation_texts else None
    return LoadedIndex(
        build_dir,
        manifest,
        vectors,
        sentence_vectors,
        rows,
        chunks,
        essays,
        keyword,
        [],
        situation_vectors,
        situation_texts,
        situation_chunks,
        bigram,
        situation_terms,
        np.array([is_english(c.text) for c in chunks], dtype=bool),
    )


def _chunk_to_json(c: Chunk) -> dict:
    return {
        "id": c.id,
        "essay_id": c.essay_id,
        "section": c.section,
        "text": c.text,
        "start": c.start,
        "end": c.end,
        "sentences": [[s.text, s.start, s.end] for s in c.sentences],
    }


def _chunk_from_json(row: dict) -> Chunk:
    return Chunk(
        id=row["id"],
        essay_id=row["essay_id"],
        section=row["section"],
        text=row["text"],
        start=row["start"],
        end=row["end"],
        sentences=tuple(Sentence(t, s, e) for t, s, e in row["sentences"]),
    )
