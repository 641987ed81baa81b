"""Cut cleaned essays into passages on sentence boundaries, with section headings attached.

A cleaned essay has one paragraph per line. Some lines are headings (`01`, `关于管理,小团队靠情,大团队靠管`,
`我是一个机器人吗?`): they are never part of a chunk's text, they become the `section` of the chunks
under them. Body lines are split into sentences (Chinese and English sentence ends, closing quotes stay
with their sentence, a line end always ends a sentence), and consecutive sentences of one section are
packed into chunks of about `target_chars`, overlapping by `overlap_sentences`. A chunk never starts or
ends inside a sentence; a single sentence longer than `max_chars` is a chunk on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import ChunkSettings
from .corpus import Essay


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # character offsets into the cleaned essay text
    end: int


@dataclass(frozen=True)
class Chunk:
    id: str  # stable: f"{essay_id}#{n:03d}"
    essay_id: str
    section: str  # heading the chunk sits under, "" if none
    text: str  # in the essay's own script
    start: int
    end: int
    sentences: tuple[Sentence, ...]

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "essay_id": self.essay_id,
            "section": self.section,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "sentences": [[s.start, s.end] for s in self.sentences],
        }


# --------------------------------------------------------------------------------------------------
# Sentences

_TERMINATORS = "。！？!?；;"
_CLOSERS = "”’」』)）》"
_SENTENCE_END = re.compile(
    rf"(?:[{_TERMINATORS}]|…+|\.{{3,}}|(?<=[A-Za-z0-9)%])\.(?=\s|$))"  # a sentence-final mark
    rf"(?:[{_TERMINATORS}…]|[ \t]*[{_CLOSERS}])*"
)  # more marks, closing quotes


def split_sentences(text: str, offset: int = 0) -> list[Sentence]:
    """Sentences of one paragraph (a line without newlines); offsets are shifted by `offset`."""
    sentences, start = [], 0
    bounds = [m.end() for m in _SENTENCE_END.finditer(text)]
    if not bounds or bounds[-1] < len(text):
        bounds.append(len(text))
    for end in bounds:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if piece.strip():
            s, e = start + lead, end - trail
            sentences.append(Sentence(text[s:e], offset + s, offset + e))
        start = end
    return sentences


# --------------------------------------------------------------------------------------------------
# Headings

_BARE_NUMBER = re.compile(r"(?:\d{1,2}|[一二三四五六七八九十]{1,3}|[IVX]{1,4})")
_NUMBERED = re.compile(r"(?:\d{1,2}|[一二三四五六七八九十]{1,3})[、.．]\s*\S")
_OPENERS = '“"「『《(（【[‘'
_NOT_HEADING_END = set(_TERMINATORS) | set("。,，、:：…") | {"."}
_INNER_PUNCT = re.compile(r"[,，、:：;；。!！]")


def heading_kind(line: str) -> str | None:
    """'number' for a bare `03`, 'numbered' for `1、首先…`, 'plain' for other headings, None for body."""
    line = line.strip()
    if _BARE_NUMBER.fullmatch(line):
        return "number"
    if not line or len(line) > 30 or line[0] in _OPENERS:
        return None
    core = line.rstrip(_CLOSERS + " ")
    if not core:
        return None
    if core[-1] in "?？":
        # a question alone on its line is a heading only when it is a single short clause
        if len(line) > 25 or _INNER_PUNCT.search(core[:-1]):
            return None
    elif core[-1] in _NOT_HEADING_END:
        return None
    return "numbered" if _NUMBERED.match(line) else "plain"


@dataclass(frozen=True)
class Block:
    """A run of body lines under one section."""

    section: str
    sentences: tuple[Sentence, ...]


def sections(text: str) -> list[Block]:
    """Group the essay's body sentences by the heading above them (in order; headings excluded)."""
    lines, pos = [], 0
    for line in text.split("\n"):
        lines.append((line, pos))
        pos += len(line) + 1
    kinds = [heading_kind(line) for line, _ in lines]
    # a heading must have body below it before the next heading of its level; the last line is body
    for i in range(len(lines) - 1, -1, -1):
        if kinds[i] and (i == len(lines) - 1 or all(k is not None for k in kinds[i + 1 :])):
            kinds[i] = None
        else:
            break

    blocks: list[Block] = []
    top, sub, top_numbered = "", "", False
    current: list[Sentence] = []

    def flush():
        if current:
            blocks.append(Block(" / ".join(s for s in (top, sub) if s), tuple(current)))
            current.clear()

    i = 0
    while i < len(lines):
        line, start = lines[i]
        kind = kinds[i]
        if kind is None:
            current.extend(split_sentences(line, start))
            i += 1
            continue
        flush()
        title = line.strip()
        if kind == "number" and i + 1 < len(lines) and kinds[i + 1] == "plain":
            title = f"{title} {lines[i + 1][0].strip()}"  # `01` + its title line
            i += 1
        if kind == "numbered" and top and not top_numbered:
            sub = title  # `1、首先…` under `关于管理,…`
        else:
            top, sub, top_numbered = title, "", kind == "numbered"
        i += 1
    flush()
    return blocks


# --------------------------------------------------------------------------------------------------
# Chunks


def _pack(sentences: tuple[Sentence, ...], settings: ChunkSettings) -> list[tuple[int, int]]:
    """(first, last) sentence indices of each chunk: greedy up to target, never over max (unless alone)."""
    spans, first, n = [], 0, len(sentences)
    while first < n:
        last = first
        while last + 1 < n:
            length = sentences[last].end - sentences[first].start
            grown = sentences[last + 1].end - sentences[first].start
            if length >= settings.target_chars or grown > settings.max_chars:
                break
            last += 1
        spans.append((first, last))
        if last == n - 1:
            break
        nxt = max(first + 1, last + 1 - max(0, settings.overlap_sentences))
        # overlap only when the next chunk can still take its first new sentence within max_chars
        if nxt <= last and sentences[last + 1].end - sentences[nxt].start > settings.max_chars:
            nxt = last + 1
        first = nxt
    return spans


def chunk_essay(essay: Essay, settings: ChunkSettings) -> list[Chunk]:
    chunks: list[Chunk] = []
    essay_id = essay.meta.id
    for block in sections(essay.text):
        for first, last in _pack(block.sentences, settings):
            sents = block.sentences[first : last + 1]
            start, end = sents[0].start, sents[-1].end
            chunks.append(
                Chunk(
                    id=f"{essay_id}#{len(chunks):03d}",
                    essay_id=essay_id,
                    section=block.section,
                    text=essay.text[start:end],
                    start=start,
                    end=end,
                    sentences=tuple(sents),
                )
            )
    return chunks


def chunk_corpus(essays, settings: ChunkSettings) -> dict[str, list[Chunk]]:
    """Chunks by essay id, for every essay (the corpus report and the index take this)."""
    return {essay.meta.id: chunk_essay(essay, settings) for essay in essays}
