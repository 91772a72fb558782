"""Split-half reliability: would the same units be found on other stimuli?

The neuroscience answer to "how far can I trust this localization" is a split-half design:
localize on two disjoint halves of the stimuli and compare. :func:`reliability` runs the
model once over all stimuli (keeping each stimulus's pooled activations), then for each of
``n_splits`` random splits of every condition into two halves computes Welch t on each half,
selects the top units of each, and reports how well the two selections and t maps agree:
Dice and Jaccard of the masks and the Pearson correlation of the t maps, over the whole site
and per layer, with the Dice two random sets of the same sizes would reach by chance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .activations import stacked_activations
from .contrast import Contrast
from .errors import LocalizeError, check_int
from .localize import _resolve_config, select_top, significance
from .protocol import Model
from .sites import get_site
from .stats import Moments, welch_t

__all__ = ["dice", "jaccard", "reliability", "split_half"]


def dice(a: Bool[Tensor, "..."], b: Bool[Tensor, "..."]) -> float:
    """2 |a & b| / (|a| + |b|); NaN when both are empty.

    >>> dice(torch.tensor([True, True, False]), torch.tensor([True, False, False]))
    0.6666666666666666
    """
    total = int(a.sum()) + int(b.sum())
    return 2 * int((a & b).sum()) / total if total else math.nan


def jaccard(a: Bool[Tensor, "..."], b: Bool[Tensor, "..."]) -> float:
    """|a & b| / |a | b|; NaN when both are empty."""
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else math.nan


def _corr(x: Tensor, y: Tensor) -> float:
    ok = torch.isfinite(x) & torch.isfinite(y)
    if int(ok.sum()) < 3:
        return math.nan
    a, b = x[ok].double(), y[ok].double()
    a, b = a - a.mean(), b - b.mean()
    denom = float((a.square().sum() * b.square().sum()).sqrt())
    return float((a * b).sum()) / denom if denom > 0 else math.nan


def _t(
    pos: Float[Tensor, "n layer unit"], neg: Float[Tensor, "m layer unit"], absolute: bool
) -> Float[Tensor, "layer unit"]:
    if absolute:
        pos, neg = pos.abs(), neg.abs()
    return welch_t(Moments.of(pos), Moments.of(neg))[0]


def split_half(
    positive: Float[Tensor, "n layer unit"],
    negative: Float[Tensor, "m layer unit"],
    *,
    top: float | int | str,
    n_splits: int = 10,
    seed: int = 0,
    absolute: bool = True,
    selection: str = "global",
) -> pd.DataFrame:
    """Split-half agreement from stored pooled activations of the two conditions.

    For each split, each condition's stimuli are shuffled (seeded) and cut into two halves;
    the halves select ``top`` units each (as :func:`localize` would). Returns one row per
    split and scope (``all``, then each layer): ``n_a``, ``n_b`` (units selected by each
    half), ``overlap``, ``dice``, ``jaccard``, ``t_corr`` (Pearson r of the two halves' t)
    and ``chance_dice`` (the Dice two random sets of sizes ``n_a`` and ``n_b`` reach on
    average: ``2 n_a n_b / (N (n_a + n_b))``).
    """
    check_int("n_splits", n_splits, 1)
    check_int("seed", seed, 0)
    if significance(top) is not None:
        raise LocalizeError(
            "reliability compares the top units of two halves: give top as a fraction or a "
            f"count, not {top!r}."
        )
    for name, values in (("positive", positive), ("negative", negative)):
        if values.shape[0] < 4:
            raise LocalizeError(
                f"The {name} condition has {values.shape[0]} stimuli; split-half reliability "
                "needs at least 4 per condition (2 in each half)."
            )
    rng = np.random.default_rng(seed)
    n_layers = positive.shape[1]
    rows: list[dict[str, Any]] = []
    for split in range(n_splits):
        halves = []
        for values in (positive, negative):
            order = torch.from_numpy(rng.permutation(values.shape[0]))
            cut = values.shape[0] // 2
            halves.append((values[order[:cut]], values[order[cut:]]))
        t_a = _t(halves[0][0], halves[1][0], absolute)
        t_b = _t(halves[0][1], halves[1][1], absolute)
        a, b = select_top(t_a, top, selection), select_top(t_b, top, selection)
        scopes: list[tuple[Any, slice]] = [("all", slice(None))]
        scopes += [(layer, slice(layer, layer + 1)) for layer in range(n_layers)]
        for scope, part in scopes:
            ma, mb = a[part], b[part]
            n_a, n_b = int(ma.sum()), int(mb.sum())
            total = ma.numel()
            rows.append(
                {
                    "split": split,
                    "scope": scope,
                    "n_a": n_a,
                    "n_b": n_b,
                    "overlap": int((ma & mb).sum()),
                    "dice": dice(ma, mb),
                    "jaccard": jaccard(ma, mb),
                    "t_corr": _corr(t_a[part].reshape(-1), t_b[part].reshape(-1)),
                    "chance_dice": 2 * n_a * n_b / (total * (n_a + n_b)) if n_a + n_b else math.nan,
                }
            )
    return pd.DataFrame(rows)


def reliability(
    model: Model,
    contrast: str | Contrast = "language",
    *,
    top: float | int | str = 0.01,
    n_splits: int = 10,
    seed: int = 0,
    progress: bool = True,
    **localize_settings: Any,
) -> pd.DataFrame:
    """Split-half reliability of a localization (see the module docstring).

    Args:
        contrast: as for :func:`localize`.
        top: the size of each half's selection (a fraction or a count, as for
            :func:`localize`).
        n_splits: random splits (default 10); ``seed`` seeds them.
        localize_settings: ``site``, ``pooling``, ``absolute``, ``selection``, ``preset``,
            ``batch_size``, ``truncate``, ``prepend_bos``: as for :func:`localize`.

    Returns:
        :func:`split_half`'s frame with ``model``, ``contrast``, ``site`` and ``top``
        columns. The model runs once over the stimuli, whatever ``n_splits``.

    >>> frame = reliability(model, toy_contrast, top=6, n_splits=2, progress=False)
    >>> frame.query("scope == 'all'").dice.between(0, 1).all()
    np.True_
    """
    if isinstance(contrast, str):
        contrast = Contrast.builtin(contrast)
    if not isinstance(contrast, Contrast):
        raise LocalizeError(
            f"contrast must be a Contrast or a built-in name, got {type(contrast).__name__}."
        )
    unknown = set(localize_settings) - {
        "site", "pooling", "absolute", "selection", "preset", "batch_size", "truncate",
        "prepend_bos",
    }  # fmt: skip
    if unknown:
        raise LocalizeError(f"reliability() got unknown settings {sorted(unknown)}.")
    preset = localize_settings.pop("preset", None)
    config = _resolve_config(preset, contrast.pooling, top=top, **localize_settings)
    site = get_site(config.site, model)
    names = [site.hook_name(layer) for layer in range(int(model.cfg.n_layers))]
    check_int("n_splits", n_splits, 1)
    settings = {
        "pooling": config.pooling or contrast.pooling,
        "batch_size": config.batch_size,
        "truncate": config.truncate,
        "prepend_bos": config.prepend_bos,
        "progress": progress,
    }
    values = {
        cond: stacked_activations(
            model, contrast.conditions[cond], names, desc=f"{contrast.name}: {cond}", **settings
        )
        for cond in (contrast.positive_condition, contrast.negative_condition)
    }
    frame = split_half(
        values[contrast.positive_condition],
        values[contrast.negative_condition],
        top=config.top,
        n_splits=n_splits,
        seed=seed,
        absolute=config.absolute,
        selection=config.selection,
    )
    identity = {
        "model": str(model.cfg.model_name),
        "contrast": contrast.name,
        "site": site.name,
        "top": str(config.top),
    }
    for i, (key, value) in enumerate(identity.items()):
        frame.insert(i, key, value)
    return frame
