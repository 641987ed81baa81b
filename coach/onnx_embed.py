"""The fast query path: the embedding model's transformer exported once to ONNX, run with ONNX Runtime.

Importing torch and sentence-transformers takes seconds and ~300 MB before any work, which a one-shot
`coach ask` or the app's start should not pay. `export_onnx()` (torch, once per model, at build time) writes
the model's forward pass after the word-embedding lookup (transformer, pooling, normalisation) to
`<model cache>/onnx/<fingerprint>/`, with the tokenizer as `tokenizers` saves it and the settings
sentence-transformers uses (prompts, max_seq_length). `OnnxEmbedder` then needs only onnxruntime, `tokenizers`
and numpy, and computes the same vectors as `SentenceTransformer.encode` (cosine >= 0.99999, tests/test_onnx_embed.py).

The word-embedding table (122k x 384 fp32 for the bundled model: 188 MB) stays out of the graph: looked-up rows are
read from a memory map of the model's own safetensors file, so only the pages of tokens actually seen become
resident. Any sentence-transformers folder works (the bundled one, a fine-tuned one, a downloaded one); the
index is still built with sentence-transformers (`encode_passages` loads `coach.embed.Embedder` on first use).

`query_embedder(settings)` is the one place that picks the query embedder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from coach.config import DEFAULT_MODEL, Settings

# Bump when the export's layout changes; older exports are then redone.
EXPORT_VERSION = 1
STAMP_NAME = "coach-onnx.json"
ONNX_NAME = "encoder.onnx"
TOKENIZER_NAME = "tokenizer.json"
TABLE_NAME = "word_embeddings.npy"  # only when the table is not an fp32 tensor of the folder's safetensors
# Query batches of at least this many texts (the fixed theme descriptions and out-of-scope prototypes Coach encodes
# in every process, ~200 texts, 1-2 s) are remembered on disk beside the export, keyed by the texts; at most
# VECTOR_FILES files are kept. A user's question (a few texts) is never written.
VECTOR_CACHE_MIN_TEXTS = 16
VECTOR_FILES = 32
# COACH_QUERY_ENGINE: "onnx" (the default) or "torch" (sentence-transformers for queries too).
ENGINES = ("onnx", "torch")
_EXPORT_LOCK = threading.Lock()


class ExportError(RuntimeError):
    """The model could not be exported or an export could not be loaded; the message names the fix."""


# --------------------------------------------------------------------------------------------
# Identity (the same name and fingerprint as coach.embed.Embedder, so the index manifest matches)
# --------------------------------------------------------------------------------------------


def model_identity(settings: Settings) -> tuple[Path | None, str, str]:
    """(local folder or None for a hub name, name, fingerprint) of `settings.model`, as Embedder records them.

    Converts the bundled model first if needed (numpy only, no torch)."""
    from coach import embed
    from coach import model as bundled

    name = settings.model or DEFAULT_MODEL
    if name == DEFAULT_MODEL:
        folder = bundled.ensure_converted(settings.model_cache_dir, vocabulary=settings.vocabulary)
        source_sha = bundled.source_fingerprint(bundled.bundle_path(), settings.model_cache_dir)
        fingerprint = hashlib.sha256(
            f"{DEFAULT_MODEL}|{source_sha}|format-{bundled.FORMAT_VERSION}|{settings.vocabulary}".encode()
        ).hexdigest()
        return folder, name, fingerprint
    local = Path(name).expanduser()
    if local.is_dir():
        return local, name, embed.folder_fingerprint(local)
    return None, name, ""


def export_dir(settings: Settings, fingerprint: str) -> Path:
    """Where the export of the model with this fingerprint lives (beside the converted models)."""
    return Path(settings.model_cache_dir) / "onnx" / f"{fingerprint[:24]}-v{EXPORT_VERSION}"


# --------------------------------------------------------------------------------------------
# Export (torch + sentence-transformers; once per model)
# --------------------------------------------------------------------------------------------


def _safetensors_tensor(path: Path, name: str) -> dict | None:
    """Byte offset, dtype and shape of one tensor of a safetensors file (its JSON header only)."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        return None
    meta = header.get(name)
    if not meta:
        return None
    start, end = meta["data_offsets"]
    return {
        "file": path.name,
        "offset": 8 + size + start,
        "nbytes": end - start,
        "dtype": meta["dtype"],
        "shape": meta["shape"],
    }


def _locate_table(folder: Path, auto_model: Any, table: np.ndarray) -> dict | None:
    """The word-embedding table as an fp32 tensor of the folder's safetensors file, checked row by row on a
    sample; None when it is not there as such (quantised, tied under another name, .bin weights)."""
    names = [n for n, p in auto_model.named_parameters() if p is auto_model.get_input_embeddings().weight]
    for file in sorted(folder.glob("*.safetensors")):
        for name in names:
            for candidate in (name, f"{auto_model.base_model_prefix}.{name}"):
                meta = _safetensors_tensor(file, candidate)
                if not meta or meta["dtype"] != "F32" or tuple(meta["shape"]) != table.shape:
                    continue
                mapped = np.memmap(file, dtype="<f4", mode="r", offset=meta["offset"], shape=table.shape)
                rows = np.unique(np.linspace(0, table.shape[0] - 1, 64).astype(int))
                if np.array_equal(mapped[rows], table[rows]):
                    return meta
    return None


def export_onnx(folder: Path, target: Path, *, progress: Callable[[str], None] | None = None) -> Path:
    """Export the sentence-transformers model in `folder` to `target` (atomically); returns `target`.

    Needs torch, sentence-transformers and onnx (the legacy TorchScript exporter; a BERT-style encoder traces
    without control flow). The graph's inputs are the looked-up word embeddings and the attention mask; its output
    is the model's sentence embedding (pooling and, where the model has it, normalisation included)."""
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    folder, target = Path(folder), Path(target)
    if progress:
        progress(f"exporting the query model to ONNX (once): {target}")
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.eval()
    first = model[0]
    auto_model = first.auto_model
    tokenizer = first.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{folder}: the tokenizer has no fast (tokenizers) version; set COACH_QUERY_ENGINE=torch")
    modules = list(model)[1:]

    class Encoder(torch.nn.Module):
        """Word embeddings + mask -> sentence embedding (the model's own modules after the transformer)."""

        def __init__(self) -> None:
            super().__init__()
            self.auto_model = auto_model
            self.rest = torch.nn.ModuleList(modules)

        def forward(self, inputs_embeds, attention_mask):
            tokens = self.auto_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            features = {"token_embeddings": tokens, "attention_mask": attention_mask}
            for module in self.rest:
                features = module(features)
            return features["sentence_embedding"]

    table = auto_model.get_input_embeddings().weight.detach().cpu().numpy()
    sample = model.preprocess(["query: how do I calm an angry caller", "query: 客户"])
    ids, mask = sample["input_ids"], sample["attention_mask"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation warnings: the graph is checked below
            torch.onnx.export(
                Encoder().eval(),
                (torch.from_numpy(table[ids.numpy()]), mask),
                str(tmp / ONNX_NAME),
                input_names=["inputs_embeds", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "inputs_embeds": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        _optimise(tmp / ONNX_NAME)
        tokenizer.backend_tokenizer.save(str(tmp / TOKENIZER_NAME), pretty=False)
        located = _locate_table(folder, auto_model, table)
        if located is None:
            np.save(tmp / TABLE_NAME, np.ascontiguousarray(table, dtype=np.float32))
        stamp = {
            "export_version": EXPORT_VERSION,
            "onnxruntime": _runtime_version(),
            "source": str(folder.resolve()),
            "prompts": dict(model.prompts or {}),
            "max_seq_length": int(model.max_seq_length or 512),
            "pad_token_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
            "table": located or {"file": TABLE_NAME},
            "table_shape": list(table.shape),
            "files": {n: (tmp / n).stat().st_size for n in (ONNX_NAME, TOKENIZER_NAME)},
            "sources": _source_state(folder),
        }
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: theirs is as good
            if _stamp_problem(target, folder) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _optimise(path: Path) -> None:
    """Replace the exported graph by ONNX Runtime's optimised form of it (fused attention, GELU, layer norms),
    so that loading it skips the optimisation: 0.77 -> 0.44 s on 2 cores. The "extended" level is not
    specific to this CPU (the "all" level would be); the stamp records the onnxruntime version it needs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(path.with_suffix(".opt"))
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    os.replace(path.with_suffix(".opt"), path)


def _runtime_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def _source_state(folder: Path) -> dict[str, list[int]]:
    """Size and modification time of the model folder's weight, config and tokenizer files. The fingerprint holds
    names and sizes only, and a model fine-tuned again in place keeps its sizes: its export must be redone."""
    from coach.embed import _IDENTITY_SUFFIXES

    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in _IDENTITY_SUFFIXES):
        st = path.stat()
        out[path.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def _stamp_problem(target: Path, folder: Path | None = None) -> str | None:
    """Why the export in `target` (of the model in `folder`, when given) is unusable, or None."""
    try:
        stamp = json.loads((target / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"no readable {STAMP_NAME} ({exc.__class__.__name__})"
    if stamp.get("export_version") != EXPORT_VERSION:
        return f"export version {stamp.get('export_version')} != {EXPORT_VERSION}"
    if stamp.get("onnxruntime") != _runtime_version():
        return f"optimised by onnxruntime {stamp.get('onnxruntime')}, this is {_runtime_version()}"
    for name, size in stamp.get("files", {}).items():
        try:
            if (target / name).stat().st_size != size:
                return f"{name} has the wrong size"
        except OSError:
            return f"{name} is missing"
    if folder is not None and stamp.get("sources") != _source_state(folder):
        return f"the model in {folder} changed since it was exported"
    return None


def ensure_exported(
    settings: Settings, folder: Path, fingerprint: str, progress: Callable[[str], None] | None = None
) -> Path:
    """The export of the model in `folder`, exporting it first when missing or outdated."""
    target = export_dir(settings, fingerprint)
    if _stamp_problem(target, folder) is None:
        return target
    with _EXPORT_LOCK:
        if _stamp_problem(target, folder) is None:
            return target
        return export_onnx(folder, target, progress=progress)


# --------------------------------------------------------------------------------------------
# Query-time embedder (onnxruntime + tokenizers + numpy)
# --------------------------------------------------------------------------------------------


class OnnxEmbedder:
    """Same interface as coach.embed.Embedder; queries run on ONNX Runtime, passages on sentence-transformers.

    `threads` intra-op threads per call (default 1, as Embedder's `query_threads`: a dozen tokens give a second
    core little to do). `load_full` makes the sentence-transformers Embedder for `encode_passages` (builds);
    it is called once, on first use.
    """

    def __init__(
        self,
        export: Path,
        name: str,
        fingerprint: str,
        source: Path,
        *,
        threads: int = 1,
        vocabulary: str | None = None,
        load_full: Callable[[], Any] | None = None,
    ) -> None:
        self.export = Path(export)
        self.name = name
        self.fingerprint = fingerprint
        self.path: Path | None = Path(source)
        # a local sentence-transformers folder: builds fine-tune it (through `full()`, coach/tune.py)
        self.trainable: bool = load_full is not None
        self.vocabulary: str | None = vocabulary  # the bundled model's ("served" / "full"), else None
        stamp = json.loads((self.export / STAMP_NAME).read_text(encoding="utf-8"))
        self.prompts: dict[str, str] = stamp.get("prompts") or {}
        self.max_seq_length: int = int(stamp["max_seq_length"])
        self.pad_token_id: int = int(stamp["pad_token_id"])
        table = stamp["table"]
        shape = tuple(stamp["table_shape"])
        if table["file"] == TABLE_NAME:
            self._table = np.load(self.export / TABLE_NAME, mmap_mode="r")
        else:
            self._table = np.memmap(
                self.path / table["file"], dtype="<f4", mode="r", offset=table["offset"], shape=shape
            )
        self._tokenizer_file = self.export / TOKENIZER_NAME
        self._counter: Any = None
        self._threads = max(1, int(threads))
        # The session and the tokenizer (a few hundred MB) load on the first encode: a Coach whose index was built
        # by a tuned model keeps its base model only to name it, and never pays for it.
        self._session: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self.dim: int = shape[1]  # mean pooling of the token embeddings: the table's width
        self._load_full = load_full
        self._full: Any = None
        self._full_lock = threading.Lock()

    def _load(self) -> None:
        """Open the ONNX session and the tokenizer (once; concurrent callers wait for the first)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        with self._load_lock:
            if self._session is not None:
                return
            # the tokenizer (0.3-0.5 s: a 122k-piece trie) loads in a second thread while the session loads here;
            # both release the GIL
            loaded: dict[str, Any] = {}
            reader = threading.Thread(
                target=lambda: loaded.update(tok=Tokenizer.from_file(str(self._tokenizer_file))),
                name="coach-tokenizer",
                daemon=True,
            )
            reader.start()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting between calls
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # optimised at export
            options.log_severity_level = 3
            session = ort.InferenceSession(str(self.export / ONNX_NAME), options, providers=["CPUExecutionProvider"])
            reader.join()
            if "tok" not in loaded:
                raise ExportError(f"{self._tokenizer_file} could not be read; delete {self.export} to export again")
            width = session.get_outputs()[0].shape[-1]
            if isinstance(width, int) and width != self.dim:
                raise ExportError(
                    f"{self.export} gives {width}-wide vectors, not {self.dim}; delete it to export again"
                )
            tokenizer = loaded["tok"]
            tokenizer.no_padding()
            tokenizer.enable_truncation(self.max_seq_length)
            self._tokenizer, self._session = tokenizer, session

    def _prompt(self, name: str, default: str) -> str:
        return self.prompts.get(name) or default

    def _run(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self._load()
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        embeds = np.ascontiguousarray(self._table[ids], dtype=np.float32)
        (vectors,) = self._session.run(None, {"inputs_embeds": embeds, "attention_mask": mask})
        vectors = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def encode_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "query: " prompt."""
        from coach.embed import QUERY_PROMPT

        prompt = self._prompt("query", QUERY_PROMPT)
        texts = [prompt + t for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) < VECTOR_CACHE_MIN_TEXTS:
            return self._encode(texts, batch_size)
        key = hashlib.sha256("\0".join([self.fingerprint, *texts]).encode("utf-8", "surrogatepass")).hexdigest()
        path = self.export / "vectors" / f"{key[:32]}.npy"
        try:
            cached = np.load(path)
            if cached.shape == (len(texts), self.dim) and cached.dtype == np.float32:
                return cached
        except (OSError, ValueError):
            pass
        vectors = self._encode(texts, batch_size)
        self._remember(path, vectors)
        return vectors

    @staticmethod
    def _remember(path: Path, vectors: np.ndarray) -> None:
        """Write `vectors` atomically; a read-only cache just means encoding again next time."""
        try:
            path.parent.mkdir(exist_ok=True)
            old = sorted(path.parent.glob("*.npy"), key=lambda p: p.stat().st_mtime)
            for stale in old[: max(0, len(old) - VECTOR_FILES + 1)]:
                stale.unlink(missing_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, vectors)
            os.replace(tmp, path)
        except OSError:
            pass

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        # batches in length order, as SentenceTransformer.encode does, so padding stays short
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), max(1, batch_size)):
            rows = order[start : start + batch_size]
            out[rows] = self._run([texts[i] for i in rows])
        return out

    def full(self) -> Any:
        """The sentence-transformers Embedder for the same model (loaded on first use: builds only)."""
        with self._full_lock:
            if self._full is None:
                if self._load_full is None:
                    raise ExportError("this OnnxEmbedder cannot encode passages (no sentence-transformers loader)")
                self._full = self._load_full()
            return self._full

    def encode_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """[n, dim] float32, L2-normalised, with the "passage: " prompt: sentence-transformers, as the index
        is built."""
        return self.full().encode_passages(texts, batch_size=batch_size)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` as a passage (prompt and special tokens included), untruncated."""
        from tokenizers import Tokenizer

        from coach.embed import PASSAGE_PROMPT

        if self._counter is None:
            counter = Tokenizer.from_file(str(self._tokenizer_file))
            counter.no_truncation()
            counter.no_padding()
            self._counter = counter
        return len(self._counter.encode(self._prompt("passage", PASSAGE_PROMPT) + text).ids)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def prepare(settings: Settings, progress: Callable[[str], None] | None = _say) -> Path | None:
    """Export the query model now if it is not yet (`coach build` calls this, so the first `coach ask` after a build
    loads in a second); None when queries will not use ONNX Runtime. A failure is a warning, not an error: queries
    then fall back to sentence-transformers."""
    if os.environ.get("COACH_QUERY_ENGINE", "onnx").strip().lower() == "torch":
        return None
    try:
        folder, _name, fingerprint = model_identity(settings)
        return ensure_exported(settings, folder, fingerprint, progress=progress) if folder is not None else None
    except Exception as exc:  # noqa: BLE001 - reported, and queries fall back
        if progress:
            progress(
                f"warning: could not export the query model to ONNX ({exc.__class__.__name__}: {exc}); "
                f"questions will be encoded by sentence-transformers"
            )
        return None


def _torch_embedder(settings: Settings) -> Any:
    from coach.embed import Embedder

    return Embedder(settings.model, cache_dir=settings.model_cache_dir, vocabulary=settings.vocabulary)


def query_embedder(settings: Settings | None = None, *, progress: Callable[[str], None] | None = _say) -> Any:
    """The embedder Coach uses: OnnxEmbedder for a local or bundled model (exporting it once if needed),
    sentence-transformers for a hub model name, with COACH_QUERY_ENGINE=torch, or when the export fails
    (with a warning naming the problem)."""
    settings = settings or Settings()
    engine = os.environ.get("COACH_QUERY_ENGINE", "onnx").strip().lower() or "onnx"
    if engine not in ENGINES:
        raise ValueError(f"unknown COACH_QUERY_ENGINE {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "torch":
        return _torch_embedder(settings)
    folder, name, fingerprint = model_identity(settings)
    if folder is None:  # a hub name: sentence-transformers resolves and downloads it
        return _torch_embedder(settings)
    try:
        import onnxruntime  # noqa: F401 - not installed: fall back now rather than at the first question
        import tokenizers  # noqa: F401

        target = ensure_exported(settings, folder, fingerprint, progress=progress)
        vocabulary = settings.vocabulary if name == DEFAULT_MODEL else None
        return OnnxEmbedder(
            target, name, fingerprint, folder, vocabulary=vocabulary, load_full=lambda: _torch_embedder(settings)
        )
    except ImportError as exc:
        problem = f"{exc.name or exc} is not installed"
    except Exception as exc:  # noqa: BLE001 - any export failure falls back to the slower, exact path
        problem = f"{exc.__class__.__name__}: {exc}"
    if progress:
        progress(
            f"warning: the fast query path is unavailable ({problem}); using sentence-transformers. "
            f"Fix: pip install -e . (onnxruntime) or set COACH_QUERY_ENGINE=torch to silence this"
        )
    return _torch_embedder(settings)
