"""The feedback store: one suite run on SQLite and on a real PostgreSQL 15 server (started by the `pg_server`
fixture), plus the SQLite file's own settings."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from coach.feedback import FeedbackStore, default_path, default_target, eval_cases, normalise_question, redact


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where a fresh, empty store lives: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return tmp_path / "fb.sqlite3"
    return request.getfixturevalue("pg_server").new_database()


# ---------------------------------------------------------------- the shared suite (both back ends)


def test_fifty_concurrent_inserts_give_exactly_fifty_rows(target):
    store = FeedbackStore(target)
    barrier = threading.Barrier(50)
    errors, ids = [], []

    def worker(n: int):
        try:
            barrier.wait()
            ids.append(
                store.record_feedback(
                    f"question {n} 客戶",
                    helpful=n % 2 == 0,
                    lang="en",
                    passages=[{"id": f"essay#{n:03d}", "essay": "essay", "highlight": "h"}],
                )
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 50
    other = FeedbackStore(target)  # a second connection (another replica) sees all of them
    assert other.count("feedback") == 50 and other.count() == 50
    assert len(other.events(helpful=False)) == 25
    assert len({e.query for e in other.events()}) == 50


def test_hostile_text_is_stored_verbatim(target):
    store = FeedbackStore(target)
    nasty = "x'); DROP TABLE events; -- \" <script>alert(1)</script> 客户 ? %s %(x)s 😡"
    store.record_feedback(nasty, helpful=False, lang="zh")
    store.record_question(nasty, lang="zh", out_of_domain=True)
    assert store.events()[0].query == nasty
    assert store.uncovered()[0][:3] == (normalise_question(nasty), "zh", 1)  # case folded, spaces collapsed


def test_text_neither_driver_can_encode_is_stored_readably(target):
    store = FeedbackStore(target)
    store.record_feedback("lone \ud800 surrogate", helpful=True)
    assert store.events()[0].query == "lone \ufffd surrogate"


def test_rows_round_trip_with_every_field(target):
    store = FeedbackStore(target)
    first = store.record_feedback(
        "顧客對帳單有疑問",
        helpful=True,
        lang="zh",
        situation="billing",
        passages=[{"id": "a#001", "essay": "a", "highlight": "先傾聽"}],
    )
    fid = store.record_feedback(
        "angry caller",
        helpful=False,
        lang="en",
        situation="angry-caller",
        passages=[{"id": "b#002", "essay": "b", "highlight": "breathe"}],
    )
    assert fid > first
    fb, q = store.events()
    assert (fb.kind, fb.helpful, fb.situation, fb.passages[0]["id"]) == ("feedback", False, "angry-caller", "b#002")
    assert (q.kind, q.helpful, q.lang, q.out_of_domain, q.passages[0]["highlight"]) == (
        "feedback",
        True,
        "zh",
        False,
        "先傾聽",
    )
    assert q.created_at.endswith("Z") and isinstance(q.id, int)
    assert store.count("feedback") == 2 and store.situations() == [("angry-caller", 1), ("billing", 1)]


# ---------------------------------------------------------------- what is kept (issue 17)


def test_an_answered_question_stores_nothing_and_an_uncovered_one_is_counted_once(target):
    store = FeedbackStore(target)
    assert store.record_question("客户骂人怎么办", lang="zh", situation="angry-caller", out_of_domain=False) is None
    assert store.count() == 0 and store.uncovered() == []
    store.record_question("How to fix a  FLAT bicycle tire", lang="en", out_of_domain=True)
    store.record_question("how to fix a flat bicycle tire ", lang="en", out_of_domain=True)
    store.record_question("單車爆胎怎麼補", lang="zh", out_of_domain=True)
    gaps = {(q, lg): n for q, lg, n, _ in store.uncovered()}
    assert gaps == {("how to fix a flat bicycle tire", "en"): 2, ("單車爆胎怎麼補", "zh"): 1}
    assert store.count() == 0  # no question log: a gap is a count, not a row per question


def test_a_mark_is_changed_in_place_and_removed_by_un_marking(target):
    store = FeedbackStore(target)
    row = store.record_feedback("客戶一直罵人", helpful=True, lang="zh", passages=[{"id": "a#001", "essay": "a"}])
    assert store.change_mark(row, False)
    assert [(e.id, e.helpful) for e in store.events()] == [(row, False)]
    assert store.remove_mark(row) and store.count() == 0
    assert not store.remove_mark(row) and not store.change_mark(row, True)  # gone: nothing to change


def test_an_older_store_s_question_log_is_migrated_to_gap_counts(target):
    store = FeedbackStore(target)
    store.record_feedback("kept", helpful=True)
    created = "2026-01-02T03:04:05Z"
    for query, ood in (("Bicycle  tire", 1), ("bicycle tire", 1), ("客户骂人", 0)):  # an older Coach's rows
        store._run(
            "INSERT INTO events (created_at, kind, query, lang, situation, out_of_domain, helpful, passages) "
            "VALUES (?, 'question', ?, 'en', '', ?, NULL, '[]')",
            (created, query, ood),
            write=True,
        )
    store.close()
    reopened = FeedbackStore(target)
    assert [(e.kind, e.query) for e in reopened.events()] == [("feedback", "kept")]
    assert reopened.uncovered() == [("bicycle tire", "en", 2, created)]


def test_eval_cases_from_unhelpful_and_uncovered(target):
    store = FeedbackStore(target)
    store.record_question("bicycle tire", lang="en", out_of_domain=True)
    store.record_question("bicycle tire", lang="en", out_of_domain=True)
    store.record_feedback("客户骂人", helpful=False, lang="zh")
    store.record_feedback("angry caller", helpful=True, lang="en")
    assert eval_cases(store) == [
        {"query": "bicycle tire", "lang": "en", "relevant": [], "out_of_domain": True},
        {"query": "客户骂人", "lang": "zh", "relevant": [], "out_of_domain": False},
    ]


def test_status_reports_a_reachable_writable_store(target):
    status = FeedbackStore(target).status()
    assert status["reachable"] and status["marks_enabled"] and status["marks_refused"] == 0
    assert status["backend"] == ("sqlite" if not isinstance(target, str) else "postgresql")


# ---------------------------------------------------------------- PostgreSQL specifics


def test_postgres_text_cannot_hold_nul_so_it_becomes_a_replacement_character(pg_server):
    store = FeedbackStore(pg_server.new_database())
    store.record_feedback("a\x00b", helpful=True)
    assert store.events()[0].query == "a\ufffdb"


def test_postgres_server_down_refuses_marks_answers_questions_and_recovers(pg_server):
    from pg_support import PgServer

    own = PgServer.start()  # a server of its own, so stopping it leaves the session's alone
    try:
        store = FeedbackStore(own.new_database())
        store.record_feedback("before", helpful=True)
        own.pause()
        assert store.record_question("while down", out_of_domain=True) is None and store.questions_unrecorded == 1
        with pytest.raises(Exception, match="not stored.*unreachable"):
            store.record_feedback("while down", helpful=True)
        assert store.marks_refused == 1 and store.status()["reachable"] is False
        own.resume()
        store.record_feedback("after", helpful=False)
        assert [e.query for e in store.events(kind="feedback")] == ["after", "before"]
    finally:
        own.stop()


def test_a_role_that_may_only_read_starts_with_marks_off(pg_server):
    import psycopg

    url = pg_server.new_database()
    FeedbackStore(url).record_feedback("seed", helpful=True)
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'reader'").fetchone():
            conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("GRANT SELECT ON events TO reader")
    store = FeedbackStore(url.replace("postgres@", "reader@"))
    assert not store.marks_enabled and store.count() == 1
    with pytest.raises(Exception, match="read-only"):
        store.record_feedback("x", helpful=True)
    assert store.record_question("still answered", out_of_domain=True) is None


# ---------------------------------------------------------------- SQLite specifics


def test_sqlite_columns_and_no_memory_mapped_journal(tmp_path):
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    store.record_feedback(
        "angry caller",
        helpful=True,
        lang="en",
        situation="angry-caller",
        passages=[{"id": "a#001", "essay": "a", "highlight": "breathe"}],
    )
    with sqlite3.connect(tmp_path / "fb.sqlite3") as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
        # a rollback journal, not WAL: WAL memory-maps its -shm file, and a file made read-only underneath it
        # killed the process with SIGBUS
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert cols == ["id", "created_at", "kind", "query", "lang", "situation", "out_of_domain", "helpful", "passages"]
    assert not (tmp_path / "fb.sqlite3-shm").exists()


def test_default_path_and_target(monkeypatch, tmp_path):
    monkeypatch.delenv("COACH_FEEDBACK_DB", raising=False)
    assert default_path().parts[-2:] == ("var", "feedback.sqlite3") and default_target() == default_path()
    monkeypatch.setenv("COACH_FEEDBACK_DB", str(tmp_path / "x.db"))
    assert default_path() == tmp_path / "x.db"
    url = "postgresql://coach:s3cret@db.internal:5432/coach"
    monkeypatch.setenv("COACH_FEEDBACK_DB", url)
    assert default_target() == url and redact(url) == "postgresql://coach:***@db.internal:5432/coach"
