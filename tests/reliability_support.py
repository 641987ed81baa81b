"""Shared pieces of the reliability suite (tests/test_reliability_*.py) and scripts/reliability.py.

Everything here works without the real model: a deterministic hashing embedder, a tiny corpus, the hostile
inputs, the index-fault injectors and the SIGKILL-a-build harness. Nothing here is imported by Coach itself.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ui_support import free_port, serve_locally  # noqa: F401 - free_port is part of this module's surface

ROOT = Path(__file__).resolve().parent.parent


class FakeEmbedder:
    """Deterministic bag-of-characters hashing embedder: similar text -> similar unit vectors. No model, no torch."""

    def __init__(self, name: str = "fake", dim: int = 32, delay_s: float = 0.0):
        self.name = name
        self.fingerprint = f"{name}-hash-v1"
        self.dim = dim
        self.delay_s = delay_s  # per encode call, to widen race windows in concurrency tests

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        for ch in text:
            h = hashlib.blake2b(ch.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            v[h[0] % self.dim] += 1.0 if h[1] & 1 else -1.0
        v[0] += 0.01  # never the zero vector
        return v / np.linalg.norm(v)

    def encode_passages(self, texts, batch_size: int = 32) -> np.ndarray:
        if self.delay_s:
            time.sleep(self.delay_s)
        return (
            np.stack([self._vec(t) for t in texts]).astype(np.float32) if texts else np.zeros((0, self.dim), np.float32)
        )

    def encode_queries(self, texts, batch_size: int = 32) -> np.ndarray:
        return self.encode_passages(texts)


ESSAYS_A = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。"
    "发脾气解决不了问题。\n\n我会记下他的诉求,给出一个明确的时间。\n",
    "nerves.txt": "第一次接电话\n刚入职时我紧张到声音颤抖。主管让我多听老同事的录音。慢慢地我就不怕了。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
    "english.txt": "Staying calm\nWhen a caller shouts, I lower my voice and let them finish. Then I repeat the "
    "problem back so they know I heard it.\n",
}

# Version B changes one essay and adds one, so a build of B differs from a build of A in chunks and vectors.
ESSAYS_B = {
    **ESSAYS_A,
    "angry.txt": "遇到愤怒的客户\n新的版本:我先深呼吸,再请客户慢慢说。完全不同的一句话。\n",
    "night.txt": "夜班\n夜班的电话少,但每一个都很难。我会提前准备常见问题的答案。\n",
}


# Editor situations for the tiny corpus, so situations.npy/.jsonl hold rows and are exercised by the fault tests
# (an empty situations.jsonl would make "truncate" and "empty" no-ops). ESSAYS_B rewrites angry.txt, so a build of B
# leaves the first entry out with a warning and keeps the second.
SITUATIONS_A = """
[[situation]]
essay = "angry"
anchor = "破口大骂"
en = "A caller is shouting abuse at me on the phone"
zh = "客户在电话里破口大骂,怎么让他平静下来"

[[situation]]
essay = "english"
anchor = "I lower my voice"
en = "Staying calm when a caller shouts"
zh = "客户大喊大叫时保持冷静"
"""


def write_corpus(corpus_dir: Path, essays: dict[str, str], situations: str | None = SITUATIONS_A) -> None:
    corpus_dir.mkdir(parents=True, exist_ok=True)
    keep = set(essays) | ({"situations.toml"} if situations is not None else set())
    for p in corpus_dir.iterdir():
        if p.is_file() and p.name not in keep:
            p.unlink()
    for name, text in essays.items():
        (corpus_dir / name).write_text(text, encoding="utf-8")
    if situations is not None:
        (corpus_dir / "situations.toml").write_text(situations, encoding="utf-8")


def make_settings(tmp: Path, essays: dict[str, str] | None = None):
    from coach.config import Settings

    write_corpus(tmp / "corpus", ESSAYS_A if essays is None else essays)
    return Settings(corpus_dir=tmp / "corpus", index_dir=tmp / "index", model="fake", model_cache_dir=tmp / "models")


# ---------------------------------------------------------------- hostile questions


def hostile_questions() -> dict[str, str]:
    """Name -> question. Every one must get a clean answer or a clear message, fast, and leave Coach working."""
    return {
        "empty": "",
        "whitespace": " \t\n\r\u3000\u00a0 \u2003\n",
        "1MB": "客户生气" * (1 << 18),
        "10MB": "a" * (10 << 20),
        "10MB-words": ("angry caller " * ((10 << 20) // 13)),
        "NUL": "客户\x00生气\x00\x00",
        "controls": "".join(chr(c) for c in range(32)) + "\x7f\x85\x9b[31m red \x1b[0m\x1b]0;title\x07",
        "lone-surrogates": "客户\ud800生气\udfff\udc80",
        "only-surrogates": "\ud800\udbff\udc00",
        "bidi-overrides": "\u202eredivorp\u202c \u2066客户\u2069 \u200f\u200e\u061c",
        "zero-width": "客\u200b户\u200c生\u200d气\ufeff\u2060",
        "only-zero-width": "\u200b\u200c\u200d\ufeff\u2060" * 100,
        "emoji": "😡📞🔥 customer is 🤬 angry 👨‍👩‍👧 🏳️‍🌈",
        "mixed-scripts": "客户 angry клиент زبون 顧客 ลูกค้า 고객 ग्राहक",
        "html-js": "<script>alert(1)</script><img src=x onerror=alert(1)><svg onload=alert(1)>"
        '<iframe src="javascript:alert(1)"></iframe>"\'--',
        "sql-ish": "'; DROP TABLE events; -- 客户",
        "format-strings": "{0} %s %n {__class__} ${jndi:ldap://x}",
        "path-ish": "../../../../etc/passwd\\..\\..\\windows\\win.ini",
        "combining": "a" + "\u0301" * 5000,
        "private-use": "\ue000\uf8ff\U000f0000",
        "noncharacters": "\ufffe\uffff\U0010ffff",
        "newlines": "\n" * 100000,
        "replacement": "\ufffd" * 1000,
    }


# ---------------------------------------------------------------- index faults


def index_files(build_dir: Path) -> list[str]:
    """Every file of one build, relative to it (manifest included)."""
    return sorted(str(p.relative_to(build_dir)) for p in build_dir.rglob("*") if p.is_file())


def damage(path: Path, how: str, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(0)
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: rng.randrange(0, max(1, len(data)))])
    elif how == "corrupt":
        if not data:
            path.write_bytes(b"\x00")
            return
        buf = bytearray(data)
        for _ in range(max(1, len(buf) // 200)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(buf))
    elif how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(how)


def chunk_signature(loaded) -> frozenset:
    """What a build serves, independent of its folder name: (chunk id, text) pairs."""
    return frozenset((c.id, c.text) for c in loaded.chunks)


# ---------------------------------------------------------------- SIGKILL a build at a random point

_BUILD_LOOP = textwrap.dedent("""
    import os, sys, random
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import faiss
    faiss.omp_set_num_threads(1)
    from reliability_support import FakeEmbedder
    from coach import pipeline
    from coach.config import Settings
    settings = Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake",
                        model_cache_dir=Path({index!r}) / "models")
    from coach.keyword import tokenize
    tokenize("预热 warm up")  # jieba's dictionary loads once, before the clock starts
    print("ready", flush=True)
    while True:  # build again and again until the parent kills us, somewhere
        pipeline.build(settings, FakeEmbedder())
        print("built", flush=True)
""")


@dataclass
class KillRound:
    delay_s: float
    builds_completed: int
    served: str  # "old", "new" or "error: ..."
    repaired: bool


def kill_build_rounds(settings, n: int, seed: int, max_delay_s: float | None = None, on_round=None) -> list[KillRound]:
    """Kill a looping build with SIGKILL `n` times at random delays; after each kill check what is served.

    Before each round the corpus flips between versions A and B; the child builds the new version in a loop. After
    the kill the verified index on disk must be exactly a build of the old version or of the new one (never a mix),
    and `Coach` must open (repairing if needed) and serve the new version. Delays are uniform in [0, max_delay_s],
    by default 2.5 build times, so kills land before, during and after the commit of the first and later builds.
    """
    from coach import pipeline
    from coach.retrieve import Coach

    rng = random.Random(seed)
    emb = FakeEmbedder()
    signatures = {}
    for label, essays in (("A", ESSAYS_A), ("B", ESSAYS_B)):
        write_corpus(settings.corpus_dir, essays)
        t0 = time.perf_counter()
        signatures[label] = chunk_signature(pipeline.build(settings, emb))
        build_s = time.perf_counter() - t0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    script = _BUILD_LOOP.format(
        tests=str(Path(__file__).parent), corpus=str(settings.corpus_dir), index=str(settings.index_dir)
    )
    if max_delay_s is None:
        # calibrate on the child itself: its first build (cold caches) is slower than a warm one in this process
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        assert proc.stdout.readline().strip() == "built"
        build_s = max(build_s, time.perf_counter() - t0)
        proc.kill()
        proc.wait(30)
        max_delay_s = 2.5 * build_s
    assert signatures["A"] != signatures["B"]
    current = "B"
    rounds = []
    for _ in range(n):
        new = "A" if current == "B" else "B"
        write_corpus(settings.corpus_dir, ESSAYS_A if new == "A" else ESSAYS_B)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        delay = rng.uniform(0, max_delay_s)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        completed = out.count("built")
        try:
            sig = chunk_signature(pipeline.load(settings))  # verified against every manifest hash
            served = "old" if sig == signatures[current] else "new" if sig == signatures[new] else "error: a mix"
        except Exception as exc:  # noqa: BLE001 - recorded, the caller asserts
            served = f"error: {type(exc).__name__}: {exc}"
        coach = Coach(settings, embedder=emb)  # repairs: rebuilds when missing, corrupt or stale
        repaired = chunk_signature(coach.index) == signatures[new] and bool(coach.ask("客户生气").results)
        rounds.append(KillRound(round(delay, 4), completed, served, repaired))
        if on_round:
            on_round(rounds[-1])
        current = new
    return rounds


# ---------------------------------------------------------------- the web app on loopback, and load against it


@dataclass
class Served:
    demo: object
    port: int
    coach: object
    settings: object
    feedback_db: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.demo.close()


def start_app(tmp: Path, delay_s: float = 0.0, upload_enabled: bool = False, model: str = "fake") -> Served:
    """The real UI (coach.ui.build_demo, app.py's queue and launch settings) on a free loopback port. model="fake":
    the hashing embedder on the tiny corpus; model="real": the bundled model on the project's corpus."""
    from coach import ui
    from coach.retrieve import Coach

    if model == "real":
        from coach.config import Settings
        from coach.embed import Embedder

        settings = Settings(corpus_dir=ROOT / "corpus", index_dir=tmp / "real-index")
        coach = Coach(
            settings,
            embedder=Embedder(settings.model, cache_dir=settings.model_cache_dir, vocabulary=settings.vocabulary),
        )
    else:
        settings = make_settings(tmp)
        coach = Coach(settings, embedder=FakeEmbedder(delay_s=delay_s))
    coach.ask("angry caller zebra")  # warm-up: load the bridge dictionaries before the clock starts
    db = tmp / "feedback.sqlite3"
    demo = ui.build_demo(
        coach,
        settings=settings,
        feedback_db=db,
        upload_enabled=upload_enabled,
        upload_dir=tmp / "uploads",
        live_dir=tmp / "live",
    )
    port = serve_locally(demo)
    return Served(demo, port, coach, settings, db)


LOAD_QUESTIONS = [
    "how do I handle an angry caller",
    "客户破口大骂怎么办",
    "第一次接电话很紧张",
    "客戶要我破解密碼",
    "😡😡 <script>alert(1)</script>",
    "夜班电话很少但很难",
]


def run_load(url: str, clients: int, seconds: float, questions=LOAD_QUESTIONS) -> dict:
    """`clients` gradio_client users asking in a loop for `seconds` (a new conversation every 5 questions).
    Throughput, p50/p95, errors, busy answers."""
    import threading

    from gradio_client import Client

    lat, busy, errors = [], [], []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def user(n: int):
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001
            with lock:
                errors.append(f"connect: {exc!r}"[:200])
            start.wait()
            return
        start.wait()
        i = n
        while time.monotonic() < deadline[0]:
            q = questions[i % len(questions)]
            i += 1
            if i % 5 == 0:
                client.reset_session()  # a user asks a few questions per conversation, then starts a new one
            t0 = time.perf_counter()
            try:
                out = client.predict(q, "en", "original", api_name="/respond")
                ok = isinstance(out, (list, tuple)) and len(out[1]) >= 2
                with lock:
                    (lat if ok else errors).append(time.perf_counter() - t0 if ok else f"bad answer to {q!r}")
            except Exception as exc:  # noqa: BLE001
                msg = str(exc)
                with lock:
                    if "full" in msg.lower() or "busy" in msg.lower() or "try again" in msg.lower():
                        busy.append(msg[:200])
                    else:
                        errors.append(f"{type(exc).__name__}: {msg}"[:200])
                time.sleep(0.05)

    threads = [threading.Thread(target=user, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + seconds + 60  # provisional, until every client has connected
    start.wait()
    t0 = time.monotonic()
    deadline[0] = t0 + seconds
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.monotonic() - t0
    lat.sort()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None

    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "answered": len(lat),
        "throughput_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "busy": len(busy),
        "errors": len(errors),
        "error_samples": errors[:5],
        "busy_samples": busy[:2],
    }


_SERVER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from reliability_support import start_app
    s = start_app(Path({tmp!r}), delay_s={delay!r}, model={model!r})
    print(s.port, flush=True)
    sys.stdin.read()          # serve until the parent closes our stdin
    s.close()
""")


class ServerProcess:
    """The app in its own process, so a load generator in this process does not share its GIL."""

    def __init__(self, tmp: Path, delay_s: float = 0.0, model: str = "fake", timeout: float = 600):
        tmp.mkdir(parents=True, exist_ok=True)
        code = _SERVER.format(tests=str(Path(__file__).parent), tmp=str(tmp), delay=delay_s, model=model)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.proc.kill()
            raise RuntimeError(f"the app did not start (said {line!r})")
        self.port = int(line)
        self.feedback_db = tmp / "feedback.sqlite3"
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait(10)
