"""False-belief stories: the theory-of-mind localizer's stimuli and a true/false evaluation.

Stories come from the toolkit's own set (``builtin_stories``: 36 false-belief and 36
false-photograph stories, 24 + 24 for the localizer and 12 + 12 held out, each with a
statement and its answer) or from a Saxe-lab ``tomloc`` folder (``load_tomloc``).

Scoring (:func:`false_belief`): the prompt is the story, a new line, the statement, and
``"\\nTrue or False? Answer:"``; an item is correct when the summed log-probability of the
continuation `` True`` vs `` False`` favours the right one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LocalizeError
from ..models import hf_tokenizer
from ..scoring import token_logprobs
from .minimal_pairs import read_jsonl

__all__ = ["builtin_stories", "false_belief", "load_tomloc", "story_text"]

CONDITIONS = {"b": "false_belief", "p": "false_photo"}


def story_text(story: str, statement: str) -> str:
    """A story and its statement as one stimulus (the localizer's text)."""
    return f"{story}\n{statement}"


def builtin_stories(split: str | None = None) -> pd.DataFrame:
    """The toolkit's stories: ``id``, ``condition``, ``split``, ``story``, ``statement``,
    ``answer`` (bool); ``split`` is ``"localizer"``, ``"heldout"`` or ``None`` (all)."""
    path = resources.files("tl_localize.stimuli").joinpath("tom", "stories.jsonl")
    with resources.as_file(path) as file:
        frame = pd.DataFrame(read_jsonl(file))
    if split is not None:
        if split not in set(frame["split"]):
            raise LocalizeError(f"Unknown split {split!r}; splits: {sorted(set(frame['split']))}.")
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


def _paragraphs(text: str) -> list[str]:
    """Paragraphs with hard-wrapped lines joined by single spaces."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in blocks]


def load_tomloc(folder: str | Path, answers: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """Read a Saxe-lab theory-of-mind localizer folder.

    Files ``{i}b_story.txt`` / ``{i}b_question.txt`` (false belief) and ``{i}p_story.txt`` /
    ``{i}p_question.txt`` (false photograph); hard-wrapped lines are joined; the statement is
    the question file's first paragraph. The files carry no answer key: pass ``answers``
    (``{"1b": False, ...}``) to get an ``answer`` column.
    """
    folder = Path(folder)
    stories = sorted(folder.glob("*_story.txt")) if folder.is_dir() else []
    if not stories:
        raise LocalizeError(f"No *_story.txt files in {folder}: expected a tomloc folder.")
    rows = []
    for path in stories:
        item = path.name[: -len("_story.txt")]
        match = re.fullmatch(r"(\d+)([bp])", item)
        if not match:
            raise LocalizeError(
                f"{path.name}: expected a name like '3b_story.txt' or '3p_story.txt'."
            )
        question = folder / f"{item}_question.txt"
        if not question.is_file():
            raise LocalizeError(
                f"{path.name} has no question file: {question.name} is missing from {folder}."
            )
        paragraphs = _paragraphs(question.read_text(encoding="utf-8", errors="replace"))
        statement = paragraphs[0] if paragraphs else ""
        if not statement or re.fullmatch(r"(?i)true\s+false", statement):
            raise LocalizeError(f"{question}: no statement (its first paragraph is empty).")
        story = " ".join(_paragraphs(path.read_text(encoding="utf-8", errors="replace")))
        row = {
            "id": item,
            "number": int(match.group(1)),
            "condition": CONDITIONS[match.group(2)],
            "story": story,
            "statement": statement,
        }
        if answers is not None:
            if item not in answers:
                raise LocalizeError(f"No answer for item {item!r} in answers=.")
            row["answer"] = bool(answers[item])
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["condition", "number"], kind="stable")
    return frame.reset_index(drop=True)


def false_belief(
    model: Any,
    stories: pd.DataFrame | None = None,
    *,
    split: str = "heldout",
    hooks: Sequence[tuple[str, Any]] = (),
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
