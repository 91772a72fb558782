"""``tl-localize brain-alignment`` (alias ``brain``): :func:`tl_localize.brain_alignment`
on a saved localization."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
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


def _cmd_brain(args: argparse.Namespace) -> int:
    from ..brain import (
        BrainData,
        brain_alignment,
        check_folds,
        layer_alignment,
        plot_layer_alignment,
    )
    from ..config import BrainConfig
    from ..results import atomic_folder, check_output

    check_output(args.out, force=args.force)
    config = config_from_args(BrainConfig, args)
    data = BrainData.from_csv(
        args.data,
        sentence=args.sentence_column,
        responses=split_list(args.response_column),
        groups=args.group_column,
        dropna=args.dropna,
    )
    if len(data) < args.folds:
        raise LocalizeError(
            f"{args.data}: {len(data)} sentences cannot be split into {args.folds} folds; use "
            f"--folds {len(data)} or fewer."
        )
    check_folds(data, args.folds)  # groups too
    loc = load_localization(args.units)
    model = model_from_args(args)
    loc.units.check_model(model)
    start = time.perf_counter()
    result = brain_alignment(model, loc, data, **config.to_dict(), progress=not args.quiet)
    layers = None
    if args.layers:
        layers = layer_alignment(
            model, data, site=loc.units.site,
            pooling=config.pooling or loc.record["contrast"]["pooling"], folds=config.folds,
            seed=config.seed, n_boot=config.n_boot,
            batch_size=config.batch_size, progress=not args.quiet,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    data_record = {
        "path": str(Path(args.data).resolve()),
        "n_sentences": len(data),
        "responses": list(data.responses.columns),
        "groups": args.group_column,
    }
    result.record.update(analysis_record(
        args, loc, result, {"alignment_s": seconds}, data=data_record,
        **{**config.to_dict(), "match": list(config.match)},
    ))  # fmt: skip
    with atomic_folder(args.out, force=args.force) as tmp:
        result.write(tmp)  # what save writes, with the record
        if layers is not None:
            import matplotlib.pyplot as plt

            layers.to_csv(tmp / "layers.csv", index=False)
            fig = plot_layer_alignment(layers)
            fig.savefig(tmp / "layers.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
    print(result.summary())
    print(f"wrote {args.out}/ (alignment.csv, verdicts.csv, alignment.png, record.json)")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    from ..config import BrainConfig

    brain = sub.add_parser(
        "brain-alignment",
        aliases=["brain"],
        help="encoding of fMRI responses by the localized units",
    )
    brain.add_argument("--units", required=True, help="a folder written by 'localize'")
    brain.add_argument("--data", required=True, help="CSV with sentences and responses")
    brain.add_argument("--sentence-column", default="Sentence")
    brain.add_argument("--response-column", default="EffectSize", help="one or a comma list")
    brain.add_argument("--group-column", default=None, help="keep each group in one fold")
    brain.add_argument("--dropna", action="store_true", help="drop rows with missing values")
    add_config_options(brain, BrainConfig)
    brain.add_argument("--layers", action="store_true", help="also score each layer's units")
    add_common_options(brain)
    brain.set_defaults(func=_cmd_brain)
    return [brain]
