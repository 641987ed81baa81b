"""The query side (coach/search): each ranker against a brute-force oracle, the fusion, diversity, question
preparation, out-of-domain evidence, caches; and fair ranking: an undescribed passage competes on equal terms."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from coach import bridge as br
from coach import retrieve as rt
from coach.config import Settings
from coach.search import SearchConfig, diversify, fuse, prepare, ranked
from coach.search.query import with_variants


def _bridge():
    return br.Bridge(
        glossary={br._phrase_key("angry"): ("生气",)},
        themes=[br.Theme("angry", "Angry", "生气", ("angry",), "客户破口大骂。")],
        dictionary=br.Dictionary(),
        regional={"筆電": ("笔记本电脑",), "笔电": ("笔记本电脑",)},
        out_of_scope=[],
    )


# ------------------------------------------------------------------ fusion and diversity


def test_fusion_known_values():
    scores = {"a": np.array([0.9, 0.5, 0.1, -np.inf]), "b": np.array([0.0, 2.0, 4.0, 0.0])}
    fused, parts = fuse(scores, {"a": 1.0, "b": 2.0}, {"a": None, "b": 0.0})
    # a: min-max over its finite candidates (0.1 .. 0.9); b: from its floor 0 up to 4, and 0 is no match
    assert fused[0] == pytest.approx(1.0)
    assert fused[1] == pytest.approx(0.5 + 2 * 0.5)
    assert fused[2] == pytest.approx(0.0 + 2 * 1.0)
    assert 3 not in fused
    assert parts[1] == pytest.approx({"a": 0.5, "b": 1.0})
    assert [d for d, _ in ranked(fused)] == [2, 1, 0]


def test_fusion_degenerate_rankers():
    fused, _ = fuse({"lone": np.array([-np.inf, 0.7, -np.inf])}, {"lone": 3.0}, {"lone": None})
    assert fused == {1: 3.0}  # a single candidate counts fully
    fused, _ = fuse(
        {"none": np.full(3, -np.inf), "zero": np.zeros(3)}, {"none": 1.0, "zero": 1.0}, {"none": None, "zero": 0.0}
    )
    assert fused == {}
    fused, _ = fuse({"off": np.array([1.0, 2.0])}, {"off": 0.0}, {"off": None})
    assert fused == {}


def test_a_ranker_that_cannot_see_a_passage_abstains_for_it():
    # passage 2 is written in a script the lexical ranker cannot match: it is judged on the dense ranker alone
    scores = {"dense": np.array([1.0, 0.0, 0.9]), "lexical": np.array([4.0, 2.0, 0.0])}
    weights, floors = {"dense": 1.0, "lexical": 3.0}, {"dense": None, "lexical": 0.0}
    plain, _ = fuse(scores, weights, floors)
    fused, parts = fuse(scores, weights, floors, sees={"lexical": np.array([True, True, False])})
    assert plain[2] == pytest.approx(0.9)  # scored 0 by a ranker that could not have matched it
    assert fused[2] == pytest.approx(0.9 * 4 / 1)  # the weighted mean of what can judge it, on the same scale
    assert fused[0] == pytest.approx(plain[0]) and fused[1] == pytest.approx(plain[1])
    assert sum(parts[2].values()) == pytest.approx(fused[2])
    assert [d for d, _ in ranked(fused)] == [0, 2, 1]
    # a ranker that found evidence in a passage it was not expected to see still counts for it
    crossed, _ = fuse(
        {"dense": np.array([1.0, 0.5]), "lexical": np.array([2.0, 1.0])},
        weights,
        floors,
        sees={"lexical": np.array([True, False])},
    )
    assert crossed[1] == pytest.approx(0.0 + 3 * 0.5)
    # every passage seen by every ranker: nothing changes
    same, _ = fuse(scores, weights, floors, sees={"lexical": np.ones(3, bool), "dense": None})
    assert same == pytest.approx(plain)


def test_diversify_prefers_new_essays_unless_clearly_better():
    essay = {1: "a", 2: "a", 3: "b", 4: "c"}.get
    assert [d for d, _ in diversify([(1, 1.0), (2, 0.9), (3, 0.85), (4, 0.8)], essay, 3, 2.0)] == [1, 3, 4]
    assert [d for d, _ in diversify([(1, 1.0), (2, 0.9), (3, 0.3), (4, 0.2)], essay, 3, 2.0)] == [1, 2, 3]
    assert [d for d, _ in diversify([(1, 1.0), (2, 0.5)], essay, 3, 2.0)] == [1, 2]


def test_search_config_has_at_most_twelve_numbers():
    numbers = [v for v in SearchConfig().as_dict().values() if isinstance(v, (int, float))]
    assert len(numbers) <= 12
    assert set(SearchConfig().weights()) == {
        "dense",
        "sentence",
        "keyword",
        "bigram",
        "description",
        "description_terms",
    }


# ------------------------------------------------------------------ questions


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", ""),
        ("   \t\n ", ""),
        ("客户\x00生气\x07了", "客户生气了"),
        ("angry\u202ecaller\u200b", "angrycaller"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("  多個   空格 ", "多個 空格"),
        ("客戶很兇 😡", "客戶很兇 😡"),
    ],
)
def test_sanitize_query(raw, expected):
    assert rt.sanitize_query(raw) == (expected, False)


def test_sanitize_caps_length_and_reports_it():
    text, truncated = rt.sanitize_query("怒" * (10 * 1024 * 1024))
    assert truncated and len(text) == rt.MAX_QUERY_CHARS


def test_prepare_searches_traditional_and_regional_words_in_mainland_simplified_form():
    q = prepare("客人說舊筆電很慢", _bridge())
    assert q.traditional and not q.english
    assert q.searched == "客人说旧笔记本电脑很慢"
    assert "笔记本电脑" in q.terms or "笔记本" in q.terms
    assert list(q.bigrams)[:2] == ["客人", "人说"]
    simplified = prepare("客人说旧笔记本电脑很慢", _bridge())
    assert not simplified.traditional and simplified.searched == "客人说旧笔记本电脑很慢"


def test_prepare_bridges_english_words_and_themes():
    q = prepare("angry caller", _bridge())
    assert q.english and q.searched == "angry caller" and q.bigrams == {}
    assert q.terms["生气"] == br.GLOSSARY_WEIGHT and q.terms["破口大骂"] == br.THEME_WEIGHT
    assert q.glossary_hits == 1 and q.themes == 1
    assert "生气" not in q.own_terms


def test_script_variant_spellings_join_the_keyword_terms():
    assert {"带著", "带着"} <= set(prepare("客戶帶著怨氣打來", _bridge()).terms)
    assert "著" not in with_variants({"著": 1.0})


# ------------------------------------------------------------------ a tiny index

ESSAYS = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
    "elder.txt": "老人家打电话\n老人家听不清楚,我放慢语速,一句一句确认地址。耐心是最好的服务。\n",
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


def _corpus(tmp_path, situations: str = ""):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ESSAYS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    if situations:
        (corpus / "situations.toml").write_text(situations, encoding="utf-8")
    return corpus


@pytest.fixture
def small_coach(tmp_path):
    emb = CountingEmbedder()
    coach = rt.Coach(Settings(corpus_dir=_corpus(tmp_path), index_dir=tmp_path / "index", model="fake"), embedder=emb)
    coach.bridge = _bridge()
    return coach, emb


QUESTIONS = ["客户破口大骂怎么办", "客戶要我破解密碼", "老人家听不清", "angry caller", "规定 死板 保护"]


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_ranker_matches_a_brute_force_oracle(small_coach, question):
    coach, _ = small_coach
    index = coach.index
    q, scores = coach.scores(question)
    passage_vectors = np.stack([index.vectors.index.reconstruct(i) for i in range(len(index.chunks))])
    np.testing.assert_allclose(scores["dense"], passage_vectors @ q.vector, rtol=1e-5, atol=1e-6)
    sentences = [
        max(float(index.sentence_vectors[r] @ q.vector) for r in rows) if len(rows) else -np.inf
        for rows in index.sentence_rows
    ]
    np.testing.assert_allclose(scores["sentence"], sentences, rtol=1e-5, atol=1e-6)
    # BM25 with every weight 1 is plain BM25 over the same tokens
    plain = {t: 1.0 for t in q.terms}
    np.testing.assert_allclose(
        index.keyword.weighted_scores(plain)[0],
        np.array([sum(index.keyword.weighted_scores({t: 1.0})[0][d] for t in plain) for d in range(len(index.chunks))]),
        rtol=1e-5,
    )
    assert scores["keyword"].shape == (len(index.chunks),)
    if q.bigrams:
        assert scores["bigram"].max() > 0
    assert np.all(np.isneginf(scores["description"]))  # this corpus has no descriptions


def test_description_ranker_matches_a_brute_force_oracle(tmp_path):
    situations = (
        '[[situation]]\nessay = "rules"\nanchor = "破解密碼"\nen = "a customer wants me to crack a '
        'password"\nzh = "客户要我破解密码"\n\n[[situation]]\nessay = "angry"\nanchor = "破口大骂"\n'
        'zh_hant = "客戶罵人"\n'
    )
    coach = rt.Coach(
        Settings(corpus_dir=_corpus(tmp_path, situations), index_dir=tmp_path / "index", model="fake"),
        embedder=CountingEmbedder(),
    )
    index = coach.index
    q, scores = coach.scores("客户要我破解密码怎么办")
    expected = np.full(len(index.chunks), -np.inf)
    for row, chunks in zip(index.situation_vectors, index.situation_chunks):
        for d in chunks:
            expected[d] = max(expected[d], float(row @ q.vector))
    np.testing.assert_allclose(scores["description"], expected, rtol=1e-5)
    assert np.isneginf(scores["description"]).sum() == len(index.chunks) - len(
        {d for c in index.situation_chunks for d in c}
    )


def test_an_undescribed_passage_that_clearly_matches_ranks_first(tmp_path):
    # only the angry-caller and password passages are described; the elderly-caller essay is not
    situations = (
        '[[situation]]\nessay = "rules"\nanchor = "破解密碼"\nzh_hant = "客戶要我破解密碼"\n\n'
        '[[situation]]\nessay = "angry"\nanchor = "破口大骂"\nzh_hant = "客戶在電話裡罵人"\n'
    )
    coach = rt.Coach(
        Settings(corpus_dir=_corpus(tmp_path, situations), index_dir=tmp_path / "index", model="fake"),
        embedder=CountingEmbedder(),
    )
    answer = coach.ask("老人家听不清楚,我要放慢语速确认地址", top_k=3, diverse=False)
    assert answer.results[0].chunk.essay_id == "elder"
    assert answer.evidence.best_sentence > answer.evidence.best_description  # passage evidence counts too
    top = answer.results[0]
    assert "description" not in top.contributions and top.contributions["dense"] > 0
    assert sum(top.contributions.values()) == pytest.approx(top.score)


def test_lexical_rankers_abstain_on_passages_a_chinese_question_cannot_match(tmp_path):
    from coach.search.rankers import Bigram, DensePassages, Keyword

    corpus = _corpus(tmp_path)
    (corpus / "night.txt").write_text(
        "Night shifts\nWhen a caller shouts at 3 a.m., I let them finish, then repeat their problem back.\n",
        encoding="utf-8",
    )
    coach = rt.Coach(
        Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake"), embedder=CountingEmbedder()
    )
    index = coach.index
    english = [c.essay_id == "night" for c in index.chunks]
    assert index.english_passages.tolist() == english
    chinese_q, _ = coach.scores("客戶半夜大吼大叫點算")
    for ranker in (Keyword(index), Bigram(index)):
        assert ranker.sees(chinese_q).tolist() == [not e for e in english]
    english_q, _ = coach.scores("a caller shouts at night")
    assert Keyword(index).sees(english_q) is None  # bridged Chinese terms and its own words reach both scripts
    assert DensePassages(index).sees(chinese_q) is None


def test_modes_choose_their_rankers(small_coach):
    coach, _ = small_coach
    assert set(coach.scores("客户骂人", mode="dense")[1]) == {"dense"}
    assert set(coach.scores("客户骂人", mode="hybrid")[1]) == {"dense", "sentence", "keyword", "bigram"}
    assert "description" in coach.scores("客户骂人")[1]
    with pytest.raises(ValueError):
        coach.ask("x", mode="nope")


# ------------------------------------------------------------------ out of domain


def test_out_of_domain_weighs_passages_and_descriptions():
    c = SearchConfig()
    gap = c.description_gap
    assert not rt.Evidence(c.ood_floor - gap + 0.01, 0.0).out_of_domain(c)  # passage evidence alone
    assert rt.Evidence(c.ood_floor - gap - 0.01, 0.0).out_of_domain(c)
    assert not rt.Evidence(c.ood_floor_english - gap + 0.01, 0.0, english=True).out_of_domain(c)
    # far from every passage, close to a description: in the domain
    assert not rt.Evidence(0.5, 0.0, best_description=c.ood_floor + 0.01).out_of_domain(c)
    # an essay nobody described: its sentences count whatever the descriptions say
    assert not rt.Evidence(c.ood_floor - gap + 0.01, 0.0, best_description=0.5).out_of_domain(c)
    # an out-of-scope prototype closer than the evidence: outside
    assert rt.Evidence(0.5, 0.0, best_description=0.95, best_out_of_scope=0.96).out_of_domain(c)
    assert not rt.Evidence(0.5, 0.0, best_description=0.95, best_out_of_scope=0.94).out_of_domain(c)
    # a prototype is a question like a description: against the passage sentences it needs the smaller lift
    sentence = c.ood_floor - gap + 0.05  # enough passage evidence to pass the floor
    closer = sentence + c.ood_prototype_lift + 0.01
    assert rt.Evidence(sentence, 0.0, best_description=0.5, best_out_of_scope=closer).out_of_domain(c)
    assert rt.Evidence(sentence, 0.0, best_out_of_scope=closer).out_of_domain(c)
    assert not rt.Evidence(sentence, 0.0, best_out_of_scope=closer - 0.02).out_of_domain(c)
    assert not rt.Evidence(0.5, 0.0, best_description=closer + 0.01, best_out_of_scope=closer).out_of_domain(c)
    # a corpus with no descriptions at all: the question's own words count too, and only there
    from coach.search import NO_DESCRIPTION_KEYWORD_FLOOR as words

    assert not rt.Evidence(0.3, words).out_of_domain(c)
    assert rt.Evidence(0.3, words - 0.1).out_of_domain(c)
    assert rt.Evidence(0.3, words, best_description=0.5).out_of_domain(c)


def test_descriptions_count_as_much_as_they_explain_the_question():
    from coach.search import description_confidence

    c = SearchConfig()
    assert description_confidence(None, 0.8, c.description_gap, c.description_width) == 0.0
    assert description_confidence(0.8 + c.description_gap - 0.001, 0.8, c.description_gap, c.description_width) == 0.0
    assert description_confidence(
        0.8 + c.description_gap + c.description_width, 0.8, c.description_gap, c.description_width
    ) == pytest.approx(1.0)
    half = description_confidence(
        0.8 + c.description_gap + c.description_width / 2, 0.8, c.description_gap, c.description_width
    )
    assert half == pytest.approx(0.5)
    weights = rt.Coach.weights(c, rt.Evidence(0.8, 0.0, best_description=0.8))
    assert weights["description"] == weights["description_terms"] == 0.0 and weights["dense"] == c.dense


def test_an_english_question_s_bridged_words_count_with_their_own_weight():
    c = SearchConfig(keyword=2.0, keyword_english=0.5)
    assert rt.Coach.weights(c, rt.Evidence(0.8, 0.0))["keyword"] == 2.0
    assert rt.Coach.weights(c, rt.Evidence(0.8, 0.0, english=True))["keyword"] == 0.5
    # the keyword ranker runs when either language gives it weight, and not at all when neither does
    from coach.search.rankers import rankers_for

    index = SimpleNamespace()
    names = lambda config: [r.name for r in rankers_for(index, config)]  # noqa: E731
    assert "keyword" in names(SearchConfig(keyword=0.0, keyword_english=1.0))
    assert "keyword" not in names(SearchConfig(keyword=0.0, keyword_english=0.0))


# ------------------------------------------------------------------ caches and warm-up


def test_repeated_question_skips_encoding(small_coach):
    coach, emb = small_coach
    first = coach.ask("客户破口大骂", top_k=2)
    n = len(emb.calls)
    again = coach.ask("客户破口大骂", top_k=2)
    assert len(emb.calls) == n
    assert [h.chunk.id for h in again.results] == [h.chunk.id for h in first.results]
    coach.ask(" 客户破口大骂 ", top_k=2)  # sanitised to the same text: cached
    assert len(emb.calls) == n
    coach.clear_query_cache()
    coach.ask("客户破口大骂", top_k=2)
    assert len(emb.calls) == n + 1


def test_query_cache_is_bounded_lru(small_coach):
    coach, emb = small_coach
    coach.query_cache_size = 2
    for q in ("甲", "乙", "甲", "丙"):  # 乙 is the least recently used when 丙 arrives
        coach.ask(q, mode="dense")
    assert len(coach._query_cache) == 2
    n = len(emb.calls)
    coach.ask("甲", mode="dense")
    assert len(emb.calls) == n
    coach.ask("乙", mode="dense")
    assert len(emb.calls) == n + 1
    coach.query_cache_size = 0
    coach.ask("乙", mode="dense")
    assert len(emb.calls) == n + 2


def test_passages_are_tokenised_once_per_loaded_index(small_coach, monkeypatch):
    coach, _ = small_coach
    seen = []
    real = rt._simplified_tokens
    monkeypatch.setattr(rt, "_simplified_tokens", lambda text: seen.append(text) or real(text))
    for q in ("客户破口大骂", "破解密码", "规定 死板 保护", "客户破口大骂 复述"):
        coach.ask(q, top_k=3, diverse=False)
    assert 0 < len(seen) <= len(coach.index.chunks) and len(set(seen)) == len(seen)
    assert "破解" in coach.ask("破解密码", top_k=3).results[0].matched_terms
    coach.rebuild()
    seen.clear()
    coach.ask("破解密码", top_k=1, diverse=False)
    assert len(seen) == 1


def test_warm_up_preloads_in_the_background(small_coach, monkeypatch):
    coach, _ = small_coach
    loaded = []
    monkeypatch.setattr(type(coach.bridge), "dictionary", property(lambda self: loaded.append(1)))
    coach.bridge.use_dictionary = True
    thread = coach.warm_up()
    second = coach.warm_up()
    assert second is thread or not thread.is_alive()
    thread.join(30)
    second.join(30)
    assert not thread.is_alive() and loaded
    assert all(s is not None for s in coach._token_sets(coach.index))
    assert coach.warm_up(background=False) is None


def test_out_of_scope_prototypes_are_encoded_once_in_the_form_questions_are_searched(small_coach, monkeypatch):
    coach, emb = small_coach
    protos = [
        br.OutOfScope("prices", "中華電信的月租方案多少錢?"),
        br.OutOfScope("it", "how do I reset my VPN password"),
    ]
    coach.bridge = br.Bridge(glossary={}, themes=[], dictionary=br.Dictionary(), out_of_scope=protos, regional={})
    coach._scope_vectors = None
    seen = []
    real = emb.inner.encode_queries
    monkeypatch.setattr(
        emb, "encode_queries", lambda texts, **kw: seen.append(list(texts)) or real(texts), raising=False
    )
    for _ in range(3):
        answer = coach.ask("中華電信的月租方案多少錢?")
    assert [t for t in seen if "how do I reset my VPN password" in t] == [
        ["中华电信的月租方案多少钱?", "how do I reset my VPN password"]
    ]
    assert answer.evidence.best_out_of_scope == pytest.approx(1.0, abs=1e-5)


def test_hits_carry_every_rankers_contribution(small_coach):
    coach, _ = small_coach
    answer = coach.ask("客户破口大骂怎么办", top_k=3, diverse=False)
    for hit in answer.results:
        assert set(hit.contributions) <= {"dense", "sentence", "keyword", "bigram", "description", "description_terms"}
        assert sum(hit.contributions.values()) == pytest.approx(hit.score)
    assert dataclasses.asdict(SearchConfig()) == coach.index.manifest.search
