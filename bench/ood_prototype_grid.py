"""The out-of-scope prototypes' lift (SearchConfig.ood_prototype_lift), on reported questions only.

A question is flagged out-of-domain when an out-of-scope prototype (coach/data/out_of_scope.tsv) comes closer than
max(best description, best passage sentence + lift). This script takes the evidence `Coach.ask` decides on, once
per question, and prints for each lift how many out-of-domain questions are caught and how many in-domain ones are
wrongly flagged, in the three places users meet:
  described       every reported split of eval/queries.jsonl, on the index with every description;
  held-out essay  each essay's own questions on an index rebuilt and retrained without its descriptions;
  fresh essays    eval/fresh_essays* questions, on the corpus plus their undescribed essays.

    .venv/bin/python bench/ood_prototype_grid.py [--lifts 0.08,0.06,0.05,0.04,0.03,0.02,0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coach import evaluate as ev  # noqa: E402
from coach.config import Settings  # noqa: E402
from coach.search import SearchConfig  # noqa: E402

# batches written but not yet reported stay out of every tuning script (eval/README.md)
NOT_YET_REPORTED = ("heldout24",)
FRESH = ("fresh_essays", "fresh_essays2", "fresh_essays3", "fresh_essays4", "fresh_essays5")


def evidence(coach, cases) -> list[tuple[bool, object]]:
    """(truly out-of-domain, the evidence the decision is made on) per case."""
    return [(c.out_of_domain, coach.ask(c.query, top_k=3, diverse=False).evidence) for c in cases]


def main() -> int:
    from coach.retrieve import Coach

    parser = argparse.ArgumentParser()
    parser.add_argument("--lifts", default="0.08,0.06,0.05,0.04,0.03,0.02,0")
    args = parser.parse_args()
    settings = Settings()
    cases = [c for c in ev.load_cases(ROOT / "eval" / "queries.jsonl") if c.split not in NOT_YET_REPORTED]
    full = Coach(settings)
    groups = {"described": evidence(full, cases)}
    work = Path(tempfile.mkdtemp(prefix="coach-ood-grid-"))
    held_out = []
    for essay in sorted(full.index.essays):
        corpus = ev.corpus_copy(settings.corpus_dir, work / f"corpus-{essay}", drop_descriptions_of=essay)
        fold = Coach(ev.isolated(settings, corpus, work / f"index-{essay}"), embedder=full.base_embedder())
        held_out += evidence(fold, ev.answered_only_by(cases, fold.index.chunks, essay))
    groups["held-out essay"] = held_out
    fresh = []
    for folder in FRESH:
        corpus = ev.corpus_copy(settings.corpus_dir, work / f"corpus-{folder}", extra_essays=ROOT / "eval" / folder)
        coach = Coach(ev.isolated(settings, corpus, work / f"index-{folder}"), embedder=full.base_embedder())
        fresh += evidence(coach, ev.load_cases(ROOT / "eval" / folder / "queries.jsonl"))
    groups["fresh essays"] = fresh
    print("lift   out-of-domain caught | in-domain flagged: " + ", ".join(groups))
    for lift in (float(v) for v in args.lifts.split(",")):
        config = dataclasses.replace(SearchConfig(), ood_prototype_lift=lift)
        outside = [e for ood, e in groups["described"] if ood]
        caught = sum(e.out_of_domain(config) for e in outside)
        flagged = [
            f"{sum(e.out_of_domain(config) for ood, e in rows if not ood)}/{sum(not ood for ood, _ in rows)}"
            for rows in groups.values()
        ]
        print(f"{lift:5.3f}  {caught}/{len(outside)} = {caught / len(outside):.3f} | " + ", ".join(flagged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
