"""Replicas for tests and bench/replicas.py: app processes on free loopback ports sharing one PostgreSQL feedback
database and one index folder, each serving the chat and the JSON API.

model="fake": the hashing embedder (tests/reliability_support.py) on a tiny corpus, in a small launcher that builds
the same demo and API as app.py; model="real": `python app.py` itself, with the bundled model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FAKE_REPLICA = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from reliability_support import FakeEmbedder
    from coach import api, ui
    from coach.config import Settings
    from coach.retrieve import Coach
    settings = Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake",
                        model_cache_dir=Path({index!r}).parent / "models")
    coach = Coach(settings, embedder=FakeEmbedder(), build=False)
    demo = ui.build_demo(coach, settings=settings, upload_enabled=False, upload_dir=Path({work!r}) / "up",
                         live_dir=Path({work!r}) / "live")   # COACH_FEEDBACK_DB: the shared PostgreSQL
    demo.queue(**ui.queue_kwargs()).launch(server_name="127.0.0.1", server_port=int(os.environ["GRADIO_SERVER_PORT"]),
                                           share=False, show_error=False, quiet=True,
                                           **api.launch_kwargs(demo, ui.launch_kwargs()))
""")


class Replica:
    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_replica(
    work: Path,
    port: int,
    *,
    feedback_db: str,
    index_dir: Path,
    corpus_dir: Path,
    token: str,
    model: str = "fake",
    poll_s: float = 1.0,
) -> Replica:
    """Start one replica (not waiting for it: see `wait_ready`)."""
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "GRADIO_SERVER_PORT": str(port),
        "COACH_FEEDBACK_DB": feedback_db,
        "COACH_INDEX_DIR": str(index_dir),
        "COACH_CORPUS_DIR": str(corpus_dir),
        "COACH_API_TOKEN": token,
        "COACH_INDEX_POLL_S": str(poll_s),
        "COACH_UPLOAD_DIR": str(work / "up"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    if model == "fake":
        cmd = [
            sys.executable,
            "-c",
            _FAKE_REPLICA.format(
                tests=str(Path(__file__).parent), corpus=str(corpus_dir), index=str(index_dir), work=str(work)
            ),
        ]
    else:
        cmd = [sys.executable, str(ROOT / "app.py")]
    log = work / "replica.log"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "wb"), stderr=subprocess.STDOUT
    )
    return Replica(port, proc, log)


def wait_ready(replica: Replica, timeout_s: float = 300) -> dict:
    """Poll /api/v1/health until Coach answers; returns the health object."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica.proc.poll() is not None:
            raise RuntimeError(
                f"replica on port {replica.port} exited: {replica.log.read_text(errors='replace')[-2000:]}"
            )
        try:
            status, body = call(replica, "GET", "/health")
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"replica on port {replica.port} not ready after {timeout_s} s")


def call(
    replica: Replica, method: str, path: str, body: dict | None = None, token: str | None = None, timeout: float = 120
) -> tuple[int, dict]:
    """One JSON request; (status, parsed body), for 4xx/5xx too."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(replica.api + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
