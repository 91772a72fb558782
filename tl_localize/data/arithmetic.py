"""Arithmetic problems: the multiple-demand localizer's stimuli and the held-out test items.

Problems use the reference format ``"Question: Solve {a} {op} {b}?\\nAnswer: {result}"``
(op ``+`` or ``-``). :func:`make_problems` draws distinct problems with a seed;
:func:`localizer_problems` gives the ``md`` contrast's hard and easy problems, and
:func:`heldout_problems` the evaluation's: drawn from the same space minus the localizer's
problems and the few-shot examples (a set difference made here and nowhere else), so that a
localizer stimulus is never a test item.
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
from collections.abc import Iterable, Sequence

import pandas as pd

from ..errors import LocalizeError

__all__ = [
    "LEVELS",
    "SHOTS",
    "Problem",
    "answer_space",
    "chance_level",
    "format_problem",
    "heldout_problems",
    "localizer_problems",
    "make_problems",
    "solve",
]

Problem = tuple[int, str, int]

# name -> operand range (inclusive); "hard"/"easy" are the reference's MD conditions
LEVELS: dict[str, tuple[int, int]] = {
    "easy": (1, 19),
    "two_digit": (20, 99),
    "hard": (100, 199),
    "three_digit": (200, 999),
}
TEMPLATE = "Question: Solve {a} {op} {b}?\nAnswer: {result}"
# solved examples shown before each test problem (few-shot); never a localizer or test item
SHOTS: tuple[Problem, ...] = ((7, "+", 5), (23, "-", 9), (14, "+", 31))
OPS = ("+", "-")


def solve(a: int, op: str, b: int) -> int:
    """The answer of ``a op b``."""
    return a + b if op == "+" else a - b


def answer_space(operands: tuple[int, int], ops: Sequence[str] = OPS) -> set[int]:
    """Every answer a problem with both operands in ``operands`` (inclusive) can have.

    >>> len(answer_space((1, 19)))  # -18 .. 38
    57
    """
    low, high = operands
    ranges = {"+": range(2 * low, 2 * high + 1), "-": range(low - high, high - low + 1)}
    return {answer for op in ops for answer in ranges[op]}


def chance_level(problems: pd.DataFrame) -> float:
    """The exact-match accuracy of a guesser that knows each problem's level (its operand
    range and the two operations) and names one of the level's possible answers at random:
    the mean over problems of 1 / (the number of answers the level can have). A problem with
    no known ``level`` counts in the range its own operands span across the table."""
    if problems.empty:
        return math.nan
    levels = problems["level"] if "level" in problems.columns else pd.Series([None] * len(problems))
    spread = (int(min(problems["a"].min(), problems["b"].min())),
              int(max(problems["a"].max(), problems["b"].max())))  # fmt: skip
    sizes = {level: len(answer_space(LEVELS.get(str(level), spread))) for level in set(levels)}
    return float(sum(1 / sizes[level] for level in levels) / len(problems))


def format_problem(a: int, op: str, b: int, *, answer: bool = True) -> str:
    """One problem in the reference format (without the answer when ``answer=False``).

    >>> format_problem(3, "+", 4)
    'Question: Solve 3 + 4?\\nAnswer: 7'
    """
    text = TEMPLATE.format(a=a, op=op, b=b, result=solve(a, op, b))
    return text if answer else text.rsplit(" ", 1)[0]


def make_problems(
    n: int,
    operands: tuple[int, int],
    *,
    seed: int = 0,
    ops: Sequence[str] = OPS,
    exclude: Iterable[Problem] = (),
) -> list[Problem]:
    """``n`` distinct problems ``(a, op, b)`` with both operands in ``operands`` (inclusive),
    none of them in ``exclude``."""
    low, high = operands
    if low > high:
        raise LocalizeError(f"Empty operand range {operands}.")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise LocalizeError(f"The number of problems must be a whole number >= 0, got {n!r}.")
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise LocalizeError(f"Unknown operator {unknown[0]!r}; use {list(OPS)}.")
    excluded = set(exclude)
    space = (high - low + 1) ** 2 * len(ops)
    available = space - sum(
        1 for a, op, b in excluded if low <= a <= high and low <= b <= high and op in ops
    )
    if n > available:
        raise LocalizeError(
            f"Asked for {n} distinct problems with operands {low}-{high} and ops {list(ops)}, "
            f"but only {available} exist{' after exclusions' if excluded else ''}. Ask for "
            "fewer or widen the range."
        )
    rng = random.Random(seed)
    if n > space // 4:  # dense: sample from the full list
        pool = [
            p
            for p in itertools.product(range(low, high + 1), ops, range(low, high + 1))
            if p not in excluded
        ]
        return rng.sample(pool, n)
    chosen: dict[Problem, None] = {}
    while len(chosen) < n:
        problem = (rng.randint(low, high), rng.choice(list(ops)), rng.randint(low, high))
        if problem not in excluded:
            chosen.setdefault(problem)
    return list(chosen)


def localizer_problems(n: int = 100, seed: int = 0) -> dict[str, list[Problem]]:
    """The MD localizer's problems: ``n`` hard (operands 100-199) and ``n`` easy (1-19),
    seeded. The built-in ``md`` contrast is made of these; its defaults are defined here
    only."""
    return {level: make_problems(n, LEVELS[level], seed=seed) for level in ("hard", "easy")}


def heldout_problems(
    n_per_level: int,
    levels: Sequence[str] = ("easy", "two_digit", "hard"),
    *,
    seed: int = 1,
    localizer: Iterable[Problem] | None = None,
) -> pd.DataFrame:
    """Test problems that are neither localizer stimuli nor few-shot examples.

    ``localizer`` is the set of problems to keep out (default: those of the built-in ``md``
    contrast, :func:`localizer_problems`). Returns one row per problem: ``level``, ``a``,
    ``op``, ``b``, ``answer``.
    """
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise LocalizeError(f"Unknown level {unknown[0]!r}; levels: {sorted(LEVELS)}.")
    if localizer is None:
        localizer = itertools.chain.from_iterable(localizer_problems().values())
    exclude = set(localizer) | set(SHOTS)
    rows = [
        {"level": level, "a": a, "op": op, "b": b, "answer": solve(a, op, b)}
        for i, level in enumerate(levels)
        for a, op, b in make_problems(n_per_level, LEVELS[level], seed=seed + i, exclude=exclude)
    ]
    return pd.DataFrame(rows, columns=["level", "a", "op", "b", "answer"])
