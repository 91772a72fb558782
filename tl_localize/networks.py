"""Networks side by side: overlap between unit sets, and response profiles over conditions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from .activations import iter_pooled
from .contrast import Contrast
from .errors import LocalizeError
from .localize import Localization
from .protocol import Model
from .sites import get_site
from .stats import overlap_test
from .units import Units

__all__ = ["Overlap", "overlap", "plot_networks", "plot_profile", "profile"]


@dataclass
class Overlap:
    """Overlap of two unit sets at one site.

    Attributes:
        count: units in both sets.
        jaccard: intersection over union.
        expected: the count expected if the second set were drawn at random.
        p_value: hypergeometric P(count or more shared units) under random draws.
        per_layer: DataFrame ``layer``, ``a``, ``b``, ``both``.
    """

    count: int
    jaccard: float
    expected: float
    p_value: float
    per_layer: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The summary as a one-row DataFrame."""
        return pd.DataFrame(
            [{k: getattr(self, k) for k in ("count", "jaccard", "expected", "p_value")}]
        )


def overlap(a: Units | Localization, b: Units | Localization) -> Overlap:
    """Count, Jaccard, hypergeometric p-value and per-layer counts of two unit sets."""
    a = a.units if isinstance(a, Localization) else a
    b = b.units if isinstance(b, Localization) else b
    if (a.site, a.model_name, a.mask.shape) != (b.site, b.model_name, b.mask.shape):
        raise LocalizeError(
            f"Cannot compare {a!r} with {b!r}: overlap needs two unit sets of the same model "
            "and site."
        )
    both = a & b
    total, n_a, n_b, k = a.n_units, len(a), len(b), len(both)
    expected, p_value = overlap_test(total, n_a, n_b, k)
    per_layer = pd.DataFrame(
        {
            "layer": np.arange(a.n_layers),
            "a": a.mask.sum(1).numpy(),
            "b": b.mask.sum(1).numpy(),
            "both": both.mask.sum(1).numpy(),
        }
    )
    return Overlap(
        count=k,
        jaccard=a.jaccard(b),
        expected=expected,
        p_value=p_value,
        per_layer=per_layer,
    )


def plot_networks(networks: Mapping[str, Units | Localization]) -> Any:
    """Units per layer of several networks, one line each."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frames = []
    for name, units in networks.items():
        units = units.units if isinstance(units, Localization) else units
        frames.append(units.per_layer().assign(network=name))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sns.lineplot(data=pd.concat(frames), x="layer", y="count", hue="network", marker="o", ax=ax)
    ax.set_ylabel("selected units")
    fig.tight_layout()
    plt.close(fig)
    return fig


def profile(
    model: Model,
    units: Units | Localization,
    contrast: Contrast | str,
    *,
    conditions: Sequence[str] | None = None,
    pooling: str | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """Mean response of the selected units to each condition, with a 95% interval.

    A text's response is the mean over the selected units of |activation| (pooled as the
    contrast says), each unit divided by its mean |activation| over all texts of the
    requested conditions when ``normalize`` (so that a few massive units do not dominate).
    Returns one row per condition: ``condition``, ``mean``, ``ci_low``, ``ci_high``
    (t-interval over texts), ``n``.
    """
    units = units.units if isinstance(units, Localization) else units
    units.check_model(model)
    if isinstance(contrast, str):
        contrast = Contrast.builtin(contrast)
    if isinstance(conditions, str):  # one condition, not its letters
        conditions = [conditions]
    names = list(contrast.conditions) if conditions is None else list(conditions)
    unknown = [c for c in names if c not in contrast.conditions]
    if unknown:
        raise LocalizeError(
            f"Contrast {contrast.name!r} has no condition {unknown[0]!r}; its conditions are "
            f"{list(contrast.conditions)}."
        )
    if len(units) == 0:
        raise LocalizeError("The unit set is empty: no profile to draw.")
    site = get_site(units.site)
    layers = units.layers()
    hooks = [site.hook_name(layer) for layer in layers]
    sub_mask = units.mask[layers]
    responses = {}
    for cond in names:
        rows = torch.empty(len(contrast.conditions[cond]), len(units))
        for index, pooled in iter_pooled(
            model, contrast.conditions[cond], hooks, pooling=pooling or contrast.pooling,
            batch_size=batch_size, progress=progress, desc=cond,
        ):  # fmt: skip
            stacked = torch.stack([pooled[h] for h in hooks], 1)
            rows[index] = stacked[:, sub_mask].abs().float()
        responses[cond] = rows
    scale = torch.cat(list(responses.values())).mean(0).clamp_min(1e-12) if normalize else None
    out = []
    for cond, rows in responses.items():
        values = (rows / scale if scale is not None else rows).mean(1).double().numpy()
        mean, sem = values.mean(), sps.sem(values) if len(values) > 1 else float("nan")
        half = sem * sps.t.ppf(0.975, len(values) - 1) if len(values) > 1 else float("nan")
        out.append(
            {"condition": cond, "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
             "n": len(values)}
        )  # fmt: skip
    return pd.DataFrame(out)


def plot_profile(frame: pd.DataFrame, title: str = "") -> Any:
    """Bar plot of a :func:`profile` with its intervals."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(frame["condition"], frame["mean"], color="tab:blue", alpha=0.8)
    ax.errorbar(
        frame["condition"], frame["mean"],
        yerr=[frame["mean"] - frame["ci_low"], frame["ci_high"] - frame["mean"]],
        fmt="none", color="black", capsize=4,
    )  # fmt: skip
    ax.set_ylabel("response (normalized |activation|)")
    ax.set_title(title)
    fig.tight_layout()
    plt.close(fig)
    return fig
