"""``localize``: find the units that respond more to one condition than to its control.

For each unit at a site, pooled activations are streamed into running moments per condition;
Welch's t (positive vs negative condition, on absolute activations by default, as in the
reference), its p-value, Benjamini-Hochberg q and Cohen's d are computed from the moments,
and units are selected: the top fraction or count by t, over all layers together
(``global``) or per layer, or every unit that passes a significance threshold
(``top="fdr:0.05"``: Benjamini-Hochberg over the site; ``top="perm:0.05"``: a family-wise
max-t threshold from condition-label permutations). With ``holdout=`` the units are selected
on one part of the stimuli and their selectivity is measured again on the rest.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from jaxtyping import Bool, Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .activations import accumulate_moments, check_pooling, stacked_activations
from .config import (
    SELECTIONS,
    BandLike,
    LocalizeConfig,
    parse_band,
    parse_top,
    resolve_config,
    significance,
)
from .contrast import Contrast
from .data.io import read_csv
from .errors import LocalizeError
from .models import model_dtype, model_signature
from .options import PRESETS
from .protocol import Model
from .results import atomic_folder, check_kind, now, read_record, versions, write_record
from .sites import Site, get_site
from .stats import Moments, benjamini_hochberg, cohens_d, permutation_max_t, welch_t
from .units import Units, unit_table

__all__ = [
    "PRESETS",
    "Localization",
    "LocalizeConfig",
    "holdout_split",
    "localize",
    "parse_band",
    "parse_top",
    "resolve_top",
    "select_band",
    "select_top",
]

ROLE_STATS = ("mean_positive", "mean_negative", "abs_mean_positive", "abs_mean_negative")


def resolve_top(top: float | int | str, n_units: int) -> int:
    """Number of units to select: a fraction (float in (0, 1], or ``"1%"``) or a count (int).

    A fraction gives ``int(fraction * n_units)`` as in the reference.
    """
    top = parse_top(top)
    if isinstance(top, str):
        raise LocalizeError(
            f"top={top!r} selects by significance, not a number of units; here a fraction or a "
            "count is needed."
        )
    if isinstance(top, float):
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


def band_positions(band: BandLike, n_units: int) -> tuple[int, int]:
    """The ranks ``[start, end)`` a band covers among ``n_units`` ranked units: the
    ``floor((hi - lo) * n_units)`` units from rank ``ceil(lo * n_units)`` (rank 0 is the most
    selective). ``(0, f)`` is exactly ``top=f`` and ``(1 - f, 1)`` the same number of units at
    the other end of the ranking."""
    lo, hi = parse_band(band)
    eps = 1e-9  # (0.9 - 0.8) * 100 is 9.999999999999998: read it as 10
    start = math.ceil(lo * n_units - eps)
    count = math.floor((hi - lo) * n_units + eps)
    if count < 1:
        raise LocalizeError(
            f"band=({lo:g}, {hi:g}) of {n_units} units selects none; use a wider band."
        )
    end = min(start + count, n_units)
    return end - count, end


def select_band(
    scores: Float[Tensor, "layer unit"], band: BandLike, selection: str = "global"
) -> Bool[Tensor, "layer unit"]:
    """Mask of the units whose rank by score lies in ``band`` (see :func:`band_positions`).

    Units are ranked by score, highest first, as :func:`select_top` ranks them (over all
    layers together, or within each layer for ``selection="per_layer"``); NaN scores rank
    last, so the least selective band holds the units whose t is undefined. Ties keep the
    units' order (layer, then unit).
    """
    clean = torch.nan_to_num(scores.to(torch.float64), nan=-torch.inf)
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    if selection == "global":
        start, end = band_positions(band, scores.numel())
        order = clean.reshape(-1).sort(descending=True, stable=True).indices
        mask.view(-1)[order[start:end]] = True
    elif selection == "per_layer":
        start, end = band_positions(band, scores.shape[1])
        order = clean.sort(dim=1, descending=True, stable=True).indices
        mask.scatter_(1, order[:, start:end], True)
    else:
        raise LocalizeError(f"Unknown selection {selection!r}; use one of {SELECTIONS}.")
    return mask


class Localization:
    """The result of :func:`localize`.

    Attributes:
        units: the selected :class:`Units`.
        stats: per-unit tensors ``[n_layers, width]``: ``t``, ``df``, ``p``, ``q``, ``d``,
            ``mean_positive``, ``mean_negative``, ``abs_mean_positive``,
            ``abs_mean_negative`` (the two contrasted conditions, named in ``conditions``),
            ``magnitude`` (mean |activation| over all stimuli), and with a held-out split
            ``heldout_t`` and ``heldout_d``.
        config: the :class:`LocalizeConfig` used.
        record: how it was made (contrast name, hash and sizes, model signature, package
            versions, timings, date, and ``selection``: how many units passed and why).
        holdout: with ``holdout=``, the selected units' selectivity in-sample and held out
            (a DataFrame), else None.
    """

    def __init__(
        self,
        units: Units,
        stats: dict[str, Tensor],
        config: LocalizeConfig,
        record: dict[str, Any],
        holdout: pd.DataFrame | None = None,
    ) -> None:
        self.units = units
        self.config = config
        self.record = record
        self.stats = stats
        self.holdout = holdout

    def __repr__(self) -> str:
        return (
            f"Localization({self.contrast!r} on {self.units.model_name!r}: "
            f"{len(self.units)} units at {self.units.site!r})"
        )

    def _repr_html_(self) -> str:
        """The card: contrast, model, site, how many units were selected and how, their
        mean t, where it was computed, the units per layer and the summary."""
        from .cards import card, computed_on, layers_figure

        units = self.units
        pos, neg = self.conditions
        band = self.config.band
        chosen_by = (
            f"band={band[0]:g}-{band[1]:g}" if band is not None else f"top={self.config.top!r}"
        )
        selected_t = self.stats["t"][units.mask]
        facts = {
            "contrast": f"{self.contrast}: {pos} > {neg} ({self.record['contrast'].get('sizes')})",
            "model": units.model_name,
            "site": units.site,
            "selected": f"{len(units):,} of {units.n_units:,} ({len(units) / units.n_units:.3%}); "
            f"{chosen_by}, {self.config.selection}",
            "mean t (selected)": f"{float(selected_t.mean()):.2f}" if len(units) else "-",
            "preset": self.config.preset,
            "computed": computed_on(self.record.get("model")),
        }
        figure = layers_figure(units.mask.sum(1).numpy()) if len(units) else ""
        return card("Localization", facts, figure, self.summary())

    @property
    def contrast(self) -> str:
        """The contrast's name."""
        return str(self.record["contrast"]["name"])

    @property
    def conditions(self) -> tuple[str, str]:
        """The positive and the negative condition."""
        contrast = self.record["contrast"]
        return contrast["positive"], contrast["negative"]

    def _identity(self) -> dict[str, Any]:
        return {"model": self.units.model_name, "contrast": self.contrast, "site": self.units.site}

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: ``model``, ``contrast``, ``site``, ``layer``, ``unit``, ``t``,
        ``df``, ``p``, ``q``, ``d``, ``magnitude``, ``magnitude_pct`` (its rank), ``selected``
        (and ``heldout_t``, ``heldout_d`` with a held-out split). The columns are the same for
        every contrast and model, so frames stack; per-condition means are in
        :meth:`condition_frame`."""
        keep = ["t", "df", "p", "q", "d", "magnitude", "heldout_t", "heldout_d"]
        frame = unit_table({k: self.stats[k] for k in keep if k in self.stats})
        frame["magnitude_pct"] = frame["magnitude"].rank(pct=True)
        frame["selected"] = self.units.mask.reshape(-1).numpy()
        for i, (key, value) in enumerate(self._identity().items()):
            frame.insert(i, key, value)
        return frame

    def condition_frame(self) -> pd.DataFrame:
        """Long format, one row per unit and contrasted condition: ``model``, ``contrast``,
        ``site``, ``layer``, ``unit``, ``condition``, ``role`` (positive / negative),
        ``mean`` and ``abs_mean`` (mean signed and absolute pooled activation)."""
        frames = []
        for condition, role in zip(self.conditions, ("positive", "negative"), strict=True):
            part = unit_table(
                {"mean": self.stats[f"mean_{role}"], "abs_mean": self.stats[f"abs_mean_{role}"]}
            )
            part.insert(2, "condition", condition)
            part.insert(3, "role", role)
            frames.append(part)
        frame = pd.concat(frames, ignore_index=True)
        for i, (key, value) in enumerate(self._identity().items()):
            frame.insert(i, key, value)
        return frame

    def select(
        self,
        top: float | int | str | None = None,
        *,
        band: BandLike | None = None,
    ) -> Units:
        """Another unit set from the same statistics, without a model pass.

        ``top``: the most selective fraction or count (as for :func:`localize`); ``band``:
        ``(lo, hi)``, the units whose rank by t lies in that band of the ranking, from the
        most selective (0) to the least (1) (:func:`band_positions` says how it rounds:
        ``band=(0.99, 1.0)`` holds as many units as ``top=0.01``, at the other end). Give
        one of the two. Ranks are global or per layer as this localization's ``selection``.

        >>> low = loc.select(band=(0.9, 1.0))
        >>> len(low) == len(loc.select(top=0.1)) and len(low & loc.select(top=0.1)) == 0
        True
        """
        if (top is None) == (band is None):
            raise LocalizeError(
                "select() takes top= (the most selective fraction or count) or band=(lo, hi) "
                f"(a band of the ranking), one of them; got top={top!r}, band={band!r}."
            )
        t = self.stats["t"]
        if band is not None:
            mask = select_band(t, parse_band(band), self.config.selection)
        else:
            assert top is not None
            if significance(parse_top(top)) is not None:
                raise LocalizeError(
                    f"select(top={top!r}): a significance threshold needs the stimuli; "
                    "localize again with that top, or give a fraction or a count here."
                )
            mask = select_top(t, top, self.config.selection)
        return self.units.with_mask(mask)

    def summary(self) -> str:
        """The finding in a sentence or two, with the numbers: how many units of which site
        were selected and how, where half of them sit, their mean t, how many are
        high-magnitude units, and with a held-out split their selectivity held out."""
        from .ablation import high_magnitude_units
        from .cards import busiest_layers, layer_ranges

        units = self.units
        pos, neg = self.conditions
        n, total = len(units), units.n_units
        model = units.model_name
        head = (
            f"The {self.contrast} localizer ({pos} > {neg}) selected {n:,} of {total:,} "
            f"{units.site} units ({n / total:.2%}) of {model}"
        )
        selection = self.record.get("selection", {})
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
        t, q = self.stats["t"][units.mask], self.stats["q"][units.mask]
        sentences = [
            head + f". Half of them sit in layers {layer_ranges(busiest_layers(counts))}; their "
            f"mean Welch t is {float(t.mean()):.1f} (max q {float(q.max()):.2g})."
        ]
        loud = len(high_magnitude_units(units, self.stats["magnitude"]))
        if loud:
            sentences.append(
                f"{loud} of them are high-magnitude units (mean |activation| at least 20 times the "
                "site's median): compare ablations with magnitude-matched controls."
            )
        if self.holdout is not None:
            rows = self.holdout.set_index("sample")
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

    def plot(self) -> Any:
        """Where the units sit (count per layer) beside selectivity vs activation magnitude."""
        from .plotting import plot_localization

        return plot_localization(self)

    def save(self, folder: str | Path, *, force: bool = False, figure: bool = True) -> Path:
        """Write the localization to ``folder``: ``record.json``, ``stats.safetensors``,
        ``units.safetensors``, ``units.csv`` (one row per unit), ``conditions.csv`` (one row
        per unit and condition), ``holdout.csv`` (with a held-out split) and ``layers.png``.

        The folder is written under a temporary name and renamed when complete, so an
        interrupted save never leaves a folder that looks finished. An existing folder is
        replaced only with ``force=True``, and only if it is a results folder this toolkit
        wrote (see :func:`tl_localize.results.atomic_folder`).
        """
        folder = Path(folder)
        with atomic_folder(folder, force=force) as tmp:
            self.units.save(tmp / "units.safetensors")
            stats = {k: v.contiguous() for k, v in self.stats.items()}
            save_file(stats, str(tmp / "stats.safetensors"), metadata={"format": STATS_FORMAT})
            self.to_frame().to_csv(tmp / "units.csv", index=False)
            self.condition_frame().to_csv(tmp / "conditions.csv", index=False)
            if self.holdout is not None:
                self.holdout.to_csv(tmp / "holdout.csv", index=False)
            if figure:
                import matplotlib.pyplot as plt

                fig = self.plot()
                fig.savefig(tmp / "layers.png", dpi=120, bbox_inches="tight")
                plt.close(fig)
            record = {**self.record, "config": self.config.to_dict(), "summary": self.summary()}
            write_record(tmp, record, "localization")
        return folder

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> Localization:
        """Read a folder written by :meth:`save`; with ``model``, refuse one made for another
        model. The files are checked against each other: the mask's header and the record
        must name the same model, site and shape, and every statistic must have that shape."""
        folder = Path(folder)
        record = read_record(folder, "a saved localization (tl-localize localize --out ...)")
        check_kind(folder, record, "localization", required=False)  # unmarked: older releases
        try:
            contrast = record["contrast"]
            signature = record["model"]
            _ = contrast["name"], contrast["positive"], contrast["negative"], signature["model"]
            settings = record.pop("config", {})
            if not isinstance(settings, dict):
                raise TypeError(f"'config' is a {type(settings).__name__}, not an object")
        except (KeyError, TypeError) as error:
            what = f"no {error}" if isinstance(error, KeyError) else str(error)
            raise LocalizeError(
                f"{folder / 'record.json'} is not the record of a localization ({what}); "
                "localize again to write a complete folder."
            ) from None
        try:
            config = LocalizeConfig.from_dict(settings)
        except (LocalizeError, TypeError) as error:  # a setting of the wrong value or type
            raise LocalizeError(
                f"{folder / 'record.json'}: its 'config' is damaged ({error}); localize again."
            ) from None
        units = Units.load(folder / "units.safetensors")
        if (units.model_name, units.site) != (signature["model"], config.site):
            raise LocalizeError(
                f"{folder}: units.safetensors belongs to model {units.model_name!r} at site "
                f"{units.site!r}, but record.json names {signature['model']!r} at "
                f"{config.site!r}; the folder mixes files of two results. Localize again."
            )
        if units.dtype is None and isinstance(signature.get("dtype"), str):
            units.dtype = signature["dtype"]  # saved before masks recorded their dtype
        if units.fingerprint is None and signature.get("fingerprint"):
            units.fingerprint = signature["fingerprint"]
        stats = _load_stats(folder / "stats.safetensors", tuple(units.mask.shape), contrast)
        if model is not None:
            units.check_model(model)
        holdout = None
        if (folder / "holdout.csv").is_file():
            holdout = read_csv(folder / "holdout.csv", "held-out selectivity table")
        return cls(units, stats, config, record, holdout)


STATS_FORMAT = "tl_localize.stats/1"


def _load_stats(path: Path, shape: tuple[int, ...], contrast: dict[str, Any]) -> dict[str, Tensor]:
    if not path.is_file():
        raise LocalizeError(f"No {path.name} in {path.parent}: the folder is incomplete.")
    try:
        stats = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise LocalizeError(f"{path} is damaged or not a statistics file ({error}).") from None
    # earlier releases named the per-condition means after the conditions
    for prefix in ("mean_", "abs_mean_"):
        for role in ("positive", "negative"):
            old = f"{prefix}{contrast[role]}"
            if f"{prefix}{role}" not in stats and old in stats:
                stats[f"{prefix}{role}"] = stats.pop(old)
    missing = [k for k in ("t", "p", "q", "d", "magnitude", *ROLE_STATS) if k not in stats]
    if missing:
        raise LocalizeError(f"{path} lacks the statistic {missing[0]!r}; the file is damaged.")
    bad = [k for k, v in stats.items() if tuple(v.shape) != shape or not v.is_floating_point()]
    if bad:
        raise LocalizeError(
            f"{path}: the statistic {bad[0]!r} has shape {tuple(stats[bad[0]].shape)} "
            f"({stats[bad[0]].dtype}), not the mask's {shape}; the folder mixes files of two "
            "results or is damaged."
        )
    return stats


def holdout_split(
    n: int, holdout: float, rng: random.Random, cond: str
) -> tuple[list[int], list[int]]:
    """Indices of the texts to select on and of those held out."""
    order = list(range(n))
    rng.shuffle(order)
    n_out = round(holdout * n)
    kept, held = sorted(order[n_out:]), sorted(order[:n_out])
    if len(kept) < 2 or len(held) < 2:
        raise LocalizeError(
            f"holdout={holdout} leaves {len(kept)} text(s) to select on and {len(held)} to "
            f"measure on in condition {cond!r} ({n} texts); each part needs at least 2. Use "
            "more stimuli or another holdout share."
        )
    return kept, held


def _stats(pos: tuple[Moments, Moments], neg: tuple[Moments, Moments], absolute: bool) -> dict:
    """t, df, p, q, d and the means from (raw, absolute) moments of each condition."""
    a, b = (pos[1], neg[1]) if absolute else (pos[0], neg[0])
    t, df, p = welch_t(a, b)
    return {
        "t": t,
        "df": df,
        "p": p,
        "q": benjamini_hochberg(p),
        "d": cohens_d(a, b),
        "mean_positive": pos[0].mean,
        "mean_negative": neg[0].mean,
        "abs_mean_positive": pos[1].mean,
        "abs_mean_negative": neg[1].mean,
        "magnitude": (pos[1].mean * pos[1].n + neg[1].mean * neg[1].n) / (pos[1].n + neg[1].n),
    }


def localize(
    model: Model,
    contrast: str | Contrast = "language",
    *,
    site: str | None = None,
    top: float | int | str | None = None,
    band: BandLike | None = None,
    pooling: str | None = None,
    absolute: bool | None = None,
    selection: str | None = None,
    preset: str | None = None,
    batch_size: int | None = None,
    truncate: int | None = None,
    prepend_bos: bool | None = None,
    holdout: float | int | None = None,
    seed: int | None = None,
    n_permutations: int | None = None,
    check: bool = True,
    progress: bool = True,
) -> Localization:
    """Localize the units selective for ``contrast`` at ``site``.

    Args:
        model: a TransformerBridge (see :func:`load_model`).
        contrast: a :class:`Contrast` or the name of a built-in one (``"language"``).
        site: unit site; default ``resid_post`` (block outputs, as in the reference).
        top: fraction of units (``0.01``, ``"1%"``), a count (``172``), or every unit that
            passes a significance threshold: ``"fdr:0.05"`` (Benjamini-Hochberg q over the
            site, t > 0) or ``"perm:0.05"`` (above the family-wise max-t threshold from
            ``n_permutations`` condition-label permutations); default 1% (none with
            ``band``).
        band: instead of ``top``, a band of the selectivity ranking: ``(lo, hi)`` fractions
            from the most selective (0) to the least (1), ``(0.99, 1.0)`` or ``"99-100%"``
            for the least selective 1% (as many units as ``top=0.01``; see
            :func:`band_positions`); per layer with ``selection="per_layer"``.
        pooling: ``last`` or ``mean``; default the contrast's.
        absolute: Welch t on |activation| (default True, the reference).
        selection: ``global`` (default) or ``per_layer``.
        preset: ``"alkhamissi2025"`` reproduces the reference recipe (last token and 12-token
            truncation for contrasts pooled by the last token, such as language; mean over
            tokens without truncation for MD and ToM); with ``batch_size=1`` exactly.
        batch_size: texts per forward pass (default 32).
        truncate: keep the first N tokens (default: no truncation; the preset uses 12).
        prepend_bos: default: as the model's tokenizer does.
        holdout: select on a random ``1 - holdout`` of each condition's stimuli and measure
            the selected units on the rest (``Localization.holdout``); default: select on all.
        seed: seed of the held-out split and the permutations (default 0).
        n_permutations: for ``top="perm:..."`` (default 1000, at least 20).
        check: first check, on three of the stimuli (the shortest, the median and the
            longest, so the batch is padded), that batched (right-padded) pooling gives what
            one text at a time gives at this site, within a tolerance of the model's dtype
            and depth (:mod:`tl_localize.precision`; recorded in ``record["checks"]``; a
            failure is an error with the measured difference).
        progress: show progress bars.

    Returns:
        A :class:`Localization`.
    """
    contrast = _as_contrast(contrast)
    config = resolve_config(
        preset,
        contrast.pooling,
        site=site,
        top=top,
        band=band,
        pooling=pooling,
        absolute=absolute,
        selection=selection,
        batch_size=batch_size,
        truncate=truncate,
        prepend_bos=prepend_bos,
        holdout=holdout,
        seed=seed,
        n_permutations=n_permutations,
    )
    plan = _plan(model, contrast, config)  # every input checked before any forward pass
    checks = [_check_batching(model, plan)] if check else []
    start = time.perf_counter()
    moments, stored = _pool(model, plan, progress)
    timings = {"forward_s": time.perf_counter() - start}
    start = time.perf_counter()
    stats = _score(plan, moments["select"])
    mask, selected_by = _select(plan, stats, stored)
    holdout_frame = _score_heldout(plan, stats, moments["heldout"], mask)
    timings["stats_s"] = time.perf_counter() - start
    return _localization(model, plan, stats, mask, selected_by, checks, timings, holdout_frame)


# -- the steps of localize -------------------------------------------------------------------
_Parts = dict[str, dict[str, list[str]]]  # "select" / "heldout" -> role -> texts
_RoleMoments = dict[str, tuple[Moments, Moments]]  # role -> (raw, absolute) moments


@dataclass(frozen=True)
class _Plan:
    """What a localization does, resolved and checked before any forward pass."""

    contrast: Contrast
    config: LocalizeConfig
    site: Site
    hook_names: list[str]
    pooling: str
    test: tuple[str, float] | None  # ("fdr" | "perm", alpha) for a significance threshold
    roles: dict[str, str]  # "positive" / "negative" -> condition
    parts: _Parts
    heldout_index: dict[str, list[int]]  # condition -> held-out positions


def _as_contrast(contrast: str | Contrast) -> Contrast:
    if isinstance(contrast, str):
        contrast = Contrast.builtin(contrast)
    if not isinstance(contrast, Contrast):
        raise LocalizeError(
            f"contrast must be a Contrast or a built-in name, got {type(contrast).__name__}."
        )
    return contrast


def _plan(model: Model, contrast: Contrast, config: LocalizeConfig) -> _Plan:
    """The site's hooks, the selection rule checked against the number of units, and the texts
    of each condition split into the part to select on and the part held out."""
    site = get_site(config.site, model)
    if config.preset is not None and config.batch_size == 1:
        dtype = model_dtype(model)
        if dtype != torch.float32:
            raise LocalizeError(
                f"The exact mode of preset {config.preset!r} (batch_size=1) reproduces the "
                f"reference in float32, and this model is loaded in {dtype}. Load it with "
                "load_model(..., dtype='float32'), or drop batch_size=1 for the batched mode."
            )
    n_layers = int(model.cfg.n_layers)
    width = site.n_units(model)
    test = None if config.top is None else significance(config.top)
    n_ranked = n_layers * width if config.selection == "global" else width
    if config.band is not None:  # fail on a bad `top` or `band` before any forward pass
        band_positions(config.band, n_ranked)
    elif test is None:
        assert config.top is not None
        resolve_top(config.top, n_ranked)
    roles = {"positive": contrast.positive_condition, "negative": contrast.negative_condition}
    parts: _Parts = {"select": {}, "heldout": {}}
    heldout_index: dict[str, list[int]] = {}
    rng = random.Random(config.seed)
    for role, cond in roles.items():
        texts = list(contrast.conditions[cond])
        if config.holdout is None:
            parts["select"][role] = texts
        else:
            kept, held = holdout_split(len(texts), config.holdout, rng, cond)
            parts["select"][role] = [texts[i] for i in kept]
            parts["heldout"][role] = [texts[i] for i in held]
            heldout_index[cond] = held
    return _Plan(
        contrast=contrast,
        config=config,
        site=site,
        hook_names=[site.hook_name(layer) for layer in range(n_layers)],
        pooling=config.pooling or contrast.pooling,
        test=test,
        roles=roles,
        parts=parts,
        heldout_index=heldout_index,
    )


def _check_batching(model: Model, plan: _Plan) -> dict[str, Any]:
    """Batched pooling against one text at a time on the shortest, the median and the longest
    text (batched, they are padded); a difference beyond the dtype's tolerance is an error."""
    by_length = sorted(plan.parts["select"]["positive"], key=len)
    sample = list(dict.fromkeys(by_length[i] for i in (0, len(by_length) // 2, -1)))
    found = check_pooling(
        model, sample, site=plan.site.name, pooling=plan.pooling, truncate=plan.config.truncate,
        prepend_bos=plan.config.prepend_bos,
    )  # fmt: skip
    if not found["passed"]:
        raise LocalizeError(
            f"Model check {found['check']} failed: batched pooling differs from one text "
            f"at a time by {found['value']:.3g} (scaled difference; tolerance "
            f"{found['tolerance']:.3g} for {found['detail'].rsplit(', ', 1)[-1]})."
            " The model's wiring gives different activations for padded batches; run "
            "check_model(model) for details, or localize with batch_size=1."
        )
    return found


def _pool(
    model: Model, plan: _Plan, progress: bool
) -> tuple[dict[str, _RoleMoments], dict[str, Tensor]]:
    """Running moments of the pooled activations of each part and role; with a permutation
    threshold, also the activations of the part selected on (the permutations need them)."""
    config = plan.config
    settings: dict[str, Any] = {
        "pooling": plan.pooling,
        "batch_size": config.batch_size,
        "truncate": config.truncate,
        "prepend_bos": config.prepend_bos,
        "progress": progress,
    }
    moments: dict[str, _RoleMoments] = {"select": {}, "heldout": {}}
    stored: dict[str, Tensor] = {}
    for part, by_role in plan.parts.items():
        for role, texts in by_role.items():
            desc = f"{plan.contrast.name}: {plan.roles[role]}"
            desc += " (held out)" if part == "heldout" else ""
            if part == "select" and plan.test is not None and plan.test[0] == "perm":
                values = stacked_activations(model, texts, plan.hook_names, desc=desc, **settings)
                stored[role] = values
                moments[part][role] = (Moments.of(values), Moments.of(values.abs()))
            else:
                streamed = accumulate_moments(model, texts, plan.hook_names, desc=desc, **settings)
                moments[part][role] = (streamed.raw, streamed.absolute)
    return moments, stored


def _score(plan: _Plan, moments: _RoleMoments) -> dict[str, Tensor]:
    """The per-unit statistics; a warning when no unit tells the conditions apart."""
    stats = _stats(moments["positive"], moments["negative"], plan.config.absolute)
    t = stats["t"]
    if not torch.isfinite(t).any() or float(t.abs().nan_to_num().max()) == 0:
        warnings.warn(
            f"No unit tells {plan.roles['positive']!r} from {plan.roles['negative']!r} (every "
            "t is 0 or undefined): the conditions give identical activations, so nothing is "
            "selective and the selected units are arbitrary.",
            stacklevel=3,  # the caller of localize
        )
    return stats


def _select(
    plan: _Plan, stats: dict[str, Tensor], stored: dict[str, Tensor]
) -> tuple[Tensor, dict[str, Any]]:
    """The selected units' mask and how they were selected (the record's ``selection``)."""
    config, t = plan.config, stats["t"]
    if config.band is not None:
        mask = select_band(t, config.band, config.selection)
        return mask, {
            "method": "band",
            "band": list(config.band),
            "n_undefined": int((mask & t.isnan()).sum()),  # NaN t ranks last
        }
    if plan.test is None:
        assert config.top is not None
        return select_top(t, config.top, config.selection), {"method": "top", "top": config.top}
    return _select_significant(plan, stats, stored)


def _select_significant(
    plan: _Plan, stats: dict[str, Tensor], stored: dict[str, Tensor]
) -> tuple[Tensor, dict[str, Any]]:
    """Every unit above a significance threshold: Benjamini-Hochberg q, or the family-wise
    max-t threshold of condition-label permutations; a warning when none passes."""
    assert plan.test is not None
    config, (kind, alpha) = plan.config, plan.test
    finite_t = torch.nan_to_num(stats["t"], nan=-torch.inf)
    record: dict[str, Any] = {"method": kind, "top": config.top, "alpha": alpha}
    if kind == "fdr":
        mask = (stats["q"] < alpha) & (finite_t > 0)
    else:
        pos_values, neg_values = stored["positive"], stored["negative"]
        if config.absolute:
            pos_values, neg_values = pos_values.abs(), neg_values.abs()
        null = permutation_max_t(
            pos_values.flatten(1),
            neg_values.flatten(1),
            n_permutations=config.n_permutations,
            seed=config.seed,
        )
        threshold = float(torch.quantile(null, 1 - alpha))
        mask = finite_t > threshold
        record.update(threshold=threshold, n_permutations=config.n_permutations, seed=config.seed)
    record["n_passed"] = int(mask.sum())
    if not mask.any():
        warnings.warn(
            f"No unit passes {kind} at {alpha:g} for {plan.roles['positive']!r} > "
            f"{plan.roles['negative']!r}: the localization selects an empty set. The contrast "
            "may be too weak for this model or too few stimuli were given.",
            stacklevel=4,  # the caller of localize
        )
    return mask, record


def _score_heldout(
    plan: _Plan, stats: dict[str, Tensor], moments: _RoleMoments, mask: Tensor
) -> pd.DataFrame | None:
    """With a held-out split: the held-out t and d added to ``stats``, and the selected units'
    selectivity in and out of sample."""
    if plan.config.holdout is None:
        return None
    held = _stats(moments["positive"], moments["negative"], plan.config.absolute)
    stats["heldout_t"], stats["heldout_d"] = held["t"], held["d"]
    return _holdout_frame(stats, held, mask, plan.parts, plan.config.absolute)


def _localization(
    model: Model,
    plan: _Plan,
    stats: dict[str, Tensor],
    mask: Tensor,
    selection: dict[str, Any],
    checks: list[dict[str, Any]],
    timings: dict[str, float],
    holdout_frame: pd.DataFrame | None,
) -> Localization:
    """The result: the selected units and the record of how they were made."""
    contrast, config = plan.contrast, plan.config
    signature = model_signature(model)
    units = Units(
        mask,
        plan.site.name,
        model.cfg.model_name,
        fingerprint=signature["fingerprint"],
        dtype=signature["dtype"],
    )
    selection["n_selected"] = len(units)
    record = {
        "created": now(),
        "contrast": {
            "name": contrast.name,
            "hash": contrast.hash,
            "sizes": contrast.sizes(),
            "positive": contrast.positive_condition,
            "negative": contrast.negative_condition,
            "pooling": plan.pooling,
            "description": contrast.description,
        },
        "model": signature,
        "n_selected": len(units),
        "n_units": units.n_units,
        "selection": selection,
        "checks": checks,
        "hook_names": plan.hook_names,
        "versions": versions(),
        "timings": timings,
    }
    if config.holdout is not None:
        record["holdout"] = {
            "share": config.holdout,
            "seed": config.seed,
            "sizes": {
                part: {plan.roles[role]: len(texts) for role, texts in by_role.items()}
                for part, by_role in plan.parts.items()
            },
            "heldout_index": plan.heldout_index,  # positions within each condition
        }
    return Localization(units, stats, config, record, holdout_frame)


def _holdout_frame(
    selected_stats: dict[str, Tensor],
    held: dict[str, Tensor],
    mask: Tensor,
    parts: dict[str, dict[str, list[str]]],
    absolute: bool,
) -> pd.DataFrame:
    """The selected units' selectivity where they were selected and where they were not."""
    prefix = "abs_mean" if absolute else "mean"
    rows = []
    for sample, stats, part in (
        ("in_sample", selected_stats, "select"),
        ("held_out", held, "heldout"),
    ):
        difference = stats[f"{prefix}_positive"] - stats[f"{prefix}_negative"]
        rows.append(
            {
                "sample": sample,
                "n_positive": len(parts[part]["positive"]),
                "n_negative": len(parts[part]["negative"]),
                "n_units": int(mask.sum()),
                "mean_t": float(stats["t"][mask].mean()) if mask.any() else math.nan,
                "mean_d": float(stats["d"][mask].mean()) if mask.any() else math.nan,
                "mean_difference": float(difference[mask].mean()) if mask.any() else math.nan,
            }
        )
    return pd.DataFrame(rows)
