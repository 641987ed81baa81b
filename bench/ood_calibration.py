"""Out-of-domain floors of coach/search/config.py, from the tuning splits of eval/queries.jsonl (never the
held-out ones).

For every tuning question it takes the evidence `Coach.ask` decides on (best description, best passage sentence,
best out-of-scope prototype) and prints, per language group, how many in-domain questions and how many
out-of-domain ones each floor flags: with the descriptions, and as if no description existed (the passage
evidence alone, as for an essay nobody described).

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
    config = coach.config
    cases = [c for c in ev.load_cases(ROOT / "eval" / "queries.jsonl") if c.split in TUNING_SPLITS]
    rows = [(c, coach.ask(c.query, top_k=1).evidence) for c in cases]
    for group, langs in (("en", {"en"}), ("zh", {"zh", "zh-Hant"})):
        inside = [e for c, e in rows if c.lang in langs and not c.out_of_domain]
        outside = [e for c, e in rows if c.lang in langs and c.out_of_domain]
        blind = [dataclasses.replace(e, best_description=None) for e in inside]
        for name, evidence in (
            ("in-domain", inside),
            ("in-domain, descriptions unseen", blind),
            ("out-of-domain", outside),
        ):
            v = np.array([e.evidence_score(config) for e in evidence])
            print(
                f"{group} {name}: evidence p1 {np.percentile(v, 1):.3f} p5 {np.percentile(v, 5):.3f} median "
                f"{np.median(v):.3f} p95 {np.percentile(v, 95):.3f} (n={len(v)})"
            )
        for floor in np.arange(0.74, 0.80, 0.005):
            c = dataclasses.replace(config, ood_floor=floor, ood_floor_english=floor)
            print(
                f"  {group} floor {floor:.3f}: in-domain flagged {sum(e.out_of_domain(c) for e in inside)}/"
                f"{len(inside)}, without descriptions {sum(e.out_of_domain(c) for e in blind)}/{len(blind)}; "
                f"out-of-domain caught {sum(e.out_of_domain(c) for e in outside)}/{len(outside)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
