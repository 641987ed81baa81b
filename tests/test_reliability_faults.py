"""Index faults: every index file (and the manifest and CURRENT) truncated, corrupted or deleted; builds killed with
SIGKILL at random points; tampered pointers and symlinks. After each, Coach serves the old index or the new one,
never a mix, repairs itself, and reads FAISS files only from its own index directory."""

from __future__ import annotations

import os
import random
import shutil
from contextlib import nullcontext

import pytest

from coach import index as ix
from coach import pipeline
from coach.retrieve import Coach

from reliability_support import FakeEmbedder, chunk_signature, damage, index_files, kill_build_rounds, make_settings


@pytest.fixture
def built(tmp_path):
    settings = make_settings(tmp_path)
    emb = FakeEmbedder()
    coach = Coach(settings, embedder=emb)
    return settings, emb, coach.index


def _assert_old_or_refused(settings, good_sig):
    """Loading either refuses with a message naming the fix, or serves exactly the original content."""
    try:
        loaded = pipeline.load(settings)
    except ix.IndexError_ as exc:
        assert "coach build" in str(exc)
        return "refused"
    assert chunk_signature(loaded) == good_sig, "a damaged index was served with different content"
    return "served-identical"


def _assert_repairs(settings, emb, good_sig):
    coach = Coach(settings, embedder=emb)
    assert chunk_signature(coach.index) == good_sig
    pipeline.load(settings)  # the repaired index verifies
    answer = coach.ask("客户破口大骂怎么办", top_k=3)
    assert answer.results and all(h.chunk in coach.index.chunks for h in answer.results)


@pytest.mark.parametrize("how", ["truncate", "corrupt", "delete", "empty"])
def test_every_index_file_damaged_is_refused_or_identical_then_repaired(built, how):
    settings, emb, loaded = built
    good_sig = chunk_signature(loaded)
    build = loaded.build_dir
    targets = [build / rel for rel in index_files(build)] + [settings.index_dir / ix.CURRENT]
    assert any(t.parent.name == "keyword" for t in targets) and len(targets) >= 7
    # an empty file cannot be truncated or emptied: every target must hold bytes, or the damage is a no-op
    assert all(t.stat().st_size for t in targets), [t.name for t in targets if not t.stat().st_size]
    rng = random.Random(how)
    outcomes = {}
    for target in targets:
        backup = target.read_bytes()
        for attempt in range(3 if how == "corrupt" else 1):
            damage(target, how, rng)
            outcomes[(target.name, attempt)] = _assert_old_or_refused(settings, good_sig)
            with (
                pytest.raises(ix.IndexError_, match="coach build")
                if outcomes[(target.name, attempt)] == "refused"
                else nullcontext()
            ):
                Coach(settings, embedder=emb, build=False)
            target.write_bytes(backup)  # restore, so each file is tested on its own
        assert chunk_signature(pipeline.load(settings)) == good_sig
    # the data files are always refused; only harmless manifest/CURRENT byte flips may still load identically
    for (name, _), outcome in outcomes.items():
        if name not in (ix.MANIFEST, ix.CURRENT):
            assert outcome == "refused", name
    # and finally: damage, then let Coach repair itself
    damage(build / ix.PASSAGES_FILE, how, rng)
    _assert_repairs(settings, emb, good_sig)


def test_whole_build_or_index_dir_deleted_is_repaired(built):
    settings, emb, loaded = built
    good = chunk_signature(loaded)
    shutil.rmtree(loaded.build_dir)
    with pytest.raises(ix.IndexCorrupt, match="coach build"):
        Coach(settings, embedder=emb, build=False)
    _assert_repairs(settings, emb, good)
    shutil.rmtree(settings.index_dir)
    with pytest.raises(ix.IndexMissing, match="coach build"):
        Coach(settings, embedder=emb, build=False)
    _assert_repairs(settings, emb, good)


@pytest.mark.parametrize(
    "pointer",
    [
        "../../etc",
        "/etc",
        "..",
        ".",
        ".tmp-x",
        "",
        "a/b",
        "a\\b",
        "x\x00y",
        "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
    ],
)
def test_current_pointing_outside_builds_is_refused(built, pointer):
    settings, emb, loaded = built
    (settings.index_dir / ix.CURRENT).write_bytes(pointer.encode("latin-1", "replace") + b"\n")
    with pytest.raises(ix.IndexError_):
        pipeline.load(settings)
    _assert_repairs(settings, emb, chunk_signature(loaded))


def test_current_with_invalid_utf8_is_refused_not_crashing(built):
    settings, emb, loaded = built
    (settings.index_dir / ix.CURRENT).write_bytes(b"\xff\xfe\x80garbage\n")
    with pytest.raises(ix.IndexCorrupt, match="coach build"):
        pipeline.load(settings)
    _assert_repairs(settings, emb, chunk_signature(loaded))


def test_faiss_files_are_only_read_from_our_own_index_dir(built, tmp_path, monkeypatch):
    settings, emb, loaded = built
    build = loaded.build_dir
    reads = []
    real_read = ix.faiss.read_index
    monkeypatch.setattr(ix.faiss, "read_index", lambda path, *a: reads.append(path) or real_read(path, *a))
    pipeline.load(settings)
    own = settings.index_dir.resolve() / ix.BUILDS
    assert reads and all(os.path.realpath(p).startswith(str(own) + os.sep) for p in reads)

    # a build folder that is a symlink to somewhere else is refused, even with identical, hash-valid content
    outside = tmp_path / "outside-build"
    shutil.copytree(build, outside)
    evil = build.parent / "20990101T000000-evil"
    evil.symlink_to(outside, target_is_directory=True)
    (settings.index_dir / ix.CURRENT).write_text(evil.name + "\n", encoding="utf-8")
    reads.clear()
    with pytest.raises(ix.IndexCorrupt):
        pipeline.load(settings)
    assert not reads
    (settings.index_dir / ix.CURRENT).write_text(build.name + "\n", encoding="utf-8")

    # a FAISS file that is a symlink out of the index is refused too (its hash would match)
    copy = tmp_path / "elsewhere.faiss"
    shutil.copy(build / ix.PASSAGES_FILE, copy)
    (build / ix.PASSAGES_FILE).unlink()
    (build / ix.PASSAGES_FILE).symlink_to(copy)
    reads.clear()
    with pytest.raises(ix.IndexCorrupt):
        pipeline.load(settings)
    assert not reads

    # a manifest that lists a path escaping the build folder is refused before anything is read
    (build / ix.PASSAGES_FILE).unlink()
    shutil.copy(copy, build / ix.PASSAGES_FILE)
    m = ix.read_manifest(build)
    escaped = dict(m.files, **{"../../../outside.bin": "0" * 64})
    with pytest.raises(ix.IndexCorrupt):
        ix.verify_files(build, ix.Manifest(**{**m.__dict__, "files": escaped}))


def test_leftover_temp_dirs_and_orphan_builds_are_ignored(built):
    settings, emb, loaded = built
    builds = settings.index_dir / ix.BUILDS
    junk = builds / ".tmp-crashed"
    junk.mkdir()
    (junk / ix.PASSAGES_FILE).write_bytes(b"half a file")
    orphan = builds / "20990101T000000-deadbeef-1"  # renamed into place, but CURRENT never switched
    shutil.copytree(loaded.build_dir, orphan)
    (orphan / ix.CHUNKS_FILE).write_text("{}\n", encoding="utf-8")
    assert pipeline.load(settings).build_dir == loaded.build_dir


def test_rebuilds_in_the_same_second_do_not_collide(built):
    """Build names must be unique even for identical content built twice within one second by one process."""
    settings, emb, loaded = built
    dirs = {pipeline.build(settings, emb).build_dir for _ in range(4)}
    assert len(dirs) == 4
    assert pipeline.load(settings).build_dir in dirs


@pytest.mark.slow  # seconds of work (processes, rebuilds): the full tier only
def test_sigkill_at_random_points_never_serves_a_mix(tmp_path):
    """Kill a looping build 20 times at random moments (including mid-commit); check what is served each time."""
    settings = make_settings(tmp_path)
    rounds = kill_build_rounds(settings, n=20, seed=8)
    bad = [r for r in rounds if r.served.startswith("error") or not r.repaired]
    assert not bad, bad
    # the random delays hit different phases: killed before the first commit (old served) and after it (new)
    served = {r.served for r in rounds}
    assert served == {"old", "new"}, rounds
    # leftovers: at most the current build and its predecessor, plus abandoned temp dirs from kills
    names = [p.name for p in (settings.index_dir / ix.BUILDS).iterdir() if not p.name.startswith(".")]
    assert len(names) <= 3, names
