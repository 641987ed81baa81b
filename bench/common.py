"""Small helpers shared by the bench scripts: timing loops, percentiles, memory readings."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

if str(ROOT) not in sys.path:  # `python bench/run.py` puts bench/ first on sys.path, not the project root
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(samples_s: Iterable[float]) -> dict:
    """p50/p95/p99/mean in milliseconds from samples in seconds."""
    a = np.asarray(list(samples_s), dtype=np.float64) * 1e3
    if a.size == 0:
        return {"count": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {
        "count": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
    }


def time_each(fn: Callable, items: list, warmup: int = 10) -> list[float]:
    """Call fn(item) for every item after `warmup` untimed calls; wall-clock seconds per call."""
    for item in items[:warmup]:
        fn(item)
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
    return out


def rss_bytes(pid: int | None = None) -> int:
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss


def peak_rss_self_bytes() -> int:
    """High-water RSS of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_info() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        mem = ""
    return f"{model}, {os.cpu_count()} logical cores{mem}"
