"""Read `corpus/`: essays in any supported encoding, the person-written metadata, and the errata.

Code never writes `corpus/`. Essays are `.txt`, `.md` or `.html` files; `essays.toml` (metadata) and
`errata.toml` (editorial corrections) are written by a person, and both are optional; so is `situations.toml`
(bilingual descriptions of the situations a passage answers, attached to the essay text by an exact anchor phrase). A file that is
empty, binary or undecodable is skipped with a warning naming it; nothing else is lost. So is a link leading outside
the corpus folder, a dangling link, and anything that is not a regular file (a FIFO would block the build).
A malformed metadata, errata or situations file raises one MetadataError with a line per problem (file, entry, field).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import stat
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
    id: str  # stable id, e.g. "lenovo-13-years"
    title: str
    author: str  # a name, or a description such as "12580 hotline veteran (China Mobile)"
    organisation: str = ""
    industry: str = ""
    role: str = ""
    years: str = ""  # years of service as stated in the essay, e.g. "13"
    # optional: the attribution in each UI language (the fields above may mix languages); see essays.toml
    author_en: str = ""
    author_zh: str = ""
    organisation_en: str = ""
    organisation_zh: str = ""
    years_en: str = ""  # when `years` is not a plain number: "over 10 years on the job"
    years_zh: str = ""  # likewise: "從業10餘年"
    script: str = "zh-Hans"  # original script: "zh-Hans", "zh-Hant" or "en"
    source: str = ""  # file name inside corpus/


@dataclass(frozen=True)
class Essay:
    meta: EssayMeta
    path: Path
    raw_sha256: str  # hash of the raw bytes on disk (the manifest's corpus hash uses it)
    text: str  # cleaned text, in the essay's own script (for display)
    repairs: tuple[str, ...] = ()  # names/counts of the repairs applied, for the corpus report
    encoding: str = ""  # the encoding the raw bytes were decoded with


@dataclass
class CorpusLoad:
    essays: list[Essay] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line per skipped file, naming it


# --------------------------------------------------------------------------------------------------
# Encodings


class UndecodableError(ValueError):
    """Raised for bytes that are empty, binary or in no supported encoding; the message says which."""


# Share of common Chinese characters a BOM-less UTF-16 reading needs to be believed (real Chinese text: above 0.9).
UTF16_MIN_COMMON = 0.6

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
        if len(b) == 2 and (0xB0 <= b[0] <= 0xD7 or b[0] in (0xA1, 0xA3)):  # level-1 hanzi, punctuation
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
    # UTF-16 without a BOM and with little ASCII (Chinese text): no NUL bytes to go by, so it competes on how
    # plausible the decoded text is; GBK, Big5 or random bytes read as UTF-16 give rare characters or lone
    # surrogates (an error), never mostly common Chinese
    if len(data) % 2 == 0:
        for enc in ("utf-16-le", "utf-16-be"):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            ratio = _common_ratio(text)
            if ratio >= UTF16_MIN_COMMON and any(ord(c) > 0x7F for c in text):
                candidates.append((ratio, False, enc, text))
    if not candidates:
        raise UndecodableError("binary or in no supported encoding (UTF-8, UTF-16, GBK/GB18030, Big5)")
    ratio, _, enc, text = max(candidates)
    if _looks_binary(text) or ratio < 0.3:
        raise UndecodableError("binary or in no supported encoding (UTF-8, UTF-16, GBK/GB18030, Big5)")
    return text, enc


# --------------------------------------------------------------------------------------------------
# .html and .md to plain text (one paragraph per line)

_BLOCK_TAG = re.compile(
    r"<\s*(/?)\s*(p|div|br|li|ul|ol|tr|table|section|article|blockquote|h[1-6]|title)\b[^>]*>", re.IGNORECASE
)


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
        line = re.sub(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", r"\1", line)  # headings -> their own line
        line = re.sub(r"^\s*(?:[-*+]|>+)\s+", "", line)  # bullets, quotes
        line = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", line)  # images
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)  # links -> text
        line = re.sub(r"(\*\*|__|\*|`)(.+?)\1", r"\2", line)  # emphasis, code
        if re.fullmatch(r"\s*([-*_])(\s*\1){2,}\s*", line):  # rules
            line = ""
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# Metadata and errata


class MetadataError(ValueError):
    """essays.toml, errata.toml or situations.toml cannot be used as written. `problems` holds one line per problem,
    each naming the file, the entry and the field; str() is those lines."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _read_toml(path: Path) -> dict:
    """The parsed file ({} when absent). Read as UTF-8, with or without a byte-order mark (Notepad writes one)."""
    if not path.exists():
        return {}
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # issue 19: the message names the file (it used to be a bare codec error)
        raise MetadataError(
            [f"{path.name} is not valid UTF-8 (byte {exc.start}); save it as UTF-8 and build again"]
        ) from None
    except OSError as exc:
        raise MetadataError([f"{path.name} cannot be read ({exc.strerror or exc}); fix it and build again"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # reliability fix (issue 8): the message names the file
        raise MetadataError([f"{path.name} is not valid TOML ({exc}); fix it and build again"]) from None


def _entries(path: Path, data: dict, key: str, problems: list[str]) -> list[tuple[int, dict]]:
    """(position, table) of each `[[key]]` entry; a wrong shape (`key = "x"`, `[key]`, a non-table item) is a
    problem naming the file and the entry."""
    value = data.get(key, [])
    if not isinstance(value, list):
        problems.append(
            f"{path.name}: `{key}` must be an array of tables ([[{key}]] before each entry), not "
            f"{_kind(value)}; fix it and build again"
        )
        return []
    out = []
    for n, entry in enumerate(value, start=1):
        if isinstance(entry, dict):
            out.append((n, entry))
        else:
            problems.append(
                f"{path.name}: {key} #{n} must be a table of fields, not {_kind(entry)}; fix it and build again"
            )
    return out


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    names: dict[type, str] = {dict: "a table", list: "an array", str: "a string"}
    return names.get(type(value), "a date or time")


def _label(path: Path, key: str, n: int, entry: dict, name_field: str) -> str:
    name = entry.get(name_field)
    return f"{path.name}: {key} #{n}" + (f" ({name_field} {name!r})" if isinstance(name, str) and name else "")


# essays.toml: fields an entry must have (as non-empty text) and the scripts `script` may name
REQUIRED_META = ("id", "title", "author")
SCRIPTS = ("zh-Hans", "zh-Hant", "en")


def load_metadata(corpus_dir: Path) -> dict[str, EssayMeta]:
    """EssayMeta by source file name, from corpus/essays.toml (absent file: none). Raises MetadataError with a line
    per malformed entry and field."""
    path = Path(corpus_dir) / METADATA_FILE
    known = {f.name for f in EssayMeta.__dataclass_fields__.values()}
    problems: list[str] = []
    metas = {}
    for n, entry in _entries(path, _read_toml(path), "essay", problems):
        label, bad = _label(path, "essay", n, entry, "id"), []
        for name in REQUIRED_META:
            if not isinstance(entry.get(name), str) or not entry[name].strip():
                bad.append(f"{label}: field `{name}` is missing or empty; add it as text and build again")
        for name in sorted(known & entry.keys()):
            if not isinstance(entry[name], (str, int, float)) or isinstance(entry[name], bool):
                bad.append(f"{label}: field `{name}` must be text, not {_kind(entry[name])}; fix it and build again")
        if isinstance(entry.get("script"), str) and entry["script"] not in SCRIPTS:
            bad.append(f"{label}: field `script` is {entry['script']!r}; use one of {', '.join(SCRIPTS)}")
        if bad:
            problems.extend(bad)
            continue
        meta = EssayMeta(**{k: str(v) for k, v in entry.items() if k in known})
        metas[meta.source or meta.id] = meta
    if problems:
        raise MetadataError(problems)
    return metas


def load_errata(corpus_dir: Path) -> list[Erratum]:
    """The `[[erratum]]` entries of corpus/errata.toml (absent file: none). Raises MetadataError with a line per
    malformed entry and field."""
    path = Path(corpus_dir) / ERRATA_FILE
    problems: list[str] = []
    out = []
    for n, entry in _entries(path, _read_toml(path), "erratum", problems):
        label, bad = _label(path, "erratum", n, entry, "essay"), []
        for name in ("essay", "damaged", "corrected", "reason"):
            value = entry.get(name, "" if name == "reason" else None)  # `corrected` may be "" (a deletion)
            if not isinstance(value, str) or (name in ("essay", "damaged") and not value):
                what = "missing or empty" if value in (None, "") else f"{_kind(value)}, not text"
                bad.append(f"{label}: field `{name}` is {what}; fix it and build again")
        if bad:
            problems.extend(bad)
            continue
        out.append(
            Erratum(
                essay=entry["essay"],
                damaged=entry["damaged"],
                corrected=entry["corrected"],
                reason=entry.get("reason", ""),
            )
        )
    if problems:
        raise MetadataError(problems)
    return out


@dataclass(frozen=True)
class Situation:
    """An editor's description of a situation the advice near `anchor` answers (hand-written doc2query)."""

    essay: str  # essay id (corpus/essays.toml)
    anchor: str  # exact phrase of the essay's cleaned text; attaches the entry to its passage(s)
    en: str  # the situation and the advice, in plain English agent language ("" if absent)
    zh: str  # the same in plain simplified Chinese ("" if absent)
    zh_hant: str = ""  # a question as a Taiwan or Hong Kong agent types it, traditional characters

    def texts(self) -> list[tuple[str, str]]:
        """(language, text) of each description the entry has: en, zh, zh-Hant."""
        return [(lang, text) for lang, text in (("en", self.en), ("zh", self.zh), ("zh-Hant", self.zh_hant)) if text]


def load_situations(corpus_dir: Path) -> list[Situation]:
    """The `[[situation]]` entries of corpus/situations.toml (absent file: none). A malformed file or entry raises
    MetadataError naming the file, the entry's position and the field, one line per entry."""
    path = Path(corpus_dir) / SITUATIONS_FILE
    problems: list[str] = []

    def text(entry, field: str) -> str | None:
        value = entry.get(field)
        return " ".join(value.split()) if isinstance(value, str) and value.strip() else None

    out = []
    for n, entry in _entries(path, _read_toml(path), "situation", problems):
        # an entry describes its situation in English and simplified Chinese (a pair: an editor who forgets one
        # leaves English or Chinese questions without it), or as a Taiwan / Hong Kong agent asks, or both
        essay, en, zh, zh_hant = (text(entry, f) for f in ("essay", "en", "zh", "zh_hant"))
        anchor = entry.get("anchor")  # kept exactly: it is searched for
        missing = [f for f, v in (("essay", essay), ("anchor", anchor)) if not isinstance(v, str) or not v.strip()]
        if (en is None) != (zh is None):
            missing.append("zh" if zh is None else "en")
        elif en is None and zh_hant is None:
            missing.append("en + zh or zh_hant")
        if missing:
            problems.append(
                f"{_label(path, 'situation', n, entry, 'essay')}: field {', '.join(f'`{m}`' for m in missing)} missing or "
                f"empty; it needs non-empty text fields essay, anchor and en + zh (English and simplified "
                f"Chinese), zh_hant (traditional Chinese) or all three; fix it and build again"
            )
            continue
        out.append(Situation(str(essay), str(anchor), en or "", zh or "", zh_hant or ""))
    if problems:
        raise MetadataError(problems)
    return out


def locate_situations(
    situations: list[Situation], texts: dict[str, str]
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
        raise UndecodableError(
            f"{size / 2**20:.1f} MB is larger than the {MAX_ESSAY_BYTES >> 20} MB limit for one essay"
        )
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
    return Essay(
        meta=meta,
        path=path,
        raw_sha256=hashlib.sha256(data).hexdigest(),
        text=cleaned.text,
        repairs=cleaned.summary(),
        encoding=encoding,
    )


def refusal(path: Path, corpus_dir: Path) -> str | None:
    """Why the entry `path` of the corpus folder must not be read as a file of the corpus, or None when it may.

    Issue 19: a link is followed only when it resolves inside the corpus folder (a link to ~/.ssh/notes.txt would
    otherwise be indexed and its first line shown to agents as an essay title); a dangling link, a folder, a FIFO
    (reading it would block the build), a socket or a device is no essay."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing target, or a loop of links
            return f"a link to {os.readlink(path)}, which does not exist"
        if not target.is_relative_to(Path(corpus_dir).resolve()):
            return f"a link leading outside the corpus folder (to {target}); copy the file into the folder instead"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device or other special file"
        )
        return f"not a regular file ({kind})"
    return None


def _candidates(corpus_dir: Path) -> list[Path]:
    """Entries of the corpus folder named like essays (not the metadata files, not hidden)."""
    return sorted(
        p
        for p in Path(corpus_dir).iterdir()
        if p.suffix.lower() in ESSAY_SUFFIXES and p.name.lower() not in NOT_ESSAYS and not p.name.startswith(".")
    )


def essay_files(corpus_dir: Path, warnings: list[str] | None = None) -> list[Path]:
    """The essay files of `corpus_dir`, sorted. Entries that `refusal` turns away are left out, each with a line in
    `warnings` (when given) naming it."""
    out = []
    for p in _candidates(corpus_dir):
        problem = refusal(p, corpus_dir)
        if problem is None:
            out.append(p)
        elif warnings is not None:
            warnings.append(f"skipped {p.name}: {problem}")
    return out


def _gather(load, corpus_dir: Path, problems: list[str], default):
    """`load(corpus_dir)`, or `default` with its MetadataError lines added to `problems`."""
    try:
        return load(corpus_dir)
    except MetadataError as exc:
        problems.extend(exc.problems)
        return default


def load_corpus(corpus_dir: Path) -> CorpusLoad:
    """Every essay in `corpus_dir`, cleaned. Skipped files are named in `warnings`.

    Malformed metadata, errata or situations raise one MetadataError listing every problem (situations.toml is
    checked here too, so that a broken file stops a build before anything is embedded). An erratum that no longer
    matches its essay is a bug in corpus/, not a user file problem: it raises.
    """
    corpus_dir = Path(corpus_dir)
    problems: list[str] = []
    metas = _gather(load_metadata, corpus_dir, problems, {})
    errata = _gather(load_errata, corpus_dir, problems, [])
    _gather(load_situations, corpus_dir, problems, [])
    if problems:
        raise MetadataError(problems)
    load = CorpusLoad()
    seen_ids: set[str] = set()
    seen_texts: dict[str, str] = {}  # reliability fix (issue 8): sha256 of cleaned text -> first file with it
    for path in essay_files(corpus_dir, load.warnings):
        try:
            essay = load_essay(path, metas.get(path.name), errata)
        except ErratumMismatch as exc:  # issue 19: name the file to fix
            raise ErratumMismatch(f"{ERRATA_FILE}: {exc} in {path.name}; correct or remove the erratum") from None
        except (UndecodableError, OSError) as exc:
            load.warnings.append(f"skipped {path.name}: {exc}")
            continue
        digest = hashlib.sha256(essay.text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest in seen_texts:  # the same essay twice would fill the answers with copies of itself
            load.warnings.append(f"skipped {path.name}: same text as {seen_texts[digest]}")
            continue
        seen_texts[digest] = path.name
        if essay.meta.id in seen_ids:  # two user files with the same stem
            n = 2
            while f"{essay.meta.id}-{n}" in seen_ids:
                n += 1
            essay = Essay(
                **{**essay.__dict__, "meta": EssayMeta(**{**essay.meta.__dict__, "id": f"{essay.meta.id}-{n}"})}
            )
        seen_ids.add(essay.meta.id)
        load.essays.append(essay)
    for source in sorted(set(metas) - {p.name for p in _candidates(corpus_dir)}):
        load.warnings.append(f"metadata names {source}, which is not in {corpus_dir}")
    return load


# --------------------------------------------------------------------------------------------------
# Corpus report


@dataclass(frozen=True)
class ReportRow:
    essay_id: str
    title: str
    author: str
    characters: int  # length of the cleaned text
    chunks: int
    repairs: str  # "errata=4 markup=37 ..." ("" when nothing needed repair)
    script: str = ""
    encoding: str = ""


def corpus_report(essays, chunks_by_essay) -> list[ReportRow]:
    """One row per essay; `chunks_by_essay` maps essay id -> its chunks (any sized collection)."""
    return [
        ReportRow(
            essay_id=e.meta.id,
            title=e.meta.title,
            author=e.meta.author,
            characters=len(e.text),
            chunks=len(chunks_by_essay.get(e.meta.id, ())),
            repairs=" ".join(e.repairs),
            script=e.meta.script,
            encoding=e.encoding,
        )
        for e in essays
    ]


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
    table = [header] + [
        (
            r.essay_id,
            _clip(r.title, max_col),
            _clip(r.author, max_col),
            str(r.characters),
            str(r.chunks),
            r.repairs or "-",
        )
        for r in rows
    ]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        cells = [_pad(c, w) if i not in (3, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(
        f"{len(rows)} essays, {sum(r.characters for r in rows)} characters, {sum(r.chunks for r in rows)} chunks"
    )
    return "\n".join(lines)
