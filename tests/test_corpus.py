"""corpus/: the five essays as given, metadata, errata, encodings, user files, and the report."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from coach import clean
from coach.chunk import chunk_corpus
from coach.config import PROJECT_ROOT, ChunkSettings
from coach.corpus import (
    UNKNOWN_AUTHOR,
    UndecodableError,
    corpus_report,
    decode_bytes,
    format_report,
    load_corpus,
    load_errata,
    load_metadata,
)

CORPUS = PROJECT_ROOT / "corpus"

# sha256 of the raw essays exactly as given (copied byte for byte from the seed set; never edited)
RAW_SHA256 = {
    "lenovo-13-years.txt": "a29143c668a75f1a2c4423d17d37e1f025b2cb70026a2e3996d13fba6202fb09",
    "telecom-four-questions.txt": "3b88619e73b9f082a97fa652060c75c81b5030a78df36de1f9b4b307d1e00105",
    "ccb-smart-service.txt": "e91cb3fbfc7171e32c22ce8b124ff2ee14336994f510741fa9271ce36abfa696",
    "12580-hotline.txt": "3a28c2f1681a5bdf6874f65f3dec77569081d7d41cf07605232ef1fcecbe6935",
    "togo-li-wenjing.txt": "a90869d1ed74ae21202c2c1a8599cc0c3c02b744bd9ad1928bd77a83eaaa6c26",
}
# the essays' own question marks, which must survive cleaning
REAL_QUESTION_MARKS = {
    "lenovo-13-years": 0,
    "telecom-four-questions": 17,
    "ccb-smart-service": 1,
    "12580-hotline": 3,
    "togo-li-wenjing": 6,
}


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(CORPUS)


@pytest.fixture(scope="module")
def essays(corpus):
    return {e.meta.id: e for e in corpus.essays}


# --------------------------------------------------------------------------------------------------
# The real corpus


def test_raw_essays_are_untouched(corpus):
    assert {e.path.name: e.raw_sha256 for e in corpus.essays} == RAW_SHA256
    assert corpus.warnings == []


def test_metadata_describes_every_essay():
    metas = load_metadata(CORPUS)
    assert set(metas) == set(RAW_SHA256)
    for meta in metas.values():
        assert meta.id and meta.title and meta.author and meta.organisation and meta.industry
        assert meta.script in ("zh-Hans", "zh-Hant")


def test_every_erratum_matches_its_raw_source_exactly_once():
    metas = {m.id: m for m in load_metadata(CORPUS).values()}
    errata = load_errata(CORPUS)
    assert errata
    for e in errata:
        raw = (CORPUS / metas[e.essay].source).read_bytes().decode("utf-8")
        assert raw.count(e.damaged) == 1, e
        assert e.reason and e.corrected != e.damaged


def test_errata_are_all_applied(essays):
    per_essay = {}
    for e in load_errata(CORPUS):
        per_essay[e.essay] = per_essay.get(e.essay, 0) + 1
        assert e.corrected in essays[e.essay].text
        assert e.damaged not in essays[e.essay].text
    for essay_id, n in per_essay.items():
        assert f"errata={n}" in essays[essay_id].repairs


def test_cleaned_text_has_no_markup_or_entities(essays):
    for e in essays.values():
        assert not re.search(r"</?[a-zA-Z][^>]*>|/p>|/strong>", e.text), e.meta.id
        assert not re.search(r"&(#\d+|[a-zA-Z]+);|nbsp", e.text), e.meta.id


def test_cleaned_text_has_no_pinyin_annotations(essays):
    for e in essays.values():
        assert not re.search(r"\([a-zü]*[āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ][a-zü]*\)?", e.text), e.meta.id
        assert not re.search(r"[a-zü]*[āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ]", e.text), e.meta.id


def test_cleaned_text_has_no_encoding_damage(essays):
    for e in essays.values():
        assert "\ufffd" not in e.text
        assert not any(unicodedata.category(c) in ("Co", "Cn", "Cc") and c != "\n" for c in e.text), e.meta.id
        # a "?" standing for lost bytes sits against punctuation or Latin debris; the real ones do not
        assert not re.search(r"\?[!,?/a-zA-Z]|[!,]\?", e.text), e.meta.id
        for mojibake in ("边@", "坝袝", "彼栽", "菰", "槭谴", "榍锌", "诙虝", "yàn", "yún", "cè"):
            assert mojibake not in e.text
        assert e.text.count("?") == REAL_QUESTION_MARKS[e.meta.id], e.meta.id


def test_cleaned_text_has_no_boilerplate(essays):
    forbidden = [
        "博客首頁",
        "客服知道",
        "人物專訪",
        "受訪者",
        "2017-11-22",
        "老炮兒",
        "投稿",
        "免費試用",
        "ICP",
        "智齒",
        "嗨,这里是",
        "《客户观察》",
        "点个",
        "作者 |",
        "联想智慧服务 李晓阳",
    ]
    for e in essays.values():
        for s in forbidden:
            assert s not in e.text, (e.meta.id, s)
        for line in e.text.split("\n"):
            assert line.strip().lower() != "end"
            assert not clean.is_boilerplate(line)


def test_repairs_seen_in_the_damaged_essays(essays):
    togo = essays["togo-li-wenjing"]
    assert "“從小最想做警察、律師、新聞記者。”" in togo.text
    assert "人們熱議的話題。現階段" in togo.text
    assert "非常枯燥、天天接投訴電話" in togo.text
    assert togo.text.startswith("近幾年,隨著“共享經濟”概念")
    assert togo.text.endswith("才能闖的那么帶勁兒。")
    bank = essays["ccb-smart-service"]
    assert "因為是代表“建行客服”,所以客戶認知上對話的人工" in bank.text
    assert "以逆向為切口,統計" in bank.text and "心之所想卻不便明說" in bank.text
    assert "這是要要求我們在短時間內順應" in bank.text and "建行生活APP" in bank.text
    assert "準備簽入系統的時候" in essays["telecom-four-questions"].text
    lenovo = essays["lenovo-13-years"]
    assert lenovo.text.startswith("我叫李晓阳") and lenovo.text.endswith("愿未来与大家一起长风破浪。")
    assert "(后来的主管)" in lenovo.text


def test_essays_keep_their_script(essays):
    for e in essays.values():
        simplified = clean.to_simplified(e.text)
        assert (simplified == e.text) == (e.meta.script == "zh-Hans"), e.meta.id


def test_corpus_report_lists_the_five_essays(corpus):
    chunks = chunk_corpus(corpus.essays, ChunkSettings())
    rows = {r.essay_id: r for r in corpus_report(corpus.essays, chunks)}
    assert rows["lenovo-13-years"].author == "李晓阳"
    assert rows["lenovo-13-years"].title == "亲历|13年客服之路:道阻且长,不悔初心"
    assert rows["togo-li-wenjing"].author == "李文靜"
    assert rows["togo-li-wenjing"].title == "途歌李文靜:碩士也不一定能做好客服"
    assert "Telecom" in rows["telecom-four-questions"].author
    assert "Construction Bank" in rows["ccb-smart-service"].author
    assert "12580" in rows["12580-hotline"].author
    for r in rows.values():
        assert r.characters > 1500 and r.chunks > 5
    table = format_report(list(rows.values()))
    assert all(essay_id in table for essay_id in rows)
    assert "5 essays" in table


# --------------------------------------------------------------------------------------------------
# Encodings and user files

SAMPLE_HANS = "客服工作是一个很细碎的事情。所以并不是人人都能做客服的,即便你是硕士毕业。"
SAMPLE_HANT = "客服工作是一個很細碎的事情。所以並不是人人都能做客服的,即便你是碩士畢業。"


@pytest.mark.parametrize(
    "data, text, encoding",
    [
        (SAMPLE_HANS.encode("utf-8"), SAMPLE_HANS, "utf-8"),
        (b"\xef\xbb\xbf" + SAMPLE_HANT.encode("utf-8"), SAMPLE_HANT, "utf-8-sig"),
        (SAMPLE_HANS.encode("gbk"), SAMPLE_HANS, "gb18030"),
        (SAMPLE_HANT.encode("big5"), SAMPLE_HANT, "big5"),
        (SAMPLE_HANT.encode("utf-16"), SAMPLE_HANT, None),
        (b"\xfe\xff" + SAMPLE_HANS.encode("utf-16-be"), SAMPLE_HANS, "utf-16-be"),
        ("Plain English advice.".encode("utf-16-le"), "Plain English advice.", "utf-16-le"),
        ("话题".encode("gbk"), "话题", "gb18030"),
        ("話題".encode("big5"), "話題", "big5"),
    ],
)
def test_decode_bytes_detects_encodings(data, text, encoding):
    decoded, enc = decode_bytes(data)
    assert decoded == text
    if encoding:
        assert enc == encoding


@pytest.mark.parametrize("data", [b"", b" \n\t", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", bytes(range(256)) * 4])
def test_decode_bytes_refuses_empty_and_binary(data):
    with pytest.raises(UndecodableError):
        decode_bytes(data)


def test_user_files_are_loaded_or_skipped_by_name(tmp_path: Path):
    (tmp_path / "gbk-essay.txt").write_bytes(("接线的心得\n" + SAMPLE_HANS).encode("gbk"))
    (tmp_path / "big5-essay.txt").write_bytes(("接線的心得\n" + SAMPLE_HANT).encode("big5"))
    (tmp_path / "notes.md").write_text("# 我的经验\n\n- **耐心**倾听客户。\n- 参见[手册](http://x)。\n", "utf-8")
    (tmp_path / "page.html").write_text(
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<h1>服务心得</h1><p>第一段\n话。</p><p>第二段&amp;话。</p>"
        "<script>alert(1)</script></body></html>",
        "utf-8",
    )
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02garbage\x00" * 20)
    (tmp_path / "README.md").write_text("# corpus\nnot an essay\n", "utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    load = load_corpus(tmp_path)
    by_source = {e.path.name: e for e in load.essays}
    assert set(by_source) == {"gbk-essay.txt", "big5-essay.txt", "notes.md", "page.html"}
    assert len(load.warnings) == 2
    assert any("empty.txt" in w for w in load.warnings) and any("binary.txt" in w for w in load.warnings)

    gbk = by_source["gbk-essay.txt"]
    assert gbk.meta.title == "接线的心得" and gbk.meta.author == UNKNOWN_AUTHOR
    assert gbk.text == SAMPLE_HANS and gbk.meta.script == "zh-Hans" and gbk.meta.id == "gbk-essay"
    big5 = by_source["big5-essay.txt"]
    assert big5.text == SAMPLE_HANT and big5.meta.script == "zh-Hant" and big5.encoding == "big5"
    md = by_source["notes.md"]
    assert md.meta.title == "我的经验" and md.text == "耐心倾听客户。\n参见手册。"
    page = by_source["page.html"]
    assert page.meta.title == "服务心得" and page.text == "第一段 话。\n第二段&话。"


def test_a_title_that_is_a_sentence_stays_in_the_body(tmp_path: Path):
    (tmp_path / "one.txt").write_text(SAMPLE_HANS, "utf-8")
    essay = load_corpus(tmp_path).essays[0]
    assert essay.text == SAMPLE_HANS
    assert essay.meta.title.startswith("客服工作是一个")


def test_a_stale_erratum_fails_loudly(tmp_path: Path):
    (tmp_path / "a.txt").write_text("正文。", "utf-8")
    (tmp_path / "errata.toml").write_text(
        '[[erratum]]\nessay = "a"\ndamaged = "不存在"\ncorrected = "x"\nreason = "test"\n', "utf-8"
    )
    with pytest.raises(clean.ErratumMismatch):
        load_corpus(tmp_path)
