"""Cold start in fresh processes: start -> first answer with the index built, first-ever set-up, import costs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, log  # noqa: E402

CHILD = Path(__file__).resolve().parent / "cold_child.py"
QUESTION = "客户在电话里一直骂人,我该怎么办"


def _child(mode: str, env: dict | None = None, timeout: float = 900) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, str(CHILD), mode, QUESTION], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    t_exit = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"cold_child {mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    rel = {k[2:]: v - t0 for k, v in data.items() if k.startswith("t_")}
    rel["exit"] = t_exit - t0
    return {"seconds_since_spawn": rel, **{k: v for k, v in data.items() if not k.startswith("t_")}}


def answer_runs(n: int = 3) -> dict:
    """Process start -> first answer on the existing index, n times (the first may pay for a cold page cache)."""
    runs = [_child("answer") for _ in range(n)]
    firsts = sorted(r["seconds_since_spawn"]["first_answer"] for r in runs)
    return {
        "runs": runs,
        "first_answer_s": firsts,
        "median_s": firsts[len(firsts) // 2],
        "max_rss_bytes": max(r["max_rss_bytes"] for r in runs),
    }


def first_setup() -> dict:
    """Model conversion + index build for the corpus, into empty temporary folders."""
    tmp = Path(tempfile.mkdtemp(prefix="coach-bench-setup-"))
    try:
        return _child("setup", env={"COACH_MODEL_CACHE": str(tmp / "models"), "COACH_INDEX_DIR": str(tmp / "index")})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def import_profile(statement: str, top: int = 10) -> dict:
    """`python -X importtime -c statement`: cumulative import time grouped by top-level package."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.time() - t0
    per_pkg: dict[str, float] = defaultdict(float)
    pattern = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
    for line in proc.stderr.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        self_us, name = int(m.group(1)), m.group(4)
        # self time summed per top-level package: each import is charged once, to the package it belongs to
        per_pkg[name.split(".")[0]] += self_us / 1e6
    ranked = sorted(per_pkg.items(), key=lambda kv: -kv[1])
    total = sum(per_pkg.values())
    return {
        "statement": statement,
        "wall_s": wall,
        "import_total_s": total,
        "top": [{"package": k, "self_s": v} for k, v in ranked[:top]],
        "ok": proc.returncode == 0,
    }


def run(setup: bool = True, answer_repeats: int = 3) -> dict:
    out = {}
    log("cold start: process start -> first answer (index already built)")
    out["answer"] = answer_runs(answer_repeats)
    stmt = "import coach.retrieve, coach.onnx_embed, onnxruntime, tokenizers"
    if (ROOT / "app.py").is_file():
        stmt = "import app, coach.retrieve, coach.onnx_embed, onnxruntime, tokenizers"
    log("cold start: -X importtime")
    out["imports"] = import_profile(stmt)
    if setup:
        log("cold start: first-ever set-up (conversion + index build) in empty folders")
        out["setup"] = first_setup()
    return out
