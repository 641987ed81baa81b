"""Files Coach writes for people to open in other programs: CSV safe to open in a spreadsheet.

A trainer opens the content-gaps export in Excel or LibreOffice, and its cells are questions anyone could type. A
cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is read there as a formula (`=cmd|' /C calc'!A0`
once started programs), so such a cell gets a leading apostrophe, which spreadsheets show as text and hide
(OWASP, "CSV Injection"). Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """`value` with a leading apostrophe when it is text a spreadsheet would run as a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Iterable, rows: Iterable[Iterable]) -> str:
    """A CSV document (header, then rows) with every text cell passed through `spreadsheet_safe`."""
    buf = io.StringIO()
    w = csv.writer(buf)
    for row in (header, *rows):
        w.writerow([spreadsheet_safe(c) for c in row])
    return buf.getvalue()
