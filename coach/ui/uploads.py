"""Adding essays on the trainer page: who may (the trainer login), the checks a file passes, where it is kept, the
metadata form, and the cleaning report.

An added essay is saved under `Settings.upload_dir` (`$COACH_UPLOAD_DIR`, default `var/uploads/`, gitignored),
never in `corpus/`, with its metadata (title, author or role, organisation, years, script) as an entry of
`essays.toml` beside it. Every build reads corpus/ plus that folder (`pipeline.load_sources`) and writes the index
to `Settings.index_dir` (`$COACH_INDEX_DIR`). A file whose name is taken is stored under the next free versioned
name (`-2`, `-3` ...), never over another; a file that is not text is refused with one sentence.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..corpus import METADATA_FILE, SCRIPTS, UndecodableError, decode_bytes, slugify
from ..learned import _toml_string

UPLOAD_MAX_BYTES = 2 * 1024 * 1024
UPLOAD_EXTENSIONS = (".txt", ".md", ".html")
_LOCK = threading.Lock()  # one add or remove at a time (the metadata file is rewritten whole)


def upload_dir_default() -> Path:
    return Settings().upload_dir


# ---------------------------------------------------------------------------------------------- who may


def trainer_auth() -> tuple[str, str] | None:
    """The trainer login (COACH_ADMIN_USER / COACH_ADMIN_PASSWORD), or None when either is unset: then there are
    no trainer pages at all (the feedback view, curation and rebuilds need the login)."""
    user, password = os.environ.get("COACH_ADMIN_USER", ""), os.environ.get("COACH_ADMIN_PASSWORD", "")
    return (user, password) if user and password else None


def upload_config() -> tuple[bool, tuple[str, str] | None, str]:
    """(adding essays on, trainer login, reason) from COACH_ENABLE_UPLOAD and the trainer login."""
    auth = trainer_auth()
    if os.environ.get("COACH_ENABLE_UPLOAD", "") not in ("1", "true", "yes"):
        return False, auth, "adding essays is off (set COACH_ENABLE_UPLOAD=1 to switch it on)"
    if auth is None:
        return (
            False,
            None,
            (
                "COACH_ENABLE_UPLOAD=1 but COACH_ADMIN_USER / COACH_ADMIN_PASSWORD are not both set: "
                "adding essays stays off, because it must sit behind the trainer login"
            ),
        )
    return True, auth, "adding essays is on, on the trainer page (behind the trainer login)"


# ---------------------------------------------------------------------------------------------- checks


def safe_upload_name(name: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(name or ""))
    stem = re.sub(r"[^0-9A-Za-z\u3400-\u9fff_-]+", "-", stem).strip("-")[:60] or "essay"
    return f"upload-{stem}{ext.lower()}"


def check_upload(path: str | Path | None, max_bytes: int = UPLOAD_MAX_BYTES) -> str | None:
    """Why an uploaded file is refused (one sentence, naming the fix), or None when it is acceptable."""
    if not path:
        return "no file was chosen; pick a .txt, .md or .html essay"
    p = Path(path)
    if p.suffix.lower() not in UPLOAD_EXTENSIONS:
        return f"only {', '.join(UPLOAD_EXTENSIONS)} files can be added"
    size = p.stat().st_size
    if size > max_bytes:
        return f"the file is {size // 1024} KB; the limit is {max_bytes // 1024} KB"
    if size == 0:
        return "the file is empty"
    try:
        decode_bytes(p.read_bytes())
    except UndecodableError:
        return f"{p.name} is not a text file (it holds binary data); save the essay as text and add it again"
    return None


_DAMAGE = re.compile(r"\ufffd|锟斤拷|烫烫|[ÃÂâ][\u0080-\u00bf€™œ]")


def damage(text: str) -> str | None:
    """What looks damaged in `text` (replacement characters, mojibake), or None."""
    m = _DAMAGE.search(text or "")
    return f"“{m.group(0)}”" if m else None


# ---------------------------------------------------------------------------------------------- the form


@dataclass(frozen=True)
class EssayForm:
    """What the trainer says about an essay (an essays.toml entry; empty fields are left out)."""

    title: str = ""
    author: str = ""  # a name, or a role: "night-shift team lead, 8 years"
    organisation: str = ""
    years: str = ""
    script: str = ""  # zh-Hans, zh-Hant or en; empty: detected

    def problems(self) -> list[str]:
        out = []
        if self.script and self.script not in SCRIPTS:
            out.append(f"script must be one of {', '.join(SCRIPTS)}")
        if self.years and not re.fullmatch(r"\s*\d{1,2}\s*|.{1,40}", self.years):
            out.append("years must be a number of years on the job (or a short phrase)")
        return out


@dataclass
class CleaningReport:
    """What cleaning made of one added essay."""

    name: str  # the file as stored
    essay_id: str
    title: str
    author: str
    characters: int
    passages: int
    repairs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"{self.name}: 《{self.title}》 — {self.author}",
            f"{self.characters} characters, {self.passages} passages; repairs: {', '.join(self.repairs) or 'none'}",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _metadata_entries(folder: Path) -> list[dict]:
    path = folder / METADATA_FILE
    if not path.is_file():
        return []
    data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    return [e for e in data.get("essay", []) if isinstance(e, dict)]


def _write_metadata(folder: Path, entries: list[dict]) -> None:
    lines = ["# Metadata of the essays added in the app (written by Coach; same schema as corpus/essays.toml).", ""]
    for e in entries:
        lines.append("[[essay]]")
        lines += [f"{k} = {_toml_string(str(v))}" for k, v in e.items() if str(v)]
        lines.append("")
    fd, tmp = tempfile.mkstemp(prefix=".essays-", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(tmp, folder / METADATA_FILE)


def _free_name(name: str, taken: set[str]) -> str:
    """`name`, or its next free version (`x-2.md`, `x-3.md` ...) when a file of that name exists."""
    if name not in taken:
        return name
    stem, ext = os.path.splitext(name)
    n = 2
    while f"{stem}-{n}{ext}" in taken:
        n += 1
    return f"{stem}-{n}{ext}"


def cleaning_report(path: Path, entry: dict, settings: Settings) -> CleaningReport:
    """Load one essay as the build will (its metadata entry applied) and report passages, repairs and warnings."""
    from ..chunk import chunk_essay
    from ..corpus import load_corpus

    with tempfile.TemporaryDirectory() as d:
        shutil.copy2(path, Path(d) / entry["source"])
        _write_metadata(Path(d), [entry])
        loaded = load_corpus(Path(d))
        if not loaded.essays:
            why = "; ".join(w.split(": ", 1)[-1] for w in loaded.warnings) or "no readable text"
            raise ValueError(f"{path.name} cannot be read as an essay ({why}); check the file and add it again")
        essay = loaded.essays[0]
        passages = chunk_essay(essay, settings.chunk)
    warnings = []
    if hurt := damage(essay.meta.title):
        warnings.append(f"the title still carries damage ({hurt}); correct it in the form and add the essay again")
    if hurt := damage(essay.text):
        warnings.append(f"the text still carries damage ({hurt}) after cleaning; check the file's encoding")
    if essay.meta.author == "unknown":
        warnings.append("no author given: the cards will say “unknown”; fill in the author or role")
    if len(passages) < 2:
        warnings.append("the essay makes a single passage; a longer essay gives agents more to find")
    return CleaningReport(
        entry["source"],
        essay.meta.id,
        essay.meta.title,
        essay.meta.author,
        len(essay.text),
        len(passages),
        list(essay.repairs),
        warnings,
    )


def save_upload(src: Path, original_name: str, form: EssayForm, settings: Settings) -> tuple[CleaningReport, str]:
    """Check, report on and store one essay with its metadata. Returns its cleaning report and a note (the
    versioned name, when the file's name was taken). Raises ValueError, with one sentence, when it is refused."""
    why = check_upload(src)
    if why:
        raise ValueError(why)
    if problems := form.problems():
        raise ValueError("; ".join(problems))
    folder = settings.upload_dir
    with _LOCK:
        folder.mkdir(parents=True, exist_ok=True)
        entries = _metadata_entries(folder)
        taken = {p.name for p in folder.iterdir()} | {p.name for p in settings.corpus_dir.iterdir()}
        wanted = safe_upload_name(original_name or src.name)
        name = _free_name(wanted, taken)
        ids = {str(e.get("id", "")) for e in entries} | _corpus_ids(settings)
        base_id = slugify(os.path.splitext(name)[0].removeprefix("upload-"))
        essay_id = _free_name(base_id, ids)
        text, _ = decode_bytes(src.read_bytes())
        title = " ".join(form.title.split()) or next((ln.strip() for ln in text.splitlines() if ln.strip()), name)[:80]
        entry = {
            "id": essay_id,
            "source": name,
            "title": title,
            "author": " ".join(form.author.split()) or "unknown",
            "organisation": " ".join(form.organisation.split()),
            "years": " ".join(form.years.split()),
            "script": form.script or _script_of(text),
        }
        report = cleaning_report(src, entry, settings)
        shutil.copyfile(src, folder / name)
        _write_metadata(folder, [*entries, entry])
    note = f"a file named {wanted} was already there: stored as {name}" if name != wanted else ""
    return report, note


def _script_of(text: str) -> str:
    from ..clean import to_simplified

    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    return "en" if cjk < len(text) * 0.05 else ("zh-Hans" if to_simplified(text) == text else "zh-Hant")


def _corpus_ids(settings: Settings) -> set[str]:
    try:
        from ..corpus import load_metadata

        return {m.id for m in load_metadata(settings.corpus_dir).values()} | {
            slugify(p.stem) for p in settings.corpus_dir.iterdir()
        }
    except Exception:  # noqa: BLE001 - the build reports broken metadata; here it only avoids clashes
        return set()


def added_essays(settings: Settings) -> list[tuple[str, str]]:
    """(label, file name) of each added essay, for the trainer's "remove" list."""
    try:
        entries = _metadata_entries(settings.upload_dir)
    except (OSError, ValueError):
        entries = []
    names = {p.name for p in settings.upload_dir.iterdir()} if settings.upload_dir.is_dir() else set()
    return [
        (f"{e.get('title', e['source'])} — {e.get('author', '?')} ({e['source']})", str(e["source"]))
        for e in entries
        if e.get("source") in names
    ]


def remove_upload(name: str, settings: Settings) -> str:
    """Delete an added essay and its metadata entry. Returns its title. Raises ValueError when it is not there."""
    folder = settings.upload_dir
    with _LOCK:
        entries = _metadata_entries(folder) if folder.is_dir() else []
        entry = next((e for e in entries if e.get("source") == name), None)
        path = folder / os.path.basename(name)
        if entry is None or not path.is_file():
            raise ValueError(f"{name} is not an added essay; pick one from the list")
        path.unlink()
        _write_metadata(folder, [e for e in entries if e is not entry])
    return str(entry.get("title", name))


# ---------------------------------------------------------------------------------------------- same site


def foreign_origin(request) -> str | None:
    """The other site a request came from, or None when it came from this app's own pages (or from no page at all).

    A browser names the page that sent a POST in `Origin` (else `Referer`); it must be this server, as named by
    the request's `Host` (or `X-Forwarded-Host` behind a proxy). Clients that are not browsers (gradio_client,
    curl) send neither header and pass: they need the login like anyone else. A page on another site cannot hide
    its origin; "null" (sandboxed frames, file: pages) counts as foreign.
    """
    raw = getattr(request, "headers", None) or {}
    try:
        headers = {str(k).lower(): str(v) for k, v in raw.items()}
    except AttributeError:
        return None
    hosts = {
        h.strip().lower()
        for h in (headers.get("host", ""), *headers.get("x-forwarded-host", "").split(","))
        if h.strip()
    }
    for name in ("origin", "referer"):
        value = headers.get(name, "").strip()
        if not value:
            continue
        netloc = urllib.parse.urlsplit(value).netloc.lower() if value != "null" else ""
        return None if netloc and netloc in hosts else value[:200]
    return None
