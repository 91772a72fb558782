"""False-belief stories: the theory-of-mind localizer's stimuli and test items.

Stories come from the toolkit's own set (:func:`builtin_stories`: 36 false-belief and 36
false-photograph stories, 24 + 24 for the localizer and 12 + 12 held out, each with a
statement and its answer) or from a Saxe-lab ``tomloc`` folder (:func:`load_tomloc`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..errors import LocalizeError
from .io import resource_jsonl
from .tables import visible

__all__ = ["CONDITIONS", "SPLITS", "builtin_stories", "load_tomloc", "story_text"]

CONDITIONS = {"b": "false_belief", "p": "false_photo"}
SPLITS = ("localizer", "heldout")


def story_text(story: str, statement: str) -> str:
    """A story and its statement as one stimulus (the localizer's text)."""
    return f"{story}\n{statement}"


def builtin_stories(split: str | None = None) -> pd.DataFrame:
    """The toolkit's stories: ``id``, ``condition``, ``split``, ``story``, ``statement``,
    ``answer`` (bool); ``split`` is ``"localizer"``, ``"heldout"`` or ``None`` (all).

    The two splits share no story: the localizer's are the ``tom`` contrast, the held-out
    ones the default test items of the false-belief evaluation.
    """
    if split is not None and split not in SPLITS:
        raise LocalizeError(f"Unknown split {split!r}; splits: {list(SPLITS)} (or None: all).")
    frame = pd.DataFrame(resource_jsonl("tom", "stories.jsonl"))
    if split is not None:
        frame = frame[frame["split"] == split].reset_index(drop=True)
    return frame


def _paragraphs(text: str) -> list[str]:
    """Paragraphs with hard-wrapped lines joined by single spaces."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return [" ".join(line.strip() for line in b.splitlines() if line.strip()) for b in blocks]


def _read(path: Path) -> str:
    """A tomloc file's text, decoded strictly: UTF-8 (ASCII, as the published files are, is
    UTF-8), with or without a byte-order mark; Windows line ends are fine."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LocalizeError(
            f"{path} is not UTF-8 text (byte {error.start}: {data[error.start : error.end]!r}); "
            "tomloc files are read as UTF-8 (plain ASCII is UTF-8; a byte-order mark is "
            "allowed). Convert it, e.g. from Windows-1252: iconv -f cp1252 -t utf-8."
        ) from None


def load_tomloc(folder: str | Path, answers: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """Read a Saxe-lab theory-of-mind localizer folder.

    Files ``{i}b_story.txt`` / ``{i}b_question.txt`` (false belief) and ``{i}p_story.txt`` /
    ``{i}p_question.txt`` (false photograph); hard-wrapped lines are joined; the statement is
    the question file's first paragraph. Files are decoded strictly as UTF-8 (a file in
    another encoding is an error naming it, not replacement characters); an empty story or
    statement is an error. The files carry no answer key: pass ``answers``
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
        paragraphs = _paragraphs(_read(question))
        statement = paragraphs[0] if paragraphs else ""
        if not visible(statement) or re.fullmatch(r"(?i)true\s+false", statement):
            raise LocalizeError(
                f"{question}: no statement (its first paragraph is empty or only invisible "
                "characters); the question file starts with the statement, then a blank line."
            )
        story = " ".join(_paragraphs(_read(path)))
        if not visible(story):
            raise LocalizeError(
                f"{path}: the story is empty (or only invisible characters); give it its text."
            )
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
