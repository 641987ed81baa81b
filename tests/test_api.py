"""The JSON API (coach/api.py): its contract is `coach ask --json`'s, bad bodies get 4xx JSON (never 500), the bearer
token is enforced when set, marks are stored or refused with a message, and it is served beside the chat."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coach import api as api_mod
from coach.feedback import FeedbackStore
from coach.retrieve import MAX_QUERY_CHARS, Coach

sys.path.insert(0, str(Path(__file__).parent))
from reliability_support import FakeEmbedder, make_settings  # noqa: E402
from ui_support import serve_locally  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app_logic(tmp_path):
    from coach.ui import CoachApp, CoachHolder

    settings = make_settings(tmp_path)
    coach = Coach(settings, embedder=FakeEmbedder())
    return CoachApp(
        CoachHolder(coach=coach),
        FeedbackStore(tmp_path / "fb.sqlite3"),
        settings,
        upload_dir=tmp_path / "up",
        live_dir=tmp_path / "live",
    )


def client(app_logic, token: str = "") -> TestClient:
    return TestClient(api_mod.create_api(app_logic, token=token), raise_server_exceptions=False)


def test_ask_answers_what_coach_ask_json_gives_for_the_same_query(app_logic):
    c = client(app_logic)
    for q, k in [("客户破口大骂怎么办", 3), ("angry caller", 2), ("客戶要我破解密碼", 1), ("bicycle tire zebra", 3)]:
        r = c.post("/ask", json={"query": q, "top_k": k})
        assert r.status_code == 200, r.text
        assert r.json() == app_logic.holder.get().ask(q, top_k=k, diverse=True).to_json()
    # like the chat's: an answered question stores nothing, an uncovered one is counted as a content gap
    gaps = [q for q, *_ in app_logic.store.uncovered()]
    ood = [
        q
        for q, _ in [("客户破口大骂怎么办", 3), ("angry caller", 2), ("客戶要我破解密碼", 1), ("bicycle tire zebra", 3)]
        if app_logic.holder.get().ask(q).out_of_domain
    ]
    assert app_logic.store.count() == 0 and sorted(gaps) == sorted(q.lower() for q in ood)


def test_long_questions_are_shortened_like_the_chat_and_said_so(app_logic):
    r = client(app_logic).post("/ask", json={"query": "客户" * MAX_QUERY_CHARS})
    assert r.status_code == 200 and r.headers["x-coach-query-shortened"] == "1"
    assert len(r.json()["query"]) == MAX_QUERY_CHARS


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": 3}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": "3"}, "top_k"),
        ({"query": "x", "top_k": 999}, "top_k"),
        ({"query": "x", "extra": 1}, "extra"),
        ({"query": "x" * (MAX_QUERY_CHARS * 4 + 1)}, "query"),
        ([1, 2], "body"),
        ("客户", "body"),
        (None, "body"),
    ],
)
def test_bad_ask_bodies_get_422_json_naming_the_field(app_logic, body, field):
    r = client(app_logic).post("/ask", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"].startswith("bad request") and field in r.json()["error"]


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"{not json", 422),
        (b"\xff\xfe garbage", 422),
        (b"", 422),
        (b'{"query": "x"' + b" " * 70_000 + b"}", 413),
    ],
)
def test_unparseable_and_huge_bodies_get_4xx_json(app_logic, raw, status):
    r = client(app_logic).post("/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status and "error" in r.json()


def test_wrong_method_and_unknown_route_are_json_4xx(app_logic):
    c = client(app_logic)
    assert c.get("/ask").status_code == 405 and "error" in c.get("/ask").json()
    assert c.post("/nope", json={}).status_code == 404 and "error" in c.post("/nope", json={}).json()


def test_feedback_is_stored_and_answers_201_with_the_row_id(app_logic):
    c = client(app_logic)
    sources = [h["source"] for h in c.post("/ask", json={"query": "客户破口大骂怎么办"}).json()["results"]]
    r = c.post("/feedback", json={"query": "客户破口大骂怎么办", "passages": sources, "helpful": False})
    assert r.status_code == 201 and isinstance(r.json()["id"], int)
    ev = app_logic.store.events(kind="feedback")[0]
    assert (ev.id, ev.helpful, [p["id"] for p in ev.passages], ev.lang) == (r.json()["id"], False, sources, "zh")


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "passages": ["angry#000"]},
        {"query": "x", "passages": "angry#000", "helpful": True},
        {"query": "x", "passages": ["no-such#999"], "helpful": True},
        {"query": "x", "passages": [], "helpful": "yes"},
        {"query": "\x00\x01", "passages": [], "helpful": True},
        {"query": "x", "passages": [1], "helpful": True},
        {"query": "x", "passages": ["a"] * 21, "helpful": True},
    ],
)
def test_bad_feedback_bodies_get_422_json(app_logic, body):
    r = client(app_logic).post("/feedback", json=body)
    assert r.status_code == 422 and r.json()["error"].startswith("bad request"), r.text
    assert app_logic.store.count("feedback") == 0


def test_a_mark_the_store_cannot_take_is_refused_with_503_and_counted(app_logic, tmp_path):
    (tmp_path / "fb.sqlite3").unlink()
    r = client(app_logic).post("/feedback", json={"query": "angry caller", "passages": [], "helpful": True})
    assert r.status_code == 503 and "not stored" in r.json()["error"] and "missing" in r.json()["error"]
    assert app_logic.store.marks_refused == 1
    assert client(app_logic).post("/ask", json={"query": "angry caller"}).status_code == 200  # still answered


def test_token_is_enforced_when_set(app_logic):
    c = client(app_logic, token="s3cret-令牌")
    body = {"query": "angry caller"}
    assert c.post("/ask", json=body).status_code == 401
    assert c.post("/ask", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = c.post("/feedback", json={"query": "x", "passages": [], "helpful": True}, headers={"Authorization": "Basic x"})
    assert r.status_code == 401 and "bearer token" in r.json()["error"] and r.headers["www-authenticate"] == "Bearer"
    ok = c.post("/ask", json=body, headers={"Authorization": "Bearer s3cret-令牌".encode()})
    assert ok.status_code == 200
    assert c.get("/health").status_code == 200 and c.get("/openapi.json").status_code == 200


def test_rebuild_over_the_api_needs_the_token(app_logic):
    assert client(app_logic).post("/rebuild").status_code == 403
    c = client(app_logic, token="t")
    before = app_logic.holder.get().index.build_dir.name
    r = c.post("/rebuild", headers={"Authorization": "Bearer t"})
    assert r.status_code == 200 and r.json()["build"] != before


def test_health_names_the_build_model_and_store(app_logic):
    h = client(app_logic).get("/health").json()
    assert h["status"] == "ok" and h["index"]["build"] == app_logic.holder.get().index.build_dir.name
    assert h["model"] == {"name": "fake", "loaded": True}
    assert h["store"]["reachable"] and h["store"]["backend"] == "sqlite" and "where" not in h["store"]


def test_openapi_schema_describes_the_routes(app_logic):
    schema = client(app_logic).get("/openapi.json").json()
    assert {"/ask", "/feedback", "/health"} <= set(schema["paths"])
    ask = schema["paths"]["/ask"]["post"]
    assert "422" in ask["responses"] and "503" in ask["responses"]


def test_busy_answer_when_the_waiting_line_is_full(app_logic, monkeypatch):
    import threading

    gate = threading.Event()
    coach = app_logic.holder.get()
    real_ask = coach.ask
    monkeypatch.setattr(coach, "ask", lambda *a, **k: (gate.wait(30), real_ask(*a, **k))[1])
    monkeypatch.setattr(api_mod, "QUEUE_MAX_SIZE", 2)
    monkeypatch.setattr(api_mod, "CONCURRENCY", 1)
    c = client(app_logic)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(c.post("/ask", json={"query": "angry"}).status_code))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    import time

    deadline = time.monotonic() + 20
    while len(results) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200, 200, 200, 503, 503, 503]


# ---------------------------------------------------------------- served beside the chat


def test_api_is_served_on_the_gradio_server_beside_the_chat(tmp_path, monkeypatch):
    from coach import ui

    monkeypatch.setenv("COACH_INDEX_POLL_S", "0")
    settings = make_settings(tmp_path)
    coach = Coach(settings, embedder=FakeEmbedder())
    demo = ui.build_demo(
        coach,
        settings=settings,
        feedback_db=tmp_path / "fb.sqlite3",
        upload_enabled=False,
        upload_dir=tmp_path / "up",
        live_dir=tmp_path / "live",
    )
    port = serve_locally(demo, with_api=True)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        req = urllib.request.Request(
            base + "/ask",
            data=json.dumps({"query": "客户破口大骂怎么办"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200 and json.load(r) == coach.ask("客户破口大骂怎么办").to_json()
        with urllib.request.urlopen(base + "/health", timeout=30) as r:
            assert json.load(r)["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:  # the chat is still there
            assert r.status == 200
        bad = urllib.request.Request(base + "/ask", data=b"{", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad, timeout=30)
        assert info.value.code == 422 and "error" in json.load(info.value)
    finally:
        demo.close()


@pytest.mark.slow
def test_api_contract_equals_coach_ask_json_with_the_real_model(real_embedder, tmp_path):
    """Same queries through `coach ask --json` (a separate process) and POST /api/v1/ask: the same objects."""
    from coach.config import Settings
    from coach.ui import CoachApp, CoachHolder

    settings = Settings(corpus_dir=ROOT / "corpus", index_dir=tmp_path / "index")
    coach = Coach(settings, embedder=real_embedder)
    app = CoachApp(CoachHolder(coach=coach), FeedbackStore(tmp_path / "fb.sqlite3"), settings)
    queries = [
        "how do I handle an angry caller",
        "客户听不懂我解释的业务怎么办",
        "客戶一直罵人怎麼辦",
        "how to fix a flat bicycle tire",
    ]
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "coach.cli",
            "--index",
            str(tmp_path / "index"),
            "ask",
            "--json",
            "--no-build",
            "--top-k",
            "3",
            *queries,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    c = client(app)
    assert [c.post("/ask", json={"query": q, "top_k": 3}).json() for q in queries] == json.loads(cli.stdout)
