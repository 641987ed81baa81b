"""Grid over the fusion weights of coach/search/config.py, on questions the code may be tuned on.

Every ranker's scores are computed once per question (`Coach.scores`), then fused under each weight setting, so a
grid of hundreds of settings costs seconds. Two kinds of questions are scored:
  described  the tuning splits of eval/queries.jsonl against the index built with every description;
  held-out essay  (with --folds) each essay's own questions against an index built without its descriptions
                  (the leave-one-essay-out folds; their tuned models are cached, so only the first run trains).
Held-out splits (eval/README.md) are never read here.

    .venv/bin/python bench/fusion_grid.py [--folds] [--out eval/fusion_grid.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coach import evaluate as ev  # noqa: E402
from coach.config import Settings  # noqa: E402
from coach.search import SearchConfig, fuse, ranked  # noqa: E402

TUNING_SPLITS = {
    "tune",
    "heldout2",
    "heldout4",
    "heldout5",
    "heldout6",
    "heldout7",
    "heldout8",
    "heldout9",
    "heldout10",
    "heldout11",
    "heldout12",
    "heldout13",
    "heldout14",
    "heldout15",
    "heldout16",
}
GRID = {
    "dense": [0.5, 1.0],
    "sentence": [0.5, 1.0],
    "keyword": [1.0, 2.0],
    "bigram": [0.0, 0.5, 1.0],
    "description": [2.0, 4.0, 8.0],
    "description_terms": [0.0, 1.0, 2.0, 4.0],
}


def collect(coach, cases) -> list[tuple]:
    """(case, relevant passage set, {ranker: scores}, floors) per in-domain case."""
    from coach.search.rankers import rankers_for

    texts = [ev.normalise(c.text) for c in coach.index.chunks]
    floors = {r.name: r.floor for r in rankers_for(coach.index, SearchConfig())}
    rows = []
    for case in cases:
        rel = {i for i, t in enumerate(texts) if ev.is_relevant(t, case.relevant)}
        _, scores = coach.scores(case.query)
        rows.append((case, rel, scores, floors))
    return rows


def hit3(rows, weights) -> dict[str, float]:
    out = {}
    for lang in ev.LANGS:
        mine = [r for r in rows if r[0].lang == lang]
        hits = 0
        for _case, rel, scores, floors in mine:
            fused, _ = fuse(scores, weights, floors)
            top = [d for d, _ in ranked(fused)[:3]]
            hits += bool(rel & set(top))
        out[lang] = hits / len(mine) if mine else float("nan")
    return out


def main() -> int:
    from coach.retrieve import Coach

    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", action="store_true", help="also score the leave-one-essay-out folds")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "fusion_grid.json")
    parser.add_argument("--dump", type=Path, help="also pickle every question's ranker scores here")
    args = parser.parse_args()
    settings = Settings()
    cases = [c for c in ev.load_cases(ROOT / "eval" / "queries.jsonl") if c.split in TUNING_SPLITS]
    full = Coach(settings)
    groups = {"described": collect(full, [c for c in cases if not c.out_of_domain])}
    if args.folds:
        work = Path(tempfile.mkdtemp(prefix="coach-grid-"))
        fold_rows = []
        for essay in sorted(full.index.essays):
            mine = ev.answered_only_by(cases, full.index.chunks, essay)
            corpus = ev.corpus_copy(settings.corpus_dir, work / f"corpus-{essay}", drop_descriptions_of=essay)
            fold = Coach(
                settings.with_overrides(corpus_dir=corpus, index_dir=work / f"index-{essay}"),
                embedder=full.base_embedder(),
            )
            fold_rows += collect(fold, mine)
            print(f"fold {essay}: {len(mine)} questions", file=sys.stderr)
        groups["held-out essay"] = fold_rows
    if args.dump:
        import pickle

        args.dump.write_bytes(
            pickle.dumps(
                {
                    g: [(c.lang, c.split, rel, scores, floors) for c, rel, scores, floors in rows]
                    for g, rows in groups.items()
                }
            )
        )
    names = list(GRID)
    results = []
    for values in itertools.product(*(GRID[n] for n in names)):
        weights = dict(zip(names, values))
        row = {"weights": weights}
        for group, rows in groups.items():
            row[group] = hit3(rows, weights)
        results.append(row)

    def worst(r):
        return min(min(v for v in r[g].values()) for g in groups)

    results.sort(key=lambda r: -np.mean([np.mean(list(r[g].values())) for g in groups]))
    args.out.write_text(
        json.dumps({"groups": {g: len(rows) for g, rows in groups.items()}, "results": results}, indent=1), "utf-8"
    )
    default = dict(zip(names, [getattr(SearchConfig(), n) for n in names]))
    print(
        "default", default, {g: {k: round(v, 3) for k, v in hit3(rows, default).items()} for g, rows in groups.items()}
    )
    for r in results[:15]:
        print(r["weights"], {g: {k: round(v, 3) for k, v in r[g].items()} for g in groups}, round(worst(r), 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
