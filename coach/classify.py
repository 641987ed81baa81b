"""A linear passage classifier fitted on the situation descriptions' vectors.

The descriptions (corpus/situations.toml) are questions agents ask, each labelled with the passage(s) that answer
it. The situation ranker scores a passage by its single nearest description; this classifier instead learns, from
all of them at once, which directions of the embedding space point at which passage: ridge regression from a
description's vector to the one-hot (multi-hot for a description spanning two passages) row of its passages,
solved in closed form. A fresh question is scored by every description of a passage together, so wording no single
description shares can still land on the right passage.

It is fitted when an index is loaded (a [dim x dim] solve, a few milliseconds), from the vectors stored in the
build: nothing new is written to disk, and a rebuilt index fits its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# L2 penalty of the ridge fit, on centred description vectors. Chosen on the splits written before heldout15
# (situations mode plus this ranker at weight 3): 0.3-1.0 give the same hit@3 (0.1 and 10 lose a little);
# 0.5 sits in the middle. See eval/results.md.
RIDGE = 0.5


@dataclass(frozen=True)
class PassageClassifier:
    """scores(q) = (q - mean) @ weights + bias: one score per passage, about 1 for the passage a question is
    about, about 0 for the others; passages without a description score 0."""

    mean: np.ndarray        # [dim] mean description vector (centring)
    weights: np.ndarray     # [dim, n_chunks]
    bias: np.ndarray        # [n_chunks] share of descriptions labelled with each passage

    def scores(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, np.float64) - self.mean) @ self.weights + self.bias


def fit(vectors: np.ndarray, labels: list[tuple[int, ...]], n_chunks: int,
        ridge: float = RIDGE) -> PassageClassifier | None:
    """Fit on description vectors [n, dim] and the chunk positions each describes; None without descriptions."""
    if len(vectors) == 0 or n_chunks == 0:
        return None
    if len(vectors) != len(labels):
        raise ValueError(f"{len(vectors)} description vectors but {len(labels)} label rows")
    x = np.asarray(vectors, np.float64)
    targets = np.zeros((len(x), n_chunks))
    for row, chunks in enumerate(labels):
        targets[row, list(chunks)] = 1.0
    mean, bias = x.mean(axis=0), targets.mean(axis=0)
    xc = x - mean
    weights = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (targets - bias))
    return PassageClassifier(mean, weights, bias)
