"""(d) latency through the running app's HTTP API, the app's cold start and its peak RSS.

`python app.py` is started on a free 127.0.0.1 port (GRADIO_SERVER_PORT), the answering endpoint is found with
`Client.view_api()`, every question is asked once after a warm-up, and the server is always stopped at the end.
Each question is timed twice: with gradio_client (d), and with a plain HTTP client (d2) calling the same endpoint
through Gradio's documented REST route (POST /gradio_api/call/<name>, then read the event stream of the answer).
gradio_client waits for queue messages in 50 ms sleeps (gradio_client/utils.py), so its figure carries a floor of
its own; `client_floor()` measures both clients on a do-nothing echo app so that floor is on the page.
Peak RSS is the kernel's high-water mark for the server process (VmHWM in /proc/<pid>/status), cross-checked by
polling RSS with psutil (children included) while it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, log, percentiles  # noqa: E402

ENDPOINT_HINTS = ("respond", "ask", "answer", "search", "respond", "chat", "query", "coach", "submit", "predict")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssPoller(threading.Thread):
    """Samples RSS of a process and its children every `interval` seconds; keeps the peak of the sum."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self._stop_evt = pid, interval, 0, threading.Event()
        self.hwm = 0

    def run(self):
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_evt.is_set():
            try:
                total = proc.memory_info().rss
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
                self.peak = max(self.peak, total)
                self.hwm = max(self.hwm, vm_hwm_bytes(self.pid) or 0)
            except psutil.Error:
                return
            self._stop_evt.wait(self.interval)

    def stop(self):
        self._stop_evt.set()
        self.join(timeout=2)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


def pick_endpoint(api: dict, preferred: str | None = None) -> tuple[str, list[dict]]:
    """The named endpoint that takes a text question: (api_name, parameters)."""
    named = api.get("named_endpoints") or {}
    if preferred:
        return preferred, named.get(preferred, {}).get("parameters", [])

    def takes_text(params):
        return any((p.get("python_type") or {}).get("type") == "str" for p in params)

    candidates = [
        (name, info.get("parameters", [])) for name, info in named.items() if takes_text(info.get("parameters", []))
    ]
    if not candidates:
        raise RuntimeError(f"no endpoint taking text among {sorted(named)}")
    for hint in ENDPOINT_HINTS:
        for name, params in candidates:
            if hint in name.lower():
                return name, params
    return candidates[0]


def build_args(params: list[dict], question: str) -> tuple[list, dict]:
    """Positional args: the question for the first text parameter, defaults (or empty) for the rest."""
    args, placed = [], False
    for p in params:
        ptype = (p.get("python_type") or {}).get("type")
        if not placed and ptype == "str":
            args.append(question)
            placed = True
        elif p.get("parameter_has_default"):
            args.append(p.get("parameter_default"))
        elif ptype == "str":
            args.append("")
        elif ptype in ("int", "float"):
            args.append(3)
        elif ptype == "bool":
            args.append(False)
        else:
            args.append(None)
    return args, {}


def call_http(http, url: str, name: str, args: list) -> list:
    """One answer through Gradio's REST route, as curl would get it: join the queue, then read the event stream."""
    route = f"{url}gradio_api/call/{name.lstrip('/')}"
    joined = http.post(route, json={"data": args})
    joined.raise_for_status()
    event = None
    with http.stream("GET", f"{route}/{joined.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"{name} answered with an error: {line[5:].strip()[:200]}")
                return json.loads(line[5:])
    raise RuntimeError(f"{name}: the event stream ended without an answer")


def client_floor(n: int = 60) -> dict:
    """Both clients against a do-nothing echo endpoint in a local Gradio app: the cost of the transport alone."""
    import gradio as gr
    import httpx
    from gradio_client import Client

    with gr.Blocks() as echo_app:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(lambda s: s, box, out, api_name="echo")
    port = free_port()
    echo_app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        client, samples_client, samples_http = Client(url, verbose=False), [], []
        with httpx.Client(timeout=30) as http:
            for i in range(n + 5):  # the first 5 are warm-up
                t = time.perf_counter()
                client.predict("hi", api_name="/echo")
                t2 = time.perf_counter()
                call_http(http, url, "echo", ["hi"])
                if i >= 5:
                    samples_client.append(t2 - t)
                    samples_http.append(time.perf_counter() - t2)
        return {"gradio_client": percentiles(samples_client), "plain_http": percentiles(samples_http)}
    finally:
        echo_app.close()


def start_app(port: int, log_path: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # the bench's questions must not land in the trainers' feedback database
        "COACH_FEEDBACK_DB": str(log_path.with_suffix(".feedback.sqlite3")),
        **(extra_env or {}),
    }
    out = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        app_command(port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


APP_PORT = 7860  # app.py passes server_port=7860 explicitly, which GRADIO_SERVER_PORT cannot override

# Exactly what app.py's __main__ does, on another port (used when 7860 is taken, e.g. by a running app).
_APP_ON_PORT = (
    "import sys, app; from coach.ui import launch_kwargs, queue_kwargs; "
    "app.demo.queue(**queue_kwargs()).launch(server_name='127.0.0.1', server_port=int(sys.argv[1]), "
    "share=False, show_error=False, **launch_kwargs())"
)


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def app_command(port: int) -> list[str]:
    if port == APP_PORT:
        return [sys.executable, str(ROOT / "app.py")]
    return [sys.executable, "-c", _APP_ON_PORT, str(port)]


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def gradio_import_seconds(repeats: int = 3) -> float:
    """Median wall time of a fresh process that only imports gradio: the floor under the app's start."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gradio"], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def run(qs: list[str], ready_timeout: float = 180.0, api_name: str | None = None, log_path: Path | None = None) -> dict:
    """Start the app, time process start -> HTTP ready -> first answer, then (d) over every question."""
    from gradio_client import Client

    gradio_import = gradio_import_seconds()
    port = APP_PORT if port_is_free(APP_PORT) else free_port()
    log_path = log_path or (ROOT / "var" / "bench-app.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"http: starting app.py on 127.0.0.1:{port}")
    t0 = time.perf_counter()
    proc = start_app(port, log_path)
    poller = RssPoller(proc.pid)
    poller.start()
    url = f"http://127.0.0.1:{port}/"
    try:
        while not _ready(url):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"app.py exited with {proc.returncode} before serving:\n{tail}")
            if time.perf_counter() - t0 > ready_timeout:
                raise RuntimeError(f"app.py did not serve {url} within {ready_timeout:.0f}s")
            time.sleep(0.05)
        t_ready = time.perf_counter() - t0
        client = Client(url, verbose=False)
        api = client.view_api(return_format="dict", print_info=False)
        name, params = pick_endpoint(api, api_name)
        args, kwargs = build_args(params, qs[0])
        while True:  # the model loads in the background; until then the app hands the question back unanswered
            result = client.predict(*args, api_name=name, **kwargs)
            first = result[0] if isinstance(result, (list, tuple)) else result
            if first != qs[0]:
                break
            if time.perf_counter() - t0 > ready_timeout:
                raise RuntimeError("the app kept answering 'still loading'")
            time.sleep(0.05)
        t_first = time.perf_counter() - t0
        log(f"http: ready in {t_ready:.1f}s, first answer at {t_first:.1f}s via {name}")

        for q in qs[:20]:  # warm-up
            client.predict(*build_args(params, q)[0], api_name=name)
        import httpx

        samples, samples_http = [], []
        with httpx.Client(timeout=60) as http:
            call_http(http, url, name, build_args(params, qs[0])[0])  # opens the connection
            for q in qs:
                a, _ = build_args(params, q)
                t = time.perf_counter()
                client.predict(*a, api_name=name)
                t2 = time.perf_counter()
                call_http(http, url, name, a)
                samples.append(t2 - t)
                samples_http.append(time.perf_counter() - t2)
        rss_now = _rss_tree(proc.pid)
        hwm = vm_hwm_bytes(proc.pid) or 0
        return {
            "endpoint": name,
            "command": "python app.py" if port == APP_PORT else "app.demo on a free port",
            "parameters": [p.get("parameter_name") or p.get("label") for p in params],
            "ready_s": t_ready,
            "first_answer_s": t_first,
            "gradio_import_s": gradio_import,
            "latency": percentiles(samples),
            "latency_plain_http": percentiles(samples_http),
            "client_floor": client_floor(),
            "peak_rss_bytes": max(hwm, poller.hwm),
            "peak_rss_tree_polled_bytes": poller.peak,
            "rss_after_bytes": rss_now,
        }
    finally:
        poller.stop()
        stop_app(proc)


def _rss_tree(pid: int) -> int:
    import psutil

    try:
        p = psutil.Process(pid)
        return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
    except psutil.Error:
        return 0
