"""``compare_ablation``: what ablating the selected units breaks, against random controls.

For each task the model is evaluated intact, with the selected units ablated, and with each
random control of the same size ablated; the result is one tidy DataFrame with accuracy,
the change relative to intact in percent, the number of high-magnitude units in each set,
and a paired test over items of the selected set against each control (exact McNemar test
on the items where the two disagree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float
from scipy import stats as sps
from torch import Tensor

from . import evaluate
from .ablation import ablation_hooks, high_magnitude_units
from .errors import LocalizeError
from .localize import Localization, select_top
from .units import MATCHES, Units

__all__ = ["TASKS", "compare_ablation", "mcnemar_p", "plot_ablation"]

TASKS = ("builtin", "blimp", "syntaxgym", "arithmetic", "false_belief")

Task = Callable[..., pd.DataFrame]


def _task(
    name: str,
    blimp: str | Path | None,
    syntaxgym: str | Path | None,
    n_per_paradigm: int | None,
) -> Task:
    if name == "builtin":
        pairs = evaluate.builtin_pairs()
        if n_per_paradigm is not None:
            pairs = pairs.groupby("paradigm", sort=False).head(n_per_paradigm)
        return lambda model, **kw: evaluate.minimal_pairs(model, pairs, **kw)
    if name == "blimp":
        if blimp is None:
            raise LocalizeError("Task 'blimp' needs blimp='folder of BLiMP .jsonl files'.")
        pairs = evaluate.load_blimp(blimp, n_per_paradigm=n_per_paradigm)
        return lambda model, **kw: evaluate.minimal_pairs(model, pairs, **kw)
    if name == "syntaxgym":
        if syntaxgym is None:
            raise LocalizeError("Task 'syntaxgym' needs syntaxgym='suite file or folder'.")
        return lambda model, **kw: evaluate.syntaxgym(model, syntaxgym, **kw)
    if name == "arithmetic":
        n = n_per_paradigm or 50
        return lambda model, **kw: evaluate.arithmetic(model, n_per_level=n, **kw)
    if name == "false_belief":
        return lambda model, **kw: evaluate.false_belief(model, **kw)
    raise LocalizeError(
        f"Unknown task {name!r}. Tasks: {list(TASKS)}, or a (name, function) pair where "
        "function(model, hooks=..., progress=...) returns a DataFrame with a 'correct' column."
    )


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar test of paired booleans (two-sided binomial on discordant items)."""
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def compare_ablation(
    model: Any,
    units: Units | Localization,
    tasks: Sequence[str | tuple[str, Task]] = ("builtin",),
    *,
    n_random: int = 3,
    match: str | Sequence[str] = ("uniform", "magnitude"),
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    fractions: Sequence[float] | None = None,
    magnitude: Float[Tensor, "layer unit"] | None = None,
    blimp: str | Path | None = None,
    syntaxgym: str | Path | None = None,
    n_per_paradigm: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    return_items: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Ablate the selected units and matched random controls; measure each task.

    Args:
        units: a :class:`Units`, or a :class:`Localization` (needed for ``fractions`` and
            gives the activation magnitudes for ``match="magnitude"``).
        tasks: ``"builtin"`` (the toolkit's minimal pairs), ``"blimp"``, ``"syntaxgym"``,
            ``"arithmetic"`` (held-out problems, ``n_per_paradigm`` per level, default 50),
            ``"false_belief"`` (the held-out stories), or ``(name, function)`` pairs.
        n_random: random controls per match.
        match: control kinds: ``"uniform"`` (the reference), ``"layer"``, ``"magnitude"``;
            default both ``uniform`` and ``magnitude``.
        method: ``"zero"`` (the reference) or ``"mean"`` (with ``means=``).
        fractions: e.g. ``[0.00125, 0.0025, 0.005, 0.01]``: re-select the top units of the
            localization at each fraction.
        blimp, syntaxgym: data for those tasks; ``n_per_paradigm`` keeps the first N pairs
            of each paradigm of BLiMP and of the built-in suite.

    Returns:
        One row per (task, fraction, set, match, seed): ``accuracy``, ``change_pct``
        (relative to intact), ``n_units``, ``n_high_magnitude``, ``p_vs_selected``; with
        ``return_items=True`` also the per-item results.
    """
    loc = units if isinstance(units, Localization) else None
    base = loc.units if loc is not None else units
    if not isinstance(base, Units):
        raise LocalizeError(f"units must be Units or a Localization, got {type(units).__name__}.")
    base.check_model(model)
    matches = [match] if isinstance(match, str) else list(match)
    for m in matches:
        if m not in MATCHES:
            raise LocalizeError(f"Unknown match {m!r}; use one of {MATCHES}.")
    if magnitude is None and loc is not None:
        magnitude = loc.stats["magnitude"]
    if "magnitude" in matches and magnitude is None:
        raise LocalizeError(
            "match='magnitude' needs activation magnitudes: pass the Localization instead of "
            "its Units, or magnitude=."
        )
    if fractions:
        if loc is None:
            raise LocalizeError("fractions= re-selects units by t: pass the Localization.")
        sets = {
            float(f): Units(
                select_top(loc.stats["t"], f, loc.config.selection), base.site, base.model
            )
            for f in fractions
        }
    else:
        sets = {len(base) / base.n_units: base}
    if n_random < 0:
        raise LocalizeError(f"n_random must be 0 or more, got {n_random}.")

    named = [t if isinstance(t, tuple) else (t, None) for t in tasks]
    rows, items = [], []
    for task_name, fn in named:
        run = fn or _task(task_name, blimp, syntaxgym, n_per_paradigm)

        def evaluate_set(
            label: str,
            unit_set: Units | None,
            run: Task = run,
            task_name: str = task_name,
            **meta: Any,
        ) -> np.ndarray:
            hooks = ablation_hooks(unit_set, method, means) if unit_set is not None else []
            result = run(model, hooks=hooks, batch_size=batch_size, progress=progress)
            if "correct" not in result.columns:
                raise LocalizeError(f"Task {task_name!r} returned no 'correct' column.")
            items.append(result.assign(task=task_name, set=label, **meta))
            n_high = (
                len(high_magnitude_units(unit_set, magnitude))
                if unit_set is not None and magnitude is not None
                else 0
            )
            rows.append(
                {
                    "task": task_name,
                    "set": label,
                    "n_units": len(unit_set) if unit_set is not None else 0,
                    "n_high_magnitude": n_high,
                    "accuracy": float(result["correct"].mean()),
                    **meta,
                }
            )
            return result["correct"].to_numpy(dtype=bool)

        intact = evaluate_set("intact", None, fraction=0.0, match=None, seed=None)
        for fraction, selected_units in sets.items():
            selected = evaluate_set(
                "selected", selected_units, fraction=fraction, match=None, seed=None
            )
            rows[-1]["p_vs_intact"] = mcnemar_p(selected, intact)
            for m in matches:
                for seed in range(n_random):
                    control = selected_units.random_like(seed, m, magnitude)
                    correct = evaluate_set("random", control, fraction=fraction, match=m, seed=seed)
                    rows[-1]["p_vs_selected"] = mcnemar_p(selected, correct)
    frame = pd.DataFrame(rows)
    intact_acc = frame[frame["set"] == "intact"].set_index("task")["accuracy"]
    frame["change_pct"] = 100 * (frame["accuracy"] / frame["task"].map(intact_acc) - 1)
    columns = [
        "task", "fraction", "set", "match", "seed", "n_units", "n_high_magnitude",
        "accuracy", "change_pct", "p_vs_intact", "p_vs_selected",
    ]  # fmt: skip
    frame = frame.reindex(columns=columns)
    if return_items:
        return frame, pd.concat(items, ignore_index=True)
    return frame


def plot_ablation(frame: pd.DataFrame) -> Any:
    """The ablation figure: change in accuracy (%) by fraction of units, selected vs random
    controls (mean and SD over seeds), one panel per task."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = frame[frame["set"] != "intact"].copy()
    data["units"] = np.where(
        data["set"] == "selected", "selected", "random (" + data["match"].astype(str) + ")"
    )
    data["fraction (%)"] = (100 * data["fraction"]).map(lambda f: f"{f:.3g}")
    grid = sns.catplot(
        data=data,
        kind="bar",
        x="fraction (%)",
        y="change_pct",
        hue="units",
        col="task",
        errorbar="sd",
        height=3.5,
        aspect=1.1,
        sharey=False,
    )
    grid.set_axis_labels("units ablated (% of site)", "change vs intact (%)")
    for ax in grid.axes.flat:
        ax.axhline(0, color="0.3", linewidth=0.8)
    fig = grid.figure
    plt.close(fig)
    return fig
