"""coach/classify.py: the ridge passage classifier over situation-description vectors, on fixtures with known
answers, and its place in retrieval (fitted at index load, a ranker in classifier mode only)."""

from __future__ import annotations

import numpy as np
import pytest

from coach import classify
from coach import retrieve as rt
from coach.retrieve import Coach

from test_situations import settings  # noqa: F401  (the three-essay corpus with situations, fake model)


def _unit(rows) -> np.ndarray:
    x = np.asarray(rows, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# Four descriptions in a 3-d space: two for passage 0 (around axis 0), one for passage 2 (axis 1), one spanning
# passages 1 and 2 (axis 2). Passage 3 has none.
VECTORS = _unit([[1, 0.1, 0], [1, -0.1, 0], [0, 1, 0], [0, 0, 1]])
LABELS = [(0,), (0,), (2,), (1, 2)]


def test_fit_scores_each_description_highest_on_its_own_passages():
    model = classify.fit(VECTORS, LABELS, 4, ridge=1e-6)
    scores = np.stack([model.scores(v) for v in VECTORS])
    np.testing.assert_allclose(scores, [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0]], atol=1e-3)


def test_fit_matches_the_ridge_normal_equations():
    """Oracle: centred least squares with an L2 penalty, by brute force over the stacked system."""
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(30, 8)))
    labels = [(int(i),) for i in rng.integers(0, 5, size=30)]
    model = classify.fit(x, labels, 6, ridge=0.7)
    y = np.zeros((30, 6))
    for r, (c,) in enumerate(labels):
        y[r, c] = 1
    xc, yc = x - x.mean(0), y - y.mean(0)
    stacked_x = np.vstack([xc, np.sqrt(0.7) * np.eye(8)])
    stacked_y = np.vstack([yc, np.zeros((8, 6))])
    w, *_ = np.linalg.lstsq(stacked_x, stacked_y, rcond=None)
    np.testing.assert_allclose(model.weights, w, atol=1e-9)
    np.testing.assert_allclose(model.bias, y.mean(0))
    q = _unit([rng.normal(size=8)])[0]
    np.testing.assert_allclose(model.scores(q), (q - x.mean(0)) @ w + y.mean(0), atol=1e-9)


def test_passage_without_description_scores_zero_and_is_never_a_candidate():
    model = classify.fit(VECTORS, LABELS, 4)
    for q in _unit([[0.3, 0.3, 0.9], [1, 1, 1], [-1, 0.2, 0.1]]):
        scores = model.scores(q)
        assert scores[3] == 0.0
        assert 3 not in rt.Ranked.top("classifier", scores, 1.0).docs


def test_question_between_descriptions_leans_to_the_nearer_passage():
    model = classify.fit(VECTORS, LABELS, 4)
    scores = model.scores(_unit([[0.9, 0.4, 0]])[0])
    assert int(np.argmax(scores)) == 0 and scores[0] > scores[2] > scores[1]


def test_no_descriptions_no_model():
    assert classify.fit(np.zeros((0, 384), np.float32), [], 10) is None
    assert classify.fit(VECTORS, LABELS, 0) is None


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="4 description vectors but 3 label rows"):
        classify.fit(VECTORS, LABELS[:3], 4)


# ------------------------------------------------------------------ retrieval


def test_classifier_mode_is_the_default_and_adds_the_ranker_only_there():
    bridge = rt.bridge_mod.default_bridge()
    assert rt.DEFAULT_MODE == "classifier"
    plan = rt.plan_search("客人一直罵人怎麼辦", "classifier", bridge)
    assert plan.classifier_weight == rt.WEIGHT_CLASSIFIER
    situations = rt.plan_search("客人一直罵人怎麼辦", "situations", bridge)
    assert situations.classifier_weight == 0
    # otherwise the same plan as situations mode
    assert plan.situation_weight == situations.situation_weight and plan.bigram_terms == situations.bigram_terms
    assert plan.dense_texts == situations.dense_texts and plan.keyword_terms == situations.keyword_terms


def test_index_load_fits_the_classifier_on_its_descriptions(settings, fake_embedder):  # noqa: F811
    index = Coach(settings, embedder=fake_embedder).index
    model = index.situation_model
    assert model is not None and model.weights.shape == (fake_embedder.dim, len(index.chunks))
    described = {d for docs in index.situation_chunks for d in docs}
    for row, docs in enumerate(index.situation_chunks):          # each description points at its own passage
        scores = model.scores(index.situation_vectors[row])
        assert int(np.argmax(scores)) in docs
    assert all(model.bias[d] == 0 for d in range(len(index.chunks)) if d not in described)


def test_classifier_ranker_joins_the_fusion(settings, fake_embedder, monkeypatch):  # noqa: F811
    coach = Coach(settings, embedder=fake_embedder)
    seen = {}
    fuse = rt.FUSIONS[rt.FUSION]

    def spy(rankers):
        seen[len(seen)] = [r.name for r in rankers]
        return fuse(rankers)

    monkeypatch.setitem(rt.FUSIONS, rt.FUSION, spy)
    answer = coach.ask("客戶要我幫他破解密碼", top_k=3)
    assert "classifier" in seen[0] and answer.results[0].chunk.essay_id == "rules"
    coach.ask("客戶要我幫他破解密碼", top_k=3, mode="situations")
    assert "classifier" not in seen[1] and "situation" in seen[1]


def test_corpus_without_situations_has_no_classifier(settings, fake_embedder):  # noqa: F811
    from coach.corpus import SITUATIONS_FILE
    (settings.corpus_dir / SITUATIONS_FILE).unlink()
    coach = Coach(settings, embedder=fake_embedder)
    assert coach.index.situation_model is None
    assert coach.ask("客户破口大骂").results
