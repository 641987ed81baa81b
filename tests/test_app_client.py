"""The app on a free loopback port, driven through gradio_client like any API user."""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.request

import pytest

from coach import ui
from coach.embed import FakeEmbedder
from coach.retrieve import Coach
from ui_support import XSS_TEXT, serve_locally, tiny_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    coach = Coach(tiny_settings(tmp), embedder=FakeEmbedder())
    demo = ui.build_demo(coach, feedback_db=tmp / "fb.sqlite3", upload_enabled=False)
    port = serve_locally(demo)
    try:
        yield f"http://127.0.0.1:{port}/", tmp / "fb.sqlite3", demo
    finally:
        demo.close()


def test_ask_and_mark_through_the_api(served):
    from gradio_client import Client

    url, db, _ = served
    client = Client(url, verbose=False)
    out = client.predict("how do I handle an angry caller", "en", "original", api_name="/respond")
    box, chat, why, related_label, *rest = out
    assert box == ""
    assert [m["role"] for m in chat] == ["user", "assistant"]
    card = chat[1]["content"] if isinstance(chat[1]["content"], str) else chat[1]["content"][0]["text"]
    assert "coach-card" in card and "Ann Example" in card and '<mark class="coach-mark">' in card
    assert "angry-caller#" in why
    # a follow-up in the same session builds on the first question
    out = client.predict("what if they still won't calm down?", "en", "original", api_name="/respond")
    assert len(out[1]) == 4 and "follow-up to" in str(out[1][3]["content"])
    assert client.predict(0, True, api_name="/mark") == "stored"  # the first card of the first answer
    assert client.predict(0, False, 1, api_name="/mark") == "stored"  # its second card
    assert client.predict(0, False, api_name="/mark") == "stored"  # the first card again: replaced
    assert client.predict(7, True, api_name="/mark") == "unknown card"
    assert client.predict(0, 1, api_name="/unmark") == "removed"
    assert client.predict(0, 1, api_name="/unmark") == "no mark"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT query, helpful FROM events WHERE kind = 'feedback'").fetchall()
    assert rows == [("how do I handle an angry caller", 0)]


def test_payloads_come_back_escaped(served):
    from gradio_client import Client

    client = Client(served[0], verbose=False)
    out = client.predict(
        "<img src=x onerror=alert(1)> " + XSS_TEXT,  # the probe's own text: answered with its card
        "en",
        "original",
        api_name="/respond",
    )
    user, card = (str(m["content"]) for m in out[1])
    assert "<img" not in user and "&lt;img src=x onerror=alert(1)&gt;" in user
    assert "&lt;script&gt;" in card and "<script" not in card and "<img" not in card


def test_scenario_endpoint_and_no_feedback_view_on_the_agents_page(served):
    from gradio_client import Client

    client = Client(served[0], verbose=False)
    gallery, why = client.predict("angry-caller", "en", "original", api_name="/scenario")
    assert "coach-cols" in gallery and "Discuss" in gallery
    assert "/feedback" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_safe_defaults(served):
    url, _, demo = served
    assert demo.config.get("show_error") in (False, None) and not demo.share
    assert demo.local_url.startswith("http://127.0.0.1:")
    assert demo._queue.max_size == ui.QUEUE_MAX_SIZE
    import gradio

    major, minor = (int(x) for x in gradio.__version__.split(".")[:2])
    assert (major, minor) >= (6, 20)
    with pytest.raises(urllib.error.HTTPError) as err:  # no monitoring endpoint
        urllib.request.urlopen(url + "monitoring", timeout=10)
    assert err.value.code in (403, 404)


def test_adding_essays_sits_behind_the_trainer_login_and_the_chat_does_not(tmp_path, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv("COACH_ENABLE_UPLOAD", "1")
    monkeypatch.setenv("COACH_ADMIN_USER", "trainer")
    monkeypatch.setenv("COACH_ADMIN_PASSWORD", "s3cret-pass")
    coach = Coach(tiny_settings(tmp_path), embedder=FakeEmbedder())
    demo = ui.build_demo(coach, feedback_db=tmp_path / "fb.sqlite3", upload_dir=tmp_path / "up")
    assert demo.coach_app.upload_enabled and demo.coach_app.admin_user == "trainer"
    port = serve_locally(demo)
    try:
        url = f"http://127.0.0.1:{port}/"
        assert "coach-card" in str(
            Client(url, verbose=False).predict("angry caller", "en", "original", api_name="/respond")[1]
        )
        with pytest.raises(Exception):
            Client(url + "trainer/", verbose=False)
        trainer = Client(url + "trainer/", auth=("trainer", "s3cret-pass"), verbose=False)
        assert "/add_essay" in trainer.view_api(print_info=False, return_format="dict")["named_endpoints"]
    finally:
        demo.close()


def test_questions_asked_while_coach_loads_are_answered_when_it_is_ready(tmp_path):
    """The app as app.py builds it (no Coach passed): the page is served while the model and index load in the
    background, and a question asked meanwhile waits and gets its answer."""
    from gradio_client import Client

    release = threading.Event()

    class Gated(FakeEmbedder):  # the tiny index is built at start-up here, once the test lets it
        def encode_passages(self, texts, batch_size=32):
            release.wait(60)
            return super().encode_passages(texts, batch_size)

    demo = ui.build_demo(
        settings=tiny_settings(tmp_path),
        embedder=Gated(),
        feedback_db=tmp_path / "fb.sqlite3",
        upload_enabled=False,
        upload_dir=tmp_path / "up",
        live_dir=tmp_path / "live",
    )
    status = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "coach-status")
    assert status.visible  # the warming-up note is on the page from the start
    port = serve_locally(demo)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)  # served before Coach is ready
        job = client.submit("how do I handle an angry caller", "en", "original", api_name="/respond")
        time.sleep(1.5)
        assert not job.done() and not demo.coach_app.holder.ready  # the question waits for the load
        release.set()
        out = job.result(timeout=ui.LOAD_WAIT_S)
        assert out[0] == "" and "coach-card" in str(out[1][-1]["content"])  # answered, not handed back
        assert demo.coach_app.holder.ready
    finally:
        release.set()
        demo.close()
