"""Grid over the description confidence (SearchConfig.description_gap / description_width) and the description
weights, on the ranker scores `bench/fusion_grid.py --folds --dump SCORES.pkl` wrote (tuning splits only): the
described questions against the index with every description, each essay's own questions against its fold.

    .venv/bin/python bench/fusion_grid.py --folds --dump /tmp/scores.pkl
    .venv/bin/python bench/description_gap_grid.py /tmp/scores.pkl

Prints the settings with the best mean of the six hit@3 figures (described / held-out essay x en / zh / zh-Hant).
"""

from __future__ import annotations

import itertools
import pickle
import sys

import numpy as np

LANGS = ("en", "zh", "zh-Hant")
RANKERS = ("dense", "sentence", "keyword", "bigram", "description", "description_terms")


def minmax(s: np.ndarray, floor: float | None, candidates: int = 50) -> np.ndarray:
    """The fusion's normalisation (coach/search/fusion.py), as a dense vector."""
    out = np.zeros(len(s))
    finite = np.isfinite(s)
    order = [
        i for i in np.argsort(-np.where(finite, s, -1e9))[:candidates] if finite[i] and (floor is None or s[i] > floor)
    ]
    if order:
        hi, lo = s[order[0]], (s[order[-1]] if floor is None else floor)
        for i in order:
            out[i] = (s[i] - lo) / (hi - lo) if hi > lo else 1.0
    return out


def main(path: str) -> int:
    groups = pickle.loads(open(path, "rb").read())
    prepared = {}
    for group, rows in groups.items():
        prepared[group] = []
        for lang, _split, rel, scores, floors in rows:
            norm = {k: minmax(scores[k], floors[k]) for k in RANKERS}
            best = {k: np.where(np.isfinite(scores[k]), scores[k], -1).max() for k in ("description", "sentence")}
            prepared[group].append((lang, rel, norm, best["description"] - best["sentence"]))
    results = []
    for gap, width, wd, wt, kw in itertools.product(
        [0.0, 0.02, 0.04, 0.06, 0.08, 0.1], [0.02, 0.05, 0.1], [1, 2, 4, 8], [0, 1, 2, 4], [1, 2]
    ):
        figures = {}
        for group, rows in prepared.items():
            hits: dict[str, list[bool]] = {lang: [] for lang in LANGS}
            for lang, rel, norm, diff in rows:
                confidence = min(1.0, max(0.0, (diff - gap) / width))
                total = (
                    norm["dense"]
                    + norm["sentence"]
                    + kw * norm["keyword"]
                    + norm["bigram"]
                    + confidence * (wd * norm["description"] + wt * norm["description_terms"])
                )
                hits[lang].append(bool(rel & {int(i) for i in np.argsort(-total, kind="stable")[:3]}))
            figures[group] = {lang: round(float(np.mean(v)), 3) for lang, v in hits.items() if v}
        mean = float(np.mean([v for g in figures.values() for v in g.values()]))
        results.append(
            (round(mean, 3), dict(gap=gap, width=width, description=wd, description_terms=wt, keyword=kw), figures)
        )
    results.sort(key=lambda r: -r[0])
    for r in results[:12]:
        print(*r)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/scores.pkl"))
