"""Reading the files that stimuli and tasks come in, with errors that name the file.

Built-in stimuli ship inside the package (``tl_localize.stimuli``, the top-level ``stimuli/``
folder) and are read with :mod:`importlib.resources`, so they load from a checkout and from
an installed wheel alike. User files (CSV, JSON lines, JSON) are read here too, so that an
empty, undecodable or malformed file always ends in a :class:`LocalizeError` that says which
file and what to do, never in a raw pandas or json exception.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LocalizeError

__all__ = [
    "numbered_jsonl",
    "read_csv",
    "read_json",
    "read_jsonl",
    "resource_jsonl",
    "resource_lines",
]


def resource_lines(*parts: str) -> list[str]:
    """Non-empty, stripped lines of a text file shipped in ``tl_localize.stimuli``."""
    text = resources.files("tl_localize.stimuli").joinpath(*parts).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def resource_jsonl(*parts: str) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file shipped in ``tl_localize.stimuli``."""
    path = resources.files("tl_localize.stimuli").joinpath(*parts)
    with resources.as_file(path) as file:
        return read_jsonl(file)


def _text(path: Path, what: str) -> str:
    if not path.is_file():
        raise LocalizeError(f"No {what} at {path}: check the path.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise LocalizeError(
            f"{path} is not UTF-8 text (byte {error.start}): expected a {what}. Save it as "
            "UTF-8 or pass another file."
        ) from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file of objects; a malformed line raises an error naming file and
    line."""
    return [row for _, row in numbered_jsonl(path)]


def numbered_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """:func:`read_jsonl` with each object's line number (blank lines are skipped)."""
    path = Path(path)
    rows = []
    for number, line in enumerate(_text(path, "JSON-lines file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise LocalizeError(
                f"{path}, line {number}: not valid JSON ({error.msg}); fix or remove it."
            ) from None
        if not isinstance(row, dict):
            raise LocalizeError(
                f"{path}, line {number}: a JSON {type(row).__name__}, not an object with named "
                "fields; each line must be one object."
            )
        rows.append((number, row))
    return rows


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read one JSON document; an invalid file raises an error naming it."""
    path = Path(path)
    try:
        return json.loads(_text(path, what))
    except json.JSONDecodeError as error:
        raise LocalizeError(
            f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})."
        ) from None


def read_csv(path: str | Path, what: str = "CSV file", **kwargs: Any) -> pd.DataFrame:
    """Read a CSV file with pandas; a missing, empty, undecodable or malformed file raises
    :class:`LocalizeError` naming it (``kwargs`` go to :func:`pandas.read_csv`)."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        raise LocalizeError(f"No {what} at {path}: check the path.")
    try:
        frame = pd.read_csv(path, encoding="utf-8", **kwargs)
    except pd.errors.EmptyDataError:
        raise LocalizeError(f"{path} is empty: expected a {what} with a header row.") from None
    except UnicodeDecodeError as error:
        raise LocalizeError(
            f"{path} is not UTF-8 text (byte {error.start}): expected a {what}. Save it as "
            "UTF-8 CSV."
        ) from None
    except pd.errors.ParserError as error:
        raise LocalizeError(f"{path} is not a valid {what}: {error}".rstrip()) from None
    if frame.empty:
        raise LocalizeError(f"{path} has a header but no rows: expected a {what} with data.")
    return frame
