"""Issue 19, item 4: every CSV export neutralises spreadsheet formulas (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

import pytest

from coach import ui
from coach.embed import FakeEmbedder
from coach.export import csv_text, spreadsheet_safe
from coach.feedback import FeedbackStore, normalise_question
from coach.retrieve import Coach
from ui_support import tiny_settings

HOSTILE = ["=cmd|' /C calc'!A0 客户", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x")']
HARMLESS = ["客户骂我怎么办", "how do I handle an angry caller", "客戶=老闆?", " =not at the start", "'quoted", ""]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_cells_get_a_leading_apostrophe(value):
    assert spreadsheet_safe(value) == "'" + value


@pytest.mark.parametrize("value", HARMLESS + [3, 2.5, None])
def test_other_cells_are_unchanged(value):
    assert spreadsheet_safe(value) == value


def test_csv_text_round_trips_with_every_cell_neutralised():
    rows = [[q, "en", 3, "2026-12-06"] for q in HOSTILE + HARMLESS]
    back = list(csv.reader(io.StringIO(csv_text(["query", "lang", "times_asked", "last_asked"], rows), newline="")))
    assert back[0] == ["query", "lang", "times_asked", "last_asked"]
    for (q, *_), (cell, lang, times, _last) in zip(rows, back[1:]):
        assert cell == spreadsheet_safe(q) and lang == "en" and times == "3"
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_content_gaps_export_neutralises_formulas(tmp_path):
    coach = Coach(tiny_settings(tmp_path / "tiny"), embedder=FakeEmbedder())
    store = FeedbackStore(tmp_path / "fb.sqlite3")
    app = ui.CoachApp(
        ui.CoachHolder(coach=coach), store, coach.settings, upload_dir=tmp_path / "uploads", live_dir=tmp_path / "live"
    )
    for q in HOSTILE + HARMLESS[:2]:
        store.record_question(q, lang="en", out_of_domain=True)
    text = app.export_gaps(tmp_path).read_bytes().decode("utf-8")  # no newline translation: "\r" stays
    cells = [row[0] for row in csv.reader(io.StringIO(text, newline=""))][1:]
    # gaps are counted under their normalised form ("\t=1+1" and "\r=1+1" are one gap, asked twice)
    assert sorted(cells) == sorted({spreadsheet_safe(normalise_question(q)) for q in HOSTILE + HARMLESS[:2]})
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
