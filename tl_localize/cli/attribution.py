"""``tl-localize unit-attribution`` (alias ``attribute``): :func:`tl_localize.unit_attribution`
and :func:`tl_localize.check_attribution`, joined with a saved localization."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import LocalizeError
from ._common import (
    add_common_options,
    add_config_options,
    command_line,
    config_from_args,
    load_localization,
    model_from_args,
)


def _cmd_attribute(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    from ..attribution import SCORES, check_attribution, plot_check, unit_attribution
    from ..config import AttributionConfig
    from ..contrast import BUILTINS, Contrast
    from ..data.pairs import read_pairs
    from ..join import join, join_summary, plot_join, plot_join_layers
    from ..results import atomic_folder, check_output
    from ..tasks import get_task
    from ..views import head_attention_view, head_writes, top_stimuli_view

    check_output(args.out, force=args.force)
    config = config_from_args(AttributionConfig, args)
    if args.score not in SCORES:
        raise LocalizeError(f"--score {args.score!r}: use one of {list(SCORES)}.")
    if args.pairs:
        task: Any = read_pairs(args.pairs)
    else:
        task = args.task
        get_task(task).prepare(blimp=args.blimp).pairs()  # the task's files, checked now
    loc = load_localization(args.units)
    model = model_from_args(args)
    loc.units.check_model(model)
    site = loc.units.site
    common = {"unaligned": config.unaligned, "blimp": args.blimp, "seed": config.seed,
              "batch_size": config.batch_size, "progress": not args.quiet}  # fmt: skip
    att = unit_attribution(model, site, task, n_items=config.n_items, **common)
    check = None
    if config.check_units:
        check = check_attribution(
            model, site, task, kind=config.check_kind, n_units=config.check_units,
            n_items=config.check_items, **common,
        )  # fmt: skip
    frame = join(loc, att, check)
    summary = join_summary(frame, score=args.score)
    name = loc.contrast
    contrast = Contrast.builtin(name) if name in BUILTINS else None
    heads = None
    if site == "resid_post" and contrast is not None:
        texts = contrast.conditions[contrast.positive_condition][:64]
        heads = head_writes(model, loc.units, texts)
    skipped = []
    if contrast is None:
        what = "heads.csv or views" if args.views else "heads.csv"
        skipped.append(f"no {what}: the contrast {name!r} is not built in (no stimuli to show)")
    elif site != "resid_post":
        what = "heads.csv or heads view" if args.views else "heads.csv"
        skipped.append(f"no {what}: head writes need resid_post units, not {site!r}")
    figures = {"attribution.png": plot_join(frame, args.score)}
    figures["layers.png"] = plot_join_layers(summary)
    if check is not None:
        figures["check.png"] = plot_check(check)
    att.record.update(
        command=command_line(args),
        units=str(Path(args.units).resolve()),
        localization=loc.record,
        score=args.score,
        check=None
        if check is None
        else {"kind": check.kind, "n_units": len(check), "n_pairs": check.n_pairs,
              "pearson": check.pearson, "spearman": check.spearman},
    )  # fmt: skip
    with atomic_folder(args.out, force=args.force) as tmp:
        att.write(tmp)  # what save writes, with the record
        frame.to_csv(tmp / "join.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        if check is not None:
            check.to_frame().to_csv(tmp / "check.csv", index=False)
        if heads is not None:
            heads.to_csv(tmp / "heads.csv", index=False)
        for filename, fig in figures.items():
            fig.savefig(tmp / filename, dpi=120, bbox_inches="tight")
            plt.close(fig)
        if args.views and contrast is not None:
            order = loc.stats["t"]
            top_stimuli_view(model, loc.units, contrast, order=order).save(
                tmp / "top_stimuli.view.html"
            )
            if heads is not None:
                examples = [texts[0] for texts in contrast.conditions.values()]
                head_attention_view(model, heads.head(4), examples).save(tmp / "heads.view.html")
    overall = summary.iloc[0]
    print(
        f"{att!r}\nselectivity vs {args.score}: Spearman rho {overall['spearman']:.3f} "
        f"(p {overall['p_spearman']:.2g}); top-{overall['n_selected']} overlap "
        f"{overall['overlap']} (chance {overall['expected']:.1f}, p {overall['p_overlap']:.2g})"
    )
    if check is not None:
        print(check.summary())
    for reason in skipped:
        print(f"note: {reason}")
    print(f"wrote {args.out}/")
    return 0


def add_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    from ..config import AttributionConfig
    from ..tasks import attributable

    att = sub.add_parser(
        "unit-attribution",
        aliases=["attribute"],
        help="attribution patching per unit, joined with a localization",
    )
    att.add_argument("--units", required=True, help="a folder written by 'localize'")
    att.add_argument("--task", default="builtin", choices=attributable())
    att.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    att.add_argument("--pairs", default=None, help="a .csv or .jsonl of minimal pairs instead")
    add_config_options(att, AttributionConfig, aliases={"check_units": ("--check",)})
    att.add_argument("--score", default="patch_abs", help="attribution score to compare")
    att.add_argument("--views", action="store_true", help="also write circuitsvis views")
    add_common_options(att)
    att.set_defaults(func=_cmd_attribute)
    return [att]
