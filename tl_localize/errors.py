"""The one error type of tl_localize.

Every problem a user can fix (bad stimuli, an unknown site, a mask saved for another model,
...) raises :class:`LocalizeError` with a message that says what was wrong, what was expected
and how to fix it. It subclasses ``ValueError`` so generic handlers keep working.
"""

from __future__ import annotations

__all__ = ["LocalizeError"]


class LocalizeError(ValueError):
    """A problem with the input to a tl_localize call, with the fix in its message."""
