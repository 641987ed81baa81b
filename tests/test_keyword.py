"""The word cutter (rjieba) gives jieba's search tokens, so the keyword index means what it meant with jieba."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coach import keyword
from coach.clean import to_simplified
from coach.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _texts() -> list[str]:
    from coach.corpus import load_corpus

    texts = [
        "客戶在電話裡破口大骂,我先讓他把話說完",
        "老人家聽唔清楚,點算?",
        "满意度高达97%,接听率3.5%",
        "colleagues resist selling paid add-on services",
        "how do I handle an angry caller",
        "工单#123 & 回访 +86-10-1234 e-mail",
    ]
    for essay in load_corpus(Settings().corpus_dir).essays:
        texts += [line for line in essay.text.splitlines() if line.strip()]
    for line in (ROOT / "eval" / "queries.jsonl").read_text("utf-8").splitlines()[::5]:
        texts.append(json.loads(line)["query"])
    return [to_simplified(t).lower() for t in texts]


def test_search_tokens_are_jiebas():
    jieba = pytest.importorskip("jieba")
    jieba.setLogLevel(60)
    for text in _texts():
        expected = [w.strip() for w in jieba.lcut_for_search(text)]
        got = [w.strip() for w in keyword.cut_for_search(text)]
        keep = keyword._TOKEN_OK.search  # tokenize keeps only words with a letter, digit or Han character
        assert [w for w in got if w and keep(w)] == [w for w in expected if w and keep(w)], text


def test_tokenize_drops_stopwords_and_punctuation():
    assert keyword.tokenize("客戶在電話裡破口大罵!") == ["客户", "电话", "破口", "破口大骂"]
