"""Brain alignment: do the selected units predict the human language network's responses?

An encoding model predicts each sentence's fMRI response from the pooled activations of a
unit set: cross-validated ridge regression (penalty chosen on the training folds only, by
efficient leave-one-out inside ``RidgeCV``; standardization fit on the training folds only),
scored by Pearson r between the out-of-fold predictions and the measured responses (median
over response columns), with a bootstrap confidence interval over sentences. The selected
units are compared with random unit sets of the same size, and with all units of the site;
the features of every set come from one pass of the model over the sentences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from .activations import pooled_activations
from .errors import LocalizeError
from .localize import Localization
from .sites import get_site
from .units import MATCHES, Units

__all__ = [
    "ALPHAS",
    "BrainData",
    "brain_alignment",
    "encoding_score",
    "layer_alignment",
    "plot_brain_alignment",
    "plot_layer_alignment",
    "sentence_features",
]

ALPHAS = np.logspace(-3, 7, 21)


@dataclass
class BrainData:
    """Sentences with one or more measured responses (a region, a network mean, voxels).

    Attributes:
        sentences: the stimuli, one per row.
        responses: a DataFrame, one float column per response.
        groups: optional group labels (experiment, passage, ...); cross-validation never
            splits a group between training and test folds.
        name: a label for records and plots.
    """

    sentences: list[str]
    responses: pd.DataFrame
    groups: list[str] | None = None
    name: str = "brain"

    def __len__(self) -> int:
        return len(self.sentences)

    def __repr__(self) -> str:
        groups = f", {len(set(self.groups))} groups" if self.groups else ""
        return (
            f"BrainData({self.name!r}: {len(self)} sentences, responses "
            f"{list(self.responses.columns)}{groups})"
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        sentence: str = "Sentence",
        responses: Sequence[str] = ("EffectSize",),
        groups: str | None = None,
        name: str = "brain",
    ) -> BrainData:
        """Build from a table; rows with NaN or infinite responses are dropped (with a
        warning saying how many); duplicate sentences are kept with a warning."""
        responses = [responses] if isinstance(responses, str) else list(responses)
        wanted = [sentence, *responses, *([groups] if groups else [])]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise LocalizeError(
                f"No column {missing[0]!r} in the brain data; its columns are "
                f"{list(df.columns)}. Name the columns with sentence=..., responses=[...], "
                "groups=...."
            )
        if not responses:
            raise LocalizeError("Name at least one response column (responses=[...]).")
        values = df[responses].apply(pd.to_numeric, errors="coerce")
        finite = np.isfinite(values.to_numpy(dtype=float)).all(axis=1)
        texts = df[sentence]
        valid_text = texts.map(lambda t: isinstance(t, str) and bool(t.strip())).to_numpy()
        keep = finite & valid_text
        if (~keep).any():
            warnings.warn(
                f"Dropped {int((~finite).sum())} row(s) with NaN or infinite responses and "
                f"{int((finite & ~valid_text).sum())} with an empty sentence; "
                f"{int(keep.sum())} of {len(df)} remain.",
                stacklevel=2,
            )
        df = df[keep]
        duplicated = df[sentence].duplicated()
        if duplicated.any():
            warnings.warn(
                f"{int(duplicated.sum())} duplicate sentence(s) in the brain data (first: "
                f"{df[sentence][duplicated].iloc[0]!r}); each is scored as a separate item, "
                "so copies can sit in training and test folds at once. Average them first "
                "to avoid that.",
                stacklevel=2,
            )
        return cls(
            sentences=[str(t) for t in df[sentence]],
            responses=values[keep].reset_index(drop=True).astype(float),
            groups=[str(g) for g in df[groups]] if groups else None,
            name=name,
        )

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> BrainData:
        """:meth:`from_frame` on a CSV file (same keywords)."""
        path = Path(path)
        if not path.is_file():
            raise LocalizeError(f"No brain-data CSV at {path}.")
        kwargs.setdefault("name", path.stem)
        return cls.from_frame(pd.read_csv(path), **kwargs)


def sentence_features(
    model: Any,
    sentences: Sequence[str],
    site: str = "resid_post",
    *,
    layers: Sequence[int] | None = None,
    pooling: str = "last",
    batch_size: int = 32,
    progress: bool = True,
) -> Float[Tensor, "n layer unit"]:
    """Pooled activations of every unit at ``site`` for each sentence, one model pass."""
    site_obj = get_site(site, model)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    names = [site_obj.hook_name(layer) for layer in layers]
    pooled = pooled_activations(
        model, sentences, names, pooling=pooling, batch_size=batch_size, progress=progress,
        desc="brain sentences",
    )  # fmt: skip
    return torch.stack([pooled[n] for n in names], dim=1)


def _check_features(features: Tensor, data: BrainData, units: Units) -> None:
    expected = (len(data), units.n_layers, units.width)
    if tuple(features.shape) != expected:
        raise LocalizeError(
            f"features have shape {tuple(features.shape)}, expected {expected} "
            "(sentences x layers x units): compute them with sentence_features(model, "
            "data.sentences, units.site)."
        )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def encoding_score(
    features: np.ndarray,
    data: BrainData,
    *,
    folds: int = 10,
    seed: int = 0,
    n_boot: int = 1000,
    ceiling: float | Sequence[float] | None = None,
) -> dict[str, float]:
    """Cross-validated ridge encoding score of ``features`` ``[n_sentences, n_features]``.

    Returns ``r`` (median over response columns of the Pearson r between out-of-fold
    predictions and responses), ``r_low``/``r_high`` (95% bootstrap interval over sentences,
    same seed), ``r_per_response`` as a list, ``alpha`` (median chosen penalty) and, with a
    ``ceiling``, ``r_ceiled`` = r / ceiling (per response, then the median).
    """
    n = len(data)
    if folds < 2:
        raise LocalizeError(f"folds must be at least 2, got {folds}.")
    if n < folds:
        raise LocalizeError(
            f"{n} sentences cannot be split into {folds} folds; use folds <= {n} or more data."
        )
    if features.shape[0] != n:
        raise LocalizeError(f"{features.shape[0]} feature rows for {n} sentences.")
    y = data.responses.to_numpy(dtype=float)
    if data.groups is not None:
        n_groups = len(set(data.groups))
        if n_groups < folds:
            raise LocalizeError(f"{n_groups} groups cannot be split into {folds} folds.")
        splits = GroupKFold(n_splits=folds).split(features, y, data.groups)
    else:
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(features)
    predicted = np.zeros_like(y)
    alphas = []
    for train, test in splits:
        encoder = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))
        encoder.fit(features[train], y[train])
        predicted[test] = encoder.predict(features[test]).reshape(len(test), -1)
        alphas.append(float(np.median(encoder[-1].alpha_)))
    per_response = [_pearson(predicted[:, j], y[:, j]) for j in range(y.shape[1])]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        boot.append(np.median([_pearson(predicted[idx, j], y[idx, j]) for j in range(y.shape[1])]))
    result = {
        "r": float(np.median(per_response)),
        "r_low": float(np.nanpercentile(boot, 2.5)),
        "r_high": float(np.nanpercentile(boot, 97.5)),
        "r_per_response": per_response,
        "alpha": float(np.median(alphas)),
    }
    if ceiling is not None:
        ceilings = np.broadcast_to(np.asarray(ceiling, dtype=float), (y.shape[1],))
        result["r_ceiled"] = float(np.median(np.asarray(per_response) / ceilings))
    return result


def brain_alignment(
    model: Any,
    units: Units | Localization,
    data: BrainData,
    n_random: int = 10,
    match: str = "uniform",
    folds: int = 10,
    seed: int = 0,
    *,
    pooling: str | None = None,
    include_all: bool = True,
    ceiling: float | Sequence[float] | None = None,
    n_boot: int = 1000,
    features: Float[Tensor, "n layer unit"] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """Encoding scores of the selected units, random controls of the same size, and all
    units of the site.

    Args:
        units: a :class:`Units` or a :class:`Localization` (whose magnitudes allow
            ``match="magnitude"`` and whose pooling is used unless ``pooling`` is given).
        data: a :class:`BrainData`.
        n_random: random unit sets; ``match`` as in :meth:`Units.random_like`.
        folds, seed: cross-validation folds and the seed of folds, bootstrap and controls.
        features: the output of :func:`sentence_features` for ``data`` at the units' site,
            to reuse one model pass across calls (computed when not given).

    Returns:
        One row per unit set: ``set`` (``selected``, ``random``, ``all``), ``seed``,
        ``n_units``, ``r``, ``r_low``, ``r_high`` (and ``r_ceiled`` with a ceiling); the
        ``selected`` row also has ``p_value``, the share of random sets scoring at least as
        well (with the +1 correction: (1 + count) / (1 + n_random)).
    """
    loc = units if isinstance(units, Localization) else None
    base = loc.units if loc is not None else units
    if not isinstance(base, Units):
        raise LocalizeError(f"units must be Units or a Localization, got {type(units).__name__}.")
    base.check_model(model)
    if not isinstance(data, BrainData):
        raise LocalizeError("data must be a BrainData (BrainData.from_csv / from_frame).")
    if match not in MATCHES:
        raise LocalizeError(f"Unknown match {match!r}; use one of {MATCHES}.")
    if len(data) < folds:
        raise LocalizeError(
            f"{len(data)} sentences cannot be split into {folds} folds; use folds <= "
            f"{len(data)} or more data."
        )
    if len(base) == 0:
        raise LocalizeError("The unit set is empty: nothing to align.")
    magnitude = loc.stats["magnitude"] if loc is not None else None
    if pooling is None:
        pooling = loc.record["contrast"]["pooling"] if loc is not None else "last"
    sets: list[tuple[str, int | None, Units | None]] = [("selected", None, base)]
    sets += [("random", s, base.random_like(seed + s, match, magnitude)) for s in range(n_random)]
    if include_all:
        sets.append(("all", None, None))
    if features is None:
        features = sentence_features(
            model, data.sentences, base.site, pooling=pooling, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
    _check_features(features, data, base)
    flat = features.numpy().reshape(len(data), -1)
    rows = []
    for label, control_seed, unit_set in sets:
        x = flat if unit_set is None else flat[:, unit_set.mask.reshape(-1).numpy()]
        score = encoding_score(x, data, folds=folds, seed=seed, n_boot=n_boot, ceiling=ceiling)
        score.pop("r_per_response")
        rows.append({"set": label, "seed": control_seed, "n_units": x.shape[1], **score})
    frame = pd.DataFrame(rows)
    random_r = frame.loc[frame["set"] == "random", "r"].to_numpy()
    selected = frame["set"] == "selected"
    if n_random:
        beaten = int(np.sum(random_r >= frame.loc[selected, "r"].iloc[0]))
        frame.loc[selected, "p_value"] = (1 + beaten) / (1 + n_random)
    frame.attrs["data"] = data.name
    return frame


def layer_alignment(
    model: Any,
    data: BrainData,
    site: str = "resid_post",
    *,
    pooling: str = "last",
    folds: int = 10,
    seed: int = 0,
    n_boot: int = 1000,
    features: Float[Tensor, "n layer unit"] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """The encoding score of all units of each layer: ``layer``, ``n_units``, ``r``,
    ``r_low``, ``r_high``. ``features`` as in :func:`brain_alignment`."""
    if features is None:
        features = sentence_features(
            model, data.sentences, site, pooling=pooling, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
    features = features.numpy()
    rows = []
    for layer in range(features.shape[1]):
        score = encoding_score(features[:, layer], data, folds=folds, seed=seed, n_boot=n_boot)
        score.pop("r_per_response")
        rows.append({"layer": layer, "n_units": features.shape[2], **score})
    return pd.DataFrame(rows)


def plot_brain_alignment(frame: pd.DataFrame) -> Any:
    """Random controls (points and box), the selected units (red) and all units (line)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.5, 4))
    random = frame[frame["set"] == "random"]
    if len(random):
        sns.boxplot(y=random["r"], color="0.85", width=0.4, ax=ax, showfliers=False)
        sns.stripplot(y=random["r"], color="0.4", size=4, ax=ax, label="random")
    selected = frame[frame["set"] == "selected"].iloc[0]
    ax.errorbar(
        [0], [selected["r"]],
        yerr=[[selected["r"] - selected["r_low"]], [selected["r_high"] - selected["r"]]],
        fmt="o", color="tab:red", markersize=9, capsize=4, label="selected",
    )  # fmt: skip
    everything = frame[frame["set"] == "all"]
    if len(everything):
        ax.axhline(everything["r"].iloc[0], color="tab:blue", linestyle="--", label="all units")
    ax.set_ylabel("encoding r (cross-validated)")
    ax.set_xticks([])
    title = f"{frame.attrs.get('data', '')}: {int(selected['n_units'])} units"
    if "p_value" in frame and not np.isnan(selected.get("p_value", np.nan)):
        title += f", p = {selected['p_value']:.3g}"
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_layer_alignment(frame: pd.DataFrame) -> Any:
    """Encoding r of each layer's units with its bootstrap interval."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(frame["layer"], frame["r"], marker="o", color="tab:blue")
    ax.fill_between(frame["layer"], frame["r_low"], frame["r_high"], alpha=0.2)
    ax.set_xlabel("layer")
    ax.set_ylabel("encoding r (all units of the layer)")
    fig.tight_layout()
    plt.close(fig)
    return fig
