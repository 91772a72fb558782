"""Command line: ``tl-localize localize ...``.

Every command writes a results folder that says how it was made (``record.json``) and is
written under a temporary name, then renamed, so an interrupted run never leaves a folder
that looks complete. An existing folder is replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from .contrast import BUILTINS, Contrast
from .errors import LocalizeError
from .localize import PRESETS, localize
from .models import load_model
from .sites import SITES

__all__ = ["main"]


def _contrast(args: argparse.Namespace) -> Contrast:
    spec = args.contrast
    path = Path(spec)
    if path.is_dir():
        if any(path.glob("*_story.txt")):
            return Contrast.from_tomloc(path)
        return Contrast.from_evlab_csv(path)
    if path.suffix == ".csv":
        if not (args.positive and args.negative):
            raise LocalizeError(
                f"--contrast {spec} is a CSV: also give --positive and --negative (values of "
                f"its --condition-column, default {args.condition_column!r})."
            )
        return Contrast.from_csv(
            path,
            text=args.text_column,
            condition=args.condition_column,
            positive=args.positive,
            negative=args.negative,
            pooling=args.pooling or "mean",
        )
    return Contrast.builtin(spec)


def _cmd_localize(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise LocalizeError(f"{out} already exists; pass --force to replace it.")
    contrast = _contrast(args)
    start = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - start
    loc = localize(
        model,
        contrast,
        site=args.site,
        top=args.top,
        pooling=args.pooling,
        selection=args.selection,
        preset=args.preset,
        batch_size=args.batch_size,
        truncate=args.truncate,
        absolute=False if args.signed else None,
        progress=not args.quiet,
    )
    loc.record["timings"]["load_model_s"] = load_s
    loc.record["command"] = shlex.join(["tl-localize", *args.argv])
    loc.save(out, force=args.force)
    per_layer = loc.units.per_layer()
    busiest = per_layer.sort_values("count", ascending=False).head(5)
    print(f"{loc!r}")
    print(
        "layers with most units: "
        + ", ".join(f"{r.layer} ({r.count})" for r in busiest.itertuples())
    )
    print(
        f"wrote {out}/ (record.json, units.safetensors, stats.safetensors, units.csv, layers.png)"
    )
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    import json

    import matplotlib.pyplot as plt

    from .ablation import generation_sample, unit_means
    from .compare import compare_ablation, plot_ablation
    from .localize import Localization
    from .results import atomic_folder, now, versions

    out = Path(args.out)
    if out.exists() and not args.force:
        raise LocalizeError(f"{out} already exists; pass --force to replace it.")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    model = load_model(args.model)
    loc = Localization.load(args.units, model)
    means = None
    if args.method == "mean":
        name = args.means_from
        if name is None:  # the localizer's own stimuli when built in
            name = loc.record["contrast"]["name"]
            name = name if name in BUILTINS else "language"
        reference = Contrast.builtin(name)
        texts = [t for texts in reference.conditions.values() for t in texts]
        means = unit_means(model, texts, loc.units.site, progress=not args.quiet)
    fractions = [float(f) for f in args.fractions.split(",")] if args.fractions else None
    start = time.perf_counter()
    frame, items = compare_ablation(
        model,
        loc,
        tasks,
        n_random=args.n_random,
        match=[m.strip() for m in args.match.split(",")],
        method=args.method,
        means=means,
        fractions=fractions,
        blimp=args.blimp,
        syntaxgym=args.syntaxgym,
        n_per_paradigm=args.n_per_paradigm,
        progress=not args.quiet,
        return_items=True,
    )
    seconds = time.perf_counter() - start
    controls = {
        "intact": None,
        "selected": loc.units,
        "random (magnitude, seed 0)": loc.units.random_like(0, "magnitude", loc.stats["magnitude"]),
    }
    sample = generation_sample(model, controls, method=args.method, means=means)
    with atomic_folder(out, force=args.force) as tmp:
        frame.to_csv(tmp / "ablation.csv", index=False)
        items.to_csv(tmp / "items.csv", index=False)
        sample.to_csv(tmp / "generation.csv", index=False)
        fig = plot_ablation(frame)
        fig.savefig(tmp / "ablation.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        record = {
            "created": now(),
            "command": shlex.join(["tl-localize", *args.argv]),
            "units": str(Path(args.units).resolve()),
            "localization": loc.record,
            "tasks": tasks,
            "n_random": args.n_random,
            "match": args.match,
            "method": args.method,
            "fractions": fractions,
            "versions": versions(),
            "timings": {"compare_s": seconds},
        }
        (tmp / "record.json").write_text(json.dumps(record, indent=2, default=str))
    summary = frame.groupby(["task", "set", "match"], dropna=False)["change_pct"].mean()
    print(summary.round(1).to_string())
    print(sample.to_string(index=False))
    print(f"wrote {out}/ (ablation.csv, items.csv, generation.csv, ablation.png, record.json)")
    return 0


def _cmd_brain(args: argparse.Namespace) -> int:
    import json

    from .brain import (
        BrainData,
        brain_alignment,
        layer_alignment,
        plot_brain_alignment,
        plot_layer_alignment,
    )
    from .localize import Localization
    from .results import atomic_folder, now, versions

    out = Path(args.out)
    if out.exists() and not args.force:
        raise LocalizeError(f"{out} already exists; pass --force to replace it.")
    data = BrainData.from_csv(
        args.data,
        sentence=args.sentence_column,
        responses=[c.strip() for c in args.response_column.split(",")],
        groups=args.group_column,
    )
    model = load_model(args.model)
    loc = Localization.load(args.units, model)
    start = time.perf_counter()
    frame = brain_alignment(
        model, loc, data, n_random=args.n_random, match=args.match, folds=args.folds,
        seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    layers = None
    if args.layers:
        layers = layer_alignment(
            model, data, loc.units.site, pooling=loc.record["contrast"]["pooling"],
            folds=args.folds, seed=args.seed, progress=not args.quiet,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    with atomic_folder(out, force=args.force) as tmp:
        frame.to_csv(tmp / "alignment.csv", index=False)
        plot_brain_alignment(frame).savefig(tmp / "alignment.png", dpi=120, bbox_inches="tight")
        if layers is not None:
            layers.to_csv(tmp / "layers.csv", index=False)
            plot_layer_alignment(layers).savefig(tmp / "layers.png", dpi=120, bbox_inches="tight")
        record = {
            "created": now(),
            "command": shlex.join(["tl-localize", *args.argv]),
            "units": str(Path(args.units).resolve()),
            "localization": loc.record,
            "data": {
                "path": str(Path(args.data).resolve()),
                "n_sentences": len(data),
                "responses": list(data.responses.columns),
                "groups": args.group_column,
            },
            "n_random": args.n_random,
            "match": args.match,
            "folds": args.folds,
            "seed": args.seed,
            "versions": versions(),
            "timings": {"alignment_s": seconds},
        }
        (tmp / "record.json").write_text(json.dumps(record, indent=2, default=str))
    print(frame.groupby("set")["r"].agg(["mean", "min", "max"]).round(3).to_string())
    selected = frame[frame["set"] == "selected"].iloc[0]
    if "p_value" in frame:
        print(f"selected r = {selected['r']:.3f}, p vs random = {selected['p_value']:.3g}")
    print(f"wrote {out}/")
    return 0


def _read_pairs(path: Path) -> object:
    import pandas as pd

    from .evaluate import read_jsonl

    if not path.is_file():
        raise LocalizeError(f"--pairs {path}: no such file (a .csv or .jsonl of minimal pairs).")
    return read_jsonl(path) if path.suffix == ".jsonl" else pd.read_csv(path)


def _cmd_attribute(args: argparse.Namespace) -> int:
    import json

    import matplotlib.pyplot as plt

    from .attribution import check_attribution, plot_check, unit_attribution
    from .join import join, join_summary, plot_join, plot_join_layers
    from .localize import Localization
    from .results import atomic_folder
    from .views import head_attention_view, head_writes, top_stimuli_view

    out = Path(args.out)
    if out.exists() and not args.force:
        raise LocalizeError(f"{out} already exists; pass --force to replace it.")
    task = _read_pairs(Path(args.pairs)) if args.pairs else args.task
    model = load_model(args.model)
    loc = Localization.load(args.units, model)
    site = loc.units.site
    options = {"blimp": args.blimp} if args.blimp else {}
    att = unit_attribution(
        model, site, task, n_items=args.n_items, unaligned=args.unaligned,
        progress=not args.quiet, **options,
    )  # fmt: skip
    check = None
    if args.check:
        check = check_attribution(
            model, site, task, n_units=args.check, n_items=args.check_items,
            unaligned=args.unaligned, progress=not args.quiet,
        )  # fmt: skip
    frame = join(loc, att, check)
    summary = join_summary(frame, args.score)
    name = loc.record["contrast"]["name"]
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
        command=shlex.join(["tl-localize", *args.argv]),
        units=str(Path(args.units).resolve()),
        localization=loc.record,
        score=args.score,
        check=None if check is None else {**check.attrs, "n_units": len(check)},
    )
    with atomic_folder(out, force=args.force) as tmp:
        att.write(tmp)
        frame.to_csv(tmp / "join.csv", index=False)
        summary.to_csv(tmp / "summary.csv", index=False)
        if check is not None:
            check.to_csv(tmp / "check.csv", index=False)
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
        (tmp / "record.json").write_text(json.dumps(att.record, indent=2, default=str))
    overall = summary.iloc[0]
    print(
        f"{att!r}\nselectivity vs {args.score}: Spearman rho {overall['spearman']:.3f} "
        f"(p {overall['p_spearman']:.2g}); top-{overall['n_selected']} overlap "
        f"{overall['overlap']} (chance {overall['expected']:.1f}, p {overall['p_overlap']:.2g})"
    )
    if check is not None:
        print(
            f"attribution vs real patching on {len(check)} units: "
            f"r {check.attrs['pearson']:.2f}, rho {check.attrs['spearman']:.2f}"
        )
    for reason in skipped:
        print(f"note: {reason}")
    print(f"wrote {out}/")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.folder, args.out)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tl-localize", description="Functional localizers for language models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    loc = sub.add_parser("localize", help="find the units selective for a contrast")
    loc.add_argument(
        "--model",
        default=None,
        help="a .gguf file, HF folder or hub name (default: the embedded SmolLM2-135M-Instruct)",
    )
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
    loc.add_argument("--top", default="1%", help="fraction ('1%%', 0.01) or count (172)")
    loc.add_argument("--site", default=None, choices=sorted(SITES))
    loc.add_argument("--pooling", default=None, choices=["last", "mean"])
    loc.add_argument("--selection", default=None, choices=["global", "per_layer"])
    loc.add_argument("--preset", default=None, choices=sorted(PRESETS))
    loc.add_argument("--batch-size", type=int, default=None)
    loc.add_argument("--truncate", type=int, default=None)
    loc.add_argument(
        "--signed",
        action="store_true",
        help="t-test on signed activations instead of absolute ones",
    )
    loc.add_argument("--out", required=True, help="results folder to write")
    loc.add_argument("--force", action="store_true", help="replace an existing --out folder")
    loc.add_argument("--quiet", action="store_true", help="no progress bars")
    loc.set_defaults(func=_cmd_localize)

    abl = sub.add_parser("ablate", help="ablate localized units and random controls")
    abl.add_argument("--units", required=True, help="a folder written by 'localize'")
    abl.add_argument("--model", default=None, help="the model the units were made for")
    abl.add_argument("--tasks", default="builtin", help="comma list: builtin,blimp,syntaxgym")
    abl.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    abl.add_argument("--syntaxgym", default=None, help="SyntaxGym suite file or folder")
    abl.add_argument(
        "--n-per-paradigm",
        type=int,
        default=None,
        help="first N pairs of each BLiMP / built-in paradigm",
    )
    abl.add_argument("--n-random", type=int, default=3)
    abl.add_argument("--match", default="uniform,magnitude", help="control kinds, comma list")
    abl.add_argument("--method", default="zero", choices=["zero", "mean"])
    abl.add_argument(
        "--means-from",
        default=None,
        help="built-in contrast whose texts give the means for --method mean (default: the "
        "localization's contrast when built in, else language)",
    )
    abl.add_argument("--fractions", default=None, help="e.g. 0.00125,0.0025,0.005,0.01")
    abl.add_argument("--out", required=True)
    abl.add_argument("--force", action="store_true")
    abl.add_argument("--quiet", action="store_true")
    abl.set_defaults(func=_cmd_ablate)

    brain = sub.add_parser("brain", help="encoding of fMRI responses by the localized units")
    brain.add_argument("--units", required=True, help="a folder written by 'localize'")
    brain.add_argument("--data", required=True, help="CSV with sentences and responses")
    brain.add_argument("--model", default=None)
    brain.add_argument("--sentence-column", default="Sentence")
    brain.add_argument("--response-column", default="EffectSize", help="one or a comma list")
    brain.add_argument("--group-column", default=None, help="keep each group in one fold")
    brain.add_argument("--n-random", type=int, default=10)
    brain.add_argument("--match", default="uniform", choices=["uniform", "layer", "magnitude"])
    brain.add_argument("--folds", type=int, default=10)
    brain.add_argument("--seed", type=int, default=0)
    brain.add_argument("--layers", action="store_true", help="also score each layer's units")
    brain.add_argument("--out", required=True)
    brain.add_argument("--force", action="store_true")
    brain.add_argument("--quiet", action="store_true")
    brain.set_defaults(func=_cmd_brain)

    att = sub.add_parser(
        "attribute", help="attribution patching per unit, joined with a localization"
    )
    att.add_argument("--units", required=True, help="a folder written by 'localize'")
    att.add_argument("--model", default=None)
    att.add_argument("--task", default="builtin", choices=["builtin", "blimp"])
    att.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    att.add_argument("--pairs", default=None, help="a .csv or .jsonl of minimal pairs instead")
    att.add_argument("--n-items", type=int, default=None, help="a random sample of N pairs")
    att.add_argument("--unaligned", default=None, choices=["error", "drop"])
    att.add_argument(
        "--check", type=int, default=20, help="units to check by real patching (0: none)"
    )
    att.add_argument("--check-items", type=int, default=24)
    att.add_argument("--score", default="patch_abs", help="attribution score to compare")
    att.add_argument("--views", action="store_true", help="also write circuitsvis views")
    att.add_argument("--out", required=True)
    att.add_argument("--force", action="store_true")
    att.add_argument("--quiet", action="store_true")
    att.set_defaults(func=_cmd_attribute)

    rep = sub.add_parser("report", help="one self-contained HTML page from a results folder")
    rep.add_argument("folder", help="a results folder, or a folder of them")
    rep.add_argument("--out", default=None, help="the page to write (default FOLDER/report.html)")
    rep.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except LocalizeError as error:
        print(f"tl-localize: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
