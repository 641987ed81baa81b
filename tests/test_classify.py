"""coach/classify.py: the passage classifiers over the situation descriptions (ridge over their vectors, logistic
regression over their Chinese words and character pairs), on fixtures with known answers and against scikit-learn
and normal-equation oracles, their place in the index, and their rankers in classifier mode only."""

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
    assert {"classifier", "lexical_classifier"} <= set(seen[0]) and answer.results[0].chunk.essay_id == "rules"
    coach.ask("a customer wants me to crack a password", top_k=3)
    assert "classifier" in seen[1] and "lexical_classifier" not in seen[1]     # English: no Chinese words
    coach.ask("客戶要我幫他破解密碼", top_k=3, mode="situations")
    assert not {"classifier", "lexical_classifier"} & set(seen[2]) and "situation" in seen[2]


def test_corpus_without_situations_has_no_classifier(settings, fake_embedder):  # noqa: F811
    from coach.corpus import SITUATIONS_FILE
    (settings.corpus_dir / SITUATIONS_FILE).unlink()
    coach = Coach(settings, embedder=fake_embedder)
    assert coach.index.situation_model is None and coach.index.situation_lexical is None
    assert coach.ask("客户破口大骂").results


# ------------------------------------------------------------------ lexical classifier

LEXICAL_TEXTS = ["客户破口大骂怎么办", "客户一直骂人很难听", "第一次接电话很紧张", "刚上线紧张到声音发抖",
                 "客户要我帮他破解密码"]
LEXICAL_LABELS = [(0,), (0,), (1,), (1,), (2, 3)]


@pytest.fixture(scope="module")
def lexical():
    return classify.fit_lexical(LEXICAL_TEXTS, LEXICAL_LABELS, 5)


def test_lexical_classifier_finds_the_passage_by_words_and_character_pairs(lexical):
    for question, passage in (("客戶一直在電話裡罵我", 0), ("上线第一天好紧张", 1), ("有人让我破解别人的密码", 2)):
        scores = lexical.scores(question)
        assert int(np.argmax(scores)) in ({2, 3} if passage == 2 else {passage}), question
        assert scores.sum() == pytest.approx(1.0) and scores[4] == 0.0   # passage 4 has no description


def test_lexical_features_are_tfidf_rows_of_known_tokens(lexical):
    from sklearn.feature_extraction.text import TfidfVectorizer
    oracle = TfidfVectorizer(analyzer=classify.lexical_tokens).fit(LEXICAL_TEXTS)
    for text in LEXICAL_TEXTS + ["客户很紧张", "完全无关的句子 xyz"]:
        cols, values = lexical.features(text)
        expected = oracle.transform([text]).toarray()[0]
        got = np.zeros(len(lexical.tokens))
        got[cols] = values
        order = [oracle.vocabulary_[t] for t in lexical.tokens]
        np.testing.assert_allclose(got, expected[order], atol=1e-9)


def test_question_sharing_no_token_scores_zero(lexical):
    assert not lexical.scores("how do I handle an angry caller").any()
    assert not lexical.scores("").any()


def test_lexical_classifier_round_trips_through_plain_files(lexical, tmp_path):
    lexical.save(tmp_path / "lex")
    assert (tmp_path / "lex" / "params.json").read_text("utf-8").count("破解") >= 1   # readable vocabulary
    loaded = classify.LexicalClassifier.load(tmp_path / "lex")
    for text in ("客户骂人", "紧张", "密码"):
        np.testing.assert_allclose(loaded.scores(text), lexical.scores(text), atol=1e-5)
    np.save(tmp_path / "lex" / "bias.npy", np.zeros(7, np.float32))
    with pytest.raises(ValueError, match="disagree on their shapes"):
        classify.LexicalClassifier.load(tmp_path / "lex")


def test_two_passages_give_a_two_class_model_and_one_gives_none():
    model = classify.fit_lexical(LEXICAL_TEXTS[:4], LEXICAL_LABELS[:4], 3)
    assert model.weights.shape[1] == 2 and int(np.argmax(model.scores("客户骂人"))) == 0
    assert int(np.argmax(model.scores("紧张发抖"))) == 1
    assert classify.fit_lexical(LEXICAL_TEXTS[:2], LEXICAL_LABELS[:2], 3) is None
    with pytest.raises(ValueError, match="5 description texts but 4 label rows"):
        classify.fit_lexical(LEXICAL_TEXTS, LEXICAL_LABELS[:4], 5)


def test_build_saves_the_lexical_classifier_and_load_checks_it(settings, fake_embedder):  # noqa: F811
    from coach import index as ix
    index = Coach(settings, embedder=fake_embedder).index
    model = index.situation_lexical
    assert model is not None and model.n_chunks == len(index.chunks)
    assert any(f.startswith(ix.SITUATION_LEXICAL_DIR + "/") for f in index.manifest.files)
    # fitted on the Chinese descriptions only: the rules passage wins for its own Chinese description
    rules = next(n for n, c in enumerate(index.chunks) if c.essay_id == "rules")
    assert int(np.argmax(model.scores("客户要我帮他破解密码"))) == rules
    # a damaged file is detected by the manifest's hashes, never silently used
    (index.build_dir / ix.SITUATION_LEXICAL_DIR / "weights.npy").write_bytes(b"garbage")
    with pytest.raises(ix.IndexCorrupt):
        Coach(settings, embedder=fake_embedder, build=False)


def test_lexical_ranker_only_for_chinese_questions_in_classifier_mode():
    bridge = rt.bridge_mod.default_bridge()
    assert rt.plan_search("客人一直罵人怎麼辦", "classifier", bridge).lexical_weight == rt.WEIGHT_LEXICAL_CLASSIFIER_CHINESE
    assert rt.plan_search("an angry caller", "classifier", bridge).lexical_weight == 0
    assert rt.plan_search("客人一直罵人怎麼辦", "situations", bridge).lexical_weight == 0
