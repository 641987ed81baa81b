"""Cold start of the web app: `python app.py` -> HTTP page served -> first real answer through gradio_client.

    .venv/bin/python scripts/ui_coldstart.py                 # 3 runs of this checkout's app.py
    .venv/bin/python scripts/ui_coldstart.py --runs 5 --app /tmp/coach-base/app.py   # another copy (e.g. a baseline)
    .venv/bin/python scripts/ui_coldstart.py --index-dir /tmp/coach-cs-index           # an index of its own

Each run spawns a fresh `python app.py` (index already built), polls `GET /` until it answers, then asks one
question through gradio_client's `/respond` until a coaching card comes back (a "still loading" reply hands the
question back in the text box and is retried), then a second question. Times are seconds since the process was
spawned. The questions go to a throw-away feedback database. The app listens on 127.0.0.1:$GRADIO_SERVER_PORT (7860
unless taken: then a free port); an app.py that ignores GRADIO_SERVER_PORT must find 7860 free.

With --index-dir the runs use (and first build, untimed, with the same code) an index folder of their own, so
comparing two versions of the code never rebuilds the project's `index/` back and forth.

Also prints the import profile of `import app` (gradio import vs. building the UI) in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "客户在电话里一直骂人,我该怎么办"  # bench/cold_start.py's question
SECOND = "how do I handle an angry caller"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            return r.status == 200
    except OSError:
        return False


INDEX_DIR: Path | None = None


def env_for(app: Path, port: int, tmp: Path) -> dict:
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "COACH_FEEDBACK_DB": str(tmp / "feedback.sqlite3"),
        "COACH_UPLOAD_DIR": str(tmp / "uploads"),
    }
    if app.resolve().parent != ROOT:  # a copy elsewhere (a baseline): point it at this checkout's model and index
        env.setdefault("COACH_INDEX_DIR", str(ROOT / "index"))
        env.setdefault("COACH_MODEL_CACHE", str(ROOT / ".cache" / "models"))
        env.setdefault("COACH_CORPUS_DIR", str(ROOT / "corpus"))
    if INDEX_DIR is not None:
        env["COACH_INDEX_DIR"] = str(INDEX_DIR)
    return env


def build_index(app: Path) -> None:
    """`coach build --if-needed` with the code next to `app` (untimed), so that no timed run builds the index."""
    with tempfile.TemporaryDirectory(prefix="coach-coldstart-") as d:
        out = subprocess.run(
            [sys.executable, "-m", "coach.cli", "build", "--if-needed"],
            cwd=app.resolve().parent,
            env=env_for(app, 0, Path(d)),
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if out.returncode != 0:
        raise RuntimeError(f"coach build failed:\n{out.stderr[-2000:]}")


def one_run(app: Path, timeout: float = 180.0, question: str = QUESTION, second: str = SECOND) -> dict:
    from gradio_client import Client

    port = 7860 if port_is_free(7860) else free_port()
    if "GRADIO_SERVER_PORT" not in app.read_text(encoding="utf-8"):  # an app.py that always listens on 7860
        deadline = time.monotonic() + 120
        while not port_is_free(7860):
            if time.monotonic() > deadline:
                raise RuntimeError("port 7860 is taken and this app.py cannot listen elsewhere")
            time.sleep(1)
        port = 7860
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="coach-coldstart-") as d:
        log = open(Path(d) / "app.log", "wb")  # noqa: SIM115 - closed below
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(app)],
            cwd=app.resolve().parent,
            env=env_for(app, port, Path(d)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out: dict = {"port": port}
        try:
            while not _served(url):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"app exited with {proc.returncode}:\n"
                        f"{(Path(d) / 'app.log').read_text(errors='replace')[-2000:]}"
                    )
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError(f"{url} not served within {timeout:.0f}s")
                time.sleep(0.05)
            out["http_s"] = time.perf_counter() - t0
            client = Client(url, verbose=False)
            out["client_s"] = time.perf_counter() - t0
            tries = 0
            while True:
                tries += 1
                res = client.predict(question, "en", "original", api_name="/respond")
                chat = res[1] if isinstance(res, (list, tuple)) and len(res) > 1 else []
                if chat and "coach-card" in str(chat[-1].get("content", "")):
                    break
                if time.perf_counter() - t0 > timeout:
                    raise RuntimeError("no answer: the app kept saying it is loading")
                time.sleep(0.1)
            out["first_answer_s"] = time.perf_counter() - t0
            out["tries"] = tries
            t = time.perf_counter()
            client.predict(second, "en", "original", api_name="/respond")
            out["second_answer_ms"] = (time.perf_counter() - t) * 1000
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
            log.close()
    return out


def import_profile(app: Path) -> dict:
    """Seconds to `import gradio`, then `import app` (building `demo`), in a fresh interpreter."""
    code = (
        "import time, json; t0 = time.perf_counter(); import gradio; t1 = time.perf_counter(); import app; "
        "t2 = time.perf_counter(); print(json.dumps({'import_gradio_s': t1 - t0, 'import_app_s': t2 - t1}))"
    )
    with tempfile.TemporaryDirectory(prefix="coach-coldstart-") as d:
        env = env_for(app, free_port(), Path(d))
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=app.resolve().parent, env=env, capture_output=True, text=True, timeout=300
        )
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--app", type=Path, default=ROOT / "app.py", help="the app.py to start (default: this checkout's)")
    ap.add_argument("--question", default=QUESTION, help=f"the first question (default {QUESTION!r})")
    ap.add_argument("--second", default=SECOND, help=f"asked right after the first answer (default {SECOND!r})")
    ap.add_argument("--index-dir", type=Path, help="index folder for these runs (built first if needed)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    global INDEX_DIR
    if args.index_dir is not None:
        INDEX_DIR = args.index_dir.resolve()
    build_index(args.app)
    runs = [one_run(args.app, question=args.question, second=args.second) for _ in range(args.runs)]
    firsts = [r["first_answer_s"] for r in runs]
    summary = {
        "app": str(args.app),
        "question": args.question,
        "second": args.second,
        "runs": runs,
        "first_answer_median_s": statistics.median(firsts),
        "http_median_s": statistics.median(r["http_s"] for r in runs),
        "imports": import_profile(args.app),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"app: {args.app}   (load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print("run  page served  first answer  (tries)  second answer")
    for i, r in enumerate(runs, 1):
        print(
            f"{i:>3}  {r['http_s']:9.1f} s  {r['first_answer_s']:10.1f} s  ({r['tries']:>3})  "
            f"{r['second_answer_ms']:9.0f} ms"
        )
    print(f"median: page {summary['http_median_s']:.1f} s, first answer {summary['first_answer_median_s']:.1f} s")
    print(
        "imports:", json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in summary["imports"].items()})
    )


if __name__ == "__main__":
    main()
