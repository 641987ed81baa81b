"""The full reliability run (issue 8): hostile inputs, index faults, SIGKILLed builds, concurrency, feedback bursts and
load against the running app on loopback. Bounded: every section has a count or a time limit (about 10 minutes in
all with the defaults). Writes docs/reliability.md with the figures; never edit those figures by hand.

    .venv/bin/python scripts/reliability.py                 # full run, writes docs/reliability.md
    .venv/bin/python scripts/reliability.py --quick         # smaller counts, for a smoke test
    .venv/bin/python scripts/reliability.py --kills 200 --load-seconds 120 --load-model real

The CI versions of the same checks are tests/test_reliability_*.py (reduced and bounded).
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import psutil  # noqa: E402

from reliability_support import (  # noqa: E402
    ESSAYS_A,
    FakeEmbedder,
    chunk_signature,
    damage,
    hostile_questions,
    index_files,
    kill_build_rounds,
    make_settings,
    run_load,
    start_app,
)

FIGURES: dict = {}


def section(name):
    def wrap(fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            print(f"== {name} ...", flush=True)
            out = fn(*a, **k)
            out["seconds"] = round(time.perf_counter() - t0, 1)
            FIGURES[name] = out
            print(f"   {json.dumps(out, ensure_ascii=False)[:400]}", flush=True)
            return out

        return run

    return wrap


def _random_text(rng: random.Random, max_len: int) -> str:
    pools = [
        (0x20, 0x7E),
        (0x00, 0x1F),
        (0x4E00, 0x9FFF),
        (0xD800, 0xDFFF),
        (0x200B, 0x206F),
        (0x1F300, 0x1FAFF),
        (0x0600, 0x06FF),
        (0x0300, 0x036F),
        (0xE000, 0xF8FF),
        (0xFFF0, 0xFFFF),
        (0x10000, 0x10FFFF),
    ]
    out = []
    for _ in range(rng.randrange(max_len)):
        lo, hi = rng.choice(pools)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


@section("hostile questions (Python API)")
def hostile_python(tmp: Path, fuzz: int) -> dict:
    from coach.retrieve import Coach

    coach = Coach(make_settings(tmp), embedder=FakeEmbedder())
    coach.ask("angry caller zebra"), coach.ask("客户生气")
    ids = {c.id for c in coach.index.chunks}
    rng = random.Random(8)
    inputs = list(hostile_questions().values()) + [_random_text(rng, 400) for _ in range(fuzz)]
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    worst, failures = 0.0, []
    for q in inputs:
        k = rng.randint(-2, 12)
        t0 = time.perf_counter()
        try:
            a = coach.ask(q, top_k=k)
            assert len(a.results) <= max(0, k) and all(h.chunk.id in ids for h in a.results)
            a.query.encode("utf-8")
            assert coach.ask("客户破口大骂怎么办").results
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{q[:40]!r}: {exc!r}"[:200])
        worst = max(worst, time.perf_counter() - t0)
    gc.collect()
    return {
        "inputs": len(inputs),
        "named_hostile": len(hostile_questions()),
        "random_fuzz": fuzz,
        "failures": len(failures),
        "failure_samples": failures[:5],
        "worst_ms": round(worst * 1000, 1),
        "rss_growth_mib": round((proc.memory_info().rss - rss0) / 2**20, 1),
    }


@section("hostile questions (CLI)")
def hostile_cli(tmp: Path) -> dict:
    import coach.embed
    from coach import cli

    settings = make_settings(tmp)
    real = coach.embed.Embedder
    coach.embed.Embedder = lambda *a, **k: FakeEmbedder()
    base = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--model", "fake"]
    failures, n = [], 0
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            cli.main(base + ["build"])
        for name, q in hostile_questions().items():
            for json_flag in (["--json"], []):
                out = io.StringIO()
                n += 1
                with redirect_stdout(out), redirect_stderr(io.StringIO()):
                    code = cli.main(base + ["ask", *json_flag, q, "客户破口大骂怎么办"])
                # the fake embedder's cosines sit below the real model's out-of-domain floors: the normal question's
                # passages may come as `nearest` (as in tests/test_reliability_inputs.py)
                normal = json.loads(out.getvalue())[1] if json_flag and code == 0 else {}
                if code != 0 or (json_flag and not (normal.get("results") or normal.get("nearest"))):
                    failures.append(name)
    finally:
        coach.embed.Embedder = real
    return {"inputs": n, "failures": len(failures), "failure_samples": failures[:5]}


@section("hostile corpus files")
def hostile_corpus(tmp: Path) -> dict:
    from coach import pipeline
    from test_reliability_corpus import hostile_files

    settings = make_settings(tmp)
    files = hostile_files(random.Random(8))
    for name, (data, _) in files.items():
        (settings.corpus_dir / name).write_bytes(data)
    built = pipeline.build(settings, FakeEmbedder())
    sources = {r.meta.source for r in built.essays.values()}
    expected_loaded = {n for n, (_, e) in files.items() if e == "loaded"} | set(ESSAYS_A)
    skipped = {n for n, (_, e) in files.items() if e == "skipped"}
    unnamed = [n for n in skipped if not any(n in w for w in built.warnings)]
    dropped = sorted(expected_loaded - sources)
    return {
        "files": len(files) + len(ESSAYS_A),
        "hostile_files": len(files),
        "loaded": len(built.essays),
        "skipped_with_named_warning": len(skipped) - len(unnamed),
        "skipped_without_name": len(unnamed),
        "good_essays_dropped": len(dropped),
        "dropped": dropped,
        "warnings": built.warnings,
    }


@section("index faults")
def index_faults(tmp: Path, rounds: int) -> dict:
    from coach import index as ix
    from coach import pipeline
    from coach.retrieve import Coach

    settings = make_settings(tmp)
    emb = FakeEmbedder()
    good = chunk_signature(Coach(settings, embedder=emb).index)
    rng = random.Random(8)
    injected, refused, identical, mixed, not_repaired = 0, 0, 0, 0, 0
    kinds = ("truncate", "corrupt", "delete", "empty")
    for _ in range(rounds):
        build = pipeline.load(settings).build_dir
        targets = [build / rel for rel in index_files(build)] + [settings.index_dir / ix.CURRENT]
        for target in targets:
            for how in kinds:
                backup = target.read_bytes()
                damage(target, how, rng)
                injected += 1
                try:
                    served = chunk_signature(pipeline.load(settings))
                    identical += served == good
                    mixed += served != good
                except ix.IndexError_:
                    refused += 1
                target.write_bytes(backup)
        # and one left in place for Coach to repair
        victim = rng.choice(targets)
        damage(victim, rng.choice(kinds), rng)
        injected += 1
        coach = Coach(settings, embedder=emb)
        not_repaired += chunk_signature(coach.index) != good or not coach.ask("客户生气").results
    return {
        "faults_injected": injected,
        "checked_by_loading": injected - rounds,
        "left_for_coach_to_repair": rounds,
        "refused_with_fix_message": refused,
        "loaded_identical_content": identical,
        "served_a_mix": mixed,
        "not_repaired": not_repaired,
    }


@section("SIGKILL during builds")
def kills(tmp: Path, n: int) -> dict:
    rounds = kill_build_rounds(make_settings(tmp), n=n, seed=8)
    served = [r.served for r in rounds]
    return {
        "kills": len(rounds),
        "served_old": served.count("old"),
        "served_new": served.count("new"),
        "served_a_mix_or_error": sum(s.startswith("error") for s in served),
        "not_repaired": sum(not r.repaired for r in rounds),
        "killed_before_first_build_done": sum(r.builds_completed == 0 for r in rounds),
        "max_delay_ms": round(max(r.delay_s for r in rounds) * 1000, 1),
    }


@section("queries during rebuilds")
def concurrency(tmp: Path, rebuilds: int) -> dict:
    from test_reliability_concurrency import run_queries_during_rebuilds

    f = run_queries_during_rebuilds(
        make_settings(tmp), threads=20, rebuilds=rebuilds, embedder=FakeEmbedder(delay_s=0.02), max_seconds=300
    )
    return {
        "threads": f["threads"],
        "rebuilds": f["rebuilds"],
        "queries": f["queries"],
        "errors": len(f["errors"]),
        "inconsistent_answers": len(f["inconsistent"]),
        "index_versions_answering": f["snapshots_answering"],
    }


@section("feedback bursts")
def feedback(tmp: Path) -> dict:
    from gradio_client import Client

    from test_reliability_concurrency import record_concurrent_clicks

    direct = record_concurrent_clicks(tmp / "direct.sqlite3", 50)
    s = start_app(tmp / "app")
    try:
        clients, lock = [], threading.Lock()

        def prepare(_):
            c = Client(s.url, verbose=False)
            for _ in range(100):
                try:
                    c.predict("客户破口大骂怎么办", "en", "original", api_name="/respond")
                    with lock:
                        clients.append(c)
                    return
                except Exception:  # noqa: BLE001
                    time.sleep(0.2)

        ts = [threading.Thread(target=prepare, args=(n,)) for n in range(50)]
        [t.start() for t in ts]
        [t.join(120) for t in ts]
        barrier, results = threading.Barrier(len(clients)), []

        def click(c):
            barrier.wait()
            try:
                results.append(c.predict(0, True, api_name="/mark"))
            except Exception as exc:  # noqa: BLE001
                results.append(f"refused: {exc}")

        ts = [threading.Thread(target=click, args=(c,)) for c in clients]
        [t.start() for t in ts]
        [t.join(120) for t in ts]
        stored = (
            sqlite3.connect(s.feedback_db).execute("SELECT COUNT(*) FROM events WHERE kind='feedback'").fetchone()[0]
        )
    finally:
        s.close()
    acknowledged = results.count("stored")
    return {
        "direct_clicks": 50,
        "direct_rows": direct,
        "http_clicks": len(clients),
        "http_acknowledged": acknowledged,
        "http_refused_busy": sum(r.startswith("refused") for r in results),
        "http_rows": stored,
        "acknowledged_but_lost": max(0, acknowledged - stored),
    }


@section("feedback store faults")
def store_faults(tmp: Path) -> dict:
    from store_fault_support import store_fault_rounds

    return store_fault_rounds(tmp)


@section("hostile questions (HTTP)")
def hostile_http(tmp: Path) -> dict:
    from gradio_client import Client

    from test_reliability_web import _json, call_raw

    s = start_app(tmp)
    proc = psutil.Process()
    failures, n = [], 0
    try:
        client = Client(s.url, verbose=False)
        worst, rss = 0.0, []
        for _pass in range(2):  # memory is compared between the end of pass 1 and the end of pass 2
            for name, q in hostile_questions().items():
                try:
                    q.encode("utf-8")
                    sendable = len(q) < 100_000
                except UnicodeEncodeError:
                    sendable = False
                n += 1
                t0 = time.perf_counter()
                status, kind = call_raw(s.port, _json(q))
                worst = max(worst, time.perf_counter() - t0)
                if status not in (200, 400, 413, 422) or "Traceback" in kind:
                    failures.append(f"raw {name}: {status} {kind[:80]}")
                if sendable:
                    n += 1
                    try:
                        client.predict(q, "en", "original", api_name="/respond")
                    except Exception as exc:  # noqa: BLE001
                        failures.append(f"client {name}: {exc!r}"[:200])
                if call_raw(s.port, _json("客户破口大骂怎么办")) != (200, "complete"):
                    failures.append(f"after {name}: next request failed")
            gc.collect()
            rss.append(proc.memory_info().rss)
        for raw in (b'{"data": ["\xff\xfe bad", "en", "original"]}', b"\x00\x01 not json", b'{"data": []}'):
            n += 1
            status, kind = call_raw(s.port, raw)
            if status not in (200, 400, 413, 422) or "Traceback" in kind:
                failures.append(f"raw body: {status}")
        growth = (rss[1] - rss[0]) / 2**20
    finally:
        s.close()
    return {
        "requests": n,
        "failures": len(failures),
        "failure_samples": failures[:5],
        "worst_ms": round(worst * 1000, 1),
        "server_rss_growth_mib_pass2": round(growth, 1),
    }


@section("load on loopback")
def load(tmp: Path, seconds: float, clients: int, flood_clients: int, model: str) -> dict:
    """The app runs in its own process (the load generator here does not share its GIL); RSS is the server's."""
    from coach import ui
    from reliability_support import ServerProcess

    s = ServerProcess(tmp, delay_s=0.05 if model == "fake" else 0.0, model=model)
    server = psutil.Process(s.pid)
    try:
        warm = run_load(s.url, clients=2, seconds=5)
        rss0 = server.memory_info().rss
        steady = run_load(s.url, clients=clients, seconds=seconds)
        rss1 = server.memory_info().rss
        flood = run_load(s.url, clients=flood_clients, seconds=max(10.0, seconds / 3))
        time.sleep(2)
        after = run_load(s.url, clients=2, seconds=10)
        rss2 = server.memory_info().rss
    finally:
        s.close()
    strip = lambda d: {k: v for k, v in d.items() if not k.endswith("samples")}  # noqa: E731
    return {
        "model": model,
        "queue_max_size": ui.QUEUE_MAX_SIZE,
        "concurrency": ui.CONCURRENCY,
        "steady": strip(steady),
        "flood": strip(flood),
        "after": strip(after),
        "server_rss_mib": {
            "before": round(rss0 / 2**20),
            "after_steady": round(rss1 / 2**20),
            "after_flood_and_recovery": round(rss2 / 2**20),
        },
        "busy_message": (flood["busy_samples"] or [""])[0],
        "error_samples": warm["error_samples"]
        + steady["error_samples"]
        + flood["error_samples"]
        + after["error_samples"],
    }


# ---------------------------------------------------------------- issue 19: web guards, exports, corpus entries, metadata


@section("web surface guards")
def web_guards(tmp: Path, guesses: int) -> dict:
    """Host names, security headers, cookies, throttled logins and bad API calls against the app on loopback (with
    the admin login on and COACH_ALLOWED_HOSTS set)."""
    from test_reliability_websec import BAD_CALLS, PASSWORD, login, request

    env = {
        "COACH_ENABLE_UPLOAD": "1",
        "COACH_ADMIN_USER": "admin",
        "COACH_ADMIN_PASSWORD": PASSWORD,
        "COACH_ALLOWED_HOSTS": "coach.training.example",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s = start_app(tmp, upload_enabled=None)
    try:
        port = s.port
        foreign = [
            "evil.example",
            f"evil.example:{port}",
            f"127.0.0.1.evil.example:{port}",
            "attacker.test",
            "0.0.0.0",
            "10.0.0.5:7860",
            "localhost.evil.example",
            "[::2]:7860",
            "",
        ]
        own = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "coach.training.example"]
        foreign_served = sum(request(port, "GET", "/", headers={"Host": h})[0] != 400 for h in foreign)
        own_refused = sum(request(port, "GET", "/", headers={"Host": h})[0] != 200 for h in own)
        paths = [
            ("GET", "/"),
            ("GET", "/config"),
            ("GET", "/gradio_api/info"),
            ("GET", "/no-such-page"),
            ("GET", "/gradio_api/file=/etc/passwd"),
            ("POST", "/trainer/login"),
            ("GET", "/theme.css"),
        ]
        missing = []
        for method, path in paths:
            h = dict(request(port, method, path)[1])
            missing += [
                f"{path}: {k}"
                for k in ("x-frame-options", "x-content-type-options", "content-security-policy")
                if k not in h
            ]
        status, headers, _ = login(port)
        cookies = [v for k, v in headers if k == "set-cookie"]
        t0 = time.perf_counter()
        statuses = [login(port, f"guess-{n}")[0] for n in range(guesses)]
        guess_s = time.perf_counter() - t0
        right_at_once = login(port)[0]
        bad = [
            request(port, m, path, json.dumps(body).encode(), {"Content-Type": "application/json"})[0]
            for m, path, body in BAD_CALLS
        ]
    finally:
        s.close()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {
        "foreign_hosts": len(foreign),
        "foreign_hosts_served": foreign_served,
        "own_hosts": len(own),
        "own_hosts_refused": own_refused,
        "responses_checked_for_headers": len(paths),
        "security_headers_missing": missing,
        "login_ok": status == 200,
        "cookies": len(cookies),
        "cookies_samesite_none": sum("samesite=none" in c.lower() for c in cookies),
        "cookies_without_lax": sum("samesite=lax" not in c.lower() for c in cookies),
        "wrong_passwords": guesses,
        "wrong_passwords_checked": statuses.count(400),
        "wrong_passwords_refused_429": statuses.count(429),
        "wrong_passwords_seconds": round(guess_s, 1),
        "right_password_at_once": right_at_once,
        "bad_api_calls": len(bad),
        "bad_api_calls_4xx": sum(400 <= b < 500 for b in bad),
        "bad_api_calls_500": sum(b >= 500 for b in bad),
    }


@section("CSV exports")
def csv_exports(tmp: Path) -> dict:
    """Hostile questions (formulas) stored as content gaps, exported as the trainer's CSV, read back."""
    import csv

    from coach import ui
    from coach.export import FORMULA_STARTS
    from coach.feedback import FeedbackStore
    from coach.retrieve import Coach
    from test_export import HARMLESS, HOSTILE

    settings = make_settings(tmp)
    store = FeedbackStore(tmp / "fb.sqlite3")
    app = ui.CoachApp(
        ui.CoachHolder(coach=Coach(settings, embedder=FakeEmbedder())),
        store,
        settings,
        upload_dir=tmp / "uploads",
        live_dir=tmp / "live",
    )
    questions = HOSTILE + [c + q for c in FORMULA_STARTS for q in ("1+1", "客户", "cmd|' /C calc'!A0")] + HARMLESS
    for q in questions:
        store.record_question(q, lang="zh", out_of_domain=True)
    rows = list(csv.reader(io.StringIO(app.export_gaps(tmp).read_bytes().decode("utf-8"), newline="")))[1:]
    cells = [c for row in rows for c in row]
    return {
        "questions_exported": len(rows),
        "formula_questions": sum(q.startswith(FORMULA_STARTS) for q in questions),
        "cells_starting_a_formula": sum(c.startswith(FORMULA_STARTS) for c in cells),
        "harmless_questions_changed": sum(q not in {r[0] for r in rows} for q in HARMLESS if q),
    }


@section("corpus entries and metadata")
def corpus_entries(tmp: Path) -> dict:
    """Links leading outside corpus/, dangling links, a link loop, a FIFO, a folder named like an essay, BOM-less
    Chinese UTF-16; then every malformed metadata case of the tests, through `coach corpus`, and `coach ask` with
    an intact index while the metadata is broken."""
    import coach.embed
    from coach import cli
    from coach.corpus import load_corpus
    from test_reliability_metadata import BROKEN_METADATA, ERRATA_CASES, ESSAY_CASES

    settings = make_settings(tmp / "entries")
    c = settings.corpus_dir
    outside = tmp / "elsewhere" / "secret.txt"
    outside.parent.mkdir(parents=True)
    outside.write_text("SECRET-TITLE\n这一行来自语料库之外。\n", "utf-8")
    (c / "link-outside.txt").symlink_to(outside)
    (c / "link-outside-relative.md").symlink_to(Path("..") / ".." / "elsewhere" / "secret.txt")
    (c / "link-dangling.txt").symlink_to(tmp / "missing.txt")
    (c / "link-loop.txt").symlink_to(c / "link-loop.txt")
    os.mkfifo(c / "fifo.txt")
    (c / "folder.md").mkdir()
    refused = [
        "link-outside.txt",
        "link-outside-relative.md",
        "link-dangling.txt",
        "link-loop.txt",
        "fifo.txt",
        "folder.md",
    ]
    utf16 = {
        "zh-le.txt": ("客户生气怎么办\n我先道歉,然后认真听客户说明情况。", "utf-16-le"),
        "zh-hant-be.txt": ("客戶生氣怎麼辦\n我先道歉,然後認真聽客戶說明情況。", "utf-16-be"),
    }
    for name, (text, enc) in utf16.items():
        (c / name).write_bytes(text.encode(enc))
    loaded = load_corpus(c)
    sources = {e.path.name for e in loaded.essays}
    named = sum(sum(n in w for w in loaded.warnings) == 1 for n in refused)

    lines, one_line_named, tracebacks, cases = 0, 0, 0, 0
    for file, toml_cases in (("essays.toml", ESSAY_CASES), ("errata.toml", ERRATA_CASES)):
        for toml, words in toml_cases:
            cases += 1
            m = make_settings(tmp / f"meta-{cases}")
            (m.corpus_dir / file).write_text(toml, "utf-8")
            err = io.StringIO()
            with redirect_stdout(io.StringIO()), redirect_stderr(err):
                try:
                    code = cli.main(["--corpus", str(m.corpus_dir), "--index", str(m.index_dir), "corpus"])
                except Exception:  # noqa: BLE001 - what the old code did: a raw traceback
                    code, tracebacks = -1, tracebacks + 1
            out = err.getvalue().splitlines()
            lines += len(out)
            one_line_named += code == 1 and any(file in line and all(w in line for w in words) for line in out)
    real = coach.embed.Embedder
    coach.embed.Embedder = lambda *a, **k: FakeEmbedder()
    served, not_served = 0, []
    try:
        for n, (file, content) in enumerate(BROKEN_METADATA):
            m = make_settings(tmp / f"ask-{n}")
            base = ["--corpus", str(m.corpus_dir), "--index", str(m.index_dir), "--model", "fake"]
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                cli.main(base + ["build"])
            (m.corpus_dir / file).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = cli.main(base + ["ask", "--json", "客户破口大骂怎么办"])
            ok = code == 0 and "破口大骂" in out.getvalue() and file in err.getvalue()
            served += ok
            if not ok:
                not_served.append(file)
    finally:
        coach.embed.Embedder = real
    return {
        "entries": len(refused),
        "refused_with_named_warning": named,
        "refused_silently": len(refused) - named,
        "indexed_from_outside": int("SECRET" in " ".join(e.text + e.meta.title for e in loaded.essays)),
        "utf16_without_bom": len(utf16),
        "utf16_without_bom_loaded": len(set(utf16) & sources),
        "good_essays_dropped": len(set(ESSAYS_A) - sources),
        "malformed_metadata_cases": cases,
        "named_file_entry_and_field": one_line_named,
        "error_lines": lines,
        "tracebacks": tracebacks,
        "broken_metadata_with_intact_index": len(BROKEN_METADATA),
        "ask_served_with_warning": served,
        "ask_failed": not_served,
    }


# ---------------------------------------------------------------- report


def _store_fault_rows(sf: dict | None) -> list[str]:
    """Table rows for the feedback-store faults (absent from figures recorded before the section existed)."""
    if not sf:
        return []
    rows = []
    for name, v in sf.items():
        if name == "totals" or not isinstance(v, dict):
            continue
        if "skipped" in v:
            rows.append(f"| Feedback store: {name} | skipped | {v['skipped']} |")
        elif name == "read-only at start":
            rows.append(
                f"| Feedback store: {name} | the app started on a `chattr +i` file | started, marks off: "
                f"{'yes' if v['marks_off'] else 'NO'}, {v['answered']} of {v['questions']} questions answered |"
            )
        else:
            rows.append(
                f"| Feedback store: {name} | {v['questions']} questions and {v['marks']} marks during the "
                f"fault | {v['answered']} answered, {v['acknowledged']} marks stored, {v['refused']} refused "
                f"with the reason, {v['acknowledged_but_lost']} acknowledged but lost; recovered without a "
                f"restart: {'yes' if v['recovered_without_restart'] else 'NO'} |"
            )
    return rows


def write_report(path: Path, run_line: str) -> None:
    F = FIGURES
    hp, hc, hh = F["hostile questions (Python API)"], F["hostile questions (CLI)"], F["hostile questions (HTTP)"]
    co, fa, ki = F["hostile corpus files"], F["index faults"], F["SIGKILL during builds"]
    cc, fb, ld = F["queries during rebuilds"], F["feedback bursts"], F["load on loopback"]
    inputs = hp["inputs"] + hc["inputs"] + hh["requests"]
    input_failures = hp["failures"] + hc["failures"] + hh["failures"]
    faults = fa["faults_injected"] + ki["kills"]
    lost = (
        fb["acknowledged_but_lost"]
        + (fb["direct_clicks"] - fb["direct_rows"])
        + fa["served_a_mix"]
        + ki["served_a_mix_or_error"]
        + co["good_essays_dropped"]
    )
    st, fl, af = ld["steady"], ld["flood"], ld["after"]
    summary = (
        f"{inputs} hostile inputs tried ({input_failures} failures); {faults} faults injected "
        f"({fa['faults_injected']} index-file faults, {ki['kills']} SIGKILLed builds; "
        f"{fa['served_a_mix'] + ki['served_a_mix_or_error']} mixed or broken indexes served, "
        f"{fa['not_repaired'] + ki['not_repaired']} not repaired); load held: {st['clients']} clients for "
        f"{st['seconds']} s at {st['throughput_per_s']}/s, p50 {st['p50_ms']} ms, p95 {st['p95_ms']} ms, "
        f"{st['errors']} errors; {fl['clients']} clients: {fl['busy']} clean busy answers, {fl['errors']} "
        f"errors; data lost: {'none' if lost == 0 else lost} (no acknowledged feedback, essay or index lost; "
        f"{fb['http_refused_busy']} of {fb['http_clicks']} simultaneous HTTP feedback clicks refused as busy)."
    )
    summary += issue19_summary(F)
    FIGURES["summary"] = summary
    lines = [
        "# Reliability",
        "",
        "Coach is left running in training rooms and on team machines, fed essays of unknown origin and questions",
        "pasted from anywhere. It must keep answering, never corrupt its index or lose feedback, and never let text",
        "run as code. This page is **generated** by `scripts/reliability.py` (do not edit the figures by hand); the",
        "same checks run in CI, reduced and bounded, as `tests/test_reliability_*.py`.",
        "",
        "## Latest figures",
        "",
        run_line,
        "",
        f"**Summary:** {summary}",
        "",
        "| Area | What was done | Result |",
        "|---|---|---|",
        f"| Hostile questions, Python API | {hp['named_hostile']} named hostile inputs (empty, whitespace, 1 MB, "
        f"10 MB, NUL/control characters, lone surrogates, bidi overrides, zero-width, emoji, mixed scripts, HTML/JS, "
        f"...) + {hp['random_fuzz']} random strings over 11 Unicode ranges, random top_k | {hp['failures']} failures;"
        f" worst answer {hp['worst_ms']} ms; RSS growth {hp['rss_growth_mib']} MiB |",
        f"| Hostile questions, CLI | {hc['inputs']} `coach ask` runs (JSON and text), each followed by a normal "
        f"question | {hc['failures']} failures |",
        f"| Hostile questions, HTTP | {hh['requests']} requests: raw JSON (incl. lone-surrogate escapes, invalid "
        f"UTF-8, 10 MB bodies, non-JSON) and gradio_client; after each, a normal question | {hh['failures']} "
        f"failures; worst {hh['worst_ms']} ms; server RSS growth over a second full pass {hh['server_rss_growth_mib_pass2']} MiB |",
        f"| Hostile corpus files | {co['hostile_files']} hostile files beside {len(ESSAYS_A)} good essays: GBK, "
        f"Big5, UTF-16 (BOM/no BOM), UTF-8 BOM, PNG/ELF/random bytes, empty, blank, NULs, 2.4 MB, HTML with "
        f"script/iframe/SVG/onerror payloads, a duplicate | {co['loaded']} essays indexed, "
        f"{co['skipped_with_named_warning']} skipped each with a warning naming the file, "
        f"{co['skipped_without_name']} skipped silently, {co['good_essays_dropped']} good essays dropped |",
        f"| Index faults | {fa['faults_injected']} faults: every build file, the manifest and CURRENT truncated, "
        f"bit-flipped, deleted or emptied, then loaded; {fa['left_for_coach_to_repair']} left in place for Coach | "
        f"of {fa['checked_by_loading']} loaded: {fa['refused_with_fix_message']} refused with the fix named, "
        f"{fa['loaded_identical_content']} harmless (identical content), {fa['served_a_mix']} mixed; "
        f"{fa['not_repaired']} of {fa['left_for_coach_to_repair']} not repaired |",
        f"| SIGKILL during builds | {ki['kills']} builds killed at random moments (0-{ki['max_delay_ms']} ms after "
        f"start, spanning several builds) | old index served {ki['served_old']}, new {ki['served_new']}, "
        f"mixed/broken {ki['served_a_mix_or_error']}; not repaired {ki['not_repaired']} |",
        f"| Queries during rebuilds | {cc['threads']} threads querying while the index was rebuilt "
        f"{cc['rebuilds']} times (corpus alternating) | {cc['queries']} answers, {cc['errors']} errors, "
        f"{cc['inconsistent_answers']} inconsistent with the index they came from; {cc['index_versions_answering']}"
        f" index versions answered |",
        f"| Feedback bursts | {fb['direct_clicks']} simultaneous marks on the store; {fb['http_clicks']} "
        f"simultaneous thumbs over HTTP | store: {fb['direct_rows']} rows; HTTP: {fb['http_acknowledged']} "
        f"acknowledged, {fb['http_refused_busy']} refused as busy, {fb['http_rows']} rows, "
        f"{fb['acknowledged_but_lost']} acknowledged but lost |",
        *_store_fault_rows(F.get("feedback store faults")),
        f"| Load, steady ({ld['model']} model) | {st['clients']} gradio_client users for {st['seconds']} s | "
        f"{st['answered']} answers, {st['throughput_per_s']}/s, p50 {st['p50_ms']} ms, p95 {st['p95_ms']} ms, "
        f"{st['errors']} errors; server RSS {ld['server_rss_mib']['before']} -> "
        f"{ld['server_rss_mib']['after_steady']} MiB |",
        f"| Load, beyond the queue (max {ld['queue_max_size']} waiting, {ld['concurrency']} at once) | "
        f"{fl['clients']} users for {fl['seconds']} s | {fl['answered']} answers, {fl['busy']} clean busy answers "
        f'("{ld["busy_message"]}"), {fl["errors"]} errors, p95 {fl["p95_ms"]} ms |',
        f"| Recovery | 2 users for {af['seconds']} s right after | {af['answered']} answers, {af['busy']} busy, "
        f"{af['errors']} errors, p95 {af['p95_ms']} ms; server RSS {ld['server_rss_mib']['after_flood_and_recovery']} "
        f"MiB |",
        *issue19_rows(F),
        "",
        "## What each check proves",
        "",
        "- **Hostile questions** (`tests/test_reliability_inputs.py`, `scripts/reliability.py`): every input gets an",
        "  answer or a clear empty answer, with bounded work (the tests check that no text longer than twice",
        "  MAX_QUERY_CHARS reaches the model or jieba, whatever the input's size), with at most k results that all",
        "  exist in the index; the cleaned query never keeps NUL, control, bidi, zero-width or lone-surrogate",
        "  characters; the next question still works; memory stays steady. A Hypothesis property test covers",
        "  arbitrary text (surrogates included). The CLI survives undecodable stdin bytes, lone surrogates in argv and",
        "  a stdout that cannot encode Chinese, and refuses a call with nothing to search (exit 2) before loading.",
        "- **Over HTTP** (`tests/test_reliability_web.py`): the same through gradio_client and through raw HTTP",
        "  (what gradio_client cannot send: lone-surrogate escapes, invalid UTF-8, non-JSON, 10 MB bodies); errors",
        "  carry no tracebacks; cards come back HTML-escaped.",
        "- **Hostile corpus files** (`tests/test_reliability_corpus.py`): each file is indexed or skipped with a",
        "  warning naming it; every good essay is still indexed; script/iframe/SVG/event-handler payloads never reach",
        "  the indexed text; a file vanishing mid-build is named and the rest is built.",
        "- **Index faults** (`tests/test_reliability_faults.py`): any damage to a build file is refused with a",
        "  message naming `coach build` (manifest hashes), harmless manifest/CURRENT byte flips may load but only",
        "  with identical content, and `Coach` rebuilds itself. `CURRENT` cannot point outside `index/builds/`",
        "  (`..`, absolute paths, NUL, invalid UTF-8, symlinked build folders) and no manifest entry or symlink can",
        "  make FAISS read a file outside the build folder.",
        "- **SIGKILL**: a build process looping over builds is killed at random moments; afterwards the verified",
        "  index is exactly the old corpus version or exactly the new one, never a mix, and `Coach` repairs itself.",
        "- **Concurrency**: every answer's passages belong to one index snapshot and equal that snapshot's own answer;",
        "  simultaneous feedback marks are all stored.",
        "- **Web surface**: `/gradio_api/file=` refuses `/etc/passwd`, `../` paths (plain and percent-encoded), the",
        "  index files, the SQLite database and source files; foreign-origin browsers cannot add essays or rebuild",
        "  (no CORS grant, SameSite=lax login cookie, form content types refused, uploads need the login);",
        "  `app.py` launches on 127.0.0.1 without share, error details, monitoring or MCP, with a bounded queue.",
        "- **Feedback store faults** (`tests/test_feedback_faults.py`): the SQLite file deleted, made read-only",
        "  (`chattr +i`, also before start), locked by another program, damaged, or the disk full: questions are",
        "  answered, each mark is refused with the reason and counted, none is acknowledged and lost, and marks work",
        "  again without a restart once the file is back. No WAL, so no memory-mapped file can SIGBUS the process.",
        '- **Load**: beyond the queue limit clients get Gradio\'s clean "Queue is full" answer, never an error,',
        "  and the app answers normally as soon as the flood stops.",
        "- **Web guards** (`tests/test_websec.py`, `tests/test_reliability_websec.py`, `tests/test_browser_websec.py`;",
        "  coach/websec.py): a `Host` that is not a loopback name or in `COACH_ALLOWED_HOSTS` gets 400 (DNS rebinding);",
        "  every response carries X-Frame-Options, a CSP with frame-ancestors, and nosniff, and the page still works",
        "  under them in Chromium with no CSP violation; every cookie is SameSite=Lax; after 3 login attempts from one",
        "  address each further one waits 1, 2, 4 ... 60 s (429 with Retry-After, password unchecked); an unknown",
        "  fn_index, api_name or component answers 404 and unfitting data 400, with a message, never 500.",
        "- **Exports** (`tests/test_export.py`): CSV cells starting with `=`, `+`, `-`, `@`, tab or CR get a",
        "  leading apostrophe (OWASP CSV injection), so a spreadsheet shows them as text.",
        "- **Corpus entries and metadata** (`tests/test_reliability_metadata.py`): links leading outside `corpus/`,",
        "  dangling links, link loops, FIFOs and folders are skipped with a warning naming them (a FIFO never blocks",
        "  the build); BOM-less Chinese UTF-16 is read; every malformed essays/errata/situations entry is one line",
        "  naming the file, the entry and the field, never a traceback, and `coach ask` keeps serving the intact",
        "  index (exit 0, warning on stderr) until the metadata is fixed.",
        "",
        "## Known gaps",
        "",
        "- Feedback marks sent through the HTTP API (`/mark`, what gradio_client uses) pass through Gradio's queue;",
        "  its bound is lifted for the feedback group (coach/ui/server.py `_FeedbackExemptMixin`), which relies on the",
        "  `push`/`max_size` internals of Gradio's queue: tests/test_reliability_web.py fails if an upgrade breaks it.",
        "- Requests carrying neither `Origin` nor `Referer` (curl, gradio_client) cannot be told apart by origin; adding",
        "  essays and rebuilding still need the admin login.",
        "- coach/websec.py sits inside Gradio's CORS and compression layers (it is installed through `app_kwargs`):",
        "  a CORS preflight with a foreign `Host` is answered there, carrying no data. Gradio's page needs",
        "  `'unsafe-inline'` and `'unsafe-eval'` scripts, so the CSP restricts where the page loads from and sends to,",
        "  not inline script. Logins are throttled per client address: behind a reverse proxy every client shares",
        "  the proxy's address (and its wait).",
        "",
        "## Raw figures",
        "",
        "```json",
        json.dumps(FIGURES, ensure_ascii=False, indent=1),
        "```",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def issue19_rows(F: dict) -> list[str]:
    """Table rows of the issue-19 sections that were run (a report from an older run has none)."""
    rows = []
    if "web surface guards" in F:
        w = F["web surface guards"]
        rows.append(
            f"| Web guards | {w['foreign_hosts']} foreign `Host` names, {w['own_hosts']} own (loopback + "
            f"COACH_ALLOWED_HOSTS); headers on {w['responses_checked_for_headers']} kinds of response; login cookies; "
            f"{w['wrong_passwords']} wrong passwords in a row, then the right one; {w['bad_api_calls']} bad API calls "
            f"(unknown fn_index / api_name / component, wrong types) | foreign served {w['foreign_hosts_served']}, "
            f"own refused {w['own_hosts_refused']}; headers missing {len(w['security_headers_missing'])}; "
            f"{w['cookies']} cookies, {w['cookies_samesite_none']} SameSite=None; {w['wrong_passwords_checked']} "
            f"passwords checked, {w['wrong_passwords_refused_429']} refused (429) in {w['wrong_passwords_seconds']} s, "
            f"the right one at once: {w['right_password_at_once']}; bad calls: {w['bad_api_calls_4xx']} 4xx, "
            f"{w['bad_api_calls_500']} 500 |"
        )
    if "CSV exports" in F:
        x = F["CSV exports"]
        rows.append(
            f"| CSV exports | {x['questions_exported']} stored questions exported as content gaps, "
            f"{x['formula_questions']} of them starting with `=`, `+`, `-`, `@`, tab or CR | "
            f"{x['cells_starting_a_formula']} cells start a formula; {x['harmless_questions_changed']} harmless "
            f"questions changed |"
        )
    if "corpus entries and metadata" in F:
        e = F["corpus entries and metadata"]
        rows.append(
            f"| Corpus entries and metadata | {e['entries']} entries (links outside the folder, dangling, a loop, "
            f"a FIFO, a folder), {e['utf16_without_bom']} BOM-less Chinese UTF-16 files; "
            f"{e['malformed_metadata_cases']} malformed essays/errata entries through `coach corpus`; "
            f"{e['broken_metadata_with_intact_index']} broken metadata files under an intact index, then `coach ask` "
            f"| {e['refused_with_named_warning']} refused with a warning naming them, {e['refused_silently']} "
            f"silently, {e['indexed_from_outside']} read from outside; {e['utf16_without_bom_loaded']} UTF-16 loaded; "
            f"{e['named_file_entry_and_field']} of {e['malformed_metadata_cases']} answered by a line naming file, "
            f"entry and field, {e['tracebacks']} tracebacks; `coach ask` served {e['ask_served_with_warning']} of "
            f"{e['broken_metadata_with_intact_index']} with a warning |"
        )
    return rows


def issue19_summary(F: dict) -> str:
    if not {"web surface guards", "CSV exports", "corpus entries and metadata"} <= F.keys():
        return ""
    w, x, e = F["web surface guards"], F["CSV exports"], F["corpus entries and metadata"]
    return (
        f" Web guards: {w['foreign_hosts_served']} of {w['foreign_hosts']} foreign Host names served, "
        f"{w['wrong_passwords_checked']} of {w['wrong_passwords']} rapid wrong passwords checked, "
        f"{w['bad_api_calls_500']} of {w['bad_api_calls']} bad API calls answered 500; CSV: "
        f"{x['cells_starting_a_formula']} formula cells; corpus: {e['refused_silently']} hostile entries skipped "
        f"silently, {e['tracebacks']} metadata tracebacks, `coach ask` served "
        f"{e['ask_served_with_warning']}/{e['broken_metadata_with_intact_index']} with broken metadata."
    )


ISSUE19 = ("web surface guards", "CSV exports", "corpus entries and metadata")


def run_issue19(tmp: Path, args, names=ISSUE19) -> None:
    if "web surface guards" in names:
        web_guards(tmp / "web-guards", args.guesses)
    if "CSV exports" in names:
        csv_exports(tmp / "csv")
    if "corpus entries and metadata" in names:
        corpus_entries(tmp / "entries")


def run_only(args) -> int:
    """Run the named sections and rewrite --out with them, keeping the other sections' figures and run line."""
    names = {n.strip() for n in args.only.split(",") if n.strip()}
    names = (names - {"issue19"}) | (set(ISSUE19) if "issue19" in names else set())
    unknown = names - set(ISSUE19)
    if unknown:
        print(f"--only runs the sections {', '.join(ISSUE19)} (or 'issue19'); not {', '.join(sorted(unknown))}")
        return 2
    old = args.out.read_text(encoding="utf-8")
    FIGURES.update(json.loads(old.split("```json\n", 1)[1].split("\n```", 1)[0]))
    FIGURES.pop("summary", None)
    run_line = next(line for line in old.splitlines() if line.startswith("_Run "))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coach-reliability-") as d:
        run_issue19(Path(d), args, names)
    run_line = run_line.split(" Re-run ")[0].rstrip("_") + (
        f" Re-run {time.strftime('%Y-%m-%d %H:%M %Z')} ({time.perf_counter() - t0:.0f} s): "
        f"{', '.join(sorted(names))}, with `{' '.join(['scripts/reliability.py'] + sys.argv[1:])}`._"
    )
    write_report(args.out, run_line)
    print(f"\n{FIGURES['summary']}\nwritten: {args.out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts (smoke test, ~2 minutes)")
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--fuzz", type=int, default=3000, help="random strings through the Python API")
    p.add_argument("--fault-rounds", type=int, default=3)
    p.add_argument("--rebuilds", type=int, default=20)
    p.add_argument("--load-seconds", type=float, default=60)
    p.add_argument("--load-clients", type=int, default=8)
    p.add_argument("--flood-clients", type=int, default=80)
    p.add_argument(
        "--load-model",
        choices=["fake", "real"],
        default="real",
        help="fake: hashing embedder (+50 ms) measures the web stack; real: the bundled e5 model "
        "on the project's corpus (the documented run)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--guesses", type=int, default=300, help="wrong passwords sent in a row (login throttle)")
    p.add_argument(
        "--only",
        metavar="S1,S2",
        help="run only these sections (names as in the raw figures, or 'issue19' "
        "for the web guards, CSV exports and corpus entries, or 'store-faults' alone for the feedback store faults); the "
        "other figures are kept from --out",
    )
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="run nothing: regenerate --out from the raw figures recorded in it (after a template change)",
    )
    args = p.parse_args(argv)
    if args.only and args.only != "store-faults":
        return run_only(args)
    if args.rewrite or args.only:
        old = args.out.read_text(encoding="utf-8")
        FIGURES.update(json.loads(old.split("```json\n", 1)[1].split("\n```", 1)[0]))
        FIGURES.pop("summary", None)
        run_line = next(line for line in old.splitlines() if line.startswith("_Run "))
        if args.only:
            with tempfile.TemporaryDirectory(prefix="coach-reliability-") as d:
                store_faults(Path(d))
            run_line = run_line.split(" The feedback store faults:")[0].rstrip("_") + (
                f" The feedback store faults: {time.strftime('%Y-%m-%d %H:%M %Z')}, "
                f"`scripts/reliability.py --only {args.only}`._"
            )
        write_report(args.out, run_line)
        print(FIGURES["summary"])
        return 0
    if args.quick:
        args.kills, args.fuzz, args.fault_rounds, args.rebuilds = 10, 300, 1, 4
        args.load_seconds, args.flood_clients = 10, 60
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coach-reliability-") as d:
        tmp = Path(d)
        hostile_python(tmp / "py", args.fuzz)
        hostile_cli(tmp / "cli")
        hostile_http(tmp / "http")
        hostile_corpus(tmp / "corpus")
        index_faults(tmp / "faults", args.fault_rounds)
        kills(tmp / "kills", args.kills)
        concurrency(tmp / "conc", args.rebuilds)
        feedback(tmp / "fb")
        store_faults(tmp / "store")
        load(tmp / "load", args.load_seconds, args.load_clients, args.flood_clients, args.load_model)
        run_issue19(tmp, args)
    total = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_line = (
        f"_Run {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.machine()} / {os.cpu_count()} cores / "
        f"Python {platform.python_version()}, {total:.0f} s in all. Command: "
        f"`{' '.join(['scripts/reliability.py'] + sys.argv[1:])}`._"
    )
    write_report(args.out, run_line)
    print(f"\n{FIGURES['summary']}\nwritten: {args.out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
