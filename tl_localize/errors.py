"""The one error type of tl_localize.

Every problem a user can fix (bad stimuli, an unknown site, a mask saved for another model,
...) raises :class:`LocalizeError` with a message that says what was wrong, what was expected
and how to fix it. It subclasses ``ValueError`` so generic handlers keep working.
"""

from __future__ import annotations

__all__ = ["LocalizeError", "check_int"]


class LocalizeError(ValueError):
    """A problem with the input to a tl_localize call, with the fix in its message."""


def check_int(name: str, value: object, low: int = 0) -> int:
    """``value`` as an int, or a :class:`LocalizeError` naming ``name`` when it is not a
    whole number of at least ``low`` (bools are refused: ``True`` is not a count)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise LocalizeError(f"{name} must be a whole number of at least {low}, got {value!r}.")
    return int(value)
