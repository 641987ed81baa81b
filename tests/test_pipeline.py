"""Index lifecycle end to end on a tiny corpus with a fake embedder: build, reload, stale, corrupt, killed builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coach import index as ix
from coach import pipeline
from coach.config import Settings
from coach.retrieve import Coach

ESSAYS = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。发脾气解决不了问题。\n",
    "nerves.txt": "第一次接电话\n刚入职时我紧张到声音颤抖。主管让我多听老同事的录音。慢慢地我就不怕了。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
}


@pytest.fixture
def settings(tmp_path) -> Settings:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ESSAYS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return Settings(corpus_dir=corpus, index_dir=tmp_path / "index", model="fake")


def test_build_then_reload_gives_same_hits(settings, fake_embedder):
    coach = Coach(settings, embedder=fake_embedder)
    first = coach.ask("客户破口大骂怎么办", top_k=3)
    assert first.results and first.results[0].chunk.essay_id
    again = Coach(settings, embedder=fake_embedder, build=False)
    assert again.index.build_dir == coach.index.build_dir
    second = again.ask("客户破口大骂怎么办", top_k=3)
    assert [h.chunk.id for h in second.results] == [h.chunk.id for h in first.results]
    m = again.index.manifest
    assert m.counts["essays"] == 3 and m.model == "fake" and set(m.corpus) == set(ESSAYS)


def test_index_files_are_plain_and_inspectable(settings, fake_embedder):
    build = Coach(settings, embedder=fake_embedder).index.build_dir
    rows = ix.read_jsonl(build / ix.CHUNKS_FILE)
    assert all({"id", "essay_id", "section", "text", "start", "end", "sentences"} <= set(r) for r in rows)
    assert np.load(build / ix.SENTENCES_FILE, allow_pickle=False).dtype == np.float32
    assert not list(build.rglob("*.pkl")) and not list(build.rglob("*.pickle"))


def test_changed_essay_makes_index_stale_and_rebuild_picks_it_up(settings, fake_embedder):
    Coach(settings, embedder=fake_embedder)
    (settings.corpus_dir / "nerves.txt").write_text("第一次接电话\n我学会了深呼吸,然后微笑着说您好。\n", "utf-8")
    with pytest.raises(ix.IndexStale, match="nerves.txt"):
        Coach(settings, embedder=fake_embedder, build=False)
    coach = Coach(settings, embedder=fake_embedder)
    texts = " ".join(c.text for c in coach.index.chunks)
    assert "深呼吸" in texts and "颤抖" not in texts


def test_new_model_or_settings_make_index_stale(settings, fake_embedder):
    Coach(settings, embedder=fake_embedder)
    other = type(fake_embedder)("other-model")
    with pytest.raises(ix.IndexStale, match="model changed"):
        Coach(settings, embedder=other, build=False)
    from coach.config import ChunkSettings

    with pytest.raises(ix.IndexStale, match="chunk settings"):
        Coach(settings.with_overrides(chunk=ChunkSettings(target_chars=50)), embedder=fake_embedder, build=False)


@pytest.mark.parametrize(
    "victim",
    [ix.PASSAGES_FILE, ix.SENTENCES_FILE, ix.CHUNKS_FILE, ix.ESSAYS_FILE, ix.MANIFEST, "keyword/params.index.json"],
)
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_index_is_refused_and_repaired(settings, fake_embedder, victim, damage):
    old = Coach(settings, embedder=fake_embedder).index.build_dir
    path = old / victim
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
    else:
        path.unlink()
    with pytest.raises(ix.IndexCorrupt, match="coach build"):
        Coach(settings, embedder=fake_embedder, build=False)
    repaired = Coach(settings, embedder=fake_embedder)
    assert repaired.index.build_dir != old
    assert repaired.ask("客户破口大骂").results


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import FakeEmbedder
    from coach import pipeline
    from coach.config import Settings

    class Slow(FakeEmbedder):
        def encode_passages(self, texts, batch_size=32):
            print("embedding", flush=True)
            time.sleep(30)  # the parent kills us here, mid-build
            return super().encode_passages(texts)

    pipeline.build(Settings(corpus_dir=Path({corpus!r}), index_dir=Path({index!r}), model="fake"), Slow())
""")


def test_build_killed_midway_leaves_old_index_loadable(settings, fake_embedder):
    old = Coach(settings, embedder=fake_embedder).index.build_dir
    (settings.corpus_dir / "angry.txt").write_text("新内容\n完全不同的一句话。\n", "utf-8")
    script = _KILL_SCRIPT.format(
        tests=str(Path(__file__).parent), corpus=str(settings.corpus_dir), index=str(settings.index_dir)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert proc.stdout.readline().strip() == "embedding"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    loaded = pipeline.load(settings)  # verified: every hash matches
    assert loaded.build_dir == old
    # the leftover temp dir is ignored, and the next build repairs everything
    coach = Coach(settings, embedder=fake_embedder)
    assert "完全不同" in " ".join(c.text for c in coach.index.chunks)


def test_cli_no_build_on_stale_index_exits_nonzero_naming_the_fix(settings, fake_embedder, capsys, monkeypatch):
    from coach import cli
    import coach.embed

    monkeypatch.setattr(coach.embed, "Embedder", lambda *a, **k: fake_embedder)
    Coach(settings, embedder=fake_embedder)
    (settings.corpus_dir / "rules.txt").write_text("改了\n一句新的话。\n", "utf-8")
    args = [
        "--corpus",
        str(settings.corpus_dir),
        "--index",
        str(settings.index_dir),
        "--model",
        "fake",
        "ask",
        "--no-build",
        "客户生气",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "rules.txt" in err and "coach build" in err


def test_cli_ask_json_contract(settings, fake_embedder, capsys, monkeypatch):
    import json
    from coach import cli
    import coach.embed

    monkeypatch.setattr(coach.embed, "Embedder", lambda *a, **k: fake_embedder)
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("第一次接电话很紧张\n\n客戶要我破解密碼\n"))
    args = [
        "--corpus",
        str(settings.corpus_dir),
        "--index",
        str(settings.index_dir),
        "--model",
        "fake",
        "ask",
        "--json",
        "--top-k",
        "2",
        "angry caller",
        "-",
    ]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["query"] for o in out] == ["angry caller", "第一次接电话很紧张", "客戶要我破解密碼"]
    for obj in out:
        # out of the domain, `results` is empty and the passages that came nearest are under `nearest`
        assert set(obj) == {"query", "out_of_domain", "results"} | ({"nearest"} if obj["out_of_domain"] else set())
        assert isinstance(obj["out_of_domain"], bool) and len(obj["results"]) <= 2
        for r in obj["results"]:
            assert set(r) == {"id", "text", "source", "title", "author", "section", "score", "highlight"}
            assert r["highlight"] in r["text"]
