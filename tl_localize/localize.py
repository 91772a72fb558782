"""``localize``: find the units that respond more to one condition than to its control.

For each unit at a site, pooled activations are streamed into running moments per condition;
Welch's t (positive vs negative condition, on absolute activations by default, as in the
reference), its p-value, Benjamini-Hochberg q and Cohen's d are computed from the moments,
and the top units by t are selected, over all layers together (``global``) or per layer.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from jaxtyping import Bool, Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from .activations import accumulate_moments
from .contrast import POOLINGS, Contrast
from .errors import LocalizeError
from .models import model_signature
from .results import atomic_folder, now, versions
from .sites import get_site
from .stats import benjamini_hochberg, cohens_d, welch_t
from .units import Units, unit_table

__all__ = ["PRESETS", "Localization", "LocalizeConfig", "localize", "resolve_top", "select_top"]

SELECTIONS = ("global", "per_layer")

# Each preset fixes these settings, and those under "by_pooling" according to the
# contrast's own pooling; see docs/method.md for what each reproduces.
PRESETS: dict[str, dict[str, Any]] = {
    "alkhamissi2025": {
        "site": "resid_post",
        "prepend_bos": None,
        "batch_size": 1,
        "absolute": True,
        "selection": "global",
        "by_pooling": {
            "last": {"pooling": "last", "truncate": 12},  # the language localizer
            "mean": {"pooling": "mean", "truncate": None},  # MD and ToM
        },
    },
}


@dataclass
class LocalizeConfig:
    """How a localization was made.

    Attributes:
        site: unit site (``resid_post``: block outputs).
        top: fraction of all units (float in (0, 1]) or a count (int); per layer when
            ``selection="per_layer"``.
        pooling: ``last`` or ``mean``; ``None`` means the contrast's own.
        absolute: t-test on absolute activations (the reference) instead of signed ones.
        selection: ``global`` (top-k over all layers together) or ``per_layer``.
        truncate: keep only the first N tokens of each text (the reference: 12).
        prepend_bos: ``None`` tokenizes as the model's tokenizer does by default.
        batch_size: texts per forward pass (the reference: 1).
        preset: name of the preset these settings came from, if any.
    """

    site: str = "resid_post"
    top: float | int = 0.01
    pooling: str | None = None
    absolute: bool = True
    selection: str = "global"
    truncate: int | None = None
    prepend_bos: bool | None = None
    batch_size: int = 32
    preset: str | None = None

    def __post_init__(self) -> None:
        get_site(self.site)
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise LocalizeError(f"Unknown pooling {self.pooling!r}; use one of {POOLINGS}.")
        if self.selection not in SELECTIONS:
            raise LocalizeError(f"Unknown selection {self.selection!r}; use one of {SELECTIONS}.")
        if self.preset is not None and self.preset not in PRESETS:
            raise LocalizeError(f"Unknown preset {self.preset!r}; presets: {sorted(PRESETS)}.")
        if self.batch_size < 1:
            raise LocalizeError(f"batch_size must be at least 1, got {self.batch_size}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalizeConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_top(top: float | int | str) -> float | int:
    """Read ``top`` as a fraction (float) or a count (int); ``"1%"`` is 0.01, ``"172"`` 172."""
    if isinstance(top, str):
        text = top.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise LocalizeError(f"Cannot read top={text!r}; use e.g. 0.01, '1%' or 172.") from None
        if value.is_integer() and value >= 1 and not text.endswith("%"):
            return int(value)
        return value
    return top


def resolve_top(top: float | int | str, n_units: int) -> int:
    """Number of units to select: a fraction (float in (0, 1], or ``"1%"``) or a count (int).

    A fraction gives ``int(fraction * n_units)`` as in the reference.
    """
    top = parse_top(top)
    if isinstance(top, bool) or not isinstance(top, int | float):
        raise LocalizeError(f"top must be a fraction or a count, got {top!r}.")
    if isinstance(top, float):
        if not 0 < top <= 1:
            raise LocalizeError(
                f"top={top} is not a fraction in (0, 1]. Pass a float such as 0.01 for 1% of "
                "the units, or an int for a count."
            )
        k = int(top * n_units)
        if k < 1:
            raise LocalizeError(
                f"top={top} of {n_units} units selects none; use a larger fraction or a count."
            )
        return k
    if not 1 <= top <= n_units:
        raise LocalizeError(
            f"top={top} units, but there are {n_units} to choose from; pass a count between 1 "
            f"and {n_units}, or a fraction."
        )
    return top


def select_top(
    scores: Float[Tensor, "layer unit"], top: float | int | str, selection: str = "global"
) -> Bool[Tensor, "layer unit"]:
    """Mask of the highest-scoring units (NaN scores are never selected)."""
    clean = torch.nan_to_num(scores.to(torch.float64), nan=-torch.inf)
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    if selection == "global":
        k = resolve_top(top, scores.numel())
        mask.view(-1)[clean.reshape(-1).topk(k).indices] = True
    elif selection == "per_layer":
        k = resolve_top(top, scores.shape[1])
        mask.scatter_(1, clean.topk(k, dim=1).indices, True)
    else:
        raise LocalizeError(f"Unknown selection {selection!r}; use one of {SELECTIONS}.")
    return mask


class Localization:
    """The result of :func:`localize`.

    Attributes:
        units: the selected :class:`Units`.
        stats: per-unit tensors ``[n_layers, width]``: ``t``, ``df``, ``p``, ``q``, ``d``,
            ``mean_<condition>`` and ``abs_mean_<condition>`` for both contrasted conditions,
            and ``magnitude`` (mean |activation| over all stimuli).
        config: the :class:`LocalizeConfig` used.
        record: how it was made (contrast name, hash and sizes, model signature, package
            versions, timings, date).
    """

    def __init__(
        self,
        units: Units,
        stats: dict[str, Tensor],
        config: LocalizeConfig,
        record: dict[str, Any],
    ) -> None:
        self.units = units
        self.stats = stats
        self.config = config
        self.record = record

    def __repr__(self) -> str:
        contrast = self.record.get("contrast", {})
        return (
            f"Localization({contrast.get('name')!r} on {self.units.model!r}: "
            f"{len(self.units)} units at {self.units.site!r})"
        )

    @property
    def conditions(self) -> tuple[str, str]:
        contrast = self.record["contrast"]
        return contrast["positive"], contrast["negative"]

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: layer, unit, statistics, magnitude, magnitude rank, selected."""
        frame = unit_table(self.stats)
        frame["magnitude_pct"] = frame["magnitude"].rank(pct=True)
        frame["selected"] = self.units.mask.reshape(-1).numpy()
        return frame

    def plot(self) -> Any:
        """Where the units sit (count per layer) beside selectivity vs activation magnitude."""
        from .plotting import plot_localization

        return plot_localization(self)

    def save(self, folder: str | Path, *, force: bool = False, figure: bool = True) -> Path:
        """Write the localization to ``folder``: ``record.json``, ``stats.safetensors``,
        ``units.safetensors``, ``units.csv`` (one row per unit) and ``layers.png``.

        The folder is written under a temporary name and renamed when complete, so an
        interrupted save never leaves a folder that looks finished. An existing folder is
        replaced only with ``force=True``.
        """
        folder = Path(folder)
        with atomic_folder(folder, force=force) as tmp:
            self.units.save(tmp / "units.safetensors")
            stats = {k: v.contiguous() for k, v in self.stats.items()}
            save_file(stats, str(tmp / "stats.safetensors"))
            self.to_frame().to_csv(tmp / "units.csv", index=False)
            if figure:
                import matplotlib.pyplot as plt

                fig = self.plot()
                fig.savefig(tmp / "layers.png", dpi=120, bbox_inches="tight")
                plt.close(fig)
            record = {**self.record, "config": self.config.to_dict()}
            (tmp / "record.json").write_text(json.dumps(record, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path, model: Any | None = None) -> Localization:
        """Read a folder written by :meth:`save` (refusing another model's when given one)."""
        folder = Path(folder)
        record_path = folder / "record.json"
        if not record_path.is_file():
            raise LocalizeError(f"{folder} holds no record.json: not a saved localization.")
        record = json.loads(record_path.read_text())
        units = Units.load(folder / "units.safetensors", model)
        stats = load_file(str(folder / "stats.safetensors"))
        config = LocalizeConfig.from_dict(record.pop("config", {}))
        return cls(units, stats, config, record)


def _resolve_config(preset: str | None, contrast_pooling: str, **given: Any) -> LocalizeConfig:
    settings = {k: v for k, v in given.items() if v is not None}
    if preset is not None:
        if preset not in PRESETS:
            raise LocalizeError(f"Unknown preset {preset!r}; presets: {sorted(PRESETS)}.")
        fixed = {k: v for k, v in PRESETS[preset].items() if k != "by_pooling"}
        fixed.update(PRESETS[preset]["by_pooling"][contrast_pooling])
        clash = {k: v for k, v in settings.items() if k in fixed and fixed[k] != v}
        if clash:
            raise LocalizeError(
                f"Preset {preset!r} fixes {sorted(clash)} (to "
                f"{ {k: fixed[k] for k in clash} }); drop those arguments or drop the preset."
            )
        settings.update(fixed)
    return LocalizeConfig(**settings, preset=preset)


def localize(
    model: Any,
    contrast: str | Contrast = "language",
    *,
    site: str | None = None,
    top: float | int | str = 0.01,
    pooling: str | None = None,
    absolute: bool | None = None,
    selection: str | None = None,
    preset: str | None = None,
    batch_size: int | None = None,
    truncate: int | None = None,
    prepend_bos: bool | None = None,
    progress: bool = True,
) -> Localization:
    """Localize the units selective for ``contrast`` at ``site``.

    Args:
        model: a TransformerBridge (see :func:`load_model`).
        contrast: a :class:`Contrast` or the name of a built-in one (``"language"``).
        site: unit site; default ``resid_post`` (block outputs, as in the reference).
        top: fraction of units (``0.01``, ``"1%"``) or a count; default 1%.
        pooling: ``last`` or ``mean``; default the contrast's.
        absolute: Welch t on |activation| (default True, the reference).
        selection: ``global`` (default) or ``per_layer``.
        preset: ``"alkhamissi2025"`` reproduces the reference recipe exactly (last token
            and 12-token truncation for contrasts pooled by the last token, such as
            language; mean over tokens without truncation for MD and ToM).
        batch_size: texts per forward pass (default 32; the preset uses 1).
        truncate: keep the first N tokens (default: no truncation; the preset uses 12).
        prepend_bos: default: as the model's tokenizer does.
        progress: show progress bars.

    Returns:
        A :class:`Localization`.
    """
    if isinstance(contrast, str):
        contrast = Contrast.builtin(contrast)
    if not isinstance(contrast, Contrast):
        raise LocalizeError(
            f"contrast must be a Contrast or a built-in name, got {type(contrast).__name__}."
        )
    config = _resolve_config(
        preset,
        contrast.pooling,
        site=site,
        top=parse_top(top),
        pooling=pooling,
        absolute=absolute,
        selection=selection,
        batch_size=batch_size,
        truncate=truncate,
        prepend_bos=prepend_bos,
    )
    site_obj = get_site(config.site, model)
    n_layers = int(model.cfg.n_layers)
    hook_names = [site_obj.hook_name(layer) for layer in range(n_layers)]
    pooling_used = config.pooling or contrast.pooling
    # Fail on a bad `top` before any forward pass.
    width = site_obj.n_units(model)
    resolve_top(config.top, n_layers * width if config.selection == "global" else width)

    timings: dict[str, float] = {}
    moments = {}
    start = time.perf_counter()
    for cond in (contrast.positive_condition, contrast.negative_condition):
        moments[cond] = accumulate_moments(
            model,
            contrast.conditions[cond],
            hook_names,
            pooling=pooling_used,
            batch_size=config.batch_size,
            truncate=config.truncate,
            prepend_bos=config.prepend_bos,
            progress=progress,
            desc=f"{contrast.name}: {cond}",
        )
    timings["forward_s"] = time.perf_counter() - start

    start = time.perf_counter()
    pos, neg = (moments[contrast.positive_condition], moments[contrast.negative_condition])
    a, b = (pos.absolute, neg.absolute) if config.absolute else (pos.raw, neg.raw)
    t, df, p = welch_t(a, b)
    stats = {
        "t": t,
        "df": df,
        "p": p,
        "q": benjamini_hochberg(p),
        "d": cohens_d(a, b),
        f"mean_{contrast.positive_condition}": pos.raw.mean,
        f"mean_{contrast.negative_condition}": neg.raw.mean,
        f"abs_mean_{contrast.positive_condition}": pos.absolute.mean,
        f"abs_mean_{contrast.negative_condition}": neg.absolute.mean,
        "magnitude": (pos.absolute.mean * pos.absolute.n + neg.absolute.mean * neg.absolute.n)
        / (pos.absolute.n + neg.absolute.n),
    }
    if not torch.isfinite(t).any() or float(t.abs().nan_to_num().max()) == 0:
        warnings.warn(
            f"No unit tells {contrast.positive_condition!r} from {contrast.negative_condition!r} "
            "(every t is 0 or undefined): the conditions give identical activations, so "
            "nothing is selective and the selected units are arbitrary.",
            stacklevel=2,
        )
    mask = select_top(t, config.top, config.selection)
    timings["stats_s"] = time.perf_counter() - start

    units = Units(mask, site_obj.name, model.cfg.model_name)
    record = {
        "created": now(),
        "contrast": {
            "name": contrast.name,
            "hash": contrast.hash,
            "sizes": contrast.sizes(),
            "positive": contrast.positive_condition,
            "negative": contrast.negative_condition,
            "pooling": pooling_used,
            "description": contrast.description,
        },
        "model": model_signature(model),
        "n_selected": len(units),
        "n_units": units.n_units,
        "hook_names": hook_names,
        "versions": versions(),
        "timings": timings,
    }
    return Localization(units, stats, config, record)
