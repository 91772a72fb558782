"""Split-half reliability: would the same units be found on other stimuli?

The neuroscience answer to "how far can I trust this localization" is a split-half design:
localize on two disjoint halves of the stimuli and compare. :func:`reliability` runs the
model once over all stimuli (keeping each stimulus's pooled activations), then for each of
``n_splits`` random splits of every condition into two halves computes Welch t on each half,
selects the top units of each, and reports how well the two selections and t maps agree:
Dice and Jaccard of the masks and the Pearson correlation of the t maps, over the whole site
and per layer, with the Dice two random sets of the same sizes would reach by chance.

With ``sizes=`` it measures the localizer's power: how the agreement grows with the number
of stimuli. For each size n, each split draws two disjoint sets of n stimuli per condition
from the same stored activations (the model runs once, whatever the sizes and splits), and
the result (:class:`LocalizerPower`) gives the Dice of the two selections, the Pearson and
Spearman correlation of their t maps, chance Dice and an interval over splits per size, and
says how many stimuli per condition reach a Dice of 0.8 on this model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float
from scipy import stats as sps
from torch import Tensor

from .activations import stacked_activations
from .config import ReliabilityConfig, resolve_config
from .contrast import Contrast
from .data.io import read_csv
from .errors import LocalizeError, check_int
from .localize import select_top, significance
from .models import model_signature
from .protocol import Model
from .results import (
    atomic_folder,
    base_record,
    check_same_model,
    read_result_record,
    write_record,
)
from .sites import get_site
from .stats import Moments, percentile_interval, welch_t

__all__ = [
    "LocalizerPower",
    "check_sizes",
    "dice",
    "jaccard",
    "power_sizes",
    "reliability",
    "split_half",
]

TARGET_DICE = 0.8  # the agreement the power sentence asks for
SMALLEST_SIZE = 5  # the first size of the automatic ladder


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


def _rank_corr(x: Tensor, y: Tensor) -> float:
    """Spearman's rho: Pearson r of the ranks (ties at their mean rank) of the units finite
    in both maps."""
    ok = torch.isfinite(x) & torch.isfinite(y)
    if int(ok.sum()) < 3:
        return math.nan
    ranks = [torch.from_numpy(sps.rankdata(v[ok].double().numpy())) for v in (x, y)]
    return _corr(ranks[0], ranks[1])


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
    size: int | None = None,
    per_layer: bool = True,
) -> pd.DataFrame:
    """Split-half agreement from stored pooled activations of the two conditions.

    For each split, each condition's stimuli are shuffled (seeded) and cut into two halves;
    the halves select ``top`` units each (as :func:`localize` would). With ``size``, each
    half is the first ``size`` and the next ``size`` stimuli of the shuffled order instead
    (at most half of the smaller condition), so that the same seed draws nested subsets for
    every size. Returns one row per split and scope (``all``, then each layer unless
    ``per_layer=False``): ``n_a``,
    ``n_b`` (units selected by each half), ``overlap``, ``dice``, ``jaccard``, ``t_corr``
    (Pearson r of the two halves' t), ``t_spearman`` (Spearman's rho of the same) and
    ``chance_dice`` (the Dice two random sets of sizes ``n_a`` and ``n_b`` reach on
    average: ``2 n_a n_b / (N (n_a + n_b))``).
    """
    check_int("n_splits", n_splits, 1)
    check_int("seed", seed, 0)
    if size is not None:
        largest = min(positive.shape[0], negative.shape[0]) // 2
        check_int("size", size, 2)
        if size > largest:
            raise LocalizeError(
                f"size={size} stimuli per half, but the smaller condition has "
                f"{min(positive.shape[0], negative.shape[0])} stimuli: two disjoint halves "
                f"hold at most {largest} each. Use a size up to {largest}."
            )
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
    # once, not per split: the moments' precision and the absolute values
    positive, negative = positive.to(torch.float64), negative.to(torch.float64)
    if absolute:
        positive, negative = positive.abs(), negative.abs()
    for split in range(n_splits):
        halves = []
        for values in (positive, negative):
            order = torch.from_numpy(rng.permutation(values.shape[0]))
            cut = values.shape[0] // 2 if size is None else size
            end = values.shape[0] if size is None else 2 * size
            halves.append((values[order[:cut]], values[order[cut:end]]))
        t_a = _t(halves[0][0], halves[1][0], absolute=False)
        t_b = _t(halves[0][1], halves[1][1], absolute=False)
        a, b = select_top(t_a, top, selection), select_top(t_b, top, selection)
        scopes: list[tuple[Any, slice]] = [("all", slice(None))]
        if per_layer:
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
                    "t_spearman": _rank_corr(t_a[part].reshape(-1), t_b[part].reshape(-1)),
                    "chance_dice": 2 * n_a * n_b / (total * (n_a + n_b)) if n_a + n_b else math.nan,
                }
            )
    return pd.DataFrame(rows)


def power_sizes(n_stimuli: int) -> list[int]:
    """The automatic ladder of sizes for ``n_stimuli`` per condition (the smaller one): 5,
    10, 20, ... doubling while below half of it, then half of it (the largest two disjoint
    sets).

    >>> power_sizes(240), power_sizes(16), power_sizes(9)
    ([5, 10, 20, 40, 80, 120], [5, 8], [4])
    """
    largest = n_stimuli // 2
    if largest < 2:
        raise LocalizeError(
            f"A condition has {n_stimuli} stimuli; the localizer's power needs at least 4 per "
            "condition (two disjoint sets of 2)."
        )
    sizes, n = [], SMALLEST_SIZE
    while n < largest:
        sizes.append(n)
        n *= 2
    return [*sizes, largest]


def check_sizes(sizes: Sequence[int] | str, n_stimuli: int) -> list[int]:
    if isinstance(sizes, str):
        if sizes != "auto":
            raise LocalizeError(
                f"sizes={sizes!r}: give numbers of stimuli per condition such as [10, 20, 40], "
                "or 'auto' for 5, 10, 20, ... up to half of the smaller condition."
            )
        return power_sizes(n_stimuli)
    if not isinstance(sizes, Sequence) or not sizes:
        raise LocalizeError(
            f"sizes={sizes!r}: give a non-empty list of numbers of stimuli per condition, such "
            "as [10, 20, 40], or 'auto'."
        )
    largest = n_stimuli // 2
    checked = sorted({check_int("sizes", n, 2) for n in sizes})
    if checked[-1] > largest:
        raise LocalizeError(
            f"sizes holds {checked[-1]} stimuli per condition, but the smaller condition has "
            f"{n_stimuli}: two disjoint sets hold at most {largest} each. Use sizes up to "
            f"{largest}."
        )
    return checked


class LocalizerPower:
    """The result of :func:`reliability` with ``sizes=``: split-half agreement as a
    function of the number of stimuli per condition.

    Attributes:
        table: one row per size: ``size`` (stimuli per condition in each of the two
            disjoint sets), ``n_splits``, ``n_selected`` (mean units each set selects),
            ``dice`` (mean over splits) with ``dice_low`` / ``dice_high`` (the central 95%
            of the splits), ``jaccard``, ``t_corr`` (Pearson r of the two t maps) and
            ``t_spearman`` (Spearman's rho), each with its interval, and ``chance_dice``
            (two random sets of the same sizes: the selected fraction).
        splits: :func:`split_half`'s rows over the whole site, one per size and split.
        settings: how it was made (model, contrast, site, top, selection, sizes, n_splits,
            seed, the number of stimuli per condition); saved as the record's ``config``.
        target: the Dice the summary asks for (0.8).
        record: the rest of how it was made: the model's signature (``model``), and from
            the command line the command, the contrast and the timings.

    The split-half reliability of one localization (:func:`reliability` without ``sizes``)
    stays a DataFrame, one row per split and scope: a table with no finding to state
    beyond its numbers.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        splits: pd.DataFrame,
        settings: dict[str, Any],
        target: float = TARGET_DICE,
        record: dict[str, Any] | None = None,
    ) -> None:
        self.table = table
        self.splits = splits
        self.settings = settings
        self.target = target
        self.record = {} if record is None else record

    def __repr__(self) -> str:
        return (
            f"LocalizerPower({self.settings['contrast']!r} on {self.settings['model']!r}: "
            f"sizes {self.table['size'].tolist()}, {self.settings['n_splits']} splits)"
        )

    def to_frame(self) -> pd.DataFrame:
        """The table (one row per size)."""
        return self.table

    def reached(self, target: float | None = None) -> int | None:
        """The smallest size whose mean Dice reaches ``target`` (default 0.8), else None."""
        target = self.target if target is None else target
        hits = self.table[self.table["dice"] >= target]
        return int(hits["size"].min()) if len(hits) else None

    def summary(self) -> str:
        """How many stimuli per condition reach a Dice of 0.8 on this model, or that none
        of the sizes does, with the numbers."""
        s = self.settings
        top = s["top"]
        top_words = f"{100 * top:g}%" if isinstance(top, float) else f"{top}"
        what = f"On {s['model']}, the {s['contrast']} localizer's top {top_words} {s['site']} units"
        n = self.reached()
        if n is not None:
            row = self.table.set_index("size").loc[n]
            return (
                f"{what} reach a split-half Dice of {self.target:g} from {n} stimuli per "
                f"condition: two disjoint sets of {n} give Dice {row['dice']:.2f} "
                f"[{row['dice_low']:.2f}, {row['dice_high']:.2f}] over {s['n_splits']} splits "
                f"(chance {row['chance_dice']:.3f}; their t maps correlate at r "
                f"{row['t_corr']:.2f})."
            )
        last = self.table.iloc[-1]
        largest = int(last["size"])
        return (
            f"{what} reach a split-half Dice of {self.target:g} at none of the sizes tried: "
            f"two disjoint sets of {largest} stimuli per condition, the largest, give Dice "
            f"{last['dice']:.2f} [{last['dice_low']:.2f}, {last['dice_high']:.2f}] over "
            f"{s['n_splits']} splits (chance {last['chance_dice']:.3f}; their t maps correlate "
            f"at r {last['t_corr']:.2f}), so more than {largest} per condition are needed."
        )

    def plot(self) -> Any:
        """Dice (with its interval over splits, and chance) and the t maps' correlation
        against the number of stimuli per condition."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        long = self.splits.melt(
            id_vars=["size", "split"], value_vars=["dice", "t_corr", "t_spearman"],
            var_name="measure", value_name="agreement",
        )  # fmt: skip
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        sns.lineplot(
            data=long, x="size", y="agreement", hue="measure", marker="o",
            errorbar=("pi", 95), ax=ax,
        )  # fmt: skip
        ax.plot(self.table["size"], self.table["chance_dice"], ls=":", color="0.4",
                label="chance Dice")  # fmt: skip
        ax.axhline(self.target, color="0.6", linewidth=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(self.table["size"].tolist(), [str(n) for n in self.table["size"]])
        ax.set_xlabel("stimuli per condition (each set)")
        ax.set_ylabel("split-half agreement")
        ax.set_ylim(min(0.0, float(long["agreement"].min())), 1.0)
        ax.legend(fontsize=8)
        ax.set_title(f"{self.settings['contrast']} localizer power, {self.settings['model']}")
        plt.close(fig)
        return fig

    def _repr_html_(self) -> str:
        """The card: model, contrast, selection, splits, Dice per size and the summary."""
        from .cards import card, frame_html

        s = self.settings
        facts = {
            "model": s["model"],
            "contrast": f"{s['contrast']} ({s['n_stimuli']} stimuli per condition)",
            "selection": f"top {s['top']} of {s['site']}, {s['selection']}",
            "splits": f"{s['n_splits']} per size, seed {s['seed']}",
        }
        shown = self.table[["size", "dice", "dice_low", "dice_high", "t_corr", "chance_dice"]]
        return card("Localizer power", facts, frame_html(shown), self.summary())

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``power.csv``, ``splits.csv``, ``power.png`` and ``record.json`` (kind
        ``localizer power``) to ``folder``, atomically; an existing folder is replaced only
        with ``force=True`` (:func:`tl_localize.results.atomic_folder`)."""
        with atomic_folder(folder, force=force) as tmp:
            self.write(tmp)
        return Path(folder)

    def write(self, folder: str | Path) -> None:
        """Write :meth:`save`'s files into an existing folder."""
        import matplotlib.pyplot as plt

        folder = Path(folder)
        self.table.to_csv(folder / "power.csv", index=False)
        self.splits.to_csv(folder / "splits.csv", index=False)
        fig = self.plot()
        fig.savefig(folder / "power.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        config = {**self.settings, "target": self.target}
        write_record(folder, base_record(self.record, config, self.summary()), KIND)

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> LocalizerPower:
        """Read a folder written by :meth:`save` (or ``tl-localize reliability --sizes``);
        with ``model``, refuse one measured on another model."""
        folder = Path(folder)
        needed = ("model", "contrast", "site", "top", "selection", "n_splits", "seed")
        what = "a saved localizer power (tl-localize reliability --out)"
        record, config = read_result_record(folder, KIND, what, needed)
        table = read_csv(folder / "power.csv", "table of a localizer power")
        splits = read_csv(folder / "splits.csv", "splits of a localizer power")
        missing = [c for c in ("size", "dice", "dice_low", "dice_high", "t_corr") if c not in table]
        if missing or "size" not in splits:
            raise LocalizeError(
                f"{folder / 'power.csv'} lacks the column {(missing or ['size'])[0]!r}; the "
                "folder is damaged. Measure the power again."
            )
        if model is not None:
            check_same_model(folder, record.get("model"), model_signature(model))
        target = float(config.pop("target", TARGET_DICE))
        return cls(table, splits, config, target, record)


KIND = "localizer power"  # the kind its record.json carries


def _power_table(splits: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for size, group in splits.groupby("size", sort=True):
        row: dict[str, Any] = {
            "size": int(size),
            "n_splits": len(group),
            "n_selected": float((group["n_a"] + group["n_b"]).mean() / 2),
        }
        for measure in ("dice", "jaccard", "t_corr", "t_spearman"):
            values = group[measure].to_numpy(dtype=float)
            row[measure] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
            row[f"{measure}_low"], row[f"{measure}_high"] = percentile_interval(values)
        row["chance_dice"] = float(group["chance_dice"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


@overload
def reliability(
    model: Model,
    contrast: str | Contrast = ...,
    *,
    top: float | int | str = ...,
    n_splits: int = ...,
    seed: int = ...,
    sizes: None = ...,
    progress: bool = ...,
    **localize_settings: Any,
) -> pd.DataFrame: ...


@overload
def reliability(
    model: Model,
    contrast: str | Contrast = ...,
    *,
    top: float | int | str = ...,
    n_splits: int = ...,
    seed: int = ...,
    sizes: Sequence[int] | str,
    progress: bool = ...,
    **localize_settings: Any,
) -> LocalizerPower: ...


def reliability(
    model: Model,
    contrast: str | Contrast = "language",
    *,
    top: float | int | str = 0.01,
    n_splits: int | None = None,
    seed: int = 0,
    sizes: Sequence[int] | str | None = None,
    progress: bool = True,
    **localize_settings: Any,
) -> pd.DataFrame | LocalizerPower:
    """Split-half reliability of a localization, or the localizer's power (see the module
    docstring).

    Args:
        contrast: as for :func:`localize`.
        top: the size of each half's selection (a fraction or a count, as for
            :func:`localize`).
        n_splits: random splits (default 10; 20 per size with ``sizes``); ``seed`` seeds
            them.
        sizes: numbers of stimuli per condition (``[10, 20, 40]``), or ``"auto"`` (5, 10,
            20, ... up to half of the smaller condition): measure the power curve instead,
            with two disjoint sets of each size per split.
        localize_settings: ``site``, ``pooling``, ``absolute``, ``selection``, ``preset``,
            ``batch_size``, ``truncate``, ``prepend_bos``: as for :func:`localize`.

    Returns:
        Without ``sizes``: :func:`split_half`'s frame with ``model``, ``contrast``,
        ``site`` and ``top`` columns. With ``sizes``: a :class:`LocalizerPower`
        (``.table``, ``.summary()``, ``.plot()``). The model runs once over the stimuli,
        whatever ``n_splits`` and ``sizes``.

    >>> frame = reliability(model, toy_contrast, top=6, n_splits=2, progress=False)
    >>> frame.query("scope == 'all'").dice.between(0, 1).all()
    np.True_
    >>> power = reliability(model, toy_contrast, top=6, sizes=[2, 4], progress=False)
    >>> power.table["size"].tolist()
    [2, 4]
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
    ReliabilityConfig(top=top, n_splits=n_splits, seed=seed, sizes=sizes)
    preset = localize_settings.pop("preset", None)
    config = resolve_config(preset, contrast.pooling, top=top, **localize_settings)
    assert config.top is not None  # no band here
    site = get_site(config.site, model)
    names = [site.hook_name(layer) for layer in range(int(model.cfg.n_layers))]
    splits = check_int("n_splits", n_splits if n_splits is not None else 10, 1)
    conditions = (contrast.positive_condition, contrast.negative_condition)
    n_stimuli = min(len(contrast.conditions[c]) for c in conditions)
    checked = None
    if sizes is not None:
        checked = check_sizes(sizes, n_stimuli)  # before any forward pass
        splits = check_int("n_splits", n_splits if n_splits is not None else 20, 2)
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
        for cond in conditions
    }
    options: dict[str, Any] = {
        "top": config.top,
        "n_splits": splits,
        "seed": seed,
        "absolute": config.absolute,
        "selection": config.selection,
    }
    identity = {
        "model": str(model.cfg.model_name),
        "contrast": contrast.name,
        "site": site.name,
        "top": str(config.top),
    }
    if checked is not None:
        parts = [
            split_half(
                values[conditions[0]], values[conditions[1]], size=n, per_layer=False, **options
            )
            .drop(columns="scope")
            .assign(size=n)
            for n in checked
        ]
        per_split = pd.concat(parts, ignore_index=True)
        per_split.insert(0, "size", per_split.pop("size"))
        power_settings = {
            **identity,
            "top": config.top,
            "selection": config.selection,
            "absolute": config.absolute,
            "sizes": checked,
            "n_splits": splits,
            "seed": seed,
            "n_stimuli": n_stimuli,
        }
        return LocalizerPower(
            _power_table(per_split), per_split, power_settings,
            record={"model": model_signature(model)},
        )  # fmt: skip
    frame = split_half(values[conditions[0]], values[conditions[1]], **options)
    for i, (key, value) in enumerate(identity.items()):
        frame.insert(i, key, value)
    return frame
