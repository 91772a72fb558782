"""``compare_ablation``: what ablating the selected units breaks, against random controls.

For each task the model is evaluated intact, with the selected units ablated, and with each
random control of the same size ablated. The result, an :class:`AblationComparison`, holds:

- ``table``: one row per (task, fraction, set, match, seed): the task's metric, its change
  relative to intact in percent with a 95% paired bootstrap interval over items, the number
  of high-magnitude units in the set, and paired tests over items (exact McNemar for
  right/wrong items, a paired permutation test otherwise) against intact and, for controls,
  against the selected set;
- ``verdicts``: for the selected set against each control family (its seeds pooled per
  item), the difference in change with its bootstrap interval, a one-sided paired
  permutation p (does the selected set hurt more?), that p adjusted over the result's
  comparisons (Holm by default) and a verdict: ``specific`` at adjusted p < 0.05, else
  ``not specific``; ``at chance`` when the intact model's interval reaches the task's chance
  level (nothing to break) and ``at ceiling`` when every set is at 100%, with no effect
  claimed either way;
- ``items``: every item's result under every set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from .ablation import (
    ResamplePool,
    UnitSet,
    ablation_hooks,
    high_magnitude_units,
    plan_controls,
    resample_pool,
)
from .config import AblationConfig
from .data.io import read_csv
from .errors import LocalizeError
from .localize import Localization, parse_top
from .models import model_signature
from .options import BLOCKED
from .protocol import Hook, Model
from .results import (
    atomic_folder,
    base_record,
    check_same_model,
    read_result_record,
    write_record,
)
from .stats import (
    ADJUSTMENTS,
    adjust_p,
    bootstrap_indices,
    mcnemar_p,
    paired_permutation_p,
    percentile_interval,
)
from .summaries import (
    MATCH_WORDS,
    VERBS,
    adjustment_sentence,
    blocked_sentence,
    change_words,
    interval,
    p_words,
    pct,
)
from .tasks import PreparedTask, Task, prepare_tasks
from .units import DEFAULT_MATCH, DEFAULT_N_RANDOM, NEEDS_MAGNITUDE, Units

__all__ = [
    "AblationComparison",
    "EvaluatedSets",
    "SetEvaluation",
    "adjust_verdicts",
    "compare_ablation",
    "evaluate_set",
    "evaluate_sets",
    "mcnemar_p",
    "plan_controls",
    "plot_ablation",
    "selected_units",
    "summarize_sets",
    "task_states",
    "verdicts",
]

ALPHA = 0.05
TABLE_COLUMNS = [
    "model", "task", "metric", "method", "fraction", "set", "match", "seed", "n_units",
    "n_high_magnitude", "value", "value_low", "value_high", "chance", "change_pct",
    "change_low", "change_high", "p_vs_intact", "p_vs_selected",
]  # fmt: skip
VERDICT_COLUMNS = [
    "model", "task", "metric", "method", "fraction", "match", "n_seeds", "selected_change_pct",
    "control_change_pct", "difference_pct", "difference_low", "difference_high", "p_value",
    "p_adjusted", "verdict",
]  # fmt: skip
# a task the intact model does at or below chance, or every set at 100%: no effect to claim


def paired_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired test over items: exact McNemar for right/wrong items, a paired
    permutation test of the mean difference otherwise."""
    if a.dtype == bool and b.dtype == bool:
        return mcnemar_p(a, b)
    diff = a.astype(float) - b.astype(float)
    if not np.any(diff):
        return 1.0
    return paired_permutation_p(diff, alternative="two-sided")


@dataclass
class AblationComparison:
    """The result of :func:`compare_ablation` (see the module docstring).

    Attributes:
        table: one row per task, fraction, set (``intact``, ``selected``, ``random``),
            match and seed.
        verdicts: one row per task, fraction and control family.
        items: one row per item and set.
        settings: how it was made (method, n_random, n_boot, seed, tasks); saved as the
            record's ``config``.
        record: the rest of how it was made: the model's signature (``model``), and from
            the command line the command, the localization's record, the timings.
    """

    table: pd.DataFrame
    verdicts: pd.DataFrame
    items: pd.DataFrame
    settings: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The table (one row per set)."""
        return self.table

    def states(self) -> pd.DataFrame:
        """Per model and task: the intact model's value against chance (:func:`task_states`)."""
        return task_states(self.table)

    def summary(self) -> str:
        """The finding in words, one sentence per task and fraction: the selected set's
        change with its interval, each control family's, and the verdicts with their
        differences and p-values (or why a task at chance or at ceiling claims nothing)."""
        table, verdicts = self.table, self.verdicts
        verb = VERBS.get(str(self.settings.get("method")), "Ablating")
        states = {row.task: row for row in self.states().itertuples()}
        sentences = []
        for task in dict.fromkeys(table["task"]):
            state = states.get(task)
            if state is not None and state.state in BLOCKED:
                sentences.append(blocked_sentence(state))
                continue
            for fraction in sorted(
                table[(table["task"] == task) & (table["set"] == "selected")]["fraction"]
            ):
                sentences.append(_ablation_sentence(verb, table, verdicts, task, fraction))
        adjusted = adjustment_sentence(verdicts, str(self.settings.get("adjust", "holm")))
        return " ".join([*sentences, adjusted] if adjusted else sentences)

    def plot(self) -> Any:
        """The ablation figure (:func:`plot_ablation`)."""
        return plot_ablation(self)

    def _repr_html_(self) -> str:
        """The card: model, method, tasks, controls, a bar per task and set, the verdicts
        and the summary."""
        import seaborn as sns

        from .cards import card, figure_png, frame_html

        table = self.table
        data = table[table["set"] != "intact"].copy()
        data["set"] = np.where(
            data["set"] == "selected", "selected", "random " + data["match"].astype(str)
        )

        def draw(ax: Any) -> None:
            sns.barplot(data=data, x="task", y="change_pct", hue="set", errorbar="sd", ax=ax)
            ax.axhline(0, color="0.3", linewidth=0.8)
            ax.set_ylabel("change (%)", fontsize=8)
            ax.legend(fontsize=7)

        facts = {
            "model": ", ".join(dict.fromkeys(table["model"].astype(str))),
            "method": self.settings.get("method"),
            "tasks": ", ".join(self.settings.get("tasks", [])),
            "controls": f"{self.settings.get('n_random')} per kind of "
            f"{', '.join(self.settings.get('match', []))}",
        }
        shown = ["task", "fraction", "match", "difference_pct", "p_value", "p_adjusted", "verdict"]
        verdicts = self.verdicts[[c for c in shown if c in self.verdicts.columns]]
        figure = figure_png(draw, (5.0, 2.2)) + frame_html(verdicts)
        return card("Ablation comparison", facts, figure, self.summary())

    def __repr__(self) -> str:
        tasks = list(dict.fromkeys(self.table["task"]))
        return (
            f"AblationComparison({self.settings.get('method')} ablation, tasks {tasks}, "
            f"{len(self.table)} rows, {len(self.verdicts)} verdicts)"
        )

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``ablation.csv``, ``verdicts.csv``, ``items.csv``, ``ablation.png`` and
        ``record.json`` (kind ``ablation``) to ``folder``, atomically; an existing folder is
        replaced only with ``force=True`` (:func:`tl_localize.results.atomic_folder`)."""
        with atomic_folder(folder, force=force) as tmp:
            self.write(tmp)
        return Path(folder)

    def write(self, folder: Path) -> None:
        """Write :meth:`save`'s files into an existing folder."""
        import matplotlib.pyplot as plt

        self.table.to_csv(folder / "ablation.csv", index=False)
        self.verdicts.to_csv(folder / "verdicts.csv", index=False)
        self.items.to_csv(folder / "items.csv", index=False)
        fig = self.plot()
        fig.savefig(folder / "ablation.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        write_record(folder, base_record(self.record, self.settings, self.summary()), KIND)

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> AblationComparison:
        """Read a folder written by :meth:`save` (or ``tl-localize compare-ablation``); with
        ``model``, refuse one made for another model. The record must be an ablation's with
        its ``config``, and the tables must have the columns this version writes."""
        folder = Path(folder)
        what = "a saved ablation comparison (tl-localize compare-ablation --out ...)"
        record, settings = read_result_record(folder, KIND, what)
        tables = {
            name: read_csv(folder / f"{name}.csv", f"{name} table of an ablation comparison")
            for name in ("ablation", "verdicts", "items")
        }
        for name, columns in (("ablation", TABLE_COLUMNS), ("verdicts", ["task", "verdict"])):
            missing = [c for c in columns if c not in tables[name].columns]
            if missing:
                raise LocalizeError(
                    f"{folder / (name + '.csv')} lacks the column {missing[0]!r}; the folder is "
                    "damaged or from another release. Run the comparison again."
                )
        if model is not None:
            check_same_model(folder, record.get("model"), model_signature(model))
        table = tables["ablation"].astype({"match": object, "set": str, "task": str})
        return cls(table, tables["verdicts"], tables["items"], settings, record)


KIND = "ablation"  # the kind its record.json carries


def _ablation_sentence(
    verb: str, table: pd.DataFrame, verdicts: pd.DataFrame, task: str, fraction: float
) -> str:
    rows = table[(table["task"] == task) & (table["fraction"] == fraction)]
    selected = rows[rows["set"] == "selected"].iloc[0]
    metric = selected["metric"]
    change = change_words(selected["change_pct"], selected["change_low"], selected["change_high"])
    text = f"{verb} the {int(selected['n_units'])} selected units " + change.replace(
        "CHANGES", f"{task} {metric}"
    )
    found = verdicts[(verdicts["task"] == task) & (verdicts["fraction"] == fraction)]
    parts, judgements = [], []
    for v in found.itertuples():
        word = "lower" if v.control_change_pct < 0 else "raise"
        parts.append(
            f"{MATCH_WORDS.get(str(v.match), str(v.match))} {word} it by "
            f"{pct(v.control_change_pct)} (mean of {v.n_seeds})"
        )
        adjusted = getattr(v, "p_adjusted", math.nan)
        shown = p_words(v.p_value)
        if not math.isnan(adjusted) and adjusted != v.p_value:
            shown += f", adjusted {p_words(adjusted).removeprefix('p ')}"
        judgements.append(
            f"{v.verdict} against {v.match!s} controls (difference "
            f"{v.difference_pct:+.1f} points{interval(v.difference_low, v.difference_high)}, "
            f"{shown})"
        )
    if parts:
        text += "; " + "; ".join(parts) + ". The effect is " + " and ".join(judgements) + "."
    else:
        text += " (no random controls were run, so its specificity is unknown)."
    return text


def compare_ablation(
    model: Model,
    units: Units | Localization,
    tasks: Sequence[str | Task | tuple[str, Callable[..., pd.DataFrame]]] | str = ("builtin",),
    *,
    n_random: int = DEFAULT_N_RANDOM,
    match: str | Sequence[str] = DEFAULT_MATCH,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    reference: Sequence[str] | ResamplePool | None = None,
    fractions: Sequence[float] | None = None,
    magnitude: Float[Tensor, "layer unit"] | None = None,
    blimp: str | Path | None = None,
    syntaxgym: str | Path | None = None,
    n_per_paradigm: int | None = None,
    options: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    adjust: str = "holm",
    batch_size: int | None = None,
    progress: bool = True,
) -> AblationComparison:
    """Ablate the selected units and matched random controls; measure each task.

    Args:
        units: a :class:`Units`, or a :class:`Localization` (needed for ``fractions``; gives
            the activation magnitudes for ``match="magnitude"`` and ``"least_active"``).
        tasks: names from the task registry (:data:`tl_localize.tasks.TASKS`: ``builtin``,
            ``blimp``, ``syntaxgym``, ``perplexity``, ``arithmetic``, ``false_belief``),
            :class:`~tl_localize.tasks.Task` objects, or ``(name, function)`` pairs.
        n_random: random controls per match (default 3).
        match: control kinds: ``"uniform"`` (the reference), ``"layer"``, ``"magnitude"``,
            ``"least_active"`` (the layers' least active units, see
            :meth:`Units.random_like`); default both ``uniform`` and ``magnitude``.
        method: ``"zero"`` (the reference), ``"mean"`` (with ``means=``) or ``"resample"``
            (with ``reference=``: texts to draw replacement activations from, or a
            :class:`~tl_localize.ablation.ResamplePool` covering every set).
        fractions: e.g. ``[0.00125, 0.0025, 0.005, 0.01]``: re-select the top units of the
            localization at each fraction.
        blimp: a folder of BLiMP ``.jsonl`` files (task ``blimp``).
        syntaxgym: a SyntaxGym suite file or folder (task ``syntaxgym``).
        n_per_paradigm: the first N items of each paradigm (BLiMP, the built-in suite) or
            level (arithmetic).
        options: any other task option, e.g. ``{"texts": "corpus.txt"}`` for perplexity.
        n_boot: bootstrap resamples for the intervals (at least 100).
        seed: the seed of the bootstrap and of the permutation tests.
        adjust: how the verdicts' p-values are adjusted over the result's comparisons
            (tasks x fractions x control kinds): ``"holm"`` (family-wise error rate, the
            default), ``"fdr_bh"`` (Benjamini-Hochberg false discovery rate) or ``"none"``.
        batch_size: texts per pass (default: each task's).

    Returns:
        An :class:`AblationComparison`: ``.table``, ``.verdicts``, ``.items``,
        ``.summary()``, ``.plot()``.
    """
    loc = units if isinstance(units, Localization) else None
    base = loc.units if loc is not None else units
    if not isinstance(base, Units):
        raise LocalizeError(f"units must be Units or a Localization, got {type(units).__name__}.")
    base.check_model(model)
    if len(base) == 0 and not fractions:
        raise LocalizeError("The unit set is empty: there is nothing to ablate.")
    config = AblationConfig(
        n_random=n_random, match=match, method=method, fractions=fractions,
        n_per_paradigm=n_per_paradigm, n_boot=n_boot, seed=seed, adjust=adjust,
        batch_size=batch_size,
    )  # fmt: skip
    matches, n_random = list(config.match), config.n_random
    n_boot, seed, fractions = config.n_boot, config.seed, config.fractions
    if method == "mean" and means is None:
        raise LocalizeError("method='mean' needs means=unit_means(model, texts, site=...).")
    if method == "resample" and reference is None:
        raise LocalizeError(
            "method='resample' needs reference=: a list of neutral texts to draw replacement "
            "activations from (or a ResamplePool)."
        )
    if magnitude is None and loc is not None:
        magnitude = loc.stats["magnitude"]
    needs = [m for m in matches if m in NEEDS_MAGNITUDE]
    if needs and magnitude is None and n_random:
        raise LocalizeError(
            f"match={needs[0]!r} needs activation magnitudes: pass the Localization instead of "
            "its Units, or magnitude=, or match='uniform'."
        )
    if fractions:
        if loc is None:
            raise LocalizeError("fractions= re-selects units by t: pass the Localization.")
        sets = {float(parse_top(float(f))): selected_units(loc, float(f)) for f in fractions}
    else:
        nominal = loc.config.top if loc is not None else None
        fraction = nominal if isinstance(nominal, float) else len(base) / base.n_units
        sets = {float(fraction): base}
    task_options = {
        "blimp": blimp,
        "syntaxgym": syntaxgym,
        "n_per_paradigm": n_per_paradigm,
        **(options or {}),
    }
    prepared = prepare_tasks(tasks, **task_options)  # every file read before any model run
    plan = plan_controls(sets, match=matches, n_random=n_random, magnitude=magnitude)
    pool = None
    if method == "resample":
        pool = (
            reference
            if isinstance(reference, ResamplePool)
            else resample_pool(
                model, list(reference or []), [p.units for p in plan], progress=progress
            )
        )
    evaluated = evaluate_sets(
        model, plan, prepared, method=method, means=means, pool=pool, seed=seed,
        magnitude=magnitude, batch_size=batch_size, progress=progress,
    )  # fmt: skip
    table, verdict_table = summarize_sets(
        evaluated.rows, evaluated.found, evaluated.higher_is_better, n_boot=n_boot, seed=seed,
        chance=evaluated.chance, adjust=adjust,
    )  # fmt: skip
    settings = {
        "method": method,
        "n_random": n_random,
        "match": matches,
        "n_boot": n_boot,
        "seed": seed,
        "adjust": adjust,
        "tasks": [t.name for t in prepared],
        "fractions": sorted(sets),
    }
    return AblationComparison(
        table.reindex(columns=TABLE_COLUMNS),
        verdict_table,
        evaluated.items,
        settings,
        {"model": model_signature(model)},
    )


# -- the engine: what compare_ablation and a study's ablation jobs share -----------------------
def selected_units(
    loc: Localization, fraction: float, band: tuple[float, float] | None = None
) -> Units:
    """The localization's selected set at ``fraction`` of the site (its top units by t,
    ranked as the localization ranks them), or the units of ``band`` of the ranking."""
    return loc.select(band=band) if band is not None else loc.select(top=fraction)


@dataclass
class SetEvaluation:
    """One task run with one unit set ablated (or intact).

    Attributes:
        items: the task's per-item result.
        values: the per-item values of the task's column (bool for right/wrong items).
        n_high_magnitude: the set's units of high magnitude (:func:`high_magnitude_units`;
            0 without magnitudes or for the intact model).
    """

    items: pd.DataFrame
    values: np.ndarray
    n_high_magnitude: int

    @property
    def value(self) -> float:
        """The task's metric: the mean of ``values``."""
        return float(np.mean(self.values.astype(float)))


def evaluate_set(
    model: Model,
    task: PreparedTask,
    units: Units | None,
    *,
    hooks: Sequence[Hook] = (),
    magnitude: Float[Tensor, "layer unit"] | None = None,
    batch_size: int | None = None,
) -> SetEvaluation:
    """Run ``task`` with ``hooks`` (the ablation of ``units``; none for the intact model)."""
    result = task.run(model, hooks=list(hooks), batch_size=batch_size, progress=False)
    column = result[task.task.column]
    values = column.to_numpy(dtype=bool if column.dtype == bool else float)
    n_high = 0
    if units is not None and magnitude is not None:
        n_high = len(high_magnitude_units(units, magnitude))
    return SetEvaluation(result, values, n_high)


@dataclass
class EvaluatedSets:
    """What :func:`evaluate_sets` returns: one row per (task, set) in evaluation order (each
    task's intact row first) with its per-item values (``found``), every item of every set
    (``items``), each task's chance level and direction; :func:`summarize_sets` turns it
    into the table and the verdicts."""

    rows: list[dict[str, Any]]
    found: list[np.ndarray]
    items: pd.DataFrame
    chance: dict[str, float]
    higher_is_better: dict[str, bool]


def evaluate_sets(
    model: Model,
    sets: Sequence[UnitSet],
    tasks: Sequence[PreparedTask],
    *,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    pool: ResamplePool | None = None,
    seed: int = 0,
    magnitude: Float[Tensor, "layer unit"] | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> EvaluatedSets:
    """Each task intact, then with each unit set of ``sets`` (:func:`plan_controls`)
    ablated by ``method`` (hooks from :func:`ablation_hooks` with ``means``, ``pool`` and
    ``seed``)."""
    model_name = str(model.cfg.model_name)
    out = EvaluatedSets([], [], pd.DataFrame(), {}, {})
    items: list[pd.DataFrame] = []
    bar = tqdm(
        total=len(tasks) * (1 + len(sets)), desc="ablation", disable=not progress, leave=False
    )
    for task in tasks:
        out.higher_is_better[task.name] = task.task.higher_is_better
        for unit_set in [None, *sets]:
            units = unit_set.units if unit_set is not None else None
            hooks = (
                ablation_hooks(units, method=method, means=means, pool=pool, seed=seed)
                if units is not None
                else []
            )
            found = evaluate_set(
                model, task, units, hooks=hooks, magnitude=magnitude, batch_size=batch_size
            )
            if unit_set is None:
                out.chance[task.name] = task.task.chance_of(found.items)
            bar.update()
            row = _row(model_name, task.task, method, unit_set)
            row["n_high_magnitude"] = found.n_high_magnitude
            keys = {k: row[k] for k in ("task", "fraction", "set", "match", "seed")}
            items.append(found.items.assign(**keys))
            out.found.append(found.values)
            out.rows.append(row)
    bar.close()
    out.items = pd.concat(items, ignore_index=True)
    return out


def _row(model_name: str, task: Task, method: str, unit_set: UnitSet | None) -> dict[str, Any]:
    return {
        "model": model_name,
        "task": task.name,
        "metric": task.metric,
        "method": method,
        "fraction": unit_set.fraction if unit_set is not None else 0.0,
        "set": unit_set.set if unit_set is not None else "intact",
        "match": unit_set.match if unit_set is not None else None,
        "seed": unit_set.seed if unit_set is not None else None,
        "n_units": len(unit_set.units) if unit_set is not None else 0,
        "n_high_magnitude": 0,
    }


def _change(value: np.ndarray | float, intact: np.ndarray | float) -> np.ndarray:
    """100 x (value / intact - 1), NaN where intact is 0."""
    value, intact = np.asarray(value, dtype=float), np.asarray(intact, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(intact != 0, 100 * (value / intact - 1), np.nan)


def _groups(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The grouping columns present in ``table`` (a study's table adds ``network``)."""
    return [k for k in keys if k in table.columns]


def check_adjust(name: str, adjust: Any) -> str:
    """``adjust`` if it names a p-value adjustment, else an error naming ``name``."""
    if not isinstance(adjust, str) or adjust not in ADJUSTMENTS:
        choices = "; ".join(f"{k}: {v}" for k, v in ADJUSTMENTS.items())
        raise LocalizeError(f"{name}={adjust!r} is not a p-value adjustment; use one of {choices}.")
    return adjust


def _add_intervals(
    table: pd.DataFrame, found: Sequence[np.ndarray], n_boot: int, seed: int
) -> None:
    """``value_low`` / ``value_high`` and ``change_pct`` with its paired bootstrap interval
    for every row: one index matrix per model and task, shared by all its sets, so that
    intact and ablated runs are resampled together. Each group's intact row is its row with
    ``set == "intact"``."""
    change, low, high, value_low, value_high = (np.full(len(table), np.nan) for _ in range(5))
    for _, rows in table.groupby(_groups(table, ["model", "task"]), sort=False):
        positions = rows.index.to_numpy()
        intact_rows = rows.index[rows["set"] == "intact"]
        if len(intact_rows) != 1:
            raise ValueError("each task needs exactly one intact row")
        intact = found[int(intact_rows[0])].astype(float)
        index = bootstrap_indices(len(intact), n_boot, seed)
        boot_intact = intact[index].mean(1)
        for i in positions:
            values = found[int(i)].astype(float)
            boot_values = values[index].mean(1)
            value_low[i], value_high[i] = percentile_interval(boot_values)
            change[i] = float(_change(values.mean(), intact.mean()))
            low[i], high[i] = percentile_interval(_change(boot_values, boot_intact))
    table["value_low"], table["value_high"] = value_low, value_high
    table["change_pct"], table["change_low"], table["change_high"] = change, low, high


def add_paired_tests(table: pd.DataFrame, found: Sequence[np.ndarray]) -> None:
    """``p_vs_intact`` for every ablated row and ``p_vs_selected`` for every control: paired
    tests over items (exact McNemar for right/wrong items)."""
    p_intact, p_selected = np.full(len(table), np.nan), np.full(len(table), np.nan)
    for _, rows in table.groupby(_groups(table, ["model", "task"]), sort=False):
        intact = int(rows.index[rows["set"] == "intact"][0])
        for i, row in rows.iterrows():
            if row["set"] == "intact":
                continue
            p_intact[int(i)] = paired_p(found[int(i)], found[intact])
        for _, part in rows[rows["set"] != "intact"].groupby(
            _groups(table, ["network", "fraction", "band"]), sort=False, dropna=False
        ):
            chosen = part.index[part["set"] == "selected"]
            for i in part.index[part["set"] == "random"]:
                p_selected[int(i)] = paired_p(found[int(chosen[0])], found[int(i)])
    table["p_vs_intact"], table["p_vs_selected"] = p_intact, p_selected


def summarize_sets(
    rows: Sequence[Mapping[str, Any]],
    found: Sequence[np.ndarray],
    higher_is_better: Mapping[str, bool],
    *,
    n_boot: int,
    seed: int,
    chance: Mapping[str, float] | None = None,
    adjust: str = "holm",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table and the verdicts from one row per evaluated set (``model``, ``task``,
    ``metric``, ``method``, ``fraction``, ``set``, ``match``, ``seed``, and for a study
    ``network``) and each row's per-item values (``found``, same order); ``chance`` is each
    task's chance level (:meth:`Task.chance_of <tl_localize.tasks.Task.chance_of>`; NaN or
    missing: none), ``adjust`` the adjustment of the verdicts' p-values."""
    table = pd.DataFrame(list(rows))
    table["value"] = [float(np.mean(v)) for v in found]
    table["chance"] = [float((chance or {}).get(str(t), math.nan)) for t in table["task"]]
    _add_intervals(table, found, n_boot, seed)
    add_paired_tests(table, found)
    return table, verdicts(table, found, higher_is_better, n_boot=n_boot, seed=seed, adjust=adjust)


def task_states(table: pd.DataFrame) -> pd.DataFrame:
    """Per model and task, whether an ablation effect can be measured at all.

    One row per intact row of ``table``: ``value`` with its bootstrap interval
    (``value_low``, ``value_high``), ``chance`` and ``state``:

    - ``at chance``: the interval reaches the chance level or lies below it (for an accuracy
      with no declared chance level, the floor 0): the intact model does not do the task,
      so there is nothing for an ablation to break;
    - ``at ceiling``: every set, intact and ablated, is at 100%;
    - ``above chance`` (a task with a chance level) or ``measurable`` (a metric with none,
      such as ``nll``): effects are reported.
    """
    columns = ["model", "task", "metric", "value", "value_low", "value_high", "chance", "state"]
    rows = []
    for _, row in table[table["set"] == "intact"].iterrows():
        same = table[table["task"] == row["task"]]
        if "model" in table.columns:
            same = same[same["model"] == row["model"]]
        chance = float(row.get("chance", math.nan))
        low = float(row.get("value_low", math.nan))
        low = float(row["value"]) if math.isnan(low) else low
        state = "measurable"
        if not math.isnan(chance):
            if low <= chance:
                state = "at chance"
            elif (same["value"].astype(float) >= 1.0).all():
                state = "at ceiling"
            else:
                state = "above chance"
        rows.append({k: row.get(k, math.nan) for k in columns[:-1]} | {"state": state})
    return pd.DataFrame(rows, columns=columns)


def adjust_verdicts(
    frame: pd.DataFrame, method: str = "holm", alpha: float = ALPHA
) -> pd.DataFrame:
    """``frame`` (verdicts with a ``p_value``) with ``p_adjusted``: the p-values of every
    tested comparison (verdict ``specific`` or ``not specific``) adjusted together as one
    family by ``method`` (:data:`tl_localize.stats.ADJUSTMENTS`), and each tested verdict
    re-decided on it (``specific`` at adjusted p < ``alpha``). Comparisons on a task at
    chance or at ceiling are not tested: they keep their raw p and do not count in the
    family. Applying it again to its own output gives the same frame."""
    out = frame.copy()
    if "p_adjusted" not in out.columns:
        at = (
            list(out.columns).index("p_value") + 1 if "p_value" in out.columns else len(out.columns)
        )
        out.insert(at, "p_adjusted", np.nan)
    if out.empty:
        return out
    p = out["p_value"].to_numpy(dtype=float)
    tested = out["verdict"].isin(["specific", "not specific"]).to_numpy() & np.isfinite(p)
    adjusted = np.full(len(out), np.nan)
    adjusted[tested] = adjust_p(p[tested], method)
    out["p_adjusted"] = adjusted
    out.loc[tested, "verdict"] = np.where(adjusted[tested] < alpha, "specific", "not specific")
    return out


def verdicts(
    table: pd.DataFrame,
    found: Sequence[np.ndarray],
    higher_is_better: Mapping[str, bool],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = ALPHA,
    adjust: str = "holm",
) -> pd.DataFrame:
    """The selected set against each control family, its seeds pooled per item.

    ``found[i]`` holds the per-item values of ``table``'s row ``i``. For each item the
    control family's value is the mean over its seeds; the difference between the selected
    set's change and the family's (in percent of intact) gets a paired bootstrap interval
    over items and a one-sided paired permutation p in the harmful direction (lower for a
    metric where higher is better). The p-values of all rows are adjusted together
    (``adjust``, :func:`adjust_verdicts`) and ``verdict`` is ``specific`` when the selected
    set hurts more at adjusted p < ``alpha``, else ``not specific``; a task at chance or at
    ceiling (:func:`task_states`, from the table's ``chance`` and ``value_low`` where it
    has them) gets that as its verdict instead.
    """
    states = (
        task_states(table).set_index(_groups(table, ["model", "task"]))["state"]
        if "chance" in table.columns
        else None
    )
    out = []
    for _, rows in table[table["set"] != "intact"].groupby(
        _groups(table, ["model", "network", "task", "fraction", "band"]), sort=False, dropna=False
    ):
        same = table[(table["set"] == "intact") & (table["task"] == rows["task"].iloc[0])]
        if "model" in table.columns:
            same = same[same["model"] == rows["model"].iloc[0]]
        intact = found[int(same.index[0])].astype(float)
        index = bootstrap_indices(len(intact), n_boot, seed)
        boot_intact = intact[index].mean(1)
        chosen = rows[rows["set"] == "selected"].iloc[0]
        selected = found[int(chosen.name)].astype(float)
        key = tuple(chosen[k] for k in _groups(table, ["model", "task"]))
        state = states.get(key if len(key) > 1 else key[0]) if states is not None else None
        for match, group in rows[rows["set"] == "random"].groupby("match", sort=False):
            family = np.mean([found[int(i)].astype(float) for i in group.index], axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                boot = 100 * (selected[index].mean(1) - family[index].mean(1)) / boot_intact
            low, high = percentile_interval(boot)
            base = intact.mean()
            difference = 100 * (selected.mean() - family.mean()) / base if base else math.nan
            diffs = selected - family
            task = str(chosen["task"])
            harmful = "less" if higher_is_better.get(task, True) else "greater"
            p = paired_permutation_p(diffs, alternative=harmful, seed=seed) if diffs.any() else 1.0
            row = {k: chosen[k] for k in ("model", "network", "band") if k in table.columns}
            out.append(
                {
                    **row,
                    "task": task,
                    "metric": chosen["metric"],
                    "method": chosen["method"],
                    "fraction": chosen["fraction"],
                    "match": match,
                    "n_seeds": len(group),
                    "selected_change_pct": chosen["change_pct"],
                    "control_change_pct": float(group["change_pct"].mean()),
                    "difference_pct": difference,
                    "difference_low": low,
                    "difference_high": high,
                    "p_value": p,
                    "p_adjusted": math.nan,
                    "verdict": state if state in BLOCKED else "not specific",
                }
            )
    columns = list(VERDICT_COLUMNS)
    if "network" in table.columns:
        columns.insert(1, "network")
    if "band" in table.columns:  # a study's bands of the ranking beside its top fractions
        columns.insert(columns.index("fraction") + 1, "band")
    return adjust_verdicts(pd.DataFrame(out, columns=columns), adjust, alpha)


def blocked_note(state: Any) -> str:
    """A figure's short note for a task at chance or at ceiling (a row of
    :func:`task_states`)."""
    if state.state == "at ceiling":
        return "at ceiling\n(every set at 100%)"
    level = f"chance {state.chance:.1%}" if state.chance > 0 else "floor 0%"
    return f"at chance\nintact {state.value:.1%}, {level}\nno effect claimed"


def note_blocked(ax: Any, state: Any) -> None:
    """Write :func:`blocked_note` across a panel whose bars were left out."""
    ax.text(0.5, 0.5, blocked_note(state), transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.25", bbox={"facecolor": "white", "edgecolor": "0.7"})  # fmt: skip
    ax.set_yticks([])


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g}%"


def plot_ablation(result: AblationComparison | pd.DataFrame) -> Any:
    """The ablation figure: change in the task's metric (%) by the share of the site's units
    ablated, selected vs random controls (mean and SD over seeds), one panel per task."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = result.table if isinstance(result, AblationComparison) else result
    blocked = {row.task: row for row in task_states(frame).itertuples() if row.state in BLOCKED}
    data = frame[frame["set"] != "intact"].copy()
    data.loc[data["task"].isin(list(blocked)), "change_pct"] = np.nan  # no bar, a note
    data["units"] = np.where(
        data["set"] == "selected", "selected", "random (" + data["match"].astype(str) + ")"
    )
    order = [_percent(f) for f in sorted(data["fraction"].unique())]
    data["units ablated"] = data["fraction"].map(_percent)
    grid = sns.catplot(
        data=data,
        kind="bar",
        x="units ablated",
        order=order,
        y="change_pct",
        hue="units",
        col="task",
        errorbar="sd",
        height=3.5,
        aspect=1.1,
        sharey=False,
    )
    grid.set_axis_labels("units ablated (% of the site)", "change vs intact (%)")
    for ax in grid.axes.flat:
        ax.axhline(0, color="0.3", linewidth=0.8)
    for task, state in blocked.items():
        note_blocked(grid.axes_dict[task], state)
    fig = grid.figure
    plt.close(fig)
    return fig
