"""Minimal pairs: is the grammatical sentence more probable than its ungrammatical twin?

Scoring: each sentence's summed log-probability, BOS prepended so that every word is scored,
no length normalization (BLiMP's ``simple_LM_method``: the two sentences of a pair mostly
have the same length). An item is correct when the good sentence's log-probability is
strictly higher.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LocalizeError
from ..scoring import token_logprobs

__all__ = [
    "blimp",
    "builtin_pairs",
    "load_blimp",
    "minimal_pairs",
    "minimal_pairs_frame",
    "read_jsonl",
]

BLIMP_HUB = "nyu-mll/blimp"


def minimal_pairs_frame(pairs: Any) -> pd.DataFrame:
    """Minimal pairs as a DataFrame with ``sentence_good`` and ``sentence_bad`` (from a
    DataFrame, a list of dicts, or a list of (good, bad) tuples), checked for empty texts."""
    if isinstance(pairs, pd.DataFrame):
        frame = pairs.reset_index(drop=True)
    elif isinstance(pairs, Sequence) and pairs and isinstance(pairs[0], tuple | list):
        frame = pd.DataFrame(list(pairs), columns=["sentence_good", "sentence_bad"])
    else:
        frame = pd.DataFrame(list(pairs))
    missing = {"sentence_good", "sentence_bad"} - set(frame.columns)
    if missing or frame.empty:
        raise LocalizeError(
            "Minimal pairs need 'sentence_good' and 'sentence_bad' (a DataFrame, a list of "
            f"dicts, or a list of (good, bad) tuples); got columns {list(frame.columns)}."
        )
    for col in ("sentence_good", "sentence_bad"):
        for i, text in enumerate(frame[col]):
            if not isinstance(text, str) or not text.strip():
                raise LocalizeError(f"Pair {i}: {col} is empty ({text!r}); remove or fix it.")
    return frame


def minimal_pairs(
    model: Any,
    pairs: Any,
    *,
    hooks: Sequence[tuple[str, Any]] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Score minimal pairs; one row per pair with ``logprob_good``, ``logprob_bad``,
    ``correct`` and the pair's other columns (identifiers) kept."""
    frame = minimal_pairs_frame(pairs)
    texts = list(frame["sentence_good"]) + list(frame["sentence_bad"])
    scores = token_logprobs(
        model, texts, hooks=hooks, batch_size=batch_size, progress=progress, desc="pairs"
    )
    n = len(frame)
    frame = frame.copy()
    frame["logprob_good"] = [float(s.sum()) for s in scores[:n]]
    frame["logprob_bad"] = [float(s.sum()) for s in scores[n:]]
    frame["correct"] = frame["logprob_good"] > frame["logprob_bad"]
    return frame


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a malformed line raises an error naming file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise LocalizeError(
                    f"{path}, line {number}: not valid JSON ({error.msg}); fix or remove it."
                ) from None
    return rows


def builtin_pairs() -> pd.DataFrame:
    """The toolkit's own minimal-pair suite (agreement, anaphora, NPIs, filler-gap,
    argument structure, islands): ``phenomenon``, ``paradigm``, ``pair_id``, sentences."""
    path = resources.files("tl_localize.stimuli").joinpath("minimal_pairs", "pairs.jsonl")
    with resources.as_file(path) as file:
        return pd.DataFrame(read_jsonl(file))


def load_blimp(
    source: str | Path,
    paradigms: Sequence[str] | None = None,
    n_per_paradigm: int | None = None,
) -> pd.DataFrame:
    """BLiMP pairs from a folder of ``{paradigm}.jsonl`` files (or the hub dataset, online)."""
    folder = Path(source)
    if folder.is_dir():
        files = {p.stem: p for p in sorted(folder.glob("*.jsonl"))}
        if not files:
            raise LocalizeError(f"No .jsonl files in {folder}: expected BLiMP paradigms.")
        chosen = list(files) if paradigms is None else list(paradigms)
        unknown = [p for p in chosen if p not in files]
        if unknown:
            raise LocalizeError(
                f"Unknown BLiMP paradigm {unknown[0]!r}. Paradigms in {folder}: {sorted(files)}."
            )
        frames = []
        for name in chosen:
            rows = read_jsonl(files[name])[:n_per_paradigm]
            frame = pd.DataFrame(rows)
            frame.insert(0, "paradigm", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)
    if str(source) != BLIMP_HUB and "/" not in str(source):
        raise LocalizeError(
            f"{source} is not a folder of BLiMP .jsonl files (nor the hub name {BLIMP_HUB!r})."
        )
    return _load_blimp_hub(str(source), paradigms, n_per_paradigm)


def _load_blimp_hub(
    name: str, paradigms: Sequence[str] | None, n_per_paradigm: int | None
) -> pd.DataFrame:
    try:
        import datasets  # type: ignore[import-not-found]
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
    return pd.concat(frames, ignore_index=True)


def blimp(
    model: Any,
    source: str | Path,
    paradigms: Sequence[str] | None = None,
    n_per_paradigm: int | None = None,
    *,
    hooks: Sequence[tuple[str, Any]] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Score BLiMP: one row per pair with a ``paradigm`` column and ``correct``."""
    pairs = load_blimp(source, paradigms, n_per_paradigm)
    return minimal_pairs(model, pairs, hooks=hooks, batch_size=batch_size, progress=progress)
