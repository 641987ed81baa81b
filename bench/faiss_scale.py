"""FAISS alone at corpus sizes far beyond the five essays: build time, memory, single-query latency, recall@10.

The vectors are synthetic, unit-length and 384-d. Uniformly random directions are a poor stand-in for sentence
embeddings: in 384 dimensions every point is almost equally far from every other, the "true" top 10 is a coin toss
and no approximate index finds it (HNSW recall@10 ~0.15 at 100k). Real e5 embeddings are low-rank: their covariance
spectrum falls off like a power law (variance of the k-th principal direction ~ k^-alpha, alpha ~ 1 on this
corpus). `synthetic()` draws Gaussian vectors with that spectrum in a random orientation, so neighbourhoods have the
same kind of structure as the real index; `fit_alpha()` estimates alpha from the built index's sentence vectors.
Queries are fresh draws from the same distribution (never indexed points), and recall@10 is measured against an
exact IndexFlatIP search of the same vectors.

Both index types are built through `coach.index.VectorIndex.build`, so the HNSW figures use exactly the parameters
Coach ships (VectorIndex.HNSW_M / HNSW_EF_CONSTRUCTION / HNSW_EF_SEARCH); efSearch is then swept to show the
latency/recall trade-off.
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np

from common import log, percentiles, rss_bytes  # noqa: E402  (bench/ is on sys.path)

import faiss  # noqa: E402

from coach.index import VectorIndex  # noqa: E402

DIM = 384
K = 10


def _basis(d: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)
    return rotation, rng


def synthetic(n: int, d: int = DIM, alpha: float = 1.0, seed: int = 0, block: int = 100_000) -> np.ndarray:
    """n unit vectors whose covariance spectrum decays like k^-alpha (alpha=0: uniform on the sphere)."""
    rotation, _ = _basis(d)
    std = (np.arange(1, d + 1, dtype=np.float32) ** (-alpha / 2)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        x = rng.standard_normal((stop - start, d), dtype=np.float32) * std
        x = x @ rotation.T
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:stop] = x
    return out


def fit_alpha(vectors: np.ndarray, default: float = 1.0) -> float:
    """Slope of the log-log covariance spectrum of real embeddings (top half of the components)."""
    if vectors is None or len(vectors) < 64:
        return default
    x = vectors - vectors.mean(axis=0)
    ev = np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1]
    m = min(len(vectors) // 2, vectors.shape[1] // 2)
    ev = np.clip(ev[:m], 1e-12, None)
    slope = np.polyfit(np.log(np.arange(1, m + 1)), np.log(ev), 1)[0]
    return float(np.clip(-slope, 0.5, 2.0))


def hnsw_bytes(index) -> int:
    """Vectors plus graph (neighbour lists, offsets, levels) of an IndexHNSWFlat."""
    h = index.hnsw
    return index.ntotal * index.d * 4 + h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4


def _latency(index, queries: np.ndarray, k: int = K, warmup: int = 10) -> tuple[list[float], np.ndarray]:
    for q in queries[:warmup]:
        index.search(q[None, :], k)
    times, ids = [], np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        _, found = index.search(q[None, :], k)
        times.append(time.perf_counter() - t)
        ids[i] = found[0]
    return times, ids


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def run(
    sizes=(10_000, 100_000, 1_000_000),
    n_queries: int = 200,
    alpha: float = 1.0,
    ef_sweep=(64, 128, 256, 512, 768, 1024),
    flat_latency_queries: int | None = None,
) -> dict:
    """One row per (size, index); flat is exact (recall 1 by definition), HNSW is swept over efSearch."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rows, sweeps = [], []
    queries = synthetic(n_queries, alpha=alpha, seed=999_999)
    for n in sizes:
        log(f"faiss scale: {n:,} synthetic vectors (alpha={alpha:.2f})")
        t = time.perf_counter()
        data = synthetic(n, alpha=alpha, seed=n)
        gen_s = time.perf_counter() - t

        gc.collect()
        before = rss_bytes()
        t = time.perf_counter()
        flat = VectorIndex.build(data, approximate_above=n + 1)
        flat_build = time.perf_counter() - t
        flat_rss = rss_bytes() - before
        assert flat.kind == "flat"
        _, truth = flat.index.search(queries, K)  # exact ground truth, batched
        nq_flat = flat_latency_queries or n_queries
        times, found = _latency(flat.index, queries[:nq_flat])
        rows.append(
            {
                "n": n,
                "index": "flat (IndexFlatIP)",
                "build_s": flat_build,
                "bytes": n * DIM * 4,
                "rss_delta": flat_rss,
                "recall": recall_at_k(found, truth[:nq_flat]),
                "efSearch": None,
                **percentiles(times),
            }
        )
        del flat
        gc.collect()

        before = rss_bytes()
        t = time.perf_counter()
        approx = VectorIndex.build(data, approximate_above=0)
        build_s = time.perf_counter() - t
        rss_delta = rss_bytes() - before
        assert approx.kind == "hnsw"
        log(f"  HNSW built in {build_s:.1f}s")
        for ef in sorted(set(ef_sweep) | {VectorIndex.HNSW_EF_SEARCH}):
            approx.index.hnsw.efSearch = ef
            times, found = _latency(approx.index, queries)
            sweeps.append({"n": n, "efSearch": ef, "recall": recall_at_k(found, truth), **percentiles(times)})
        shipped = next(s for s in sweeps if s["n"] == n and s["efSearch"] == VectorIndex.HNSW_EF_SEARCH)
        rows.append(
            {
                "n": n,
                "index": f"HNSW (M={VectorIndex.HNSW_M}, efC={VectorIndex.HNSW_EF_CONSTRUCTION}, "
                f"efS={VectorIndex.HNSW_EF_SEARCH})",
                "build_s": build_s,
                "bytes": hnsw_bytes(approx.index),
                "rss_delta": rss_delta,
                **{k: shipped[k] for k in ("recall", "efSearch", "n", "p50", "p95", "p99", "mean")},
                "generate_s": gen_s,
            }
        )
        del approx, data
        gc.collect()
    return {
        "alpha": alpha,
        "n_queries": n_queries,
        "k": K,
        "dim": DIM,
        "rows": rows,
        "sweep": sweeps,
        "hnsw": {
            "M": VectorIndex.HNSW_M,
            "efConstruction": VectorIndex.HNSW_EF_CONSTRUCTION,
            "efSearch": VectorIndex.HNSW_EF_SEARCH,
        },
    }


def isotropic_caveat(n: int = 100_000, n_queries: int = 200) -> dict:
    """The same HNSW on uniformly random directions (alpha=0): why the bench does not use them."""
    data, queries = synthetic(n, alpha=0.0, seed=7), synthetic(n_queries, alpha=0.0, seed=8)
    flat = VectorIndex.build(data, approximate_above=n + 1)
    _, truth = flat.index.search(queries, K)
    approx = VectorIndex.build(data, approximate_above=0)
    times, found = _latency(approx.index, queries)
    return {"n": n, "recall": recall_at_k(found, truth), **percentiles(times)}


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--alpha", type=float, default=1.0)
    args = ap.parse_args()
    print(json.dumps(run([int(s) for s in args.sizes.split(",")], alpha=args.alpha), indent=1))
