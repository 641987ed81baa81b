"""Issue 19, item 3, in headless Debian Chromium: with coach/websec.py's headers (CSP, X-Frame-Options, nosniff) the
Gradio page still works (ask, card, passage, reader, thumbs) with no Content-Security-Policy violation, and a page
of another origin cannot frame it."""

from __future__ import annotations

import sqlite3


from coach import ui
from coach.embed import FakeEmbedder
from coach.retrieve import Coach
from ui_support import CHROMIUM, CHROMIUM_ARGS, browser_marks, serve_locally, tiny_settings


pytestmark = browser_marks()


def test_page_works_under_the_security_headers_and_cannot_be_framed(tmp_path):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "feedback.sqlite3"
    demo = ui.build_demo(
        Coach(tiny_settings(tmp_path / "tiny"), embedder=FakeEmbedder()), feedback_db=db, upload_enabled=False
    )
    port = serve_locally(demo)
    url = f"http://127.0.0.1:{port}/"
    violations, errors = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation', e => "
                "console.error('Content Security Policy violation: ' + e.violatedDirective + ' ' "
                "+ e.blockedURI))"
            )
            response = page.goto(url)
            assert response.headers["x-frame-options"] == "SAMEORIGIN"
            assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
            page.wait_for_selector("#coach-input textarea")
            page.fill("#coach-input textarea", "客户在电话里破口大骂怎么办")
            page.click("#coach-send")
            page.wait_for_function("document.querySelectorAll('#coach-chat .coach-card').length >= 1", timeout=120_000)
            card = page.locator("#coach-chat .coach-card").last
            card.locator("summary").first.click()
            assert card.locator(".coach-passage").first.is_visible()
            page.locator("#coach-mark-1").get_by_label("Helpful", exact=True).check()  # a card's mark
            page.locator(".coach-read").first.click()  # the reader: the app's js= snippet runs
            page.wait_for_selector("#coach-reader-mark", timeout=30_000)
            page.wait_for_timeout(1500)
            with sqlite3.connect(db) as conn:
                assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'feedback'").fetchone()[0] == 1
            assert violations == [] and errors == [], (violations, errors)

            # another origin (here: a data: page) framing the app gets Chromium's blocked-frame page
            framer = browser.new_page()
            framer.set_content(f'<iframe id="f" src="{url}" width="800" height="600"></iframe>')
            framer.wait_for_timeout(3000)
            frame = next(f for f in framer.frames if f != framer.main_frame)
            assert frame.url != url or frame.locator("#coach-input").count() == 0
            browser.close()
    finally:
        demo.close()
