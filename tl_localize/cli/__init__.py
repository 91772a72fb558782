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
import sys

from ..errors import LocalizeError
from . import ablation, attribution, brain, localize, model, report, study
from ._common import Parser, add_output_flags, check_loading
from ._output import (
    EXIT_BROKEN_PIPE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    end_quietly_on_closed_output,
    warnings_and_logs,
)

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INPUT", "EXIT_INTERRUPTED", "build_parser", "main"]

# the command groups, in the order `tl-localize --help` lists them
GROUPS = (localize, ablation, brain, attribution, report, model, study)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (light: no model code until a command runs)."""
    parser = Parser(prog="tl-localize", description="Functional localizers for language models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        for command in group.add_parsers(sub):
            add_output_flags(command)  # --quiet and --verbose, on every command
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args = build_parser().parse_args(argv)  # --help prints and exits here
            args.argv = argv
            if hasattr(args, "device"):  # a model-loading command: its placement, first
                check_loading(args)
            with warnings_and_logs(args):
                return int(args.func(args))
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return end_quietly_on_closed_output()
    except LocalizeError as error:
        message = " ".join(str(error).split())  # one line, whatever the message's layout
        print(f"tl-localize: error: {message}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("tl-localize: interrupted; no results folder was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
