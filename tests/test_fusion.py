"""Fusion, diversity and query sanitising on tiny inputs with known answers."""

from __future__ import annotations

import pytest

import numpy as np

from coach.retrieve import (MAX_QUERY_CHARS, RRF_K, Ranked, best_situation_scores, diversify, fuse_convex, fuse_rrf,
                            rrf, sanitize_query)


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


def test_convex_fusion_known_values():
    # cosines normalised over the candidates (min 0.5 -> 0, max 0.9 -> 1); BM25 from 0 (no match)
    dense = Ranked("dense", [1, 2, 3], [0.9, 0.7, 0.5], 1.0)
    keyword = Ranked("keyword", [3, 2], [6.0, 3.0], 2.0, floor=0.0)
    fused = fuse_convex([dense, keyword])
    assert fused[1] == pytest.approx(1.0)
    assert fused[2] == pytest.approx(0.5 + 2 * 0.5)
    assert fused[3] == pytest.approx(0.0 + 2 * 1.0)
    assert sorted(fused, key=fused.get, reverse=True) == [3, 2, 1]


def test_convex_fusion_keeps_a_clear_lead_that_rrf_flattens():
    # the situation ranker is sure of passage 7 (0.95 against 0.80 for the next); two weaker rankers both prefer 8
    situation = Ranked("situation", [7, 8, 9], [0.95, 0.80, 0.79], 2.0)
    dense = Ranked("dense", [8, 9, 7], [0.85, 0.84, 0.83], 1.0)
    sentence = Ranked("sentence", [8, 7, 9], [0.88, 0.87, 0.86], 1.0)
    convex, by_rank = fuse_convex([situation, dense, sentence]), fuse_rrf([situation, dense, sentence])
    assert max(convex, key=convex.get) == 7
    assert max(by_rank, key=by_rank.get) == 8


@pytest.mark.parametrize("ranker", [
    Ranked("empty", [], [], 1.0),
    Ranked("one", [4], [0.7], 1.0),
    Ranked("ties", [4, 5], [0.7, 0.7], 1.0),
])
def test_convex_fusion_degenerate_rankers(ranker):
    fused = fuse_convex([ranker, Ranked("keyword", [5], [2.0], 1.0, floor=0.0)])
    assert fused[5] >= 1.0                      # a lone BM25 match counts fully
    assert all(np.isfinite(v) for v in fused.values())
    for doc in ranker.docs:                     # a lone or tied candidate counts fully too, never 0
        assert fused[doc] >= 1.0


def test_ranked_top_and_best_situation_scores():
    ranked = Ranked.top("keyword", np.array([0.0, 3.0, -1.0, 5.0]), 1.5, floor=0.0)
    assert (ranked.docs, ranked.scores, ranked.weight) == ([3, 1], [5.0, 3.0], 1.5)
    # description 0 describes passages 0 and 1, description 1 passage 1, passage 2 has none
    best = best_situation_scores(np.array([0.6, 0.8]), [(0, 1), (1,)], 3)
    assert best[0] == pytest.approx(0.6) and best[1] == pytest.approx(0.8) and best[2] == -np.inf


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


@pytest.mark.parametrize("text,expected", [
    ("超过自己", ["超过", "过自", "自己"]),
    ("會不會被取代?", ["会不", "不会", "会被", "被取", "取代"]),          # traditional: pairs of the simplified form
    ("KPI 太高, 我好累", ["太高", "我好", "好累"]),                       # no pair across a non-Han gap
    ("angry caller", []),
    ("", []),
])
def test_char_bigrams(text, expected):
    from coach.keyword import char_bigrams
    assert char_bigrams(text) == expected


def test_bigram_bm25_matches_where_word_segmentation_differs():
    from coach.keyword import KeywordIndex, char_bigrams, tokenize
    passages = ["刚毕业的客服人员能学到不少东西", "客户生气了破口大骂", "新人紧张到颤抖"]
    question = "我想做客服"                        # jieba: 想 / 做客 / 服, so no word is shared with 客服人员
    assert not set(tokenize(question)) & set(tokenize(passages[0]))
    assert KeywordIndex.build(passages).scores(question)[0].sum() == 0
    pairs = KeywordIndex.build(passages, char_bigrams)
    scores, terms = pairs.weighted_scores(dict.fromkeys(char_bigrams(question), 1.0))
    assert terms == ["客服"] and int(np.argmax(scores)) == 0 and scores[1] == scores[2] == 0


def test_plan_adds_character_pairs_for_chinese_questions_only():
    b = _bridge()
    zh = rt.plan_search("帶新人會不會被超過", "situations", b)
    assert list(zh.bigram_terms)[:3] == ["带新", "新人", "人会"]           # pairs of the simplified question
    assert zh.bigram_weight == rt.WEIGHT_BIGRAM_CHINESE and zh.situation_bigram_weight > 0
    for plan in (rt.plan_search("angry caller", "situations", b), rt.plan_search("带新人", "full", b)):
        assert plan.bigram_terms == {} and plan.bigram_weight == plan.situation_bigram_weight == 0


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


@pytest.mark.parametrize("english,traditional", [(True, False), (False, False), (False, True)])
def test_far_from_every_situation_description_is_out_of_domain(english, traditional):
    floor = (rt.OOD_SITUATION_FLOOR_ENGLISH if english else
             rt.OOD_SITUATION_FLOOR_TRADITIONAL if traditional else rt.OOD_SITUATION_FLOOR)
    in_by_bridge = {"best_dense": 0.99, "best_keyword": 9.0, "glossary_hits": 3, "themes": 1, "english": english,
                    "traditional": traditional}
    assert rt.Evidence(**in_by_bridge, best_situation=floor - 0.001).out_of_domain()
    assert not rt.Evidence(**in_by_bridge, best_situation=floor + 0.001).out_of_domain()
    # a corpus without situation descriptions decides on the other evidence alone
    assert not rt.Evidence(**in_by_bridge, best_situation=None).out_of_domain()
    assert rt.Evidence(0.5, 0.0, english=english, best_situation=None).out_of_domain()


def test_closer_to_an_out_of_scope_prototype_than_to_any_situation_is_out_of_domain():
    inside = {"best_dense": 0.99, "best_keyword": 9.0, "glossary_hits": 3, "themes": 1, "best_situation": 0.95}
    margin = rt.OOD_SCOPE_MARGIN
    assert rt.Evidence(**inside, best_out_of_scope=0.95 + margin + 0.001).out_of_domain()
    assert not rt.Evidence(**inside, best_out_of_scope=0.95 + margin - 0.001).out_of_domain()
    assert not rt.Evidence(**inside, best_out_of_scope=None).out_of_domain()          # no prototypes: no rule


def test_out_of_scope_prototypes_are_encoded_once_in_the_form_questions_are_searched(small_coach, monkeypatch):
    from coach import bridge as br
    coach, emb = small_coach
    protos = [br.OutOfScope("prices", "中華電信的月租方案多少錢?"), br.OutOfScope("it", "how do I reset my VPN password")]
    coach.bridge = br.Bridge(glossary={}, themes=[], dictionary=br.Dictionary(), out_of_scope=protos, regional={})
    coach._scope_vectors = None
    seen = []
    real = emb.inner.encode_queries            # with the query prompt, like the situation descriptions
    monkeypatch.setattr(emb, "encode_queries", lambda texts, **kw: seen.append(list(texts)) or real(texts),
                        raising=False)
    for _ in range(3):
        answer = coach.ask("中華電信的月租方案多少錢?")
    assert [t for t in seen if "how do I reset my VPN password" in t] == [
        ["中华电信的月租方案多少钱?", "how do I reset my VPN password"]]
    assert answer.evidence.best_out_of_scope == pytest.approx(1.0, abs=1e-5)      # the very same question


@pytest.mark.parametrize("fusion", sorted(rt.FUSIONS))
def test_every_fusion_answers_end_to_end(small_coach, monkeypatch, fusion):
    coach, _ = small_coach
    monkeypatch.setattr(rt, "FUSION", fusion)
    answer = coach.ask("客户破口大骂怎么办", top_k=2)
    assert answer.results and all(np.isfinite(h.score) for h in answer.results)


def test_unknown_mode_is_rejected():
    class Stub(rt.Coach):
        def __init__(self):
            pass
    with pytest.raises(ValueError):
        Stub().ask("x", mode="nope")


def test_sentence_ranking_uses_best_sentence():
    scores = np.array([0.1, 0.9, 0.5, 0.6, 0.2])
    rows = [range(0, 2), range(2, 4), range(4, 5), range(5, 5)]
    best = rt.best_sentence_scores(scores, rows)
    assert best.tolist() == [0.9, 0.6, 0.2, -np.inf]
    assert rt.Ranked.top("sentence", best, 1.0).docs == [0, 1, 2]       # a passage without sentences is left out
    assert rt.plan_search("angry", "full", _bridge()).sentence_weight == rt.WEIGHT_SENTENCE
    assert rt.plan_search("angry", "bridge", _bridge()).sentence_weight == 0


# ------------------------------------------------------------------ script of the question (traditional Chinese)

def test_traditional_question_is_searched_in_its_simplified_form(monkeypatch):
    b = _bridge()
    for mode in rt.MODES:
        plan = rt.plan_search("客戶很生氣怎麼辦", mode, b)
        assert plan.dense_texts[0] == "客户很生气怎么办", mode
        assert "客戶很生氣怎麼辦" not in plan.dense_texts
    # simplified and English questions are encoded as typed
    assert rt.plan_search("客户很生气", "full", b).dense_texts[0] == "客户很生气"
    assert rt.plan_search("angry caller", "full", b).dense_texts[0] == "angry caller"
    # the same question in either script gets the same plan
    trad, simp = rt.plan_search("客戶很生氣", "full", b), rt.plan_search("客户很生气", "full", b)
    assert trad.dense_texts == simp.dense_texts and trad.keyword_terms == simp.keyword_terms
    monkeypatch.setattr(rt, "QUERY_SCRIPT", "both")
    both = rt.plan_search("客戶很生氣", "hybrid", b)
    assert both.dense_texts == ["客户很生气", "客戶很生氣"]
    assert both.dense_weights == [rt.WEIGHT_DENSE, rt.WEIGHT_ORIGINAL_SCRIPT]
    assert rt.plan_search("客戶很生氣", "keyword", b).dense_weights == [0.0, 0.0]
    monkeypatch.setattr(rt, "QUERY_SCRIPT", "original")
    assert rt.plan_search("客戶很生氣", "full", b).dense_texts[0] == "客戶很生氣"


def test_sentence_scoring_vector_follows_the_plan():
    b = _bridge()
    assert rt.plan_search("angry caller", "full", b).sentence_text == 1        # the Chinese pivot
    assert rt.plan_search("客戶很生氣 angry", "full", b).sentence_text == 0    # mostly Chinese: the question


def test_script_variant_spellings_join_the_keyword_terms():
    # OpenCC leaves 著 (traditional essays: 帶著) where simplified essays write 着 (带着)
    assert rt.with_variants({"带著": 1.0, "怨气": 1.0}) == {"带著": 1.0, "带着": 1.0, "怨气": 1.0}
    assert rt.with_variants({"试着": 0.5}) == {"试着": 0.5, "试著": 0.5}
    assert rt.with_variants({"著": 1.0, "客户": 1.0}) == {"客户": 1.0}       # the particle is a stopword
    plan = rt.plan_search("客戶帶著怨氣打來", "hybrid", _bridge())
    assert {"带著", "带着"} <= set(plan.keyword_terms)


# ------------------------------------------------------------------ speed: caches and warm-up

ESSAYS = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
}


class CountingEmbedder:
    def __init__(self):
        from coach.embed import FakeEmbedder
        self.inner, self.calls = FakeEmbedder(), []

    def encode_queries(self, texts, *a, **kw):
        self.calls.append(list(texts))
        return self.inner.encode_queries(texts, *a, **kw)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def small_coach(tmp_path):
    from coach.config import Settings
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ESSAYS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    emb = CountingEmbedder()
    coach = rt.Coach(Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake"), embedder=emb)
    coach.bridge = _bridge()
    coach._theme_vectors = {}
    return coach, emb


def test_repeated_question_skips_encoding(small_coach):
    coach, emb = small_coach
    first = coach.ask("客户破口大骂", top_k=2)
    n = len(emb.calls)
    again = coach.ask("客户破口大骂", top_k=2)
    assert len(emb.calls) == n, "the same question in the same mode is not encoded again"
    assert [h.chunk.id for h in again.results] == [h.chunk.id for h in first.results]
    coach.ask("客户破口大骂", top_k=2, mode="dense")           # another mode: its own entry
    assert len(emb.calls) == n + 1
    coach.ask(" 客户破口大骂 ", top_k=2)                        # sanitised to the same text: cached
    assert len(emb.calls) == n + 1
    coach.clear_query_cache()
    coach.ask("客户破口大骂", top_k=2)
    assert len(emb.calls) == n + 2


def test_query_cache_is_bounded_lru(small_coach):
    coach, emb = small_coach
    coach.query_cache_size = 2
    for q in ("甲", "乙", "甲", "丙"):                           # 乙 is the least recently used when 丙 arrives
        coach.ask(q, mode="dense")
    assert len(coach._query_cache) == 2
    n = len(emb.calls)
    coach.ask("甲", mode="dense")
    assert len(emb.calls) == n
    coach.ask("乙", mode="dense")
    assert len(emb.calls) == n + 1
    coach.query_cache_size = 0                                 # off: every question is encoded
    coach.ask("乙", mode="dense")
    assert len(emb.calls) == n + 2


def test_passages_are_tokenised_once_per_loaded_index(small_coach, monkeypatch):
    coach, _ = small_coach
    seen = []
    real = rt._simplified_tokens
    monkeypatch.setattr(rt, "_simplified_tokens", lambda text: seen.append(text) or real(text))
    for q in ("客户破口大骂", "破解密码", "规定 死板 保护", "客户破口大骂 复述"):
        coach.ask(q, top_k=3, diverse=False)
    n_chunks = len(coach.index.chunks)
    assert 0 < len(seen) <= n_chunks and len(set(seen)) == len(seen)
    answer = coach.ask("破解密码", top_k=3)
    assert "破解" in answer.results[0].matched_terms
    coach.rebuild()                                            # a new index gets its own token sets
    seen.clear()
    coach.ask("破解密码", top_k=1)
    assert len(seen) == 1


def test_warm_up_preloads_in_the_background(small_coach, monkeypatch):
    coach, _ = small_coach
    loaded = []
    monkeypatch.setattr(type(coach.bridge), "dictionary", property(lambda self: loaded.append(1)))
    coach.bridge.use_dictionary = True
    thread = coach.warm_up()
    second = coach.warm_up()                                   # while running: the same thread, no second load
    assert second is thread or not thread.is_alive()
    thread.join(30)
    second.join(30)
    assert not thread.is_alive() and loaded
    assert coach._theme_vectors                                  # theme descriptions encoded
    assert all(s is not None for s in coach._token_sets(coach.index))
    assert coach.warm_up(background=False) is None


def test_situation_weights_follow_the_question_script():
    # English questions lean on the situation descriptions more than Chinese ones (either script)
    assert rt.situation_weights("an angry caller shouted at me") == (rt.WEIGHT_SITUATION, rt.WEIGHT_SITUATION_KEYWORD)
    chinese = (rt.WEIGHT_SITUATION_CHINESE, rt.WEIGHT_SITUATION_KEYWORD_CHINESE)
    assert rt.situation_weights("客户一上来就骂我") == chinese
    assert rt.situation_weights("客戶一上來就罵我") == chinese
    assert rt.WEIGHT_SITUATION_CHINESE < rt.WEIGHT_SITUATION
    plan = rt.plan_search("客户一上来就骂我", "situations", None)
    assert plan.situation_weight == 0.0      # no bridge: situation rankers off, as before
    assert rt.plan_search("客户一上来就骂我", "full", None).situation_weight == 0.0
