"""One config per analysis: the settings of ``localize``, ``compare_ablation``,
``brain_alignment``, ``unit_attribution`` / ``check_attribution`` and ``reliability``.

Each analysis's settings are written once, here, as a frozen dataclass whose fields are the
function's keyword arguments, the command line's options (``n_random`` is ``--n-random``:
the parser is built from these fields, with each field's default and one-line help) and the
study spec's keys. Each config checks its values in ``__post_init__``: a bad value is one
:class:`LocalizeError` that names the field (``error.field``) and the fix. What is a tensor
or an object (unit means, magnitudes, features, a resample pool, brain data) is a call
argument, not a setting.

This module imports no model code (torch, transformers, TransformerLens), so the command
line builds its parser from it and a study spec is checked with it before any model loads.

>>> AblationConfig(n_random=2).match
('uniform', 'magnitude')
>>> AblationConfig(n_boot=10)
Traceback (most recent call last):
...
tl_localize.errors.LocalizeError: n_boot must be a whole number of at least 100, got 10.
>>> parse_top("1%"), parse_band("80-90%")
(0.01, (0.8, 0.9))
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import LocalizeError, check_int
from .options import ADJUSTMENTS, DEFAULT_MATCH, DEFAULT_N_RANDOM, MATCHES, METHODS, PRESETS
from .sites import SITES, get_site

__all__ = [
    "CONFIGS",
    "MIN_BOOT",
    "MIN_PERMUTATIONS",
    "POOLINGS",
    "SELECTIONS",
    "SIGNIFICANCE",
    "AblationConfig",
    "AttributionConfig",
    "BandLike",
    "BrainConfig",
    "LocalizeConfig",
    "ReliabilityConfig",
    "build_config",
    "parse_band",
    "parse_top",
    "resolve_config",
    "significance",
]

POOLINGS = ("last", "mean")
SELECTIONS = ("global", "per_layer")
SIGNIFICANCE = ("fdr", "perm")
MIN_PERMUTATIONS = 20
MIN_BOOT = 100
UNALIGNED = ("error", "drop")
CHECK_KINDS = ("patch", "zero")
# a band as users write it: (lo, hi) in any numbers, or "80-90%" / "0.8-0.9"
BandLike = tuple[float, float] | Sequence[int | float] | str


# -- the light parsing every layer shares -------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def parse_top(top: float | int | str) -> float | int | str:
    """Read ``top``, with one meaning everywhere (API, strings, command line, study spec).

    - a float in (0, 1] is a fraction of the units: ``0.01``, ``"0.01"``, ``"1%"``, and
      ``1.0`` / ``"1.0"`` / ``"100%"`` (all units);
    - an integer is a count: ``172``, ``"172"``;
    - ``"fdr:0.05"`` selects every unit with t > 0 and Benjamini-Hochberg q < 0.05 over the
      site, ``"perm:0.05"`` every unit above the family-wise max-t threshold at 0.05.

    >>> parse_top("1%"), parse_top("1.0"), parse_top("172"), parse_top("fdr:0.05")
    (0.01, 1.0, 172, 'fdr:0.05')
    """
    if not isinstance(top, str) and not _is_number(top):
        raise LocalizeError(
            f"top must be a fraction, a count or 'fdr:ALPHA' / 'perm:ALPHA'; got {top!r}."
        )
    if not isinstance(top, str) and not isinstance(top, int | float):  # a numpy number
        top = top.item() if hasattr(top, "item") else float(top)
    if isinstance(top, str):
        text = top.strip().lower()
        kind, sep, alpha_text = text.partition(":")
        if sep:
            if kind not in SIGNIFICANCE:
                raise LocalizeError(
                    f"Cannot read top={top!r}: significance selection is 'fdr:ALPHA' or "
                    "'perm:ALPHA' (for example 'fdr:0.05')."
                )
            try:
                alpha = float(alpha_text)
            except ValueError:
                alpha = math.nan
            if not 0 < alpha < 1:
                raise LocalizeError(
                    f"top={top!r}: the significance level must be a number in (0, 1), such as "
                    f"'{kind}:0.05'."
                )
            return f"{kind}:{alpha:g}"
        try:
            if text.endswith("%"):
                value: float | int = float(text[:-1]) / 100
            elif text.isdigit():
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise LocalizeError(
                f"Cannot read top={top!r}; use a fraction (0.01 or '1%'), a count (172), or "
                "'fdr:0.05' / 'perm:0.05'."
            ) from None
        top = value
    if isinstance(top, float):
        if not 0 < top <= 1 or math.isnan(top):
            raise LocalizeError(
                f"top={top} is not a fraction in (0, 1]. Pass a float such as 0.01 (or '1%') "
                "for 1% of the units, or an integer such as 172 for a count."
            )
    elif top < 1:
        raise LocalizeError(f"top={top} units: a count must be at least 1.")
    return top


def significance(top: float | int | str) -> tuple[str, float] | None:
    """``("fdr", 0.05)`` for ``"fdr:0.05"`` (the same for ``perm``), else None."""
    if isinstance(top, str) and ":" in top:
        kind, alpha = top.split(":")
        return kind, float(alpha)
    return None


def parse_band(band: Any) -> tuple[float, float]:
    """Read a band of the selectivity ranking: ``(lo, hi)`` fractions of the units from the
    most selective (0) to the least (1), with ``0 <= lo < hi <= 1``.

    Accepted spellings: a pair of numbers (``(0.8, 0.9)``, ``[0.99, 1.0]``) or a string
    ``"0.8-0.9"``, ``"80-90%"``, ``"80%-90%"``.

    >>> parse_band("80-90%"), parse_band("0.99-1"), parse_band([0, 0.01])
    ((0.8, 0.9), (0.99, 1.0), (0.0, 0.01))
    """
    hint = (
        "give band as two fractions (lo, hi) with 0 <= lo < hi <= 1, from the most selective "
        "units (0) to the least (1): (0.99, 1.0), '0.8-0.9' or '80-90%'"
    )
    if isinstance(band, str):
        text = band.strip().replace(" ", "")
        percent = text.endswith("%")
        parts = text.rstrip("%").split("-")
        if len(parts) != 2:
            raise LocalizeError(f"Cannot read band={band!r}; {hint}.")
        try:
            values = [float(part.rstrip("%")) for part in parts]
        except ValueError:
            raise LocalizeError(f"Cannot read band={band!r}; {hint}.") from None
        if percent:
            values = [v / 100 for v in values]
    elif isinstance(band, list | tuple) and len(band) == 2:
        if not all(_is_number(v) for v in band):
            raise LocalizeError(f"band={band!r} holds something other than numbers; {hint}.")
        values = [float(v) for v in band]
    else:
        raise LocalizeError(f"band={band!r} is not a pair of fractions; {hint}.")
    lo, hi = values
    if not (0 <= lo < hi <= 1):  # NaN fails here too
        raise LocalizeError(f"band={band!r} gives lo={lo:g}, hi={hi:g}; {hint}.")
    return lo, hi


# -- fields with their help ---------------------------------------------------------------
def _setting(default: Any, help: str, **cli: Any) -> Any:
    """A config field: its default and its one-line help (the command line's too). ``cli``
    says how the command line reads it: ``kind`` (``int``, ``float``, ``str``, ``list``
    (comma list of names), ``floats``; none: a flag) and ``choices``."""
    return field(default=default, metadata={"help": help, **cli})


_KIND_CHECKS: dict[str, tuple[Any, str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str | int | float) and not isinstance(v, bool), "a string"),
    "list": (
        lambda v: (
            isinstance(v, str)
            or (isinstance(v, list | tuple) and all(isinstance(x, str) for x in v))
        ),
        "a name or a list of names",
    ),
    "floats": (
        lambda v: _is_number(v) or (isinstance(v, list | tuple) and all(map(_is_number, v))),
        "a number or a list of numbers",
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """The config ``cls`` from ``values`` read from a file or a command line: each value of
    the wrong kind (a string where a number goes) is an error naming its field, before the
    config checks the values themselves. Keys that are not fields are an error too."""
    known = {f.name: f for f in fields(cls)}
    for name, value in values.items():
        if name not in known:
            raise _fail(name, f"{name!r} is not a setting; settings: {list(known)}.")
        spec = known[name]
        if value is None and spec.default is None:
            continue
        accepts, what = _KIND_CHECKS[spec.metadata.get("kind", "bool")]
        if not accepts(value):
            raise _fail(name, f"{name} must be {what}, got {value!r}.")
    return cls(**values)


def _fail(name: str, message: str) -> LocalizeError:
    """A LocalizeError about field ``name`` (``error.field``), so that the command line can
    name its option and a study spec its key."""
    error = LocalizeError(message)
    error.field = name  # type: ignore[attr-defined]
    return error


class _Checks:
    """Value checks that name the field they check."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def set(self, name: str, value: Any) -> None:
        object.__setattr__(self.config, name, value)

    def int(self, name: str, low: int, *, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        try:
            self.set(name, check_int(name, value, low))
        except LocalizeError as error:
            raise _fail(name, str(error)) from None

    def choice(self, name: str, choices: Sequence[str], *, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        if not isinstance(value, str) or value not in choices:
            raise _fail(name, f"{name}={value!r} is not one of {list(choices)}.")

    def flag(self, name: str) -> None:
        value = getattr(self.config, name)
        if not isinstance(value, bool):
            raise _fail(name, f"{name} must be True or False, got {value!r}.")

    def matches(self, name: str = "match") -> None:
        value = getattr(self.config, name)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, Sequence) or not items:
            raise _fail(name, f"{name} names no control kind; use some of {list(MATCHES)}.")
        for item in items:
            if item not in MATCHES:
                raise _fail(name, f"Unknown {name} {item!r}; use one of {list(MATCHES)}.")
        self.set(name, tuple(items))


# -- the configs --------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalizeConfig:
    """How a localization is made (:func:`tl_localize.localize`).

    ``localize``'s own keywords default to None, so that a preset can tell a setting given
    from one left out; None stands for the default here (or the preset's value).
    """

    site: str = _setting(
        "resid_post",
        "unit site (resid_post: block outputs)",
        kind="str",
        choices=tuple(sorted(SITES)),
    )
    top: float | int | str | None = _setting(
        None,
        "a fraction in (0, 1] ('1%', 0.01; 1.0 is all units), a count (172), or fdr:0.05 / "
        "perm:0.05 (default 1%, none with band)",
        kind="str",
    )
    band: BandLike | None = _setting(  # noqa: RUF009  (a field with its help)
        None,
        "instead of top, a band of the selectivity ranking from the most selective (0) to the "
        "least (1): 80-90% or 0.8-0.9; 99-100% is the least selective 1%",
        kind="str",
    )
    pooling: str | None = _setting(
        None, "last or mean (default: the contrast's own)", kind="str", choices=POOLINGS
    )
    absolute: bool = _setting(
        True, "t-test on absolute activations (the reference) instead of signed ones"
    )
    selection: str = _setting(
        "global",
        "global (top units over all layers together) or per_layer",
        kind="str",
        choices=SELECTIONS,
    )
    truncate: int | None = _setting(
        None, "keep only the first N tokens of each text (the preset: 12)", kind="int"
    )
    prepend_bos: bool | None = _setting(
        None, "prepend a BOS token (default: as the model's tokenizer does)"
    )
    batch_size: int = _setting(32, "texts per forward pass (1: the reference's loop)", kind="int")
    holdout: float | int | None = _setting(
        None,
        "held-out share of each condition's stimuli, e.g. 0.5, on which the selected units are "
        "measured again",
        kind="float",
    )
    seed: int = _setting(0, "seed of the held-out split and of label permutations", kind="int")
    n_permutations: int = _setting(
        1000, "label permutations for top=perm:ALPHA (at least 20)", kind="int"
    )
    preset: str | None = _setting(
        None, "a named recipe (alkhamissi2025: the reference)", kind="str", choices=tuple(PRESETS)
    )

    def __post_init__(self) -> None:
        check = _Checks(self)
        try:
            get_site(self.site)
        except LocalizeError as error:
            raise _fail("site", str(error)) from None
        if self.band is not None:
            if self.top is not None:
                raise _fail(
                    "top",
                    f"top={self.top!r} and band={self.band!r} both define the selected set; "
                    "give one of them (a band alone selects its share of the units).",
                )
            check.set("band", _named("band", parse_band, self.band))
        else:
            check.set("top", _named("top", parse_top, 0.01 if self.top is None else self.top))
        check.choice("pooling", POOLINGS, optional=True)
        if self.selection not in SELECTIONS:
            raise _fail(
                "selection", f"Unknown selection {self.selection!r}; use one of {SELECTIONS}."
            )
        if self.preset is not None and self.preset not in PRESETS:
            raise _fail("preset", f"Unknown preset {self.preset!r}; presets: {sorted(PRESETS)}.")
        check.int("batch_size", 1)
        check.int("seed", 0)
        check.int("truncate", 1, optional=True)
        if not isinstance(self.absolute, bool):
            raise _fail("absolute", f"absolute must be True or False, got {self.absolute!r}.")
        if self.prepend_bos is not None and not isinstance(self.prepend_bos, bool):
            raise _fail(
                "prepend_bos",
                f"prepend_bos must be None, True or False, not {self.prepend_bos!r}.",
            )
        if self.holdout is not None and (not _is_number(self.holdout) or not 0 < self.holdout < 1):
            raise _fail(
                "holdout",
                f"holdout={self.holdout!r}: the held-out share of the stimuli must be a number "
                "in (0, 1), such as 0.5 (select on half, measure on the other half).",
            )
        test = None if self.top is None else significance(self.top)
        if test is not None:
            if self.selection != "global":
                raise _fail(
                    "selection",
                    f"top={self.top!r} tests every unit of the site together; use "
                    "selection='global' with it.",
                )
            if test[0] == "perm":
                check.int("n_permutations", MIN_PERMUTATIONS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalizeConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_config(preset: str | None, contrast_pooling: str, **given: Any) -> LocalizeConfig:
    """The settings of a localization: those given (None: not given), with a preset's
    fixed ones (those of ``by_pooling`` chosen by the contrast's pooling); a given setting
    that the preset fixes otherwise is an error, not a silent override."""
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


def _named(name: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except LocalizeError as error:
        raise _fail(name, str(error)) from None


@dataclass(frozen=True)
class AblationConfig:
    """How :func:`tl_localize.compare_ablation` ablates a unit set and its random controls."""

    n_random: int = _setting(DEFAULT_N_RANDOM, "random control sets per match kind", kind="int")
    match: str | Sequence[str] = _setting(
        DEFAULT_MATCH,
        f"control kinds, a comma list of {', '.join(MATCHES)}",
        kind="list",
        choices=MATCHES,
    )
    method: str = _setting(
        "zero",
        "zero (the reference), mean or resample (these two with neutral reference texts)",
        kind="str",
        choices=METHODS,
    )
    fractions: Sequence[float] | None = _setting(
        None,
        "re-select the localization's top units at each fraction, e.g. 0.00125,0.0025,0.005,0.01",
        kind="floats",
    )
    n_per_paradigm: int | None = _setting(
        None, "first N items of each BLiMP / built-in paradigm (arithmetic: per level)", kind="int"
    )
    n_boot: int = _setting(1000, "bootstrap resamples for the intervals (at least 100)", kind="int")
    seed: int = _setting(
        0, "seed of the controls' draw, the bootstrap and the permutation tests", kind="int"
    )
    adjust: str = _setting(
        "holm",
        "adjust the verdicts' p-values over the comparisons made: holm, fdr_bh or none",
        kind="str",
        choices=tuple(ADJUSTMENTS),
    )
    batch_size: int | None = _setting(
        None, "texts per forward pass (default: each task's)", kind="int"
    )

    def __post_init__(self) -> None:
        check = _Checks(self)
        check.int("n_random", 0)
        check.matches()
        if self.method not in METHODS:
            raise _fail(
                "method", f"Unknown ablation method {self.method!r}; use one of {list(METHODS)}."
            )
        if self.fractions is not None:
            values = self.fractions
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise _fail(
                    "fractions", f"fractions={values!r}: give a list of fractions such as [0.01]."
                )
            for value in values:
                if not _is_number(value) or not 0 < value <= 1:
                    raise _fail("fractions", f"fractions: {value!r} is not a fraction in (0, 1].")
            check.set("fractions", tuple(float(v) for v in values) or None)
        check.int("n_per_paradigm", 1, optional=True)
        check.int("n_boot", MIN_BOOT)
        check.int("seed", 0)
        if not isinstance(self.adjust, str) or self.adjust not in ADJUSTMENTS:
            choices = "; ".join(f"{k}: {v}" for k, v in ADJUSTMENTS.items())
            raise _fail(
                "adjust",
                f"adjust={self.adjust!r} is not a p-value adjustment; use one of {choices}.",
            )
        check.int("batch_size", 1, optional=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BrainConfig:
    """How :func:`tl_localize.brain_alignment` scores a unit set against brain responses."""

    n_random: int = _setting(DEFAULT_N_RANDOM, "random control sets per match kind", kind="int")
    match: str | Sequence[str] = _setting(
        DEFAULT_MATCH,
        f"control kinds, a comma list of {', '.join(MATCHES)}",
        kind="list",
        choices=MATCHES,
    )
    folds: int = _setting(10, "cross-validation folds (at least 2)", kind="int")
    seed: int = _setting(
        0, "seed of the folds, the bootstrap, the permutations and the controls", kind="int"
    )
    pooling: str | None = _setting(
        None, "last or mean (default: the localization's)", kind="str", choices=POOLINGS
    )
    include_all: bool = _setting(True, "also score all units of the site")
    ceiling: float | Sequence[float] | None = _setting(
        None,
        "the data's noise ceiling (one, or one per response), to report r / ceiling",
        kind="floats",
    )
    n_boot: int = _setting(1000, "bootstrap resamples for the intervals (at least 100)", kind="int")
    n_permutations: int = _setting(
        1000, "label permutations for each family's p-value (at least 20)", kind="int"
    )
    batch_size: int = _setting(32, "sentences per forward pass", kind="int")

    def __post_init__(self) -> None:
        check = _Checks(self)
        check.int("n_random", 0)
        check.matches()
        check.int("folds", 2)
        check.int("seed", 0)
        check.choice("pooling", POOLINGS, optional=True)
        check.flag("include_all")
        if self.ceiling is not None:
            values = self.ceiling if isinstance(self.ceiling, Sequence) else [self.ceiling]
            if (
                isinstance(self.ceiling, str)
                or not values
                or not all(_is_number(v) and 0 < v <= 1 for v in values)
            ):
                raise _fail(
                    "ceiling",
                    f"ceiling={self.ceiling!r}: give the noise ceiling as a number in (0, 1], "
                    "or one per response column.",
                )
            if isinstance(self.ceiling, Sequence):
                check.set("ceiling", tuple(float(v) for v in values))
        check.int("n_boot", MIN_BOOT)
        check.int("n_permutations", MIN_PERMUTATIONS)
        check.int("batch_size", 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttributionConfig:
    """How :func:`tl_localize.unit_attribution` attributes a minimal-pair task to every unit,
    and how :func:`tl_localize.check_attribution` checks the estimate by real patching
    (``check_*``: its ``kind``, ``n_units`` and ``n_items``)."""

    n_items: int | None = _setting(None, "a random sample of N pairs (default: all)", kind="int")
    unaligned: str | None = _setting(
        None,
        "error or drop, for pairs whose sentences tokenize to different lengths (default: drop "
        "for a registered task, error for pairs given directly)",
        kind="str",
        choices=UNALIGNED,
    )
    batch_size: int = _setting(16, "pairs per forward pass", kind="int")
    seed: int = _setting(0, "seed of the pairs' sample and of the checked units", kind="int")
    check_kind: str = _setting(
        "patch",
        "what the check really does to each unit: patch (the corrupted run's value) or zero",
        kind="str",
        choices=CHECK_KINDS,
    )
    check_units: int = _setting(
        40, "units to check by real patching, half the top ones (0: no check)", kind="int"
    )
    check_items: int = _setting(32, "pairs the check patches on", kind="int")

    def __post_init__(self) -> None:
        check = _Checks(self)
        check.int("n_items", 1, optional=True)
        check.choice("unaligned", UNALIGNED, optional=True)
        check.int("batch_size", 1)
        check.int("seed", 0)
        if self.check_kind not in CHECK_KINDS:
            raise _fail(
                "check_kind",
                f"check_kind={self.check_kind!r}: check_attribution checks 'patch' or 'zero' "
                "(its kind=).",
            )
        check.int("check_units", 0)
        if self.check_units == 1:
            raise _fail(
                "check_units",
                "check_units must be 0 (no check) or at least 2 units (half the top ones, half "
                "at random), got 1.",
            )
        check.int("check_items", 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReliabilityConfig:
    """How :func:`tl_localize.reliability` measures split-half agreement (and, with
    ``sizes``, the localizer's power)."""

    top: float | int | str = _setting(
        0.01, "each half's selection: a fraction ('1%', 0.01) or a count (172)", kind="str"
    )
    n_splits: int | None = _setting(
        None, "random splits (default 10; 20 per size with sizes)", kind="int"
    )
    seed: int = _setting(0, "seed of the splits", kind="int")
    sizes: Sequence[int] | str | None = _setting(
        None,
        "stimuli per condition in each of two disjoint sets, e.g. 10,20,40; auto: 5, 10, 20, ... "
        "up to half of the smaller condition (default: split halves of all stimuli)",
        kind="str",
    )

    def __post_init__(self) -> None:
        check = _Checks(self)
        top = _named("top", parse_top, self.top)
        if isinstance(top, str):
            raise _fail(
                "top",
                f"top={self.top!r}: reliability compares the top units of two halves; give a "
                "fraction or a count, not a significance threshold.",
            )
        check.set("top", top)
        if self.n_splits is not None:
            check.int("n_splits", 2 if self.sizes is not None else 1)
        check.int("seed", 0)
        if self.sizes is not None:
            if isinstance(self.sizes, str):
                if self.sizes != "auto":
                    raise _fail(
                        "sizes",
                        f"sizes={self.sizes!r}: give numbers of stimuli per condition such as "
                        "[10, 20, 40], or 'auto' for 5, 10, 20, ... up to half of the smaller "
                        "condition.",
                    )
            elif not isinstance(self.sizes, Sequence) or not self.sizes:
                raise _fail(
                    "sizes",
                    f"sizes={self.sizes!r}: give a non-empty list of numbers of stimuli per "
                    "condition, such as [10, 20, 40], or 'auto'.",
                )
            else:
                try:
                    check.set(
                        "sizes", tuple(sorted({check_int("sizes", n, 2) for n in self.sizes}))
                    )
                except LocalizeError as error:
                    raise _fail("sizes", str(error)) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# analysis -> its config (the parity test and the command line walk this table)
CONFIGS: dict[str, type] = {
    "localize": LocalizeConfig,
    "compare_ablation": AblationConfig,
    "brain_alignment": BrainConfig,
    "unit_attribution": AttributionConfig,
    "reliability": ReliabilityConfig,
}
