"""One analysis, one set of settings: the API's keywords, the config's fields, the command
line's options and the study spec's keys have the same names (``n_random`` is
``--n-random``) and the same defaults. Any difference fails, listed.

What is not a setting (the model, a tensor, a file of the task, progress bars) or a setting a
place does not offer is in the tables below, each with why. An entry that no longer matches
anything fails too, so the tables stay true.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

import pytest

from tl_localize import (
    brain_alignment,
    check_attribution,
    compare_ablation,
    localize,
    reliability,
    unit_attribution,
)
from tl_localize.cli import build_parser
from tl_localize.config import (
    AblationConfig,
    AttributionConfig,
    BrainConfig,
    LocalizeConfig,
    ReliabilityConfig,
)
from tl_localize.study.spec import AblationSpec, AttributionSpec, BrainSpec, NetworkSpec, Study

# -- what each place has that is not a setting of the analysis ------------------------------
API_COMMON = {
    "model": "the model the analysis runs on (the first argument)",
    "progress": "progress bars: how a call shows itself, not what it computes",
}
CLI_COMMON = {
    "model": "load_model's: which model (the API takes the model itself)",
    "dtype": "load_model's",
    "device": "load_model's",
    "device_map": "load_model's",
    "max_memory": "load_model's",
    "untrained": "load_model's",
    "init_seed": "load_model's seed= of an untrained twin",
    "out": "the results folder a command writes",
    "force": "whether that folder may be replaced",
    "quiet": "what a command prints",
    "verbose": "what a command prints",
}
CONTRAST_OPTIONS = {
    "contrast": "the stimuli (the API's second argument)",
    "text_column": "Contrast.from_spec's: how a CSV contrast is read",
    "condition_column": "Contrast.from_spec's",
    "positive": "Contrast.from_spec's",
    "negative": "Contrast.from_spec's",
    "signed": "--signed is absolute=False (a flag for the non-default choice)",
}
# (analysis, place) -> name -> why it is not compared with the config's field of that name
EXCEPTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("localize", "api"): {
        "contrast": "the stimuli (a call argument)",
        "check": "a wiring check before the run, not a setting of the result",
    },
    ("localize", "cli"): {**CONTRAST_OPTIONS, "absolute": "offered as --signed"},
    ("localize", "spec"): {
        "name": "the network's label in the study",
        "contrast": "the stimuli",
        "positive": "the stimuli",
        "negative": "the stimuli",
        "tasks": "what the network is ablated for",
        "top": "a list of fractions (one unit set each); its default is the config's (below)",
        "band": "a list of bands, empty by default (the config: None)",
        "absolute": "not a study key: a study localizes with the API's default",
        "selection": "not a study key: a study localizes with the API's default",
        "truncate": "not a study key: a preset sets it",
        "prepend_bos": "not a study key: a study tokenizes as each model's tokenizer does",
        "batch_size": "the study's top-level batch_size (its default is the config's, below)",
        "holdout": "not a study key: a study selects on all stimuli",
        "seed": "not a study key: no held-out split, no permutations in a study",
        "n_permutations": "not a study key: a study selects by fraction, not significance",
    },
    ("compare_ablation", "api"): {
        "units": "the unit set (a call argument)",
        "tasks": "what is measured (a call argument)",
        "means": "a tensor: the units' means for method='mean'",
        "reference": "texts or a ResamplePool (an object) for method='resample'",
        "magnitude": "a tensor: the units' magnitudes for the matched controls",
        "blimp": "a task's file (the task registry's option)",
        "syntaxgym": "a task's file (the task registry's option)",
        "options": "any other task option",
    },
    ("compare_ablation", "cli"): {
        "units": "the localization's folder",
        "tasks": "what is measured",
        "blimp": "a task's file",
        "syntaxgym": "a task's file",
        "perplexity": "a task's file",
        "reference": "a built-in contrast or a text file, read into the API's reference texts",
    },
    ("compare_ablation", "spec"): {
        "reference": "a built-in contrast or a text file, as on the command line",
        "fractions": "a network's top list: one unit set per fraction",
        "n_per_paradigm": "a key of the [tasks.NAME] tables",
        "adjust": "the study's top-level adjust, over all its comparisons (default: below)",
    },
    ("brain_alignment", "api"): {
        "units": "the unit set (a call argument)",
        "data": "a BrainData (an object)",
        "features": "a tensor: one model pass reused across calls",
    },
    ("brain_alignment", "cli"): {
        "units": "the localization's folder",
        "data": "BrainData.from_csv's file",
        "sentence_column": "BrainData.from_csv's",
        "response_column": "BrainData.from_csv's",
        "group_column": "BrainData.from_csv's",
        "dropna": "BrainData.from_csv's",
        "layers": "also layer_alignment (another function)",
    },
    ("brain_alignment", "spec"): {
        "data": "the datasets ([[brain.data]] tables)",
        "pooling": "not a study key: each network's localization's pooling",
    },
    ("unit_attribution", "api"): {
        "site": "the units' site (a call argument)",
        "task": "the minimal pairs (a call argument)",
        "blimp": "a task's file",
        "check_kind": "check_attribution's (kind=)",
        "check_units": "check_attribution's (n_units=)",
        "check_items": "check_attribution's (n_items=)",
    },
    ("unit_attribution", "api:check_attribution"): {
        "site": "the units' site (a call argument)",
        "task": "the minimal pairs (a call argument)",
        "blimp": "a task's file",
        "n_items": "the check attributes on its own check_items pairs",
    },
    ("unit_attribution", "cli"): {
        "units": "the localization's folder",
        "task": "the minimal pairs",
        "blimp": "a task's file",
        "pairs": "a file of minimal pairs instead of a task",
        "score": "join_summary's: which score the join compares",
        "views": "also write circuitsvis views",
    },
    ("unit_attribution", "spec"): {
        "tasks": "the study's tasks attributed",
        "check_kind": "a study runs no patching check",
        "check_units": "a study runs no patching check",
        "check_items": "a study runs no patching check",
    },
    ("reliability", "api"): {"contrast": "the stimuli (a call argument)"},
    ("reliability", "cli"): dict(CONTRAST_OPTIONS),
}
# (analysis, place, name) -> why its default differs from the config's
OTHER_DEFAULTS = {
    ("reliability", "cli", "sizes"): "the command measures the localizer's power (auto sizes)",
}
# localize's keywords and options default to None: a preset tells a setting given from one
# left out, and None stands for the config's default (or the preset's value)
UNSET = {("localize", "api"), ("localize", "cli")}
# check_attribution's keywords that are AttributionConfig's check_* fields
RENAMED = {"kind": "check_kind", "n_units": "check_units", "n_items": "check_items"}


def api_settings(function: Callable[..., Any], renamed: dict[str, str] | None = None) -> dict:
    """A function's parameters and their defaults (MISSING where there is none)."""
    out = {}
    for name, param in inspect.signature(function).parameters.items():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = MISSING if param.default is param.empty else param.default
        out[(renamed or {}).get(name, name)] = default
    return out


def cli_settings(command: str) -> dict:
    """A command's options (``--n-random`` as ``n_random``) and positionals, with defaults."""
    (group,) = build_parser()._subparsers._group_actions  # type: ignore[union-attr]
    out = {}
    for action in group.choices[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        name = longs[0][2:].replace("-", "_") if longs else action.dest
        out[name] = action.default
    return out


def spec_settings(cls: type) -> dict:
    out = {}
    for spec in fields(cls):
        has_factory = spec.default_factory is not MISSING
        out[spec.name] = spec.default_factory() if has_factory else spec.default
    return out


def _same(a: Any, b: Any) -> bool:
    norm = lambda v: tuple(v) if isinstance(v, list | tuple) else v  # noqa: E731
    return norm(a) == norm(b)


def differences(analysis: str, config: type, places: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference between the config's fields and each place's settings."""
    defaults = {f.name: f.default for f in fields(config)}
    problems = []
    for place, found in places.items():
        common = {**(API_COMMON if place.startswith("api") else {}),
                  **(CLI_COMMON if place == "cli" else {})}  # fmt: skip
        table = EXCEPTIONS.get((analysis, place), {})
        for name in table:
            if name not in found and name not in defaults:
                problems.append(f"{place}: the exception {name!r} matches nothing; remove it")
        own = {k: v for k, v in found.items() if k not in table and k not in common}
        for name in sorted(set(defaults) - set(own) - set(table)):
            problems.append(f"{place}: no {name} (the config's default {defaults[name]!r})")
        for name in sorted(set(own) - set(defaults)):
            problems.append(f"{place}: {name} is not a field of {config.__name__}")
        unset = (analysis, place) in UNSET
        for name in sorted(set(own) & set(defaults)):
            if (analysis, place, name) in OTHER_DEFAULTS:
                continue
            expected = None if unset else defaults[name]
            if not _same(own[name], expected):
                problems.append(
                    f"{place}: {name} defaults to {own[name]!r}; the config's default is "
                    f"{defaults[name]!r}" + (" (here None stands for it)" if unset else "")
                )
    return problems


ANALYSES: dict[str, tuple[type, Callable[[], dict[str, dict[str, Any]]]]] = {
    "localize": (
        LocalizeConfig,
        lambda: {
            "api": api_settings(localize),
            "cli": cli_settings("localize"),
            "spec": spec_settings(NetworkSpec),
        },
    ),
    "compare_ablation": (
        AblationConfig,
        lambda: {
            "api": api_settings(compare_ablation),
            "cli": cli_settings("compare-ablation"),
            "spec": spec_settings(AblationSpec),
        },
    ),
    "brain_alignment": (
        BrainConfig,
        lambda: {
            "api": api_settings(brain_alignment),
            "cli": cli_settings("brain-alignment"),
            "spec": spec_settings(BrainSpec),
        },
    ),
    "unit_attribution": (
        AttributionConfig,
        lambda: {
            "api": api_settings(unit_attribution),
            "api:check_attribution": api_settings(check_attribution, RENAMED),
            "cli": cli_settings("unit-attribution"),
            "spec": spec_settings(AttributionSpec),
        },
    ),
    "reliability": (
        ReliabilityConfig,
        lambda: {"api": api_settings(reliability), "cli": reliability_cli()},
    ),
}


def reliability_cli() -> dict[str, Any]:
    """reliability's own options; its localizer's options are localize's, checked below."""
    options = cli_settings("reliability")
    localizer = {f.name for f in fields(LocalizeConfig)} - {
        f.name for f in fields(ReliabilityConfig)
    }
    return {k: v for k, v in options.items() if k not in localizer}


@pytest.mark.parametrize("analysis", sorted(ANALYSES))
def test_api_config_cli_and_spec_agree(analysis):
    config, places = ANALYSES[analysis]
    problems = differences(analysis, config, places())
    assert not problems, f"{analysis}:\n" + "\n".join(problems)


def test_the_settings_kept_elsewhere_have_the_configs_defaults():
    study_defaults = {f.name: f.default for f in fields(Study)}
    assert spec_settings(NetworkSpec)["top"] == [LocalizeConfig().top]
    assert study_defaults["batch_size"] == LocalizeConfig().batch_size
    assert study_defaults["adjust"] == AblationConfig().adjust
    # reliability's localizer options are localize's: unset (None), the flag --signed aside
    options = cli_settings("reliability")
    shared = {f.name for f in fields(LocalizeConfig)} & set(options)
    assert shared == {"site", "pooling", "selection", "truncate", "prepend_bos", "batch_size",
                      "preset", "top", "seed"}  # fmt: skip
    assert all(options[name] is None for name in shared - {"top", "seed"})
    assert options["top"] == ReliabilityConfig().top and options["seed"] == 0


def test_each_option_says_its_default_and_help():
    for command, config in [("compare-ablation", AblationConfig), ("brain-alignment", BrainConfig),
                            ("unit-attribution", AttributionConfig)]:  # fmt: skip
        (group,) = build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        helps = {a.dest: a.help or "" for a in group.choices[command]._actions}
        for spec in fields(config):
            assert helps[spec.name].startswith(spec.metadata["help"].replace("%", "%%"))
            if spec.default is not None:
                shown = ",".join(spec.default) if isinstance(spec.default, tuple) else spec.default
                assert f"default {shown}" in helps[spec.name], (command, spec.name)


def test_a_default_changed_in_one_place_is_found():
    def drifted(
        model, units, *, n_random=3, match=("uniform",), method="zero", fractions=None,
        n_per_paradigm=None, n_boot=1000, seed=0, adjust="holm", batch_size=None,
    ):  # fmt: skip
        """compare_ablation with one default moved and one setting gone."""

    places = {"api": api_settings(drifted), "cli": cli_settings("compare-ablation")}
    found = differences("compare_ablation", AblationConfig, places)
    problems = [p for p in found if "matches nothing" not in p]  # drifted() lacks means= ...
    assert problems == [
        "api: match defaults to ('uniform',); the config's default is ('uniform', 'magnitude')",
    ]
    del places["api"]["seed"]
    assert "api: no seed (the config's default 0)" in differences(
        "compare_ablation", AblationConfig, places
    )


BAD_SETTINGS = [
    (AblationConfig, "n_boot", 10, "at least 100"),
    (AblationConfig, "match", ("uniform", "size"), "size"),
    (AblationConfig, "method", "drop", "zero"),
    (AblationConfig, "fractions", (0.01, 1.5), "1.5"),
    (AblationConfig, "adjust", "bonferroni", "holm"),
    (BrainConfig, "folds", 1, "at least 2"),
    (BrainConfig, "ceiling", 1.5, "(0, 1]"),
    (BrainConfig, "n_permutations", 5, "at least 20"),
    (AttributionConfig, "check_units", 1, "0 (no check) or at least 2"),
    (AttributionConfig, "unaligned", "keep", "error"),
    (ReliabilityConfig, "top", "fdr:0.05", "fraction or a count"),
    (ReliabilityConfig, "sizes", "many", "auto"),
    (LocalizeConfig, "holdout", 1.5, "(0, 1)"),
    (LocalizeConfig, "site", "neurons", "resid_post"),
]


@pytest.mark.parametrize(("config", "name", "value", "fix"), BAD_SETTINGS)
def test_a_bad_setting_is_one_error_naming_its_field(config, name, value, fix):
    from tl_localize import LocalizeError

    with pytest.raises(LocalizeError) as caught:
        config(**{name: value})
    assert caught.value.field == name and fix in str(caught.value)


def test_a_study_table_is_checked_by_the_analysis_config(tmp_path):
    from tl_localize import LocalizeError

    data = {"models": [{"label": "m"}], "networks": [{"name": "lang"}],
            "tasks": {"builtin": {}}}  # fmt: skip
    for table, key, value, fix in [("ablation", "n_boot", 10, "at least 100"),
                                   ("ablation", "n_random", "3", "whole number"),
                                   ("brain", "folds", 1, "at least 2"),
                                   ("attribution", "n_items", 0, "at least 1")]:  # fmt: skip
        (tmp_path / "b.csv").write_text("Sentence,EffectSize\nA dog.,0.1\n")
        extra = {"data": [{"path": "b.csv"}]} if table == "brain" else {}
        with pytest.raises(LocalizeError, match=rf"^{table}\.{key}: .*{fix}"):
            Study.from_dict({**data, table: {key: value, **extra}}, base=tmp_path)
    assert Study.from_dict({**data, "networks": [{"name": "x", "top": "1%"}]}).networks[0].top == [
        0.01
    ]
    for top, fix in [(172, "a count"), ("fdr:0.05", "by significance"), (1.0, "(0, 1)")]:
        with pytest.raises(LocalizeError, match=rf"networks\[0\]\.top\[0\]: .*{fix}"):
            Study.from_dict({**data, "networks": [{"name": "x", "top": [top]}]})
