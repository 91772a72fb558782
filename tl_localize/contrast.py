"""Contrasts: named sets of stimuli, two of which are compared to localize a network.

A :class:`Contrast` holds two or more conditions (name -> list of texts); ``positive`` and
``negative`` name the two that the localizer compares (for the language network: sentences
vs non-word lists). Built-ins ship inside the package; loaders read the EvLab localizer CSV
format and any table with a text column and a condition column.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .config import POOLINGS
from .data.arithmetic import format_problem, localizer_problems
from .data.io import read_csv
from .data.language import language_texts
from .data.stories import builtin_stories, load_tomloc, story_text
from .data.tables import describe_rows, missing_texts, visible
from .errors import Expected, LocalizeError, check_arguments

__all__ = ["POOLINGS", "Contrast"]


def _builtin_language() -> Contrast:
    return Contrast(
        name="language",
        conditions={c: language_texts(c) for c in ("sentences", "nonwords")},
        positive_condition="sentences",
        negative_condition="nonwords",
        pooling="last",
        description=(
            "240 sentences vs 240 lists of pronounceable non-words, 12 words each, "
            "lower-case; non-words matched to the sentences' word lengths."
        ),
    )


def _builtin_language4() -> Contrast:
    return Contrast(
        name="language4",
        conditions={
            c: language_texts(c) for c in ("sentences", "word_lists", "jabberwocky", "nonwords")
        },
        positive_condition="sentences",
        negative_condition="nonwords",
        pooling="last",
        description=(
            "The four-condition language set: sentences, word lists (each sentence's words "
            "scrambled), Jabberwocky (content words replaced by pseudowords, function words "
            "and inflections kept) and non-word lists; 240 of each."
        ),
    )


def _builtin_md(n: int = 100, seed: int = 0) -> Contrast:
    problems = localizer_problems(n, seed)
    return Contrast(
        name="md",
        conditions={level: [format_problem(*p) for p in problems[level]] for level in problems},
        positive_condition="hard",
        negative_condition="easy",
        pooling="mean",
        description=(
            f"Multiple demand: {n} hard (operands 100-199) vs {n} easy (operands 1-19) "
            f"arithmetic problems, + or -, seed {seed}, in the reference format."
        ),
    )


def _story_conditions(stories: pd.DataFrame) -> dict[str, list[str]]:
    return {
        cond: [story_text(r.story, r.statement) for r in group.itertuples()]
        for cond, group in stories.groupby("condition", sort=True)
    }


def _builtin_tom(split: str = "localizer") -> Contrast:
    return Contrast(
        name="tom",
        conditions=_story_conditions(builtin_stories(split)),
        positive_condition="false_belief",
        negative_condition="false_photo",
        pooling="mean",
        description=(
            f"Theory of mind: false-belief vs false-photograph stories ({split} split), each "
            "followed by its true/false statement."
        ),
    )


# name -> factory (keyword options allowed); each returns a fresh Contrast
BUILTINS: dict[str, Any] = {
    "language": _builtin_language,
    "language4": _builtin_language4,
    "md": _builtin_md,
    "tom": _builtin_tom,
}


@dataclass(frozen=True)
class Contrast:
    """Stimuli for a functional localizer.

    Attributes:
        name: short name, used in file names and records.
        conditions: condition name -> list of texts (two or more conditions).
        positive_condition: the condition expected to drive the network (e.g. sentences).
        negative_condition: its control (e.g. non-word lists).
        pooling: how a text's token activations become one vector: ``"last"`` (the last real
            token) or ``"mean"`` (mean over real tokens). ``localize`` uses it unless told
            otherwise.
        description: free text, kept in saved records.

    ``contrast.positive`` and ``contrast.negative`` are the two contrasted lists of texts;
    ``contrast.hash`` is a stable content hash of all conditions.

    >>> c = Contrast.from_frame(
    ...     pd.DataFrame({"text": ["a dog ran", "the sun set", "bl fo", "zu ka"],
    ...                   "cond": ["s", "s", "n", "n"]}),
    ...     text="text", condition="cond", positive="s", negative="n")
    >>> c.sizes()
    {'s': 2, 'n': 2}
    """

    name: str
    conditions: Mapping[str, Any]
    positive_condition: str
    negative_condition: str
    pooling: str = "last"
    description: str = ""
    _hash: str = field(init=False, repr=False, compare=False, default="")

    def __new__(cls, *args: Any, **kwargs: Any) -> Contrast:
        # Checked here, before the generated __init__ (and a runtime type checker wrapping
        # it) sees them, so that a wrong type is a LocalizeError like any other bad input.
        check_arguments("Contrast", Contrast.__init__, args, kwargs, _FIELDS)
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if not isinstance(self.conditions, Mapping) or len(self.conditions) < 2:
            raise LocalizeError(
                f"Contrast {self.name!r} needs at least two conditions (a dict of name -> "
                f"list of texts); got {_describe(self.conditions)}."
            )
        conditions = {}
        for cond, texts in self.conditions.items():
            conditions[str(cond)] = _check_texts(self.name, str(cond), texts)
        object.__setattr__(self, "conditions", conditions)
        for role, cond in (
            ("positive", self.positive_condition),
            ("negative", self.negative_condition),
        ):
            if cond not in conditions:
                raise LocalizeError(
                    f"Contrast {self.name!r}: the {role} condition {cond!r} is not one of its "
                    f"conditions {list(conditions)}."
                )
            if len(conditions[cond]) < 2:
                raise LocalizeError(
                    f"Contrast {self.name!r}: the {role} condition {cond!r} has one item; a "
                    "t-test needs at least two per condition (the reference uses 240)."
                )
            if len(set(conditions[cond])) < 2:
                raise LocalizeError(
                    f"Contrast {self.name!r}: the {role} condition {cond!r} repeats one text "
                    f"({conditions[cond][0]!r}) {len(conditions[cond])} times; with no "
                    "variation within the condition its t-values would be infinite or "
                    "undefined. Give it at least two different texts."
                )
        if self.positive_condition == self.negative_condition:
            raise LocalizeError(
                f"Contrast {self.name!r}: positive and negative are the same condition "
                f"({self.positive_condition!r}); name two different conditions."
            )
        if self.pooling not in POOLINGS:
            raise LocalizeError(
                f"Contrast {self.name!r}: unknown pooling {self.pooling!r}; use one of {POOLINGS}."
            )
        shared = set(self.positive) & set(self.negative)
        if sorted(self.positive) == sorted(self.negative):
            warnings.warn(
                f"Contrast {self.name!r}: conditions {self.positive_condition!r} and "
                f"{self.negative_condition!r} hold the same texts, so no unit can be "
                "selective; any units selected from it are noise.",
                stacklevel=3,
            )
        elif shared:
            first = next(t for t in self.positive if t in shared)
            warnings.warn(
                f"Contrast {self.name!r}: {len(shared)} text(s) occur in both "
                f"{self.positive_condition!r} and {self.negative_condition!r} (first: "
                f"{first!r}); each counts in both conditions, which pulls their means "
                "together and the t-values towards 0. Remove them from one condition unless "
                "that is what you mean.",
                stacklevel=3,
            )
        payload = json.dumps(
            {
                "conditions": conditions,
                "positive": self.positive_condition,
                "negative": self.negative_condition,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        object.__setattr__(self, "_hash", hashlib.sha256(payload.encode()).hexdigest())

    # -- views ---------------------------------------------------------------------------
    @property
    def positive(self) -> list[str]:
        """Texts of the positive condition."""
        return self.conditions[self.positive_condition]

    @property
    def negative(self) -> list[str]:
        """Texts of the negative condition."""
        return self.conditions[self.negative_condition]

    @property
    def hash(self) -> str:
        """SHA-256 of the conditions' texts and the contrasted pair (stable across runs)."""
        return self._hash

    def sizes(self) -> dict[str, int]:
        """Number of texts per condition."""
        return {cond: len(texts) for cond, texts in self.conditions.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per text: ``condition``, ``item`` (index within condition), ``text``."""
        rows = [
            {"condition": cond, "item": i, "text": text}
            for cond, texts in self.conditions.items()
            for i, text in enumerate(texts)
        ]
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from .cards import card

        examples = {
            f"{cond} ({len(texts)})": (texts[0][:90] + ("..." if len(texts[0]) > 90 else ""))
            for cond, texts in self.conditions.items()
        }
        facts = {
            "contrast": f"{self.positive_condition} > {self.negative_condition}",
            "pooling": self.pooling,
            **examples,
            "hash": self.hash[:16],
        }
        return card(f"Contrast {self.name!r}", facts, text=self.description)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{c}={n}" for c, n in self.sizes().items())
        return (
            f"Contrast({self.name!r}: {self.positive_condition} > {self.negative_condition}; "
            f"{sizes}; pooling={self.pooling!r})"
        )

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def builtin(cls, name: str, **options: Any) -> Contrast:
        """A contrast shipped with the toolkit.

        - ``"language"``: 240 sentences vs 240 non-word lists (last-token pooling).
        - ``"language4"``: sentences, word lists, Jabberwocky, non-word lists (240 each).
        - ``"md"``: hard vs easy arithmetic, ``n=100`` each, ``seed=0`` (mean pooling).
        - ``"tom"``: 24 false-belief vs 24 false-photo stories, ``split="localizer"`` (mean
          pooling); ``split="heldout"`` gives the 12 + 12 evaluation stories.
        """
        if name not in BUILTINS:
            raise LocalizeError(
                f"No built-in contrast {name!r}. Built-ins: {sorted(BUILTINS)}. For your own "
                "stimuli use Contrast.from_frame / from_csv / from_evlab_csv / from_tomloc."
            )
        factory = BUILTINS[name]
        try:
            inspect.signature(factory).bind(**options)
        except TypeError:
            allowed = list(inspect.signature(factory).parameters)
            raise LocalizeError(
                f"The built-in contrast {name!r} takes the options {allowed or 'none'}; got "
                f"{sorted(options)}."
            ) from None
        return factory(**options)

    @classmethod
    def from_spec(
        cls,
        spec: str | Path,
        *,
        positive: str | None = None,
        negative: str | None = None,
        text: str = "text",
        condition: str = "condition",
        pooling: str | None = None,
    ) -> Contrast:
        """A contrast named the way the command line and study files name one: a built-in
        name, a CSV file (with ``positive`` and ``negative`` values of its ``condition``
        column), a folder of EvLab localizer lists, or a Saxe-lab tomloc folder."""
        path = Path(spec)
        if path.is_dir():
            if any(path.glob("*_story.txt")):
                return cls.from_tomloc(path)
            return cls.from_evlab_csv(path)
        if path.suffix.lower() == ".csv":
            if not (positive and negative):
                raise LocalizeError(
                    f"The contrast {spec} is a CSV file: also name its positive and negative "
                    f"conditions (values of its {condition!r} column; --positive/--negative on "
                    "the command line)."
                )
            return cls.from_csv(
                path,
                text=text,
                condition=condition,
                positive=positive,
                negative=negative,
                pooling=pooling or "mean",
            )
        if str(spec) in BUILTINS:
            return cls.builtin(str(spec))
        if path.suffix or "/" in str(spec) or path.exists():
            raise LocalizeError(
                f"No contrast at {spec}: expected a built-in name {sorted(BUILTINS)}, a CSV file, "
                "a folder of EvLab lists, or a tomloc folder."
            )
        return cls.builtin(str(spec))

    @classmethod
    def from_tomloc(cls, folder: str | Path, *, name: str = "tom") -> Contrast:
        """The Saxe-lab theory-of-mind localizer folder (``{i}b_story.txt``,
        ``{i}b_question.txt``, ``{i}p_story.txt``, ``{i}p_question.txt``): false-belief vs
        false-photograph stories, each followed by its statement; mean pooling."""
        return cls(
            name,
            _story_conditions(load_tomloc(folder)),
            "false_belief",
            "false_photo",
            pooling="mean",
            description=f"Saxe-lab tomloc stories from {folder}",
        )

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        text: str = "text",
        condition: str = "condition",
        positive: str,
        negative: str,
        name: str = "custom",
        pooling: str = "mean",
        description: str = "",
        dropna: bool = False,
    ) -> Contrast:
        """Build a contrast from a table with a text column and a condition column.

        Rows keep their order within each condition. Conditions other than ``positive`` and
        ``negative`` are kept (for profiles) but not contrasted. A row whose text or
        condition is missing (NaN, None, empty, or only invisible characters) is an error
        naming the rows; ``dropna=True`` drops such rows instead, with a warning saying how
        many.
        """
        if not isinstance(df, pd.DataFrame):
            raise LocalizeError(
                f"Contrast.from_frame takes a pandas DataFrame, got {type(df).__name__}; for "
                "a dict of condition -> texts use Contrast(name, conditions, positive, negative)."
            )
        return cls._from_table(
            df, None, text=text, condition=condition, positive=positive, negative=negative,
            name=name, pooling=pooling, description=description, dropna=dropna,
        )  # fmt: skip

    @classmethod
    def _from_table(
        cls,
        df: pd.DataFrame,
        source: str | None,
        *,
        text: str,
        condition: str,
        positive: str,
        negative: str,
        name: str,
        pooling: str,
        description: str,
        dropna: bool,
    ) -> Contrast:
        where = source or "The table"
        noun = "data row" if source else "row"  # a file's rows below its header; a frame's
        missing = [col for col in (text, condition) if col not in df.columns]
        if missing:
            raise LocalizeError(
                f"{where} has no column {missing[0]!r} (columns: {list(df.columns)}). Pass "
                "text=... and condition=... naming the columns that hold the texts and the "
                "condition labels."
            )
        if not isinstance(dropna, bool):
            raise LocalizeError(f"dropna must be True or False, got {dropna!r}.")
        labels = [_label(v) for v in df[condition]]
        bad = {text: _missing_text(df[text]), condition: missing_texts(labels)}
        if not dropna:
            for col, mask in bad.items():
                if mask.any():
                    raise LocalizeError(
                        f"{where}: column {col!r} is missing or empty (only invisible "
                        f"characters count as empty) in {describe_rows(mask, noun)}, counted "
                        "from 1. Fill in or remove those rows, or pass dropna=True to drop "
                        "them."
                    )
        either = bad[text] | bad[condition]
        if either.any():
            warnings.warn(
                f"{where}: dropped {int(either.sum())} row(s) with a missing or empty text or "
                f"condition ({describe_rows(either, noun)}, counted from 1); "
                f"{int((~either).sum())} of {len(df)} remain.",
                stacklevel=3,
            )
        conditions: dict[str, list[Any]] = {}
        for cond, value, drop in zip(labels, df[text], either, strict=True):
            if not drop:
                conditions.setdefault(str(cond), []).append(value)
        for role, cond in (("positive", positive), ("negative", negative)):
            if cond not in conditions:
                raise LocalizeError(
                    f"{where}: the {role} condition {cond!r} does not occur in column "
                    f"{condition!r}{' (after dropping rows)' if either.any() else ''} "
                    f"(values: {sorted(conditions)})."
                )
        return cls(name, conditions, positive, negative, pooling, description)

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> Contrast:
        """:meth:`from_frame` on a CSV file (same keywords; ``dropna=True`` included).
        Every field is read as text: ``NA`` or ``123`` are texts, an empty field is
        missing."""
        path = Path(path)
        kwargs.setdefault("name", path.stem)
        kwargs.setdefault("text", "text")
        kwargs.setdefault("condition", "condition")
        kwargs.setdefault("pooling", "mean")
        kwargs.setdefault("description", "")
        kwargs.setdefault("dropna", False)
        frame = read_csv(path, "CSV file of stimuli", dtype=str, keep_default_na=False)
        return cls._from_table(frame, str(path), **kwargs)

    @classmethod
    def from_evlab_csv(cls, folder: str | Path, *, name: str = "language") -> Contrast:
        """Read the EvLab language-localizer format.

        Every ``*.csv`` file in ``folder`` (sorted by name) has the header
        ``stim1,...,stim14``: ``stim1`` an item number, ``stim2``..``stim13`` the 12 words
        (upper case), ``stim14`` ``S`` (sentence) or ``N`` (non-word list). Words are
        lower-cased and joined with single spaces; rows keep their order.
        """
        folder = Path(folder)
        files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
        if not files:
            raise LocalizeError(f"No .csv files in {folder}: expected EvLab localizer lists.")
        columns = [f"stim{i}" for i in range(1, 15)]
        conditions: dict[str, list[str]] = {"sentences": [], "nonwords": []}
        labels = {"S": "sentences", "N": "nonwords"}
        for file in files:
            df = read_csv(file, "EvLab localizer list", dtype=str, keep_default_na=False)
            df.columns = [c.strip() for c in df.columns]
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise LocalizeError(
                    f"{file}: missing columns {missing}; the EvLab format has the header "
                    f"{','.join(columns)}."
                )
            for row, record in enumerate(df.itertuples(index=False), start=2):
                values = record._asdict()
                kind = values["stim14"].strip().upper()
                if kind not in labels:
                    raise LocalizeError(
                        f"{file}, line {row}: stim14 is {values['stim14']!r}; it must be 'S' "
                        "(sentence) or 'N' (non-word list)."
                    )
                words = [values[f"stim{i}"].strip().lower() for i in range(2, 14)]
                empty = [f"stim{i}" for i, w in enumerate(words, start=2) if not visible(w)]
                if empty:
                    raise LocalizeError(
                        f"{file}, line {row}: {empty[0]} is missing or empty (only invisible "
                        "characters count as empty); every row needs 12 words in "
                        "stim2..stim13. Fill it in or remove the row."
                    )
                conditions[labels[kind]].append(" ".join(words))
        return cls(
            name,
            conditions,
            "sentences",
            "nonwords",
            pooling="last",
            description=f"EvLab localizer lists from {folder}",
        )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{len(value)} condition(s) {list(value)}"
    return type(value).__name__


def _check_texts(contrast: str, cond: str, texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise LocalizeError(
            f"Contrast {contrast!r}, condition {cond!r}: expected a list of texts, got "
            f"{type(texts).__name__}."
        )
    texts = list(texts)
    if not texts:
        raise LocalizeError(
            f"Contrast {contrast!r}: condition {cond!r} is empty; give it at least two texts."
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise LocalizeError(
                f"Contrast {contrast!r}, condition {cond!r}, item {i}: expected a string, got "
                f"{type(text).__name__} ({text!r}). Convert stimuli to text first."
            )
        if not visible(text):
            raise LocalizeError(
                f"Contrast {contrast!r}, condition {cond!r}, item {i}: the text is empty"
                f"{' (only invisible characters: ' + repr(text) + ')' if text else ''}; "
                "remove it or give it words."
            )
    return texts


def _label(value: Any) -> str | None:
    """A condition label as text; None where it is missing."""
    if _absent(value):
        return None
    return value if isinstance(value, str) else str(value)


def _missing_text(values: pd.Series) -> Any:
    """Texts that are absent (NaN, None) or show nothing; other values that are not text
    are left to the contrast's own check, which says to convert them."""
    return missing_texts([v if isinstance(v, str) or _absent(v) else "x" for v in values])


def _absent(value: Any) -> bool:
    """None, NaN or pandas' NA."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


_FIELDS = {
    "name": Expected(str, "a string"),
    "conditions": Expected(Mapping, "a dict of condition name -> list of texts"),
    "positive_condition": Expected(str, "a condition name (a string)"),
    "negative_condition": Expected(str, "a condition name (a string)"),
    "pooling": Expected(str, f"one of {POOLINGS}"),
    "description": Expected(str, "a string"),
}
