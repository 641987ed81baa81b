"""Helpful / not-helpful marks and the questions asked, in SQLite (WAL, parameterised queries, thread-safe).

Stored per row: the time, the question (as searched), its language, whether no veteran covered it, the situation
Coach recognised, the passages shown (chunk id, essay id, key sentence) and, for a mark, helpful or not. Nothing
else: no user name, address, session or browser data.

The database path is `$COACH_FEEDBACK_DB`, default `<repo>/var/feedback.sqlite3` (gitignored).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PROJECT_ROOT

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT    NOT NULL,              -- UTC, ISO 8601
    kind          TEXT    NOT NULL CHECK (kind IN ('question', 'feedback')),
    query         TEXT    NOT NULL,
    lang          TEXT    NOT NULL DEFAULT '',
    situation     TEXT    NOT NULL DEFAULT '',
    out_of_domain INTEGER NOT NULL DEFAULT 0,
    helpful       INTEGER,                       -- 1 / 0 for feedback, NULL for a question
    passages      TEXT    NOT NULL DEFAULT '[]'  -- JSON list of {id, essay, highlight}
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, helpful);
"""


def default_path() -> Path:
    value = os.environ.get("COACH_FEEDBACK_DB")
    return Path(value).expanduser().resolve() if value else PROJECT_ROOT / "var" / "feedback.sqlite3"


@dataclass(frozen=True)
class Event:
    id: int
    created_at: str
    kind: str
    query: str
    lang: str
    situation: str
    out_of_domain: bool
    helpful: bool | None
    passages: list[dict]


class FeedbackStore:
    """One connection per thread (sqlite3 objects are not shared across threads); WAL lets readers run beside a writer."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; explicit BEGIN below
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def _insert(self, kind: str, query: str, lang: str, situation: str, out_of_domain: bool,
                helpful: bool | None, passages: list[dict]) -> int:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cur = self._conn().execute(
            "INSERT INTO events (created_at, kind, query, lang, situation, out_of_domain, helpful, passages) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, kind, query, lang, situation, int(bool(out_of_domain)),
             None if helpful is None else int(bool(helpful)), json.dumps(passages, ensure_ascii=False)))
        return int(cur.lastrowid or 0)

    def record_question(self, query: str, *, lang: str = "", situation: str = "", out_of_domain: bool = False,
                        passages: list[dict] | None = None) -> int:
        return self._insert("question", query, lang, situation, out_of_domain, None, passages or [])

    def record_feedback(self, query: str, helpful: bool, *, lang: str = "", situation: str = "",
                        out_of_domain: bool = False, passages: list[dict] | None = None) -> int:
        return self._insert("feedback", query, lang, situation, out_of_domain, helpful, passages or [])

    # ------------------------------------------------------------ reading (trainer views)

    def events(self, kind: str | None = None, helpful: bool | None = None, limit: int = 1000) -> list[Event]:
        sql, args = "SELECT * FROM events WHERE 1=1", list[str | int]()
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if helpful is not None:
            sql += " AND helpful = ?"
            args.append(int(helpful))
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        return [_event(row) for row in self._conn().execute(sql, args)]

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self._conn().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]

    def situations(self, limit: int = 20) -> list[tuple[str, int]]:
        """Recognised situations of the questions asked, most frequent first."""
        rows = self._conn().execute(
            "SELECT situation, COUNT(*) AS n FROM events WHERE kind = 'question' GROUP BY situation "
            "ORDER BY n DESC, situation LIMIT ?", (int(limit),))
        return [(s, n) for s, n in rows]

    def uncovered(self, limit: int = 1000) -> list[tuple[str, str, int, str]]:
        """Questions no veteran covered: (query, lang, times asked, last asked), most recent first."""
        rows = self._conn().execute(
            "SELECT query, lang, COUNT(*), MAX(created_at) AS last FROM events "
            "WHERE kind = 'question' AND out_of_domain = 1 GROUP BY query, lang ORDER BY last DESC LIMIT ?",
            (int(limit),))
        return [tuple(r) for r in rows]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _event(row: tuple) -> Event:
    id_, created, kind, query, lang, situation, ood, helpful, passages = row
    return Event(id_, created, kind, query, lang, situation, bool(ood), None if helpful is None else bool(helpful),
                 json.loads(passages))


def eval_cases(store: FeedbackStore) -> list[dict]:
    """Unhelpful and uncovered questions as `coach eval` lines, ready to become regression cases.

    Uncovered questions are written with out_of_domain true (what Coach answered, to be confirmed or turned into an
    essay request); unhelpful ones with out_of_domain false and an empty `relevant` list for a trainer to fill in.
    """
    out: dict[tuple[str, str], dict] = {}
    for query, lang, _n, _last in store.uncovered():
        out.setdefault((query, lang), {"query": query, "lang": lang or "en", "relevant": [], "out_of_domain": True})
    for e in store.events(kind="feedback", helpful=False):
        out.setdefault((e.query, e.lang), {"query": e.query, "lang": e.lang or "en", "relevant": [],
                                           "out_of_domain": False})
    return list(out.values())
