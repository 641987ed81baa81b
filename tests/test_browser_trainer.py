"""Issue 17 in headless Debian Chromium: the trainer logs in on the trainer page, adds an essay with its metadata,
watches the rebuild's progress and sees the cleaning report, while another agent keeps getting answers; then an agent
with no login asks a question only that essay answers and sees it in the top 3, with the author from the form.

The fake embedder over the tiny corpus (no model download); its builds are slowed down so the progress is seen."""

from __future__ import annotations

import time

import pytest

from coach import ui
from coach.embed import FakeEmbedder
from coach.retrieve import Coach
from ui_support import CHROMIUM, CHROMIUM_ARGS, browser_marks, serve_locally, tiny_settings

LOGIN = ("trainer", "教練-pass-42")
ESSAY = (
    "退款投诉的处理\n"
    "遇到退款投诉,我先把客户的订单号、付款时间和退款原因一条一条核对清楚,再告诉客户退款的每一步。\n"
    "客户最怕的是退款没有下文,所以我会说清楚预计到账的时间,并主动约好回电的时间。\n"
    "如果退款被系统卡住,我不会让客户自己去问,而是直接联系财务,把处理进度同步给客户。\n"
    "投诉的客户要的不是道歉的套话,而是一个确定的答复:钱什么时候回来。\n"
)

pytestmark = browser_marks()


class SlowBuilds(FakeEmbedder):
    """Builds take a few seconds once `slow` is set (passages and sentences are encoded at build time only);
    questions are encoded at full speed, so agents are answered from the previous index meanwhile."""

    slow = False

    def encode_passages(self, texts, batch_size=32):
        if self.slow:
            time.sleep(2.5)
        return super().encode_passages(texts, batch_size)


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_INDEX_POLL_S", "0")
    monkeypatch.setenv("COACH_ENABLE_UPLOAD", "1")
    monkeypatch.setenv("COACH_ADMIN_USER", LOGIN[0])
    monkeypatch.setenv("COACH_ADMIN_PASSWORD", LOGIN[1])
    settings = tiny_settings(tmp_path).with_overrides(
        upload_dir=tmp_path / "uploads", learned_file=tmp_path / "learned.toml"
    )
    embedder = SlowBuilds()
    coach = Coach(settings, embedder=embedder)
    coach.ask("angry caller")  # the bridge's dictionaries, before the clock starts
    embedder.slow = True
    demo = ui.build_demo(coach, settings=settings, feedback_db=tmp_path / "fb.sqlite3")
    port = serve_locally(demo, with_api=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _agent(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    page.wait_for_selector("#coach-input textarea", timeout=120_000)
    assert page.locator("input[type=password]").count() == 0  # agents never log in
    return page


def _ask(page, text: str) -> None:
    before = page.locator("#coach-chat .coach-card").count()
    page.fill("#coach-input textarea", text)
    page.click("#coach-send")
    page.wait_for_function(f"document.querySelectorAll('#coach-chat .coach-card').length > {before}", timeout=120_000)


def test_trainer_adds_an_essay_while_agents_keep_getting_answers(served, browser, tmp_path):
    demo, url = served
    essay = tmp_path / "退款投诉.txt"
    essay.write_text(ESSAY, encoding="utf-8")

    trainer = browser.new_page(viewport={"width": 1280, "height": 1000})
    trainer.goto(url + "trainer/")
    trainer.wait_for_selector("input[type=password]", timeout=60_000)  # the trainer page asks for its login
    trainer.locator("input:not([type=password])").first.fill(LOGIN[0])
    trainer.locator("input[type=password]").fill(LOGIN[1])
    trainer.get_by_role("button", name="Login").click()
    trainer.wait_for_selector("#coach-trainer-tabs", timeout=60_000)
    trainer.get_by_role("tab", name="Add essay").click()
    trainer.set_input_files("#coach-up-file input[type=file]", str(essay))
    trainer.wait_for_function("document.querySelector('#coach-up-file')?.innerText.includes('.txt')", timeout=60_000)
    trainer.fill("#coach-up-title textarea, #coach-up-title input", "退款投诉的处理")
    trainer.fill("#coach-up-author textarea, #coach-up-author input", "退款組 林組長")
    trainer.fill("#coach-up-org textarea, #coach-up-org input", "示例電商")
    trainer.fill("#coach-up-years textarea, #coach-up-years input", "11")

    agent = _agent(browser, url)
    _ask(agent, "客户骂人怎么办")
    trainer.click("#coach-up-add")

    # while the essay is added and the index rebuilt: the trainer sees the progress, the agent keeps being answered
    seen_progress, answered_while_rebuilding = set(), 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = trainer.evaluate(
            "() => [...document.querySelectorAll('.progress-text, .progress-level, .meta-text, .meta-text-center')]"
            ".map(e => e.innerText).join(' | ')"
        )
        if text.strip():
            seen_progress.add(text.strip())
        if "Coach now answers" in trainer.inner_text("#coach-up-result"):
            break
        if answered_while_rebuilding < 2:
            _ask(agent, "how do I handle an angry caller")
            if "Coach now answers" not in trainer.inner_text("#coach-up-result"):
                answered_while_rebuilding += 1
        trainer.wait_for_timeout(200)
    result = trainer.inner_text("#coach-up-result")
    report = trainer.input_value("#coach-up-report textarea")
    assert "Coach now answers from" in result and "try:" in result, result
    assert "passages" in report and "林組長" in report and "repairs" in report, report
    assert answered_while_rebuilding >= 1
    assert seen_progress, "no progress bar was seen during the rebuild"
    assert any(w in " ".join(seen_progress) for w in ("embedding", "reading", "writing", "%")), seen_progress
    assert (tmp_path / "uploads").is_dir() and not (demo.coach_app.settings.corpus_dir / essay.name).exists()

    # an agent with no login asks what only that essay answers: it is in the top 3, with the author from the form
    # (the fake embedder's cosines are low, so the question shares the essay's words; the real model answers "退款投诉
    # 怎么处理" from it: tests/test_trainer_real.py)
    fresh = _agent(browser, url)
    _ask(fresh, "退款投诉的客户要的是什么答复?")
    card = fresh.locator("#coach-chat .coach-card").last
    authors = card.locator(".coach-author").all_inner_texts()
    titles = card.locator(".coach-title").all_inner_texts()
    assert any("林組長" in a for a in authors[:3]), (authors, card.inner_text())
    assert any("退款投诉的处理" in t for t in titles[:3]), titles


def test_the_trainer_page_speaks_chinese(served, browser):
    """`?lang=zh` opens the trainer page in Chinese, the language radio switches every label, and the feedback tables
    are re-rendered in the language chosen."""
    _, url = served
    trainer = browser.new_page(viewport={"width": 1280, "height": 1000})
    trainer.goto(url + "trainer/")
    trainer.wait_for_selector("input[type=password]", timeout=60_000)
    trainer.locator("input:not([type=password])").first.fill(LOGIN[0])
    trainer.locator("input[type=password]").fill(LOGIN[1])
    trainer.get_by_role("button", name="Login").click()
    trainer.wait_for_selector("#coach-trainer-tabs", timeout=60_000)
    trainer.goto(url + "trainer/?lang=zh")  # logged in: the cookie carries over
    trainer.wait_for_selector("#coach-trainer-tabs", timeout=60_000)
    trainer.get_by_role("tab", name="添加文章").wait_for(timeout=60_000)
    assert "培训师页面" in trainer.inner_text("#coach-trainer-header")
    assert (
        trainer.get_by_role("tab", name="反馈").count() == 1 and trainer.get_by_role("button", name="立即重建").count()
    )
    trainer.get_by_role("tab", name="为什么是这些段落").click()
    trainer.get_by_label("试一个问题").fill("When an angry caller shouts, let the caller finish and breathe.")
    trainer.click("#coach-w-ask")
    trainer.wait_for_function("document.querySelector('#coach-w-why table') !== null", timeout=60_000)
    chinese_table = trainer.inner_text("#coach-w-why")
    trainer.locator("#coach-trainer-lang").get_by_text("English").click()
    trainer.get_by_role("tab", name="Add essay").wait_for(timeout=60_000)
    assert "trainer page" in trainer.inner_text("#coach-trainer-header")
    assert trainer.get_by_role("tab", name="Feedback").count() == 1
    trainer.wait_for_function(
        f"document.querySelector('#coach-w-why')?.innerText !== {chinese_table!r}", timeout=60_000
    )  # the why table of the same question, re-rendered in English
