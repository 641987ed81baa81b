"""The web app's guards around Gradio (issue 19): Host names, security headers, one cookie policy, throttled logins,
and bad API calls answered 4xx instead of 500.

One plain ASGI middleware, `WebGuard`, installed through `launch(app_kwargs=...)` (coach/ui.py `launch_kwargs`), so
it wraps every route of the app (Gradio's CORS and compression layers sit outside it: a CORS preflight is answered
there and carries no data). No gradio import: it sees only ASGI messages, and is tested without a server.

- Host: a DNS-rebinding page (evil.example resolving to 127.0.0.1) reaches the loopback server with its own name in
  `Host`; only loopback names and the names in COACH_ALLOWED_HOSTS are served, anything else gets 400.
- Headers: the page may only be framed by itself (X-Frame-Options, CSP frame-ancestors), content types are not
  sniffed, and a Content-Security-Policy keeps scripts, connections, forms and plugins to this origin. Gradio's page
  starts with inline scripts and runs the app's `js=` snippets through `new Function`, so scripts need
  'unsafe-inline' and 'unsafe-eval'; what the policy adds is that nothing is fetched from or sent to another site.
- Cookies: Gradio sets its login cookie twice, once `SameSite=None`; every cookie leaves as `SameSite=Lax`, so no
  cross-site request carries the login.
- Logins: per client address, the first LoginThrottle.FREE_ATTEMPTS attempts are free, then each must wait 1, 2,
  4 ... 60 s after the one before; an attempt sooner is answered 429 with Retry-After, without the password being
  checked, and a successful login clears the count.
- Bad API calls: an unknown fn_index, api_name or component, or data that do not fit the function, made Gradio raise
  (HTTP 500); here they answer 404 or 400 with a message. Other failures stay 500.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from typing import Callable

log = logging.getLogger("coach.websec")

ALLOWED_HOSTS_ENV = "COACH_ALLOWED_HOSTS"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)
SECURITY_HEADERS = {
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "content-security-policy": CSP,
    "referrer-policy": "same-origin",
}
API_PREFIX = "/gradio_api/"
TRAINER_PATH = "/trainer"  # the trainer page (coach/ui/server.py), mounted beside the agents' page
LOGIN_PATHS = ("/login", "/login/", f"{TRAINER_PATH}/login", f"{TRAINER_PATH}/login/")


# ---------------------------------------------------------------------------------------------- Host


def allowed_hosts(configured: str | None = None) -> frozenset[str]:
    """Loopback names plus the comma-separated names (or name:port) of COACH_ALLOWED_HOSTS (or `configured`)."""
    raw = os.environ.get("COACH_ALLOWED_HOSTS", "") if configured is None else configured
    names = {n.strip().lower().rstrip(".") for n in raw.split(",") if n.strip()}
    return LOOPBACK_NAMES | {n[1:-1] if n.startswith("[") and n.endswith("]") else n for n in names}


def host_name(host: str) -> str | None:
    """The name in a Host header, without its port (IPv6 without brackets); None when it is malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        return name
    name, _, port = host.partition(":")
    if not name or (port and not port.isdigit()) or ":" in port:
        return None
    return name.rstrip(".")


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a Host header names this server: its name (or name:port, as configured) is in `allowed`."""
    name = host_name(host)
    return name is not None and (name in allowed or host.strip().lower() in allowed)


# ---------------------------------------------------------------------------------------------- cookies

_SAMESITE = re.compile(r";\s*samesite=[^;]*", re.IGNORECASE)


def same_site_lax(cookie: str) -> str:
    """A Set-Cookie value with its SameSite attribute set to Lax (added when absent, None or Strict kept Strict)."""
    if re.search(r";\s*samesite=strict\s*(;|$)", cookie, re.IGNORECASE):
        return cookie
    return _SAMESITE.sub("", cookie) + "; SameSite=lax"


# ---------------------------------------------------------------------------------------------- logins


class LoginThrottle:
    """Login attempts per client address: FREE_ATTEMPTS free ones, then a wait doubling from BASE_DELAY_S up to
    MAX_DELAY_S between attempts; a success clears the address. Attempts are counted when they start, so a burst of
    simultaneous guesses is throttled too. At most MAX_CLIENTS addresses are remembered (oldest dropped)."""

    FREE_ATTEMPTS = 3
    BASE_DELAY_S = 1.0
    MAX_DELAY_S = 60.0
    MAX_CLIENTS = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (attempts, next allowed)
        self._lock = threading.Lock()
        self.refused = 0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th attempt before the next one."""
        if attempts < self.FREE_ATTEMPTS:
            return 0.0
        return min(self.MAX_DELAY_S, self.BASE_DELAY_S * 2 ** (attempts - self.FREE_ATTEMPTS))

    def attempt(self, client: str) -> float:
        """0 when `client` may try now (the attempt is counted), else the seconds it must still wait."""
        with self._lock:
            now = self.clock()
            attempts, next_at = self._clients.pop(client, (0, now))
            if attempts and now - next_at > 2 * self.MAX_DELAY_S:  # quiet for long: start afresh
                attempts, next_at = 0, now
            if now < next_at:
                self._clients[client] = (attempts, next_at)
                self.refused += 1
                return next_at - now
            attempts += 1
            self._clients[client] = (attempts, now + self.delay(attempts))
            while len(self._clients) > self.MAX_CLIENTS:
                self._clients.popitem(last=False)
            return 0.0

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


# ---------------------------------------------------------------------------------------------- the middleware


def _bad_call(exc: BaseException) -> tuple[int, str] | None:
    """(status, message) for an exception a malformed API call makes Gradio raise; None for anything else."""
    if isinstance(exc, (KeyError, IndexError)) or type(exc).__name__ == "FnIndexInferError":
        return 404, (
            "this app has no such function (unknown fn_index, api_name or component); "
            "GET /gradio_api/info lists its API"
        )
    if isinstance(exc, (TypeError, ValueError, AttributeError)):
        return 400, "the request's data do not fit this function; GET /gradio_api/info lists what it takes"
    return None


class WebGuard:
    """ASGI middleware: Host check, security headers and SameSite=Lax cookies on every response, throttled logins,
    and 4xx answers for bad API calls (see the module docstring)."""

    def __init__(self, app, allowed: frozenset[str] | None = None, throttle: LoginThrottle | None = None):
        self.app = app
        self.allowed = allowed_hosts() if allowed is None else allowed
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not host_allowed(headers.get("host", ""), self.allowed):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _answer(
                send,
                400,
                f"this server does not answer to the name {headers.get('host', '')[:100]!r}; "
                f"add it to {ALLOWED_HOSTS_ENV} to allow it",
            )
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        client = (scope.get("client") or ("unknown",))[0]
        login = method == "POST" and path in LOGIN_PATHS
        if login:
            wait = self.throttle.attempt(client)
            if wait > 0:
                seconds = max(1, round(wait))
                await _answer(
                    send,
                    429,
                    f"too many login attempts from this address; try again in {seconds} s",
                    [(b"retry-after", str(seconds).encode())],
                )
                return
        started = False

        async def guarded_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": _secure_headers(message.get("headers", []))}
                if login and message["status"] == 200:
                    self.throttle.succeeded(client)
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            bad = _bad_call(exc) if path.startswith((API_PREFIX, TRAINER_PATH + API_PREFIX)) else None
            if bad is None or started:
                raise
            log.warning("bad API call %s %s: %s: %s", method, path, type(exc).__name__, str(exc)[:200])
            await _answer(guarded_send, *bad)


def _secure_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out, present = [], set()
    for k, v in headers:
        name = k.decode("latin-1").lower()
        present.add(name)
        if name == "set-cookie":
            v = same_site_lax(v.decode("latin-1")).encode("latin-1")
        out.append((k, v))
    out.extend((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k not in present)
    return out


async def _answer(send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": message}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": _secure_headers(headers)})
    await send({"type": "http.response.body", "body": body})


def middleware() -> list:
    """What `launch(app_kwargs={"middleware": ...})` installs (Starlette's Middleware wrapper around WebGuard)."""
    from starlette.middleware import Middleware  # imported here: the guard itself needs nothing but ASGI

    return [Middleware(WebGuard)]
