"""Concurrency: 20 threads querying while the index is rebuilt again and again (alternating corpus versions), and 50
simultaneous feedback clicks. No errors; every answer is consistent with exactly one index snapshot; no lost rows."""

from __future__ import annotations

import threading
import time

import pytest
from concurrent.futures import ThreadPoolExecutor

from coach.feedback import FeedbackStore
from coach.retrieve import Coach

from reliability_support import ESSAYS_A, ESSAYS_B, FakeEmbedder, make_settings, write_corpus

QUERIES = [
    "客户破口大骂怎么办",
    "第一次接电话很紧张",
    "angry caller shouting",
    "客戶要我破解密碼",
    "夜班电话",
    "",
    "\x00\u202e😡",
    "a" * 5000,
]


def run_queries_during_rebuilds(
    settings, threads: int = 20, rebuilds: int = 8, embedder=None, max_seconds: float = 60.0, pause_s: float = 0.01
) -> dict:
    """Query from `threads` threads while one thread rebuilds `rebuilds` times. Returns figures; raises nothing."""
    emb = embedder or FakeEmbedder()
    coach = Coach(settings, embedder=emb)
    for q in QUERIES:  # warm-up: lazy dictionaries load once here, not 20 times at once (see the herd test)
        coach.ask(q)
    snapshots = [coach.index]  # every LoadedIndex ever served (kept alive: ids stay unique)
    records, errors = [], []
    stop = threading.Event()
    lock = threading.Lock()

    def rebuilder():
        try:
            for n in range(rebuilds):
                write_corpus(settings.corpus_dir, ESSAYS_B if n % 2 == 0 else ESSAYS_A)  # only between builds
                new = coach.rebuild()
                with lock:
                    snapshots.append(new)
        except Exception as exc:  # noqa: BLE001
            errors.append(("rebuild", repr(exc)))
        finally:
            stop.set()

    def querier(seed: int):
        i = seed
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            q = QUERIES[i % len(QUERIES)]
            i += 1
            try:
                a = coach.ask(q, top_k=3)
                with lock:
                    records.append((q, a))
            except Exception as exc:  # noqa: BLE001
                errors.append((q, repr(exc)))
            time.sleep(pause_s)  # think time; without it 20 hot threads starve the rebuild of the GIL and locks

    workers = [threading.Thread(target=querier, args=(s,)) for s in range(threads)]
    rb = threading.Thread(target=rebuilder)
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    rb.start()
    rb.join(max_seconds)
    stop.set()
    for w in workers:
        w.join(max_seconds)
    elapsed = time.perf_counter() - t0

    # every answer's hits all belong to one snapshot, and equal what that snapshot alone answers
    by_chunk = {}
    for n, snap in enumerate(snapshots):
        for c in snap.chunks:
            by_chunk[id(c)] = n
    inconsistent, used = [], set()
    replay = Coach.__new__(Coach)
    replay.__dict__.update(coach.__dict__)
    expected = {}
    for q, a in records:
        owners = {by_chunk.get(id(h.chunk)) for h in a.results}
        if None in owners or len(owners) > 1:
            inconsistent.append((q, owners))
            continue
        if not owners:
            continue
        n = owners.pop()
        used.add(n)
        snap = snapshots[n]
        if any(h.essay is not snap.essays[h.chunk.essay_id].meta for h in a.results):
            inconsistent.append((q, "essay from another snapshot"))
        key = (q, n)
        if key not in expected:
            replay.index = snap
            expected[key] = [h.chunk.id for h in replay.ask(q, top_k=3).results]
        if [h.chunk.id for h in a.results] != expected[key]:
            inconsistent.append((q, "differs from its snapshot's own answer"))
    return {
        "threads": threads,
        "rebuilds": len(snapshots) - 1,
        "queries": len(records),
        "errors": errors,
        "inconsistent": inconsistent,
        "snapshots_answering": len(used),
        "seconds": round(elapsed, 2),
    }


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_20_threads_query_while_index_is_rebuilt_repeatedly(tmp_path):
    settings = make_settings(tmp_path)
    figures = run_queries_during_rebuilds(settings, threads=20, rebuilds=6, embedder=FakeEmbedder(delay_s=0.02))
    assert not figures["errors"], figures["errors"][:5]
    assert not figures["inconsistent"], figures["inconsistent"][:5]
    assert figures["rebuilds"] == 6 and figures["queries"] >= 100
    assert figures["snapshots_answering"] >= 3, figures  # answers really did come from several index versions


def record_concurrent_clicks(db_path, clicks: int = 50) -> int:
    """`clicks` threads each store one helpful/not-helpful mark at the same moment; returns rows stored."""
    store = FeedbackStore(db_path)
    barrier = threading.Barrier(clicks)

    def click(n):
        barrier.wait()
        return store.record_feedback(
            f"question {n} 😡\x00'; DROP TABLE events;--",
            n % 2 == 0,
            lang="zh",
            situation="angry",
            passages=[{"id": f"c{n}", "essay": "e", "highlight": "h"}],
        )

    with ThreadPoolExecutor(clicks) as pool:
        ids = list(pool.map(click, range(clicks)))
    assert len(set(ids)) == clicks
    return FeedbackStore(db_path).count("feedback")


def test_50_concurrent_feedback_clicks_store_exactly_50_rows(tmp_path):
    assert record_concurrent_clicks(tmp_path / "fb.sqlite3", 50) == 50
    events = FeedbackStore(tmp_path / "fb.sqlite3").events(kind="feedback")
    assert len(events) == 50 and {e.query for e in events} == {
        f"question {n} 😡\x00'; DROP TABLE events;--" for n in range(50)
    }


def test_50_concurrent_clicks_through_the_app_logic(tmp_path):
    """Through CoachApp.mark (what the card marks and the `mark` API call), from 50 threads at once: one row per
    card marked, and nothing else stored."""
    from coach.ui import CoachApp, CoachHolder, Session

    settings = make_settings(tmp_path)
    coach = Coach(settings, embedder=FakeEmbedder())
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    app = CoachApp(CoachHolder(coach=coach), store, settings, upload_dir=tmp_path / "up", live_dir=tmp_path / "live")
    sessions = []
    for _ in range(50):
        s = Session()
        app.ask("A caller is shouting abuse at me on the phone", s)  # a fixture description: answered with cards
        sessions.append(s)
    questions = store.count("question")
    barrier = threading.Barrier(50)

    def click(n):
        barrier.wait()
        return app.mark(sessions[n], 0, n % 3 != 0, card=n % 2)

    with ThreadPoolExecutor(50) as pool:
        rows = list(pool.map(click, range(50)))
    assert all(rows) and len(set(rows)) == 50
    assert store.count("feedback") == 50 and store.count("question") == questions


_HERD = """
import sys, threading, time
sys.path.insert(0, {tests!r})
from reliability_support import FakeEmbedder, make_settings
from coach.retrieve import Coach
from pathlib import Path
coach = Coach(make_settings(Path({tmp!r})), embedder=FakeEmbedder())
coach.ask("客户生气")
threads = [threading.Thread(target=coach.ask, args=("angry caller zebra" + str(i),)) for i in range({n})]
t0 = time.perf_counter()
[t.start() for t in threads]; [t.join() for t in threads]
print(time.perf_counter() - t0)
"""


@pytest.mark.slow
def test_first_english_questions_at_once_load_the_dictionary_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from reliability_support import ROOT

    def run(n, sub):
        code = _HERD.format(tests=str(Path(__file__).parent), tmp=str(tmp_path / sub), n=n)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.strip().splitlines()[-1])

    one, six = run(1, "one"), run(6, "six")
    assert six < 2 * one + 1, f"1 thread: {one:.1f} s, 6 threads: {six:.1f} s"
