"""A bounded two-replica load run on loopback (docs/deploy.md quotes its figures).

One PostgreSQL 15 server (started here: tests/pg_support.py, 127.0.0.1, a free port, removed at the end), one index
built once into a temp folder (`coach build`), two replicas of `python app.py` on free loopback ports sharing both.
Then `--clients` threads, each sending its requests round-robin to the two replicas (what nginx's default
`upstream` does), ask questions through POST /api/v1/ask for `--seconds`, and every fifth request is a mark through
POST /api/v1/feedback. Reported: answers per second, p50 / p95 latency per replica and overall, busy answers (503),
errors, marks acknowledged and the rows PostgreSQL holds afterwards (acknowledged = stored: none lost or doubled).

    .venv/bin/python bench/replicas.py                      # 8 clients, 30 s, the bundled model
    .venv/bin/python bench/replicas.py --clients 16 --seconds 60 --json out.json

Bounded: at most 32 clients and 120 s; everything listens on 127.0.0.1 only; the replicas and the server are
always stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from pg_support import PgServer  # noqa: E402
from replica_support import call, start_replica, wait_ready  # noqa: E402
from reliability_support import free_port  # noqa: E402

QUESTIONS = [
    "how do I handle an angry caller",
    "客户破口大骂怎么办",
    "第一次接电话很紧张怎么办",
    "客戶一直罵人怎麼辦",
    "the customer does not understand my explanation",
    "客户要求退款但不符合规定",
    "夜班电话很少但很难",
    "how do I stay calm after a rude call",
]
TOKEN = "bench-replicas"


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 1)


def load(replicas, clients: int, seconds: float) -> dict:
    lat: dict[int, list[float]] = {0: [], 1: []}
    busy, errors, marks = [0], [], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int):
        i = n
        while time.monotonic() < deadline:
            r = i % 2  # round-robin over the two replicas
            q = QUESTIONS[i % len(QUESTIONS)]
            i += 1
            t0 = time.perf_counter()
            try:
                if i % 5 == 0:
                    status, body = call(
                        replicas[r],
                        "POST",
                        "/feedback",
                        {"query": q, "passages": [], "helpful": i % 3 != 0},
                        token=TOKEN,
                    )
                    with lock:
                        if status == 201:
                            marks.append(body["id"])
                        else:
                            errors.append(f"feedback {status}: {body}"[:200])
                    continue
                status, body = call(replicas[r], "POST", "/ask", {"query": q, "top_k": 3}, token=TOKEN)
                with lock:
                    if status == 200 and "results" in body:
                        lat[r].append(time.perf_counter() - t0)
                    elif status == 503:
                        busy[0] += 1
                    else:
                        errors.append(f"ask {status}: {body}"[:200])
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 180)
    elapsed = time.monotonic() - t0
    both = lat[0] + lat[1]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "answered": len(both),
        "answers_per_s": round(len(both) / elapsed, 2) if elapsed else 0.0,
        "p50_ms": pct(both, 0.50),
        "p95_ms": pct(both, 0.95),
        "per_replica": [
            {"answered": len(lat[r]), "p50_ms": pct(lat[r], 0.5), "p95_ms": pct(lat[r], 0.95)} for r in (0, 1)
        ],
        "busy_503": busy[0],
        "errors": len(errors),
        "error_samples": errors[:5],
        "marks_acknowledged": len(marks),
        "mark_ids_distinct": len(set(marks)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument(
        "--model",
        choices=("real", "fake"),
        default="real",
        help="real: `python app.py` with the bundled model (default); fake: the tests' hashing embedder",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--index",
        type=Path,
        help="the shared index folder (real model; built there when missing or "
        "stale, reused by a later run); default: a temp folder",
    )
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`, Ctrl-C: still stop the servers below
    clients, seconds = max(1, min(args.clients, 32)), max(1.0, min(args.seconds, 120.0))

    work = Path(tempfile.mkdtemp(prefix="coach-replicas-"))
    pg = PgServer.start()
    replicas = []
    try:
        db = pg.new_database()
        if args.model == "real":
            corpus, index = ROOT / "corpus", (args.index or work / "index").resolve()
            t0 = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "coach.cli", "--index", str(index), "build", "--if-needed"],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            build_s = round(time.monotonic() - t0, 1)
        else:
            from reliability_support import FakeEmbedder, make_settings

            from coach.retrieve import Coach

            settings = make_settings(work / "shared")
            t0 = time.monotonic()
            Coach(settings, embedder=FakeEmbedder())
            corpus, index, build_s = settings.corpus_dir, settings.index_dir, round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        replicas = [
            start_replica(
                work / f"r{n}",
                free_port(),
                feedback_db=db,
                index_dir=index,
                corpus_dir=corpus,
                token=TOKEN,
                model=args.model,
            )
            for n in range(2)
        ]
        for r in replicas:
            wait_ready(r, 600)
        ready_s = round(time.monotonic() - t0, 1)
        for r in replicas:  # one question each before the clock starts (first-question costs)
            call(r, "POST", "/ask", {"query": QUESTIONS[0]}, token=TOKEN)
        figures = load(replicas, clients, seconds)
        import psycopg

        with psycopg.connect(db) as conn:
            rows = conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events WHERE kind = 'feedback'").fetchone()
        figures.update(
            {
                "model": args.model,
                "replicas": 2,
                "index_build_s": build_s,
                "replicas_ready_s": ready_s,
                "feedback_rows": rows[0],
                "cpu_cores": os.cpu_count(),
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        )
    finally:
        for r in replicas:
            r.close()
        pg.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    text = json.dumps(figures, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    lost = figures["marks_acknowledged"] - figures["feedback_rows"]
    print(
        f"\n{figures['clients']} clients x {figures['seconds']} s over 2 replicas: {figures['answered']} answers "
        f"({figures['answers_per_s']}/s), p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
        f"{figures['busy_503']} busy, {figures['errors']} errors; marks acknowledged {figures['marks_acknowledged']}, "
        f"rows {figures['feedback_rows']} ({'none lost or doubled' if lost == 0 else f'{lost} differ'})",
        file=sys.stderr,
    )
    return 0 if figures["errors"] == 0 and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
