"""Issue 17: two audiences on one server. Agents never log in (uploads on or off); the trainer page (/trainer) and
its actions need the trainer login; every endpoint an unauthenticated client can reach returns nothing another agent
asked."""

from __future__ import annotations

import re

import httpx
import pytest

from coach import ui
from coach.embed import FakeEmbedder
from coach.retrieve import Coach
from ui_support import serve_locally, tiny_settings

pytestmark = pytest.mark.slow

LOGIN = ("trainer", "s3cret-pass 教練")
SECRET_GAP = "how to fix a flat bicycle tire zq7"  # out of the domain: counted as a content gap
SECRET_ASKED = "how do I handle an angry caller, asked by agent q-41"  # answered, a card marked not helpful


def _serve(tmp_path, monkeypatch, *, uploads: bool, login: bool):
    monkeypatch.setenv("COACH_INDEX_POLL_S", "0")
    # a cache folder of this test's own: the tests here serve the same answers, whose download files share one
    # content-hashed path, and a previous server's shutdown (delete_cache) may remove it while this one serves it
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    for name in ("COACH_ENABLE_UPLOAD", "COACH_ADMIN_USER", "COACH_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    if uploads:
        monkeypatch.setenv("COACH_ENABLE_UPLOAD", "1")
    if login:
        monkeypatch.setenv("COACH_ADMIN_USER", LOGIN[0])
        monkeypatch.setenv("COACH_ADMIN_PASSWORD", LOGIN[1])
    settings = tiny_settings(tmp_path).with_overrides(learned_file=tmp_path / "learned.toml")
    demo = ui.build_demo(
        Coach(settings, embedder=FakeEmbedder()),
        settings=settings,
        feedback_db=tmp_path / "fb.sqlite3",
        upload_dir=tmp_path / "uploads",
    )
    port = serve_locally(demo, with_api=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.mark.parametrize("uploads, login", [(True, True), (False, True), (False, False)])
def test_the_agent_page_never_asks_for_a_password(tmp_path, monkeypatch, uploads, login):
    from gradio_client import Client

    demo, url = _serve(tmp_path, monkeypatch, uploads=uploads, login=login)
    try:
        assert httpx.get(url + "config", timeout=30).status_code == 200  # no login in front of the agents' page
        out = Client(url, verbose=False).predict(
            "how do I handle an angry caller", "en", "original", api_name="/respond"
        )
        assert "coach-card" in str(out[1])
        trainer = httpx.get(url + "trainer/config", timeout=30)
        assert trainer.status_code in (401, 404) and "coach-card" not in trainer.text
        if login:
            assert trainer.status_code == 401  # the trainer page is there, behind its login
            with pytest.raises(Exception):
                Client(url + "trainer/", verbose=False)
            Client(url + "trainer/", auth=LOGIN, verbose=False).predict(api_name="/feedback")
            assert (demo.coach_app.upload_enabled) is uploads
        else:
            assert "COACH_ADMIN_USER" in httpx.get(url + "trainer", timeout=30, follow_redirects=True).text
    finally:
        demo.close()


def _routes(routes, prefix=""):
    """(methods, path) of every HTTP route, mounted apps' included."""
    from starlette.routing import Mount, Route

    out = []
    for r in routes:
        if isinstance(r, Mount):
            out += _routes(getattr(r, "routes", []) or [], prefix + r.path)
        elif isinstance(r, Route):
            out.append((sorted(r.methods or {"GET"}), prefix + r.path))
    return out


def _read(client: httpx.Client, method: str, url: str) -> str:
    """What an endpoint answers (at most 256 KiB; an event stream is read until it goes quiet)."""
    body = b""
    try:
        with client.stream(method, url, json={} if method == "POST" else None) as r:
            for part in r.iter_bytes():
                body += part
                if len(body) > 256 * 1024:
                    break
    except httpx.HTTPError:  # a stream left open (heartbeats) times out: what arrived is what counts
        pass
    return body.decode("utf-8", "replace")


def test_no_endpoint_an_unauthenticated_client_can_reach_returns_another_agent_s_question(tmp_path, monkeypatch):
    from gradio_client import Client

    demo, url = _serve(tmp_path, monkeypatch, uploads=True, login=True)
    try:
        agent = Client(url, verbose=False)  # another agent: asks, marks, hits a content gap
        agent.predict(SECRET_ASKED, "en", "original", api_name="/respond")
        assert agent.predict(0, False, 0, api_name="/mark") == "stored"
        agent.predict(SECRET_GAP, "en", "original", api_name="/respond")
        trainer = Client(url + "trainer/", auth=LOGIN, verbose=False)
        seen = " ".join(str(x) for x in trainer.predict(api_name="/feedback"))
        assert SECRET_ASKED in seen and SECRET_GAP in seen  # stored, and visible to the trainer: the probe works

        replies = {}
        with httpx.Client(timeout=5) as http:
            for methods, path in _routes(demo.app.routes):
                concrete = re.sub(r"\{[^}]+\}", "x", path).lstrip("/")
                for method in [m for m in methods if m in ("GET", "POST")]:
                    replies[f"{method} /{concrete}"] = _read(http, method, url + concrete)
            # the JSON API's own routes, with real bodies
            replies["POST /api/v1/ask"] = http.post(url + "api/v1/ask", json={"query": "angry caller"}).text
            replies["GET /api/v1/health"] = http.get(url + "api/v1/health").text
        # every function the agents' page lists, called as a stranger with plain values
        stranger = Client(url, verbose=False)
        info = stranger.view_api(print_info=False, return_format="dict")
        samples = {"str": "x", "float": 0, "int": 0, "bool": False}
        for name, endpoint in info["named_endpoints"].items():
            args = [samples.get(p.get("python_type", {}).get("type"), "x") for p in endpoint["parameters"]]
            try:
                replies[f"gradio {name}"] = str(stranger.predict(*args, api_name=name))
            except Exception as exc:  # noqa: BLE001 - a refusal is an answer too
                replies[f"gradio {name}"] = str(exc)
        assert len(replies) > 20 and {"gradio /respond", "gradio /mark", "gradio /unmark"} <= set(replies)
        assert "gradio /feedback" not in replies  # the feedback view is the trainer's alone
        leaks = {k: v[:200] for k, v in replies.items() if "agent q-41" in v.lower() or "tire zq7" in v.lower()}
        assert leaks == {}
    finally:
        demo.close()


def test_the_trainer_curates_and_rebuilds_over_the_trainer_page_only(tmp_path, monkeypatch):
    from gradio_client import Client

    demo, url = _serve(tmp_path, monkeypatch, uploads=False, login=True)
    try:
        agent_api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert not {"/attach", "/detach", "/rebuild", "/feedback", "/add_essay"} & set(agent_api)
        trainer = Client(url + "trainer/", auth=LOGIN, verbose=False)
        status, learned_table = trainer.predict("客人一直吼叫怎么接话", "angry-caller#000", api_name="/attach")
        assert status.startswith("attached") and "客人一直吼叫怎么接话" in learned_table
        assert "1 learned descriptions" in trainer.predict(api_name="/rebuild")
        answer = demo.coach_app.holder.get().ask("客人一直吼叫怎么接话", top_k=3)
        assert answer.results[0].chunk.id == "angry-caller#000"
        status, _ = trainer.predict("客人一直吼叫怎么接话", "angry-caller#000", api_name="/detach")
        assert status.startswith("detached")
        off = trainer.predict(None, "", "", "", "", "", api_name="/add_essay")[0]
        assert off.startswith("not added: adding essays is switched off")  # uploads off: the button says so too
    finally:
        demo.close()
