"""Selectivity beside attribution: one row per unit, a per-layer summary, and their figures.

:func:`join` puts a :class:`Localization` (t, q, magnitude, selected) beside an
:class:`Attribution` (patch / zero / DLA scores) and, where measured, ablation effects;
:func:`join_summary` asks whether the units a localizer selects are the units the task's
metric depends on: the rank correlation of t with the attribution score, and the overlap of
the selected set with the same number of top-attribution units (hypergeometric p), over all
layers and per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from .attribution import SCORES, Attribution, AttributionCheck
from .compare import AblationComparison
from .errors import LocalizeError
from .localize import Localization
from .precision import warn_precisions
from .stats import overlap_test
from .units import Units

__all__ = [
    "join",
    "join_summary",
    "plot_join",
    "plot_join_layers",
    "top_attribution_units",
]


def join(
    localization: Localization,
    attribution: Attribution,
    ablation: AblationComparison | AttributionCheck | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per unit: selectivity (``t``, ``q``, ``d``, ``magnitude``, ``selected``), the
    attribution scores, and ablation effects where measured.

    Args:
        ablation: either :func:`compare_ablation`'s result (group ablation: each selected
            unit gets ``group_change_pct_<task>``, the change in the task's metric when the
            whole selected set is ablated), or :func:`check_attribution`'s (single units: the
            sampled units get ``single_<kind>``, the measured change in the pair score).
    """
    units = localization.units
    if (units.site, units.model_name) != (attribution.site, attribution.model_name) or tuple(
        units.mask.shape
    ) != tuple(attribution.scores["patch_mean"].shape):
        raise LocalizeError(
            f"The localization ({units.model_name!r}, site {units.site!r}) and the attribution "
            f"({attribution.model_name!r}, site {attribution.site!r}) do not describe the same "
            "units; compute the attribution at the localization's site and model."
        )
    computed = attribution.record.get("model")
    warn_precisions(
        units.dtype,
        computed.get("dtype") if isinstance(computed, dict) else None,
        "The localization and the attribution",
    )
    keep = ["layer", "unit", "t", "q", "d", "magnitude", "magnitude_pct", "selected"]
    scores = attribution.to_frame().drop(columns=["model", "task", "site"])
    frame = localization.to_frame()[keep].merge(scores, on=["layer", "unit"])
    if ablation is None:
        return frame
    if isinstance(ablation, AblationComparison):
        ablation = ablation.table
    if isinstance(ablation, AttributionCheck):
        column = f"single_{ablation.kind}"
        single = ablation.frame[["layer", "unit", "actual"]].rename(columns={"actual": column})
        return frame.merge(single, on=["layer", "unit"], how="left")
    if isinstance(ablation, pd.DataFrame) and {"set", "change_pct", "task"} <= set(
        ablation.columns
    ):
        selected = ablation[ablation["set"] == "selected"]
        for task, rows in selected.groupby("task", sort=False):
            column = f"group_change_pct_{task}"
            frame[column] = np.where(frame["selected"], rows["change_pct"].iloc[0], np.nan)
        return frame
    raise LocalizeError(
        "ablation= takes compare_ablation's result (or its table: columns task, set, "
        f"change_pct) or check_attribution's result; got {type(ablation).__name__}."
    )


def _score_values(frame: pd.DataFrame, score: str) -> pd.Series:
    if score not in SCORES:
        raise LocalizeError(f"Unknown attribution score {score!r}; use one of {list(SCORES)}.")
    values = frame[score]
    return values.abs() if score.endswith("_mean") else values


def _top_mask(values: pd.Series, k: int) -> np.ndarray:
    mask = np.zeros(len(values), dtype=bool)
    mask[values.fillna(-np.inf).to_numpy().argsort(kind="stable")[::-1][:k]] = True
    return mask


def join_summary(frame: pd.DataFrame, *, score: str = "patch_abs") -> pd.DataFrame:
    """Selectivity against attribution, over all layers (``scope="all"``) and per layer.

    The top-attribution set has as many units as the selected set, chosen over all layers
    by ``score`` (absolute value for the ``_mean`` scores; NaN scores are never chosen).
    Returns one row per scope (and the ``score`` compared): ``n_units``, ``spearman`` (t vs
    score) and its ``p_spearman``,
    ``spearman_magnitude`` (activation magnitude vs score: how much of any agreement the
    magnitude confound could explain), ``n_selected``, ``n_top_attribution``, ``overlap``,
    ``overlap_indices`` (distinct unit indices among them), ``expected`` (by chance),
    ``p_overlap`` (hypergeometric, P(overlap or more)).

    At residual-stream sites the same index in different layers is the same direction of
    the stream, carried from layer to layer, so those units are not independent draws and
    the hypergeometric p-value overstates the evidence; ``overlap_indices`` says how many
    distinct directions the overlap holds.
    """
    values = _score_values(frame, score)
    k = int(frame["selected"].sum())
    if k == 0:
        raise LocalizeError("The localization selects no units: nothing to compare.")
    data = frame.assign(score=values, top_attribution=_top_mask(values, k))

    def row(scope: Any, part: pd.DataFrame) -> dict[str, Any]:
        valid = part.dropna(subset=["t", "score"])
        rho, p_rho = sps.spearmanr(valid["t"], valid["score"]) if len(valid) > 2 else (np.nan,) * 2
        rho_mag = sps.spearmanr(valid["magnitude"], valid["score"])[0] if len(valid) > 2 else np.nan
        n, a, b = len(part), int(part["selected"].sum()), int(part["top_attribution"].sum())
        shared = part["selected"] & part["top_attribution"]
        both = int(shared.sum())
        expected, p_overlap = overlap_test(n, a, b, both)
        return {
            "scope": scope,
            "n_units": n,
            "spearman": float(rho),
            "p_spearman": float(p_rho),
            "spearman_magnitude": float(rho_mag),
            "n_selected": a,
            "n_top_attribution": b,
            "overlap": both,
            "overlap_indices": int(part.loc[shared, "unit"].nunique()),
            "expected": expected,
            "p_overlap": p_overlap,
        }

    rows = [row("all", data)]
    rows += [row(int(layer), part) for layer, part in data.groupby("layer")]
    return pd.DataFrame(rows).assign(score=score)


def top_attribution_units(frame: pd.DataFrame, units: Units, score: str = "patch_abs") -> Units:
    """The top-attribution set of :func:`join_summary` as :class:`Units` (for
    :func:`overlap` or :func:`ablated`)."""
    mask = _top_mask(_score_values(frame, score), len(units))
    return units.with_mask(torch.from_numpy(mask.reshape(units.mask.shape)))


def plot_join(frame: pd.DataFrame, score: str = "patch_abs") -> Any:
    """Selectivity (t) against attribution, one point per unit, selected units highlighted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = frame.assign(score=_score_values(frame, score))
    data = data.dropna(subset=["t", "score"]).sort_values("selected")
    data["units"] = np.where(data["selected"], "selected", "other")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    sns.scatterplot(
        data=data, x="t", y="score", hue="units", hue_order=["other", "selected"],
        palette={"other": "0.75", "selected": "C3"}, s=8, linewidth=0, ax=ax,
    )  # fmt: skip
    ax.set_yscale("symlog", linthresh=max(float(data["score"].abs().quantile(0.5)), 1e-6))
    if (data["score"] >= 0).all():
        ax.set_ylim(bottom=0)
    ax.set_xlabel("selectivity (Welch t)")
    ax.set_ylabel(f"attribution ({score})")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_join_layers(summary: pd.DataFrame) -> Any:
    """Per layer: rank correlation of t and attribution, and the units in each top set."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    layers = summary[summary["scope"] != "all"].copy()
    layers["layer"] = layers["scope"].astype(int)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    sns.barplot(data=layers, x="layer", y="spearman", color="C0", ax=left)
    left.axhline(0, color="0.3", linewidth=0.8)
    left.set_ylabel("Spearman rho (t vs attribution)")
    counts = layers.melt(
        id_vars="layer",
        value_vars=["n_selected", "n_top_attribution", "overlap"],
        var_name="set",
        value_name="units",
    )
    counts["set"] = counts["set"].map(
        {"n_selected": "selected", "n_top_attribution": "top attribution", "overlap": "both"}
    )
    sns.lineplot(data=counts, x="layer", y="units", hue="set", marker="o", ax=right)
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig
