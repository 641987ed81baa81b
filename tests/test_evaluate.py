"""Evaluation metrics on tiny fixtures with known answers."""

from __future__ import annotations

import json

import pytest

from coach import evaluate as ev
from coach.config import Settings


def test_normalise_simplifies_and_strips_punctuation():
    assert ev.normalise("客戶滿意度, 很 重要!") == "客户满意度很重要"
    assert ev.normalise("1V5 的服務") == "1v5的服务"


def test_first_relevant_rank_and_hits():
    passages = ["甲乙丙", "客户破口大骂了", "在乎所以才会生气"]
    assert ev.first_relevant_rank(passages, ("破口大骂",)) == 2
    assert ev.first_relevant_rank(passages, ("生气", "破口大骂")) == 2
    assert ev.first_relevant_rank(passages, ("不存在",)) is None
    assert ev.hit_at(2, 1) == 0.0 and ev.hit_at(2, 3) == 1.0 and ev.hit_at(None, 5) == 0.0


def test_unreachable_names_questions_no_passage_can_satisfy():
    passages = ["客户破口大骂了", "在乎所以才会生气"]
    heading_only = ev.Case("團隊變大了怎麼管", "zh-Hant", ("小团队靠情大团队靠管",))  # a phrase of a section heading
    fine = ev.Case("客人一直罵", "zh-Hant", ("不存在", "破口大骂"))  # one phrase is enough
    weather = ev.Case("weather", "en", (), True)
    assert ev.unreachable([heading_only, fine, weather], passages) == [heading_only]


def test_reciprocal_rank_and_summary():
    assert ev.reciprocal_rank(1) == 1.0
    assert ev.reciprocal_rank(4) == 0.25
    assert ev.reciprocal_rank(11) == 0.0 and ev.reciprocal_rank(None) == 0.0
    s = ev.summarise([1, 2, None, 4])
    assert s["n"] == 4
    assert s["hit@1"] == 0.25 and s["hit@3"] == 0.5 and s["hit@5"] == 0.75
    assert s["mrr@10"] == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert ev.summarise([])["hit@3"] == 0.0


def test_ood_scores():
    flagged = [True, True, False, False, True]
    truth = [True, False, True, False, False]
    s = ev.ood_scores(flagged, truth)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["false_flag_rate"] == pytest.approx(2 / 3)
    assert ev.ood_scores([False], [False])["precision"] is None


def test_load_cases(tmp_path):
    f = tmp_path / "q.jsonl"
    rows = [
        {"query": "angry caller", "lang": "en", "relevant": ["破口大罵！"], "split": "heldout"},
        {"query": "天气", "lang": "zh", "relevant": [], "out_of_domain": True},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    a, b = ev.load_cases(f)
    assert a.relevant == ("破口大骂",) and a.split == "heldout" and not a.out_of_domain
    assert b.out_of_domain and b.split == "tune"
    f.write_text(json.dumps({"query": "x", "lang": "en", "relevant": []}) + "\n", "utf-8")
    with pytest.raises(ValueError):
        ev.load_cases(f)


class _Hit:
    def __init__(self, cid, text):
        self.chunk = type("C", (), {"id": cid, "text": text})()


class _FakeCoach:
    """Returns a fixed ranking per mode; flags questions containing 'weather'."""

    embedder = None

    def ask(self, query, top_k, diverse, mode):
        from coach.retrieve import Answer

        order = {"a": ["無關", "破口大罵"], "b": ["破口大罵", "無關"]}[mode]
        hits = [_Hit(f"e#{i}", t) for i, t in enumerate(order)]
        return Answer(query, "weather" in query, hits)


def test_run_modes_and_report():
    cases = [ev.Case("angry", "en", ("破口大骂",)), ev.Case("weather", "en", (), True, "heldout")]
    reports = ev._run_modes(_FakeCoach(), cases, ["a", "b"])
    ma, mb = reports[0].metrics(), reports[1].metrics()
    assert ma["by_lang"]["en"]["hit@1"] == 0.0 and ma["by_lang"]["en"]["mrr@10"] == 0.5
    assert mb["by_lang"]["all"]["hit@1"] == 1.0
    assert mb["ood"]["recall"] == 1.0 and mb["ood"]["false_flag_rate"] == 0.0
    table = ev.format_table(reports, None)
    assert "hit@3" in table and "OOD recall" in table
    assert "angry" in ev.format_misses(reports[0], None, k=1)
    assert "angry" not in ev.format_misses(reports[1], None)
    assert json.loads(json.dumps(ev.report_json(reports, [None])))["modes"] == ["a", "b"]


def test_run_cli_split_modes_and_no_misses(tmp_path, monkeypatch, capsys):
    import argparse

    from coach import retrieve as rt

    class AnyModeCoach(_FakeCoach):
        def __init__(self, *a, **kw):
            pass

        def ask(self, query, top_k=3, diverse=True, mode="full"):
            return super().ask(query, top_k, diverse, "b" if mode == "full" else "a")

    AnyModeCoach.index = type("I", (), {"chunks": [type("C", (), {"text": "客戶破口大罵"})()]})()
    monkeypatch.setattr(rt, "Coach", AnyModeCoach)
    f = tmp_path / "q.jsonl"
    rows = [
        {"query": "angry tune", "lang": "en", "relevant": ["破口大骂"], "split": "tune"},
        {"query": "team grew", "lang": "en", "relevant": ["大团队靠管"], "split": "tune"},
        {"query": "angry secret", "lang": "en", "relevant": ["破口大骂"], "split": "heldout2"},
        {"query": "weather", "lang": "en", "relevant": [], "out_of_domain": True, "split": "heldout2"},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")

    def run(json_out=False, split=None, modes=None, no_misses=False):
        args = argparse.Namespace(
            queries_file=f,
            json=json_out,
            split=split,
            modes=modes,
            no_misses=no_misses,
            leave_one_essay_out=False,
            with_essays=None,
        )
        rc = ev.run_cli(args, None)
        out = capsys.readouterr()
        return rc, out.out, out.err

    rc, text, _ = run(modes="dense")  # misses of the last mode listed, every split in the table
    assert rc == 0 and "split: heldout2" in text and "misses" in text
    assert "note: 1 in-domain question(s) have no relevant passage" in text
    rc, text, _ = run(split="tune", modes="dense,full")
    assert rc == 0 and "2 questions" in text and "angry secret" not in text and "heldout2" not in text
    assert " dense " in text and "  hybrid " not in text
    rc, text, _ = run(modes="dense", no_misses=True)
    assert rc == 0 and "split: heldout2" in text and "angry secret" not in text and "misses" not in text
    rc, text, _ = run(json_out=True, modes="full", no_misses=True)
    out = json.loads(text)
    assert rc == 0 and "misses" not in out and set(out["results"]) == {"all", "tune", "heldout2"}
    rc, _, err = run(split="nope")
    assert rc == 2 and "heldout2, tune" in err
    rc, _, err = run(modes="full,turbo")
    assert rc == 2 and "turbo" in err


def test_evaluation_builds_read_their_corpus_copy_alone(tmp_path):
    """Essays added in the app and learned descriptions (var/) never reach an evaluation corpus or a left-out fold."""
    uploads, learned = tmp_path / "uploads", tmp_path / "learned.toml"
    uploads.mkdir()
    learned.write_text("", "utf-8")
    live = Settings().with_overrides(upload_dir=uploads, learned_file=learned)
    s = ev.isolated(live, tmp_path / "work" / "corpus-x", tmp_path / "work" / "index-x")
    assert s.corpus_dir == tmp_path / "work" / "corpus-x" and s.index_dir == tmp_path / "work" / "index-x"
    assert not s.upload_dir.exists() and not s.learned_file.exists()
