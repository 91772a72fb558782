"""Arithmetic: the multiple-demand localizer's problems and an exact-match evaluation.

Problems use the reference format ``"Question: Solve {a} {op} {b}?\\nAnswer: {result}"``
(op ``+`` or ``-``). :func:`make_problems` draws distinct problems with a seed;
:func:`arithmetic` scores held-out problems by greedy decoding of the answer, computed in
one teacher-forced pass: greedy decoding produces the answer exactly when, after
``"Answer:"``, every answer token is the model's top token given the tokens before it, and
the token it predicts next does not continue the number.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from ..activations import token_batches
from ..errors import LocalizeError
from ..models import hf_tokenizer

__all__ = ["LEVELS", "arithmetic", "format_problem", "make_problems"]

# name -> operand range (inclusive); "hard"/"easy" are the reference's MD conditions
LEVELS: dict[str, tuple[int, int]] = {
    "easy": (1, 19),
    "two_digit": (20, 99),
    "hard": (100, 199),
    "three_digit": (200, 999),
}
TEMPLATE = "Question: Solve {a} {op} {b}?\nAnswer: {result}"
# solved examples shown before each test problem (few-shot); none is a localizer problem
SHOTS = ((7, "+", 5), (23, "-", 9), (14, "+", 31))


def format_problem(a: int, op: str, b: int, *, answer: bool = True) -> str:
    """One problem in the reference format (without the answer when ``answer=False``)."""
    result = a + b if op == "+" else a - b
    text = TEMPLATE.format(a=a, op=op, b=b, result=result)
    return text if answer else text.rsplit(" ", 1)[0]


def make_problems(
    n: int,
    operands: tuple[int, int],
    *,
    seed: int = 0,
    ops: Sequence[str] = ("+", "-"),
    exclude: set[tuple[int, str, int]] | frozenset = frozenset(),
) -> list[tuple[int, str, int]]:
    """``n`` distinct problems ``(a, op, b)`` with both operands in ``operands`` (inclusive)."""
    low, high = operands
    if low > high:
        raise LocalizeError(f"Empty operand range {operands}.")
    space = (high - low + 1) ** 2 * len(ops)
    available = space - sum(
        1 for a, op, b in exclude if low <= a <= high and low <= b <= high and op in ops
    )
    if n > available:
        raise LocalizeError(
            f"Asked for {n} distinct problems with operands {low}-{high} and ops {list(ops)}, "
            f"but only {available} exist{' after exclusions' if exclude else ''}. Ask for "
            "fewer or widen the range."
        )
    rng = random.Random(seed)
    if n > space // 4:  # dense: sample from the full list
        pool = [
            p
            for p in itertools.product(range(low, high + 1), ops, range(low, high + 1))
            if p not in exclude
        ]
        return rng.sample(pool, n)
    chosen: dict[tuple[int, str, int], None] = {}
    while len(chosen) < n:
        problem = (rng.randint(low, high), rng.choice(list(ops)), rng.randint(low, high))
        if problem not in exclude:
            chosen.setdefault(problem)
    return list(chosen)


def arithmetic(
    model: Any,
    n_per_level: int = 50,
    levels: Sequence[str] = ("easy", "two_digit", "hard"),
    *,
    shots: int = 3,
    seed: int = 1,
    exclude_localizer: bool = True,
    hooks: Sequence[tuple[str, Any]] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Exact-match accuracy on held-out problems; one row per problem (``level``, ``a``,
    ``op``, ``b``, ``answer``, ``correct``).

    ``shots`` solved examples (up to 3, fixed) precede each problem, separated by blank
    lines: small models answer in the format only when shown it. ``exclude_localizer``
    leaves out the problems of the built-in ``md`` contrast (seed 0), so that the
    localizer's stimuli are never test items.
    """
    if not 0 <= shots <= len(SHOTS):
        raise LocalizeError(f"shots must be between 0 and {len(SHOTS)}, got {shots}.")
    prefix = "".join(format_problem(*shot) + "\n\n" for shot in SHOTS[:shots])
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise LocalizeError(f"Unknown level {unknown[0]!r}; levels: {sorted(LEVELS)}.")
    exclude: set[tuple[int, str, int]] = set()
    if exclude_localizer:
        exclude = set(make_problems(100, LEVELS["hard"])) | set(make_problems(100, LEVELS["easy"]))
    exclude |= set(SHOTS)
    rows = []
    for i, level in enumerate(levels):
        for a, op, b in make_problems(n_per_level, LEVELS[level], seed=seed + i, exclude=exclude):
            rows.append(
                {"level": level, "a": a, "op": op, "b": b, "answer": a + b if op == "+" else a - b}
            )
    frame = pd.DataFrame(rows)
    texts = [prefix + format_problem(r.a, r.op, r.b) for r in frame.itertuples()]
    prompts = [prefix + format_problem(r.a, r.op, r.b, answer=False) for r in frame.itertuples()]
    frame["correct"] = _greedy_matches(model, texts, prompts, hooks, batch_size, progress)
    return frame


def _greedy_matches(
    model: Any,
    texts: list[str],
    prompts: list[str],
    hooks: Sequence[tuple[str, Any]],
    batch_size: int,
    progress: bool,
) -> list[bool]:
    from tqdm.auto import tqdm

    tokenizer = hf_tokenizer(model)
    prompt_ids = tokenizer(prompts)["input_ids"]
    prompt_lengths = [len(ids) for ids in prompt_ids]
    full = tokenizer(texts)["input_ids"]
    for i, (prompt, ids) in enumerate(zip(prompt_ids, full, strict=True)):
        if prompt != ids[: len(prompt)]:
            raise LocalizeError(
                f"Problem {i}: the prompt's tokens are not a prefix of the full text's; this "
                "tokenizer merges across 'Answer:' and the answer."
            )
    digit = torch.tensor(
        [tokenizer.decode([t]).strip()[:1].isdigit() for t in range(len(tokenizer))]
    )
    out = [False] * len(texts)
    batches = token_batches(model, texts, batch_size=batch_size)
    for batch in tqdm(batches, desc="arithmetic", disable=not progress, leave=False):
        with torch.inference_mode():
            logits = model.run_with_hooks(
                batch.input_ids, attention_mask=batch.attention_mask, fwd_hooks=list(hooks)
            )
        top = logits.argmax(-1)
        for row, index in enumerate(batch.index.tolist()):
            n_prompt, length = prompt_lengths[index], int(batch.attention_mask[row].sum())
            targets = batch.input_ids[row, n_prompt:length]
            predicted = top[row, n_prompt - 1 : length - 1]
            next_token = int(top[row, length - 1])
            stops = next_token >= len(digit) or not bool(digit[next_token])
            out[index] = bool((predicted == targets).all()) and stops
    return out
