"""Adding essays: where uploads go, the checks they pass, the live corpus they join, and who may send them.

Uploads are saved to `var/uploads/` (gitignored; `corpus/` is never written by code). When there are uploads, the
app serves a *live corpus*, `var/live-corpus/` = a copy of every file in `corpus/` plus the uploads, with its own
index in `var/live-index/`, so the CLI's `index/` is never made stale by the app. See `corpus_with_uploads`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from pathlib import Path

from ..config import PROJECT_ROOT, Settings
from ..corpus import refusal

UPLOAD_MAX_BYTES = 2 * 1024 * 1024
UPLOAD_EXTENSIONS = (".txt", ".md", ".html")


def upload_dir_default() -> Path:
    v = os.environ.get("COACH_UPLOAD_DIR")
    return Path(v).expanduser().resolve() if v else PROJECT_ROOT / "var" / "uploads"


def corpus_with_uploads(settings: Settings, uploads_dir: Path, live_dir: Path) -> Settings:
    """Settings whose corpus is `corpus/` plus the uploaded essays (hook until the pipeline reads extra folders).

    With no uploads the settings are returned unchanged. Otherwise `live_dir/corpus` is refreshed to hold a copy of
    every file of the corpus folder and of the uploads (the corpus folder itself is only read), and the returned
    settings point at it and at `live_dir/index`, leaving the standard index untouched.
    """
    uploads = (
        sorted(p for p in uploads_dir.glob("*") if p.is_file() and p.suffix.lower() in UPLOAD_EXTENSIONS)
        if uploads_dir.is_dir()
        else []
    )
    if not uploads:
        return settings
    live_corpus = live_dir / "corpus"
    tmp = live_dir / f".corpus-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for p in sorted(settings.corpus_dir.iterdir()):
        if p.is_file() and refusal(p, settings.corpus_dir) is None:  # no link leading outside corpus/ (issue 19)
            shutil.copy2(p, tmp / p.name)
    for p in uploads:
        shutil.copy2(p, tmp / p.name)
    old = live_dir / f".old-{os.getpid()}-{threading.get_ident()}"
    if live_corpus.exists():
        os.rename(live_corpus, old)
    os.rename(tmp, live_corpus)
    shutil.rmtree(old, ignore_errors=True)
    return settings.with_overrides(corpus_dir=live_corpus, index_dir=live_dir / "index")


def safe_upload_name(name: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(name or ""))
    stem = re.sub(r"[^0-9A-Za-z\u3400-\u9fff_-]+", "-", stem).strip("-")[:60] or "essay"
    return f"upload-{stem}{ext.lower()}"


def check_upload(path: str | Path | None, max_bytes: int = UPLOAD_MAX_BYTES) -> str | None:
    """Why an uploaded file is refused, or None when it is acceptable."""
    if not path:
        return "no file"
    p = Path(path)
    if p.suffix.lower() not in UPLOAD_EXTENSIONS:
        return f"only {', '.join(UPLOAD_EXTENSIONS)} files can be added"
    size = p.stat().st_size
    if size > max_bytes:
        return f"the file is {size // 1024} KB; the limit is {max_bytes // 1024} KB"
    if size == 0:
        return "the file is empty"
    return None


def corpus_report_line(path: Path, settings: Settings) -> str:
    """The corpus report for one file, as `coach corpus` prints it."""
    from ..chunk import chunk_essay
    from ..corpus import load_corpus

    with tempfile.TemporaryDirectory() as d:
        shutil.copy2(path, Path(d) / path.name)
        loaded = load_corpus(Path(d))
        if not loaded.essays:
            return "; ".join(loaded.warnings) or f"{path.name}: no readable essay"
        chunks = {e.meta.id: chunk_essay(e, settings.chunk) for e in loaded.essays}
        try:
            from ..corpus import corpus_report, format_report

            return format_report(corpus_report(loaded.essays, chunks))
        except (ImportError, NotImplementedError, AttributeError, TypeError):
            e = loaded.essays[0]
            return (
                f"{path.name}: 《{e.meta.title}》 — {e.meta.author or '?'}, {len(e.text)} characters, "
                f"{len(chunks[e.meta.id])} passages, repairs: {', '.join(e.repairs) or 'none'}"
            )


def upload_config() -> tuple[bool, tuple[str, str] | None, str]:
    """(enabled, auth, reason) from COACH_ENABLE_UPLOAD / COACH_ADMIN_USER / COACH_ADMIN_PASSWORD."""
    if os.environ.get("COACH_ENABLE_UPLOAD", "") not in ("1", "true", "yes"):
        return False, None, "adding essays is off (set COACH_ENABLE_UPLOAD=1 to switch it on)"
    user, password = os.environ.get("COACH_ADMIN_USER", ""), os.environ.get("COACH_ADMIN_PASSWORD", "")
    if not user or not password:
        return (
            False,
            None,
            (
                "COACH_ENABLE_UPLOAD=1 but COACH_ADMIN_USER / COACH_ADMIN_PASSWORD are not both set: "
                "adding essays stays off, because it must sit behind a login"
            ),
        )
    return True, (user, password), "adding essays is on, behind a login"


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
