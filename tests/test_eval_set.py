"""The evaluation set itself: well-formed, every relevant phrase really occurs, every essay covered."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import json

import pytest

from coach import evaluate as ev
from coach.config import Settings

EVAL_FILE = Path(__file__).resolve().parent.parent / "eval" / "queries.jsonl"
# `tune` is tuned on. `heldout2` was written after `heldout` had been inspected per query (so `heldout` is no
# longer clean); after being reported twice, `heldout2` became tuning data too. `heldout3` is the fresh untouched
# batch, written before the changes it is reported for. `heldout4` was written by a separate helper from the essays
# alone, without seeing situations.toml, the glossary, themes or any results; reported once, then its misses
# were read and it became tuning data. `heldout5` and `heldout6` were written the same way (more traditional
# Chinese, more near-domain out-of-domain questions), each before the changes it was first reported for; heldout5
# was reported once, then read and tuned on. heldout6 was likewise reported once, then read and tuned on.
# `heldout7` was written by a separate helper from the cleaned essays alone (14 per essay, 5 near-domain
# out-of-domain questions), and committed before the changes it is reported for. `heldout8` was written by a
# separate helper from the cleaned essays alone, before heldout7 was first reported, as the next fresh batch.
# heldout7 was reported once, then read and tuned on, and joined the tuning data. heldout8 was reported once, at
# the end of the 2026-11-29 evening work. `heldout9` was written by a separate helper from the cleaned essays
# alone (14 per essay), with more near-domain out-of-domain questions (10 of 20). heldout8 and heldout9 were each
# reported once and then read, and joined the tuning data. `heldout10` was written by a separate helper from the
# cleaned essays alone (15 per essay), with more near-domain out-of-domain questions (14 of 24). heldout10 was
# reported once and then read, and joined the tuning data. `heldout11` was written by a separate helper from the
# cleaned essays alone (15 per essay), weighted toward traditional Chinese (35 of 75 in-domain); it was reported
# once, then read after heldout12 was written, and joined the tuning data. `heldout12` was written by a separate
# helper from the cleaned essays alone (17 per essay), weighted toward traditional Chinese (45 of 85 in-domain);
# it was reported once, then read and tuned on, and joined the tuning data. `heldout13` was written by a separate
# helper from the cleaned essays alone (18 per essay), weighted toward traditional Chinese (50 of 90 in-domain).
# `heldout14` was written by a separate helper from the cleaned essays alone (18 per essay), weighted toward
# traditional Chinese (50 of 90 in-domain), after the last retrieval change. heldout13 and heldout14 were each
# reported once on the final code and then read, and joined the tuning data. `heldout15` and `heldout16` were
# written by two more separate helpers from the cleaned essays alone (18 per essay, 50 of 90 in-domain traditional
# Chinese; phrases checked against passage text, not headings), and committed before the changes they are
# reported for; each was reported once (on 27306a7), then read, and joined the tuning data. `heldout17` and
# `heldout18` were written the same way by two more helpers, with more simplified Chinese (35 zh, 40 zh-Hant of 90
# in-domain), and committed before the changes they are reported for. One heldout18 out-of-domain question
# repeated a heldout7 one word for word and was dropped before any run. `heldout19` (90 in-domain: 15 en, 35 zh,
# 40 zh-Hant; 18 per essay) was written the same way by another helper before the every-essay search change
# (issue 16); three of its 20 out-of-domain questions repeated earlier ones word for word and were dropped.
# `heldout20` (90 + 20 as written: 15 en, 35 zh, 40 zh-Hant; 18 per essay) was written the same way by another
# helper after the every-essay search change and before the cross-script abstention; one simplified question
# repeated an earlier one word for word and was dropped before any run. `heldout21` (90 + 20 as written, same make-up)
# was written the same way by another helper after the cross-script abstention; two of its out-of-domain questions
# repeated earlier ones word for word and were dropped before any run. `heldout22` (90 + 20 as written, same make-up)
# was written the same way by another helper before the English keyword weight was reported; one out-of-domain
# question repeated an earlier one word for word and was dropped before any run. `heldout23` (90 + 20 as written, same
# make-up) was written the same way by another helper before the changes it is reported for; one out-of-domain
# question repeated an earlier one word for word and was dropped before any run. `heldout24` (90 + 20, same make-up)
# was written the same way by another helper before the changes it is reported for.
TUNING_SPLITS = (
    "tune",
    "heldout2",
    "heldout4",
    "heldout5",
    "heldout6",
    "heldout7",
    "heldout8",
    "heldout9",
    "heldout10",
    "heldout11",
    "heldout12",
    "heldout13",
    "heldout14",
    "heldout15",
    "heldout16",
)
HELDOUT_SPLITS = (
    "heldout",
    "heldout3",
    "heldout17",
    "heldout18",
    "heldout19",
    "heldout20",
    "heldout21",
    "heldout22",
    "heldout23",
    "heldout24",
)
# every split is either tuning data or held out
SPLITS = TUNING_SPLITS + HELDOUT_SPLITS
# Batch sizes as written: (in-domain, out-of-domain) at least.
MIN_SIZES = {
    "heldout2": (30, 1),
    "heldout3": (36, 6),
    "heldout4": (45, 8),
    "heldout5": (50, 12),
    "heldout6": (50, 12),
    "heldout7": (70, 14),
    "heldout8": (70, 14),
    "heldout9": (70, 20),
    "heldout10": (75, 24),
    "heldout11": (75, 16),
    "heldout12": (85, 20),
    "heldout13": (90, 20),
    "heldout14": (90, 20),
    "heldout15": (90, 20),
    "heldout16": (90, 20),
    "heldout17": (90, 20),
    "heldout18": (90, 19),
    "heldout19": (90, 17),
    "heldout20": (89, 20),
    "heldout21": (90, 18),
    "heldout22": (90, 19),
    "heldout23": (90, 19),
    "heldout24": (90, 20),
}


@pytest.fixture(scope="module")
def cases():
    return ev.load_cases(EVAL_FILE)


@pytest.fixture(scope="module")
def essays():
    from coach.corpus import load_corpus

    loaded = load_corpus(Settings().corpus_dir)
    return {e.meta.id: ev.normalise(e.text) for e in loaded.essays}


def test_counts_per_language_and_split(cases):
    inside = [c for c in cases if not c.out_of_domain]
    assert len(inside) >= 60 and sum(c.out_of_domain for c in cases) >= 10
    counts = Counter((c.lang, c.split) for c in inside)
    for lang in ev.LANGS:
        for split in SPLITS:
            assert counts[(lang, split)] >= 8, (lang, split, counts)
    held = sum(c.split in HELDOUT_SPLITS for c in inside) / len(inside)
    # 0.2, not 0.3: the clean batches are used once and then join the tuning data (with heldout8 and heldout9
    # moved to tuning, the held-out share was 168/640 = 0.26; with heldout10 moved and heldout11 added, 168/715 =
    # 0.23; with heldout11 moved and heldout12 added, 178/800 = 0.22; with heldout12 moved and heldout13 added,
    # 183/890 = 0.21; with heldout15 and heldout16 moved and heldout17 and heldout18 added, 273/1340 = 0.20).
    assert 0.2 <= held <= 0.6
    for split, (in_domain, out_of_domain) in MIN_SIZES.items():
        assert sum(c.split == split for c in inside) >= in_domain, split
        assert sum(c.split == split and c.out_of_domain for c in cases) >= out_of_domain, split
    assert {c.split for c in cases} == set(SPLITS)
    for split in SPLITS:
        assert any(c.out_of_domain and c.split == split for c in cases), split
    assert len({c.query for c in cases}) == len(cases), "duplicate questions"


def test_every_relevant_phrase_occurs_in_the_cleaned_corpus(cases, essays):
    missing = [(c.query, p) for c in cases for p in c.relevant if not any(p in t for t in essays.values())]
    assert not missing


def test_every_essay_is_covered_in_both_splits(cases, essays):
    for split in SPLITS:
        covered = Counter(
            eid for c in cases if c.split == split for eid, t in essays.items() if any(p in t for p in c.relevant)
        )
        assert set(covered) == set(essays), (split, covered)
        assert min(covered.values()) >= 5


# Written into heldout12 and heldout14 by their helpers and found only after those batches had been reported: their
# one phrase is the section heading 關于管理,小團隊靠情,大團隊靠管, which the chunker keeps out of passage text
# (it is shown on the card), so no passage can count as relevant. Kept as written, so the reported figures stand;
# `coach eval` names such questions. A new one fails here: give it a phrase of a passage's text.
KNOWN_UNREACHABLE = {
    "團隊一下子從十幾個人變成五十幾個，管理方式要跟著改嗎",
    "團隊從十幾人擴到五十幾人，帶人的方式要不要改？",
}


def test_every_question_has_a_passage_that_can_be_relevant(cases):
    from coach.chunk import chunk_essay
    from coach.corpus import load_corpus

    loaded = load_corpus(Settings().corpus_dir)
    passages = [ev.normalise(c.text) for e in loaded.essays for c in chunk_essay(e, Settings().chunk)]
    assert {c.query for c in ev.unreachable(cases, passages)} == KNOWN_UNREACHABLE


FRESH_FOLDERS = ("fresh_essays", "fresh_essays2", "fresh_essays3", "fresh_essays4", "fresh_essays5")


@pytest.mark.parametrize("folder", FRESH_FOLDERS)
def test_fresh_essays_questions_point_into_their_own_essay_only(folder):
    """Each fresh question's phrases occur in its own essay and in no other (seed or fresh): a hit is unambiguous."""
    import tomllib

    from coach.corpus import load_corpus

    root = EVAL_FILE.parent
    texts = {e.meta.id: ev.normalise(e.text) for e in load_corpus(Settings().corpus_dir).essays}
    for other in FRESH_FOLDERS:
        for path in (root / other).glob("*.txt"):
            texts[path.stem] = ev.normalise(path.read_text("utf-8"))
    meta = tomllib.loads((root / folder / "essays.toml").read_text("utf-8"))["essay"]
    assert {m["id"] for m in meta} == {p.stem for p in (root / folder).glob("*.txt")}
    rows = [json.loads(line) for line in (root / folder / "queries.jsonl").read_text("utf-8").splitlines() if line]
    assert len(rows) >= 42 and {r["lang"] for r in rows} == set(ev.LANGS)
    for r in rows:
        for phrase in r["relevant"]:
            p = ev.normalise(phrase)
            assert [eid for eid, t in texts.items() if p in t] == [r["essay"]], (r["query"], phrase)
