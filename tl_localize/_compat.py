"""Old spellings that keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, no_type_check

__all__ = ["deprecated_positional", "warn_deprecated"]

F = TypeVar("F", bound=Callable[..., Any])


def warn_deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (removed in the next release)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def deprecated_positional(*names: str) -> Callable[[F], F]:
    """Let keyword-only options ``names`` still be passed by position, with a warning.

    Decorate a function whose options became keyword-only: a call that passes them by
    position (in the old order, ``names``) still works for one release.
    """

    def decorate(func: F) -> F:
        params = inspect.signature(func).parameters.values()
        n_positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)

        @functools.wraps(func)
        @no_type_check  # the wrapped function is checked; this shim takes anything
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > n_positional:
                extra = args[n_positional:]
                if len(extra) > len(names):
                    raise TypeError(
                        f"{func.__name__}() takes {n_positional} positional arguments "
                        f"({n_positional + len(extra)} given)"
                    )
                moved = names[: len(extra)]
                clash = [n for n in moved if n in kwargs]
                if clash:
                    raise TypeError(f"{func.__name__}() got multiple values for {clash[0]!r}")
                warn_deprecated(
                    f"Passing {', '.join(moved)} of {func.__name__}() by position",
                    f"keywords ({', '.join(f'{n}=...' for n in moved)})",
                )
                kwargs.update(zip(moved, extra, strict=True))
                args = args[:n_positional]
            return func(*args, **kwargs)

        return wrapper

    return decorate
