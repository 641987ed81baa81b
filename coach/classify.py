"""Passage classifiers fitted on the situation descriptions: one over their vectors, one over their Chinese words.

The descriptions (corpus/situations.toml) are questions agents ask, each labelled with the passage(s) that answer
it. The situation ranker scores a passage by its single nearest description; this classifier instead learns, from
all of them at once, which directions of the embedding space point at which passage: ridge regression from a
description's vector to the one-hot (multi-hot for a description spanning two passages) row of its passages,
solved in closed form. A fresh question is scored by every description of a passage together, so wording no single
description shares can still land on the right passage.

It is fitted when an index is loaded (a [dim x dim] solve, a few milliseconds), from the vectors stored in the
build: nothing new is written to disk, and a rebuilt index fits its own.

`LexicalClassifier` does the same with what the Chinese descriptions are written in: TF-IDF over their jieba words
and character pairs (simplified), and multinomial logistic regression to their passages. It is fitted when the
index is built (about 3 s) and saved in the build as plain files (the vocabulary as JSON, the weights as .npy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


# Inverse L2 penalty (scikit-learn's C) of the lexical classifier. Chosen on the splits written before heldout17,
# fused at weight 6: C 3-30 give the same hit@3 on the batches no description was written against (heldout12-16).
LEXICAL_C = 10.0
LEXICAL_FEATURES = "jieba words + character pairs, simplified; TF-IDF (raw tf, smooth idf, l2 rows)"


def lexical_tokens(text: str) -> list[str]:
    """The lexical classifier's features of a text: its jieba words and its Chinese character pairs (simplified)."""
    from .keyword import char_bigrams, tokenize
    return tokenize(text) + char_bigrams(text)


@dataclass(frozen=True)
class LexicalClassifier:
    """Multinomial logistic regression from a text's TF-IDF words and character pairs to the passages."""

    tokens: list[str]           # feature column -> token
    idf: np.ndarray             # [n_tokens]
    weights: np.ndarray         # [n_tokens, n_classes]
    bias: np.ndarray            # [n_classes]
    classes: np.ndarray         # [n_classes] chunk positions (passages with a Chinese description)
    n_chunks: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_column", {t: i for i, t in enumerate(self.tokens)})

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of the l2-normalised TF-IDF row of `text`; tokens never seen in fitting are dropped."""
        return _tfidf_row(lexical_tokens(text), self._column, self.idf)

    def scores(self, text: str) -> np.ndarray:
        """Each passage's probability for `text` (0 for passages without a Chinese description); all 0 when no
        word or character pair of `text` occurs in any description (the model would only echo its prior)."""
        out = np.zeros(self.n_chunks)
        cols, values = self.features(text)
        if not len(cols):
            return out
        logits = values @ self.weights[cols] + self.bias
        p = np.exp(logits - logits.max())
        out[self.classes] = p / p.sum()
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.json").write_text(json.dumps(
            {"c": LEXICAL_C, "features": LEXICAL_FEATURES, "n_chunks": self.n_chunks, "tokens": self.tokens},
            ensure_ascii=False), "utf-8")
        for name in ("idf", "weights", "bias"):
            np.save(folder / f"{name}.npy", np.asarray(getattr(self, name), np.float32), allow_pickle=False)
        np.save(folder / "classes.npy", np.asarray(self.classes, np.int64), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalClassifier":
        """Read a saved classifier; ValueError (or OSError) when a file is missing or malformed."""
        params = json.loads((folder / "params.json").read_text("utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False)
                  for name in ("idf", "weights", "bias", "classes")}
        model = cls(list(params["tokens"]), arrays["idf"].astype(np.float64), arrays["weights"],
                    arrays["bias"].astype(np.float64), arrays["classes"], int(params["n_chunks"]))
        n_tokens, n_classes = len(model.tokens), len(model.classes)
        if (model.idf.shape != (n_tokens,) or model.weights.shape != (n_tokens, n_classes)
                or model.bias.shape != (n_classes,) or (n_classes and model.classes.max() >= model.n_chunks)):
            raise ValueError(f"lexical classifier files in {folder} disagree on their shapes")
        return model


def _tfidf_row(tokens: list[str], column: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts: dict[int, int] = {}
    for tok in tokens:
        col = column.get(tok)
        if col is not None:
            counts[col] = counts.get(col, 0) + 1
    cols = np.fromiter(counts, np.int64, len(counts))
    values = np.fromiter(counts.values(), np.float64, len(counts)) * idf[cols]
    norm = np.linalg.norm(values)
    return cols, (values / norm if norm else values)


def fit_lexical(texts: list[str], labels: list[tuple[int, ...]], n_chunks: int,
                c: float = LEXICAL_C) -> LexicalClassifier | None:
    """Fit on Chinese description texts and the chunk positions each describes (a description of two passages is
    one training row per passage); None when fewer than two passages are described."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} description texts but {len(labels)} label rows")
    if len({d for docs in labels for d in docs}) < 2:
        return None
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    token_lists = [lexical_tokens(t) for t in texts]   # one list per description text
    tokens = sorted({tok for toks in token_lists for tok in toks})
    column = {t: i for i, t in enumerate(tokens)}
    df = np.zeros(len(tokens))
    for toks in token_lists:
        df[[column[t] for t in set(toks)]] += 1
    idf = np.log((1 + len(texts)) / (1 + df)) + 1.0        # scikit-learn's smooth idf
    rows, cols, values, y = [], [], [], []
    for toks, docs in zip(token_lists, labels):
        c_, v_ = _tfidf_row(toks, column, idf)
        for d in docs:
            rows += [len(y)] * len(c_)
            cols += c_.tolist()
            values += v_.tolist()
            y.append(d)
    x = sparse.csr_matrix((values, (rows, cols)), shape=(len(y), len(tokens)))
    clf = LogisticRegression(C=c, max_iter=3000).fit(x, np.array(y))
    weights, bias = clf.coef_.T, clf.intercept_
    if len(clf.classes_) == 2:      # scikit-learn keeps one column for two classes: softmax([0, z]) = sigmoid(z)
        weights, bias = np.hstack([np.zeros_like(weights), weights]), np.concatenate([[0.0], bias])
    return LexicalClassifier(tokens, idf, np.ascontiguousarray(weights), np.asarray(bias, np.float64),
                             clf.classes_.astype(np.int64), n_chunks)
