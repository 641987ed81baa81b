"""Feedback store faults through the app logic, for scripts/reliability.py (the CI versions are in
tests/test_feedback_faults.py): per fault, questions answered, marks acknowledged / refused / lost, recovery."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from reliability_support import FakeEmbedder, make_settings

QUESTIONS = ["客户破口大骂怎么办", "angry caller", "客戶要我破解密碼", "第一次接电话很紧张"]


def _feedback_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'feedback'").fetchone()[0]


def _chattr(path: Path, flag: str) -> bool:
    return (
        bool(shutil.which("chattr"))
        and subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
    )


def store_fault_rounds(tmp: Path, rounds: int = 25) -> dict:
    """Each fault injected under a running CoachApp; `rounds` questions and marks during it, then it is cleared and
    one more mark must be stored. Returns per-fault figures and totals."""
    from coach.feedback import FeedbackStore, StoreUnavailable
    from coach.retrieve import Coach
    from coach.ui import CoachApp, CoachHolder, Session

    settings = make_settings(tmp / "corpus-root")
    coach = Coach(settings, embedder=FakeEmbedder())
    out: dict = {}

    def inject(name: str, db: Path, store: FeedbackStore):
        """Returns the function that clears the fault, or None where it cannot be simulated here."""
        if name == "deleted":
            backup = db.with_suffix(".bak")
            shutil.copy(db, backup)
            db.unlink()
            return lambda: shutil.copy(backup, db)
        if name == "read-only (chattr +i)":
            return (lambda: _chattr(db, "-i")) if _chattr(db, "+i") else None
        if name == "locked":
            store.backend.busy_timeout_s = 0.2
            store.backend.close()
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            return lambda: (holder.execute("ROLLBACK"), holder.close())
        if name == "corrupt":
            good = db.read_bytes()
            db.write_bytes(b"not a database " * 500)
            return lambda: db.write_bytes(good)
        if name == "disk full (max_page_count)":
            with sqlite3.connect(db) as conn:
                store.backend.max_page_count = conn.execute("PRAGMA page_count").fetchone()[0]
            store.backend.close()
            return lambda: (setattr(store.backend, "max_page_count", None), store.backend.close())
        raise ValueError(name)

    for name in ("deleted", "read-only (chattr +i)", "locked", "corrupt", "disk full (max_page_count)"):
        work = tmp / name.split()[0]
        work.mkdir(parents=True, exist_ok=True)
        db = work / "fb.sqlite3"
        store = FeedbackStore(db)
        app = CoachApp(CoachHolder(coach=coach), store, settings, upload_dir=work / "up", live_dir=work / "live")
        session = Session()
        app.ask(QUESTIONS[0], session)
        app.mark(session, 0, True)
        clear = inject(name, db, store)
        if clear is None:
            out[name] = {"skipped": "chattr does not work here"}
            continue
        answered = acknowledged = refused = failed = 0
        for n in range(rounds):
            try:
                turn = app.ask(QUESTIONS[n % len(QUESTIONS)] + " 填充" * (400 if "disk" in name else 0), session)
                answered += bool(turn.answer.results or turn.answer.out_of_domain)
            except Exception:  # noqa: BLE001 - counted: a question not answered
                failed += 1
            try:
                if app.mark(session, len(session.turns) - 1, n % 2 == 0):
                    acknowledged += 1
            except StoreUnavailable:
                refused += 1
        clear()
        try:
            app.mark(session, len(session.turns) - 1, True)
            recovered = True
        except StoreUnavailable:
            recovered = False
        rows = _feedback_rows(db) if db.exists() else 0
        out[name] = {
            "questions": rounds,
            "answered": answered,
            "question_errors": failed,
            "marks": rounds,
            "acknowledged": acknowledged,
            "refused": refused,
            "acknowledged_but_lost": max(0, 1 + acknowledged + int(recovered) - rows),
            "recovered_without_restart": recovered,
        }

    # read-only before start: the app starts, says marks are off, answers
    work = tmp / "ro-start"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "fb.sqlite3"
    FeedbackStore(db).record_feedback("seed", helpful=True)
    if _chattr(db, "+i"):
        try:
            store = FeedbackStore(db)
            app = CoachApp(CoachHolder(coach=coach), store, settings, upload_dir=work / "up", live_dir=work / "live")
            session = Session()
            answered = sum(bool(app.ask(q, session).answer.results) or True for q in QUESTIONS)
            out["read-only at start"] = {
                "started": True,
                "marks_off": not store.marks_enabled,
                "answered": answered,
                "questions": len(QUESTIONS),
            }
        finally:
            _chattr(db, "-i")
    faults = [v for v in out.values() if "marks" in v]
    out["totals"] = {
        "faults": len(faults),
        "questions": sum(v["questions"] for v in faults),
        "answered": sum(v["answered"] for v in faults),
        "marks_refused": sum(v["refused"] for v in faults),
        "marks_acknowledged": sum(v["acknowledged"] for v in faults),
        "acknowledged_but_lost": sum(v["acknowledged_but_lost"] for v in faults),
        "recovered": sum(v["recovered_without_restart"] for v in faults),
    }
    return out
