"""False belief: true/false judgements on stories.

The prompt is the story, a new line, the statement, and ``"\\nTrue or False? Answer:"``; an
item is correct when the summed log-probability of the continuation `` True`` vs `` False``
favours the right one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.stories import builtin_stories, story_text
from ..errors import LocalizeError
from ..models import hf_tokenizer
from ..protocol import Hooks, Model
from ..scoring import token_logprobs

__all__ = ["false_belief"]


def false_belief(
    model: Model,
    stories: pd.DataFrame | None = None,
    *,
    split: str = "heldout",
    hooks: Hooks = (),
    batch_size: int = 16,
    progress: bool = True,
) -> pd.DataFrame:
    """True/false judgements on stories; one row per story with ``logprob_true``,
    ``logprob_false`` and ``correct``. Default: the built-in held-out stories."""
    frame = builtin_stories(split) if stories is None else stories.reset_index(drop=True)
    missing = {"story", "statement", "answer"} - set(frame.columns)
    if missing:
        raise LocalizeError(
            f"Stories need 'story', 'statement' and 'answer' columns; missing {sorted(missing)}."
        )
    if frame.empty:
        raise LocalizeError("No stories to judge: the table is empty.")
    odd = [a for a in frame["answer"] if not isinstance(a, bool | np.bool_) and a not in (0, 1)]
    if odd:  # "False" as a string would count as true
        raise LocalizeError(
            f"Stories' 'answer' column must hold True or False; found {odd[0]!r}. Convert it "
            "first, e.g. frame['answer'] = frame['answer'].map({'true': True, 'false': False})."
        )
    prompts = [
        f"{story_text(s, t)}\nTrue or False? Answer:"
        for s, t in zip(frame["story"], frame["statement"], strict=True)
    ]
    options = (" True", " False")
    texts = [p + o for o in options for p in prompts]
    scores = token_logprobs(
        model, texts, hooks=hooks, batch_size=batch_size, progress=progress, desc="stories"
    )
    tokenizer = hf_tokenizer(model)
    n = len(frame)
    frame = frame.copy()
    prompt_lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    for k, option in enumerate(options):
        # the option's tokens are the full text's tokens beyond the prompt's
        full_lengths = [len(ids) for ids in tokenizer([p + option for p in prompts])["input_ids"]]
        values = [
            float(scores[k * n + i][-(full_lengths[i] - prompt_lengths[i]) :].sum())
            for i in range(n)
        ]
        frame[f"logprob_{option.strip().lower()}"] = values
    frame["correct"] = (frame["logprob_true"] > frame["logprob_false"]) == frame["answer"].astype(
        bool
    )
    return frame
