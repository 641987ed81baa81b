"""Fusion, diversity and query sanitising on tiny inputs with known answers."""

from __future__ import annotations

import pytest

from coach.retrieve import MAX_QUERY_CHARS, RRF_K, diversify, rrf, sanitize_query


def test_rrf_known_values():
    fused = rrf([[1, 2, 3], [3, 1]])
    assert fused[1] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert fused[3] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert fused[2] == pytest.approx(1 / (RRF_K + 2))
    assert sorted(fused, key=fused.get, reverse=True) == [1, 3, 2]


def test_rrf_weights_and_empty_rankers():
    assert rrf([[], []]) == {}
    fused = rrf([[1], [2]], weights=[2.0, 1.0])
    assert fused[1] == pytest.approx(2 * fused[2])


def test_diversify_prefers_new_essays_unless_clearly_better():
    essay = {1: "a", 2: "a", 3: "b", 4: "c"}.get
    ranked = [(1, 1.0), (2, 0.9), (3, 0.85), (4, 0.8)]
    assert [d for d, _ in diversify(ranked, essay, 3)] == [1, 3, 4]
    # doc 2 beats the best new essay by more than the margin: it is taken
    ranked = [(1, 1.0), (2, 0.9), (3, 0.3), (4, 0.2)]
    assert [d for d, _ in diversify(ranked, essay, 3)] == [1, 2, 3]
    # only one essay left: repeats fill the slots
    assert [d for d, _ in diversify([(1, 1.0), (2, 0.5)], essay, 3)] == [1, 2]


@pytest.mark.parametrize("raw,expected", [
    ("", ""),
    ("   \t\n ", ""),
    ("客户\x00生气\x07了", "客户生气了"),
    ("angry\u202ecaller\u200b", "angrycaller"),
    ("lone \ud800 surrogate", "lone surrogate"),
    ("  多個   空格 ", "多個 空格"),
    ("客戶很兇 😡", "客戶很兇 😡"),
])
def test_sanitize_query(raw, expected):
    assert sanitize_query(raw) == (expected, False)


def test_sanitize_caps_length_and_reports_it():
    text, truncated = sanitize_query("怒" * (10 * 1024 * 1024))
    assert truncated and len(text) == MAX_QUERY_CHARS


# ------------------------------------------------------------------ search plans, weighted BM25, out-of-domain

from coach import bridge as br  # noqa: E402
from coach import retrieve as rt  # noqa: E402


def _bridge():
    return br.Bridge(glossary={br._phrase_key("angry"): ("生气",)},
                     themes=[br.Theme("angry", "Angry", "生气", ("angry",), "客户破口大骂。")],
                     dictionary=br.Dictionary())


def test_plan_per_mode():
    b = _bridge()
    dense = rt.plan_search("angry caller", "dense", b)
    assert dense.dense_texts == ["angry caller"] and dense.keyword_weight == 0
    kw = rt.plan_search("angry caller", "keyword", b)
    assert kw.dense_weights == [0.0] and kw.keyword_weight > 0
    hybrid = rt.plan_search("angry caller", "hybrid", b)
    assert hybrid.dense_texts == ["angry caller"] and hybrid.keyword_terms == hybrid.own_terms
    bridged = rt.plan_search("angry caller", "bridge", b)
    assert bridged.dense_texts == ["angry caller", "生气"] and "生气" in bridged.keyword_terms
    full = rt.plan_search("angry caller", "full", b)
    assert full.dense_texts == ["angry caller", "生气", "客户破口大骂。"]
    assert full.keyword_terms["破口大骂"] == br.THEME_WEIGHT and full.keyword_terms["生气"] == br.GLOSSARY_WEIGHT


def test_weighted_bm25_matches_plain_scores_and_scales():
    from coach.keyword import KeywordIndex
    kwi = KeywordIndex.build(["客户生气了破口大骂", "新人紧张到颤抖", "客户满意度提升"])
    plain, terms = kwi.scores("客户生气")
    weighted, wterms = kwi.weighted_scores({t: 1.0 for t in terms})
    assert weighted == pytest.approx(plain, rel=1e-5)
    doubled, _ = kwi.weighted_scores({t: 2.0 for t in terms})
    assert doubled == pytest.approx(2 * plain, rel=1e-5)
    assert kwi.weighted_scores({"未知词": 1.0})[0].sum() == 0


def test_out_of_domain_evidence():
    below = rt.OOD_DENSE_FLOOR - 0.01
    assert not rt.Evidence(rt.OOD_DENSE_FLOOR + 0.01, 0.0).out_of_domain()
    assert not rt.Evidence(below, rt.OOD_KEYWORD_FLOOR + 1).out_of_domain()
    assert rt.Evidence(below, 0.0).out_of_domain()
    # English questions have their own, lower floor
    assert not rt.Evidence(rt.OOD_DENSE_FLOOR_ENGLISH + 0.01, 0.0, english=True).out_of_domain()
    assert rt.Evidence(rt.OOD_DENSE_FLOOR_ENGLISH - 0.01, 0.0, english=True).out_of_domain()
    # one generic glossary word is not enough; a theme, or two glossary phrases, are
    assert rt.Evidence(0.5, 0.0, glossary_hits=1, english=True).out_of_domain()
    assert not rt.Evidence(0.5, 0.0, glossary_hits=2, english=True).out_of_domain()
    assert not rt.Evidence(0.5, 0.0, themes=1).out_of_domain()


def test_unknown_mode_is_rejected():
    class Stub(rt.Coach):
        def __init__(self):
            pass
    with pytest.raises(ValueError):
        Stub().ask("x", mode="nope")


def test_sentence_ranking_uses_best_sentence():
    import numpy as np
    scores = np.array([0.1, 0.9, 0.5, 0.6, 0.2])
    rows = [range(0, 2), range(2, 4), range(4, 5), range(5, 5)]
    assert rt.sentence_ranking(scores, rows) == [0, 1, 2, 3]
    assert rt.plan_search("angry", "full", _bridge()).sentence_weight == rt.WEIGHT_SENTENCE
    assert rt.plan_search("angry", "bridge", _bridge()).sentence_weight == 0
