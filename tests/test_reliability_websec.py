"""Issue 19, items 3 and 7, against the real app on loopback: Host names, security headers, one cookie policy,
throttled logins, and bad API calls answered 4xx with a message. Launches servers: marked slow."""

from __future__ import annotations

import http.client
import json
import math
import threading
import time

import pytest

from coach.websec import LoginThrottle
from reliability_support import start_app

pytestmark = pytest.mark.slow

PASSWORD = "a-long-test-password-42"


def request(port, method, path, body=None, headers=None, timeout=30):
    """(status, headers as (lower-case name, value) pairs, body); every Set-Cookie header kept."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()
    finally:
        c.close()


def login(port, password=PASSWORD):
    return request(
        port,
        "POST",
        "/trainer/login",  # the trainer page's login (agents never log in)
        f"username=admin&password={password}".encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )


@pytest.fixture(scope="module")
def admin_served(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COACH_ENABLE_UPLOAD", "1")
    mp.setenv("COACH_ADMIN_USER", "admin")
    mp.setenv("COACH_ADMIN_PASSWORD", PASSWORD)
    mp.setenv("COACH_ALLOWED_HOSTS", "coach.training.example, room-7:8080")
    s = start_app(tmp_path_factory.mktemp("websec"), upload_enabled=None)
    try:
        yield s
    finally:
        s.close()
        mp.undo()


# ---------------------------------------------------------------- item 3: Host, headers, cookies, logins


def test_host_header_is_checked(admin_served):
    port = admin_served.port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "room-7:9090"):
        for path in ("/", "/config", "/gradio_api/info"):
            status, _, body = request(port, "GET", path, headers={"Host": host})
            assert status == 400 and b"COACH_ALLOWED_HOSTS" in body, (host, path, status)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "coach.training.example", "room-7:8080"):
        assert request(port, "GET", "/", headers={"Host": host})[0] == 200, host
        assert request(port, "GET", "/config", headers={"Host": host})[0] == 200, host  # the agents' page: no login
        assert request(port, "GET", "/trainer/config", headers={"Host": host})[0] == 401, host  # asks for the login


def test_security_headers_on_pages_api_and_errors(admin_served):
    port = admin_served.port
    for method, path in (
        ("GET", "/"),
        ("GET", "/config"),
        ("GET", "/gradio_api/info"),
        ("GET", "/no-such-page"),
        ("GET", "/gradio_api/file=/etc/passwd"),
        ("POST", "/trainer/login"),
        ("GET", "/trainer/config"),
    ):
        _, headers, _ = request(port, method, path)
        h = dict(headers)
        assert h.get("x-frame-options") == "SAMEORIGIN", path
        assert h.get("x-content-type-options") == "nosniff", path
        assert "frame-ancestors 'self'" in h.get("content-security-policy", ""), path


def test_one_cookie_policy_and_the_login_still_works(admin_served):
    status, headers, _ = login(admin_served.port)
    assert status == 200
    cookies = [v for k, v in headers if k == "set-cookie"]
    assert len(cookies) >= 1
    for c in cookies:
        attrs = [a.strip().lower() for a in c.split(";")[1:]]
        assert attrs.count("samesite=lax") == 1 and "samesite=none" not in attrs, c
    jar = "; ".join(c.split(";")[0] for c in cookies)
    assert request(admin_served.port, "GET", "/trainer/gradio_api/login_check", headers={"Cookie": jar})[0] == 200


def test_wrong_passwords_are_throttled_then_the_right_one_waits_too(admin_served):
    port = admin_served.port
    t0 = time.monotonic()
    statuses = [login(port, f"guess-{n}")[0] for n in range(300)]
    elapsed = time.monotonic() - t0
    checked = statuses.count(400)
    # the waits double from 1 s: in `elapsed` seconds at most log2(elapsed + 1) + 1 more guesses are checked
    assert checked <= LoginThrottle.FREE_ATTEMPTS + 1 + math.log2(elapsed + 1), (checked, elapsed)
    assert statuses.count(429) == 300 - checked and statuses[: LoginThrottle.FREE_ATTEMPTS + 1].count(429) == 1
    status, headers, body = login(port)  # the right password, at once: refused until the wait is over
    assert status == 429 and int(dict(headers)["retry-after"]) >= 1 and b"try again" in body


def test_simultaneous_guesses_are_throttled_too(tmp_path, monkeypatch):
    monkeypatch.setenv("COACH_ENABLE_UPLOAD", "1")
    monkeypatch.setenv("COACH_ADMIN_USER", "admin")
    monkeypatch.setenv("COACH_ADMIN_PASSWORD", PASSWORD)
    s = start_app(tmp_path, upload_enabled=None)
    try:
        barrier, statuses = threading.Barrier(40), []

        def guess(n):
            barrier.wait()
            statuses.append(login(s.port, f"guess-{n}")[0])

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        assert (
            statuses.count(400) <= LoginThrottle.FREE_ATTEMPTS
            and statuses.count(429) >= 40 - LoginThrottle.FREE_ATTEMPTS
        )
    finally:
        s.close()


# ---------------------------------------------------------------- item 7: bad API calls

BAD_CALLS = [
    ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": 99999, "session_hash": "probe"}),
    ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": -1, "session_hash": "probe"}),
    ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": 10**30, "session_hash": "probe"}),
    ("POST", "/gradio_api/queue/join", {"data": [], "fn_index": "x", "session_hash": "probe"}),
    ("POST", "/gradio_api/queue/join", {"data": "x", "fn_index": 0, "session_hash": "probe"}),
    ("POST", "/gradio_api/call/no-such-api", {"data": []}),
    ("POST", "/gradio_api/run/predict", {"data": []}),
    ("POST", "/gradio_api/api/predict", {"data": [], "fn_index": 9999}),
    ("POST", "/gradio_api/component_server", {"session_hash": "x", "component_id": 99999, "fn_name": "x", "data": 1}),
]


@pytest.mark.parametrize("method,path,body", BAD_CALLS)
def test_bad_api_calls_answer_4xx_with_a_message(admin_served, method, path, body):
    status, headers, raw = request(
        admin_served.port, method, path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert 400 <= status < 500, (path, body, status, raw[:200])
    assert json.loads(raw)["detail"] and b"Traceback" not in raw and b'File "' not in raw
    assert dict(headers).get("x-content-type-options") == "nosniff"
