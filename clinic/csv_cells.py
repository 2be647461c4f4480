"""CSV cells that a spreadsheet cannot run as formulas (CSV/formula injection).

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip before
one of those) is prefixed with a single quote, as OWASP's "CSV Injection" page advises
(https://owasp.org/www-community/attacks/CSV_Injection). Every CSV the app writes goes through here.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def safe_row(values: list[Any]) -> list[str]:
    return [spreadsheet_safe(v) for v in values]
