"""Cut cleaned essays into passages on sentence boundaries, with section headings attached.

(Implementation: corpus issue.)
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ChunkSettings
from .corpus import Essay


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int   # character offsets into the cleaned essay text
    end: int


@dataclass(frozen=True)
class Chunk:
    id: str                 # stable: f"{essay_id}#{n:03d}"
    essay_id: str
    section: str            # heading the chunk sits under, "" if none
    text: str               # in the essay's own script
    start: int
    end: int
    sentences: tuple[Sentence, ...]


def chunk_essay(essay: Essay, settings: ChunkSettings) -> list[Chunk]:
    raise NotImplementedError
