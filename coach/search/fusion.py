"""One fusion of the rankers' scores, and the choice of what to show."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import CANDIDATES


def fuse(
    scores: dict[str, np.ndarray],
    weights: dict[str, float],
    floors: dict[str, float | None],
    candidates: int = CANDIDATES,
    sees: dict[str, np.ndarray | None] | None = None,
) -> tuple[dict[int, float], dict[int, dict[str, float]]]:
    """Convex combination of normalised scores.

    Args:
        scores: ranker name -> one score per passage (-inf: no evidence).
        weights: ranker name -> its weight.
        floors: ranker name -> the score of "no match" (None: the lowest of its candidates).
        candidates: how many of each ranker's best passages take part.
        sees: ranker name -> the passages it can judge (missing or None: all of them).

    Returns:
        passage -> fused score, and passage -> {ranker: its weighted, normalised contribution}. Each ranker's
        candidates are min-max normalised between its floor and its best score (all tied: each counts fully), so a
        clear lead in one ranker stays a clear lead; a passage outside a ranker's candidates gets 0 from it. A ranker
        that cannot see a passage abstains: that passage's contributions are scaled by the total weight of the
        rankers that took part over the weight of those that see it (its evidence is the weighted mean of what can
        judge it), so it is not outranked for lacking evidence nobody could give it.
    """
    sees = sees or {}
    fused: dict[int, float] = {}
    parts: dict[int, dict[str, float]] = {}
    active: dict[str, float] = {}
    for name, s in scores.items():
        w = weights.get(name, 0.0)
        if w <= 0:
            continue
        order = [int(i) for i in np.argsort(-s, kind="stable")[:candidates] if np.isfinite(s[i])]
        floor = floors.get(name)
        order = [i for i in order if floor is None or s[i] > floor]
        if not order:
            continue
        active[name] = w
        hi = float(s[order[0]])
        lo = float(s[order[-1]]) if floor is None else floor
        for d in order:
            contribution = w * ((float(s[d]) - lo) / (hi - lo) if hi > lo else 1.0)
            fused[d] = fused.get(d, 0.0) + contribution
            parts.setdefault(d, {})[name] = contribution
    total = sum(active.values())
    for d in fused:
        seen = sum(w for name, w in active.items() if _judges(sees.get(name), d) or name in parts[d])
        if 0 < seen < total:
            scale = total / seen
            fused[d] *= scale
            parts[d] = {name: c * scale for name, c in parts[d].items()}
    return fused, parts


def _judges(mask: np.ndarray | None, doc: int) -> bool:
    return mask is None or bool(mask[doc])


def description_confidence(best_description: float | None, best_sentence: float, gap: float, width: float) -> float:
    """How much the situation descriptions count for a question, 0..1: by how far its best description beats its
    best passage sentence (see SearchConfig.description_gap)."""
    if best_description is None:
        return 0.0
    return (
        min(1.0, max(0.0, (best_description - best_sentence - gap) / width))
        if width > 0
        else float(best_description - best_sentence >= gap)
    )


def ranked(fused: dict[int, float]) -> list[tuple[int, float]]:
    """(passage, score) best first; ties broken by passage position, so the order is deterministic."""
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def diversify(
    ranking: list[tuple[int, float]], essay_of: Callable[[int], str], top_k: int, margin: float
) -> list[tuple[int, float]]:
    """Pick top_k from (doc, score) best-first, preferring essays not yet shown unless a repeat is clearly better
    (its score at least `margin` times the best new essay's)."""
    chosen: list[tuple[int, float]] = []
    remaining = list(ranking)
    while remaining and len(chosen) < top_k:
        seen = {essay_of(d) for d, _ in chosen}
        best = remaining[0]
        fresh = next((r for r in remaining if essay_of(r[0]) not in seen), None)
        pick = best if fresh is None or essay_of(best[0]) not in seen or best[1] >= margin * fresh[1] else fresh
        chosen.append(pick)
        remaining.remove(pick)
    return chosen
