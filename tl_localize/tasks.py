"""The task registry: every evaluation a unit set can be ablated on, by name.

A :class:`Task` ties together what the rest of the toolkit needs to know about a task: how
to load its items (pure data, :mod:`tl_localize.data`), how to score them with a model
(:mod:`tl_localize.evaluate`), which per-item column its metric averages and in which
direction better lies, the options it takes, and, for minimal-pair tasks, how its items
become pairs for attribution. ``compare_ablation``, ``unit_attribution``, the command line
and studies all look tasks up here; adding a task is one entry (:func:`register_task`).

>>> sorted(TASKS)
['arithmetic', 'blimp', 'builtin', 'false_belief', 'perplexity', 'syntaxgym']
>>> get_task("blimp").required
('blimp',)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LocalizeError, check_int
from .protocol import Hooks, Model

if TYPE_CHECKING:
    import pandas as pd

# The registry is data that the command line lists (``tl-localize tasks``, ``--help``) and a
# study spec is checked against: importing it loads no model code and no data reader. Each
# built-in task's loader and scorer import theirs when first called (_data, _evaluator).

__all__ = [
    "OPTIONS",
    "TASKS",
    "PreparedTask",
    "Task",
    "attributable",
    "get_task",
    "prepare_tasks",
    "read_texts",
    "register_task",
]

# Options a task may take, shared by name across tasks (and the command line's flags).
OPTIONS: dict[str, str] = {
    "blimp": "a folder of BLiMP .jsonl files",
    "syntaxgym": "a SyntaxGym suite file or a folder of them",
    "n_per_paradigm": "the first N items of each paradigm (BLiMP, built-in suite) or level "
    "(arithmetic)",
    "texts": "texts to score, or a text file of them, one per line (perplexity)",
}
# options whose command-line flag has another name
FLAGS: dict[str, str] = {"texts": "perplexity"}


@dataclass(frozen=True)
class Task:
    """An evaluation by name.

    Attributes:
        name: the registry key (``"blimp"``).
        load: ``load(**options) -> items``: the task's items, from data only.
        score: ``score(model, items, *, hooks, batch_size, progress) -> DataFrame``, one
            row per item with the ``column`` the metric averages.
        options: the options ``load`` takes (names from :data:`OPTIONS`) and defaults.
        required: options that must be given (a data folder the toolkit does not ship).
        metric: what the mean of ``column`` is called (``accuracy``).
        column: the per-item column (``correct``).
        higher_is_better: the direction of the metric (False for ``nll``).
        pairs: ``pairs(items) -> DataFrame`` of minimal pairs, for tasks that can be
            attribution tasks; ``None`` for those that cannot.
        batch_size: texts per forward pass when scoring.
        description: one line for listings.
        chance: the metric's value for a model without the skill the task tests: a number
            (0.5 for a two-choice task) or ``chance(scored) -> float`` of the scored items
            (one row per item, as ``score`` returns them); ``None``: none declared (for an
            accuracy the floor, 0, stands in; see :meth:`chance_of`).
    """

    name: str
    load: Callable[..., Any]
    score: Callable[..., pd.DataFrame]
    options: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    metric: str = "accuracy"
    column: str = "correct"
    higher_is_better: bool = True
    pairs: Callable[[Any], pd.DataFrame] | None = None
    batch_size: int = 64
    description: str = ""
    chance: float | Callable[[pd.DataFrame], float] | None = None

    def chance_of(self, scored: pd.DataFrame) -> float:
        """The chance level on these scored items: the declared ``chance``; else 0 (the
        floor) when the per-item column is right/wrong; else NaN (a metric such as ``nll``
        has no chance level)."""
        if callable(self.chance):
            return float(self.chance(scored))
        if self.chance is not None:
            return float(self.chance)
        column = scored[self.column] if self.column in scored.columns else None
        return 0.0 if column is not None and column.dtype == bool else math.nan

    @property
    def attributable(self) -> bool:
        """Whether the task's items are minimal pairs (so it can be an attribution task)."""
        return self.pairs is not None

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """This task's options from ``options`` (others ignored), defaults filled in;
        a missing required option is an error that says how to give it."""
        chosen = {
            k: options[k] if options.get(k) is not None else default
            for k, default in self.options.items()
        }
        missing = [k for k in self.required if chosen.get(k) is None]
        if missing:
            flag = FLAGS.get(missing[0], missing[0]).replace("_", "-")
            raise LocalizeError(
                f"Task {self.name!r} needs {missing[0]}= ({OPTIONS.get(missing[0], 'an option')};"
                f" on the command line --{flag})."
            )
        return chosen

    def prepare(self, **options: Any) -> PreparedTask:
        """Load the items now (checking every file before any model runs)."""
        chosen = self.check_options(options)
        return PreparedTask(self, self.load(**chosen), chosen)


@dataclass(frozen=True)
class PreparedTask:
    """A task with its items loaded: ``run(model, hooks=...)`` scores them."""

    task: Task
    items: Any
    options: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.task.name

    def run(
        self,
        model: Model,
        *,
        hooks: Hooks = (),
        batch_size: int | None = None,
        progress: bool = True,
    ) -> pd.DataFrame:
        """One row per item; checks that the metric's column is there."""
        result = self.task.score(
            model,
            self.items,
            hooks=hooks,
            batch_size=batch_size or self.task.batch_size,
            progress=progress,
        )
        import pandas as pd

        if not isinstance(result, pd.DataFrame) or self.task.column not in result.columns:
            raise LocalizeError(
                f"Task {self.name!r} returned no {self.task.column!r} column; a task's score "
                "function returns a DataFrame with one row per item."
            )
        if result.empty:
            raise LocalizeError(f"Task {self.name!r} has no items: nothing was scored.")
        return result

    def pairs(self) -> pd.DataFrame:
        """The items as minimal pairs (attribution tasks only)."""
        if self.task.pairs is None:
            raise LocalizeError(
                f"Task {self.name!r} is not made of minimal pairs, so it cannot be an "
                f"attribution task; attribution tasks: {attributable()}, or pass minimal pairs."
            )
        return self.task.pairs(self.items)


def read_texts(texts: str | Path | Sequence[str]) -> list[str]:
    """Texts given as a list, or a UTF-8 file with one text per line (blank lines skipped)."""
    if isinstance(texts, str | Path):
        path = Path(texts)
        if not path.is_file():
            raise LocalizeError(f"No text file at {path} (one text per line).")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise LocalizeError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
        out = [line.strip() for line in lines if line.strip()]
        if not out:
            raise LocalizeError(f"{path} holds no text (every line is blank).")
        return out
    out = list(texts)
    if not out:
        raise LocalizeError("No texts given: pass a non-empty list or a text file.")
    for i, text in enumerate(out):
        if not isinstance(text, str) or not text.strip():
            raise LocalizeError(f"Text {i} is empty or not a string ({text!r}); remove it.")
    return out


def _head(frame: pd.DataFrame, n: int | None, by: str) -> pd.DataFrame:
    if n is None:
        return frame
    check_int("n_per_paradigm", n, 1)
    return frame.groupby(by, sort=False).head(n).reset_index(drop=True)


def _identity(items: Any) -> pd.DataFrame:
    return items


def _data(module: str, name: str) -> Callable[..., Any]:
    """The reader ``tl_localize.data.<module>.<name>``, imported on its first call."""

    def load(*args: Any, **kwargs: Any) -> Any:
        from .data import arithmetic, pairs, stories, syntaxgym

        readers = {"arithmetic": arithmetic, "pairs": pairs, "stories": stories,
                   "syntaxgym": syntaxgym}  # fmt: skip
        return getattr(readers[module], name)(*args, **kwargs)

    load.__name__ = load.__qualname__ = name
    return load


def _evaluator(name: str) -> Callable[..., pd.DataFrame]:
    """The scorer ``tl_localize.evaluate.<name>``, imported (with torch) on its first call."""

    def score(*args: Any, **kwargs: Any) -> pd.DataFrame:
        from . import evaluate

        return getattr(evaluate, name)(*args, **kwargs)

    score.__name__ = score.__qualname__ = name
    return score


builtin_pairs = _data("pairs", "builtin_pairs")
load_blimp = _data("pairs", "load_blimp")
load_suites = _data("syntaxgym", "load_suites")
heldout_problems = _data("arithmetic", "heldout_problems")
builtin_stories = _data("stories", "builtin_stories")
arithmetic_chance = _data("arithmetic", "chance_level")


def _all_predictions(scored: pd.DataFrame) -> float:
    """SyntaxGym: an item is right when all its k predictions hold; each a coin flip, the
    item is right by chance with probability 0.5 ** k."""
    import pandas as pd

    predictions = scored.filter(regex=r"^prediction_\d+$")
    k = predictions.notna().sum(axis=1) if predictions.shape[1] else pd.Series(1, scored.index)
    return float((0.5 ** k.clip(lower=1)).mean())


def _majority(scored: pd.DataFrame) -> float:
    """True/false judgements: the share of the more common answer (a judge that always
    gives it)."""
    share = float(scored["answer"].astype(bool).mean())
    return max(share, 1 - share)


TASKS: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add ``task`` to the registry (``replace=True`` to replace one of the same name)."""
    if not isinstance(task, Task):
        raise LocalizeError(f"register_task takes a Task, got {type(task).__name__}.")
    if task.name in TASKS and not replace:
        raise LocalizeError(
            f"A task named {task.name!r} is registered already; pass replace=True to replace it."
        )
    unknown = [k for k in task.options if k not in OPTIONS]
    if unknown:
        OPTIONS.setdefault(unknown[0], "an option of a registered task")
    TASKS[task.name] = task
    return task


for _task in (
    Task(
        "builtin",
        load=lambda n_per_paradigm: _head(builtin_pairs(), n_per_paradigm, "paradigm"),
        score=_evaluator("minimal_pairs"),
        options={"n_per_paradigm": None},
        pairs=_identity,
        chance=0.5,
        description="the toolkit's 334 minimal pairs (agreement, anaphora, NPIs, filler-gap, "
        "argument structure, islands)",
    ),
    Task(
        "blimp",
        load=lambda blimp, n_per_paradigm: load_blimp(blimp, n_per_paradigm=n_per_paradigm),
        score=_evaluator("minimal_pairs"),
        options={"blimp": None, "n_per_paradigm": None},
        required=("blimp",),
        pairs=_identity,
        chance=0.5,
        description="BLiMP minimal pairs from a folder of paradigm .jsonl files",
    ),
    Task(
        "syntaxgym",
        load=lambda syntaxgym: load_suites(syntaxgym),
        score=_evaluator("syntaxgym"),
        options={"syntaxgym": None},
        required=("syntaxgym",),
        chance=_all_predictions,
        description="SyntaxGym suites: every surprisal prediction of an item holds",
    ),
    Task(
        "perplexity",
        load=lambda texts: read_texts(texts),
        score=_evaluator("perplexity"),
        options={"texts": None},
        required=("texts",),
        metric="nll",
        column="nll",
        higher_is_better=False,
        description="mean negative log-likelihood per token of each text (nats)",
    ),
    Task(
        "arithmetic",
        load=lambda n_per_paradigm: heldout_problems(
            check_int("n_per_paradigm", n_per_paradigm, 1)
        ),
        score=_evaluator("arithmetic"),
        options={"n_per_paradigm": 50},
        chance=arithmetic_chance,
        description="held-out arithmetic problems, exact match by greedy decoding (3 shots)",
    ),
    Task(
        "false_belief",
        load=lambda: builtin_stories("heldout"),
        score=_evaluator("false_belief"),
        batch_size=16,
        chance=_majority,
        description="the held-out false-belief and false-photo stories, true/false",
    ),
):
    register_task(_task)


def get_task(name: str | Task) -> Task:
    """The registered task ``name`` (a :class:`Task` is returned as it is)."""
    if isinstance(name, Task):
        return name
    if not isinstance(name, str) or name not in TASKS:
        raise LocalizeError(
            f"Unknown task {name!r}. Tasks: {sorted(TASKS)}; register your own with "
            "register_task(Task(...)), or pass a (name, function) pair where "
            "function(model, hooks=..., batch_size=..., progress=...) returns a DataFrame "
            "with a 'correct' column."
        )
    return TASKS[name]


def attributable() -> list[str]:
    """Names of the registered tasks made of minimal pairs."""
    return sorted(name for name, task in TASKS.items() if task.attributable)


def _legacy(name: str, function: Callable[..., pd.DataFrame]) -> Task:
    """A ``(name, function)`` pair as a task with no items of its own."""

    def score(model: Model, items: Any, **kwargs: Any) -> pd.DataFrame:
        return function(model, **kwargs)

    return Task(name, load=lambda: None, score=score, description="a user function")


def prepare_tasks(
    tasks: Sequence[str | Task | tuple[str, Callable[..., pd.DataFrame]]] | str,
    **options: Any,
) -> list[PreparedTask]:
    """Look up and load ``tasks`` (names, :class:`Task` objects or ``(name, function)``
    pairs) with ``options``; every file is read and checked here, before any model runs."""
    if isinstance(tasks, str):
        tasks = [tasks]
    prepared = []
    for entry in tasks:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not isinstance(entry[0], str) or not callable(entry[1]):
                raise LocalizeError(f"A custom task is a (name, function) pair; got {entry!r}.")
            task = _legacy(*entry)
        else:
            task = get_task(entry)
        prepared.append(task.prepare(**options))
    names = [p.name for p in prepared]
    if len(set(names)) != len(names):
        raise LocalizeError(f"Task names repeat in {names}; give each task once.")
    if not prepared:
        raise LocalizeError("No tasks given: name at least one (for example 'builtin').")
    return prepared
