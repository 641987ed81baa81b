"""Query latency: dense-only search vs the full default search, over the questions of eval/queries.jsonl.

    .venv/bin/python bench/query_latency.py [QUERIES.jsonl] [--rounds 3]

Warm-up first (`Coach.warm_up`: jieba, CC-CEDICT, theme vectors, passage token sets), then the modes are
interleaved question by question so that machine load affects both alike. Coach's query-vector cache is off
while timing, so every ask encodes (the honest cost of a new question; repeated rounds would otherwise be cache
hits). Prints p50/p95 per mode and the ratio full/dense (acceptance: <= 2); `--repeat` adds the latency of a
question asked again (cache on). Exit status 1 when the p50 ratio exceeds --max-ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coach.config import Settings  # noqa: E402
from coach.retrieve import DEFAULT_MODE, Coach  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("queries", nargs="?", default=str(ROOT / "eval" / "queries.jsonl"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-ratio", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--repeat", action="store_true", help="also time repeated questions (query-vector cache on)")
    args = ap.parse_args()
    questions = [
        json.loads(line)["query"] for line in Path(args.queries).read_text("utf-8").splitlines() if line.strip()
    ]
    coach = Coach(Settings(), build=False)
    modes = ("dense", DEFAULT_MODE)
    coach.warm_up(background=False)
    for q in questions[:10]:  # warm-up
        for m in modes:
            coach.ask(q, top_k=3, mode=m)
    coach.query_cache_size = 0  # every timed ask encodes its question
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for q in questions:
            for m in modes:
                t = time.perf_counter()
                coach.ask(q, top_k=3, mode=m)  # as the UI asks: top 3, diversity on
                times[m].append((time.perf_counter() - t) * 1e3)
    if args.repeat:  # the same question again: vectors from the cache
        coach.query_cache_size = len(questions) * len(modes)
        for q in questions:
            coach.ask(q, top_k=3)
        times[DEFAULT_MODE + "-repeat"] = []
        for q in questions:
            t = time.perf_counter()
            coach.ask(q, top_k=3)
            times[DEFAULT_MODE + "-repeat"].append((time.perf_counter() - t) * 1e3)
    stats = {m: {"p50_ms": statistics.median(v), "p95_ms": percentile(v, 95), "n": len(v)} for m, v in times.items()}
    ratio = stats[DEFAULT_MODE]["p50_ms"] / stats["dense"]["p50_ms"]
    ratio95 = stats[DEFAULT_MODE]["p95_ms"] / stats["dense"]["p95_ms"]
    if args.json:
        print(json.dumps({"modes": stats, "ratio_p50": ratio, "ratio_p95": ratio95}, indent=2))
    else:
        for m, s in stats.items():
            print(f"{m:12} p50 {s['p50_ms']:7.1f} ms   p95 {s['p95_ms']:7.1f} ms   ({s['n']} queries)")
        print(f"ratio {DEFAULT_MODE}/dense: p50 {ratio:.2f}  p95 {ratio95:.2f}  (limit {args.max_ratio})")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
