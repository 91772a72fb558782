"""The paper's figures for a study (seaborn), each a function of a :class:`StudyResult`.

- ``ablation``: per model, the change when the selected units are ablated against uniform
  and magnitude-matched random sets, per task (bars: mean over seeds, error bars: SD); a
  task at chance or at ceiling gets a note instead of bars;
- ``depth``: where each network's units sit by relative depth (layer / n_layers), one row
  per model;
- ``dissociation``: the double-dissociation matrix: network ablated x task, per model: the
  selected set's change vs intact (colour and number), marked ``hurts`` where it hurts the
  task beyond every control kind after adjustment, and ``at chance`` / ``at ceiling`` (no
  number) where there is nothing to measure;
- ``brain``: brain alignment per model: the selected set against random sets and all units;
- ``sweep``: for checkpoint sweeps (one model spec at several revisions), the selected set's
  change per task against the revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..options import HURTS, NO_EFFECT
from .plan import Job
from .spec import Study

__all__ = ["StudyTables", "all_figures"]


@runtime_checkable
class StudyTables(Protocol):
    """What the figures read of a study's results (a :class:`StudyResult` provides it):
    the spec, the plan, the folder, the tables."""

    study: Study
    plan: list[Job]
    out: Path

    def frame(self) -> pd.DataFrame: ...

    def dissociation(self) -> pd.DataFrame: ...

    def localization(self, model: str, network: str) -> Any: ...


def _blocked(result: StudyTables) -> dict[tuple[str, str], Any]:
    """(model, task) -> its :func:`task_states` row, for the tasks at chance or at ceiling."""
    from ..compare import BLOCKED, task_states

    frame = result.frame()
    frame = frame[~frame["task"].astype(str).str.startswith("brain:")]
    states = task_states(frame) if not frame.empty else pd.DataFrame(columns=["state"])
    return {(r.model, r.task): r for r in states.itertuples() if r.state in BLOCKED}


def _ablation_rows(result: StudyTables) -> pd.DataFrame:
    frame = result.frame()
    data = frame[(frame["set"] != "intact") & ~frame["task"].astype(str).str.startswith("brain:")]
    if data.empty:
        return data
    if data["band"].isna().any():
        data = data[data["band"].isna()]  # the top sets; bands are in the table
    blocked = _blocked(result)
    hidden = [(m, t) in blocked for m, t in zip(data["model"], data["task"], strict=True)]
    data = data.assign(change_pct=data["change_pct"].mask(hidden))  # no effect to show
    top = data.groupby(["model", "network"])["fraction"].transform("max")
    data = data[data["fraction"] == top].copy()
    data["units"] = np.where(
        data["set"] == "selected", "selected", "random (" + data["match"].astype(str) + ")"
    )
    return data


def ablation_figure(result: StudyTables) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = _ablation_rows(result)
    if data.empty:
        return None
    data = data.assign(panel=data["model"] + " / " + data["network"].astype(str))
    tasks = list(dict.fromkeys(data["task"]))
    grid = sns.catplot(
        data=data, kind="bar", x="task", order=tasks, y="change_pct", hue="units", col="panel",
        col_wrap=min(3, data["panel"].nunique()), errorbar="sd", height=3.2, aspect=1.2,
        sharey=False,
    )  # fmt: skip
    grid.set_axis_labels("task", "change vs intact (%)")
    grid.set_titles("{col_name}")
    blocked = _blocked(result)
    model_of = dict(zip(data["panel"], data["model"], strict=True))
    for panel, ax in grid.axes_dict.items():
        ax.axhline(0, color="0.3", linewidth=0.8)
        for x, task in enumerate(tasks):
            state = blocked.get((model_of[panel], task))
            if state is not None:
                ax.text(x, 0, state.state, rotation=90, ha="center", va="bottom", fontsize=8,
                        color="0.25")  # fmt: skip
    plt.close(grid.figure)
    return grid.figure


def depth_figure(result: StudyTables) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = []
    for model in result.study.models:
        for network in result.study.networks:
            job = next(
                (j for j in result.plan if j.model == model.label
                 and j.name == f"localize-{network.name}"), None,
            )  # fmt: skip
            if job is None or not (job.folder(result.out) / "record.json").is_file():
                continue
            units = result.localization(model.label, network.name).units
            counts = units.per_layer()
            counts["depth"] = (counts["layer"] + 0.5) / units.n_layers
            counts["share"] = counts["count"] / max(1, len(units))
            rows.append(counts.assign(model=model.label, network=network.name))
    if not rows:
        return None
    data = pd.concat(rows, ignore_index=True)
    grid = sns.relplot(
        data=data, kind="line", x="depth", y="share", hue="network", row="model",
        marker="o", height=2.4, aspect=3.0, facet_kws={"sharey": False},
    )  # fmt: skip
    grid.set_axis_labels("relative depth (layer / n_layers)", "share of the network's units")
    plt.close(grid.figure)
    return grid.figure


def dissociation_figure(result: StudyTables) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    cells = result.dissociation()
    if cells.empty:
        return None
    models = list(dict.fromkeys(cells["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.8 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        part = cells[cells["model"] == model].copy()
        blocked = ~part["verdict"].isin([HURTS, NO_EFFECT])
        part["shown"] = part["selected_change_pct"].mask(blocked)
        part["label"] = [
            verdict if hide else f"{change:+.0f}%" + ("\nhurts" if verdict == HURTS else "")
            for change, verdict, hide in zip(
                part["selected_change_pct"], part["verdict"], blocked, strict=True
            )
        ]
        matrix = part.pivot(index="network", columns="task", values="shown")
        labels = part.pivot(index="network", columns="task", values="label")
        labels = labels.reindex(index=matrix.index, columns=matrix.columns)
        ax.set_facecolor("0.92")  # cells with nothing to measure, or not tested
        values = matrix.astype(float)
        shown = values.to_numpy()[np.isfinite(values.to_numpy())]
        limit = float(np.abs(shown).max()) if shown.size and np.abs(shown).max() > 0 else 1.0
        sns.heatmap(values, annot=False, cmap="RdBu", center=0, vmin=-limit, vmax=limit,
                    ax=ax, cbar_kws={"label": "selected set: change vs intact (%)"})  # fmt: skip
        for i, network in enumerate(matrix.index):
            for j, task in enumerate(matrix.columns):
                text = labels.loc[network, task]
                if isinstance(text, str):
                    bold = text.endswith(HURTS)
                    dark = abs(values.loc[network, task]) > 0.6 * limit  # NaN: False
                    ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8,
                            fontweight="bold" if bold else "normal",
                            color="white" if dark else "black")  # fmt: skip
        ax.set_title(model)
        ax.set_xlabel("task")
        ax.set_ylabel("network ablated")
    fig.suptitle("hurts: beyond every control kind, adjusted p < 0.05", fontsize=9, y=1.02)
    fig.tight_layout()
    plt.close(fig)
    return fig


def brain_figure(result: StudyTables) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = result.frame()
    data = frame[frame["task"].astype(str).str.startswith("brain:")].copy()
    if data.empty:
        return None
    data["units"] = np.where(
        data["set"] == "random", "random (" + data["match"].astype(str) + ")", data["set"]
    )
    grid = sns.catplot(
        data=data, kind="bar", x="model", y="value", hue="units", col="task", row="network",
        errorbar="sd", height=3.0, aspect=1.3,
    )  # fmt: skip
    grid.set_axis_labels("model", "encoding r (cross-validated)")
    plt.close(grid.figure)
    return grid.figure


def sweep_figure(result: StudyTables) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    specs = pd.DataFrame(
        [{"model": m.label, "spec": str(m.spec), "revision": m.revision}
         for m in result.study.models]
    )  # fmt: skip
    sweeps = specs[specs["revision"].notna()].groupby("spec").filter(lambda g: len(g) > 1)
    if sweeps.empty:
        return None
    data = _ablation_rows(result)
    data = data[data["model"].isin(sweeps["model"])] if not data.empty else data
    if not data.empty:  # a task at chance or at ceiling has no effect to draw
        data = data[data["change_pct"].notna()]
    if data.empty:
        return None
    grid = sns.relplot(
        data=data, kind="line", x="revision", y="change_pct", hue="units", col="task",
        row="network", marker="o", errorbar="sd", height=2.8, aspect=1.3,
    )  # fmt: skip
    grid.set_axis_labels("checkpoint", "change vs intact (%)")
    plt.close(grid.figure)
    return grid.figure


def all_figures(result: StudyTables) -> dict[str, Any]:
    """Every figure that the study's results allow, by name."""
    made = {
        "ablation": ablation_figure(result),
        "depth": depth_figure(result),
        "dissociation": dissociation_figure(result),
        "brain": brain_figure(result),
        "sweep": sweep_figure(result),
    }
    return {name: fig for name, fig in made.items() if fig is not None}
