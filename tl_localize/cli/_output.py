"""How a command ends and what it prints besides its results: the exit statuses, warnings
as one line each, third-party load messages and progress bars off unless ``--verbose``, and
a closed output ended quietly."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command that signal ended


def show_warning(
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


DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


OWN = r"(tl_localize|__main__)\b"  # warnings raised on behalf of the toolkit's own code


@contextlib.contextmanager
def warnings_and_logs(args: argparse.Namespace) -> Iterator[None]:
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
            show_warning(message, category, filename, lineno, file, line, verbose=verbose)

        warnings.showwarning = show
        if quiet:
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
        else:
            for category in DEPRECATIONS:
                if not verbose:  # a third party's notice to the code that calls it
                    warnings.filterwarnings("ignore", category=category)
                # the toolkit's own (a flag going away) are the user's to act on
                warnings.filterwarnings("default", category=category, module=OWN)
        try:
            yield
        finally:
            logging.disable(disabled)


# environment variables that transformers and huggingface_hub read when they are imported
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


@contextlib.contextmanager
def quiet_loading(args: argparse.Namespace, *, now: bool = False) -> Iterator[None]:
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
    saved_env = {name: os.environ.get(name) for name in QUIET_ENV}
    os.environ.update(QUIET_ENV)
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


def end_quietly_on_closed_output() -> int:
    """The reader of stdout went away (``| head``): point stdout at /dev/null so that the
    final flush cannot fail again, and end as a command stopped by SIGPIPE would, with
    nothing on stderr (the Python documentation's "Note on SIGPIPE")."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no real stdout (tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE
