"""Fine-tuning on the situation descriptions (coach/tune.py): pure parts on tiny inputs, and one real training run
on a tiny fixture with the bundled model (slow): it changes the vectors, is cached, and goes stale when a
description changes."""

from __future__ import annotations

import json
import random

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
