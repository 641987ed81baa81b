"""The FAISS wrapper and the on-disk build/commit/verify mechanics, on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coach import index as ix


def _unit(rng, n, d=32):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("n,k", [(1, 1), (7, 3), (500, 10), (500, 600)])
def test_flat_search_equals_numpy_oracle(n, k):
    rng = np.random.default_rng(n)
    docs, queries = _unit(rng, n), _unit(rng, 5)
    vi = ix.VectorIndex.build(docs, approximate_above=10_000)
    assert vi.kind == "flat"
    scores, ids = vi.search(queries, k)
    oracle = queries @ docs.T
    kk = min(k, n)
    for q in range(len(queries)):
        expected = np.argsort(-oracle[q], kind="stable")[:kk]
        np.testing.assert_allclose(scores[q], oracle[q][expected], rtol=1e-5, atol=1e-5)
        # ids may differ only between exactly tied scores
        np.testing.assert_allclose(oracle[q][ids[q]], oracle[q][expected], rtol=1e-5, atol=1e-5)


def test_hnsw_above_threshold_has_high_recall():
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 3000), _unit(rng, 50)
    vi = ix.VectorIndex.build(docs, approximate_above=1000)
    assert vi.kind == "hnsw"
    _, ids = vi.search(queries, 10)
    truth = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert recall >= 0.95


def test_save_load_same_hits(tmp_path):
    rng = np.random.default_rng(1)
    docs, queries = _unit(rng, 200), _unit(rng, 4)
    vi = ix.VectorIndex.build(docs, approximate_above=10_000)
    vi.save(tmp_path / "p.faiss")
    again = ix.VectorIndex.load(tmp_path / "p.faiss")
    assert np.array_equal(vi.search(queries, 5)[1], again.search(queries, 5)[1])


def _manifest(**over) -> ix.Manifest:
    base = dict(
        format_version=ix.FORMAT_VERSION,
        model="m",
        model_fingerprint="f",
        dim=4,
        chunk_settings={"target_chars": 1},
        pipeline_version="p",
        corpus={"a.txt": "1", "b.txt": "2"},
        counts={},
        index_type="flat",
        versions={},
        built_at="t",
        build_seconds=0.0,
    )
    base.update(over)
    return ix.Manifest(**base)


def _fake_build(index_dir, payload: bytes = b"x") -> ix.Manifest:
    tmp = ix.new_build_dir(index_dir)
    for name in (ix.PASSAGES_FILE, ix.SENTENCES_FILE, ix.CHUNKS_FILE, ix.ESSAYS_FILE):
        (tmp / name).write_bytes(payload + name.encode())
    final = ix.commit_build(index_dir, tmp, _manifest())
    return ix.read_manifest(final)


def test_commit_switches_current_and_verifies(tmp_path):
    m = _fake_build(tmp_path)
    build = ix.current_build(tmp_path)
    ix.verify_files(build, m)
    assert set(m.files) == {ix.PASSAGES_FILE, ix.SENTENCES_FILE, ix.CHUNKS_FILE, ix.ESSAYS_FILE}
    assert not [p for p in (tmp_path / ix.BUILDS).iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_file_is_detected(tmp_path, damage):
    m = _fake_build(tmp_path)
    target = ix.current_build(tmp_path) / ix.PASSAGES_FILE
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:3])
    elif damage == "flip":
        target.write_bytes(b"y" + target.read_bytes()[1:])
    else:
        target.unlink()
    with pytest.raises(ix.IndexCorrupt, match="coach build"):
        ix.verify_files(ix.current_build(tmp_path), m)


def test_missing_or_garbled_manifest_and_pointer(tmp_path):
    with pytest.raises(ix.IndexMissing, match="coach build"):
        ix.current_build(tmp_path)
    _fake_build(tmp_path)
    build = ix.current_build(tmp_path)
    (build / ix.MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(ix.IndexCorrupt):
        ix.read_manifest(build)
    (build / ix.MANIFEST).unlink()
    with pytest.raises(ix.IndexCorrupt):
        ix.read_manifest(build)
    # CURRENT must never lead outside index/builds
    (tmp_path / ix.CURRENT).write_text("../../etc\n", encoding="utf-8")
    with pytest.raises(ix.IndexCorrupt):
        ix.current_build(tmp_path)


def test_manifest_from_other_format_version_is_refused():
    text = json.dumps({"format_version": 999})
    with pytest.raises(ix.IndexCorrupt, match="format"):
        ix.Manifest.from_json(text)


def test_old_builds_are_pruned_but_previous_kept(tmp_path):
    for i in range(4):
        _fake_build(tmp_path, payload=bytes([i]))
    names = [p.name for p in (tmp_path / ix.BUILDS).iterdir()]
    assert len(names) == 2  # the current one and the one before (readers may still hold it)


@pytest.mark.parametrize(
    "change,reason",
    [
        (dict(model="other"), "model changed"),
        (dict(model_fingerprint="g"), "model changed"),
        (dict(chunk_settings={"target_chars": 2}), "chunk settings"),
        (dict(pipeline_version="q"), "code changed"),
        (dict(corpus={"a.txt": "1", "b.txt": "3"}), "changed: b.txt"),
        (dict(corpus={"a.txt": "1", "b.txt": "2", "c.txt": "9"}), "added: c.txt"),
        (dict(corpus={"a.txt": "1"}), "removed: b.txt"),
    ],
)
def test_stale_reasons(change, reason):
    m = _manifest()
    expected = {
        "model": m.model,
        "model_fingerprint": m.model_fingerprint,
        "chunk_settings": m.chunk_settings,
        "pipeline_version": m.pipeline_version,
        "corpus": m.corpus,
    }
    assert ix.stale_reasons(m, expected) == []
    expected.update(change)
    reasons = ix.stale_reasons(m, expected)
    assert len(reasons) == 1 and reason in reasons[0]
