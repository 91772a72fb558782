"""Seaborn figures for results (each function returns a matplotlib Figure)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import seaborn as sns

__all__ = ["plot_localization"]


def plot_localization(loc: Any) -> Any:
    """Two panels: selected units per layer; selectivity (t) against activation magnitude.

    The second panel is there because a t-test on absolute activations favours units with
    large activations: it shows whether the selected units are also the loudest ones.
    """
    frame = loc.to_frame()
    per_layer = loc.units.per_layer()
    pos, neg = loc.conditions
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    sns.barplot(data=per_layer, x="layer", y="count", color="tab:blue", ax=ax1)
    ax1.set_title(
        f"{loc.record['contrast']['name']} units at {loc.units.site}: "
        f"{len(loc.units)} of {loc.units.n_units} ({len(loc.units) / loc.units.n_units:.2%})"
    )
    ax1.set_xlabel("layer")
    ax1.set_ylabel("selected units")
    if loc.units.n_layers > 16:
        for i, label in enumerate(ax1.get_xticklabels()):
            label.set_visible(i % 2 == 0)
    sample = frame[frame["selected"] | (frame.index % max(1, len(frame) // 5000) == 0)]
    sns.scatterplot(
        data=sample,
        x="magnitude",
        y="t",
        hue="selected",
        palette={False: "0.7", True: "tab:red"},
        s=8,
        linewidth=0,
        ax=ax2,
    )
    ax2.set_xscale("log")
    ax2.set_xlabel("mean |activation| (all stimuli)")
    ax2.set_ylabel(f"Welch t ({pos} > {neg})")
    ax2.set_title("selectivity vs magnitude")
    fig.tight_layout()
    return fig
