"""Issue 17: a trainer's "this answers that" (learned descriptions): stored under var/ (never corpus/), joining the
next build (description rankers, training pairs), listed by `coach corpus`, exportable as situations.toml entries;
detaching reverses it."""

from __future__ import annotations

import tomllib

import pytest

from coach import cli, learned, ui
from coach.corpus import load_corpus
from coach.embed import FakeEmbedder
from coach.feedback import FeedbackStore
from coach.pipeline import anchor_sentence, situation_records
from coach.retrieve import Coach
from coach.tune import training_pairs
from ui_support import tiny_settings

QUESTION = "客人情绪失控一直吼叫,我该怎么接话?"
PARAPHRASE = "客人情绪失控,一直对我吼叫,我该怎么接话"


@pytest.fixture
def app(tmp_path):
    settings = tiny_settings(tmp_path).with_overrides(learned_file=tmp_path / "var" / "learned_situations.toml")
    coach = Coach(settings, embedder=FakeEmbedder())
    return ui.CoachApp(ui.CoachHolder(coach=coach), FeedbackStore(tmp_path / "fb.sqlite3"), settings)


def _target(app) -> str:
    """An undescribed passage that is not already the first answer to QUESTION: the angry caller's advice."""
    coach = app.holder.get()
    first = coach.ask(QUESTION, top_k=3).results[0].chunk.id
    target = next(c.id for c in coach.index.chunks if c.essay_id == "angry-caller" and c.id != first)
    assert not coach.index.situation_texts  # nobody described anything in the tiny corpus
    return target


def test_attaching_makes_the_passage_the_first_answer_and_detaching_reverses_it(app, tmp_path):
    target = _target(app)
    before = {q: app.holder.get().ask(q, top_k=3).results[0].chunk.id for q in (QUESTION, PARAPHRASE)}
    assert target not in before.values()

    ok, message = app.attach(QUESTION, target)
    assert ok and "rebuild" in message
    assert app.attach(QUESTION, target)[1].startswith("already attached")  # not twice
    assert app.holder.get().ask(QUESTION, top_k=3).results[0].chunk.id != target  # not before the rebuild
    assert "index ready" in app.rebuild()
    coach = app.holder.get()
    for q in (QUESTION, PARAPHRASE):
        answer = coach.ask(q, top_k=3)
        assert not answer.out_of_domain and answer.results[0].chunk.id == target, q
    assert coach.index.manifest.counts["learned_situations"] == 1

    ok, message = app.detach(QUESTION, target)
    assert ok and "rebuild" in message
    app.rebuild()
    after = {q: app.holder.get().ask(q, top_k=3).results[0].chunk.id for q in (QUESTION, PARAPHRASE)}
    assert after == before and app.holder.get().index.manifest.counts["learned_situations"] == 0
    assert not app.detach(QUESTION, target)[0]  # nothing left to detach


def test_learned_descriptions_live_under_var_join_training_and_are_listed_and_exported(
    app, tmp_path, capsys, monkeypatch
):
    target = _target(app)
    corpus_before = {p.name: p.read_bytes() for p in app.settings.corpus_dir.iterdir()}
    app.attach(QUESTION, target)
    app.attach("the caller keeps shouting at me", target)
    assert {p.name: p.read_bytes() for p in app.settings.corpus_dir.iterdir()} == corpus_before  # corpus/ untouched
    items = learned.load_learned(app.settings.learned_file)
    assert [(i.field, i.passage) for i in items] == [("zh", target), ("en", target)]

    # the next build's records and training pairs include them, marked as learned
    essays = load_corpus(app.settings.corpus_dir).essays
    chunks = [c for c in app.holder.get().index.chunks]
    records, warnings = situation_records(app.settings.corpus_dir, essays, chunks, items)
    assert warnings == [] and all(r["learned"] and target in r["chunks"] for r in records)
    by_id = {c.id: c for c in chunks}
    assert {p.query for p in training_pairs(records, lambda r: anchor_sentence(r, by_id))} == {
        QUESTION,
        "the caller keeps shouting at me",
    }

    # exported as situations.toml entries (same schema, a comment asks for the other language)
    exported = app.export_learned(tmp_path)
    data = tomllib.loads(exported.read_text("utf-8"))
    assert [(e["essay"], e.get("zh"), e.get("en")) for e in data["situation"]] == [
        ("angry-caller", QUESTION, None),
        ("angry-caller", None, "the caller keeps shouting at me"),
    ]
    assert all(e["anchor"] in app.holder.get().index.essays["angry-caller"].text for e in data["situation"])

    # `coach corpus` lists them beside the editors' ones
    monkeypatch.setenv("COACH_LEARNED_FILE", str(app.settings.learned_file))
    code = cli.main(["--corpus", str(app.settings.corpus_dir), "--index", str(app.settings.index_dir), "corpus"])
    out = capsys.readouterr().out
    assert code == 0 and "2 learned from trainers" in out and f"learned: {target} ← zh “{QUESTION}”" in out


def test_a_broken_learned_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "learned_situations.toml"
    path.write_text('[[situation]]\nessay = "a"\nanchor = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="learned_situations.toml: situation #1 needs"):
        learned.load_learned(path)


@pytest.mark.parametrize(
    "question, field",
    [("how do I calm an angry caller", "en"), ("客户骂人怎么办", "zh"), ("客戶一直罵人怎麼辦", "zh_hant")],
)
def test_a_question_goes_in_the_field_of_its_language(question, field):
    assert learned.language_field(question) == field


@pytest.mark.parametrize(
    "question, field",
    [("my customer 一直骂我", "zh"), ("客戶 keeps yelling at me", "zh_hant"), ("VIP caller", "en"), ("?", "en")],
)
def test_mixed_questions_go_where_their_feedback_is_recorded(question, field):
    """The same rule as the feedback's language (advice.detect_lang): a Chinese character makes a question Chinese."""
    from coach.advice import detect_lang

    assert learned.language_field(question) == field
    assert detect_lang(question) == {"en": "en", "zh": "zh", "zh_hant": "zh-Hant"}[field]
