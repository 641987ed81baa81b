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

from reliability_support import (ESSAYS_A, FakeEmbedder, chunk_signature, damage, hostile_questions,  # noqa: E402
                                 index_files, kill_build_rounds, make_settings, run_load, start_app)

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
    pools = [(0x20, 0x7E), (0x00, 0x1F), (0x4E00, 0x9FFF), (0xD800, 0xDFFF), (0x200B, 0x206F), (0x1F300, 0x1FAFF),
             (0x0600, 0x06FF), (0x0300, 0x036F), (0xE000, 0xF8FF), (0xFFF0, 0xFFFF), (0x10000, 0x10FFFF)]
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
    return {"inputs": len(inputs), "named_hostile": len(hostile_questions()), "random_fuzz": fuzz,
            "failures": len(failures), "failure_samples": failures[:5], "worst_ms": round(worst * 1000, 1),
            "rss_growth_mib": round((proc.memory_info().rss - rss0) / 2 ** 20, 1)}


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
                if code != 0 or (json_flag and len(json.loads(out.getvalue())[1]["results"]) == 0):
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
    return {"files": len(files) + len(ESSAYS_A), "hostile_files": len(files), "loaded": len(built.essays),
            "skipped_with_named_warning": len(skipped) - len(unnamed), "skipped_without_name": len(unnamed),
            "good_essays_dropped": len(dropped), "dropped": dropped, "warnings": built.warnings}


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
    return {"faults_injected": injected, "checked_by_loading": injected - rounds, "left_for_coach_to_repair": rounds,
            "refused_with_fix_message": refused,
            "loaded_identical_content": identical, "served_a_mix": mixed, "not_repaired": not_repaired}


@section("SIGKILL during builds")
def kills(tmp: Path, n: int) -> dict:
    rounds = kill_build_rounds(make_settings(tmp), n=n, seed=8)
    served = [r.served for r in rounds]
    return {"kills": len(rounds), "served_old": served.count("old"), "served_new": served.count("new"),
            "served_a_mix_or_error": sum(s.startswith("error") for s in served),
            "not_repaired": sum(not r.repaired for r in rounds),
            "killed_before_first_build_done": sum(r.builds_completed == 0 for r in rounds),
            "max_delay_ms": round(max(r.delay_s for r in rounds) * 1000, 1)}


@section("queries during rebuilds")
def concurrency(tmp: Path, rebuilds: int) -> dict:
    from test_reliability_concurrency import run_queries_during_rebuilds

    f = run_queries_during_rebuilds(make_settings(tmp), threads=20, rebuilds=rebuilds,
                                    embedder=FakeEmbedder(delay_s=0.02), max_seconds=300)
    return {"threads": f["threads"], "rebuilds": f["rebuilds"], "queries": f["queries"], "errors": len(f["errors"]),
            "inconsistent_answers": len(f["inconsistent"]), "index_versions_answering": f["snapshots_answering"]}


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
        stored = sqlite3.connect(s.feedback_db).execute(
            "SELECT COUNT(*) FROM events WHERE kind='feedback'").fetchone()[0]
    finally:
        s.close()
    acknowledged = results.count("stored")
    return {"direct_clicks": 50, "direct_rows": direct, "http_clicks": len(clients), "http_acknowledged": acknowledged,
            "http_refused_busy": sum(r.startswith("refused") for r in results), "http_rows": stored,
            "acknowledged_but_lost": max(0, acknowledged - stored)}


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
        for _pass in range(2):   # memory is compared between the end of pass 1 and the end of pass 2
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
        growth = (rss[1] - rss[0]) / 2 ** 20
    finally:
        s.close()
    return {"requests": n, "failures": len(failures), "failure_samples": failures[:5],
            "worst_ms": round(worst * 1000, 1), "server_rss_growth_mib_pass2": round(growth, 1)}


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
    return {"model": model, "queue_max_size": ui.QUEUE_MAX_SIZE, "concurrency": ui.CONCURRENCY,
            "steady": strip(steady), "flood": strip(flood), "after": strip(after),
            "server_rss_mib": {"before": round(rss0 / 2 ** 20), "after_steady": round(rss1 / 2 ** 20),
                               "after_flood_and_recovery": round(rss2 / 2 ** 20)},
            "busy_message": (flood["busy_samples"] or [""])[0], "error_samples": warm["error_samples"]
            + steady["error_samples"] + flood["error_samples"] + after["error_samples"]}


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
            rows.append(f"| Feedback store: {name} | the app started on a `chattr +i` file | started, marks off: "
                        f"{'yes' if v['marks_off'] else 'NO'}, {v['answered']} of {v['questions']} questions answered |")
        else:
            rows.append(f"| Feedback store: {name} | {v['questions']} questions and {v['marks']} marks during the "
                        f"fault | {v['answered']} answered, {v['acknowledged']} marks stored, {v['refused']} refused "
                        f"with the reason, {v['acknowledged_but_lost']} acknowledged but lost; recovered without a "
                        f"restart: {'yes' if v['recovered_without_restart'] else 'NO'} |")
    return rows


def write_report(path: Path, run_line: str) -> None:
    F = FIGURES
    hp, hc, hh = F["hostile questions (Python API)"], F["hostile questions (CLI)"], F["hostile questions (HTTP)"]
    co, fa, ki = F["hostile corpus files"], F["index faults"], F["SIGKILL during builds"]
    cc, fb, ld = F["queries during rebuilds"], F["feedback bursts"], F["load on loopback"]
    inputs = hp["inputs"] + hc["inputs"] + hh["requests"]
    input_failures = hp["failures"] + hc["failures"] + hh["failures"]
    faults = fa["faults_injected"] + ki["kills"]
    lost = fb["acknowledged_but_lost"] + (fb["direct_clicks"] - fb["direct_rows"]) + fa["served_a_mix"] \
        + ki["served_a_mix_or_error"] + co["good_essays_dropped"]
    st, fl, af = ld["steady"], ld["flood"], ld["after"]
    summary = (f"{inputs} hostile inputs tried ({input_failures} failures); {faults} faults injected "
               f"({fa['faults_injected']} index-file faults, {ki['kills']} SIGKILLed builds; "
               f"{fa['served_a_mix'] + ki['served_a_mix_or_error']} mixed or broken indexes served, "
               f"{fa['not_repaired'] + ki['not_repaired']} not repaired); load held: {st['clients']} clients for "
               f"{st['seconds']} s at {st['throughput_per_s']}/s, p50 {st['p50_ms']} ms, p95 {st['p95_ms']} ms, "
               f"{st['errors']} errors; {fl['clients']} clients: {fl['busy']} clean busy answers, {fl['errors']} "
               f"errors; data lost: {'none' if lost == 0 else lost} (no acknowledged feedback, essay or index lost; "
               f"{fb['http_refused_busy']} of {fb['http_clicks']} simultaneous HTTP feedback clicks refused as busy).")
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
        f"(\"{ld['busy_message']}\"), {fl['errors']} errors, p95 {fl['p95_ms']} ms |",
        f"| Recovery | 2 users for {af['seconds']} s right after | {af['answered']} answers, {af['busy']} busy, "
        f"{af['errors']} errors, p95 {af['p95_ms']} ms; server RSS {ld['server_rss_mib']['after_flood_and_recovery']} "
        f"MiB |",
        "",
        "## What each check proves",
        "",
        "- **Hostile questions** (`tests/test_reliability_inputs.py`, `scripts/reliability.py`): every input gets an",
        "  answer or a clear empty answer, within a bound, with at most k results that all exist in the index; the",
        "  cleaned query never keeps NUL, control, bidi, zero-width or lone-surrogate characters; the next question",
        "  still works; memory stays steady. A Hypothesis property test covers arbitrary text (surrogates included).",
        "  The CLI survives undecodable stdin bytes, lone surrogates in argv and a stdout that cannot encode Chinese.",
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
        "- **Load**: beyond the queue limit clients get Gradio's clean \"Queue is full\" answer, never an error,",
        "  and the app answers normally as soon as the flood stops.",
        "",
        "## Known gaps",
        "",
        "- Feedback marks sent through the HTTP API (`/mark`, what gradio_client uses) pass through Gradio's queue;",
        "  its bound is lifted for the feedback group (coach/ui.py `_FeedbackExemptMixin`), which relies on the",
        "  `push`/`max_size` internals of Gradio's queue: tests/test_reliability_web.py fails if an upgrade breaks it.",
        "- Requests carrying neither `Origin` nor `Referer` (curl, gradio_client) cannot be told apart by origin; adding",
        "  essays and rebuilding still need the admin login.",
        "",
        "## Raw figures",
        "",
        "```json",
        json.dumps(FIGURES, ensure_ascii=False, indent=1),
        "```",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


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
    p.add_argument("--load-model", choices=["fake", "real"], default="real",
                   help="fake: hashing embedder (+50 ms) measures the web stack; real: the bundled e5 model "
                        "on the project's corpus (the documented run)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    p.add_argument("--only", choices=["store-faults"],
                   help="run this one section, keep the other recorded figures, and regenerate --out")
    p.add_argument("--rewrite", action="store_true",
                   help="run nothing: regenerate --out from the raw figures recorded in it (after a template change)")
    args = p.parse_args(argv)
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
                f"`scripts/reliability.py --only {args.only}`._")
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
    total = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_line = (f"_Run {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.machine()} / {os.cpu_count()} cores / "
                f"Python {platform.python_version()}, {total:.0f} s in all. Command: "
                f"`{' '.join(['scripts/reliability.py'] + sys.argv[1:])}`._")
    write_report(args.out, run_line)
    print(f"\n{FIGURES['summary']}\nwritten: {args.out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
