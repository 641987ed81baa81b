"""Each repair of the cleaning stage on small fixtures, plus the script helpers."""

from __future__ import annotations

import pytest

from coach import clean
from coach.clean import Erratum


def test_strip_markup_removes_tags_entities_and_script_content():
    text, n = clean.strip_markup(
        '<ruby id="0xakh"><b id="x"></b></ruby><p>你好&nbsp;世界&amp;</p>'
        '<script>var a = "<p>";</script><style>p{}</style>完</strong>'
    )
    assert text == "你好\xa0世界&完"
    assert n > 0


def test_strip_markup_leaves_plain_less_than_alone():
    assert clean.strip_markup("满意度<5分的客户")[0] == "满意度<5分的客户"


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("準備簽入系統(tǒng)的時候", "準備簽入系統的時候"),
        ("我隨著業(yè)務慢慢純熟", "我隨著業務慢慢純熟"),
        ("建行生活A(yù)PP是", "建行生活APP是"),
        ("當時的面試官(后来的主管)跟我說", "當時的面試官(后来的主管)跟我說"),
        ("(1)管理者要看他的格局", "(1)管理者要看他的格局"),
        ("(用户反馈)", "(用户反馈)"),
        ("(IBM)", "(IBM)"),
    ],
)
def test_remove_pinyin_only_touches_pinyin(damaged, repaired):
    assert clean.remove_pinyin(damaged)[0] == repaired


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("新聞記者?!?/p>", "新聞記者。”</p>"),  # lost byte ate the "<"
        ("選擇做客服人?!?nbsp;", "選擇做客服人。”&nbsp;"),  # ... or the "&"
        ("話題?,F階段", "話題。現階段"),
        ("太難了?!边@些話說出口", "太難了。”這些話說出口"),
        ("管理?!蔽視\ue4b0_誠布公", "管理。”我會開誠布公"),
        ("比賽等?!坝袝r為了", "比賽等。“有時為了"),
        ("肯定?!彼\ue2c3栽诠ぷ髦?,她會", "肯定。”所以在工作中,她會"),
    ],
)
def test_repair_shifted_gbk_redecodes_runs(damaged, repaired):
    text, n = clean.repair_shifted_gbk(damaged)
    assert text == repaired
    assert n == 1


@pytest.mark.parametrize(
    "text",
    [
        "究竟傷了誰,是你?還是客戶?如果你",
        "我是一個機器人嗎? 二、我的服務",
        "這輩子怎么會選擇客服這么一個行業?下輩子",
        "真的?!",
        "What?! No.",
    ],
)
def test_repair_shifted_gbk_keeps_real_question_marks(text):
    assert clean.repair_shifted_gbk(text) == (text, 0)


def test_repair_shifted_gbk_undoes_a_synthetic_shift():
    # 這 is DF 40: its ASCII trail byte puts an out-of-step decoder back in step
    original = "他說:“我們會盡力。”這樣就好"
    data = original.encode("gb18030")
    cut = data.index("。".encode("gb18030"))
    shifted = data[cut + 1 :]  # lose the lead byte of 。, decode out of step
    wreck = shifted.decode("gb18030", errors="replace").replace("\ufffd", "?")
    damaged = original[: original.index("。")] + "?" + wreck.replace("！", "!").replace("，", ",")
    assert damaged != original and "?!" in damaged
    assert clean.repair_shifted_gbk(damaged)[0] == original


@pytest.mark.parametrize(
    "line",
    [
        "博客首頁 客服知道 途歌李文靜:碩士也不一定能做好客服",
        "2017-11-22 斜杠老炮兒 客服老炮說 途歌Togo 共享汽車",
        "\xa0?人物專訪 第\xa02\xa0期\xa0",
        "受訪者|李文靜",
        "作者 | 联想智慧服务 李晓阳",
        "嗨,这里是【客服人】亲历者自述",
        "这是我们在《客户观察》的第36次见面",
        "end",
        "点个“在看”",
        "《客服老炮兒說》",
        "客服知道,你身邊的客服輕學院",
        '【需投稿、約專訪】請添加管理員"弭小米"微信:mixiaomi_133',
        "15 天全功能免費試用,0 成本體驗智齒客服帶來的改變",
        "北京智齒博創科技有限公司 京ICP備14029759號-1",
    ],
)
def test_boilerplate_lines_are_dropped(line):
    text, n = clean.drop_boilerplate(f"正文第一句。\n{line}\n正文第二句。")
    assert text == "正文第一句。\n正文第二句。"
    assert n == 1


@pytest.mark.parametrize(
    "line",
    [
        "我们总说这次活动的结尾就是end,其实并不是这样,大家还要继续努力,把服务做好,让客户满意,才算真正的结束。" * 2,
        "而生活就是这样,总是在你顺风顺水时来一下出其不意的打击。",
        "客服工作是一个很细碎的事情。",
    ],
)
def test_body_lines_are_not_boilerplate(line):
    assert not clean.is_boilerplate(line)


def test_tidy_lines_drops_blank_and_debris_lines():
    text, n = clean.tidy_lines("  •  \n\n   第一段。\xa0 \n\u3000第二段 有空格。\n——\n")
    assert text == "第一段。\n第二段 有空格。"
    assert n == 4


def test_errata_apply_exactly_once():
    e = Erratum("x", "非??菰?、", "非常枯燥、", "lost bytes")
    assert clean.apply_errata("會非??菰?、天天", [e]) == ("會非常枯燥、天天", 1)
    with pytest.raises(clean.ErratumMismatch):
        clean.apply_errata("no such span", [e])
    with pytest.raises(clean.ErratumMismatch):
        clean.apply_errata("非??菰?、非??菰?、", [e])


def test_clean_text_counts_repairs_and_drops_title_line():
    cleaned = clean.clean_text("<p>标题</p>\n系統(tǒng)正常。\nend\n", title="标题")
    assert cleaned.text == "系統正常。"
    assert cleaned.repairs["markup"] == 2 and cleaned.repairs["pinyin"] == 1
    assert cleaned.repairs["boilerplate"] == 1 and cleaned.repairs["title_line"] == 1
    assert "pinyin=1" in cleaned.summary()


def test_to_simplified_and_normalise_for_match():
    assert clean.to_simplified("關於對客服的偏見,碩士也不一定能做好客服") == "关于对客服的偏见,硕士也不一定能做好客服"
    assert clean.to_simplified("") == ""
    assert clean.normalise_for_match("我是一個機器人嗎? Low,門檻低!") == "我是一个机器人吗low门槛低"
    assert clean.normalise_for_match("“客戶”，　服務。") == "客户服务"
