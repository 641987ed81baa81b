"""corpus/situations.toml: editor-written bilingual situations attached to passages by an anchor phrase, their
loading and warnings, their vectors in the index, the situation ranker, and staleness when the file changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coach import index as ix
from coach.chunk import chunk_essay
from coach.clean import to_simplified
from coach.config import Settings
from coach.corpus import SITUATIONS_FILE, essay_files, load_corpus, load_situations, locate_situations
from coach.pipeline import situation_embedding_text, situation_records
from coach.retrieve import Coach

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

ESSAYS = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。发脾气解决不了问题。\n",
    "nerves.txt": "第一次接电话\n刚入职时我紧张到声音颤抖。主管让我多听老同事的录音。慢慢地我就不怕了。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
}
SITUATIONS = """
[[situation]]
essay = "rules"
anchor = "破解密碼"
en = "A customer asks me to crack a password against the rules"
zh = "客户要我帮他破解密码,违反规定"

[[situation]]
essay = "nerves"
anchor = "紧张到声音颤抖"
en = "New agent, nervous on the first day, voice shaking"
zh = "新人第一天接电话很紧张"
"""


def _entry(essay: str, anchor: str, **texts: str) -> str:
    """One [[situation]] table of situations.toml."""
    return f'\n[[situation]]\nessay = "{essay}"\nanchor = "{anchor}"\n' + "".join(
        f'{field} = "{text}"\n' for field, text in texts.items()
    )


def _write(corpus: Path, situations: str = SITUATIONS) -> None:
    corpus.mkdir(exist_ok=True)
    for name, text in ESSAYS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    (corpus / SITUATIONS_FILE).write_text(situations, encoding="utf-8")


@pytest.fixture
def settings(tmp_path) -> Settings:
    _write(tmp_path / "corpus")
    return Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", model="fake")


# ------------------------------------------------------------------ the real file


@pytest.fixture(scope="module")
def real():
    loaded = load_corpus(CORPUS)
    return loaded, {e.meta.id: e.text for e in loaded.essays}, load_situations(CORPUS)


def test_every_anchor_occurs_in_its_essay_exactly_once(real):
    _, texts, situations = real
    assert situations
    problems = [
        f"{s.essay}: {s.anchor!r} occurs {texts.get(s.essay, '').count(s.anchor)} times"
        for s in situations
        if texts.get(s.essay, "").count(s.anchor) != 1
    ]
    assert not problems, "situations.toml anchors must occur exactly once in the cleaned essay:\n" + "\n".join(problems)


def test_every_passage_has_a_situation_and_descriptions_are_plain(real):
    loaded, _, situations = real
    chunks = [c for e in loaded.essays for c in chunk_essay(e, Settings().chunk)]
    records, warnings = situation_records(CORPUS, loaded.essays, chunks)
    assert not warnings
    covered = {i for r in records for i in r["chunks"]}
    assert [c.id for c in chunks if c.id not in covered] == []
    for s in situations:
        assert to_simplified(s.zh) == s.zh, f"zh of {s.anchor!r} should be simplified Chinese"
        assert s.en.isascii(), f"en of {s.anchor!r} should be plain English"
        assert not s.zh_hant or to_simplified(s.zh_hant) != s.zh_hant, (
            f"zh_hant of {s.anchor!r} should be written in traditional characters"
        )
    assert sum(bool(s.zh_hant) for s in situations) >= len(chunks) * 2, "Taiwan / Hong Kong questions per passage"


def test_situations_file_is_not_an_essay():
    assert all(p.name != SITUATIONS_FILE for p in essay_files(CORPUS))


# ------------------------------------------------------------------ loading


def test_missing_anchor_and_unknown_essay_warn_by_name(tmp_path):
    _write(
        tmp_path,
        SITUATIONS
        + _entry("angry", "这句话不在文中", en="x", zh="x")
        + _entry("no-such-essay", "客户", en="x", zh="x"),
    )
    texts = {e.meta.id: e.text for e in load_corpus(tmp_path).essays}
    found, warnings = locate_situations(load_situations(tmp_path), texts)
    assert [s.anchor for s, _, _ in found] == ["破解密碼", "紧张到声音颤抖"]
    assert len(warnings) == 2
    assert "这句话不在文中" in warnings[0] and "angry" in warnings[0]
    assert "no-such-essay" in warnings[1]


def test_malformed_file_is_named(tmp_path):
    _write(tmp_path, '[[situation]]\nessay = "rules"\nanchor = \n')
    with pytest.raises(ValueError, match=SITUATIONS_FILE):
        load_situations(tmp_path)
    _write(tmp_path, '[[situation]]\nessay = "rules"\nanchor = "破解密碼"\nen = "x"\n')  # no zh
    with pytest.raises(ValueError, match=rf"{SITUATIONS_FILE}.*#1"):
        load_situations(tmp_path)


@pytest.mark.parametrize(
    "fields",
    [
        'en = "x"',  # English without its simplified-Chinese pair
        'zh = "客户要我破解密码"',  # and the other way round
        'zh_hant = "  "',  # blank
        "",  # no description at all
    ],
)
def test_entry_without_a_usable_description_is_named(tmp_path, fields):
    _write(tmp_path, f'[[situation]]\nessay = "rules"\nanchor = "破解密碼"\n{fields}\n')
    with pytest.raises(ValueError, match=rf"{SITUATIONS_FILE}: situation #1 .*zh_hant"):
        load_situations(tmp_path)


def test_traditional_question_entry_is_a_third_description(tmp_path):
    _write(tmp_path, SITUATIONS + _entry("rules", "破解密碼", zh_hant="客人  一直拜託我幫他 破解密碼,我該怎麼拒絕?"))
    situations = load_situations(tmp_path)
    assert situations[-1].texts() == [("zh-Hant", "客人 一直拜託我幫他 破解密碼,我該怎麼拒絕?")]
    assert [lang for lang, _ in situations[0].texts()] == ["en", "zh"]
    loaded = load_corpus(tmp_path)
    chunks = [c for e in loaded.essays for c in chunk_essay(e, Settings().chunk)]
    records, warnings = situation_records(tmp_path, loaded.essays, chunks)
    assert not warnings and [r["lang"] for r in records] == ["en", "zh", "en", "zh", "zh-Hant"]
    # embedded in simplified characters (the form a traditional question is searched in), Taiwan words kept
    assert situation_embedding_text(records[-1]) == "客人 一直拜托我帮他 破解密码,我该怎么拒绝?"
    assert situation_embedding_text(records[0]) == records[0]["text"]


def test_no_file_means_no_situations(tmp_path):
    assert load_situations(tmp_path) == []


# ------------------------------------------------------------------ ranking


def test_situation_ranking_takes_the_best_description_per_passage():
    from coach.search.rankers import best_per_passage

    scores = np.array([0.2, 0.9, 0.5, -0.1])
    attached = [(0,), (2,), (0, 1), (3,)]
    # passage 2: 0.9, passage 0: max(0.2, 0.5), passage 1: 0.5, passage 3: -0.1, passage 4: none
    assert best_per_passage(scores, attached, 5).tolist() == [0.5, 0.5, 0.9, -0.1, -np.inf]


# ------------------------------------------------------------------ index


def test_build_stores_situations_as_plain_files(settings, fake_embedder):
    _write(settings.corpus_dir, SITUATIONS + _entry("rules", "破解密碼", zh_hant="客人要我幫他破解密碼"))
    index = Coach(settings, embedder=fake_embedder).index
    rows = ix.read_jsonl(index.build_dir / ix.SITUATION_TEXTS_FILE)
    assert [(r["lang"], r["chunks"]) for r in rows] == [
        ("en", ["rules#000"]),
        ("zh", ["rules#000"]),
        ("en", ["nerves#000"]),
        ("zh", ["nerves#000"]),
        ("zh-Hant", ["rules#000"]),
    ]
    assert rows[-1]["text"] == "客人要我幫他破解密碼"  # stored as written ...
    vectors = np.load(index.build_dir / ix.SITUATIONS_FILE, allow_pickle=False)
    assert vectors.shape == (5, fake_embedder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], fake_embedder.encode_queries([rows[0]["text"]])[0], atol=1e-6)
    np.testing.assert_allclose(
        vectors[-1], fake_embedder.encode_queries(["客人要我帮他破解密码"])[0], atol=1e-6
    )  # ... embedded in simplified characters
    m = index.manifest
    assert m.counts["situations"] == 3 and m.counts["situation_texts"] == 5
    assert {ix.SITUATIONS_FILE, ix.SITUATION_TEXTS_FILE} <= set(m.files)
    assert SITUATIONS_FILE in m.corpus


def test_english_question_finds_passage_through_its_situation(settings, fake_embedder):
    from coach.search import SearchConfig

    # the description ranker alone (the fake embedder's vectors share no meaning across languages)
    only = SearchConfig(dense=0.0, sentence=0.0, keyword=0.0, bigram=0.0, description=1.0)
    coach = Coach(settings, embedder=fake_embedder, config=only)
    answer = coach.ask("a customer wants me to crack a password", top_k=3, mode="full")
    assert answer.results[0].chunk.essay_id == "rules"
    answer = coach.ask("nervous on my first day, my voice is shaking", top_k=3, mode="full")
    assert answer.results[0].chunk.essay_id == "nerves"


def test_editing_situations_makes_index_stale(settings, fake_embedder):
    Coach(settings, embedder=fake_embedder)
    path = settings.corpus_dir / SITUATIONS_FILE
    path.write_text(path.read_text("utf-8").replace("voice shaking", "hands trembling"), "utf-8")
    with pytest.raises(ix.IndexStale, match=SITUATIONS_FILE):
        Coach(settings, embedder=fake_embedder, build=False)
    rebuilt = Coach(settings, embedder=fake_embedder)
    assert any("hands trembling" in r["text"] for r in rebuilt.index.situation_texts)


def test_bad_anchor_is_a_build_warning_not_a_failure(settings, fake_embedder):
    (settings.corpus_dir / SITUATIONS_FILE).write_text(SITUATIONS.replace("破解密碼", "不存在的话"), "utf-8")
    index = Coach(settings, embedder=fake_embedder).index
    assert any("不存在的话" in w for w in index.warnings)
    assert index.manifest.counts["situations"] == 1


def test_corpus_without_situations_still_builds(settings, fake_embedder):
    (settings.corpus_dir / SITUATIONS_FILE).unlink()
    coach = Coach(settings, embedder=fake_embedder)
    assert coach.index.manifest.counts["situations"] == 0
    assert coach.ask("客户破口大骂", mode="full").results
