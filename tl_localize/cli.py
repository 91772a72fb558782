"""Command line: ``tl-localize COMMAND ...``.

Every command checks all of its arguments (files, folders, numbers, the output folder)
before it loads a model, so a typo costs milliseconds. A mistake in the input ends in one
line on stderr and exit status 2; an interrupted run (Ctrl-C) in exit status 130. Results
folders are written under a temporary name and renamed when complete, so an interrupted run
never leaves a folder that looks complete; ``--force`` replaces a folder only if it is a
results folder of this toolkit (see :func:`tl_localize.results.check_output`).

Exit statuses: 0 success; 1 an internal error (a bug: please report it, with the
traceback); 2 a problem with the input, said in one line; 130 interrupted; 141 the output
was closed early (``| head``), as for any command stopped by SIGPIPE, with nothing on stderr.

What a command prints on stderr: its own progress bars, and each warning as one line
(``tl-localize: warning: ...``). Third-party load messages and progress bars (transformers,
huggingface_hub) are off unless ``--verbose`` (which also says where each warning came
from); ``--quiet`` leaves only errors: no progress bars, no warnings. Every command takes
both. Starting the command line imports no model code (torch, transformers,
TransformerLens): each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import random
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .errors import LocalizeError, check_int

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INPUT", "EXIT_INTERRUPTED", "build_parser", "main"]

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command that signal ended


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line LocalizeErrors (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise LocalizeError(f"{self.prog}: {message} (see {self.prog} --help)")

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """As argparse's, but an output closed early (``--help | head -1``) is not ignored:
        ``main`` ends as it does for any command whose output is closed."""
        (file if file is not None else sys.stdout).write(self.format_help())


def _command(args: argparse.Namespace) -> str:
    return shlex.join(["tl-localize", *args.argv])


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _count(name: str, value: int | None, low: int) -> None:
    if value is not None:
        check_int(name, value, low)


def _option(name: str) -> str:
    """A config field's option: ``n_random`` is ``--n-random``."""
    return "--" + name.replace("_", "-")


@contextlib.contextmanager
def _options_named() -> Iterator[None]:
    """A config's error about a field, said about the option that set it."""
    try:
        yield
    except LocalizeError as error:
        name = getattr(error, "field", None)
        if name is None:
            raise
        raise LocalizeError(f"{_option(name)}: {error}") from None


def _config(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """The config ``cls`` from the options of its fields (and ``given``), checked."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    with _options_named():
        return cls(**{**values, **given})


def _max_memory(text: str | None) -> dict[Any, str] | None:
    """``--max-memory 0=20GiB,cpu=60GiB`` as accelerate takes it (GPU indices as ints)."""
    if text is None:
        return None
    out: dict[Any, str] = {}
    for part in _split(text):
        device, sep, size = part.partition("=")
        if not sep or not device.strip() or not size.strip():
            raise LocalizeError(
                f"--max-memory: {part!r} is not DEVICE=SIZE; write for example "
                "--max-memory 0=20GiB,cpu=60GiB."
            )
        device = device.strip()
        out[int(device) if device.isdigit() else device] = size.strip()
    return out


def _loading(args: argparse.Namespace) -> dict[str, Any]:
    """The model-loading options of a command, checked (a device that is not there, or
    --max-memory without --device-map, is an input error before any model loads)."""
    from .models import loading_options

    options = {
        "dtype": args.dtype,
        "device": args.device,
        "device_map": args.device_map,
        "max_memory": _max_memory(args.max_memory),
    }
    loading_options(**options)
    return options


def _model(args: argparse.Namespace) -> Any:
    from .models import load_model

    options = _loading(args)
    with _quiet_loading(args, now=True):
        return load_model(args.model, **options, **_untrained(args))


def _untrained(args: argparse.Namespace) -> dict[str, Any]:
    """``--untrained`` and ``--init-seed`` as load_model's ``untrained=`` and ``seed=``."""
    seed = getattr(args, "init_seed", None)
    if seed is not None and not args.untrained:
        raise LocalizeError("--init-seed is the seed of an untrained twin: add --untrained.")
    _count("--init-seed", seed, 0)
    return {"untrained": True, "seed": seed or 0} if getattr(args, "untrained", False) else {}


def _record(
    args: argparse.Namespace, loc: Any, result: Any, timings: dict[str, float], **settings: Any
) -> dict[str, Any]:
    """The record of a command that analyses a saved localization."""
    from .results import now, versions

    return {
        "created": now(),
        "command": _command(args),
        "units": str(Path(args.units).resolve()),
        "localization": loc.record,
        **settings,
        "summary": result.summary(),
        "versions": versions(),
        "timings": timings,
    }


def _load_units(folder: str) -> Any:
    """The localization in ``folder``, checked before any model loads."""
    from .localize import Localization

    return Localization.load(folder)


# -- localize ---------------------------------------------------------------------------
def _contrast(args: argparse.Namespace) -> Any:
    """The contrast a localizing command names (--contrast and its column options)."""
    from .contrast import Contrast

    return Contrast.from_spec(
        args.contrast,
        positive=args.positive,
        negative=args.negative,
        text=args.text_column,
        condition=args.condition_column,
        pooling=args.pooling,
    )


def _cmd_localize(args: argparse.Namespace) -> int:
    from .config import resolve_config
    from .localize import holdout_split, localize
    from .results import check_output

    check_output(args.out, force=args.force)
    contrast = _contrast(args)
    settings = {
        "site": args.site,
        "top": args.top,
        "band": args.band,
        "pooling": args.pooling,
        "selection": args.selection,
        "batch_size": args.batch_size,
        "truncate": args.truncate,
        "prepend_bos": args.prepend_bos,
        "absolute": False if args.signed else None,
        "holdout": args.holdout,
        "seed": args.seed,
        "n_permutations": args.n_permutations,
    }
    with _options_named():
        config = resolve_config(args.preset, contrast.pooling, **settings)  # every setting
    if config.holdout is not None:  # each condition must leave enough texts on both sides
        for cond in (contrast.positive_condition, contrast.negative_condition):
            holdout_split(len(contrast.conditions[cond]), config.holdout, random.Random(0), cond)
    start = time.perf_counter()
    model = _model(args)
    load_s = time.perf_counter() - start
    loc = localize(model, contrast, preset=args.preset, progress=not args.quiet, **settings)
    loc.record["timings"]["load_model_s"] = load_s
    loc.record["command"] = _command(args)
    loc.save(args.out, force=args.force)
    print(f"{loc!r}")
    print(loc.summary())
    print(
        f"wrote {args.out}/ (record.json, units.safetensors, stats.safetensors, units.csv, "
        "conditions.csv, layers.png)"
    )
    return 0


# -- reliability ------------------------------------------------------------------------
def _cmd_reliability(args: argparse.Namespace) -> int:
    from .config import ReliabilityConfig, resolve_config
    from .models import model_signature
    from .reliability import check_sizes, reliability
    from .results import atomic_folder, check_output, now, versions, write_record

    check_output(args.out, force=args.force)
    contrast = _contrast(args)
    settings = {
        "site": args.site,
        "pooling": args.pooling,
        "selection": args.selection,
        "batch_size": args.batch_size,
        "truncate": args.truncate,
        "prepend_bos": args.prepend_bos,
        "absolute": False if args.signed else None,
    }
    with _options_named():
        resolve_config(args.preset, contrast.pooling, top=args.top, **settings)
    _config(ReliabilityConfig, args, sizes="auto")  # --top, --n-splits, --seed
    sizes: list[int] | str = args.sizes.strip()
    if sizes != "auto":
        try:
            sizes = [int(n) for n in _split(args.sizes)]
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
    model = _model(args)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    power = reliability(
        model, contrast, top=args.top, sizes=sizes, n_splits=args.n_splits, seed=args.seed,
        preset=args.preset, progress=not args.quiet,
        **{k: v for k, v in settings.items() if v is not None},
    )  # fmt: skip
    seconds = time.perf_counter() - start
    with atomic_folder(args.out, force=args.force) as tmp:
        power.save(tmp)
        record = {
            "created": now(),
            "command": _command(args),
            "contrast": {"name": contrast.name, "hash": contrast.hash, "sizes": contrast.sizes()},
            "model": model_signature(model),
            "settings": power.settings,
            "summary": power.summary(),
            "versions": versions(),
            "timings": {"load_model_s": load_s, "power_s": seconds},
        }
        write_record(tmp, record, "localizer power")
    print(power.summary())
    print(f"wrote {args.out}/ (power.csv, splits.csv, power.png, record.json)")
    return 0


# -- ablate -----------------------------------------------------------------------------
def _reference_texts(spec: str) -> list[str]:
    """A built-in contrast's texts (all conditions) or a text file's lines."""
    from .contrast import BUILTINS, Contrast
    from .tasks import read_texts

    if spec in BUILTINS:
        reference = Contrast.builtin(spec)
        return [t for texts in reference.conditions.values() for t in texts]
    return read_texts(spec)


def _cmd_ablate(args: argparse.Namespace) -> int:
    from .ablation import generation_sample, unit_means
    from .compare import compare_ablation
    from .config import AblationConfig
    from .contrast import BUILTINS
    from .localize import resolve_top
    from .results import atomic_folder, check_output, write_record
    from .tasks import prepare_tasks

    check_output(args.out, force=args.force)
    tasks = _split(args.tasks)
    if not tasks:
        raise LocalizeError("--tasks names no task; give at least one, e.g. --tasks builtin.")
    options = {
        "blimp": args.blimp,
        "syntaxgym": args.syntaxgym,
        "n_per_paradigm": args.n_per_paradigm,
        "texts": args.perplexity,
    }
    config = _config(AblationConfig, args)
    prepared = prepare_tasks(tasks, **options)  # reads and checks every task file
    matches = list(config.match) if config.n_random else []
    fractions = list(config.fractions) if config.fractions else None
    loc = _load_units(args.units)
    for fraction in fractions or []:  # each fraction must select at least one unit
        n_units = loc.units.n_units if loc.config.selection == "global" else loc.units.width
        try:
            resolve_top(fraction, n_units)
        except LocalizeError as error:
            raise LocalizeError(f"--fractions {fraction:g}: {error}") from None
    reference_spec = args.reference or args.means_from
    if args.means_from:
        from ._compat import warn_deprecated

        warn_deprecated("--means-from", "--reference")
    if args.method in ("mean", "resample"):
        if reference_spec is None:  # the localizer's own stimuli when built in
            name = loc.contrast
            reference_spec = name if name in BUILTINS else "language"
        reference = _reference_texts(reference_spec)
    elif reference_spec is not None:
        raise LocalizeError("--reference is for --method mean or resample, not zero.")
    model = _model(args)
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
    with atomic_folder(args.out, force=args.force) as tmp:
        result.save(tmp)
        if sample is not None:
            sample.to_csv(tmp / "generation.csv", index=False)
        record = _record(
            args, loc, result, {"compare_s": seconds}, tasks=tasks,
            **{**config.to_dict(), "match": matches, "fractions": fractions},
            reference=reference_spec,
        )  # fmt: skip
        write_record(tmp, record, "ablation")
    print(result.summary())
    if sample is not None:
        print(sample.to_string(index=False))
    print(f"wrote {args.out}/ (ablation.csv, verdicts.csv, items.csv, ablation.png, record.json)")
    return 0


# -- brain ------------------------------------------------------------------------------
def _cmd_brain(args: argparse.Namespace) -> int:
    from .brain import (
        BrainData,
        brain_alignment,
        check_folds,
        layer_alignment,
        plot_layer_alignment,
    )
    from .config import BrainConfig
    from .results import atomic_folder, check_output, write_record

    check_output(args.out, force=args.force)
    config = _config(BrainConfig, args)
    data = BrainData.from_csv(
        args.data,
        sentence=args.sentence_column,
        responses=_split(args.response_column),
        groups=args.group_column,
        dropna=args.dropna,
    )
    if len(data) < args.folds:
        raise LocalizeError(
            f"{args.data}: {len(data)} sentences cannot be split into {args.folds} folds; use "
            f"--folds {len(data)} or fewer."
        )
    check_folds(data, args.folds)  # groups too
    loc = _load_units(args.units)
    model = _model(args)
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
    with atomic_folder(args.out, force=args.force) as tmp:
        result.save(tmp)
        if layers is not None:
            import matplotlib.pyplot as plt

            layers.to_csv(tmp / "layers.csv", index=False)
            fig = plot_layer_alignment(layers)
            fig.savefig(tmp / "layers.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
        data_record = {
            "path": str(Path(args.data).resolve()),
            "n_sentences": len(data),
            "responses": list(data.responses.columns),
            "groups": args.group_column,
        }
        record = _record(
            args, loc, result, {"alignment_s": seconds}, data=data_record,
            **{**config.to_dict(), "match": list(config.match)},
        )  # fmt: skip
        write_record(tmp, record, "brain alignment")
    print(result.summary())
    print(f"wrote {args.out}/ (alignment.csv, verdicts.csv, alignment.png, record.json)")
    return 0


# -- attribute --------------------------------------------------------------------------
def _cmd_attribute(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    from .attribution import SCORES, check_attribution, plot_check, unit_attribution
    from .config import AttributionConfig
    from .contrast import BUILTINS, Contrast
    from .data.pairs import read_pairs
    from .join import join, join_summary, plot_join, plot_join_layers
    from .results import atomic_folder, check_output, write_record
    from .tasks import get_task
    from .views import head_attention_view, head_writes, top_stimuli_view

    check_output(args.out, force=args.force)
    config = _config(AttributionConfig, args)
    if args.score not in SCORES:
        raise LocalizeError(f"--score {args.score!r}: use one of {list(SCORES)}.")
    if args.pairs:
        task: Any = read_pairs(args.pairs)
    else:
        task = args.task
        get_task(task).prepare(blimp=args.blimp).pairs()  # the task's files, checked now
    loc = _load_units(args.units)
    model = _model(args)
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
        command=_command(args),
        units=str(Path(args.units).resolve()),
        localization=loc.record,
        score=args.score,
        check=None
        if check is None
        else {"kind": check.kind, "n_units": len(check), "n_pairs": check.n_pairs,
              "pearson": check.pearson, "spearman": check.spearman},
    )  # fmt: skip
    with atomic_folder(args.out, force=args.force) as tmp:
        att.write(tmp)
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
        write_record(tmp, att.record, "attribution")
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


# -- report, check-model, tasks -----------------------------------------------------------
def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.folder, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_check_model(args: argparse.Namespace) -> int:
    from .checks import check_model

    model = _model(args)
    frame = check_model(model, generation=not args.no_generation)
    with_tolerance = frame.assign(ok=frame["passed"].map({True: "ok", False: "FAILED"}))
    print(with_tolerance.to_string(index=False))
    failed = frame[~frame["passed"]]
    if len(failed):
        print(f"{len(failed)} check(s) failed: {', '.join(failed['check'])}")
        return 1
    print(f"all {len(frame)} checks passed")
    return 0


def _cmd_study_run(args: argparse.Namespace) -> int:
    from .study import run_study

    with _quiet_loading(args):  # models load inside, if any job is left to run
        result = run_study(
            args.spec, args.out, executor=args.executor, address=args.address,
            max_parallel=args.max_parallel, retry_failed=args.retry_failed, force=args.force,
            progress=not args.quiet,
        )  # fmt: skip
    counts = result.run_counts
    status = result.status()["status"].value_counts().to_dict()
    print(
        f"study {result.study.name!r}: ran {len(counts['ran'])} job(s), skipped "
        f"{len(counts['skipped'])} finished or failed before, {len(counts['failed'])} failed; "
        f"model loads {counts['loads']}; now {status}"
    )
    if len(counts["failed"]):
        print(result.failures()[["model", "job", "error"]].to_string(index=False))
    print(f"wrote {args.out}/ (results.csv, verdicts.csv, failures.csv, jobs/)")
    return 0


def _cmd_study_status(args: argparse.Namespace) -> int:
    from .study import study_status

    frame = study_status(args.out)
    counts = frame["status"].value_counts().to_dict()
    print(frame.drop(columns=["error"]).to_string(index=False))
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        print(failed[["model", "job", "error"]].to_string(index=False))
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _cmd_study_report(args: argparse.Namespace) -> int:
    from .report import build_study_report, check_page, write_page

    path = Path(args.page) if args.page else Path(args.out) / "report.html"
    if args.page:
        check_page(path)  # before the work
    write_page(build_study_report(args.out), path, default=not args.page)
    print(f"wrote {path}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from .tasks import TASKS

    for name, task in sorted(TASKS.items()):
        needs = f" (needs --{', --'.join(o.replace('_', '-') for o in task.required)})"
        attrib = "; attribution task" if task.attributable else ""
        print(f"{name}: {task.description}{needs if task.required else ''}{attrib}")
    return 0


# -- the parser -------------------------------------------------------------------------
def _loading_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and in what precision the model computes: load_model's keywords."""
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="parameter dtype (default auto: bfloat16 where the device is fast at it)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (default: the first CUDA GPU if there is one, else the CPU), cpu, cuda, "
        "cuda:N or mps",
    )
    parser.add_argument(
        "--device-map",
        default=None,
        help="spread the model over devices, offloading what does not fit (auto, balanced, "
        "sequential); instead of --device",
    )
    parser.add_argument(
        "--max-memory",
        default=None,
        help="with --device-map: memory per device, e.g. 0=20GiB,cpu=60GiB",
    )


# -- what a command prints besides its results --------------------------------------------
def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
    *,
    verbose: bool = False,
) -> None:
    """A warning as one line, ``tl-localize: warning: MESSAGE`` (with ``--verbose`` its
    category and where it was raised), without the source line Python adds."""
    text = " ".join(str(message).split())
    where = f" ({category.__name__} at {filename}:{lineno})" if verbose else ""
    stream = file if file is not None else sys.stderr
    with contextlib.suppress(OSError, ValueError):  # stderr closed: the warning is lost
        stream.write(f"tl-localize: warning: {text}{where}\n")


_DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_OWN = r"(tl_localize|__main__)\b"  # warnings raised on behalf of the toolkit's own code


@contextlib.contextmanager
def _warnings_and_logs(args: argparse.Namespace) -> Iterator[None]:
    """For the duration of a command: warnings one line each (none with ``--quiet``); the
    toolkit's deprecations shown (Python hides them outside ``__main__``) and third-party
    ones (transformers telling TransformerLens of a renamed argument) only with
    ``--verbose``; with ``--quiet`` no log record below an error. Everything is restored
    afterwards."""
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    disabled = logging.root.manager.disable
    with warnings.catch_warnings():

        def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:  # fmt: skip
            _show_warning(message, category, filename, lineno, file, line, verbose=verbose)

        warnings.showwarning = show
        if quiet:
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
        else:
            for category in _DEPRECATIONS:
                if not verbose:  # a third party's notice to the code that calls it
                    warnings.filterwarnings("ignore", category=category)
                # the toolkit's own (a flag going away) are the user's to act on
                warnings.filterwarnings("default", category=category, module=_OWN)
        try:
            yield
        finally:
            logging.disable(disabled)


# environment variables that transformers and huggingface_hub read when they are imported
_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


@contextlib.contextmanager
def _quiet_loading(args: argparse.Namespace, *, now: bool = False) -> Iterator[None]:
    """Third-party load messages and progress bars off (unless ``--verbose``):
    transformers' logging below errors and its bars ("Loading weights"), huggingface_hub's
    bars and, for a GGUF model, the bar of transformers' GGUF conversion ("Converting ...").

    Libraries not imported yet are told through the environment variables they read when
    imported (``HF_HUB_DISABLE_PROGRESS_BARS``, ``TRANSFORMERS_VERBOSITY``), so a command
    that loads no model imports none of them; ``now=True`` (a model loads at once, and
    imports transformers anyway) imports them and uses their own switches. Everything is
    restored afterwards."""
    if getattr(args, "verbose", False):
        yield
        return
    saved_env = {name: os.environ.get(name) for name in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    undo: list[Callable[[], None]] = []
    if now:
        import huggingface_hub.utils  # noqa: F401  (imported by transformers in any case)
        import transformers.utils.logging  # noqa: F401
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        undo.append(lambda: hf_logging.set_verbosity(level))
        if bars:
            undo.append(hf_logging.enable_progress_bar)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        undo.append(hub.enable_progress_bars)
    model = getattr(args, "model", None)
    if now and (model is None or str(model).endswith(".gguf")):
        with contextlib.suppress(ImportError):  # no gguf package: no conversion to silence
            import transformers.modeling_gguf_pytorch_utils as gguf_utils

            bar = gguf_utils.tqdm  # a plain tqdm, outside transformers' own switch
            setattr(gguf_utils, "tqdm", functools.partial(bar, disable=True))  # noqa: B010
            undo.append(lambda: setattr(gguf_utils, "tqdm", bar))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()
        for name, before in saved_env.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


def _end_quietly_on_closed_output() -> int:
    """The reader of stdout went away (``| head``): point stdout at /dev/null so that the
    final flush cannot fail again, and end as a command stopped by SIGPIPE would, with
    nothing on stderr (the Python documentation's "Note on SIGPIPE")."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real stdout (tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _output_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--verbose``, on every command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--quiet", action="store_true", help="errors only: no progress bars, no warnings"
    )
    group.add_argument(
        "--verbose",
        action="store_true",
        help="also third-party load messages and progress bars, and where each warning came from",
    )


def _common(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    if model:
        parser.add_argument(
            "--model",
            default=None,
            help="a .gguf file, HF folder or hub name (default: the embedded SmolLM2-135M)",
        )
        _loading_arguments(parser)
        _untrained_options(parser)
    parser.add_argument("--out", required=True, help="results folder to write (must be new)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it is a results folder of tl_localize holding nothing else",
    )


def _untrained_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="the model's untrained twin: same architecture and tokenizer, fresh weights",
    )
    parser.add_argument(
        "--init-seed", type=int, default=None, help="the untrained twin's seed (default 0)"
    )


def _names(text: str) -> tuple[str, ...]:
    """A comma list of names (``--match uniform,magnitude``)."""
    return tuple(_split(text))


def _numbers(text: str) -> tuple[float, ...]:
    """A comma list of numbers (``--fractions 0.005,0.01``)."""
    try:
        return tuple(float(part) for part in _split(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma list of numbers such as 0.005,0.01"
        ) from None


_KINDS: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "str": str, "list": _names, "floats": _numbers,
}  # fmt: skip


def _shown(value: Any) -> str:
    """A default as one writes it on the command line."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _settings(
    parser: argparse.ArgumentParser,
    cls: type,
    names: Sequence[str] | None = None,
    *,
    unset: bool = False,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """One option per field of the config ``cls`` (those in ``names``, in the config's
    order): ``--n-random`` for ``n_random``, with the field's help and default. ``unset``:
    the option defaults to None, so that a preset can tell a setting given from one left
    out (the help still says the default); ``aliases``: other spellings of an option."""
    from dataclasses import fields

    for spec in fields(cls):
        if names is not None and spec.name not in names:
            continue
        kind, default = spec.metadata.get("kind"), spec.default
        text = str(spec.metadata["help"]).replace("%", "%%")
        if default is not None and "default" not in text:
            text += f" (default {_shown(default)})"
        options = [_option(spec.name), *(aliases or {}).get(spec.name, ())]
        if kind is None:  # a flag: --include-all / --no-include-all
            parser.add_argument(
                *options, action=argparse.BooleanOptionalAction,
                default=None if unset else default, help=text,
            )  # fmt: skip
            continue
        choices = spec.metadata.get("choices") if kind == "str" else None
        parser.add_argument(
            *options, type=_KINDS[kind], default=None if unset else default,
            choices=list(choices) if choices else None, help=text,
        )  # fmt: skip


# the localizer's settings each localizing command offers (the config's order)
LOCALIZE_SETTINGS = (
    "site", "top", "band", "pooling", "absolute", "selection", "truncate", "prepend_bos",
    "batch_size", "holdout", "seed", "n_permutations", "preset",
)  # fmt: skip
RELIABILITY_LOCALIZE = (
    "site", "pooling", "absolute", "selection", "truncate", "prepend_bos", "batch_size", "preset",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from .config import (  # light modules: no model code until a command runs
        AblationConfig,
        AttributionConfig,
        BrainConfig,
        LocalizeConfig,
        ReliabilityConfig,
    )
    from .tasks import TASKS, attributable

    parser = _Parser(prog="tl-localize", description="Functional localizers for language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
    _settings(loc, LocalizeConfig, [n for n in LOCALIZE_SETTINGS if n != "absolute"], unset=True)
    loc.add_argument(
        "--signed",
        action="store_true",
        help="t-test on signed activations instead of absolute ones (absolute=False)",
    )
    _common(loc)
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
    _settings(rel, ReliabilityConfig, ["top", "n_splits", "seed"])
    rel.add_argument(
        "--sizes",
        default="auto",
        help="stimuli per condition in each of the two disjoint sets, a comma list such as "
        "10,20,40; auto: 5, 10, 20, ... up to half of the smaller condition (default auto: "
        "this command measures the localizer's power)",
    )
    reliability_settings = [n for n in RELIABILITY_LOCALIZE if n != "absolute"]
    _settings(rel, LocalizeConfig, reliability_settings, unset=True)
    rel.add_argument("--signed", action="store_true", help="t-test on signed activations")
    _common(rel)
    rel.set_defaults(func=_cmd_reliability)

    abl = sub.add_parser(
        "compare-ablation",
        aliases=["ablate"],
        help="ablate localized units and random controls (alias: ablate)",
    )
    abl.add_argument("--units", required=True, help="a folder written by 'localize'")
    abl.add_argument("--tasks", default="builtin", help=f"comma list of {sorted(TASKS)}")
    abl.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    abl.add_argument("--syntaxgym", default=None, help="SyntaxGym suite file or folder")
    abl.add_argument("--perplexity", default=None, help="text file for the perplexity task")
    _settings(abl, AblationConfig)
    abl.add_argument(
        "--reference",
        default=None,
        help="for --method mean/resample: a built-in contrast or a text file of neutral texts "
        "(default: the localization's contrast when built in, else language)",
    )
    abl.add_argument("--means-from", default=None, help=argparse.SUPPRESS)
    _common(abl)
    abl.set_defaults(func=_cmd_ablate)

    brain = sub.add_parser(
        "brain-alignment",
        aliases=["brain"],
        help="encoding of fMRI responses by the localized units (alias: brain)",
    )
    brain.add_argument("--units", required=True, help="a folder written by 'localize'")
    brain.add_argument("--data", required=True, help="CSV with sentences and responses")
    brain.add_argument("--sentence-column", default="Sentence")
    brain.add_argument("--response-column", default="EffectSize", help="one or a comma list")
    brain.add_argument("--group-column", default=None, help="keep each group in one fold")
    brain.add_argument("--dropna", action="store_true", help="drop rows with missing values")
    _settings(brain, BrainConfig)
    brain.add_argument("--layers", action="store_true", help="also score each layer's units")
    _common(brain)
    brain.set_defaults(func=_cmd_brain)

    att = sub.add_parser(
        "unit-attribution",
        aliases=["attribute"],
        help="attribution patching per unit, joined with a localization (alias: attribute)",
    )
    att.add_argument("--units", required=True, help="a folder written by 'localize'")
    att.add_argument("--task", default="builtin", choices=attributable())
    att.add_argument("--blimp", default=None, help="folder of BLiMP .jsonl files")
    att.add_argument("--pairs", default=None, help="a .csv or .jsonl of minimal pairs instead")
    _settings(att, AttributionConfig, aliases={"check_units": ("--check",)})
    att.add_argument("--score", default="patch_abs", help="attribution score to compare")
    att.add_argument("--views", action="store_true", help="also write circuitsvis views")
    _common(att)
    att.set_defaults(func=_cmd_attribute)

    rep = sub.add_parser("report", help="one self-contained HTML page from a results folder")
    rep.add_argument("folder", help="a results folder, or a folder of them")
    rep.add_argument("--out", default=None, help="the page to write (default FOLDER/report.html)")
    rep.set_defaults(func=_cmd_report)

    chk = sub.add_parser("check-model", help="check a model's wiring (logits, pooling, hooks)")
    chk.add_argument("model", nargs="?", default=None, help="as --model elsewhere")
    _loading_arguments(chk)
    chk.add_argument("--no-generation", action="store_true", help="skip the generation check")
    _untrained_options(chk)
    chk.set_defaults(func=_cmd_check_model)

    study = sub.add_parser("study", help="many models, networks and tasks in one run")
    study_sub = study.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    run = study_sub.add_parser("run", help="run (or resume) a study")
    run.add_argument("spec", help="the study's TOML file")
    run.add_argument("--out", required=True, help="the study's folder (resumed if it exists)")
    run.add_argument("--executor", default="local", choices=["local", "ray"])
    run.add_argument("--address", default=None, help="a Ray cluster: auto or ray://host:port")
    run.add_argument("--max-parallel", type=int, default=None, help="models at once (Ray)")
    run.add_argument("--retry-failed", action="store_true", help="rerun only failed jobs")
    run.add_argument(
        "--force",
        action="store_true",
        help="run in a folder holding another study; load models estimated not to fit",
    )
    run.set_defaults(func=_cmd_study_run)
    status = study_sub.add_parser("status", help="every job: done, running, failed, pending")
    status.add_argument("out", help="a study folder")
    status.set_defaults(func=_cmd_study_status)
    report = study_sub.add_parser("report", help="the study's page (headline table first)")
    report.add_argument("out", help="a study folder")
    report.add_argument("--page", default=None, help="the page to write (default OUT/report.html)")
    report.set_defaults(func=_cmd_study_report)

    tasks = sub.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(func=_cmd_tasks)
    commands = {id(c): c for c in [*sub.choices.values(), *study_sub.choices.values()]}
    for command in commands.values():  # an alias names the same parser
        if command is not study:  # every command (the study group's own are its commands)
            _output_flags(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args = build_parser().parse_args(argv)  # --help prints and exits here
            args.argv = argv
            if hasattr(args, "device"):  # a model-loading command: its placement, first
                _loading(args)
            with _warnings_and_logs(args):
                return int(args.func(args))
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return _end_quietly_on_closed_output()
    except LocalizeError as error:
        message = " ".join(str(error).split())  # one line, whatever the message's layout
        print(f"tl-localize: error: {message}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("tl-localize: interrupted; no results folder was written.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
