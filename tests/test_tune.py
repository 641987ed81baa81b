"""Fine-tuning on the situation descriptions (coach/tune.py): pure parts on tiny inputs, and one real training run
on a tiny fixture with the bundled model (slow): it changes the vectors, is cached, and goes stale when a
description changes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from coach import index as ix
from coach import tune
from coach.config import Settings


def test_batches_never_repeat_a_target_and_cover_every_pair():
    targets = ["甲", "乙", "甲", "丙", "甲", "乙"]
    batches = tune.batches(targets, 2, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(len(targets)))
    for b in batches:
        assert len({targets[i] for i in b}) == len(b) <= 2


def test_training_pairs_search_traditional_descriptions_in_simplified_form():
    records = [
        {"text": "客戶一直罵人", "lang": "zh-Hant", "anchor": "x"},
        {"text": "angry caller", "lang": "en", "anchor": "y"},
        {"text": "无处可去", "lang": "zh", "anchor": "z"},
    ]
    pairs = tune.training_pairs(records, lambda r: None if r["anchor"] == "z" else f"句子{r['anchor']}")
    assert pairs == [tune.Pair("客户一直骂人", "句子x"), tune.Pair("angry caller", "句子y")]


def test_tuning_key_follows_base_pairs_and_settings():
    pairs = [tune.Pair("客户骂人", "先让他说完")]
    key = tune.tuning_key("base", pairs, tune.TuneSettings())
    assert key == tune.tuning_key("base", list(pairs), tune.TuneSettings())
    assert key != tune.tuning_key("other", pairs, tune.TuneSettings())
    assert key != tune.tuning_key("base", [tune.Pair("客户骂人!", "先让他说完")], tune.TuneSettings())
    assert key != tune.tuning_key("base", pairs, tune.TuneSettings(epochs=2))


def test_a_half_written_folder_is_not_a_tuned_model(tmp_path):
    assert not tune.is_tuned_folder(tmp_path)
    (tmp_path / tune.TUNING_FILE).write_text("{not json", "utf-8")
    assert not tune.is_tuned_folder(tmp_path)
    (tmp_path / tune.TUNING_FILE).write_text(json.dumps({"key": "abc"}), "utf-8")
    assert tune.is_tuned_folder(tmp_path, "abc") and not tune.is_tuned_folder(tmp_path, "def")


ESSAYS = {
    "angry.txt": "遇到愤怒的客户\n客户在电话里破口大骂,我先让他把话说完。然后我会复述他的问题,表示理解。\n",
    "rules.txt": "紅線不能碰\n客戶要求我幫他破解密碼,我拒絕了。有些規定看似死板,其實是保護。\n",
    "elder.txt": "老人家打电话\n老人家听不清楚,我放慢语速,一句一句确认地址。耐心是最好的服务。\n",
}
SITUATIONS = """
[[situation]]
essay = "angry"
anchor = "破口大骂"
en = "A caller is shouting and swearing at me on the phone"
zh = "客户在电话里骂人怎么办"

[[situation]]
essay = "rules"
anchor = "破解密碼"
en = "A customer asks me to break a rule for him"
zh = "客户要我违反规定帮他"
zh_hant = "客人要我幫他破解密碼"
"""


@pytest.mark.slow
def test_training_changes_vectors_is_cached_and_goes_stale(tmp_path, real_embedder, monkeypatch):
    from coach.retrieve import Coach

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in ESSAYS.items():
        (corpus / name).write_text(text, "utf-8")
    (corpus / "situations.toml").write_text(SITUATIONS, "utf-8")
    settings = Settings(
        corpus_dir=corpus,
        index_dir=tmp_path / "index",
        tuned_cache_dir=tmp_path / "tuned",
        tuning=tune.TuneSettings(batch_size=4, learning_rate=1e-4),
    )
    coach = Coach(settings, embedder=real_embedder)
    tuning = coach.index.manifest.tuning
    assert tuning and tuning["pairs"] == 5 and tune.is_tuned_folder(tmp_path / "tuned" / f"tuned-{tuning['key']}")
    assert coach.embedder is not real_embedder and coach.embedder.fingerprint == tuning["fingerprint"]
    # the index's vectors come from the tuned model, not the base one
    passage = coach.index.chunks[0]
    stored = coach.index.vectors.index.reconstruct(0)
    base = real_embedder.encode_passages([f"{coach.index.essays[passage.essay_id].meta.title}\n{passage.text}"])[0]
    assert float(stored @ base) < 0.9999
    # an elderly caller's essay nobody described is still found
    assert coach.ask("老人家听不清楚怎么办", top_k=1, diverse=False).results[0].chunk.essay_id == "elder"

    # cached: a second build trains nothing
    monkeypatch.setattr(tune, "train", lambda *a, **k: pytest.fail("trained again"))
    again = Coach(settings.with_overrides(index_dir=tmp_path / "index2"), embedder=real_embedder)
    assert again.index.manifest.tuning["key"] == tuning["key"]
    monkeypatch.undo()

    # a changed description makes the index stale, and the rebuild trains a new model
    (corpus / "situations.toml").write_text(SITUATIONS.replace("shouting and swearing", "yelling"), "utf-8")
    with pytest.raises(ix.IndexStale, match="situations.toml"):
        Coach(settings, embedder=real_embedder, build=False)
    rebuilt = Coach(settings, embedder=real_embedder)
    assert rebuilt.index.manifest.tuning["key"] != tuning["key"]

    # tuning off: the base model serves, and the switch itself makes the index stale
    off = settings.with_overrides(tune=False)
    with pytest.raises(ix.IndexStale, match="tuning"):
        Coach(off, embedder=real_embedder, build=False)
    plain = Coach(off, embedder=real_embedder)
    assert plain.index.manifest.tuning is None and plain.embedder is real_embedder
    np.testing.assert_allclose(plain.index.vectors.index.reconstruct(0), base, atol=1e-5)


def _fake_tuned(cache: Path, key: str, age_s: float) -> Path:
    import os
    import time

    folder = cache / f"tuned-{key}"
    folder.mkdir(parents=True)
    info = folder / tune.TUNING_FILE
    info.write_text(json.dumps({"key": key}), "utf-8")
    when = time.time() - age_s
    os.utime(info, (when, when))
    return folder


def test_pruning_keeps_what_an_index_names_and_the_most_recently_used(tmp_path):
    import os
    import time

    cache = tmp_path / "tuned"
    folders = [_fake_tuned(cache, f"k{i}", age_s=100 * i) for i in range(6)]  # k0 newest ... k5 oldest
    named = folders[5]  # the oldest, but an index still serves it
    abandoned = cache / ".tmp-tuned-abc"
    abandoned.mkdir()
    os.utime(abandoned, (time.time() - 7200,) * 2)
    training = cache / ".tmp-tuned-now"  # a training in progress elsewhere
    training.mkdir()
    other = cache / "notes"  # not a tuned model: never touched
    other.mkdir()
    removed = tune.prune_tuned(cache, keep={named}, keep_count=2)
    assert sorted(p.name for p in removed) == [".tmp-tuned-abc", "tuned-k2", "tuned-k3", "tuned-k4"]
    assert sorted(p.name for p in cache.iterdir()) == [".tmp-tuned-now", "notes", "tuned-k0", "tuned-k1", "tuned-k5"]
    assert tune.prune_tuned(tmp_path / "missing", keep=set(), keep_count=2) == []
    assert tune._mtime(tmp_path / "removed meanwhile by another build") == 0.0


def test_a_cached_model_counts_as_used_when_a_build_takes_it(tmp_path):
    cache = tmp_path / "tuned"
    pairs = [tune.Pair("客户骂人", "先让他说完")]
    settings = tune.TuneSettings()
    key = tune.tuning_key("base", pairs, settings)
    folder = _fake_tuned(cache, key, age_s=10_000)
    before = tune._last_used(folder)
    info = (folder / tune.TUNING_FILE).stat().st_mtime_ns
    assert tune.ensure_tuned(tmp_path, "base", "base", pairs, settings, cache) == folder
    assert tune._last_used(folder) > before
    # the model's own files are untouched: its identity and its ONNX export stay valid
    assert (folder / tune.TUNING_FILE).stat().st_mtime_ns == info


def test_the_models_in_use_are_those_the_kept_builds_name(tmp_path):
    from coach import pipeline

    builds = tmp_path / "index" / ix.BUILDS
    for name, tuning in [("b1", {"path": "/cache/tuned-a"}), ("b2", None), ("b3", {"path": "/cache/tuned-b"})]:
        (builds / name).mkdir(parents=True)
        (builds / name / ix.MANIFEST).write_text(json.dumps({"tuning": tuning}), "utf-8")
    (builds / "broken").mkdir()
    (builds / "broken" / ix.MANIFEST).write_text("{not json", "utf-8")
    assert pipeline.tuned_models_in_use(tmp_path / "index") == {Path("/cache/tuned-a"), Path("/cache/tuned-b")}
    assert pipeline.tuned_models_in_use(tmp_path / "nowhere") == set()
