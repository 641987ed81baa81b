"""The feedback store: WAL, parameterised queries, safe under concurrent writers."""

from __future__ import annotations

import sqlite3
import threading

from coach.feedback import FeedbackStore, default_path, eval_cases


def test_fifty_concurrent_inserts_give_exactly_fifty_rows(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    barrier = threading.Barrier(50)
    errors = []

    def worker(n: int):
        try:
            barrier.wait()
            store.record_feedback(f"question {n}", helpful=n % 2 == 0, lang="en",
                                  passages=[{"id": f"essay#{n:03d}", "essay": "essay", "highlight": "h"}])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite3.connect(tmp_path / "fb.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 50
        assert conn.execute("SELECT COUNT(DISTINCT query) FROM events").fetchone()[0] == 50
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.count("feedback") == 50 and len(store.events(helpful=False)) == 25


def test_hostile_text_is_stored_verbatim(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    nasty = "x'); DROP TABLE events; -- \" <script>alert(1)</script> 客户"
    store.record_question(nasty, lang="zh", out_of_domain=True)
    assert store.events()[0].query == nasty
    assert store.uncovered()[0][:3] == (nasty, "zh", 1)


def test_only_the_question_passages_and_time_are_stored(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.record_feedback("angry caller", helpful=True, lang="en", situation="angry-caller",
                          passages=[{"id": "a#001", "essay": "a", "highlight": "breathe"}])
    with sqlite3.connect(tmp_path / "fb.sqlite3") as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    assert cols == ["id", "created_at", "kind", "query", "lang", "situation", "out_of_domain", "helpful", "passages"]
    ev = store.events()[0]
    assert (ev.kind, ev.helpful, ev.passages[0]["id"]) == ("feedback", True, "a#001")


def test_eval_cases_from_unhelpful_and_uncovered(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.record_question("bicycle tire", lang="en", out_of_domain=True)
    store.record_question("bicycle tire", lang="en", out_of_domain=True)
    store.record_feedback("客户骂人", helpful=False, lang="zh")
    store.record_feedback("angry caller", helpful=True, lang="en")
    assert eval_cases(store) == [
        {"query": "bicycle tire", "lang": "en", "relevant": [], "out_of_domain": True},
        {"query": "客户骂人", "lang": "zh", "relevant": [], "out_of_domain": False},
    ]


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.delenv("COACH_FEEDBACK_DB", raising=False)
    assert default_path().parts[-2:] == ("var", "feedback.sqlite3")
    monkeypatch.setenv("COACH_FEEDBACK_DB", str(tmp_path / "x.db"))
    assert default_path() == tmp_path / "x.db"
