"""Learned descriptions: a trainer's "this answers that", kept as situation descriptions beside the editors' ones.

A trainer attaches a question agents asked to the passage that answers it (trainer page: the feedback view or
"why this passage"), or detaches a wrong one. Each attachment is a `[[situation]]` entry with the schema of
corpus/situations.toml (essay, anchor, and the question as `en`, `zh` or `zh_hant`), plus the passage it was
attached to and when, in one TOML file under var/ (`Settings.learned_file`, `$COACH_LEARNED_FILE`); corpus/ is
never written. The next build reads them with the editors' descriptions: the description rankers use them and the
tuned model trains on them, so they take effect after a rebuild. `export_toml` writes them as entries to paste into
corpus/situations.toml.

One entry holds one question in one language; the editors' file pairs English with simplified Chinese, so an
exported entry names the missing wording in a comment for the editor to add.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .advice import detect_lang
from .corpus import MetadataError, Situation, _entries, _read_toml

LANG_FIELDS = ("en", "zh", "zh_hant")
_LOCK = threading.Lock()  # one writer at a time in this process; the file is replaced atomically


@dataclass(frozen=True)
class Learned:
    """One question attached by a trainer to the passage that answers it."""

    essay: str  # essay id
    anchor: str  # exact phrase of the essay's cleaned text inside the passage (its key sentence)
    field: str  # "en", "zh" or "zh_hant": the language of `text`
    text: str  # the question, as the agent (or trainer) asked it
    passage: str = ""  # the passage id it was attached to
    added: str = ""  # UTC, ISO 8601

    def situation(self) -> Situation:
        """As an editors' entry (one language filled in)."""
        return Situation(
            self.essay,
            self.anchor,
            self.text if self.field == "en" else "",
            self.text if self.field == "zh" else "",
            self.text if self.field == "zh_hant" else "",
        )


def language_field(question: str) -> str:
    """Which situations.toml field a question belongs in: `en`, `zh` (simplified) or `zh_hant` (traditional), by
    the language its feedback is recorded under (advice.detect_lang)."""
    return {"en": "en", "zh": "zh", "zh-Hant": "zh_hant"}[detect_lang(question)]


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def load_learned(path: Path) -> list[Learned]:
    """The learned descriptions in `path` (absent file: none). A malformed file raises MetadataError naming it."""
    path = Path(path)
    problems: list[str] = []
    out = []
    for n, entry in _entries(path, _read_toml(path), "situation", problems):
        texts = [(f, entry[f]) for f in LANG_FIELDS if isinstance(entry.get(f), str) and entry[f].strip()]
        essay, anchor = entry.get("essay"), entry.get("anchor")
        if not (isinstance(essay, str) and essay and isinstance(anchor, str) and anchor and len(texts) == 1):
            problems.append(
                f"{path.name}: situation #{n} needs text fields essay, anchor and exactly one of en, zh, zh_hant; "
                "fix or delete the entry (or the file) and build again"
            )
            continue
        field, text = texts[0]
        out.append(
            Learned(
                essay, anchor, field, " ".join(text.split()), str(entry.get("passage", "")), str(entry.get("added", ""))
            )
        )
    if problems:
        raise MetadataError(problems)
    return out


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _entry_lines(item: Learned, *, export: bool) -> list[str]:
    lines = ["[[situation]]", f"essay = {_toml_string(item.essay)}", f"anchor = {_toml_string(item.anchor)}"]
    lines.append(f"{item.field} = {_toml_string(item.text)}")
    if export:
        lines.append(f"# learned from use: attached to {item.passage or 'its passage'} on {item.added or '?'}")
        if item.field == "en":
            lines.append('# add `zh = "..."` (the simplified-Chinese wording): the editors\' file pairs en with zh')
        elif item.field == "zh":
            lines.append('# add `en = "..."` (the English wording): the editors\' file pairs zh with en')
    else:
        lines += [f"passage = {_toml_string(item.passage)}", f"added = {_toml_string(item.added)}"]
    return lines


def _write(path: Path, items: list[Learned]) -> None:
    """Replace `path` atomically with `items` (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [
        '# Learned descriptions: trainers\' "this answers that" (written by Coach; see coach/learned.py).',
        "# Same schema as corpus/situations.toml; export them from the trainer page to paste them there.",
        "",
    ]
    for item in items:
        body += [*_entry_lines(item, export=False), ""]
    fd, tmp = tempfile.mkstemp(prefix=".learned-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(body))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def attach(path: Path, question: str, essay: str, anchor: str, passage: str) -> tuple[Learned, bool]:
    """Attach `question` to `passage` (whose key sentence `anchor` lies in essay `essay`). Returns the entry and
    whether it is new (the same question already attached to the same passage is not added twice)."""
    question = " ".join(question.split())
    if not question:
        raise ValueError("the question is empty; type the question this passage answers")
    with _LOCK:
        items = load_learned(path)
        for item in items:
            if _key(item.text) == _key(question) and item.passage == passage:
                return item, False
        new = Learned(
            essay,
            anchor,
            language_field(question),
            question,
            passage,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        _write(Path(path), [*items, new])
        return new, True


def detach(path: Path, question: str, passage: str | None = None) -> int:
    """Remove `question` from `passage` (any passage when None). Returns how many entries were removed."""
    with _LOCK:
        items = load_learned(path)
        keep = [i for i in items if not (_key(i.text) == _key(question) and (passage is None or i.passage == passage))]
        if len(keep) != len(items):
            _write(Path(path), keep)
        return len(items) - len(keep)


def export_toml(items: list[Learned]) -> str:
    """The learned descriptions as `[[situation]]` entries for corpus/situations.toml."""
    head = [
        "# Learned descriptions exported from Coach: paste them into corpus/situations.toml.",
        "# Each holds one question; where a comment asks for it, add the other language before building.",
        "",
    ]
    out = list(head)
    for item in items:
        out += [*_entry_lines(item, export=True), ""]
    return "\n".join(out)


def anchor_for(
    essay_text: str,
    span: tuple[int, int],
    sentences: list[str],
    key: str,
    others: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> str:
    """The anchor for the passage at `span` of the essay: its key sentence `key` when that sentence's first
    occurrence lies in the passage and in none of the `others` (the essay's other passages: a sentence that
    neighbouring passages share would describe both), else the passage's longest such sentence, else the passage's
    whole text."""

    def exclusive(text: str) -> bool:
        at = essay_text.find(text)
        end = at + len(text)
        inside = bool(text) and span[0] <= at and end <= span[1]
        return inside and not any(a <= at and end <= b for a, b in others)

    for text in [key, *sorted(sentences, key=len, reverse=True)]:
        if text and exclusive(text):
            return text
    return essay_text[span[0] : span[1]]
