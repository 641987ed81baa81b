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
