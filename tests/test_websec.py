"""Issue 19, items 3 and 7, without a server: coach/websec.py's Host check, headers, cookie policy, login throttle and
bad-call answers, driven through WebGuard with a stand-in ASGI app. tests/test_reliability_websec.py runs the same
against the real app on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest

from coach import websec
from coach.websec import LoginThrottle, WebGuard, allowed_hosts, host_allowed, same_site_lax


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:7860", "localhost", "LOCALHOST:7860", "localhost.", "[::1]:7860", "[::1]"]
)
def test_loopback_names_are_allowed(host):
    assert host_allowed(host, allowed_hosts(""))


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:7860",
        "127.0.0.1.evil.example",
        "localhost.evil",
        "",
        "[::1",
        "127.0.0.1:80:80",
        "0.0.0.0:7860",
        "10.0.0.5",
        "教练.example",
        "localhost:notaport",
        "[::1]x",
    ],
)
def test_other_names_are_refused(host):
    assert not host_allowed(host, allowed_hosts(""))


def test_configured_names_are_allowed(monkeypatch):
    monkeypatch.setenv("COACH_ALLOWED_HOSTS", " coach.example.org , Training-Room:8080,[fd00::7]")
    allowed = allowed_hosts()
    assert host_allowed("coach.example.org", allowed) and host_allowed("coach.example.org:443", allowed)
    assert host_allowed("training-room:8080", allowed) and not host_allowed("training-room:9090", allowed)
    assert host_allowed("[fd00::7]:7860", allowed) and host_allowed("localhost:7860", allowed)
    assert not host_allowed("evil.example", allowed)


@pytest.mark.parametrize(
    "cookie,expected",
    [
        (
            "access-token-x=abc; HttpOnly; Path=/; SameSite=none; Secure",
            "access-token-x=abc; HttpOnly; Path=/; Secure; SameSite=lax",
        ),
        ("t=1; HttpOnly; Path=/; SameSite=lax", "t=1; HttpOnly; Path=/; SameSite=lax"),
        ("t=1; Path=/", "t=1; Path=/; SameSite=lax"),
        ("t=1; SameSite=Strict; Path=/", "t=1; SameSite=Strict; Path=/"),
    ],
)
def test_one_cookie_policy(cookie, expected):
    assert same_site_lax(cookie) == expected


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_login_throttle_delays_after_failures_per_client_and_clears_on_success():
    clock = Clock()
    t = LoginThrottle(clock)
    assert [t.attempt("a") for _ in range(LoginThrottle.FREE_ATTEMPTS)] == [0.0] * LoginThrottle.FREE_ATTEMPTS
    assert t.attempt("a") == pytest.approx(1.0)  # the fourth waits a second ...
    assert t.attempt("b") == 0.0  # ... another client does not
    clock.now += 1.0
    assert t.attempt("a") == 0.0  # the fourth, a second later
    assert t.attempt("a") == pytest.approx(2.0)  # then 2 s, 4 s ... doubling
    delays = []
    for _ in range(12):
        wait = t.attempt("a")  # too soon: refused, with the time left
        assert wait > 0
        delays.append(round(wait))
        clock.now += wait
        assert t.attempt("a") == 0.0  # allowed once waited (and counted)
    assert delays[:4] == [2, 4, 8, 16] and max(delays) == LoginThrottle.MAX_DELAY_S
    t.succeeded("a")
    assert t.attempt("a") == 0.0
    assert t.refused > 0


def test_login_throttle_forgets_quiet_clients_and_stays_bounded(monkeypatch):
    clock = Clock()
    t = LoginThrottle(clock)
    for _ in range(6):
        clock.now += 100
        t.attempt("a")
    clock.now += 3 * LoginThrottle.MAX_DELAY_S
    assert t.attempt("a") == 0.0 and t._clients["a"][0] == 1
    monkeypatch.setattr(LoginThrottle, "MAX_CLIENTS", 50)
    for n in range(200):
        t.attempt(f"10.0.0.{n}")
    assert len(t._clients) == 50


# ---------------------------------------------------------------- the middleware around a stand-in app


def _run(guard, method="GET", path="/", host="127.0.0.1:7860", client="127.0.0.1"):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "client": (client, 5555),
        "headers": [(b"host", host.encode())] if host is not None else [],
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = [(k.decode().lower(), v.decode()) for k, v in start["headers"]]
    return start["status"], headers, body


def _app(status=200, cookies=(), raises=None):
    async def app(scope, receive, send):
        if raises is not None:
            raise raises
        headers = [(b"content-type", b"text/plain")] + [(b"set-cookie", c.encode()) for c in cookies]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_foreign_host_is_refused_before_the_app_runs():
    ran = []

    async def app(scope, receive, send):
        ran.append(scope)

    guard = WebGuard(app, allowed=allowed_hosts(""))
    for host in ("evil.example", "evil.example:7860", None):
        status, headers, body = _run(guard, host=host)
        assert status == 400 and "COACH_ALLOWED_HOSTS" in json.loads(body)["detail"]
        assert ("x-frame-options", "SAMEORIGIN") in headers
    assert not ran


def test_every_response_gets_the_security_headers_and_lax_cookies():
    guard = WebGuard(
        _app(cookies=["a=1; HttpOnly; Path=/; SameSite=none; Secure", "b=2; HttpOnly; Path=/"]),
        allowed=allowed_hosts(""),
    )
    status, headers, _ = _run(guard)
    names = dict(headers)
    assert status == 200 and names["x-content-type-options"] == "nosniff" and names["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in names["content-security-policy"]
    assert "connect-src 'self'" in names["content-security-policy"]
    cookies = [v for k, v in headers if k == "set-cookie"]
    assert len(cookies) == 2 and all(c.lower().count("samesite=") == 1 and "samesite=lax" in c.lower() for c in cookies)


def test_logins_are_throttled_per_client():
    throttle = LoginThrottle(Clock())
    guard = WebGuard(_app(status=400), allowed=allowed_hosts(""), throttle=throttle)
    statuses = [_run(guard, "POST", "/login")[0] for _ in range(10)]
    assert statuses[: LoginThrottle.FREE_ATTEMPTS] == [400] * LoginThrottle.FREE_ATTEMPTS
    assert set(statuses[LoginThrottle.FREE_ATTEMPTS :]) == {429}
    status, headers, body = _run(guard, "POST", "/login")
    assert status == 429 and dict(headers)["retry-after"] == "1" and "try again" in json.loads(body)["detail"]
    assert _run(guard, "POST", "/login", client="10.1.1.1")[0] == 400  # another client is not held up
    assert _run(WebGuard(_app(), allowed=allowed_hosts(""), throttle=throttle), "GET", "/")[0] == 200  # not a login
    throttle.clock.now += 1
    ok = WebGuard(_app(status=200), allowed=allowed_hosts(""), throttle=throttle)
    assert _run(ok, "POST", "/login")[0] == 200  # the right password, once allowed ...
    assert "127.0.0.1" not in throttle._clients  # ... clears the count


@pytest.mark.parametrize(
    "exc,status",
    [
        (KeyError(9999), 404),
        (IndexError("x"), 404),
        (type("FnIndexInferError", (Exception,), {})("no api"), 404),
        (TypeError("x"), 400),
        (ValueError("x"), 400),
    ],
)
def test_bad_api_calls_answer_4xx_with_a_message(exc, status):
    guard = WebGuard(_app(raises=exc), allowed=allowed_hosts(""))
    got, headers, body = _run(guard, "POST", "/gradio_api/queue/join")
    assert got == status and "/gradio_api/info" in json.loads(body)["detail"]
    assert "Traceback" not in body.decode() and ("x-content-type-options", "nosniff") in headers


def test_other_failures_stay_server_errors():
    with pytest.raises(RuntimeError):
        _run(WebGuard(_app(raises=RuntimeError("disk")), allowed=allowed_hosts("")), "POST", "/gradio_api/queue/join")
    with pytest.raises(KeyError):  # outside the API a KeyError is a bug of ours, not a bad call
        _run(WebGuard(_app(raises=KeyError("x")), allowed=allowed_hosts("")), "GET", "/config")


def test_launch_kwargs_install_the_guard():
    from coach import ui

    mw = ui.launch_kwargs()["app_kwargs"]["middleware"]
    assert [m.cls for m in mw] == [websec.WebGuard]
