"""Findings in words: one or two sentences with the numbers, for each kind of result.

Each function reads a result object and states what it shows, including the inconvenient
part (an effect that is not specific against magnitude-matched controls is said to be so).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from .cards import busiest_layers, layer_ranges
from .options import BLOCKED

if TYPE_CHECKING:
    from .brain import BrainAlignment
    from .compare import AblationComparison
    from .localize import Localization

__all__ = [
    "ablation_summary",
    "adjustment_sentence",
    "blocked_sentence",
    "brain_summary",
    "layer_ranges",
    "localization_summary",
]

VERBS = {"zero": "Zeroing", "mean": "Mean-ablating", "resample": "Resample-ablating"}
ADJUST_WORDS = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}
MATCH_WORDS = {
    "uniform": "uniform random sets",
    "layer": "layer-matched random sets",
    "magnitude": "magnitude-matched random sets",
    "least_active": "random sets of the least active units",
}


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{abs(value):.1f}%"


def _interval(low: float, high: float, digits: int = 1) -> str:
    if math.isnan(low) or math.isnan(high):
        return ""
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def _p(p: float) -> str:
    if math.isnan(p):
        return "p n/a"
    return f"p {p:.2g}" if p >= 0.001 else "p < 0.001"


def localization_summary(loc: Localization) -> str:
    from .ablation import high_magnitude_units

    units = loc.units
    pos, neg = loc.conditions
    n, total = len(units), units.n_units
    model = units.model_name
    head = (
        f"The {loc.contrast} localizer ({pos} > {neg}) selected {n:,} of {total:,} "
        f"{units.site} units ({n / total:.2%}) of {model}"
    )
    selection = loc.record.get("selection", {})
    if selection.get("method") == "band":
        lo, hi = selection["band"]
        head += (
            f": the band {100 * lo:g}-{100 * hi:g}% of the selectivity ranking (0% the most "
            "selective)"
        )
    elif selection.get("method") == "fdr":
        head += f": every unit with t > 0 and FDR q < {selection['alpha']:g}"
    elif selection.get("method") == "perm":
        head += (
            f": every unit above the family-wise max-t threshold {selection['threshold']:.2f} "
            f"(p < {selection['alpha']:g}, {selection['n_permutations']} label permutations)"
        )
    if n == 0:
        return head + "; nothing passed, so there is nothing to ablate or compare."
    counts = units.mask.sum(1).numpy()
    t, q = loc.stats["t"][units.mask], loc.stats["q"][units.mask]
    sentences = [
        head + f". Half of them sit in layers {layer_ranges(busiest_layers(counts))}; their "
        f"mean Welch t is {float(t.mean()):.1f} (max q {float(q.max()):.2g})."
    ]
    loud = len(high_magnitude_units(units, loc.stats["magnitude"]))
    if loud:
        sentences.append(
            f"{loud} of them are high-magnitude units (mean |activation| at least 20 times the "
            "site's median): compare ablations with magnitude-matched controls."
        )
    if loc.holdout is not None:
        rows = loc.holdout.set_index("sample")
        sentences.append(
            f"Selected on {int(rows.loc['in_sample', 'n_positive'])} + "
            f"{int(rows.loc['in_sample', 'n_negative'])} stimuli, their mean t is "
            f"{rows.loc['in_sample', 'mean_t']:.1f} in-sample and "
            f"{rows.loc['held_out', 'mean_t']:.1f} on the held-out "
            f"{int(rows.loc['held_out', 'n_positive'])} + "
            f"{int(rows.loc['held_out', 'n_negative'])} (Cohen's d "
            f"{rows.loc['in_sample', 'mean_d']:.2f} vs {rows.loc['held_out', 'mean_d']:.2f})."
        )
    return " ".join(sentences)


def _change_words(change: float, low: float, high: float) -> str:
    """``lowers CHANGES by 31.1% [23.6, 38.0]`` when the interval lies on one side of zero,
    else ``changes CHANGES by -2.0% [-5.0, 1.0]`` (signed)."""
    if not math.isnan(low) and not math.isnan(high) and (high < 0 or low > 0):
        word = "lowers" if change < 0 else "raises"
        a, b = sorted((abs(low), abs(high)))
        return f"{word} CHANGES by {abs(change):.1f}% [{a:.1f}, {b:.1f}]"
    if math.isnan(low) or math.isnan(high):
        word = "lowers" if change < 0 else "raises"
        return f"{word} CHANGES by {abs(change):.1f}%"
    return f"changes CHANGES by {change:+.1f}%{_interval(low, high)}"


def _ablation_sentence(
    verb: str, table: pd.DataFrame, verdicts: pd.DataFrame, task: str, fraction: float
) -> str:
    rows = table[(table["task"] == task) & (table["fraction"] == fraction)]
    selected = rows[rows["set"] == "selected"].iloc[0]
    metric = selected["metric"]
    change = _change_words(selected["change_pct"], selected["change_low"], selected["change_high"])
    text = f"{verb} the {int(selected['n_units'])} selected units " + change.replace(
        "CHANGES", f"{task} {metric}"
    )
    found = verdicts[(verdicts["task"] == task) & (verdicts["fraction"] == fraction)]
    parts, judgements = [], []
    for v in found.itertuples():
        word = "lower" if v.control_change_pct < 0 else "raise"
        parts.append(
            f"{MATCH_WORDS.get(str(v.match), str(v.match))} {word} it by "
            f"{_pct(v.control_change_pct)} (mean of {v.n_seeds})"
        )
        adjusted = getattr(v, "p_adjusted", math.nan)
        shown = _p(v.p_value)
        if not math.isnan(adjusted) and adjusted != v.p_value:
            shown += f", adjusted {_p(adjusted).removeprefix('p ')}"
        judgements.append(
            f"{v.verdict} against {v.match!s} controls (difference "
            f"{v.difference_pct:+.1f} points{_interval(v.difference_low, v.difference_high)}, "
            f"{shown})"
        )
    if parts:
        text += "; " + "; ".join(parts) + ". The effect is " + " and ".join(judgements) + "."
    else:
        text += " (no random controls were run, so its specificity is unknown)."
    return text


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
        f"{_percent_interval(state.value_low, state.value_high)}; {level}): there is nothing "
        "for an ablation to break, so no effect is claimed (the numbers are in the table)."
    )


def _percent_interval(low: float, high: float) -> str:
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


def ablation_summary(comparison: AblationComparison) -> str:
    table, verdicts = comparison.table, comparison.verdicts
    verb = VERBS.get(str(comparison.settings.get("method")), "Ablating")
    states = {row.task: row for row in comparison.states().itertuples()}
    sentences = []
    for task in dict.fromkeys(table["task"]):
        state = states.get(task)
        if state is not None and state.state in BLOCKED:
            sentences.append(blocked_sentence(state))
            continue
        for fraction in sorted(
            table[(table["task"] == task) & (table["set"] == "selected")]["fraction"]
        ):
            sentences.append(_ablation_sentence(verb, table, verdicts, task, fraction))
    adjusted = adjustment_sentence(verdicts, str(comparison.settings.get("adjust", "holm")))
    return " ".join([*sentences, adjusted] if adjusted else sentences)


def brain_summary(alignment: BrainAlignment) -> str:
    table, verdicts = alignment.table, alignment.verdicts
    selected = table[table["set"] == "selected"].iloc[0]
    text = (
        f"The {int(selected['n_units'])} selected units predict the {selected['data']} "
        f"responses at r = {selected['r']:.3f}{_interval(selected['r_low'], selected['r_high'], 3)}"
    )
    parts = []
    for match, rows in table[table["set"] == "random"].groupby("match", sort=False):
        words = MATCH_WORDS.get(str(match), str(match))
        parts.append(f"{words} {rows['r'].mean():.3f} (mean of {len(rows)})")
    everything = table[table["set"] == "all"]
    if len(everything):
        parts.append(
            f"all {int(everything['n_units'].iloc[0]):,} units {everything['r'].iloc[0]:.3f}"
        )
    if parts:
        text += "; " + ", ".join(parts)
    text += "."
    judgements = [
        f"{v.verdict} against {v.match} controls (difference {v.difference_r:+.3f}"
        f"{_interval(v.difference_low, v.difference_high, 3)}, {_p(v.p_value)})"
        for v in verdicts.itertuples()
    ]
    if judgements:
        text += " The advantage is " + " and ".join(judgements) + "."
    return text


def describe(value: Any) -> str:
    """A short text for a card's table cell."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
