"""The study spec: which models, networks, ablations, tasks and brain data a study compares.

A study is written as a TOML file or built in Python as a :class:`Study`; both are checked
here, before any model loads: an unknown key, network, task or site, a missing file, a bad
number, an empty model list or a label used twice is a :class:`LocalizeError` that names the
key path (``models[2].device_map``) and what is allowed.

.. code-block:: toml

    name = "smollm2-language"
    adjust = "holm"                # the verdicts' p-values, adjusted over all the study's
                                   # comparisons: holm | fdr_bh | none

    [[models]]
    label = "smollm2"              # spec: a .gguf file, a HF folder or a hub name; none: the
    dtype = "float32"              # embedded default. Also revision, device, device_map,
                                   # max_memory.
    [[networks]]
    name = "language"
    contrast = "language"          # a built-in, a CSV (with positive/negative), an EvLab or
    site = "resid_post"            # tomloc folder
    top = [0.005, 0.01]
    band = [0.99, 1.0]             # also bands of the ranking (0 the most selective), one
    preset = "alkhamissi2025"      # pair or a list of them: [[0.8, 0.9], "99-100%"]
    tasks = ["builtin", "blimp"]   # default: every task (the double-dissociation design)

    [ablation]
    method = "zero"                # zero | mean | resample (reference = neutral texts)
    match = ["uniform", "magnitude"]   # also "layer", "least_active"
    n_random = 3

    [tasks.builtin]
    n_per_paradigm = 4
    [tasks.blimp]
    blimp = "data/blimp"

    [brain]
    folds = 10
    [[brain.data]]
    path = "data/tuckute2024.csv"

    [attribution]
    tasks = ["builtin"]
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import (
    POOLINGS,
    AblationConfig,
    AttributionConfig,
    BrainConfig,
    LocalizeConfig,
    build_config,
    parse_band,
    parse_top,
)
from ..contrast import BUILTINS
from ..errors import LocalizeError
from ..options import ADJUSTMENTS, BRAIN_LAYOUT, DTYPE_NAMES, MATCHES, METHODS, PRESETS
from ..sites import SITES
from ..tasks import TASKS

__all__ = [
    "AblationSpec",
    "AttributionSpec",
    "BrainDataSpec",
    "BrainSpec",
    "ModelSpec",
    "NetworkSpec",
    "Study",
]


def _fail(path: str, message: str) -> LocalizeError:
    return LocalizeError(f"{path}: {message}")


def _default(cls: type, name: str) -> Any:
    """The default of a config field: a study's default is the API's."""
    return next(f.default for f in fields(cls) if f.name == name)


def _checked(path: str, cls: type, values: dict[str, Any]) -> Any:
    """``values`` checked by the analysis's own config (the API's and the command line's
    checks), an error naming the key path (``ablation.n_boot``)."""
    try:
        return build_config(cls, values)
    except LocalizeError as error:
        name = getattr(error, "field", None)
        raise _fail(f"{path}.{name}" if name else path, str(error)) from None


def _keys(path: str, data: Any, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
    if not isinstance(data, Mapping):
        raise _fail(path, f"expected a table with keys {list(allowed)}, got {type(data).__name__}")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise _fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown key; allowed here: {list(allowed)}")  # fmt: skip
    for key in required:
        if key not in data:
            raise _fail(f"{path}.{key}" if path else key, "required")
    return dict(data)


def _str(path: str, value: Any, choices: Sequence[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise _fail(path, f"{value!r} is not one of {list(choices)}")
    return value


def _int(path: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(path, f"expected a whole number of at least {low}, got {value!r}")
    return value


def _strings(path: str, value: Any, choices: Sequence[str] | None = None) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise _fail(path, f"expected a string or a non-empty list of strings, got {value!r}")
    return [_str(f"{path}[{i}]", v, choices) for i, v in enumerate(items)]


def _file(path: str, value: Any, base: Path, *, folder_ok: bool = True) -> str:
    text = _str(path, value)
    resolved = (base / text).expanduser()
    if not resolved.exists():
        raise _fail(path, f"no file or folder at {resolved}")
    if not folder_ok and resolved.is_dir():
        raise _fail(path, f"{resolved} is a folder; expected a file")
    return str(resolved)


def _device(path: str, value: Any) -> str | None:
    """A device as load_model takes it; ``auto`` (the default) is None. Whether the device
    is there is checked where the model loads (a Ray worker may have a GPU the driver has
    not)."""
    if value is None:
        return None
    text = _str(path, value)
    if text == "auto":
        return None
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise _fail(path, f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps")
    return text


@dataclass
class ModelSpec:
    """A model of the study: ``spec`` as :func:`load_model` takes it (``None``: the embedded
    default), a short ``label``, and how to load it.

    ``untrained = true`` (with ``seed``, default 0) is the model's untrained twin
    (:func:`load_model` ``untrained=True``). ``lineage`` names the checkpoints of one
    training run (models sharing it are compared in :meth:`StudyResult.lineage`, in spec
    order); a model table with ``revisions = [...]`` instead of ``revision`` stands for one
    model per checkpoint, labelled ``LABEL@REVISION``, with ``lineage = LABEL``.
    """

    label: str
    spec: str | None = None
    revision: str | None = None
    dtype: str = "auto"
    device: str | None = None
    device_map: str | dict[str, Any] | None = None
    max_memory: dict[str, Any] | None = None
    untrained: bool = False
    seed: int | None = None
    lineage: str | None = None

    @classmethod
    def expand(cls, path: str, data: Any, base: Path) -> list[ModelSpec]:
        """One model table: one model, or with ``revisions`` one model per checkpoint."""
        if not isinstance(data, Mapping) or "revisions" not in data:
            return [cls.parse(path, data, base)]
        data = dict(data)
        revisions = _strings(f"{path}.revisions", data.pop("revisions"))
        for key in ("revision", "lineage", "untrained"):
            if key in data:
                raise _fail(f"{path}.{key}", f"give revisions or {key}, not both")
        repeated = [r for i, r in enumerate(revisions) if revisions.index(r) != i]
        if repeated:
            raise _fail(f"{path}.revisions", f"{repeated[0]!r} is listed twice")
        label = _str(f"{path}.label", data.get("label"))
        return [
            cls.parse(
                f"{path}.revisions[{i}]",
                {
                    **data,
                    "label": f"{label}@{revision.replace('/', '-')}",
                    "revision": revision,
                    "lineage": label,
                },
                base,
            )
            for i, revision in enumerate(revisions)
        ]

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> ModelSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)] + ["revisions"], ["label"])
        if "revisions" in data:  # expand() takes it apart first
            raise _fail(f"{path}.revisions", "read model tables with ModelSpec.expand")
        spec = data.get("spec")
        if spec is not None:
            text = _str(f"{path}.spec", spec)
            local = (base / text).expanduser()
            looks_local = text.endswith(".gguf") or text.startswith((".", "/", "~"))
            if local.exists():
                spec = str(local)
            elif looks_local:
                raise _fail(f"{path}.spec", f"no model file or folder at {local}")
        revision = data.get("revision")
        if revision is not None:
            _str(f"{path}.revision", revision)
            if spec is not None and Path(spec).is_dir() and not (Path(spec) / revision).is_dir():
                raise _fail(f"{path}.revision", f"no checkpoint folder {revision!r} in {spec}")
        device_map = data.get("device_map")
        if device_map is not None and not (
            isinstance(device_map, str) or isinstance(device_map, Mapping)
        ):
            raise _fail(
                f"{path}.device_map",
                f"expected a string such as 'auto' or a table of module -> device, got "
                f"{device_map!r}",
            )
        max_memory = data.get("max_memory")
        if max_memory is not None:
            if not isinstance(max_memory, Mapping):
                raise _fail(f"{path}.max_memory", "expected a table of device -> size ('2GiB')")
            if device_map is None:
                raise _fail(f"{path}.max_memory", "goes with device_map (for example 'auto')")
        if data.get("device") is not None and device_map is not None:
            raise _fail(f"{path}.device", "give device or device_map, not both")
        untrained = data.get("untrained", False)
        if not isinstance(untrained, bool):
            raise _fail(f"{path}.untrained", f"expected true or false, got {untrained!r}")
        seed = data.get("seed")
        if seed is not None:
            if not untrained:
                raise _fail(
                    f"{path}.seed",
                    "the initialization seed of an untrained twin: add untrained = true, or "
                    "remove seed",
                )
            seed = _int(f"{path}.seed", seed, 0)
        if untrained and device_map is not None:
            raise _fail(f"{path}.device_map", "an untrained twin is built in memory: use device")
        return cls(
            label=_str(f"{path}.label", data["label"]),
            spec=spec,
            revision=revision,
            dtype=_str(f"{path}.dtype", data.get("dtype", "auto"), ["auto", *DTYPE_NAMES]),
            device=_device(f"{path}.device", data.get("device")),
            device_map=dict(device_map) if isinstance(device_map, Mapping) else device_map,
            max_memory=dict(max_memory) if max_memory is not None else None,
            untrained=untrained,
            seed=seed,
            lineage=data.get("lineage") and _str(f"{path}.lineage", data["lineage"]),
        )


def _default_top() -> float:
    """The API's default selection (1% of the units)."""
    top = LocalizeConfig().top
    assert isinstance(top, float)
    return top


def _fraction(path: str, top: Any) -> float:
    """A network's ``top`` as the API reads it (``0.01``, ``"1%"``), where a study can use
    it: a fraction of the site in (0, 1). A count or a significance threshold selects a
    different share of each model's units, and a study compares shares across models."""
    if isinstance(top, bool) or not isinstance(top, int | float | str):
        raise _fail(path, f"{top!r} is not a fraction in (0, 1), such as 0.01 or '1%'")
    try:
        value = parse_top(top)
    except LocalizeError as error:
        raise _fail(path, f"{top!r} is not a fraction: {error}") from None
    if isinstance(value, str):
        raise _fail(
            path,
            f"{top!r} selects by significance, a different share of each model's units; a "
            "study compares unit sets of one share of the site across models: give a fraction "
            "such as 0.01 or '1%'",
        )
    if isinstance(value, int):
        raise _fail(
            path,
            f"{top!r} is a count of units; a study compares unit sets of one share of the site "
            "across models of different widths: give a fraction such as 0.01 or '1%'",
        )
    if not 0 < value < 1:
        raise _fail(
            path,
            f"{top!r} is not a fraction in (0, 1): a study compares unit sets of a share of the "
            "site's units (and controls drawn from the rest), such as 0.01",
        )
    return value


def _bands(path: str, value: Any) -> list[tuple[float, float]]:
    """One band (a pair of numbers or a string) or a list of them, as sorted pairs."""
    single = isinstance(value, str) or (
        isinstance(value, list)
        and len(value) == 2
        and not any(isinstance(v, list | str) for v in value)
    )
    items = [value] if single else value
    if not isinstance(items, list) or not items:
        raise _fail(path, f"expected a band [lo, hi] or a list of them, got {value!r}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse_band(item))
        except LocalizeError as error:
            raise _fail(f"{path}[{i}]" if not single else path, str(error)) from None
    return sorted(set(out))


@dataclass
class NetworkSpec:
    """A network: a contrast localized at a site, its unit sets (``top`` fractions and
    ``band`` s of the selectivity ranking, ``(lo, hi)`` from the most selective, 0, to the
    least, 1), and the tasks it is ablated for (``None``: every task of the study). With
    bands and no ``top``, only the bands are ablated."""

    name: str
    contrast: str = "language"
    positive: str | None = None
    negative: str | None = None
    site: str = "resid_post"
    pooling: str | None = None
    top: list[float] = field(default_factory=lambda: [_default_top()])
    band: list[tuple[float, float]] = field(default_factory=list)
    preset: str | None = None
    tasks: list[str] | None = None

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> NetworkSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)], ["name"])
        contrast = _str(f"{path}.contrast", data.get("contrast", "language"))
        if contrast not in BUILTINS:
            local = (base / contrast).expanduser()
            if not local.exists():
                raise _fail(
                    f"{path}.contrast",
                    f"{contrast!r} is neither a built-in contrast {sorted(BUILTINS)} nor a file "
                    f"or folder (looked for {local})",
                )
            contrast = str(local)
            if local.suffix.lower() == ".csv" and not (
                data.get("positive") and data.get("negative")
            ):
                raise _fail(f"{path}.positive", "a CSV contrast needs positive and negative")
        bands = _bands(f"{path}.band", data["band"]) if data.get("band", []) != [] else []
        tops = data.get("top", [] if bands else [_default_top()])
        tops = tops if isinstance(tops, list) else [tops]
        if not tops and not bands:
            raise _fail(f"{path}.top", "give at least one fraction (or a band)")
        tops = [_fraction(f"{path}.top[{i}]", top) for i, top in enumerate(tops)]
        tasks = data.get("tasks")
        network = cls(
            name=_str(f"{path}.name", data["name"]),
            contrast=contrast,
            positive=data.get("positive") and _str(f"{path}.positive", data["positive"]),
            negative=data.get("negative") and _str(f"{path}.negative", data["negative"]),
            site=_str(f"{path}.site", data.get("site", "resid_post"), sorted(SITES)),
            pooling=data.get("pooling") and _str(f"{path}.pooling", data["pooling"], POOLINGS),
            top=sorted({float(t) for t in tops}),
            band=bands,
            preset=data.get("preset") and _str(f"{path}.preset", data["preset"], sorted(PRESETS)),
            tasks=None if tasks is None else _strings(f"{path}.tasks", tasks),
        )
        _checked(path, LocalizeConfig, {k: data[k] for k in ("site", "pooling", "preset")
                                        if data.get(k) is not None})  # fmt: skip
        return network

    def own_selection(self) -> dict[str, Any]:
        """How the network's own localization selects (what its brain alignment and
        attribution use): the largest ``top`` fraction, or with bands only, the first band."""
        return {"top": max(self.top)} if self.top else {"band": self.band[0]}


@dataclass
class AblationSpec:
    """How unit sets are ablated and which random controls are drawn."""

    method: str = _default(AblationConfig, "method")
    reference: str | None = None  # mean / resample: a built-in contrast or a text file
    match: list[str] = field(default_factory=lambda: list(_default(AblationConfig, "match")))
    n_random: int = _default(AblationConfig, "n_random")
    n_boot: int = _default(AblationConfig, "n_boot")
    seed: int = _default(AblationConfig, "seed")
    batch_size: int | None = _default(AblationConfig, "batch_size")

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> AblationSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)])
        default = cls()
        method = _str(f"{path}.method", data.get("method", default.method), METHODS)
        reference = data.get("reference")
        if reference is not None:
            reference = _str(f"{path}.reference", reference)
            if reference not in BUILTINS:
                reference = _file(f"{path}.reference", reference, base, folder_ok=False)
        elif method != "zero":
            reference = "language"
        match = _strings(f"{path}.match", data.get("match", default.match), MATCHES)
        _checked(path, AblationConfig, {k: v for k, v in data.items() if k != "reference"})
        return cls(
            method=method,
            reference=reference,
            match=match,
            n_random=data.get("n_random", default.n_random),
            n_boot=data.get("n_boot", default.n_boot),
            seed=data.get("seed", default.seed),
            batch_size=data.get("batch_size", default.batch_size),
        )


@dataclass
class BrainDataSpec:
    """One brain dataset, as :meth:`BrainData.from_csv` takes it."""

    path: str
    name: str | None = None
    sentence: str = "Sentence"
    responses: list[str] = field(default_factory=lambda: ["EffectSize"])
    groups: str | None = None

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> BrainDataSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)], ["path"])
        file = _file(f"{path}.path", data["path"], base)
        if Path(file).is_dir():
            raise _fail(f"{path}.path", f"{file} is a folder; {BRAIN_LAYOUT}")
        found = cls(
            path=file,
            name=_str(f"{path}.name", data.get("name", Path(file).stem)),
            sentence=_str(f"{path}.sentence", data.get("sentence", "Sentence")),
            responses=_strings(f"{path}.responses", data.get("responses", ["EffectSize"])),
            groups=data.get("groups") and _str(f"{path}.groups", data["groups"]),
        )
        try:  # the header, checked before any model loads
            columns = list(pd.read_csv(file, nrows=0, encoding="utf-8").columns)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise _fail(
                f"{path}.path", f"{file} is not a CSV file ({error}); {BRAIN_LAYOUT}"
            ) from None
        wanted = {"sentence": [found.sentence], "responses": found.responses,
                  "groups": [found.groups] if found.groups else []}  # fmt: skip
        for key, names in wanted.items():
            for name in names:
                if name not in columns:
                    raise _fail(
                        f"{path}.{key}",
                        f"{file} has no column {name!r} (its columns: {columns[:8]}); name "
                        f"its columns with sentence, responses and groups; {BRAIN_LAYOUT}",
                    )
        return found


@dataclass
class BrainSpec:
    """Brain alignment of every network's selected units on each dataset."""

    data: list[BrainDataSpec] = field(default_factory=list)
    folds: int = _default(BrainConfig, "folds")
    n_random: int = _default(BrainConfig, "n_random")
    match: list[str] = field(default_factory=lambda: list(_default(BrainConfig, "match")))
    seed: int = _default(BrainConfig, "seed")
    include_all: bool = _default(BrainConfig, "include_all")
    ceiling: float | list[float] | None = None  # BrainConfig's (tests/test_parity.py)
    n_boot: int = _default(BrainConfig, "n_boot")
    n_permutations: int = _default(BrainConfig, "n_permutations")
    batch_size: int = _default(BrainConfig, "batch_size")

    KEYED = ("folds", "n_random", "match", "seed")  # see _job_key

    def settings(self) -> dict[str, Any]:
        """The settings as brain_alignment takes them (the datasets apart)."""
        return {f.name: getattr(self, f.name) for f in _fields(type(self)) if f.name != "data"}

    def key(self) -> dict[str, Any]:
        return _job_key(self, self.settings(), self.KEYED)

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> BrainSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)], ["data"])
        default = cls()
        match = _strings(f"{path}.match", data.get("match", default.match), MATCHES)
        _checked(path, BrainConfig, {k: v for k, v in data.items() if k != "data"})
        items = data["data"]
        if not isinstance(items, list) or not items:
            raise _fail(f"{path}.data", "give at least one dataset ([[brain.data]] path = ...)")
        datasets = [BrainDataSpec.parse(f"{path}.data[{i}]", d, base) for i, d in enumerate(items)]
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise _fail(f"{path}.data", f"dataset names repeat: {names}; give each a name")
        settings = {k: v for k, v in data.items() if k not in ("data", "match")}
        if isinstance(settings.get("ceiling"), list):
            settings["ceiling"] = [float(v) for v in settings["ceiling"]]
        return cls(data=datasets, match=match, **settings)


@dataclass
class AttributionSpec:
    """Attribution patching of each network's site on minimal-pair tasks, joined with the
    network's selectivity."""

    tasks: list[str] = field(default_factory=lambda: ["builtin"])
    n_items: int | None = _default(AttributionConfig, "n_items")
    unaligned: str | None = _default(AttributionConfig, "unaligned")
    batch_size: int = _default(AttributionConfig, "batch_size")
    seed: int = _default(AttributionConfig, "seed")

    KEYED = ("tasks", "n_items")  # see _job_key

    def key(self) -> dict[str, Any]:
        return _job_key(self, asdict(self), self.KEYED)

    @classmethod
    def parse(cls, path: str, data: Any, base: Path) -> AttributionSpec:
        data = _keys(path, data, [f.name for f in _fields(cls)])
        _checked(path, AttributionConfig, {k: v for k, v in data.items() if k != "tasks"})
        from ..tasks import attributable

        settings = {k: v for k, v in data.items() if k != "tasks"}
        return cls(
            tasks=_strings(f"{path}.tasks", data.get("tasks", ["builtin"]), attributable()),
            **settings,
        )


def _fields(cls: type) -> list[Any]:
    return list(fields(cls))


def _job_key(spec: Any, settings: dict[str, Any], keyed: tuple[str, ...]) -> dict[str, Any]:
    """The part of a job's key a spec table gives: the ``keyed`` settings always, the others
    only where they differ from their defaults (keys of studies written before those
    settings existed stay the same)."""
    default = type(spec)()
    return {k: v for k, v in settings.items() if k in keyed or v != getattr(default, k)}


def _task_options(path: str, data: Any, base: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(data, Mapping):
        raise _fail(path, "expected a table of task name -> options")
    out: dict[str, dict[str, Any]] = {}
    for name, options in data.items():
        at = f"{path}.{name}"
        if name not in TASKS:
            raise _fail(at, f"unknown task; tasks: {sorted(TASKS)}")
        if options is True or options is None:
            options = {}
        task = TASKS[name]
        options = _keys(at, options, list(task.options), list(task.required))
        for key, value in list(options.items()):
            if key in ("blimp", "syntaxgym"):
                options[key] = _file(f"{at}.{key}", value, base)
            elif key == "texts" and isinstance(value, str):
                options[key] = _file(f"{at}.{key}", value, base, folder_ok=False)
            elif key == "n_per_paradigm":
                options[key] = _int(f"{at}.{key}", value, 1)
        out[name] = options
    return out


@dataclass
class Study:
    """A study: models x networks x (ablation on tasks, brain alignment, attribution).

    Attributes:
        name: identifies the study in its results folder (a folder holding another study's
            results is refused unless forced).
        models: :class:`ModelSpec` per model (labels unique).
        networks: :class:`NetworkSpec` per network.
        ablation: :class:`AblationSpec` (method, controls, seeds).
        tasks: task name -> options (as the task registry takes them).
        brain: :class:`BrainSpec` or None.
        attribution: :class:`AttributionSpec` or None.
        batch_size: texts per forward pass when localizing.
        adjust: how the verdicts' p-values are adjusted over all the study's comparisons
            (:data:`tl_localize.stats.ADJUSTMENTS`): ``holm`` (family-wise error rate, the
            default), ``fdr_bh`` (false discovery rate) or ``none``.
    """

    name: str
    models: list[ModelSpec]
    networks: list[NetworkSpec]
    ablation: AblationSpec = field(default_factory=AblationSpec)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    brain: BrainSpec | None = None
    attribution: AttributionSpec | None = None
    batch_size: int = 32
    adjust: str = "holm"

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if not self.models:
            raise _fail("models", "the study names no model; add at least one [[models]] table")
        if not self.networks:
            raise _fail("networks", "the study names no network; add a [[networks]] table")
        _str("adjust", self.adjust, list(ADJUSTMENTS))
        labels = [m.label for m in self.models]
        for i, label in enumerate(labels):
            if labels.index(label) != i:
                raise _fail(f"models[{i}].label", f"{label!r} is used twice; labels must be unique")
        names = [n.name for n in self.networks]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise _fail(f"networks[{i}].name", f"{name!r} is used twice; names must be unique")
        for i, network in enumerate(self.networks):
            for j, task in enumerate(network.tasks or []):
                if task not in self.tasks:
                    raise _fail(
                        f"networks[{i}].tasks[{j}]",
                        f"{task!r} is not one of the study's tasks {sorted(self.tasks)}; add a "
                        f"[tasks.{task}] table or remove it",
                    )
            if not self.tasks_of(network) and self.brain is None:
                raise _fail(
                    f"networks[{i}]",
                    f"network {network.name!r} has no task to be ablated for and the study has "
                    "no brain data: it would only be localized. Add tasks or [brain].",
                )
        if self.attribution is not None:
            for j, task in enumerate(self.attribution.tasks):
                if task not in self.tasks:
                    raise _fail(
                        f"attribution.tasks[{j}]", f"{task!r} is not one of the study's tasks"
                    )

    def tasks_of(self, network: NetworkSpec) -> list[str]:
        """The tasks a network is ablated for (default: every task: double dissociation)."""
        return list(network.tasks) if network.tasks is not None else list(self.tasks)

    # -- files ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, base: str | Path = ".", name: str = "study") -> Study:
        """Check and build a study from a dict (a parsed TOML file); relative paths are
        resolved against ``base``."""
        base = Path(base)
        top = ["name", "models", "networks", "ablation", "tasks", "brain", "attribution",
               "batch_size", "adjust"]  # fmt: skip
        data = _keys("", data, top, ["models", "networks"])
        data = {k: v for k, v in data.items() if v is not None or k in ("models", "networks")}
        models, networks = data["models"], data["networks"]
        if not isinstance(models, list):
            raise _fail("models", "expected a list of tables ([[models]])")
        if not isinstance(networks, list):
            raise _fail("networks", "expected a list of tables ([[networks]])")
        return cls(
            name=_str("name", data.get("name", name)),
            models=[
                s for i, m in enumerate(models) for s in ModelSpec.expand(f"models[{i}]", m, base)
            ],
            networks=[NetworkSpec.parse(f"networks[{i}]", n, base) for i, n in enumerate(networks)],
            ablation=AblationSpec.parse("ablation", data.get("ablation", {}), base),
            tasks=_task_options("tasks", data.get("tasks", {}), base),
            brain=None if "brain" not in data else BrainSpec.parse("brain", data["brain"], base),
            attribution=None
            if "attribution" not in data
            else AttributionSpec.parse("attribution", data["attribution"], base),
            batch_size=_int("batch_size", data.get("batch_size", 32), 1),
            adjust=_str("adjust", data.get("adjust", "holm"), list(ADJUSTMENTS)),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """Read and check a study file (relative paths in it are relative to the file)."""
        path = Path(path)
        if not path.is_file():
            raise LocalizeError(f"No study file at {path}.")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise LocalizeError(f"{path} is not valid TOML: {error}") from None
        try:
            return cls.from_dict(data, base=path.parent, name=path.stem)
        except LocalizeError as error:
            raise LocalizeError(f"{path}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """A hash of the whole spec (what ran is recorded with it)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def network(self, name: str) -> NetworkSpec:
        return next(n for n in self.networks if n.name == name)
