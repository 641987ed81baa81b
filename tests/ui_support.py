"""A tiny corpus for the UI tests: a few short essays (English and Chinese) and one carrying HTML/script payloads.

The payloads are written as HTML entities, which the corpus cleaner decodes, so the *cleaned* essay text holds the
literal characters `<script>`, `<img ... onerror=...>` and friends: exactly what the UI must show and never run.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from coach.config import PROJECT_ROOT, Settings

XSS_MARKERS = ("<script>", "onerror=")
# What the payload essay says, once cleaned; every one of these would set window.__coach_xss if it ever ran.
XSS_TEXT = (
    "&lt;script&gt;window.__coach_xss = 1&lt;/script&gt; "
    '&lt;img src=x onerror="window.__coach_xss = 2"&gt; '
    "&lt;svg onload=window.__coach_xss=3&gt; "
    "${window.__coach_xss = 4} {{constructor.constructor('window.__coach_xss = 5')()}} "
    "[click](javascript:window.__coach_xss=6) "
    "When the xylophone warehouse printer toner runs out, log the toner escalation before the shift ends."
)

ESSAYS = {
    "angry-caller.txt": (
        "Handling an angry caller\n"
        "An angry caller is not angry at you. When an angry caller shouts, let the caller finish and breathe.\n"
        "My team lead told me: “Let the customer finish every sentence before you say a word.” "
        "Then I say: “I understand why you are upset, let me fix this with you now.”\n"
        "Most angry callers calm down once they feel heard; the angry caller wants the problem handled.\n"
    ),
    "first-calls.txt": (
        "My first calls\n"
        "On my first calls my voice was shaking and I was nervous every time the phone rang.\n"
        "A colleague said nervous new agents should write a short script and keep it beside the phone.\n"
        "After a month the nervous feeling faded and the calls became routine.\n"
    ),
    "red-lines.txt": (
        "规则与红线\n"
        "客户要求我帮他破解安全设置,我告诉他红线是不可以触碰的。\n"
        "老主管跟我说过:“当你懂得了面子不是那么重要的东西时,便是真的成长。”\n"
        "守住原则,也要把能做的事情讲清楚,客户才会信任你。\n"
    ),
    "xss-probe.txt": "Toner escalation\n" + XSS_TEXT + "\n",
}

ESSAYS_TOML = """
[[essay]]
id = "angry-caller"
source = "angry-caller.txt"
title = "Handling an angry caller"
author = "Ann Example"
organisation = "Example Telecom"
role = "team lead"
years = "9"
script = "en"

[[essay]]
id = "first-calls"
source = "first-calls.txt"
title = "My first calls"
author = "New-hire tutor (unnamed)"
organisation = "Example Bank"
years = "4"
script = "en"

[[essay]]
id = "red-lines"
source = "red-lines.txt"
title = "规则与红线"
author = "王老师"
organisation = "示例银行"
years = "12"
script = "zh-Hans"

[[essay]]
id = "xss-probe"
source = "xss-probe.txt"
title = "Toner <b>escalation</b> <img src=x onerror=window.__coach_xss=7>"
author = "<script>window.__coach_xss=8</script>"
organisation = "Probe & Co"
years = "1"
script = "en"
"""


def write_tiny_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ESSAYS.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "essays.toml").write_text(ESSAYS_TOML, encoding="utf-8")
    return folder


def tiny_settings(tmp: Path) -> Settings:
    return Settings().with_overrides(corpus_dir=write_tiny_corpus(tmp / "corpus"), index_dir=tmp / "index")


def real_plus_probe_settings(tmp: Path) -> Settings:
    """The real corpus plus the payload essay, in a temporary folder (corpus/ itself is never written)."""
    corpus = tmp / "corpus"
    corpus.mkdir(parents=True)
    for p in (PROJECT_ROOT / "corpus").iterdir():
        if p.is_file():
            shutil.copy2(p, corpus / p.name)
    (corpus / "zz-xss-probe.txt").write_text(ESSAYS["xss-probe.txt"], encoding="utf-8")
    return Settings().with_overrides(corpus_dir=corpus, index_dir=tmp / "index")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_locally(demo, with_api: bool = False) -> int:
    """Launch `demo` in a background thread on a free 127.0.0.1 port with the app's queue and launch settings (and
    the JSON API's with `with_api`), quietly; the port."""
    from coach import api, ui

    port = free_port()
    kwargs = api.launch_kwargs(demo, ui.launch_kwargs()) if with_api else ui.launch_kwargs()
    demo.queue(**ui.queue_kwargs()).launch(
        server_name="127.0.0.1",
        server_port=port,
        share=False,
        show_error=False,
        prevent_thread_lock=True,
        quiet=True,
        **kwargs,
    )
    return port


# Debian's Chromium, driven by Playwright from PyPI (never `playwright install`), with the flags the project uses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def browser_marks() -> list:
    """pytestmark of a browser test file: slow, browser, and skipped (saying how to fix it) without Chromium."""
    import pytest

    return [
        pytest.mark.slow,
        pytest.mark.browser,
        pytest.mark.skipif(
            not Path(CHROMIUM).exists(),
            reason=f"{CHROMIUM} is missing: install Debian's chromium (`make browser`) to run this test",
        ),
    ]
