"""Out-of-domain evidence on the tuning splits: the floors of coach/search/config.py come from here.

For every question of the tuning splits (never the held-out ones) it prints, per language group, the best cosine
of the question against any passage sentence and against any situation description, for in-domain and
out-of-domain questions, and how many of each a pair of floors would flag.

    .venv/bin/python bench/ood_calibration.py
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fusion_grid import TUNING_SPLITS  # noqa: E402
from coach import evaluate as ev  # noqa: E402


def main() -> int:
    from coach.retrieve import Coach

    coach = Coach()
    cases = [c for c in ev.load_cases(ROOT / "eval" / "queries.jsonl") if c.split in TUNING_SPLITS]
    rows = []
    for c in cases:
        evidence = coach.ask(c.query, top_k=1).evidence
        rows.append((c, evidence))
    for group, langs in (("en", {"en"}), ("zh", {"zh", "zh-Hant"})):
        mine = [(c, e) for c, e in rows if c.lang in langs]
        inside = [e for c, e in mine if not c.out_of_domain]
        outside = [e for c, e in mine if c.out_of_domain]
        for name in ("best_sentence", "best_description", "best_out_of_scope"):
            a = np.array([getattr(e, name) for e in inside], float)
            b = np.array([getattr(e, name) for e in outside], float)
            print(f"{group} {name}: in-domain min {a.min():.3f} p1 {np.percentile(a, 1):.3f} p5 "
                  f"{np.percentile(a, 5):.3f} median {np.median(a):.3f} | out-of-domain median {np.median(b):.3f} "
                  f"p95 {np.percentile(b, 95):.3f} max {b.max():.3f} (n={len(a)}/{len(b)})")
        english = group == "en"
        base = coach.config
        for s_floor in np.arange(0.78, 0.92, 0.01):
            for d_floor in np.arange(0.82, 0.94, 0.01):
                config = (dataclasses.replace(base, sentence_floor_english=s_floor, description_floor_english=d_floor)
                          if english else dataclasses.replace(base, sentence_floor=s_floor, description_floor=d_floor))
                flagged_in = sum(e.out_of_domain(config) for e in inside)
                caught = sum(e.out_of_domain(config) for e in outside)
                if flagged_in <= len(inside) / 40:
                    print(f"  {group} sentence floor {s_floor:.2f} description floor {d_floor:.2f}: in-domain flagged "
                          f"{flagged_in}/{len(inside)}, out-of-domain recall {caught}/{len(outside)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
