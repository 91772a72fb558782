"""Arithmetic: exact-match accuracy on held-out problems, scored by greedy decoding.

Greedy decoding produces the answer exactly when, after ``"Answer:"``, every answer token is
the model's top token given the tokens before it, and the token it predicts next does not
continue the number; that is computed in one teacher-forced pass per batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..activations import token_batches
from ..data.arithmetic import OPS, SHOTS, Problem, format_problem, heldout_problems, solve
from ..errors import LocalizeError, check_int
from ..models import hf_tokenizer
from ..protocol import Hooks, Model

__all__ = ["arithmetic"]


def arithmetic(
    model: Model,
    problems: pd.DataFrame | None = None,
    *,
    n_per_level: int = 50,
    levels: Sequence[str] = ("easy", "two_digit", "hard"),
    shots: int = 3,
    seed: int = 1,
    localizer: Iterable[Problem] | None = None,
    hooks: Hooks = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Exact-match accuracy; one row per problem (``level``, ``a``, ``op``, ``b``,
    ``answer``, ``correct``).

    ``problems`` (columns ``a``, ``op``, ``b``) default to
    :func:`tl_localize.data.arithmetic.heldout_problems`: ``n_per_level`` per level, none of
    them a problem of the localizer (``localizer``, default the built-in ``md`` contrast's)
    or a few-shot example. ``shots`` solved examples (up to 3, fixed) precede each problem,
    separated by blank lines: small models answer in the format only when shown it.
    """
    if problems is not None and not isinstance(problems, pd.DataFrame):
        raise LocalizeError(
            f"problems must be a DataFrame with columns a, op, b, got {type(problems).__name__}; "
            "for generated problems leave it out and pass n_per_level=."
        )
    if not 0 <= shots <= len(SHOTS):
        raise LocalizeError(f"shots must be between 0 and {len(SHOTS)}, got {shots}.")
    check_int("n_per_level", n_per_level, 1)
    if problems is None:
        frame = heldout_problems(n_per_level, levels, seed=seed, localizer=localizer)
    else:
        missing = {"a", "op", "b"} - set(problems.columns)
        if missing:
            raise LocalizeError(f"problems need columns a, op and b; missing {sorted(missing)}.")
        if problems.empty:
            raise LocalizeError("problems has no rows: there is nothing to solve.")
        frame = problems.reset_index(drop=True).copy()
        for i, (a, op, b) in enumerate(zip(frame["a"], frame["op"], frame["b"], strict=True)):
            if op not in OPS or not all(
                isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in (a, b)
            ):
                raise LocalizeError(
                    f"problems, row {i}: ({a!r}, {op!r}, {b!r}) is not a problem; a and b must "
                    f"be whole numbers and op one of {list(OPS)}."
                )
        frame["answer"] = [
            solve(a, op, b) for a, op, b in zip(*(frame[c] for c in "a op b".split()), strict=True)
        ]
    prefix = "".join(format_problem(*shot) + "\n\n" for shot in SHOTS[:shots])
    texts = [prefix + format_problem(r.a, r.op, r.b) for r in frame.itertuples()]
    prompts = [prefix + format_problem(r.a, r.op, r.b, answer=False) for r in frame.itertuples()]
    frame["correct"] = _greedy_matches(model, texts, prompts, hooks, batch_size, progress)
    return frame


def _greedy_matches(
    model: Model,
    texts: list[str],
    prompts: list[str],
    hooks: Hooks,
    batch_size: int,
    progress: bool,
) -> list[bool]:
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
