"""End to end in headless Debian Chromium: ask, see a card, mark it helpful, find the row; payload essays run nothing;
at a laptop's 1366x768 and a phone's 390x844: no horizontal overflow, the question box on the first screen,
presentation mode's keys, a share link that replays a follow-up in a fresh browser, a long paste answered with the
"shortened" note, small talk answered briefly.

Uses the real model and corpus when the model can be loaded (else the fake embedder over the tiny test corpus).
With COACH_SCREENSHOTS=1 it also writes docs/screenshots/{en,zh,trainer,phone,present}.png for the README.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from coach import ui
from coach.config import PROJECT_ROOT, Settings
from coach.embed import FakeEmbedder
from coach.retrieve import Coach
from ui_support import CHROMIUM, CHROMIUM_ARGS, browser_marks, free_port, tiny_settings

SHOTS = PROJECT_ROOT / "docs" / "screenshots"

pytestmark = browser_marks()


def _real_coach() -> Coach | None:
    """The real model over the real corpus (building the index if needed), or None when the model is unavailable."""
    try:
        from coach.embed import Embedder

        settings = Settings()
        return Coach(
            settings,
            embedder=Embedder(settings.model, cache_dir=settings.model_cache_dir, vocabulary=settings.vocabulary),
            build=True,
        )
    except Exception as exc:  # no model here: the fake embedder and the tiny corpus stand in
        print(f"real model unavailable ({exc}); using the fake embedder")
        return None


class Served:
    def __init__(self, coach: Coach, db: Path):
        self.demo = ui.build_demo(coach, feedback_db=db, upload_enabled=False)
        self.port = free_port()
        self.demo.queue(**ui.queue_kwargs()).launch(
            server_name="127.0.0.1",
            server_port=self.port,
            share=False,
            show_error=False,
            prevent_thread_lock=True,
            quiet=True,
            **ui.launch_kwargs(),
        )
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self):
        self.demo.close()


@pytest.fixture(scope="module")
def real_or_tiny(tmp_path_factory):
    """The real Coach when the model loads, else the fake embedder over the tiny corpus (loaded once per module)."""
    coach = _real_coach()
    return coach or Coach(tiny_settings(tmp_path_factory.mktemp("tiny")), embedder=FakeEmbedder())


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, url, dialogs: list):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#coach-input textarea")
    _settled(page)
    return page


def _settled(page) -> None:
    """Wait until the page's load event has answered (its spinner covers the language switch until then)."""
    page.wait_for_function(
        """() => ![...document.querySelectorAll('#coach-lang [data-testid=status-tracker]')]
        .some(e => !e.classList.contains('hide'))""",
        timeout=120_000,
    )


def _ask(page, text: str, n_cards: int):
    page.fill("#coach-input textarea", text)
    page.click("#coach-send")
    page.wait_for_function(f"document.querySelectorAll('#coach-chat .coach-card').length >= {n_cards}", timeout=120_000)
    page.wait_for_timeout(400)


def _cjk_font_installed() -> bool:
    """Whether fontconfig knows a Chinese font (Debian: fonts-noto-cjk); without one Chromium draws empty boxes."""
    import shutil
    import subprocess

    if not shutil.which("fc-list"):
        return False
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30)
    return bool(out.stdout.strip())


def _shot(page, name: str, **kw):
    if os.environ.get("COACH_SCREENSHOTS") == "1":
        # README screenshots with boxes instead of Chinese characters would replace good ones: refuse
        assert _cjk_font_installed(), "no Chinese font: install fonts-noto-cjk before writing the screenshots"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), **kw)


def test_agent_asks_marks_helpful_and_payloads_run_nothing(browser, real_or_tiny, tmp_path):
    coach = real_or_tiny
    real = coach.settings.corpus_dir == Settings().corpus_dir
    db = tmp_path / "feedback.sqlite3"
    served = Served(coach, db)
    dialogs: list[str] = []
    try:
        page = _page(browser, served.url, dialogs)
        _ask(page, "how do I handle an angry caller", 1)
        card = page.locator("#coach-chat .coach-card").last
        assert card.locator("mark.coach-mark").count() >= 1  # highlighted advice
        assert card.locator(".coach-who").count() >= 1  # attribution
        assert "《" in card.locator(".coach-who").first.inner_text()
        assert card.locator(".coach-situation").inner_text().strip()
        card.locator("summary").first.click()  # the passage, one click away
        assert card.locator(".coach-passage").first.is_visible()
        card.locator("summary").first.click()  # folded again for the screenshot
        page.locator("#coach-mark-1").get_by_label("Helpful", exact=True).check()  # a mark on the first card
        page.wait_for_timeout(1500)
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT query, helpful, passages, created_at FROM events WHERE kind = 'feedback'"
            ).fetchall()
        assert len(rows) == 1 and rows[0][0] == "how do I handle an angry caller" and rows[0][1] == 1
        assert '"id"' in rows[0][2] and rows[0][3]
        page.locator("#coach-mark-1").get_by_label("No mark", exact=True).check()  # taken back: the row goes
        page.wait_for_timeout(1500)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
        page.locator("#coach-why").click()
        _shot(page, "en.png", full_page=True)

        # Chinese: UI language switch, a Chinese question, passages in simplified script
        page2 = _page(browser, served.url, dialogs)
        page2.locator("#coach-lang label", has_text="中文").click()
        page2.locator("#coach-script label", has_text="简体").click()
        page2.wait_for_timeout(500)
        _ask(page2, "客户在电话里破口大骂,我该怎么办?", 1)
        zh_card = page2.locator("#coach-chat .coach-card").last
        assert (
            "情况" in zh_card.inner_text()
            or "最接近的话题" in zh_card.inner_text()
            or "资深客服们还没有写过这个问题" in zh_card.inner_text()
        )
        _shot(page2, "zh.png", full_page=True)

        # Trainer: scenario gallery, side by side, with the discussion prompt and the scores
        page2.get_by_role("tab", name="情景", exact=True).click()
        page2.click("#coach-g-show")
        page2.wait_for_selector("#coach-gallery .coach-discuss", timeout=120_000)
        assert page2.locator("#coach-gallery .coach-col").count() >= 1 or not real
        _shot(page2, "trainer.png", full_page=True)
        page.close()
        page2.close()
    finally:
        served.close()

    # An essay holding <script>, onerror=, onload=, template and javascript: payloads: shown as text, run nothing.
    probe = Served(Coach(tiny_settings(tmp_path / "probe"), embedder=FakeEmbedder()), tmp_path / "probe.sqlite3")
    try:
        page = _page(browser, probe.url, dialogs)
        page.add_init_script("window.__coach_xss = undefined")
        _ask(
            page,
            '<img src=x onerror="window.__coach_xss=9"> xylophone warehouse printer toner runs out: '
            "log the toner escalation",
            1,
        )
        card = page.locator("#coach-chat .coach-card").last
        card.locator("summary").first.click()
        text = card.inner_text()
        assert "<script>window.__coach_xss = 1</script>" in text and "onerror=" in text
        assert '<img src=x onerror="window.__coach_xss=9">' in page.locator("#coach-chat .coach-q").last.inner_text()
        page.locator(".coach-read").first.click()  # the essay reader, with the payloads
        page.wait_for_selector("#coach-reader-mark", timeout=30_000)
        reader = page.locator("#coach-reader").inner_text()
        assert "<script>" in reader and "onerror=" in reader and "<b>escalation</b>" in reader
        page.get_by_role("tab", name="Present", exact=True).click()
        page.wait_for_selector("#coach-present .coach-advice")
        page.wait_for_timeout(1000)
        assert page.evaluate("window.__coach_xss") is None
        assert page.locator("#coach-chat script, #coach-reader script, #coach-present script").count() == 0
        assert page.locator("img[src='x'], svg[onload]").count() == 0
        assert dialogs == []
        page.close()
    finally:
        probe.close()


# ------------------------------------------------------------------ a laptop and a phone

VIEWPORTS = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner + 1, f"the page is {width} px wide in a {inner} px window"
    wide = page.evaluate("""() => [...document.querySelectorAll('#coach-chat *, #coach-gallery *, #coach-why *')]
        .filter(e => e.getBoundingClientRect().width > 0 && e.getBoundingClientRect().right > window.innerWidth + 1
                && getComputedStyle(e).position !== 'fixed' && !e.closest('.coach-scroll'))
        .slice(0, 3).map(e => e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert wide == [], f"elements reach past the window's right edge: {wide}"


def _in_first_viewport(page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    height = page.evaluate("window.innerHeight")
    assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, f"{selector} at {box} in {height} px"


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_laptop_and_phone_layout_presentation_share_link_and_long_paste(browser, real_or_tiny, tmp_path, device):
    served = Served(real_or_tiny, tmp_path / "feedback.sqlite3")
    viewport = VIEWPORTS[device]
    try:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        page.goto(served.url)
        page.wait_for_selector("#coach-input textarea")
        _settled(page)
        _in_first_viewport(page, "#coach-input textarea")  # the question box: no scrolling
        _no_horizontal_overflow(page)

        # a question and a follow-up
        _ask(page, "how do I handle an angry caller", 1)
        _ask(page, "what if they still won't calm down?", 2)
        assert page.locator("#coach-chat .coach-card").last.locator(".coach-followup").count() == 1
        keys = page.locator("#coach-chat .coach-card").last.locator(".coach-key").all_inner_texts()
        if device == "phone":
            page.evaluate("window.scrollTo(0, 0)")
            _shot(page, "phone.png")
        page.locator("#coach-why").click()  # the scores table, opened
        page.wait_for_timeout(300)
        _no_horizontal_overflow(page)

        # the share link: a full URL that replays the whole conversation in a fresh browser
        page.locator("#coach-share").click()
        link = page.locator("#coach-link textarea, #coach-link input").first.input_value()
        assert link.startswith(served.url) and "q=" in link and "f=" in link, link
        fresh = browser.new_context(viewport=viewport)
        replay = fresh.new_page()
        replay.goto(link)
        replay.wait_for_function("document.querySelectorAll('#coach-chat .coach-card').length >= 2", timeout=120_000)
        replayed = replay.locator("#coach-chat .coach-card").last
        assert replayed.locator(".coach-followup").count() == 1
        assert replayed.locator(".coach-key").all_inner_texts() == keys
        fresh.close()

        # presentation mode: fills the window, one card, ← / → / Esc, its controls on screen
        page.get_by_role("tab", name="Present", exact=True).click()
        page.wait_for_selector("#coach-present .coach-advice")
        page.wait_for_timeout(400)
        assert page.evaluate("document.body.classList.contains('coach-presenting')")
        wrap = page.locator("#coach-present-wrap").bounding_box()
        assert (
            wrap["x"] <= 0
            and wrap["y"] <= 0
            and wrap["width"] >= viewport["width"] - 1
            and wrap["height"] >= viewport["height"] - 1
        ), wrap
        assert page.locator("#coach-present .coach-advice").count() == 1
        _in_first_viewport(page, "#coach-p-next")
        n_cards = len(keys)
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            f"document.querySelector('#coach-present .coach-present')?.dataset.card == '{2 if n_cards > 1 else 1}'"
        )
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("document.querySelector('#coach-present .coach-present')?.dataset.card == '1'")
        if device == "laptop":
            _shot(page, "present.png")
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)
        assert not page.evaluate("document.body.classList.contains('coach-presenting')")
        page.get_by_role("tab", name="Coach", exact=True).click()

        # a 3,000-character paste reaches the server, which answers the first 1,000 and says so; small talk
        long_text = ("The customer keeps shouting at me about a bill and will not let me speak. " * 45)[:3000]
        page.fill("#coach-input textarea", long_text)
        assert len(page.locator("#coach-input textarea").input_value()) == 3000  # the browser cuts nothing
        page.click("#coach-send")
        page.wait_for_function("document.querySelectorAll('#coach-chat .coach-card').length >= 3", timeout=120_000)
        assert "characters were used" in page.locator("#coach-chat .coach-card").last.inner_text()
        _ask(page, "thanks", 4)
        assert page.locator("#coach-chat .coach-small-talk").count() == 1
        _no_horizontal_overflow(page)

        # the trainer's gallery on this screen: side by side on a laptop, stacked on a phone, never wider
        page.get_by_role("tab", name="Scenarios", exact=True).click()
        page.click("#coach-g-show")
        page.wait_for_selector("#coach-gallery .coach-discuss", timeout=120_000)
        _no_horizontal_overflow(page)
        context.close()
    finally:
        served.close()
