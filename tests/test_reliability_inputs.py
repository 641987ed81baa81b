"""Hostile questions through the Python API and the CLI (in-process and as a real process): each gets a clean answer
or a clear message, fast, memory stays steady, and the next request still works. Plus a Hypothesis property over
arbitrary text: never raises, at most k results, every result exists in the index it came from."""

from __future__ import annotations

import gc
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from coach import cli
from coach.retrieve import MAX_QUERY_CHARS, Coach, sanitize_query

from reliability_support import ROOT, FakeEmbedder, hostile_questions, make_settings

NORMAL = "客户破口大骂怎么办"
# The work a hostile question may cause, whatever its size: every text handed to the embedder or to jieba is at most
# this many characters (the question is capped at MAX_QUERY_CHARS before any work; the bridge's Chinese rendering
# of an English question is a few glossary terms long). A bound on work done, not on wall-clock time.
MAX_WORK_CHARS = 2 * MAX_QUERY_CHARS + 200


def _record_work(coach, monkeypatch) -> list[int]:
    """Lengths of every text the embedder encodes and jieba segments during the test."""
    from coach import keyword

    seen: list[int] = []
    encode, tokenize = coach.embedder.encode_queries, keyword.tokenize

    def counting_encode(texts, *a, **k):
        seen.extend(len(t) for t in texts)
        return encode(texts, *a, **k)

    def counting_tokenize(text, *a, **k):
        seen.append(len(text))
        return tokenize(text, *a, **k)

    monkeypatch.setattr(coach.embedder, "encode_queries", counting_encode)
    monkeypatch.setattr(keyword, "tokenize", counting_tokenize)
    return seen


@pytest.fixture(scope="module")
def coach(tmp_path_factory):
    c = Coach(make_settings(tmp_path_factory.mktemp("inputs")), embedder=FakeEmbedder())
    # warm-up: the first English word outside the glossary loads the CC-CEDICT bridge dictionary (~3.5 s, once)
    c.ask("angry caller shouting at me qwertyuiop"), c.ask(NORMAL)
    return c


def _check_answer(coach, answer, k):
    ids = {c.id for c in coach.index.chunks}
    assert len(answer.results) <= max(0, k)
    for hit in answer.results:
        assert hit.chunk.id in ids and hit.chunk.essay_id in coach.index.essays
        assert hit.highlight and hit.highlight in hit.chunk.text
    assert isinstance(answer.query, str) and len(answer.query) <= MAX_QUERY_CHARS
    answer.query.encode("utf-8")  # no lone surrogates survive: the query can be printed, logged and stored
    json.dumps(answer.to_json(), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("name", list(hostile_questions()))
def test_hostile_question_python_api(coach, name, monkeypatch):
    q = hostile_questions()[name]
    coach.warm_up(background=False)  # the fixed texts (theme descriptions, prototypes) are not the question's work
    work = _record_work(coach, monkeypatch)
    answer = coach.ask(q, top_k=3)
    assert max(work, default=0) <= MAX_WORK_CHARS, f"{name}: a {max(work)}-character text reached the models"
    _check_answer(coach, answer, 3)
    for ch in "\x00\u202e\u200b\ufeff":
        assert ch not in answer.query
    if len(q) > 4 * MAX_QUERY_CHARS:
        assert answer.truncated
    if not q.strip() or name in ("only-surrogates", "only-zero-width"):
        assert answer.results == [] and answer.out_of_domain  # a clear "nothing to answer", not an error
    nxt = coach.ask(NORMAL, top_k=3)  # the next request still works
    assert nxt.results


@pytest.mark.parametrize("top_k", [-10, 0, 1, 3, 10**9])
def test_odd_top_k_python_api(coach, top_k):
    _check_answer(coach, coach.ask(NORMAL, top_k=top_k), top_k)


def test_memory_steady_over_repeated_hostile_questions(coach):
    proc = psutil.Process()
    qs = list(hostile_questions().values())
    for q in qs:  # warm-up: jieba, allocator pools
        coach.ask(q)
    gc.collect()
    before = proc.memory_info().rss
    for _ in range(3):
        for q in qs:
            coach.ask(q)
            coach.ask(NORMAL)
    gc.collect()
    grown = (proc.memory_info().rss - before) / 2**20
    assert grown < 40, f"RSS grew {grown:.1f} MiB over {3 * len(qs)} hostile questions"


# ---------------------------------------------------------------- property test

_fragments = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\u202e",
        "\u200b",
        "\ufeff",
        "😡",
        "<script>",
        "客户",
        "顧客",
        "angry",
        "\n",
        "\t",
        " ",
        "\x1b[31m",
        "%s",
        "{0}",
        "\u0301",
    ]
)
_any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
_questions = st.one_of(_any_text, st.lists(st.one_of(_fragments, _any_text), max_size=12).map("".join))


@hsettings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(q=_questions, k=st.integers(min_value=-3, max_value=12), diverse=st.booleans())
def test_property_any_text_never_raises_and_results_exist(coach, q, k, diverse):
    answer = coach.ask(q, top_k=k, diverse=diverse)
    _check_answer(coach, answer, k)
    if answer.results:
        assert len({h.chunk.id for h in answer.results}) == len(answer.results)  # no duplicates


# ---------------------------------------------------------------- CLI, in-process


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    import coach.embed

    settings = make_settings(tmp_path)
    monkeypatch.setattr(coach.embed, "Embedder", lambda *a, **k: FakeEmbedder())
    base = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--model", "fake"]
    assert cli.main(base + ["build"]) == 0
    return base


@pytest.mark.parametrize("name", [n for n in hostile_questions() if "10MB" not in n])
def test_hostile_question_cli_in_process(cli_env, capsys, name):
    q = hostile_questions()[name]
    capsys.readouterr()
    assert cli.main(cli_env + ["ask", "--json", "--top-k", "2", q, NORMAL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and all(len(o["results"]) <= 2 for o in out)
    # (the fake embedder's cosines sit below the real model's out-of-domain floors: passages may come as `nearest`)
    assert out[1]["results"] or out[1]["nearest"], "the question after a hostile one still gets an answer"
    if not sanitize_query(q)[0]:  # nothing left to search: a usage error, before any model loads
        assert cli.main(cli_env + ["ask", q]) == 2
        assert "empty" in capsys.readouterr().err
        return
    assert cli.main(cli_env + ["ask", q]) == 0  # human-readable output path too
    assert "»" in capsys.readouterr().out


def test_cli_stdin_with_invalid_utf8_and_huge_lines(cli_env, capsys, monkeypatch):
    raw = (
        b"\xff\xfe\xfa broken bytes \x80\x81\n"
        + "客户".encode("gbk")
        + b"\n"
        + b"\x00\x01\x02\n"
        + b"x" * (2 << 20)
        + b"\n"
        + NORMAL.encode()
        + b"\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    capsys.readouterr()
    assert cli.main(cli_env + ["ask", "--json", "-"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 5 and (out[-1]["results"] or out[-1]["nearest"])


@pytest.mark.parametrize("top_k", ["0", "-1", "abc", "99999999999999999999"])
def test_cli_odd_top_k_is_a_clear_message(cli_env, capsys, top_k):
    try:
        code = cli.main(cli_env + ["ask", "--top-k", top_k, NORMAL])
    except SystemExit as exc:  # argparse: usage error, exit 2, message on stderr
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2)
    if code:
        assert "top-k" in err and "Traceback" not in err


# ---------------------------------------------------------------- CLI, as a real process

_FAKE_CLI = (
    "import sys; sys.path.insert(0, {tests!r}); import coach.embed; "
    "from reliability_support import FakeEmbedder; coach.embed.Embedder = lambda *a, **k: FakeEmbedder(); "
    "from coach.cli import main; sys.exit(main())"
)


def _run_cli(args, stdin: bytes = b"", env_extra=None, real=False, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    if real:
        cmd = [str(ROOT / ".venv" / "bin" / "coach"), *args]
    else:
        cmd = [sys.executable, "-c", _FAKE_CLI.format(tests=str(Path(__file__).parent)), *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, env=env)


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_cli_process_hostile_argv_stdin_and_ascii_stdout(tmp_path):
    """argv with undecodable bytes (become lone surrogates), stdin bytes, and a stdout that cannot encode Chinese."""
    settings = make_settings(tmp_path)
    base = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--model", "fake"]
    qs = hostile_questions()
    argv_qs = [
        os.fsencode(q.replace("\x00", "")) if q.isascii() else q.replace("\x00", "").encode("utf-8", "replace")
        for n, q in qs.items()
        if "MB" not in n and n != "newlines"
    ]
    argv_qs.append(b"\xff\xfe undecodable argv \x80")
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _FAKE_CLI.format(tests=str(Path(__file__).parent)),
            *[a.encode() for a in base],
            b"ask",
            b"--json",
            *argv_qs,
            b"-",
        ],
        input=b"\xff\x00line\n" + b"y" * (1 << 20) + b"\n",
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"},
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    out = json.loads(r.stdout)
    assert len(out) == len(argv_qs) + 2
    assert b"Traceback" not in r.stderr
    r = _run_cli(base + ["ask", NORMAL], env_extra={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr[-2000:]


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_cli_process_missing_corpus_and_damaged_index_are_messages(tmp_path):
    r = _run_cli(["--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "ix"), "ask", NORMAL])
    assert r.returncode != 0 and b"Traceback" not in r.stderr and b"nope" in r.stderr
    settings = make_settings(tmp_path)
    base = ["--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir), "--model", "fake"]
    assert _run_cli(base + ["build"]).returncode == 0
    (settings.index_dir / "CURRENT").write_bytes(b"\xff\xfe")
    r = _run_cli(base + ["ask", "--no-build", NORMAL])
    assert r.returncode != 0 and b"coach build" in r.stderr and b"Traceback" not in r.stderr
    r = _run_cli(base + ["ask", "--json", NORMAL])  # repairs itself
    answer = json.loads(r.stdout)[0] if r.returncode == 0 else {}
    assert r.returncode == 0 and (answer["results"] or answer["nearest"])


@pytest.mark.slow
def test_cli_real_model_hostile_questions(tmp_path):
    """The installed `coach` entry point with the real model and the project's own index (`make test` builds it
    first; built here if missing or stale): hostile questions, one process."""
    qs = [
        q
        for n, q in hostile_questions().items()
        if "MB" not in n
        and "\x00" not in q
        and n != "newlines"
        and q.encode("utf-8", "surrogatepass") == q.encode("utf-8", "replace")
    ]  # argv: no NUL, no surrogates
    stdin = b"\xff\xfe\x80 bad bytes\n" + ("客户生气" * (1 << 18)).encode() + b"\n" + b"\x00nul\n"
    r = _run_cli(["ask", "--json", *qs, "-", NORMAL], stdin=stdin, real=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    out = json.loads(r.stdout)
    assert len(out) == len(qs) + 4 and (out[-1]["results"] or out[-1]["nearest"])
    assert b"Traceback" not in r.stderr
