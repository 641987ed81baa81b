"""coach/advice.py: key sentence, distinct cards, quotes, small talk, script (pure functions, tiny inputs)."""

from __future__ import annotations

import pytest

from coach import advice
from coach.advice import CardText


# ------------------------------------------------------------------ key sentence


def test_the_lesson_wins_over_the_story_at_nearly_the_same_similarity():
    story = "这时,老板找我谈心,那天我们聊了很久。"
    lesson = "遇到客户发火,一定要先让他把话说完,再去解决问题。"
    key = advice.choose_key_sentence([story, lesson], [0.861, 0.855])
    assert key.index == 1 and key.text == lesson


def test_a_clearly_closer_sentence_still_wins():
    story = "有一次客户在电话里骂了我半个小时。"
    lesson = "我们要学会换位思考。"
    assert advice.choose_key_sentence([story, lesson], [0.90, 0.82]).index == 0


def test_traditional_cues_count_and_fragments_lose():
    story = "當時,我剛入職三個月。"
    lesson = "處理投訴時,一定要先聽完客戶的話。"
    assert advice.choose_key_sentence([story, lesson], [0.86, 0.855]).index == 1
    assert advice.choose_key_sentence(["嗯。", "客户生气时要先安抚情绪,再讲道理。"], [0.87, 0.855]).index == 1


def test_a_quotation_cut_by_the_splitter_gets_its_mark_back():
    assert advice.repair_quotes("姿態過高”這種情況在投訴客戶身上最明顯。") == "“姿態過高”這種情況在投訴客戶身上最明顯。"
    assert advice.repair_quotes("他说:“先听完再说。") == "他说:“先听完再说。”"
    assert advice.repair_quotes("「對」。") == "「對」。"
    key = advice.choose_key_sentence(["服务姿态过高”的这种错误。"], [0.9])
    assert key.text.startswith("“")


def test_choose_key_sentence_needs_a_sentence():
    with pytest.raises(ValueError):
        advice.choose_key_sentence([], [])


# ------------------------------------------------------------------ distinct cards


def _card(essay, start, end, text, key):
    return CardText(essay, start, end, text, key)


def test_overlapping_passages_of_one_essay_and_shared_key_sentences_are_repeats():
    a = _card("e1", 0, 100, "甲。乙乙乙乙。丙。", "乙乙乙乙。")
    overlap = _card("e1", 60, 160, "乙乙乙乙。丙。丁。", "丁。")
    same_key = _card("e2", 0, 50, "别的文章。乙乙乙乙。", "乙乙乙乙。")
    key_in_shown = _card("e3", 0, 50, "另一段。", "丙。")
    fresh = _card("e4", 0, 50, "全新的建议。", "全新的建议。")
    cards = [a, overlap, same_key, key_in_shown, fresh]
    assert advice.distinct_cards(cards, 3) == [0, 4]
    assert advice.distinct_cards([a, fresh], 1) == [0]


def test_traditional_and_simplified_copies_are_one_passage():
    a = _card("e1", 0, 10, "客户骂人怎么办。", "客户骂人怎么办。")
    b = _card("e2", 0, 10, "客戶罵人怎麼辦。", "客戶罵人怎麼辦。")
    assert advice.distinct_cards([a, b], 3) == [0]


# ------------------------------------------------------------------ quotes


def test_quotes_say_remember_and_what_is_left_alone():
    told = "他给我说的两句话:“发脾气,只是代表你的智慧不足以解决你所面临的问题”“当你懂得了面子不是那么重要的东西时,便是真的成长”"
    assert [q.kind for q in advice.find_quotes(told)] == ["remember", "remember"]  # the second follows the first
    assert advice.find_quotes("我安撫客戶說:「您先別著急,我馬上幫您查一下。」")[0].kind == "say"
    # a customer's words, an interviewer's question, a veteran asking herself: not advice
    assert advice.find_quotes("客户说:“你们这个业务怎么这么难办,我不办了!”") == []
    assert advice.find_quotes("當聽到記者的提問:“對于客服門檻低,誰都能做客服你怎么看?”") == []
    assert advice.find_quotes("她也曾因受挫質疑自己:“這輩子怎么會選擇客服這么一個行業?”") == []
    # an unattributed motto is not lifted out
    assert advice.find_quotes("做到“一人一策,高效精準”。") == []


# ------------------------------------------------------------------ small talk, follow-ups, script


@pytest.mark.parametrize(
    "text,kind",
    [
        ("thanks", "thanks"),
        ("Thank you!", "thanks"),
        ("谢谢", "thanks"),
        ("謝謝你", "thanks"),
        ("hi", "hello"),
        ("你好!", "hello"),
        ("test", "test"),
        ("what can you do?", "help"),
        ("thanks, but the customer still shouts", None),
        ("how do I handle an angry caller", None),
        ("", None),
    ],
)
def test_small_talk(text, kind):
    assert advice.small_talk(text) == kind


def test_one_traditional_form():
    # text already traditional but mixing variants comes out in one form (Taiwan standard)
    assert advice.convert_script("看着他纔明白,爲了客戶", "hant") == "看著他才明白,為了客戶"
    assert advice.convert_script("着急", "hant") == "著急"


def test_followups_are_recognised_in_either_script():
    assert advice.is_followup("那如果他還是罵人呢?")
    assert advice.combine_followup("what if they still shout?", "angry caller") == (
        "angry caller what if they still shout?",
        True,
    )
