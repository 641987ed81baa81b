"""Read `corpus/`: essays in any supported encoding, the person-written metadata, and the errata.

Code never writes `corpus/`. Essays are `.txt`, `.md` or `.html` files; `essays.toml` (metadata) and
`errata.toml` (editorial corrections) are written by a person, and both are optional; so is `situations.toml`
(bilingual descriptions of the situations a passage answers, attached to the essay text by an exact anchor phrase). A file that is
empty, binary or undecodable is skipped with a warning naming it; nothing else is lost.
"""

from __future__ import annotations

import hashlib
import html
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .clean import Erratum, ErratumMismatch, clean_text, to_simplified

ESSAY_SUFFIXES = (".txt", ".md", ".html", ".htm")
METADATA_FILE = "essays.toml"
ERRATA_FILE = "errata.toml"
SITUATIONS_FILE = "situations.toml"
NOT_ESSAYS = {"readme.md", "readme.txt", METADATA_FILE, ERRATA_FILE, SITUATIONS_FILE}
UNKNOWN_AUTHOR = "unknown"


@dataclass(frozen=True)
class EssayMeta:
    id: str                      # stable id, e.g. "lenovo-13-years"
    title: str
    author: str                  # a name, or a description such as "12580 hotline veteran (China Mobile)"
    organisation: str = ""
    industry: str = ""
    role: str = ""
    years: str = ""              # years of service as stated in the essay, e.g. "13"
    # optional: the attribution in each UI language (the fields above may mix languages); see essays.toml
    author_en: str = ""
    author_zh: str = ""
    organisation_en: str = ""
    organisation_zh: str = ""
    years_en: str = ""           # when `years` is not a plain number: "over 10 years on the job"
    years_zh: str = ""           # likewise: "從業10餘年"
    script: str = "zh-Hans"      # original script: "zh-Hans", "zh-Hant" or "en"
    source: str = ""             # file name inside corpus/


@dataclass(frozen=True)
class Essay:
    meta: EssayMeta
    path: Path
    raw_sha256: str              # hash of the raw bytes on disk (the manifest's corpus hash uses it)
    text: str                    # cleaned text, in the essay's own script (for display)
    repairs: tuple[str, ...] = ()  # names/counts of the repairs applied, for the corpus report
    encoding: str = ""           # the encoding the raw bytes were decoded with


@dataclass
class CorpusLoad:
    essays: list[Essay] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line per skipped file, naming it


# --------------------------------------------------------------------------------------------------
# Encodings


class UndecodableError(ValueError):
    """Raised for bytes that are empty, binary or in no supported encoding; the message says which."""


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t\f")
    return controls > max(2, len(text) // 100)


def _common_ratio(text: str) -> float:
    """Share of the non-ASCII characters that are common Chinese (GB2312 level 1 once simplified)."""
    chars = [c for c in text if ord(c) > 0x7F and not c.isspace()]
    if not chars:
        return 1.0
    common = 0
    for c in to_simplified("".join(chars)):
        try:
            b = c.encode("gb2312")
        except UnicodeEncodeError:
            continue
        if len(b) == 2 and (0xB0 <= b[0] <= 0xD7 or b[0] in (0xA1, 0xA3)):   # level-1 hanzi, punctuation
            common += 1
    return common / len(chars)


def decode_bytes(data: bytes) -> tuple[str, str]:
    """(text, encoding) for UTF-8 (with or without BOM), UTF-16 (with BOM, or plainly), GBK/GB18030, Big5."""
    if not data.strip():
        raise UndecodableError("empty file")
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as exc:
                raise UndecodableError(f"not valid {enc}: {exc}") from None
            if enc != "utf-8-sig":
                text = text.lstrip("\ufeff")
            if not text.strip():
                raise UndecodableError("empty file")
            return text, enc
    # UTF-16 without a BOM: every other byte of ASCII-heavy text is NUL
    if len(data) >= 4 and len(data) % 2 == 0:
        even, odd = data[0::2].count(0), data[1::2].count(0)
        for enc, zeros in (("utf-16-le", odd), ("utf-16-be", even)):
            if zeros > len(data) // 4:
                try:
                    text = data.decode(enc)
                except UnicodeDecodeError:
                    continue
                if not _looks_binary(text):
                    return text, enc
    candidates = []
    for enc in ("utf-8", "gb18030", "big5"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if enc == "utf-8":
            if _looks_binary(text):
                raise UndecodableError("binary file")
            return text, enc
        candidates.append((_common_ratio(text), enc == "gb18030", enc, text))
    if not candidates:
        raise UndecodableError("binary or in no supported encoding (UTF-8, UTF-16, GBK/GB18030, Big5)")
    ratio, _, enc, text = max(candidates)
    if _looks_binary(text) or ratio < 0.3:
        raise UndecodableError("binary or in no supported encoding (UTF-8, UTF-16, GBK/GB18030, Big5)")
    return text, enc


# --------------------------------------------------------------------------------------------------
# .html and .md to plain text (one paragraph per line)

_BLOCK_TAG = re.compile(r"<\s*(/?)\s*(p|div|br|li|ul|ol|tr|table|section|article|blockquote|h[1-6]|title)\b[^>]*>",
                        re.IGNORECASE)


def html_to_text(source: str) -> str:
    source = re.sub(r"<(script|style|head)\b[^>]*>.*?</\1\s*>", " ", source, flags=re.IGNORECASE | re.DOTALL)
    source = re.sub(r"<!--.*?-->", " ", source, flags=re.DOTALL)
    source = re.sub(r"\s+", " ", source)
    source = _BLOCK_TAG.sub("\n", source)
    source = re.sub(r"<[^<>]+>", "", source)
    return html.unescape(source)


def markdown_to_text(source: str) -> str:
    out = []
    for line in source.splitlines():
        line = re.sub(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", r"\1", line)      # headings -> their own line
        line = re.sub(r"^\s*(?:[-*+]|>+)\s+", "", line)                    # bullets, quotes
        line = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", line)                   # images
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)               # links -> text
        line = re.sub(r"(\*\*|__|\*|`)(.+?)\1", r"\2", line)               # emphasis, code
        if re.fullmatch(r"\s*([-*_])(\s*\1){2,}\s*", line):                # rules
            line = ""
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Metadata and errata


def _read_toml(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:   # reliability fix (issue 8): the message names the file
            raise ValueError(f"{path.name} is not valid TOML ({exc}); fix it and build again") from exc


def load_metadata(corpus_dir: Path) -> dict[str, EssayMeta]:
    """EssayMeta by source file name, from corpus/essays.toml (absent file: none)."""
    known = {f.name for f in EssayMeta.__dataclass_fields__.values()}
    metas = {}
    for entry in _read_toml(Path(corpus_dir) / METADATA_FILE).get("essay", []):
        meta = EssayMeta(**{k: str(v) for k, v in entry.items() if k in known})
        metas[meta.source or meta.id] = meta
    return metas


def load_errata(corpus_dir: Path) -> list[Erratum]:
    return [Erratum(essay=e["essay"], damaged=e["damaged"], corrected=e["corrected"], reason=e.get("reason", ""))
            for e in _read_toml(Path(corpus_dir) / ERRATA_FILE).get("erratum", [])]


@dataclass(frozen=True)
class Situation:
    """An editor's description of a situation the advice near `anchor` answers (hand-written doc2query)."""

    essay: str                   # essay id (corpus/essays.toml)
    anchor: str                  # exact phrase of the essay's cleaned text; attaches the entry to its passage(s)
    en: str                      # the situation and the advice, in plain English agent language ("" if absent)
    zh: str                      # the same in plain simplified Chinese ("" if absent)
    zh_hant: str = ""            # a question as a Taiwan or Hong Kong agent types it, traditional characters

    def texts(self) -> list[tuple[str, str]]:
        """(language, text) of each description the entry has: en, zh, zh-Hant."""
        return [(lang, text) for lang, text in (("en", self.en), ("zh", self.zh), ("zh-Hant", self.zh_hant))
                if text]


def load_situations(corpus_dir: Path) -> list[Situation]:
    """The `[[situation]]` entries of corpus/situations.toml (absent file: none). A malformed file or entry raises
    ValueError naming the file (and the entry's position)."""
    path = Path(corpus_dir) / SITUATIONS_FILE
    entries = _read_toml(path).get("situation", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path.name}: `situation` must be an array of tables ([[situation]]); fix it and build again")
    def text(entry, field: str) -> str | None:
        value = entry.get(field) if isinstance(entry, dict) else None
        return " ".join(value.split()) if isinstance(value, str) and value.strip() else None

    out = []
    for n, entry in enumerate(entries, start=1):
        # an entry describes its situation in English and simplified Chinese (a pair: an editor who forgets one
        # leaves English or Chinese questions without it), or as a Taiwan / Hong Kong agent asks, or both
        essay, en, zh, zh_hant = (text(entry, f) for f in ("essay", "en", "zh", "zh_hant"))
        anchor = entry.get("anchor") if isinstance(entry, dict) else None   # kept exactly: it is searched for
        if (essay is None or not isinstance(anchor, str) or not anchor.strip()
                or (en is None) != (zh is None) or (en is None and zh_hant is None)):
            raise ValueError(f"{path.name}: situation #{n} needs non-empty text fields essay, anchor and en + zh "
                             f"(English and simplified Chinese), zh_hant (traditional Chinese) or all three; "
                             f"fix it and build again")
        out.append(Situation(essay, anchor, en or "", zh or "", zh_hant or ""))
    return out


def locate_situations(situations: list[Situation], texts: dict[str, str]
                      ) -> tuple[list[tuple[Situation, int, int]], list[str]]:
    """(situation, start, end) of the first occurrence of each anchor in its essay's cleaned text (`texts`: essay id
    -> text), and one warning per entry whose essay is unknown or whose anchor is not in it (those are left out)."""
    found, warnings = [], []
    for n, s in enumerate(situations, start=1):
        text = texts.get(s.essay)
        if text is None:
            warnings.append(f"{SITUATIONS_FILE}: situation #{n} names essay {s.essay!r}, which is not in the corpus")
            continue
        at = text.find(s.anchor)
        if at < 0:
            warnings.append(f"{SITUATIONS_FILE}: situation #{n} anchor {s.anchor!r} is not in essay {s.essay!r}")
            continue
        found.append((s, at, at + len(s.anchor)))
    return found, warnings


def slugify(name: str) -> str:
    slug = re.sub(r"[^0-9a-zA-Z\u4e00-\u9fff]+", "-", name).strip("-").lower()
    return slug or "essay"


def _default_meta(path: Path, text: str) -> EssayMeta:
    """Metadata for a file dropped in without an entry: title from its first line, author unknown."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), path.stem)
    title = first if len(first) <= 60 else first[:40] + "…"
    simplified = to_simplified(text)
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    script = "en" if cjk < len(text) * 0.05 else ("zh-Hans" if simplified == text else "zh-Hant")
    return EssayMeta(id=slugify(path.stem), title=title, author=UNKNOWN_AUTHOR, script=script, source=path.name)


def _title_is_heading(title: str) -> bool:
    return len(title) <= 60 and not re.search(r"[。!?！？…]$", title)


# --------------------------------------------------------------------------------------------------
# Loading


# Reliability fix (issue 8): one essay file larger than this is skipped with a warning naming it, before it is read.
# The real essays are ~10 KB; a stray 10 MB dump would otherwise mean tens of thousands of passages to embed.
MAX_ESSAY_BYTES = 2 << 20


def read_essay_file(path: Path) -> tuple[bytes, str, str]:
    """(raw bytes, decoded source text converted to plain text, encoding). Raises UndecodableError."""
    size = path.stat().st_size
    if size > MAX_ESSAY_BYTES:
        raise UndecodableError(f"{size / 2**20:.1f} MB is larger than the {MAX_ESSAY_BYTES >> 20} MB limit for one essay")
    data = path.read_bytes()
    text, encoding = decode_bytes(data)
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        text = html_to_text(text)
    elif suffix == ".md":
        text = markdown_to_text(text)
    return data, text, encoding


def load_essay(path: Path, meta: EssayMeta | None, errata: list[Erratum]) -> Essay:
    data, text, encoding = read_essay_file(path)
    if meta is None:
        meta = _default_meta(path, text)
    title_to_drop = meta.title if _title_is_heading(meta.title) else ""
    cleaned = clean_text(text, [e for e in errata if e.essay == meta.id], title=title_to_drop)
    if not cleaned.text.strip():
        raise UndecodableError("no text left after cleaning")
    return Essay(meta=meta, path=path, raw_sha256=hashlib.sha256(data).hexdigest(), text=cleaned.text,
                 repairs=cleaned.summary(), encoding=encoding)


def essay_files(corpus_dir: Path) -> list[Path]:
    return sorted(p for p in Path(corpus_dir).iterdir()
                  if p.is_file() and p.suffix.lower() in ESSAY_SUFFIXES and p.name.lower() not in NOT_ESSAYS
                  and not p.name.startswith("."))


def load_corpus(corpus_dir: Path) -> CorpusLoad:
    """Every essay in `corpus_dir`, cleaned. Skipped files are named in `warnings`.

    An erratum that no longer matches its essay is a bug in corpus/, not a user file problem: it raises.
    """
    corpus_dir = Path(corpus_dir)
    metas = load_metadata(corpus_dir)
    errata = load_errata(corpus_dir)
    load = CorpusLoad()
    seen_ids: set[str] = set()
    seen_texts: dict[str, str] = {}   # reliability fix (issue 8): sha256 of cleaned text -> first file with it
    for path in essay_files(corpus_dir):
        try:
            essay = load_essay(path, metas.get(path.name), errata)
        except ErratumMismatch:
            raise
        except (UndecodableError, OSError) as exc:
            load.warnings.append(f"skipped {path.name}: {exc}")
            continue
        digest = hashlib.sha256(essay.text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest in seen_texts:      # the same essay twice would fill the answers with copies of itself
            load.warnings.append(f"skipped {path.name}: same text as {seen_texts[digest]}")
            continue
        seen_texts[digest] = path.name
        if essay.meta.id in seen_ids:                      # two user files with the same stem
            n = 2
            while f"{essay.meta.id}-{n}" in seen_ids:
                n += 1
            essay = Essay(**{**essay.__dict__, "meta": EssayMeta(**{**essay.meta.__dict__, "id": f"{essay.meta.id}-{n}"})})
        seen_ids.add(essay.meta.id)
        load.essays.append(essay)
    for source in sorted(set(metas) - {p.name for p in essay_files(corpus_dir)}):
        load.warnings.append(f"metadata names {source}, which is not in {corpus_dir}")
    return load


# --------------------------------------------------------------------------------------------------
# Corpus report


@dataclass(frozen=True)
class ReportRow:
    essay_id: str
    title: str
    author: str
    characters: int       # length of the cleaned text
    chunks: int
    repairs: str          # "errata=4 markup=37 ..." ("" when nothing needed repair)
    script: str = ""
    encoding: str = ""


def corpus_report(essays, chunks_by_essay) -> list[ReportRow]:
    """One row per essay; `chunks_by_essay` maps essay id -> its chunks (any sized collection)."""
    return [ReportRow(essay_id=e.meta.id, title=e.meta.title, author=e.meta.author, characters=len(e.text),
                      chunks=len(chunks_by_essay.get(e.meta.id, ())), repairs=" ".join(e.repairs),
                      script=e.meta.script, encoding=e.encoding)
            for e in essays]


def display_width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _pad(s: str, width: int) -> str:
    return s + " " * max(0, width - display_width(s))


def _clip(s: str, width: int) -> str:
    if display_width(s) <= width:
        return s
    out = ""
    for c in s:
        if display_width(out + c) > width - 1:
            break
        out += c
    return out + "…"


def format_report(rows: list[ReportRow], max_col: int = 40) -> str:
    """A plain-text table (CJK-width aware) with a totals line."""
    header = ("id", "title", "author", "chars", "chunks", "repairs")
    table = [header] + [(r.essay_id, _clip(r.title, max_col), _clip(r.author, max_col), str(r.characters),
                         str(r.chunks), r.repairs or "-") for r in rows]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        cells = [_pad(c, w) if i not in (3, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"{len(rows)} essays, {sum(r.characters for r in rows)} characters, "
                 f"{sum(r.chunks for r in rows)} chunks")
    return "\n".join(lines)
