"""Brain alignment: do the selected units predict the human language network's responses?

An encoding model predicts each sentence's fMRI response from the pooled activations of a
unit set: cross-validated ridge regression (standardization and the penalty chosen on the
training folds only, the penalty by efficient leave-one-out as scikit-learn's ``RidgeCV``
does; :mod:`tl_localize.ridge` computes the same fits with one decomposition per fold shared
by every penalty), scored by Pearson r between the out-of-fold predictions and the measured
responses (median over response columns), with a bootstrap interval over sentences.

The selected units are compared with random unit sets of the same size (each control family
with its seeds pooled: the difference in r with a bootstrap interval, and a permutation p
that swaps set labels within sentences) and with all units of the site; the features of every
set come from one pass of the model over the sentences.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor

from .ablation import plan_controls
from .activations import stacked_activations
from .config import BrainConfig
from .data.io import read_csv
from .data.tables import describe_rows, missing_numbers, missing_texts
from .errors import Expected, LocalizeError, check_arguments, check_int
from .localize import Localization
from .models import model_signature
from .options import BRAIN_LAYOUT
from .protocol import Model
from .results import (
    atomic_folder,
    base_record,
    check_same_model,
    read_result_record,
    write_record,
)
from .ridge import ALPHAS, encode_sets, fold_splits, pearson_rows
from .sites import get_site
from .stats import bootstrap_indices, percentile_interval
from .summaries import MATCH_WORDS, interval, p_words
from .units import DEFAULT_MATCH, DEFAULT_N_RANDOM, NEEDS_MAGNITUDE, Units

__all__ = [
    "ALPHAS",
    "BRAIN_LAYOUT",
    "BrainAlignment",
    "BrainData",
    "brain_alignment",
    "check_folds",
    "encoding_score",
    "layer_alignment",
    "plot_brain_alignment",
    "plot_layer_alignment",
    "sentence_features",
]

ALPHA = 0.05


@dataclass
class BrainData:
    """Sentences with one or more measured responses (a region, a network mean, voxels).

    Attributes:
        sentences: the stimuli, one per row.
        responses: a DataFrame, one float column per response.
        groups: optional group labels (experiment, passage, ...); cross-validation never
            splits a group between training and test folds.
        name: a label for records and plots.

    Built directly, the data are checked as :meth:`from_frame` checks a table: a sentence
    that is missing or shows nothing, a response that is missing or not finite, or lengths
    that differ are errors.
    """

    sentences: list[str]
    responses: pd.DataFrame
    groups: list[str] | None = None
    name: str = "brain"

    def __new__(cls, *args: Any, **kwargs: Any) -> BrainData:
        # Checked here, before the generated __init__ (and a runtime type checker wrapping
        # it) sees them, so that a wrong type is a LocalizeError like any other bad input.
        check_arguments("BrainData", BrainData.__init__, args, kwargs, _FIELDS, fix=_FIX)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        n = len(self.sentences)
        if len(self.responses) != n or (self.groups is not None and len(self.groups) != n):
            groups = f", {len(self.groups)} group labels" if self.groups is not None else ""
            raise LocalizeError(
                f"BrainData {self.name!r}: {n} sentences, {len(self.responses)} response "
                f"rows{groups}; give one of each per sentence."
            )
        if not len(self.responses.columns):
            raise LocalizeError(f"BrainData {self.name!r}: the responses have no column.")
        fix = "build it with BrainData.from_frame(..., dropna=True), which drops them"
        for column in self.responses.columns:
            _refuse_missing(
                f"BrainData {self.name!r}", column, missing_numbers(self.responses[column]),
                "row", "missing or not a finite number", self.responses[column], fix,
            )  # fmt: skip
        _refuse_missing(
            f"BrainData {self.name!r}", "sentences", missing_texts(self.sentences), "row",
            "missing or empty (only invisible characters count as empty)", self.sentences, fix,
        )  # fmt: skip
        self.responses = self.responses.apply(pd.to_numeric).astype(float)

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
        *,
        dropna: bool = False,
    ) -> BrainData:
        """Build from a table, one row per sentence.

        A row whose sentence is missing or shows nothing (only invisible characters), whose
        response is missing or not a finite number (NaN, empty, ``inf``, text), or whose
        group label is missing is an error naming the column and the first such rows;
        ``dropna=True`` drops those rows instead, with a warning saying how many. A response
        with the same value in every row, or one sentence in every row, is an error (there
        is nothing to predict); duplicate sentences are kept with a warning.
        """
        return cls._from_table(df, None, sentence, responses, groups, name, dropna)

    @classmethod
    def _from_table(
        cls,
        df: pd.DataFrame,
        source: str | None,
        sentence: str,
        responses: Sequence[str],
        groups: str | None,
        name: str,
        dropna: bool,
    ) -> BrainData:
        where = source or "The brain data"
        noun = "data row" if source else "row"  # a file's rows below its header; a frame's
        if not isinstance(df, pd.DataFrame):
            raise LocalizeError(
                f"BrainData.from_frame takes a pandas DataFrame, got {type(df).__name__}."
            )
        if not isinstance(dropna, bool):
            raise LocalizeError(f"dropna must be True or False, got {dropna!r}.")
        responses = [responses] if isinstance(responses, str) else list(responses)
        wanted = [sentence, *responses, *([groups] if groups else [])]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise LocalizeError(
                f"No column {missing[0]!r} in {where}; its columns are "
                f"{list(df.columns)[:8]}. Name the columns with sentence=..., responses=[...], "
                f"groups=... ({BRAIN_LAYOUT})."
            )
        if not responses:
            raise LocalizeError("Name at least one response column (responses=[...]).")
        bad = {
            sentence: (missing_texts(df[sentence]), "missing or empty (only invisible "
                       "characters count as empty)"),
            **{c: (missing_numbers(df[c]), "missing or not a finite number") for c in responses},
            **({groups: (missing_texts(df[groups].map(_label)), "missing")} if groups else {}),
        }  # fmt: skip
        if not dropna:
            for column, (mask, what) in bad.items():
                _refuse_missing(where, column, mask, noun, what, df[column])
        drop = np.zeros(len(df), dtype=bool)
        for mask, _ in bad.values():
            drop |= mask
        if drop.all():
            raise LocalizeError(
                f"No usable rows in {where}: every row has a missing or non-finite response in "
                f"{responses}, or a missing sentence in {sentence!r}"
                f"{f' or group in {groups!r}' if groups else ''}."
            )
        if drop.any():
            counts = ", ".join(f"{int(m.sum())} in {c!r}" for c, (m, _) in bad.items() if m.any())
            warnings.warn(
                f"{where}: dropped {int(drop.sum())} row(s) with a missing value ({counts}; "
                f"{describe_rows(drop, noun)}, counted from 1); {int((~drop).sum())} of "
                f"{len(df)} remain.",
                stacklevel=3,
            )
        df = df[~drop]
        values = df[responses].apply(pd.to_numeric, errors="coerce").astype(float)
        constant = [c for c in responses if values[c].nunique() < 2]
        if constant:
            raise LocalizeError(
                f"{where}: the response column {constant[0]!r} has the same value in every "
                f"usable row ({values[constant[0]].iloc[0]!r}): there is nothing to predict, "
                "and a correlation with it is undefined. Check the column."
            )
        texts = df[sentence].map(str)
        if texts.str.strip().nunique() < 2:
            raise LocalizeError(
                f"{where}: every usable row has the same sentence in {sentence!r} "
                f"({texts.iloc[0]!r}): the model's features cannot differ between rows, so "
                "any encoding r would be an artifact of the folds. Check the column."
            )
        duplicated = texts.duplicated()
        if duplicated.any():
            warnings.warn(
                f"{where}: {int(duplicated.sum())} duplicate sentence(s) (first: "
                f"{texts[duplicated].iloc[0]!r}); each is scored as a separate item, so "
                "copies can sit in training and test folds at once. Average them first to "
                "avoid that.",
                stacklevel=3,
            )
        return cls(
            sentences=list(texts),
            responses=values.reset_index(drop=True),
            groups=[str(_label(g)) for g in df[groups]] if groups else None,
            name=name,
        )

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> BrainData:
        """:meth:`from_frame` on a CSV file (same keywords, ``dropna=True`` included). Every
        field is read as text first (a sentence ``NA`` stays a sentence; an empty field is
        missing) and the response columns are then parsed as numbers; errors count data
        rows from 1, the header not counted."""
        path = Path(path)
        if path.is_dir():
            found = sorted(p.name for p in path.glob("*.csv"))[:4]
            inside = f" (CSV files in it: {found})" if found else ""
            raise LocalizeError(f"{path} is a folder{inside}; {BRAIN_LAYOUT}. Pass one file.")
        options: dict[str, Any] = {
            "sentence": "Sentence", "responses": ("EffectSize",), "groups": None,
            "name": path.stem, "dropna": False,
        }  # fmt: skip
        unknown = sorted(set(kwargs) - set(options))
        if unknown:
            raise LocalizeError(
                f"BrainData.from_csv takes the options {sorted(options)}; got {unknown}."
            )
        options.update(kwargs)
        frame = read_csv(path, "brain-data CSV", dtype=str, keep_default_na=False)
        return cls._from_table(
            frame, str(path), options["sentence"], options["responses"], options["groups"],
            options["name"], options["dropna"],
        )  # fmt: skip


def _label(value: Any) -> str | None:
    """A group label as text; None where it is missing (None, NaN, empty)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


DROPNA = "pass dropna=True (tl-localize brain-alignment --dropna) to drop them with a warning"


def _refuse_missing(
    where: str,
    column: str,
    bad: np.ndarray,
    noun: str,
    what: str,
    values: Any = None,
    dropna: str = DROPNA,
) -> None:
    if not bad.any():
        return
    first = int(bad.argmax())
    shown = f" (first: {list(values)[first]!r})" if values is not None else ""
    raise LocalizeError(
        f"{where}: column {column!r} is {what} in {describe_rows(bad, noun)}{shown}, counted "
        f"from 1. Fix or remove those rows, or {dropna}."
    )


_FIELDS = {
    "sentences": Expected(list, "a list of sentences (strings)", items=(str, "strings")),
    "responses": Expected(pd.DataFrame, "a pandas DataFrame, one float column per response"),
    "groups": Expected(
        (list, type(None)), "a list of group labels (strings) or None", items=(str, "strings")
    ),
    "name": Expected(str, "a string"),
}
_FIX = "build it from a table with BrainData.from_frame / from_csv"


def sentence_features(
    model: Model,
    sentences: Sequence[str],
    *,
    site: str = "resid_post",
    layers: Sequence[int] | None = None,
    pooling: str = "last",
    batch_size: int = 32,
    progress: bool = True,
) -> Float[Tensor, "n layer unit"]:
    """Pooled activations of every unit at ``site`` for each sentence, one model pass."""
    site_obj = get_site(site, model)
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    names = [site_obj.hook_name(layer) for layer in layers]
    return stacked_activations(
        model, list(sentences), names, pooling=pooling, batch_size=batch_size,
        progress=progress, desc="brain sentences",
    )  # fmt: skip


def _check_features(features: Tensor, data: BrainData, units: Units) -> None:
    expected = (len(data), units.n_layers, units.width)
    if tuple(features.shape) != expected:
        raise LocalizeError(
            f"features have shape {tuple(features.shape)}, expected {expected} "
            "(sentences x layers x units): compute them with sentence_features(model, "
            "data.sentences, site=units.site)."
        )


def check_folds(data: BrainData, folds: int) -> None:
    check_int("folds", folds, 2)
    if len(data) < folds:
        raise LocalizeError(
            f"{len(data)} sentences cannot be split into {folds} folds; use folds <= "
            f"{len(data)} or more data."
        )
    if data.groups is not None and len(set(data.groups)) < folds:
        n_groups = len(set(data.groups))
        raise LocalizeError(
            f"{n_groups} groups cannot be split into {folds} folds (groups=, --group-column: "
            f"each group stays in one fold); use folds <= {n_groups}, or no groups."
        )


def _check_varies(features: np.ndarray) -> None:
    """Features identical for every sentence predict nothing: the fold means they would
    predict correlate with the responses by construction (negatively), not by encoding."""
    if len(features) and bool((features == features[:1]).all()):
        raise LocalizeError(
            "The features are the same for every sentence (identical or empty texts, or "
            "constant units), so an encoding r would be an artifact of the folds, not a "
            "measure of encoding. Check the sentences and the units."
        )


def _fold_splits(
    data: BrainData, y: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation folds, refusing one whose training sentences have the same
    value of a response: its model could only predict that constant, and the out-of-fold
    predictions would correlate with the responses through the folds, not the features."""
    splits = fold_splits(len(data), folds, seed, data.groups)
    for k, (train, _) in enumerate(splits, start=1):
        constant = np.flatnonzero(np.ptp(y[train], axis=0) == 0)
        if len(constant):
            column = data.responses.columns[int(constant[0])]
            raise LocalizeError(
                f"Cross-validation fold {k} of {folds}: the {len(train)} sentences it trains on "
                f"all have the same value of the response {column!r} "
                f"({y[train[0], constant[0]]!r}), so its predictions would be a constant and "
                "the encoding r an artifact of the folds. Use fewer folds or other groups, "
                "or check the response."
            )
    return splits


def _median_r(predicted: np.ndarray, y: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Median over response columns of the Pearson r on each bootstrap resample."""
    return np.nanmedian(pearson_rows(predicted, y, index), axis=1)


def _point_r(predicted: np.ndarray, y: np.ndarray) -> list[float]:
    identity = np.arange(len(y))[None, :]
    return [float(r) for r in pearson_rows(predicted, y, identity)[0]]


def encoding_score(
    features: np.ndarray,
    data: BrainData,
    *,
    folds: int = 10,
    seed: int = 0,
    n_boot: int = 1000,
    ceiling: float | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Cross-validated ridge encoding score of ``features`` ``[n_sentences, n_features]``.

    Returns ``r`` (median over response columns of the Pearson r between out-of-fold
    predictions and responses), ``r_low``/``r_high`` (95% bootstrap interval over sentences,
    same seed), ``r_per_response`` as a list, ``alpha`` (median chosen penalty) and, with a
    ``ceiling``, ``r_ceiled`` = r / ceiling (per response, then the median).
    """
    check_folds(data, folds)
    check_int("n_boot", n_boot, 100)
    check_int("seed", seed, 0)
    if features.shape[0] != len(data):
        raise LocalizeError(f"{features.shape[0]} feature rows for {len(data)} sentences.")
    _check_varies(np.asarray(features))
    y = data.responses.to_numpy(dtype=float)
    splits = _fold_splits(data, y, folds, seed)
    fit = encode_sets(np.asarray(features), [None], y, splits)[0]
    return _score(fit.predicted, fit.alphas, y, bootstrap_indices(len(y), n_boot, seed), ceiling)


def _score(
    predicted: np.ndarray,
    alphas: np.ndarray,
    y: np.ndarray,
    index: np.ndarray,
    ceiling: float | Sequence[float] | None,
) -> dict[str, Any]:
    per_response = _point_r(predicted, y)
    low, high = percentile_interval(_median_r(predicted, y, index))
    result: dict[str, Any] = {
        "r": float(np.median(per_response)),
        "r_low": low,
        "r_high": high,
        "r_per_response": per_response,
        "alpha": float(np.median(alphas)),
    }
    if ceiling is not None:
        ceilings = np.broadcast_to(np.asarray(ceiling, dtype=float), (y.shape[1],))
        result["r_ceiled"] = float(np.median(np.asarray(per_response) / ceilings))
    return result


@dataclass
class BrainAlignment:
    """The result of :func:`brain_alignment`.

    Attributes:
        table: one row per unit set: ``model``, ``data``, ``set`` (``selected``, ``random``,
            ``all``), ``match``, ``seed``, ``n_units``, ``r``, ``r_low``, ``r_high``,
            ``alpha`` (and ``r_ceiled`` with a ceiling).
        verdicts: the selected set against each control family: ``difference_r`` (selected
            r minus the family's mean r) with its bootstrap interval, ``p_value`` (one-sided
            permutation test of set labels within sentences) and ``verdict``.
        predictions: out-of-fold predictions per set (``[n_sentences, n_responses]``), in
            the table's row order.
        settings: how it was made (n_random, match, folds, seed, pooling, n_boot,
            n_permutations); saved as the record's ``config``.
        record: the rest of how it was made: the model's signature (``model``), and from
            the command line the command, the data and the localization's record.
    """

    table: pd.DataFrame
    verdicts: pd.DataFrame
    predictions: list[np.ndarray] = field(repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The table (one row per unit set)."""
        return self.table

    def summary(self) -> str:
        """The finding in words: the selected units' r with its interval, each control
        family's mean r, all units' r, and the verdicts with differences and p-values."""
        table, verdicts = self.table, self.verdicts
        selected = table[table["set"] == "selected"].iloc[0]
        spread = interval(selected["r_low"], selected["r_high"], 3)
        text = (
            f"The {int(selected['n_units'])} selected units predict the {selected['data']} "
            f"responses at r = {selected['r']:.3f}{spread}"
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
            f"{interval(v.difference_low, v.difference_high, 3)}, {p_words(v.p_value)})"
            for v in verdicts.itertuples()
        ]
        if judgements:
            text += " The advantage is " + " and ".join(judgements) + "."
        return text

    def plot(self) -> Any:
        """r per unit set (:func:`plot_brain_alignment`)."""
        return plot_brain_alignment(self)

    def _repr_html_(self) -> str:
        """The card: data, model, the unit sets, the verdicts and the summary."""
        from .cards import card, frame_html

        table = self.table
        facts = {
            "data": ", ".join(dict.fromkeys(table["data"].astype(str))),
            "model": ", ".join(dict.fromkeys(table["model"].astype(str))),
            "sets": ", ".join(f"{k} ({v})" for k, v in table["set"].value_counts().items()),
            "folds": self.settings.get("folds"),
        }
        shown = ["match", "selected_r", "control_r", "difference_r", "p_value", "verdict"]
        verdicts = frame_html(self.verdicts[shown]) if len(self.verdicts) else ""
        return card("Brain alignment", facts, verdicts, self.summary())

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``alignment.csv``, ``verdicts.csv``, ``predictions.npz``, ``alignment.png``
        and ``record.json`` (kind ``brain alignment``) to ``folder``, atomically; an
        existing folder is replaced only with ``force=True``."""
        with atomic_folder(folder, force=force) as tmp:
            self.write(tmp)
        return Path(folder)

    def write(self, folder: Path) -> None:
        """Write :meth:`save`'s files into an existing folder."""
        import matplotlib.pyplot as plt

        self.table.to_csv(folder / "alignment.csv", index=False)
        self.verdicts.to_csv(folder / "verdicts.csv", index=False)
        arrays = {f"set_{i}": np.asarray(p, dtype=float) for i, p in enumerate(self.predictions)}
        np.savez(folder / "predictions.npz", **arrays)  # type: ignore[arg-type]
        fig = self.plot()
        fig.savefig(folder / "alignment.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        write_record(folder, base_record(self.record, self.settings, self.summary()), KIND)

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> BrainAlignment:
        """Read a folder written by :meth:`save` (or ``tl-localize brain-alignment``); with
        ``model``, refuse one made for another model. The record must be a brain alignment's
        with its ``config``; the predictions (read without unpickling) must be one per table
        row."""
        folder = Path(folder)
        what = "a saved brain alignment (tl-localize brain-alignment --out ...)"
        record, settings = read_result_record(folder, KIND, what)
        table = read_csv(folder / "alignment.csv", "table of a brain alignment")
        verdicts = read_csv(folder / "verdicts.csv", "verdicts of a brain alignment")
        missing = [c for c in ("model", "data", "set", "match", "n_units", "r") if c not in table]
        if missing:
            raise LocalizeError(
                f"{folder / 'alignment.csv'} lacks the column {missing[0]!r}; the folder is "
                "damaged. Run the alignment again."
            )
        predictions = _read_predictions(folder / "predictions.npz", len(table))
        if model is not None:
            check_same_model(folder, record.get("model"), model_signature(model))
        table = table.astype({"match": object})
        verdicts = verdicts.astype({"match": object})
        return cls(table, verdicts, predictions, settings, record)


KIND = "brain alignment"  # the kind its record.json carries


def _read_predictions(path: Path, n_sets: int) -> list[np.ndarray]:
    """The saved predictions, one array per unit set; never unpickled."""
    if not path.is_file():
        raise LocalizeError(f"No {path.name} in {path.parent}: the folder is incomplete.")
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with arrays:
            found = {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError, EOFError) as error:
        raise LocalizeError(f"{path} is damaged or not a predictions file ({error}).") from None
    names = [f"set_{i}" for i in range(n_sets)]
    if sorted(found) != sorted(names) or any(a.ndim != 2 for a in found.values()):
        raise LocalizeError(
            f"{path} holds {len(found)} arrays, not the {n_sets} two-dimensional predictions "
            "of the table's unit sets; the folder mixes files of two results or is damaged."
        )
    return [found[name] for name in names]


def _label_permutation_p(
    predictions: list[np.ndarray], y: np.ndarray, observed: float, n_permutations: int, seed: int
) -> float:
    """One-sided p that the first set predicts better than the mean of the others, by
    permuting set labels within each sentence (the sets' out-of-fold predictions are
    exchangeable under the null that the first set is one more random set)."""
    stacked = np.stack(predictions).transpose(1, 0, 2)  # [n, k, R]
    n, k, _ = stacked.shape
    yc = y - y.mean(0)
    y_norm = np.sqrt((yc**2).sum(0))  # [R]
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, n_permutations, 50):
        size = min(50, n_permutations - start)
        order = rng.random((size, n, k)).argsort(axis=2)  # a random label order per sentence
        picked = np.take_along_axis(stacked[None], order[..., None], axis=2)  # [size, n, k, R]
        centred = picked - picked.mean(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.einsum("bnkr,nr->bkr", centred, yc) / (np.sqrt((centred**2).sum(1)) * y_norm)
        r = np.nanmedian(r, axis=2)  # [size, k]
        stat = r[:, 0] - r[:, 1:].mean(1)
        count += int(np.sum(stat >= observed - abs(observed) * 1e-12))
    return (1 + count) / (1 + n_permutations)


def brain_alignment(
    model: Model,
    units: Units | Localization,
    data: BrainData,
    *,
    n_random: int = DEFAULT_N_RANDOM,
    match: str | Sequence[str] = DEFAULT_MATCH,
    folds: int = 10,
    seed: int = 0,
    pooling: str | None = None,
    include_all: bool = True,
    ceiling: float | Sequence[float] | None = None,
    n_boot: int = 1000,
    n_permutations: int = 1000,
    features: Float[Tensor, "n layer unit"] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> BrainAlignment:
    """Encoding scores of the selected units, random controls of the same size, and all
    units of the site.

    Args:
        units: a :class:`Units` or a :class:`Localization` (whose magnitudes allow
            ``match="magnitude"`` and ``"least_active"``, and whose pooling is used unless
            ``pooling`` is given).
        data: a :class:`BrainData`.
        n_random: random unit sets per kind of ``match`` (as in :meth:`Units.random_like`;
            default ``uniform`` and ``magnitude``, 3 each).
        folds: cross-validation folds.
        seed: the seed of the folds, the bootstrap, the permutations and the controls.
        n_boot: bootstrap resamples for the intervals (at least 100).
        n_permutations: label permutations for each family's p-value (at least 20).
        features: the output of :func:`sentence_features` for ``data`` at the units' site,
            to reuse one model pass across calls (computed when not given).

    Returns:
        A :class:`BrainAlignment` (``.table``, ``.verdicts``, ``.summary()``, ``.plot()``).
    """
    loc = units if isinstance(units, Localization) else None
    base = loc.units if loc is not None else units
    if not isinstance(base, Units):
        raise LocalizeError(f"units must be Units or a Localization, got {type(units).__name__}.")
    base.check_model(model)
    if not isinstance(data, BrainData):
        raise LocalizeError("data must be a BrainData (BrainData.from_csv / from_frame).")
    config = BrainConfig(
        n_random=n_random, match=match, folds=folds, seed=seed, pooling=pooling,
        include_all=include_all, ceiling=ceiling, n_boot=n_boot, n_permutations=n_permutations,
        batch_size=batch_size,
    )  # fmt: skip
    matches = list(config.match)
    check_folds(data, folds)
    if len(base) == 0:
        raise LocalizeError("The unit set is empty: nothing to align.")
    magnitude = loc.stats["magnitude"] if loc is not None else None
    needs = [m for m in matches if m in NEEDS_MAGNITUDE]
    if needs and magnitude is None and n_random:
        raise LocalizeError(
            f"match={needs[0]!r} needs activation magnitudes: pass the Localization instead of "
            "its Units, or match='uniform'."
        )
    if pooling is None:
        pooling = loc.record["contrast"]["pooling"] if loc is not None else "last"
    planned = plan_controls(
        base, match=matches, magnitude=magnitude, seeds=[seed + s for s in range(n_random)]
    )
    sets: list[tuple[str, str | None, int | None, Units | None]] = [
        (p.set, p.match, None if p.seed is None else p.seed - seed, p.units) for p in planned
    ]
    if include_all:
        sets.append(("all", None, None, None))
    if features is None:
        features = sentence_features(
            model, data.sentences, site=base.site, pooling=pooling, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
    _check_features(features, data, base)
    flat = features.numpy().reshape(len(data), -1)
    _check_varies(flat)
    y = data.responses.to_numpy(dtype=float)
    splits = _fold_splits(data, y, folds, seed)
    columns = [
        None if u is None else u.mask.reshape(-1).nonzero().flatten().numpy() for *_, u in sets
    ]
    fits = encode_sets(flat, columns, y, splits)
    index = bootstrap_indices(len(y), n_boot, seed)
    rows: list[dict[str, Any]] = []
    boots: list[np.ndarray] = []
    for (label, kind, s, _), fit, cols in zip(sets, fits, columns, strict=True):
        score = _score(fit.predicted, fit.alphas, y, index, ceiling)
        score.pop("r_per_response")
        boots.append(_median_r(fit.predicted, y, index))
        rows.append(
            {"model": str(model.cfg.model_name), "data": data.name, "set": label, "match": kind,
             "seed": s, "n_units": flat.shape[1] if cols is None else len(cols), **score}
        )  # fmt: skip
    table = pd.DataFrame(rows)
    verdict_rows = []
    for m in matches if n_random else []:
        family = [i for i, (label, mm, *_) in enumerate(sets) if label == "random" and mm == m]
        selected_r = float(table.loc[0, "r"])
        difference = selected_r - float(table.loc[family, "r"].mean())
        low, high = percentile_interval(boots[0] - np.mean([boots[i] for i in family], axis=0))
        p = _label_permutation_p(
            [fits[0].predicted, *(fits[i].predicted for i in family)], y, difference,
            n_permutations, seed,
        )  # fmt: skip
        verdict_rows.append(
            {"model": str(model.cfg.model_name), "data": data.name, "match": m,
             "n_seeds": len(family), "selected_r": selected_r,
             "control_r": float(table.loc[family, "r"].mean()), "difference_r": difference,
             "difference_low": low, "difference_high": high, "p_value": p,
             "verdict": "specific" if p < ALPHA else "not specific"}
        )  # fmt: skip
    verdicts = pd.DataFrame(
        verdict_rows,
        columns=["model", "data", "match", "n_seeds", "selected_r", "control_r", "difference_r",
                 "difference_low", "difference_high", "p_value", "verdict"],
    )  # fmt: skip
    settings = {"n_random": n_random, "match": matches, "folds": folds, "seed": seed,
                "pooling": pooling, "n_boot": n_boot, "n_permutations": n_permutations}  # fmt: skip
    return BrainAlignment(
        table, verdicts, [f.predicted for f in fits], settings, {"model": model_signature(model)}
    )


def layer_alignment(
    model: Model,
    data: BrainData,
    *,
    site: str = "resid_post",
    pooling: str = "last",
    folds: int = 10,
    seed: int = 0,
    n_boot: int = 1000,
    features: Float[Tensor, "n layer unit"] | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """The encoding score of all units of each layer: ``layer``, ``n_units``, ``r``,
    ``r_low``, ``r_high``, ``alpha``. ``features`` as in :func:`brain_alignment`."""
    check_folds(data, folds)
    check_int("n_boot", n_boot, 100)
    check_int("seed", seed, 0)
    if features is None:
        features = sentence_features(
            model, data.sentences, site=site, pooling=pooling, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
    n, n_layers, width = features.shape
    flat = features.numpy().reshape(n, -1)
    _check_varies(flat)
    y = data.responses.to_numpy(dtype=float)
    splits = _fold_splits(data, y, folds, seed)
    columns = [np.arange(layer * width, (layer + 1) * width) for layer in range(n_layers)]
    fits = encode_sets(flat, columns, y, splits)
    index = bootstrap_indices(n, n_boot, seed)
    rows = []
    for layer, fit in enumerate(fits):
        score = _score(fit.predicted, fit.alphas, y, index, None)
        score.pop("r_per_response")
        rows.append({"layer": layer, "n_units": width, **score})
    return pd.DataFrame(rows)


def plot_brain_alignment(result: BrainAlignment | pd.DataFrame) -> Any:
    """Random controls per family (points and box), the selected units (red) and all units
    (line)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = result.table if isinstance(result, BrainAlignment) else result
    fig, ax = plt.subplots(figsize=(5, 4))
    random = frame[frame["set"] == "random"].assign(control=lambda d: d["match"].astype(str))
    if len(random):
        sns.boxplot(data=random, x="control", y="r", color="0.85", width=0.4, ax=ax,
                    showfliers=False)  # fmt: skip
        sns.stripplot(data=random, x="control", y="r", color="0.4", size=4, ax=ax)
    selected = frame[frame["set"] == "selected"].iloc[0]
    ax.axhline(
        selected["r"],
        color="tab:red",
        linewidth=1.5,
        label=f"selected ({int(selected['n_units'])} units)",
    )
    ax.axhspan(selected["r_low"], selected["r_high"], color="tab:red", alpha=0.12)
    everything = frame[frame["set"] == "all"]
    if len(everything):
        ax.axhline(everything["r"].iloc[0], color="tab:blue", linestyle="--", label="all units")
    ax.set_ylabel("encoding r (cross-validated)")
    ax.set_xlabel("random controls" if len(random) else "")
    data_name = str(frame["data"].iloc[0]) if "data" in frame else ""
    ax.set_title(f"{data_name}: selected vs random units")
    ax.legend(loc="best", fontsize=8)
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
