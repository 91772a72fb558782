"""The one error type of tl_localize.

Every problem a user can fix (bad stimuli, an unknown site, a mask saved for another model,
...) raises :class:`LocalizeError` with a message that says what was wrong, what was expected
and how to fix it. It subclasses ``ValueError`` so generic handlers keep working.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Expected", "LocalizeError", "check_arguments", "check_int"]


class LocalizeError(ValueError):
    """A problem with the input to a tl_localize call, with the fix in its message."""


def check_int(name: str, value: object, low: int = 0) -> int:
    """``value`` as an int, or a :class:`LocalizeError` naming ``name`` when it is not a
    whole number of at least ``low`` (bools are refused: ``True`` is not a count)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise LocalizeError(f"{name} must be a whole number of at least {low}, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class Expected:
    """What an argument must be: its type(s), in words, and for a list the type its items
    must have, in words (``items=(str, "strings")``)."""

    kind: type | tuple[type, ...]
    what: str
    items: tuple[type, str] | None = None


def check_arguments(
    name: str,
    init: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    expected: Mapping[str, Expected],
    *,
    fix: str = "",
) -> None:
    """A :class:`LocalizeError` for the first argument of ``name(...)`` of the wrong type.

    For a class's ``__new__``, before ``__init__`` (and a runtime type checker wrapping it)
    sees the arguments, so that a wrong type is a LocalizeError like any other bad input.
    ``init`` is the ``__init__`` whose signature binds ``args`` and ``kwargs``; missing or
    unknown arguments are left to it (a ``TypeError``, as for any call). The message names the
    argument, what it must be (``expected``), what it got, and ``fix`` when given.
    """
    try:
        bound = inspect.signature(init).bind(None, *args, **kwargs)
    except TypeError:
        return
    then = f"; {fix}" if fix else ""
    for key, value in list(bound.arguments.items())[1:]:
        rule = expected.get(key)
        if rule is None:
            continue
        if not isinstance(value, rule.kind):
            raise LocalizeError(
                f"{name}(...): {key} must be {rule.what}, got {type(value).__name__} "
                f"({_short(value)}){then}."
            )
        if rule.items is not None and isinstance(value, list):
            kind, what = rule.items
            wrong = next((item for item in value if not isinstance(item, kind)), None)
            if wrong is not None:
                raise LocalizeError(
                    f"{name}(...): {key} must hold {what} only; found {_short(wrong)} "
                    f"({type(wrong).__name__}){then}."
                )


def _short(value: Any) -> str:
    """``repr(value)`` on one line, cut to 60 characters."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
