"""Chunking: sentence boundaries, sections, coverage — on the real corpus and on fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from coach.chunk import chunk_corpus, chunk_essay, heading_kind, sections, split_sentences
from coach.config import PROJECT_ROOT, ChunkSettings
from coach.corpus import Essay, EssayMeta, load_corpus

DEFAULT = ChunkSettings()


@pytest.fixture(scope="module")
def essays():
    return {e.meta.id: e for e in load_corpus(PROJECT_ROOT / "corpus").essays}


@pytest.fixture(scope="module")
def chunks(essays):
    return chunk_corpus(essays.values(), DEFAULT)


def make_essay(text: str, essay_id: str = "t") -> Essay:
    return Essay(meta=EssayMeta(id=essay_id, title="t", author="a"), path=Path("t.txt"), raw_sha256="0", text=text)


def assert_well_formed(essay: Essay, chunks, settings: ChunkSettings = DEFAULT):
    text = essay.text
    body_sentences = [s for block in sections(text) for s in block.sentences]
    starts = {s.start for s in body_sentences}
    ends = {s.end for s in body_sentences}
    covered = set()
    for n, c in enumerate(chunks):
        assert c.id == f"{essay.meta.id}#{n:03d}"
        assert c.text == text[c.start : c.end]
        assert c.start in starts and c.end in ends  # never starts or ends inside a sentence
        assert c.sentences[0].start == c.start and c.sentences[-1].end == c.end
        for s in c.sentences:
            assert text[s.start : s.end] == s.text
            covered.add((s.start, s.end))
        if len(c.sentences) > 1:
            assert len(c.text) <= settings.max_chars
    missing = [s.text for s in body_sentences if (s.start, s.end) not in covered]
    assert missing == []  # nothing dropped
    # every non-heading character of the essay is in some sentence
    in_sentence = sum(s.end - s.start for s in body_sentences)
    heading_chars = sum(len(line) for line in text.split("\n") if heading_kind(line))
    assert in_sentence + heading_chars >= len(text.replace("\n", "").replace(" ", "")) - 5


# --------------------------------------------------------------------------------------------------
# The real corpus


def test_every_sentence_is_in_a_chunk_and_no_chunk_cuts_a_sentence(essays, chunks):
    for essay_id, essay in essays.items():
        assert chunks[essay_id]
        assert_well_formed(essay, chunks[essay_id])


def test_no_sentence_contains_a_sentence_end_in_its_middle(chunks):
    for cs in chunks.values():
        for c in cs:
            for s in c.sentences:
                inner = s.text.rstrip("。！？!?；;…”’」』)）》 ")
                assert not any(mark in inner for mark in "。！？；"), s.text


def test_chunk_sizes_suit_a_small_embedding_model(chunks):
    sizes = [len(c.text) for cs in chunks.values() for c in cs]
    assert max(sizes) <= DEFAULT.max_chars
    assert 120 <= sum(sizes) / len(sizes) <= 320


def _sections(chunks, essay_id):
    seen = []
    for c in chunks[essay_id]:
        if c.section not in seen:
            seen.append(c.section)
    return seen


def test_section_titles(chunks):
    assert _sections(chunks, "ccb-smart-service") == [
        "",
        "01 跬步之積,工欲善其事必先利其器",
        "02 事無巨細,堅持理論與實操相結合",
        "03 轉變思路,“慧服務”也需“會”服務",
        "04 精益求精,“取乎其上,得乎其中”",
    ]
    assert _sections(chunks, "telecom-four-questions") == [
        "",
        "我是一個機器人嗎?",
        "我的服務姿態高嗎?",
        "我有勇氣承認錯誤嗎?",
        "我期待的客戶是怎樣的?",
    ]
    assert _sections(chunks, "lenovo-13-years") == ["", "03"]
    assert _sections(chunks, "togo-li-wenjing") == [
        "",
        "關于成長,欲戴王冠必承其重",
        "關于管理,小團隊靠情,大團隊靠管",
        "關于管理,小團隊靠情,大團隊靠管 / 1、首先要篩選到合適的人",
        "關于管理,小團隊靠情,大團隊靠管 / 2、其次是過程管理中及時發現和干預",
        "關于管理,小團隊靠情,大團隊靠管 / 3、再次,不拋棄不放棄的團隊文化建設",
        "關于對客服的偏見,碩士也不一定能做好客服",
        "寫在最后,客服人的小確幸",
    ]
    assert _sections(chunks, "12580-hotline") == [
        "",
        "1.你所经历的最好的客服体验是什么样子的?",
        "2.你认为的好的客服应该是什么样子的?",
        "3.目前你所接触到的最好的客服是哪一家的?",
    ]


def test_headings_are_never_chunk_text(chunks):
    for cs in chunks.values():
        for c in cs:
            for line in c.text.split("\n"):
                assert heading_kind(line) is None, line


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "“比如改變了溝通能力、協調能力、組織能力……太多太多。”",
            ["“比如改變了溝通能力、協調能力、組織能力……", "太多太多。”"],
        ),
        ("“面對這樣的偏見,就一句話:能接電話就比你牛! ”", ["“面對這樣的偏見,就一句話:能接電話就比你牛! ”"]),
        ("你接受得了嗎?”。這樣才能保證。", ["你接受得了嗎?”。", "這樣才能保證。"]),
        ("究竟傷了誰,是你?還是客戶?如果你", ["究竟傷了誰,是你?", "還是客戶?", "如果你"]),
        ("Be kind. Listen first! Rate is 2.5 now", ["Be kind.", "Listen first!", "Rate is 2.5 now"]),
        (
            "淘汰率也接近2/3,在其他一些企业里面确实少见。PS:据说",
            ["淘汰率也接近2/3,在其他一些企业里面确实少见。", "PS:据说"],
        ),
    ],
)
def test_split_sentences(line, expected):
    got = split_sentences(line, offset=10)
    assert [s.text for s in got] == expected
    for s in got:
        assert line[s.start - 10 : s.end - 10] == s.text


@pytest.mark.parametrize(
    "line, kind",
    [
        ("03", "number"),
        ("01", "number"),
        ("跬步之积,工欲善其事必先利其器", "plain"),
        ("关于管理,小团队靠情,大团队靠管", "plain"),
        ("我是一个机器人吗?", "plain"),
        ("1、首先要筛选到合适的人", "numbered"),
        ("1.你所经历的最好的客服体验是什么样子的?", "numbered"),
        ("当记者问到,客服人的独特价值是什么时?", None),
        ("客服工作是一个很细碎的事情。", None),
        ("其实想要做好客服很难,必须有以下优秀特质:", None),
        ("“发脾气,只是代表你的智慧不足以解决你所面临的问题”", None),
        ("1、善于发现客服工作的价值,了解所做的事情的意义会让自己更加有动力,对自己做的事情,别人是否认可。", None),
    ],
)
def test_heading_kind(line, kind):
    assert heading_kind(line) == kind


def test_bare_number_heading_takes_the_title_below_it():
    essay = make_essay("引言一句。\n01\n跬步之积,工欲善其事\n正文一。正文二。\n03\n没有标题的正文。")
    got = chunk_essay(essay, DEFAULT)
    assert [(c.section, c.text) for c in got] == [
        ("", "引言一句。"),
        ("01 跬步之积,工欲善其事", "正文一。正文二。"),
        ("03", "没有标题的正文。"),
    ]


def test_a_trailing_heading_like_line_is_kept_as_text():
    essay = make_essay("正文一句。\n平凡的客服")
    assert [c.text for c in chunk_essay(essay, DEFAULT)] == ["正文一句。\n平凡的客服"]


def test_long_sentence_is_its_own_chunk_and_overlap_is_one_sentence():
    long = "很" * 500 + "长。"
    text = "短句一。短句二。" + long + "短句三。短句四。"
    got = chunk_essay(make_essay(text), ChunkSettings(target_chars=10, max_chars=20, overlap_sentences=1))
    assert any(c.text == long for c in got)
    assert_well_formed(make_essay(text), got, ChunkSettings(target_chars=10, max_chars=20, overlap_sentences=1))
    assert [c.text for c in got] == ["短句一。短句二。", long, "短句三。短句四。"]  # no overlap across it
    short = chunk_essay(make_essay("一句。" * 30), ChunkSettings(target_chars=12, max_chars=20, overlap_sentences=1))
    for a, b in zip(short, short[1:]):
        assert b.sentences[0] == a.sentences[-1]  # one sentence of overlap


def test_no_overlap_setting_gives_disjoint_chunks():
    text = "。".join(f"第{i}句话有一些内容" for i in range(40)) + "。"
    got = chunk_essay(make_essay(text), ChunkSettings(target_chars=50, max_chars=80, overlap_sentences=0))
    for a, b in zip(got, got[1:]):
        assert a.end <= b.start


sentence = st.builds(
    lambda body, end: body + end,
    st.text(alphabet="客服好的我你是在有一人。,、“”Ab1 ", min_size=1, max_size=60).filter(lambda s: s.strip()),
    st.sampled_from(["。", "?", "!”", "……", "", "。”"]),
)
paragraph = st.lists(sentence, min_size=1, max_size=6).map("".join)
heading = st.sampled_from(["01", "关于成长,欲戴王冠", "我是一个机器人吗?", "1、首先要选人"])


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(paragraph, heading), min_size=1, max_size=12), st.integers(20, 300), st.integers(0, 3))
def test_property_nothing_dropped_and_no_sentence_cut(lines, target, overlap):
    text = "\n".join(line.strip() for line in lines if line.strip())
    if not text:
        return
    essay = make_essay(text)
    cs = ChunkSettings(target_chars=target, max_chars=target * 2, overlap_sentences=overlap)
    assert_well_formed(essay, chunk_essay(essay, cs), cs)
