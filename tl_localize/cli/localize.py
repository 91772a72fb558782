"""``tl-localize localize`` and ``tl-localize reliability``: a contrast's units, and the
localizer's power."""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from ..errors import LocalizeError
from ._common import (
    add_common_options,
    add_config_options,
    command_line,
    config_from_args,
    contrast_from_args,
    model_from_args,
    options_named,
    split_list,
)

# the localizer's settings each localizing command offers (the config's order)
LOCALIZE_SETTINGS = (
    "site", "top", "band", "pooling", "absolute", "selection", "truncate", "prepend_bos",
    "batch_size", "holdout", "seed", "n_permutations", "preset",
)  # fmt: skip
RELIABILITY_LOCALIZE = (
    "site", "pooling", "absolute", "selection", "truncate", "prepend_bos", "batch_size", "preset",
)  # fmt: skip


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The localizer settings of ``names`` as given on the command line (None: not given;
    ``absolute`` is offered as ``--signed``); the preset is resolve_config's own argument."""
    return {
        name: (False if args.signed else None) if name == "absolute" else getattr(args, name)
        for name in names
        if name != "preset"
    }


def _cmd_localize(args: argparse.Namespace) -> int:
    from ..config import resolve_config
    from ..localize import holdout_split, localize
    from ..results import check_output

    check_output(args.out, force=args.force)
    contrast = contrast_from_args(args)
    settings = _given(args, LOCALIZE_SETTINGS)
    with options_named():
        config = resolve_config(args.preset, contrast.pooling, **settings)  # every setting
    if config.holdout is not None:  # each condition must leave enough texts on both sides
        for cond in (contrast.positive_condition, contrast.negative_condition):
            holdout_split(len(contrast.conditions[cond]), config.holdout, random.Random(0), cond)
    start = time.perf_counter()
    model = model_from_args(args)
    load_s = time.perf_counter() - start
    loc = localize(model, contrast, preset=args.preset, progress=not args.quiet, **settings)
    loc.record["timings"]["load_model_s"] = load_s
    loc.record["command"] = command_line(args)
    loc.save(args.out, force=args.force)
    print(f"{loc!r}")
    print(loc.summary())
    print(
        f"wrote {args.out}/ (record.json, units.safetensors, stats.safetensors, units.csv, "
        "conditions.csv, layers.png)"
    )
    return 0


def _cmd_reliability(args: argparse.Namespace) -> int:
    from ..config import ReliabilityConfig, resolve_config
    from ..reliability import check_sizes, reliability
    from ..results import check_output, now

    check_output(args.out, force=args.force)
    contrast = contrast_from_args(args)
    settings = _given(args, RELIABILITY_LOCALIZE)
    with options_named():
        resolve_config(args.preset, contrast.pooling, top=args.top, **settings)
    config_from_args(ReliabilityConfig, args, sizes="auto")  # --top, --n-splits, --seed
    sizes: list[int] | str = args.sizes.strip()
    if sizes != "auto":
        try:
            sizes = [int(n) for n in split_list(args.sizes)]
        except ValueError:
            raise LocalizeError(
                f"--sizes {args.sizes!r}: give numbers of stimuli per condition such as "
                "10,20,40, or auto."
            ) from None
    conditions = (contrast.positive_condition, contrast.negative_condition)
    try:
        check_sizes(sizes, min(len(contrast.conditions[c]) for c in conditions))
    except LocalizeError as error:
        raise LocalizeError(f"--sizes: {error}") from None
    start = time.perf_counter()
    model = model_from_args(args)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    power = reliability(
        model, contrast, top=args.top, sizes=sizes, n_splits=args.n_splits, seed=args.seed,
        preset=args.preset, progress=not args.quiet,
        **{k: v for k, v in settings.items() if v is not None},
    )  # fmt: skip
    seconds = time.perf_counter() - start
    power.record.update(
        created=now(),
        command=command_line(args),
        contrast={"name": contrast.name, "hash": contrast.hash, "sizes": contrast.sizes()},
        timings={"load_model_s": load_s, "power_s": seconds},
    )
    power.save(args.out, force=args.force)
    print(power.summary())
    print(f"wrote {args.out}/ (power.csv, splits.csv, power.png, record.json)")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    from ..config import LocalizeConfig, ReliabilityConfig

    loc = sub.add_parser("localize", help="find the units selective for a contrast")
    loc.add_argument(
        "--contrast",
        default="language",
        help="built-in (language, language4, md, tom), a CSV file, a folder of EvLab CSV "
        "lists, or a tomloc folder",
    )
    loc.add_argument("--text-column", default="text")
    loc.add_argument("--condition-column", default="condition")
    loc.add_argument("--positive", default=None, help="positive condition (CSV contrasts)")
    loc.add_argument("--negative", default=None, help="negative condition (CSV contrasts)")
    add_config_options(
        loc, LocalizeConfig, [n for n in LOCALIZE_SETTINGS if n != "absolute"], unset=True
    )
    loc.add_argument(
        "--signed",
        action="store_true",
        help="t-test on signed activations instead of absolute ones (absolute=False)",
    )
    add_common_options(loc)
    loc.set_defaults(func=_cmd_localize)

    rel = sub.add_parser(
        "reliability",
        help="the localizer's power: split-half agreement by the number of stimuli",
    )
    rel.add_argument("--contrast", default="language", help="as for localize")
    rel.add_argument("--text-column", default="text")
    rel.add_argument("--condition-column", default="condition")
    rel.add_argument("--positive", default=None, help="positive condition (CSV contrasts)")
    rel.add_argument("--negative", default=None, help="negative condition (CSV contrasts)")
    add_config_options(rel, ReliabilityConfig, ["top", "n_splits", "seed"])
    rel.add_argument(
        "--sizes",
        default="auto",
        help="stimuli per condition in each of the two disjoint sets, a comma list such as "
        "10,20,40; auto: 5, 10, 20, ... up to half of the smaller condition (default auto: "
        "this command measures the localizer's power)",
    )
    reliability_settings = [n for n in RELIABILITY_LOCALIZE if n != "absolute"]
    add_config_options(rel, LocalizeConfig, reliability_settings, unset=True)
    rel.add_argument("--signed", action="store_true", help="t-test on signed activations")
    add_common_options(rel)
    rel.set_defaults(func=_cmd_reliability)
    return [loc, rel]
