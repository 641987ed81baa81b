"""Read `corpus/`: essays in any supported encoding, the person-written metadata, and the errata.

Code never writes `corpus/`. (Implementation: corpus issue.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EssayMeta:
    id: str                      # stable id, e.g. "lenovo-13-years"
    title: str
    author: str                  # a name, or a description such as "12580 hotline veteran (China Mobile)"
    organisation: str = ""
    industry: str = ""
    role: str = ""
    years: str = ""              # years of service as stated in the essay, e.g. "13"
    script: str = "zh-Hans"      # original script: "zh-Hans", "zh-Hant" or "en"
    source: str = ""             # file name inside corpus/


@dataclass(frozen=True)
class Essay:
    meta: EssayMeta
    path: Path
    raw_sha256: str              # hash of the raw bytes on disk (the manifest's corpus hash uses it)
    text: str                    # cleaned text, in the essay's own script (for display)
    repairs: tuple[str, ...] = ()  # names/counts of the repairs applied, for the corpus report


@dataclass
class CorpusLoad:
    essays: list[Essay] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line per skipped file, naming it


def load_corpus(corpus_dir: Path) -> CorpusLoad:
    raise NotImplementedError
