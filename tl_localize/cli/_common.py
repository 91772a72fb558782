"""What the commands share: the parser class, the model-loading and output options, the
analysis options built from a config's fields, and the checks every command makes before a
model loads."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import LocalizeError, check_int
from ._output import quiet_loading

if TYPE_CHECKING:
    from _typeshed import SupportsWrite


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line LocalizeErrors (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        # main prints "tl-localize: error: ...": name the command, not the program again
        command = self.prog.removeprefix("tl-localize").strip()
        where = f"{command}: " if command else ""
        raise LocalizeError(f"{where}{message} (see {self.prog} --help)")

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        """As argparse's, but an output closed early (``--help | head -1``) is not ignored:
        ``main`` ends as it does for any command whose output is closed."""
        (file if file is not None else sys.stdout).write(self.format_help())


def command_line(args: argparse.Namespace) -> str:
    return shlex.join(["tl-localize", *args.argv])


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def check_count(name: str, value: int | None, low: int) -> None:
    if value is not None:
        check_int(name, value, low)


def option_name(name: str) -> str:
    """A config field's option: ``n_random`` is ``--n-random``."""
    return "--" + name.replace("_", "-")


@contextlib.contextmanager
def options_named() -> Iterator[None]:
    """A config's error about a field, said about the option that set it."""
    try:
        yield
    except LocalizeError as error:
        name = getattr(error, "field", None)
        if name is None:
            raise
        raise LocalizeError(f"{option_name(name)}: {error}") from None


def config_from_args(cls: type, args: argparse.Namespace, **given: Any) -> Any:
    """The config ``cls`` from the options of its fields (and ``given``), checked."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    with options_named():
        return cls(**{**values, **given})


def parse_max_memory(text: str | None) -> dict[Any, str] | None:
    """``--max-memory 0=20GiB,cpu=60GiB`` as accelerate takes it (GPU indices as ints)."""
    if text is None:
        return None
    out: dict[Any, str] = {}
    for part in split_list(text):
        device, sep, size = part.partition("=")
        if not sep or not device.strip() or not size.strip():
            raise LocalizeError(
                f"--max-memory: {part!r} is not DEVICE=SIZE; write for example "
                "--max-memory 0=20GiB,cpu=60GiB."
            )
        device = device.strip()
        out[int(device) if device.isdigit() else device] = size.strip()
    return out


def check_loading(args: argparse.Namespace) -> dict[str, Any]:
    """The model-loading options of a command, checked (a device that is not there, or
    --max-memory without --device-map, is an input error before any model loads)."""
    from ..models import loading_options

    options = {
        "dtype": args.dtype,
        "device": args.device,
        "device_map": args.device_map,
        "max_memory": parse_max_memory(args.max_memory),
    }
    loading_options(**options)
    return options


def model_from_args(args: argparse.Namespace) -> Any:
    from ..models import load_model

    options = check_loading(args)
    with quiet_loading(args, now=True):
        return load_model(args.model, **options, **untrained_from_args(args))


def untrained_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--untrained`` and ``--init-seed`` as load_model's ``untrained=`` and ``seed=``."""
    seed = getattr(args, "init_seed", None)
    if seed is not None and not args.untrained:
        raise LocalizeError("--init-seed is the seed of an untrained twin: add --untrained.")
    check_count("--init-seed", seed, 0)
    return {"untrained": True, "seed": seed or 0} if getattr(args, "untrained", False) else {}


def analysis_record(
    args: argparse.Namespace, loc: Any, result: Any, timings: dict[str, float], **settings: Any
) -> dict[str, Any]:
    """The record of a command that analyses a saved localization."""
    from ..results import now, versions

    return {
        "created": now(),
        "command": command_line(args),
        "units": str(Path(args.units).resolve()),
        "localization": loc.record,
        **settings,
        "summary": result.summary(),
        "versions": versions(),
        "timings": timings,
    }


def load_localization(folder: str) -> Any:
    """The localization in ``folder``, checked before any model loads."""
    from ..localize import Localization

    return Localization.load(folder)


def contrast_from_args(args: argparse.Namespace) -> Any:
    """The contrast a localizing command names (--contrast and its column options)."""
    from ..contrast import Contrast

    return Contrast.from_spec(
        args.contrast,
        positive=args.positive,
        negative=args.negative,
        text=args.text_column,
        condition=args.condition_column,
        pooling=args.pooling,
    )


def add_loading_options(parser: argparse.ArgumentParser) -> None:
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


def add_output_flags(parser: argparse.ArgumentParser) -> None:
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


def add_common_options(parser: argparse.ArgumentParser, *, model: bool = True) -> None:
    if model:
        parser.add_argument(
            "--model",
            default=None,
            help="a .gguf file, HF folder or hub name (default: the embedded SmolLM2-135M)",
        )
        add_loading_options(parser)
        add_untrained_options(parser)
    parser.add_argument("--out", required=True, help="results folder to write (must be new)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it is a results folder of tl_localize holding nothing else",
    )


def add_untrained_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="the model's untrained twin: same architecture and tokenizer, fresh weights",
    )
    parser.add_argument(
        "--init-seed", type=int, default=None, help="the untrained twin's seed (default 0)"
    )


def name_list(text: str) -> tuple[str, ...]:
    """A comma list of names (``--match uniform,magnitude``)."""
    return tuple(split_list(text))


def number_list(text: str) -> tuple[float, ...]:
    """A comma list of numbers (``--fractions 0.005,0.01``)."""
    try:
        return tuple(float(part) for part in split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma list of numbers such as 0.005,0.01"
        ) from None


OPTION_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "str": str, "list": name_list, "floats": number_list,
}  # fmt: skip


def shown_default(value: Any) -> str:
    """A default as one writes it on the command line."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def add_config_options(
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
            text += f" (default {shown_default(default)})"
        options = [option_name(spec.name), *(aliases or {}).get(spec.name, ())]
        if kind is None:  # a flag: --include-all / --no-include-all
            parser.add_argument(
                *options, action=argparse.BooleanOptionalAction,
                default=None if unset else default, help=text,
            )  # fmt: skip
            continue
        choices = spec.metadata.get("choices") if kind == "str" else None
        parser.add_argument(
            *options, type=OPTION_TYPES[kind], default=None if unset else default,
            choices=list(choices) if choices else None, help=text,
        )  # fmt: skip
