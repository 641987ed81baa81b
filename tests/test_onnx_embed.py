"""The fast query path (coach/onnx_embed.py): same vectors as sentence-transformers, same answers, no torch.

The first group needs no model (the fast tier); the rest use the real one (slow, via the fixtures in conftest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coach import cli, onnx_embed
from coach.config import Settings
from coach.embed import FakeEmbedder

from conftest import VARIED_TEXTS

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- no model


def test_unknown_engine_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COACH_QUERY_ENGINE", "tpu")
    with pytest.raises(ValueError, match="COACH_QUERY_ENGINE"):
        onnx_embed.query_embedder(Settings())


def test_torch_engine_and_hub_names_use_sentence_transformers(monkeypatch):
    made = []
    monkeypatch.setattr(onnx_embed, "_torch_embedder", lambda s: made.append(s.model) or FakeEmbedder())
    monkeypatch.setenv("COACH_QUERY_ENGINE", "torch")
    assert isinstance(onnx_embed.query_embedder(Settings()), FakeEmbedder)
    monkeypatch.delenv("COACH_QUERY_ENGINE")
    hub = Settings().with_overrides(model="someone/some-model")
    assert isinstance(onnx_embed.query_embedder(hub), FakeEmbedder)
    assert made == [Settings().model, "someone/some-model"]


def test_failed_export_falls_back_with_a_warning(monkeypatch, tmp_path):
    folder = tmp_path / "模型"  # any sentence-transformers folder
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.delenv("COACH_QUERY_ENGINE", raising=False)
    monkeypatch.setattr(onnx_embed, "_torch_embedder", lambda s: FakeEmbedder())

    def broken(*a, **k):
        raise RuntimeError("cannot trace this model")

    monkeypatch.setattr(onnx_embed, "ensure_exported", broken)
    said: list[str] = []
    settings = Settings().with_overrides(model=str(folder), model_cache_dir=tmp_path / "cache")
    assert isinstance(onnx_embed.query_embedder(settings, progress=said.append), FakeEmbedder)
    assert len(said) == 1 and "cannot trace this model" in said[0] and "COACH_QUERY_ENGINE=torch" in said[0]


def test_export_folder_is_keyed_by_fingerprint_and_version(tmp_path):
    settings = Settings().with_overrides(model_cache_dir=tmp_path)
    a, b = onnx_embed.export_dir(settings, "a" * 64), onnx_embed.export_dir(settings, "b" * 64)
    assert a != b and a.parent == b.parent == tmp_path / "onnx"
    assert a.name.endswith(f"-v{onnx_embed.EXPORT_VERSION}")


def test_a_damaged_or_foreign_export_is_redone(tmp_path, monkeypatch):
    assert "no readable" in onnx_embed._stamp_problem(tmp_path)
    stamp = {"export_version": onnx_embed.EXPORT_VERSION, "onnxruntime": "0.0.1", "files": {}}
    (tmp_path / onnx_embed.STAMP_NAME).write_text(json.dumps(stamp), encoding="utf-8")
    monkeypatch.setattr(onnx_embed, "_runtime_version", lambda: "9.9.9")
    assert "onnxruntime" in onnx_embed._stamp_problem(tmp_path)
    stamp["onnxruntime"] = "9.9.9"
    stamp["files"] = {onnx_embed.ONNX_NAME: 10}
    (tmp_path / onnx_embed.STAMP_NAME).write_text(json.dumps(stamp), encoding="utf-8")
    assert "missing" in onnx_embed._stamp_problem(tmp_path)
    (tmp_path / onnx_embed.ONNX_NAME).write_bytes(b"x" * 9)
    assert "wrong size" in onnx_embed._stamp_problem(tmp_path)
    (tmp_path / onnx_embed.ONNX_NAME).write_bytes(b"x" * 10)
    assert onnx_embed._stamp_problem(tmp_path) is None
    model = tmp_path / "model"  # the source folder: a retrained model keeps its sizes, not its times
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"w" * 100)
    stamp["sources"] = onnx_embed._source_state(model)
    (tmp_path / onnx_embed.STAMP_NAME).write_text(json.dumps(stamp), encoding="utf-8")
    assert onnx_embed._stamp_problem(tmp_path, model) is None
    os.utime(model / "model.safetensors", ns=(1, 1))
    assert "changed" in onnx_embed._stamp_problem(tmp_path, model)


def _bare_embedder(export: Path) -> onnx_embed.OnnxEmbedder:
    """An OnnxEmbedder without a session: its encoder is a counting fake, to test what is cached."""
    e = object.__new__(onnx_embed.OnnxEmbedder)
    e.export, e.fingerprint, e.prompts, e.dim = export, "fp", {}, 8
    e.calls = []  # type: ignore[attr-defined]

    def fake_encode(texts, batch_size):
        e.calls.append(list(texts))  # type: ignore[attr-defined]
        return FakeEmbedder(dim=8).encode_queries(texts)

    e._encode = fake_encode  # type: ignore[method-assign]
    return e


def test_fixed_batches_are_cached_on_disk_and_questions_are_not(tmp_path):
    e = _bare_embedder(tmp_path)
    batch = [f"主题描述 {i}" for i in range(onnx_embed.VECTOR_CACHE_MIN_TEXTS)]
    first = e.encode_queries(batch)
    again = _bare_embedder(tmp_path).encode_queries(batch)  # a new process: read back, not encoded
    np.testing.assert_array_equal(first, again)
    assert len(e.calls) == 1 and len(list((tmp_path / "vectors").glob("*.npy"))) == 1
    e.encode_queries(["客戶很生氣怎麼辦"])
    e.encode_queries(["客戶很生氣怎麼辦"])
    assert len(e.calls) == 3 and len(list((tmp_path / "vectors").glob("*.npy"))) == 1
    e.encode_queries([*batch[:-1], "another text"])  # other texts: another entry
    assert len(e.calls) == 4


def test_prepare_exports_only_for_the_onnx_engine_and_never_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("COACH_QUERY_ENGINE", "torch")
    assert onnx_embed.prepare(Settings()) is None
    monkeypatch.delenv("COACH_QUERY_ENGINE")
    assert onnx_embed.prepare(Settings().with_overrides(model="someone/hub-model")) is None

    def broken(*a, **k):
        raise OSError("disk full")

    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setattr(onnx_embed, "ensure_exported", broken)
    said: list[str] = []
    assert onnx_embed.prepare(Settings().with_overrides(model=str(folder)), progress=said.append) is None
    assert "disk full" in said[0]


def test_empty_question_exits_2_before_any_model_loads(monkeypatch, capsys, tmp_path):
    def no_model(*a, **k):
        raise AssertionError("a model was loaded for an empty question")

    monkeypatch.setattr(onnx_embed, "query_embedder", no_model)
    monkeypatch.setattr("coach.embed.Embedder", no_model)
    for q in ("", "   ", "\t\u3000\n", "\u200b\u200b"):
        assert cli.main(["--index", str(tmp_path / "ix"), "ask", "--json", q]) == 2
        assert "empty" in capsys.readouterr().err


def test_progress_bars_only_on_a_terminal(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "")  # recorded, so the test leaves the variable as it was
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    cli.main(["--index", str(tmp_path / "ix"), "ask", ""])
    assert os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1"


# ---------------------------------------------------------------- real model (slow)


def _texts_200() -> list[str]:
    """200 varied texts: the parity set (Chinese in both scripts, English, emoji, odd characters, long), plus
    prefixes and combinations of them, and texts past the 512-token limit."""
    out = list(VARIED_TEXTS)
    n = 0
    while len(out) < 198:
        a, b = VARIED_TEXTS[n % len(VARIED_TEXTS)], VARIED_TEXTS[(7 * n + 3) % len(VARIED_TEXTS)]
        out.append(a[: 1 + (n * 13) % max(1, len(a))] if n % 2 else f"{a} {b}")
        n += 1
    return out + ["投诉处理 " * 400, "an angry caller keeps shouting 😡 " * 100]


def test_same_vectors_fingerprint_and_tokens_as_sentence_transformers(onnx_embedder, real_embedder):
    assert (onnx_embedder.name, onnx_embedder.fingerprint, onnx_embedder.dim) == (
        real_embedder.name,
        real_embedder.fingerprint,
        real_embedder.dim,
    )
    texts = _texts_200()
    assert len(texts) == 200
    reference = real_embedder._model.encode(
        texts, prompt="query: ", normalize_embeddings=True, convert_to_numpy=True, batch_size=32
    )
    fast = onnx_embedder.encode_queries(texts)
    one_by_one = np.stack([onnx_embedder.encode_queries([t])[0] for t in texts[:40]])
    cos = (fast * reference).sum(1)
    assert cos.min() >= 0.99999, texts[int(cos.argmin())][:60]
    assert (one_by_one * reference[:40]).sum(1).min() >= 0.99999
    for t in texts[:60]:
        assert onnx_embedder.count_tokens(t) == real_embedder.count_tokens(t)


def test_passages_go_through_sentence_transformers(onnx_embedder, real_embedder):
    texts = ["客户投诉物流太慢", "顧客對帳單有疑問"]
    np.testing.assert_allclose(onnx_embedder.encode_passages(texts), real_embedder.encode_passages(texts), atol=1e-6)


def test_identical_top3_on_the_whole_eval_set(onnx_embedder, real_embedder):
    """Every question of eval/queries.jsonl gets the same three passages, in order, on either query path."""
    from coach.retrieve import Coach

    from coach.embed import Embedder

    settings = Settings()
    fast = Coach(settings, embedder=onnx_embedder, build=True)
    exact = Coach(settings, embedder=real_embedder, build=False)
    tuning = fast.index.manifest.tuning
    # questions are encoded by the model the index's vectors come from (the fine-tuned one, coach/tune.py): compare
    # its ONNX export with the same folder through sentence-transformers
    exact.embedder = Embedder(tuning["path"]) if tuning else real_embedder
    assert fast.embedder is not exact.embedder and type(fast.embedder).__name__ == "OnnxEmbedder"
    questions = [
        json.loads(line)["query"]
        for line in (ROOT / "eval" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    differ = [
        q
        for q in questions
        if [h.chunk.id for h in fast.ask(q, top_k=3).results] != [h.chunk.id for h in exact.ask(q).results]
    ]
    assert not differ, f"{len(differ)} of {len(questions)} questions differ, e.g. {differ[:3]}"


def test_one_shot_ask_never_imports_torch(onnx_embedder):
    """`coach ask --json` on a fresh index: onnxruntime only; torch and sentence-transformers stay unimported."""
    from coach.retrieve import Coach

    Coach(Settings(), embedder=onnx_embedder, build=True)  # the project's index, fresh
    code = (
        "import sys, coach.cli; rc = coach.cli.main(['ask', '--json', 'how do I handle an angry caller']); "
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules); "
        "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=900,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    assert b"HEAVY []" in r.stderr, r.stderr[-500:]
    assert b"Loading weights" not in r.stderr  # no progress bar when stderr is not a terminal
    assert json.loads(r.stdout)[0]["results"]


def test_a_model_folder_given_by_path_is_served_too(real_embedder, tmp_path):
    """A fine-tuned model is an ordinary sentence-transformers folder named by COACH_MODEL: it is exported into the
    model cache (the folder itself is left as it was) and gets Embedder's fingerprint for a folder."""
    from coach.embed import folder_fingerprint

    folder = tmp_path / "tuned model 微调"
    for src in Path(real_embedder.path).rglob("*"):  # the same weights, linked, under another name
        dest = folder / src.relative_to(real_embedder.path)
        if src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(src)
    before = sorted(p.name for p in folder.rglob("*"))
    settings = Settings().with_overrides(model=str(folder), model_cache_dir=tmp_path / "cache")
    fast = onnx_embed.query_embedder(settings)
    assert isinstance(fast, onnx_embed.OnnxEmbedder)
    assert fast.name == str(folder) and fast.fingerprint == folder_fingerprint(folder)
    assert sorted(p.name for p in folder.rglob("*")) == before
    texts = VARIED_TEXTS[:20]
    cos = (fast.encode_queries(texts) * real_embedder.encode_queries(texts)).sum(1)
    assert cos.min() >= 0.99999
    shutil.rmtree(tmp_path / "cache")
