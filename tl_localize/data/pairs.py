"""Minimal pairs: the built-in suite, BLiMP, and pairs in any form a user has them.

A minimal pair is a grammatical sentence (``sentence_good``) and its ungrammatical twin
(``sentence_bad``); the evaluation asks whether the model prefers the first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LocalizeError, check_int
from .io import numbered_jsonl, read_csv, resource_jsonl
from .tables import describe_rows, missing_texts

__all__ = [
    "BLIMP_HUB",
    "BLIMP_LAYOUT",
    "builtin_pairs",
    "load_blimp",
    "minimal_pairs_frame",
    "read_pairs",
]

BLIMP_HUB = "nyu-mll/blimp"
COLUMNS = ("sentence_good", "sentence_bad")
BLIMP_LAYOUT = (
    "expected a folder of BLiMP paradigms, one {paradigm}.jsonl file each (67 files such as "
    "anaphor_gender_agreement.jsonl and wh_island.jsonl), each line one JSON object with "
    "sentence_good and sentence_bad: the data/ folder of github.com/alexwarstadt/blimp"
)


def minimal_pairs_frame(
    pairs: Any, *, source: str | None = None, lines: Sequence[int] | None = None
) -> pd.DataFrame:
    """Minimal pairs as a DataFrame with ``sentence_good`` and ``sentence_bad`` (from a
    DataFrame, a list of dicts, or a list of (good, bad) tuples), checked: no missing or
    empty text (only invisible characters count as empty), and no pair whose two sentences
    are the same (it has no right answer). ``source`` names the file the pairs came from
    (its data rows are counted from 1, or named by ``lines``) in the errors.

    >>> minimal_pairs_frame([("dogs run", "dogs runs")]).columns.tolist()
    ['sentence_good', 'sentence_bad']
    """
    if isinstance(pairs, pd.DataFrame):
        frame = pairs.reset_index(drop=True)
    elif isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise LocalizeError(
            "Minimal pairs are a DataFrame, a list of dicts with 'sentence_good' and "
            f"'sentence_bad', or a list of (good, bad) tuples; got {type(pairs).__name__}."
        )
    elif pairs and all(isinstance(p, tuple | list) for p in pairs):
        if any(len(p) != 2 for p in pairs):
            raise LocalizeError("Each minimal pair tuple must be (good, bad): two sentences.")
        frame = pd.DataFrame([list(p) for p in pairs], columns=list(COLUMNS))
    else:
        if any(not isinstance(p, dict) for p in pairs):
            raise LocalizeError(
                "Minimal pairs given as a list must all be dicts or all (good, bad) tuples."
            )
        frame = pd.DataFrame(list(pairs))
    where = f"{source}: " if source else ""
    missing = set(COLUMNS) - set(frame.columns)
    if missing or frame.empty:
        raise LocalizeError(
            f"{where}Minimal pairs need 'sentence_good' and 'sentence_bad' (a DataFrame, a "
            f"list of dicts, or a list of (good, bad) tuples); got columns "
            f"{list(frame.columns)}{' and no rows' if frame.empty and not missing else ''}."
        )
    for col in COLUMNS:
        bad = missing_texts(frame[col])
        if not bad.any():
            continue
        first = int(bad.argmax())
        if source is None:
            raise LocalizeError(
                f"Pair {first}: {col} is empty or not text ({frame[col][first]!r}); remove or "
                "fix it."
            )
        noun = "line" if lines is not None else "data row"
        raise LocalizeError(
            f"{source}: {col} is missing, empty (only invisible characters count as empty) "
            f"or not text in {describe_rows(bad, noun, lines)} (first: "
            f"{frame[col][first]!r}); fill in or remove those pairs."
        )
    same = (frame["sentence_good"].str.strip() == frame["sentence_bad"].str.strip()).to_numpy()
    if same.any():
        i = int(same.argmax())
        at = (
            f"{source}, {describe_rows(same, 'line' if lines else 'data row', lines)}: "
            if source
            else f"Pair {i}: "
        )
        raise LocalizeError(
            f"{at}sentence_good and sentence_bad are the same text "
            f"({frame['sentence_good'][i]!r}), so neither can be preferred; remove or fix it."
        )
    return frame


def read_pairs(path: str | Path) -> pd.DataFrame:
    """Minimal pairs from a ``.csv`` or ``.jsonl`` file with ``sentence_good`` and
    ``sentence_bad`` (other columns are kept); a missing or empty sentence is an error
    naming the file and its first rows (data rows of a CSV file, lines of a JSON-lines
    file, counted from 1)."""
    path = Path(path)
    if path.suffix not in (".csv", ".jsonl"):
        raise LocalizeError(
            f"{path}: minimal pairs are read from a .csv or .jsonl file with sentence_good and "
            "sentence_bad columns."
        )
    if path.suffix == ".jsonl":
        return _jsonl_pairs(path)
    frame = read_csv(path, "CSV file of minimal pairs", keep_default_na=False)
    return minimal_pairs_frame(frame, source=str(path))


def _jsonl_pairs(path: Path) -> pd.DataFrame:
    numbered = numbered_jsonl(path)
    return minimal_pairs_frame(
        [row for _, row in numbered], source=str(path), lines=[n for n, _ in numbered]
    )


def builtin_pairs() -> pd.DataFrame:
    """The toolkit's own minimal-pair suite (agreement, anaphora, NPIs, filler-gap,
    argument structure, islands): ``phenomenon``, ``paradigm``, ``pair_id``, sentences."""
    return pd.DataFrame(resource_jsonl("minimal_pairs", "pairs.jsonl"))


def load_blimp(
    source: str | Path,
    paradigms: Sequence[str] | None = None,
    n_per_paradigm: int | None = None,
) -> pd.DataFrame:
    """BLiMP pairs from a folder of ``{paradigm}.jsonl`` files (or the hub dataset, online),
    with a ``paradigm`` column; ``n_per_paradigm`` keeps the first N pairs of each."""
    if n_per_paradigm is not None:
        check_int("n_per_paradigm", n_per_paradigm, 1)
    if isinstance(paradigms, str):  # one paradigm, not its letters
        paradigms = [paradigms]
    if paradigms is not None and not list(paradigms):
        raise LocalizeError("paradigms=[] names no BLiMP paradigm; name some, or pass None (all).")
    folder = Path(source)
    if folder.is_file():
        raise LocalizeError(
            f"{folder} is a file; {BLIMP_LAYOUT}. Pass the folder that holds the paradigm "
            "files (and paradigms=[...] to choose some)."
        )
    if folder.is_dir():
        files = {p.stem: p for p in sorted(folder.glob("*.jsonl"))}
        if not files:
            below = sorted({p.parent for p in folder.glob("*/**/*.jsonl")})
            hint = f" The .jsonl files are in {below[0]}: pass that folder." if below else ""
            raise LocalizeError(f"No .jsonl files in {folder}; {BLIMP_LAYOUT}.{hint}")
        chosen = list(files) if paradigms is None else list(paradigms)
        unknown = [p for p in chosen if p not in files]
        if unknown:
            raise LocalizeError(
                f"Unknown BLiMP paradigm {unknown[0]!r}. Paradigms in {folder}: {sorted(files)}."
            )
        frames = []
        dropped: list[str] = []
        for name in chosen:
            numbered = numbered_jsonl(files[name])[:n_per_paradigm]
            if not numbered:
                raise LocalizeError(f"{files[name]} holds no pairs.")
            numbered, same = _without_identical(numbered)
            dropped += [f"{files[name].name} line {n}" for n in same]
            rows = pd.DataFrame([row for _, row in numbered])
            missing = [c for c in COLUMNS if c not in rows.columns]
            if missing:
                raise LocalizeError(
                    f"{files[name]} has no {missing[0]!r} field (its fields: "
                    f"{list(rows.columns)[:6]}); {BLIMP_LAYOUT}."
                )
            frame = minimal_pairs_frame(
                rows, source=str(files[name]), lines=[n for n, _ in numbered]
            )
            frame.insert(0, "paradigm", name)
            frames.append(frame)
        if dropped:
            warnings.warn(
                f"BLiMP: dropped {len(dropped)} pair(s) whose two sentences are the same text "
                f"({', '.join(dropped)}): the published data holds a few, and neither sentence "
                "of such a pair can be preferred.",
                stacklevel=2,
            )
        return pd.concat(frames, ignore_index=True)  # each file's pairs checked above
    if str(source) != BLIMP_HUB:
        raise LocalizeError(
            f"No folder at {source}, and it is not the hub name {BLIMP_HUB!r} (which needs "
            f"network access); {BLIMP_LAYOUT}."
        )
    return _load_blimp_hub(str(source), paradigms, n_per_paradigm)


def _without_identical(numbered: list[tuple[int, Any]]) -> tuple[list[tuple[int, Any]], list[int]]:
    """BLiMP's lines without the pairs whose sentences are the same text, and those lines."""
    kept, same = [], []
    for n, row in numbered:
        good, bad = (row.get(k) if isinstance(row, dict) else None for k in COLUMNS)
        if isinstance(good, str) and isinstance(bad, str) and good.strip() == bad.strip():
            same.append(n)
        else:
            kept.append((n, row))
    return kept, same


def _load_blimp_hub(
    name: str, paradigms: Sequence[str] | None, n_per_paradigm: int | None
) -> pd.DataFrame:
    try:
        import datasets  # type: ignore[import-not-found, unused-ignore]
    except ImportError as error:
        raise LocalizeError(
            "Loading BLiMP from the hub needs the 'datasets' package and network access; "
            "offline, pass a folder of BLiMP .jsonl files."
        ) from error
    if paradigms is None:
        raise LocalizeError("From the hub, name the paradigms to load (paradigms=[...]).")
    frames = []
    for paradigm in paradigms:
        frame = datasets.load_dataset(name, paradigm, split="train").to_pandas()
        frame = frame.iloc[:n_per_paradigm] if n_per_paradigm else frame
        frame.insert(0, "paradigm", paradigm)
        frames.append(frame)
    return minimal_pairs_frame(pd.concat(frames, ignore_index=True))
