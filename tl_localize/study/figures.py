"""The paper's figures for a study (seaborn), each a function of a :class:`StudyResult`.

- ``ablation``: per model, the change when the selected units are ablated against uniform
  and magnitude-matched random sets, per task (bars: mean over seeds, error bars: SD);
- ``depth``: where each network's units sit by relative depth (layer / n_layers), one row
  per model;
- ``dissociation``: the double-dissociation matrix: network ablated x task, change vs
  intact, per model;
- ``brain``: brain alignment per model: the selected set against random sets and all units;
- ``sweep``: for checkpoint sweeps (one model spec at several revisions), the selected set's
  change per task against the revision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .results import StudyResult

__all__ = ["all_figures"]


def _ablation_rows(result: StudyResult) -> pd.DataFrame:
    frame = result.frame()
    data = frame[(frame["set"] != "intact") & ~frame["task"].astype(str).str.startswith("brain:")]
    if data.empty:
        return data
    if data["band"].isna().any():
        data = data[data["band"].isna()]  # the top sets; bands are in the table
    top = data.groupby(["model", "network"])["fraction"].transform("max")
    data = data[data["fraction"] == top].copy()
    data["units"] = np.where(
        data["set"] == "selected", "selected", "random (" + data["match"].astype(str) + ")"
    )
    return data


def ablation_figure(result: StudyResult) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = _ablation_rows(result)
    if data.empty:
        return None
    data = data.assign(panel=data["model"] + " / " + data["network"].astype(str))
    grid = sns.catplot(
        data=data, kind="bar", x="task", y="change_pct", hue="units", col="panel",
        col_wrap=min(3, data["panel"].nunique()), errorbar="sd", height=3.2, aspect=1.2,
        sharey=False,
    )  # fmt: skip
    grid.set_axis_labels("task", "change vs intact (%)")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.axhline(0, color="0.3", linewidth=0.8)
    plt.close(grid.figure)
    return grid.figure


def depth_figure(result: StudyResult) -> Any:
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


def dissociation_figure(result: StudyResult) -> Any:
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = _ablation_rows(result)
    data = data[data["set"] == "selected"] if not data.empty else data
    if data.empty:
        return None
    models = list(dict.fromkeys(data["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        matrix = data[data["model"] == model].pivot_table(
            index="network", columns="task", values="change_pct", aggfunc="mean"
        )
        sns.heatmap(matrix, annot=True, fmt=".0f", cmap="RdBu", center=0, ax=ax,
                    cbar_kws={"label": "change vs intact (%)"})  # fmt: skip
        ax.set_title(model)
        ax.set_xlabel("task")
        ax.set_ylabel("network ablated")
    fig.tight_layout()
    plt.close(fig)
    return fig


def brain_figure(result: StudyResult) -> Any:
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


def sweep_figure(result: StudyResult) -> Any:
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
    if data.empty:
        return None
    grid = sns.relplot(
        data=data, kind="line", x="revision", y="change_pct", hue="units", col="task",
        row="network", marker="o", errorbar="sd", height=2.8, aspect=1.3,
    )  # fmt: skip
    grid.set_axis_labels("checkpoint", "change vs intact (%)")
    plt.close(grid.figure)
    return grid.figure


def all_figures(result: StudyResult) -> dict[str, Any]:
    """Every figure that the study's results allow, by name."""
    made = {
        "ablation": ablation_figure(result),
        "depth": depth_figure(result),
        "dissociation": dissociation_figure(result),
        "brain": brain_figure(result),
        "sweep": sweep_figure(result),
    }
    return {name: fig for name, fig in made.items() if fig is not None}
