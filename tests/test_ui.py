"""The UI's response logic called directly (no server): cards, follow-ups, quoted speech, escaping, feedback, uploads."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time

import pytest

from coach import ui
from coach.embed import FakeEmbedder
from coach.feedback import FeedbackStore
from coach.retrieve import MAX_QUERY_CHARS, Coach
from ui_support import XSS_MARKERS, XSS_TEXT, tiny_settings


@pytest.fixture(scope="module")
def coach(tmp_path_factory):
    return Coach(tiny_settings(tmp_path_factory.mktemp("tiny")), embedder=FakeEmbedder())


@pytest.fixture
def app(coach, tmp_path):
    return ui.CoachApp(
        ui.CoachHolder(coach=coach),
        FeedbackStore(tmp_path / "fb.sqlite3"),
        coach.settings,
        upload_dir=tmp_path / "uploads",
        live_dir=tmp_path / "live",
    )


def _text(html_: str) -> str:
    """Visible text of rendered HTML (tags dropped), for asserting on what a reader sees."""
    return re.sub(r"<[^>]+>", "", html_)


# ------------------------------------------------------------------ the response function


def test_angry_caller_gets_a_coaching_card(app):
    session = ui.Session()
    turn = app.ask("how do I handle an angry caller", session)
    assert not turn.answer.out_of_domain and turn.answer.results
    # the fake embedder's cross-language cosines mean nothing, so the English question's Chinese pivot and theme
    # texts may rank the one Chinese fixture essay first; the angry-caller advice must be on the card
    assert "angry-caller" in [h.essay.id for h in turn.answer.results]
    assert turn.theme_id == "angry-caller"
    card = ui.render_card(turn, "en", "original")
    assert 'class="coach-situation"' in card and "An angry or abusive caller" in card
    assert card.count('class="coach-advice"') == len(turn.answer.results) <= 3
    assert '<mark class="coach-mark">' in card  # the key sentence, highlighted
    assert "<details" in card and "Show the passage" in card  # the passage one click away
    assert "Ann Example" in card and "Example Telecom" in card and "9 years on the job" in card
    assert "《Handling an angry caller》" in card
    assert "Try saying" in card or "Remember" in card  # quoted speech surfaced
    assert "\n\n" not in card  # one HTML block: never re-read as Markdown


def test_advice_comes_from_different_veterans(app):
    turn = app.ask("angry caller nervous first calls 红线", ui.Session())
    essays = [h.essay.id for h in turn.answer.results]
    assert len(essays) == len(set(essays))


def test_chinese_question_and_chinese_ui(app):
    turn = app.ask("客户要求我破解安全设置,触碰红线怎么办?", ui.Session())
    assert not turn.answer.out_of_domain
    assert turn.answer.results[0].essay.id == "red-lines"
    assert turn.lang == "zh"
    card = ui.render_card(turn, "zh", "original")
    assert "规则与红线" in card and "王老师" in card and "从业 12 年" in card
    assert "记住这句话" in card and "面子不是那么重要" in card  # a line the veteran was told


def test_traditional_script_switch(app):
    turn = app.ask("客户要求我破解安全设置,触碰红线怎么办?", ui.Session())
    hant = ui.render_card(turn, "zh", "hant")
    assert "規則與紅線" in hant and "紅線" in hant and "红线" not in _text(hant)
    hans = ui.render_card(turn, "zh", "hans")
    assert "规则与红线" in hans


def test_out_of_domain_says_so_instead_of_a_passage(app):
    turn = app.ask("how to fix a flat bicycle tire", ui.Session())
    assert turn.answer.out_of_domain
    card = ui.render_card(turn, "en", "original")
    assert "The veterans have not written about this." in card
    assert "coach-advice" not in card
    assert app.store.uncovered()[0][0] == "how to fix a flat bicycle tire"


def test_followup_uses_the_previous_turn(app):
    session = ui.Session()
    app.ask("how do I handle an angry caller", session)
    turn = app.ask("what if they still won't calm down?", session)
    assert turn.followup
    assert turn.searched.startswith("how do I handle an angry caller")
    assert "what if they still won't calm down?" in turn.searched
    assert not turn.answer.out_of_domain and turn.answer.results[0].essay.id == "angry-caller"
    # a new situation is not glued to the old one
    turn = app.ask("On my first calls I am nervous and my voice is shaking", session)
    assert not turn.followup and turn.searched.startswith("On my first calls")


def test_long_question_is_capped_and_the_answer_says_so(app):
    turn = app.ask("angry caller " * 5000, ui.Session())
    assert turn.truncated and len(turn.message) <= MAX_QUERY_CHARS and len(turn.searched) <= MAX_QUERY_CHARS
    assert f"first {MAX_QUERY_CHARS} characters" in ui.render_card(turn, "en", "original")


def test_control_characters_and_lone_surrogates_are_stripped(app):
    turn = app.ask("angry\x00 caller\ud800\u202e", ui.Session())
    assert turn.message == "angry caller"


def test_related_situations_and_why_table(app):
    turn = app.ask("how do I handle an angry caller", ui.Session())
    related = ui.related_themes(turn.theme, turn.answer.results)
    assert len(related) == 3 and turn.theme not in related
    why = ui.render_why(turn.answer, "en")
    for h in turn.answer.results:
        assert h.chunk.id in why and f"{h.score:.4f}" in why and f"{h.dense_score:.3f}" in why
    assert "angry" in why  # matched terms shown


def test_share_link_and_markdown_export(app):
    turn = app.ask("how do I handle an angry caller", ui.Session())
    link = ui.share_link(turn.message, "zh", "hant", "http://127.0.0.1:7860")
    assert link == "http://127.0.0.1:7860/?q=how+do+I+handle+an+angry+caller&lang=zh&script=hant"
    # a conversation: each turn in order, follow-ups as `f`, read back by the page's load handler
    link = ui.share_link(
        [("angry caller", False), ("what if they still shout?", True)], "en", "original", "http://127.0.0.1:7860/"
    )
    assert link == ("http://127.0.0.1:7860/?q=angry+caller&f=what+if+they+still+shout%3F&lang=en&script=original")
    import urllib.parse

    items = urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query)
    assert ui.conversation_params(items) == [("angry caller", False), ("what if they still shout?", True)]
    md = ui.answer_markdown(turn, "en", "original")
    assert md.startswith("# how do I handle an angry caller") and "Ann Example" in md


# ------------------------------------------------------------------ text, never HTML


def test_passages_with_payloads_render_as_text(app):
    # the probe's own text: answered with its card whatever the fake embedder makes of other questions
    turn = app.ask(XSS_TEXT, ui.Session())
    hit = turn.answer.results[0]
    assert hit.essay.id == "xss-probe" and "<script>" in hit.chunk.text and "onerror=" in hit.chunk.text
    for lang in ("en", "zh"):
        for html_ in (
            ui.render_card(turn, lang, "original"),
            ui.render_present(turn, 0, lang, "original"),
            ui.render_why(turn.answer, lang),
            ui.render_essay(app.essay("xss-probe"), lang, "hant", hit.highlight_span, (hit.chunk.start, hit.chunk.end)),
        ):
            assert "<script" not in html_ and "<img" not in html_ and "<svg" not in html_ and "<b>" not in html_
            assert "&lt;script&gt;" in html_ or "&lt;img" in html_ or "&lt;b&gt;" in html_
            assert not re.search(r"<[^>]*\sonerror\s*=", html_) and not re.search(r"<[^>]*\sonload\s*=", html_)
    # the characters are shown: the visible text holds them once the entities are decoded
    import html as html_mod

    assert all(m in html_mod.unescape(ui.render_card(turn, "en", "original")) for m in XSS_MARKERS)


def test_user_text_is_rendered_as_text():
    out = ui.render_user('<img src=x onerror="alert(1)"> **bold** $x$')
    assert out == '<div class="coach-q">&lt;img src=x onerror=&quot;alert(1)&quot;&gt; **bold** $x$</div>'


# ------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(
    "text,expected",
    [
        ("what if they still won't calm down?", True),
        ("And if he hangs up?", True),
        ("What about an email instead?", True),
        ("那如果他还是骂人呢?", True),
        ("还是不行怎么办", True),
        ("客户还在骂", True),
        ("how do I handle an angry caller", False),
        ("客户在电话里破口大骂,我该怎么办?", False),
        ("My voice shakes when the phone rings and I lose track of the caller's question", False),
        ("", False),
    ],
)
def test_is_followup(text, expected):
    assert ui.is_followup(text) is expected


def test_combine_followup():
    assert ui.combine_followup("what if they still shout?", "angry caller") == (
        "angry caller what if they still shout?",
        True,
    )
    assert ui.combine_followup("what if they still shout?", None) == ("what if they still shout?", False)
    assert ui.combine_followup("新人很紧张怎么办", "angry caller") == ("新人很紧张怎么办", False)


def test_find_quotes_classifies_say_and_remember():
    told = "主管对我说过:“当你懂得了面子不是那么重要的东西时,便是真的成长”,我一直记得。"
    assert ui.find_quotes(told) == [ui.Quote("remember", "当你懂得了面子不是那么重要的东西时,便是真的成长", 7)]
    say = "我会先安抚客户说:“您先别着急,我马上帮您查一下。”"
    assert [q.kind for q in ui.find_quotes(say)] == ["say"]
    corner = "她常說「客服教會了我很多,也讓我學會了傾聽」。"
    assert ui.find_quotes(corner)[0].text == "客服教會了我很多,也讓我學會了傾聽"
    english = 'Then I say "I understand why you are upset, let me fix this" and wait.'
    assert ui.find_quotes(english)[0].kind == "say"
    # quoted terms and short slogans are not speech
    assert ui.find_quotes("她是“老派客服人”,也是拼命“三娘”,做到“智能+人工”。") == []
    assert ui.find_quotes("") == []


def test_detect_lang_and_convert_script():
    assert ui.detect_lang("angry caller") == "en"
    assert ui.detect_lang("客户生气了") == "zh"
    assert ui.detect_lang("客戶生氣了") == "zh-Hant"
    assert ui.convert_script("客户", "hant") == "客戶" and ui.convert_script("客戶", "hans") == "客户"
    assert ui.convert_script("客戶", "original") == "客戶"


def test_recognise_falls_back_to_the_top_passage(app):
    turn = app.ask("xylophone warehouse printer toner runs out: log the toner escalation", ui.Session())
    hit = turn.answer.results[0]
    # (the probe passage itself mentions "<script>", a trigger of the "scripts and jargon" situation)
    neutral = dataclasses.replace(hit, chunk=dataclasses.replace(hit.chunk, text="The toner ran out at night."))
    theme, label = ui.recognise(turn.message, [neutral])
    assert theme is None and label  # no theme: the essay's section or title names the situation
    theme, _ = ui.recognise(
        "toner", [dataclasses.replace(neutral, chunk=dataclasses.replace(hit.chunk, text="客户一直在电话里骂我。"))]
    )
    assert theme.id == "angry-caller"  # the question names none: the top passage's situation


# ------------------------------------------------------------------ feedback


def test_mark_stores_one_card_s_question_passage_and_time(app):
    session = ui.Session()
    turn = app.ask("how do I handle an angry caller", session)
    assert app.store.count() == 0  # an answer nobody marked stores nothing
    row = app.mark(session, 0, helpful=True, card=1)
    assert row is not None
    ev = app.store.events(kind="feedback")[0]
    assert ev.helpful is True and ev.query == "how do I handle an angry caller" and ev.lang == "en"
    assert [p["id"] for p in ev.passages] == [turn.answer.results[1].chunk.id]  # that card's passage, alone
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev.created_at)
    assert app.mark(session, 5, helpful=False) is None  # unknown answer
    assert app.mark(session, 0, helpful=False, card=7) is None  # unknown card
    assert app.store.count() == 1


def test_marks_are_per_card_and_un_marking_or_changing_replaces_them(app):
    session = ui.Session()
    turn = app.ask("客戶要求我破解安全設置,觸碰紅線怎麼辦?", session)
    assert len(turn.shown) >= 2
    first = app.mark(session, 0, helpful=True, card=0)
    second = app.mark(session, 0, helpful=False, card=1)
    assert first != second and app.store.count("feedback") == 2  # one row per card, not one per answer
    assert app.mark(session, 0, helpful=True, card=0) == first and app.store.count() == 2  # the same mark again
    assert app.mark(session, 0, helpful=False, card=0) == first  # changed: replaced in place
    assert {(e.id, e.helpful) for e in app.store.events()} == {(first, False), (second, False)}
    assert app.mark(session, 0, None, card=1) is None  # un-marked: its row is gone
    assert [(e.id, e.passages[0]["id"]) for e in app.store.events()] == [(first, turn.shown[0].chunk.id)]
    assert app.card_mark(session, 0, 0) is False and app.card_mark(session, 0, 1) is None
    app.mark(session, 0, None, card=0)
    assert app.store.count() == 0


def test_nothing_is_stored_without_a_mark_but_uncovered_questions_are_counted(app):
    session = ui.Session()
    app.ask("how do I handle an angry caller", session)
    app.ask("客户要求我破解安全设置,触碰红线怎么办?", session)
    for q in ("How to fix a flat  bicycle tire", "how to fix a flat bicycle tire"):
        app.ask(q, ui.Session())
    assert app.store.count() == 0
    assert [(q, n) for q, _lg, n, _ in app.store.uncovered()] == [("how to fix a flat bicycle tire", 2)]
    hint = ui.ui_text("en", "feedback_hint")
    assert "No mark" in hint and "counted" in hint and "Nothing else" in hint


def test_feedback_view_and_exports(app, tmp_path):
    session = ui.Session()
    app.ask("how to fix a flat bicycle tire", session)
    app.ask("how do I handle an angry caller", session)
    app.mark(session, 1, helpful=False)
    situations, unhelpful, gaps = app.feedback_html("en")
    assert "An angry or abusive caller" in situations
    assert "how do I handle an angry caller" in unhelpful and "flat bicycle tire" in gaps
    lines = [json.loads(x) for x in app.export_eval(tmp_path).read_text("utf-8").splitlines()]
    assert {"query": "how to fix a flat bicycle tire", "lang": "en", "relevant": [], "out_of_domain": True} in lines
    assert {"query": "how do I handle an angry caller", "lang": "en", "relevant": [], "out_of_domain": False} in lines
    assert all(set(x) == {"query", "lang", "relevant", "out_of_domain"} for x in lines)
    assert "flat bicycle tire" in app.export_gaps(tmp_path).read_text("utf-8")


def test_feedback_html_escapes_stored_questions(app):
    session = ui.Session()
    app.ask("<script>alert(1)</script> bicycle", session)
    app.mark(session, 0, helpful=False)
    for part in app.feedback_html("en"):
        assert "<script>" not in part


# ------------------------------------------------------------------ adding an essay


def test_upload_checks(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (ui.UPLOAD_MAX_BYTES + 1))
    assert "limit" in ui.check_upload(big)
    exe = tmp_path / "x.exe"
    exe.write_bytes(b"MZ")
    assert "only" in ui.check_upload(exe)
    ok = tmp_path / "ok.md"
    ok.write_text("# Title\ntext", encoding="utf-8")
    assert ui.check_upload(ok) is None
    assert ui.safe_upload_name("../../etc/pass wd.TXT") == "upload-pass-wd.txt"


def test_upload_is_off_without_credentials(monkeypatch):
    monkeypatch.setenv("COACH_ENABLE_UPLOAD", "1")
    monkeypatch.delenv("COACH_ADMIN_USER", raising=False)
    monkeypatch.delenv("COACH_ADMIN_PASSWORD", raising=False)
    enabled, auth, reason = ui.upload_config()
    assert not enabled and auth is None and "COACH_ADMIN_USER" in reason
    monkeypatch.setenv("COACH_ADMIN_USER", "trainer")
    monkeypatch.setenv("COACH_ADMIN_PASSWORD", "s3cret")
    assert ui.upload_config()[:2] == (True, ("trainer", "s3cret"))
    assert ui.launch_kwargs()["auth"] is None  # agents never log in: the login is the trainer page's own
    monkeypatch.delenv("COACH_ENABLE_UPLOAD")
    assert ui.launch_kwargs()["auth"] is None and ui.trainer_auth() == ("trainer", "s3cret")


def test_add_essay_and_rebuild_while_answering(tmp_path):
    settings = tiny_settings(tmp_path)
    coach = Coach(settings, embedder=FakeEmbedder())
    app = ui.CoachApp(
        ui.CoachHolder(coach=coach),
        FeedbackStore(tmp_path / "fb.sqlite3"),
        settings,
        upload_dir=tmp_path / "uploads",
        upload_enabled=True,
    )
    essay = tmp_path / "Night shift.md"
    essay.write_text(
        "# Night shift survival\nOn the night shift the zebra hotline gets zebra questions about "
        "zebra crossings; keep a zebra checklist.\n",
        encoding="utf-8",
    )
    form = ui.EssayForm(title="Night shift survival", author="夜班組長 陳小姐", organisation="斑馬熱線", years="8")
    ok, report, cleaning = app.add_essay(essay, form)
    assert ok, report
    assert "Night shift survival" in report and "夜班組長 陳小姐" in report and "passages" in report
    assert cleaning is not None and cleaning.passages >= 1
    assert (tmp_path / "uploads" / "upload-Night-shift.md").exists()
    assert "夜班組長 陳小姐" in (tmp_path / "uploads" / "essays.toml").read_text("utf-8")
    assert sorted(p.name for p in settings.corpus_dir.iterdir()) == sorted(
        ["angry-caller.txt", "first-calls.txt", "red-lines.txt", "xss-probe.txt", "essays.toml"]
    )

    answers, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            answers.append(app.ask("how do I handle an angry caller", ui.Session()))

    asker = threading.Thread(target=keep_asking)
    asker.start()
    progress = []
    try:
        message = app.rebuild(lambda f, m: progress.append((f, m)))
    finally:
        stop.set()
        asker.join()
    assert message.startswith("index ready: 5 essays")
    assert progress[0][0] == 0.0 and progress[-1][0] == 1.0
    assert answers and all(a.answer.results for a in answers)  # questions kept working during the rebuild
    assert settings.index_dir in app.holder.get().index.build_dir.parents  # the index folder it was given
    turn = app.ask("zebra hotline zebra crossings", ui.Session())
    top = turn.answer.results[0].essay
    assert top.source == "upload-Night-shift.md" and top.author == "夜班組長 陳小姐"
    n, question = app.essay_answers(top.id)
    assert n >= 1 and question
    # the same name again is versioned, never overwritten; a binary file is refused in one sentence
    ok, report, _ = app.add_essay(essay, form)
    assert ok and "stored as upload-Night-shift-2.md" in report
    assert (tmp_path / "uploads" / "upload-Night-shift.md").read_bytes() == essay.read_bytes()
    binary = tmp_path / "x.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    ok, why, _ = app.add_essay(binary, form)
    assert not ok and why == "x.txt is not a text file (it holds binary data); save the essay as text and add it again"
    # removing works the same way
    assert app.remove_essay("upload-Night-shift-2.md")[0]
    assert not (tmp_path / "uploads" / "upload-Night-shift-2.md").exists()
    assert not app.remove_essay("upload-Night-shift-2.md")[0]
    # refused: disabled
    app.upload_enabled = False
    assert app.add_essay(essay)[0] is False


def test_coach_holder_loads_in_the_background(coach):
    calls = []

    def factory():
        calls.append(1)
        time.sleep(0.2)
        return coach

    holder = ui.CoachHolder(factory)
    holder.start()
    assert holder.get() is coach and calls == [1]
    failing = ui.CoachHolder(lambda: (_ for _ in ()).throw(ValueError("no essays")))
    assert failing.get() is None and failing.error == "no essays"


# ------------------------------------------------------------------ situations: one source (data/themes.json)


def test_situations_come_from_the_bridges_themes_file():
    from coach import bridge, themes

    source = json.loads(bridge.THEMES_FILE.read_text("utf-8"))
    assert [t.id for t in themes.THEMES] == [r["id"] for r in source]
    for t, r in zip(themes.THEMES, source):
        assert (t.en, t.zh, t.keywords, t.description_zh) == (
            r["en"],
            r["zh"],
            tuple(r["triggers"]),
            r["description_zh"],
        )
    # the UI's own text only adds to situations of the file, and points at situations of the file
    assert set(themes.UI_EXTRAS) <= set(themes.BY_ID)
    assert all(r in themes.BY_ID and r != t.id for t in themes.THEMES for r in t.related)
    assert {t.id for t in themes.FEATURED_THEMES} <= set(themes.BY_ID) and len(themes.FEATURED_THEMES) >= 6


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_example_question_is_recognised_as_its_own_situation(lang):
    from coach import themes

    for t in themes.THEMES:
        scored = themes.score_themes(t.example(lang))
        assert scored and scored[0][0] is t, (t.id, t.example(lang), [(x.id, n) for x, n in scored])


def test_situation_matching_follows_the_bridge():
    from coach import bridge, themes

    b = bridge.Bridge(dictionary=bridge.Dictionary())
    for q in (
        "he keeps shouting at me",
        "客戶一直罵我",
        "my voice is shaking, I'm so nervous",
        "怎么招聘新人",
        "hello there",
    ):
        top = [t.id for t, _ in themes.score_themes(q)][: bridge.MAX_THEMES]
        assert top == [t.id for t in b.match_themes(q)], q
    assert ui.related_themes(themes.BY_ID["angry-caller"], [])[0].id == "own-temper"


# ------------------------------------------------------------------ admin actions refuse other sites


class _Req:
    def __init__(self, **headers):
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


@pytest.mark.parametrize(
    "headers,foreign",
    [
        ({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860"}, False),
        ({"host": "127.0.0.1:7860", "referer": "http://127.0.0.1:7860/?lang=zh"}, False),
        ({"host": "127.0.0.1:7860"}, False),  # gradio_client, curl: no page at all
        (
            {"host": "coach.internal", "x_forwarded_host": "coach.example.org", "origin": "https://coach.example.org"},
            False,
        ),
        ({"host": "127.0.0.1:7860", "origin": "http://evil.example"}, True),
        ({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7861"}, True),  # another local app is another site
        ({"host": "127.0.0.1:7860", "origin": "null"}, True),
        ({"host": "127.0.0.1:7860", "referer": "http://evil.example/page"}, True),
        ({"host": "127.0.0.1:7860", "origin": "http://evil.example", "referer": "http://127.0.0.1:7860/"}, True),
    ],
)
def test_foreign_origin(headers, foreign):
    assert (ui.foreign_origin(_Req(**headers)) is not None) is foreign
    assert ui.foreign_origin(None) is None


# ------------------------------------------------------------------ start-up: load in the background, warm up


def test_questions_wait_for_the_load_then_get_a_loading_note(coach, tmp_path, monkeypatch):
    release = threading.Event()

    def slow():
        release.wait(10)
        return coach

    holder = ui.CoachHolder(slow)
    holder.start()
    app = ui.CoachApp(holder, FeedbackStore(tmp_path / "fb.sqlite3"), coach.settings)
    assert not holder.ready and holder.get(wait=False) is None and holder.get(timeout=0.1) is None
    monkeypatch.setattr(ui.state, "LOAD_WAIT_S", 0.1)
    with pytest.raises(RuntimeError):  # the UI turns this into the "still loading" note
        app.ask("how do I handle an angry caller", ui.Session())
    release.set()
    monkeypatch.setattr(ui.state, "LOAD_WAIT_S", 10)
    assert app.ask("how do I handle an angry caller", ui.Session()).answer.results  # waits, then answers
    assert holder.ready and holder.get(wait=False) is coach


def test_warm_up_uses_coach_warm_up_when_there_is_one():
    class WithWarmUp:
        calls = 0

        def warm_up(self):
            self.calls += 1

        def ask(self, *a, **k):
            raise AssertionError("warm_up() is used instead of asking")

    c = WithWarmUp()
    ui.warm_up(c)
    assert c.calls == 1

    done = []

    class InBackground:  # Coach.warm_up(background=True) returns its thread: warm_up waits for it
        def warm_up(self):
            t = threading.Thread(target=lambda: (time.sleep(0.2), done.append(1)))
            t.start()
            return t

    ui.warm_up(InBackground())
    assert done == [1]

    asked = []

    class Plain:
        def ask(self, q, **k):
            asked.append(q)

    ui.warm_up(Plain())
    assert asked == list(ui.WARM_UP_QUESTIONS)

    class Broken:
        def warm_up(self):
            raise ValueError("boom")

    ui.warm_up(Broken())  # logged, never raised


def test_load_coach_serves_a_warm_coach(tmp_path):
    settings = tiny_settings(tmp_path)
    coach = ui.load_coach(settings, tmp_path / "uploads", tmp_path / "live", FakeEmbedder())
    assert coach.index.manifest.counts["essays"] == 4
    encoded: list[list[str]] = []
    encode = coach.embedder.encode_queries
    coach.embedder.encode_queries = lambda texts, *a, **k: encoded.append(list(texts)) or encode(texts, *a, **k)
    assert coach.ask("how do I handle an angry caller").results
    # nothing left to load: the question's own texts are all that is encoded (no theme or prototype batch)
    assert len(encoded) == 1 and len(encoded[0]) <= 4, encoded


def test_export_folders_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(ui.server, "_EXPORTS", tmp_path / "exports")
    (tmp_path / "exports" / "old").mkdir(parents=True)
    old = time.time() - 7200
    import os

    os.utime(tmp_path / "exports" / "old", (old, old))
    new = ui.export_folder(ttl_s=3600)
    assert new.parent == tmp_path / "exports" and new.is_dir()
    assert not (tmp_path / "exports" / "old").exists()


# ------------------------------------------------------------------ issue 18: small talk, out of domain, attributions


def test_small_talk_gets_a_short_reply_without_a_search_or_a_content_gap(app):
    session = ui.Session()
    app.ask("how do I handle an angry caller", session)
    turn = app.ask("谢谢!", session)
    assert turn.small_talk == "thanks" and turn.shown == []
    card = ui.render_card(turn, "zh", "hant")
    assert "coach-small-talk" in card and "不客氣" in card and "coach-advice" not in card
    assert all(q != "谢谢!" for q, *_ in app.store.uncovered())
    # a follow-up after the small talk still refers to the situation before it
    turn = app.ask("what if they still won't calm down?", session)
    assert turn.followup and turn.searched.startswith("how do I handle an angry caller")


def test_out_of_domain_shows_nothing_from_the_essays(app):
    turn = app.ask("how to fix a flat bicycle tire", ui.Session())
    assert turn.answer.out_of_domain and turn.shown == [] and turn.passages() == []
    assert "coach-advice" not in ui.render_why(turn.answer, "en") and "<table" not in ui.render_why(turn.answer, "en")
    assert "coach-advice" not in ui.render_present(turn, 0, "en", "original")
    data = turn.answer.to_json()
    assert data["results"] == [] and data["out_of_domain"] is True
    assert [r["source"] for r in data.get("nearest", [])] == [h.chunk.id for h in turn.answer.results]


def test_attribution_in_the_ui_language_and_the_in_short_line(app):
    from coach.corpus import EssayMeta

    meta = EssayMeta(
        id="x",
        title="在中移动12580查询热线做客服的心得",
        author="12580 hotline veteran (China Mobile, unnamed)",
        organisation="中国移动 (12580)",
        years="10余 (over 10)",
        author_en="A 12580 hotline veteran",
        author_zh="12580热线资深客服",
        organisation_en="China Mobile",
        organisation_zh="中国移动",
        years_en="over 10 years on the job",
        years_zh="从业十余年",
    )
    zh = ui.attribution(meta, "zh", "hant")
    assert "12580熱線資深客服" in zh and "中國移動" in zh and "從業十餘年" in zh and "hotline" not in zh
    en = ui.attribution(meta, "en", "original")
    assert "A 12580 hotline veteran" in en and "China Mobile" in en and "over 10 years on the job" in en
    turn = app.ask("how do I handle an angry caller", ui.Session())
    hit = turn.answer.results[0]
    card = ui.render_advice(hit, 1, "en", "original", summary="An angry caller: let them finish first.")
    assert "In short" in card and "the editors&#x27; summary" in card and "let them finish first" in card
    assert "In short" not in ui.render_advice(hit, 1, "zh", "original", summary="An angry caller.")


def test_english_summaries_come_from_the_english_situation_texts():
    class Index:
        situation_texts = [
            {"text": "中文描述", "lang": "zh", "chunks": ["a#000"]},
            {"text": "First English.", "lang": "en", "chunks": ["a#000", "a#001"]},
            {"text": "Second English.", "lang": "en", "chunks": ["a#000"]},
        ]

    assert ui.english_summaries(Index()) == {"a#000": "First English.", "a#001": "First English."}
