"""English questions' keyword weight (SearchConfig.keyword_english), on tuning data only.

Three groups of English questions, each ranker's scores computed once and fused offline with the code's own fusion
(`Coach.weights`: description confidence, then the keyword weight of an English question):
  described       the tuning splits of eval/queries.jsonl on the index with every description;
  held-out essay  each essay's own questions on an index built and tuned without its descriptions (the cached
                  leave-one-essay-out folds);
  fresh           eval/fresh_essays and eval/fresh_essays2 (reported once each, tuning data since) on a corpus
                  with those essays; the described questions are scored there too ("described + fresh essays"),
                  since English essays in the corpus attract English questions.

    .venv/bin/python bench/english_keyword_grid.py [--values 2,1.5,1.25,1,0.75]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from fusion_grid import TUNING_SPLITS  # noqa: E402

from coach import evaluate as ev  # noqa: E402
from coach.config import Settings  # noqa: E402
from coach.search import SearchConfig, fuse, ranked  # noqa: E402
from coach.search.rankers import rankers_for  # noqa: E402

FRESH = ("fresh_essays", "fresh_essays2")


def collect(coach, cases) -> list[tuple]:
    """(relevant passages, scores, floors, sees, evidence) per English in-domain case."""
    texts = [ev.normalise(c.text) for c in coach.index.chunks]
    rankers = rankers_for(coach.index, coach.config)
    floors = {r.name: r.floor for r in rankers}
    rows = []
    for case in cases:
        if case.out_of_domain or case.lang != "en":
            continue
        rel = {i for i, t in enumerate(texts) if ev.is_relevant(t, case.relevant)}
        q, scores = coach.scores(case.query)
        evidence = coach._evidence(q, coach.index, "full", scores)
        rows.append((rel, scores, floors, {r.name: r.sees(q) for r in rankers}, evidence))
    return rows


def hit3(rows, config: SearchConfig) -> float:
    from coach.retrieve import Coach

    hits = []
    for rel, scores, floors, sees, evidence in rows:
        fused, _ = fuse(scores, Coach.weights(config, evidence), floors, sees=sees)
        hits.append(bool(rel & {d for d, _ in ranked(fused)[:3]}))
    return float(np.mean(hits)) if hits else float("nan")


def main() -> int:
    from coach.retrieve import Coach

    parser = argparse.ArgumentParser()
    parser.add_argument("--values", default="2,1.5,1.25,1,0.75")
    args = parser.parse_args()
    settings = Settings()
    cases = [c for c in ev.load_cases(ROOT / "eval" / "queries.jsonl") if c.split in TUNING_SPLITS]
    full = Coach(settings)
    groups = {"described": collect(full, cases)}
    work = Path(tempfile.mkdtemp(prefix="coach-english-grid-"))
    folds = []
    for essay in sorted(full.index.essays):
        mine = ev.answered_only_by(cases, full.index.chunks, essay)
        corpus = ev.corpus_copy(settings.corpus_dir, work / f"corpus-{essay}", drop_descriptions_of=essay)
        fold = Coach(ev.isolated(settings, corpus, work / f"index-{essay}"), embedder=full.base_embedder())
        folds += collect(fold, mine)
    groups["held-out essay"] = folds
    corpus = settings.corpus_dir
    for n, folder in enumerate(FRESH):
        corpus = ev.corpus_copy(corpus, work / f"corpus-fresh-{n}", extra_essays=ROOT / "eval" / folder)
    fresh = Coach(ev.isolated(settings, corpus, work / "index-fresh"), embedder=full.base_embedder())
    fresh_cases = [c for folder in FRESH for c in ev.load_cases(ROOT / "eval" / folder / "queries.jsonl")]
    groups["fresh essays"] = collect(fresh, fresh_cases)
    groups["described + fresh essays"] = collect(fresh, cases)
    print("English hit@3 by keyword_english (" + ", ".join(f"{g}: {len(r)}" for g, r in groups.items()) + ")")
    for value in (float(v) for v in args.values.split(",")):
        config = dataclasses.replace(SearchConfig(), keyword_english=value)
        print(f"  {value:5.2f}  " + "  ".join(f"{g} {hit3(rows, config):.3f}" for g, rows in groups.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
