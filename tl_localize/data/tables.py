"""Checks shared by every loader of tables: missing values, texts that show nothing.

A value is *missing* when it is absent (NaN, None, an empty field), when a text holds only
invisible characters (white space, zero-width and other format characters, control
characters, blank fillers), or when a number is not a finite number (``inf``, ``n/a``). A
loader refuses such rows with one :class:`LocalizeError` that names the file, the column
and the first offending rows; where dropping them is a reasonable choice it takes
``dropna=True`` and says, in a warning, how many rows it dropped.

Rows are counted from 1: a row of a CSV file is its *data row* (the header not counted), a
row of a DataFrame its position, a row of a JSON-lines file its line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "blank_text",
    "describe_rows",
    "missing_numbers",
    "missing_texts",
    "visible",
]

# Unicode categories that draw nothing: format (zero-width space, joiners, BOM, soft
# hyphen), control (tab, newline, NUL), space, line and paragraph separators.
INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})
# Letters and symbols that render blank: Hangul fillers, the braille blank.
BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
SHOWN_ROWS = 5


def visible(text: str) -> str:
    """``text`` without its invisible characters (what a reader sees of it).

    >>> visible("\\u200b \\ufeff\\t")
    ''
    >>> visible("a\\u200bb c")
    'abc'
    """
    return "".join(
        char
        for char in text
        if unicodedata.category(char) not in INVISIBLE_CATEGORIES and char not in BLANK_GLYPHS
    )


def _shows(text: str) -> bool:
    """Whether ``text`` has a visible character (stops at the first, usually the first)."""
    if text[:1].isalnum():  # the common case, without a look at each character
        return True
    return any(
        unicodedata.category(char) not in INVISIBLE_CATEGORIES and char not in BLANK_GLYPHS
        for char in text
    )


def blank_text(value: Any) -> bool:
    """Whether ``value`` is a text that shows nothing (empty, or only invisible
    characters); values that are not text are not blank (see :func:`missing_texts`)."""
    return isinstance(value, str) and not _shows(value)


def missing_texts(values: Sequence[Any] | pd.Series) -> np.ndarray:
    """A boolean mask of the values that are not texts (NaN, None, numbers) or show
    nothing."""
    return np.array([not isinstance(v, str) or not _shows(v) for v in values], dtype=bool)


def missing_numbers(values: pd.Series) -> np.ndarray:
    """A boolean mask of the values that are not finite numbers (NaN, None, empty, text
    such as ``n/a``, ``inf``)."""
    numbers = pd.to_numeric(values, errors="coerce")
    return ~np.isfinite(np.asarray(numbers, dtype=float))


def describe_rows(bad: np.ndarray, noun: str = "row", numbers: Sequence[int] | None = None) -> str:
    """The first offending rows of a mask, counted from 1 (or named by ``numbers``, such as
    line numbers): ``"data rows 2, 5 (2 in all)"``."""
    positions = np.flatnonzero(bad)
    labels = [int(numbers[int(p)]) if numbers is not None else int(p) + 1 for p in positions]
    shown = ", ".join(str(n) for n in labels[:SHOWN_ROWS])
    more = f", ... ({len(labels)} in all)" if len(labels) > SHOWN_ROWS else ""
    return f"{noun}{'s' if len(labels) > 1 else ''} {shown}{more}"
