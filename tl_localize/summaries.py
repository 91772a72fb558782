"""The shared words of the findings: numbers, intervals, p-values, control kinds.

Each result type states its own finding in ``summary()`` (one or two sentences with the
numbers, including the inconvenient part: an effect that is not specific against
magnitude-matched controls is said to be so); this module knows no result type, only the
phrases they share.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .cards import layer_ranges

__all__ = [
    "MATCH_WORDS",
    "VERBS",
    "adjustment_sentence",
    "blocked_sentence",
    "change_words",
    "describe",
    "interval",
    "layer_ranges",
    "p_words",
    "pct",
]

VERBS = {"zero": "Zeroing", "mean": "Mean-ablating", "resample": "Resample-ablating"}
ADJUST_WORDS = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}
MATCH_WORDS = {
    "uniform": "uniform random sets",
    "layer": "layer-matched random sets",
    "magnitude": "magnitude-matched random sets",
    "least_active": "random sets of the least active units",
}


def pct(value: float) -> str:
    """An absolute percentage, ``12.3%`` (``n/a`` for a missing value)."""
    return "n/a" if value is None or math.isnan(value) else f"{abs(value):.1f}%"


def interval(low: float, high: float, digits: int = 1) -> str:
    """`` [low, high]``, or nothing when either end is missing."""
    if math.isnan(low) or math.isnan(high):
        return ""
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def p_words(p: float) -> str:
    """``p 0.012``, ``p < 0.001`` or ``p n/a``."""
    if math.isnan(p):
        return "p n/a"
    return f"p {p:.2g}" if p >= 0.001 else "p < 0.001"


def change_words(change: float, low: float, high: float) -> str:
    """``lowers CHANGES by 31.1% [23.6, 38.0]`` when the interval lies on one side of zero,
    else ``changes CHANGES by -2.0% [-5.0, 1.0]`` (signed)."""
    if not math.isnan(low) and not math.isnan(high) and (high < 0 or low > 0):
        word = "lowers" if change < 0 else "raises"
        a, b = sorted((abs(low), abs(high)))
        return f"{word} CHANGES by {abs(change):.1f}% [{a:.1f}, {b:.1f}]"
    if math.isnan(low) or math.isnan(high):
        word = "lowers" if change < 0 else "raises"
        return f"{word} CHANGES by {abs(change):.1f}%"
    return f"changes CHANGES by {change:+.1f}%{interval(low, high)}"


def blocked_sentence(state: Any) -> str:
    """Why no effect is claimed for a task at chance or at ceiling (a row of
    :func:`tl_localize.compare.task_states`)."""
    if state.state == "at ceiling":
        return (
            f"{state.task} is at ceiling: every set, intact and ablated, scores 100% "
            f"{state.metric}, so there is no effect to compare."
        )
    level = f"chance {state.chance:.1%}" if state.chance > 0 else "its floor, 0%"
    return (
        f"{state.task} is at chance for the intact model ({state.metric} {state.value:.1%}"
        f"{percent_interval(state.value_low, state.value_high)}; {level}): there is nothing "
        "for an ablation to break, so no effect is claimed (the numbers are in the table)."
    )


def percent_interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return ""
    return f" [{low:.1%}, {high:.1%}]"


def adjustment_sentence(verdicts: pd.DataFrame, method: str) -> str:
    """How many comparisons the verdicts were adjusted over, and how ("" when not)."""
    if "p_adjusted" not in verdicts.columns or method not in ADJUST_WORDS:
        return ""
    n = int(verdicts["p_adjusted"].notna().sum())
    if n < 2:
        return ""
    return (
        f"Verdicts are at p < 0.05 after {ADJUST_WORDS[method]} adjustment over the {n} "
        "comparisons made."
    )


def describe(value: Any) -> str:
    """A short text for a card's table cell."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
