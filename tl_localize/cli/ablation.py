"""``tl-localize compare-ablation`` (alias ``ablate``): :func:`tl_localize.compare_ablation`
on a saved localization."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..errors import LocalizeError
from ._common import (
    add_common_options,
    add_config_options,
    analysis_record,
    config_from_args,
    load_localization,
    model_from_args,
    split_list,
)


def _reference_texts(spec: str) -> list[str]:
    """A built-in contrast's texts (all conditions) or a text file's lines."""
    from ..contrast import BUILTINS, Contrast
    from ..tasks import read_texts

    if spec in BUILTINS:
        reference = Contrast.builtin(spec)
        return [t for texts in reference.conditions.values() for t in texts]
    return read_texts(spec)


def _cmd_ablate(args: argparse.Namespace) -> int:
    from ..ablation import generation_sample, unit_means
    from ..compare import compare_ablation
    from ..config import AblationConfig
    from ..contrast import BUILTINS
    from ..localize import resolve_top
    from ..results import atomic_folder, check_output
    from ..tasks import prepare_tasks

    check_output(args.out, force=args.force)
    tasks = split_list(args.tasks)
    if not tasks:
        raise LocalizeError("--tasks names no task; give at least one, e.g. --tasks builtin.")
    options = {
        "blimp": args.blimp,
        "syntaxgym": args.syntaxgym,
        "n_per_paradigm": args.n_per_paradigm,
        "texts": args.perplexity,
    }
    config = config_from_args(AblationConfig, args)
    prepared = prepare_tasks(tasks, **options)  # reads and checks every task file
    matches = list(config.match) if config.n_random else []
    fractions = list(config.fractions) if config.fractions else None
    loc = load_localization(args.units)
    for fraction in fractions or []:  # each fraction must select at least one unit
        n_units = loc.units.n_units if loc.config.selection == "global" else loc.units.width
        try:
            resolve_top(fraction, n_units)
        except LocalizeError as error:
            raise LocalizeError(f"--fractions {fraction:g}: {error}") from None
    reference_spec = args.reference
    if args.method in ("mean", "resample"):
        if reference_spec is None:  # the localizer's own stimuli when built in
            name = loc.contrast
            reference_spec = name if name in BUILTINS else "language"
        reference = _reference_texts(reference_spec)
    elif reference_spec is not None:
        raise LocalizeError("--reference is for --method mean or resample, not zero.")
    model = model_from_args(args)
    loc.units.check_model(model)
    means = None
    if args.method == "mean":
        means = unit_means(model, reference, site=loc.units.site, progress=not args.quiet)
    start = time.perf_counter()
    result = compare_ablation(
        model,
        loc,
        [p.task for p in prepared],
        **{**config.to_dict(), "match": matches or "uniform", "fractions": fractions},
        means=means,
        reference=reference if args.method == "resample" else None,
        options=options,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    controls: dict[str, Any] = {"intact": None, "selected": loc.units}
    if "magnitude" in matches:
        controls["random (magnitude, seed 0)"] = loc.units.random_like(
            0, "magnitude", loc.stats["magnitude"]
        )
    sample = None
    if args.method != "resample":
        sample = generation_sample(model, controls, method=args.method, means=means)
    result.record.update(analysis_record(
        args, loc, result, {"compare_s": seconds}, tasks=tasks,
        **{**config.to_dict(), "match": matches, "fractions": fractions},
        reference=reference_spec,
    ))  # fmt: skip
    with atomic_folder(args.out, force=args.force) as tmp:
        result.write(tmp)  # what save writes, with the record
        if sample is not None:
            sample.to_csv(tmp / "generation.csv", index=False)
    print(result.summary())
    if sample is not None:
        print(sample.to_string(index=False))
    print(f"wrote {args.out}/ (ablation.csv, verdicts.csv, items.csv, ablation.png, record.json)")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    from ..config import AblationConfig
    from ..tasks import TASKS

    abl = sub.add_parser(
        "compare-ablation",
        aliases=["ablate"],
        help="ablate localized units and random controls",
    )
    abl.add_argument("--units", required=True, help="a folder written by 'localize'")
    abl.add_argument("--tasks", default="builtin", help=f"comma list of {sorted(TASKS)}")
    abl.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    abl.add_argument("--syntaxgym", default=None, help="SyntaxGym suite file or folder")
    abl.add_argument("--perplexity", default=None, help="text file for the perplexity task")
    add_config_options(abl, AblationConfig)
    abl.add_argument(
        "--reference",
        default=None,
        help="for --method mean/resample: a built-in contrast or a text file of neutral texts "
        "(default: the localization's contrast when built in, else language)",
    )
    add_common_options(abl)
    abl.set_defaults(func=_cmd_ablate)
    return [abl]
