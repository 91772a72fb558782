"""A study's results: one tidy table across models, networks, tasks and unit sets, the
verdicts, the paper's figures, job status and failures; all read from the study folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..compare import summarize_sets
from ..errors import LocalizeError
from ..results import process_alive, read_record
from ..tasks import TASKS
from .plan import Job, band_label
from .runner import StudyFolder, _read_json
from .spec import Study
from .worker import finished

__all__ = ["StudyResult", "study_status"]

COLUMNS = [
    "model", "revision", "network", "site", "fraction", "band", "method", "set", "match", "seed",
    "task", "metric", "value", "change_pct", "change_low", "change_high", "p_vs_intact",
    "p_vs_selected", "n_units", "n_high_magnitude",
]  # fmt: skip


class StudyResult:
    """The results of a study folder (see :func:`tl_localize.study.run_study`).

    ``frame()`` is the whole table (also ``results.csv``), ``verdicts()`` the selected sets
    against each control family (``verdicts.csv``), ``status()`` every job's state,
    ``failures()`` the failed jobs with their errors, ``figures()`` the paper's figures.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.folder = StudyFolder(self.out)
        spec = self.folder.spec()
        if spec is None:
            raise LocalizeError(f"{self.out} holds no study.json: not a study folder.")
        self.study = Study.from_dict(_strip(spec["study"]))
        self.plan = self.folder.plan()
        self.run_counts: dict[str, Any] = {}
        self._cache: tuple[pd.DataFrame, pd.DataFrame] | None = None

    def __repr__(self) -> str:
        status = self.status()["status"].value_counts().to_dict()
        return f"StudyResult({self.study.name!r}: {len(self.plan)} jobs, {status})"

    # -- status ---------------------------------------------------------------------------
    def status(self) -> pd.DataFrame:
        """One row per job: ``model``, ``job``, ``kind``, ``status`` (done / failed / running
        / interrupted / pending), ``time``, ``seconds``, ``error``."""
        rows = []
        for job in self.plan:
            state = self.folder.state(job) or {}
            status = state.get("status", "pending") if state.get("key") == job.key else "pending"
            if finished(job, self.out):
                status = "done"
            elif status == "done":
                status = "pending"  # its folder is gone or was made with other settings
            elif status == "running" and not _alive(state):
                status = "interrupted"
            rows.append(
                {"model": job.model, "job": job.name, "kind": job.kind, "status": status,
                 "time": state.get("time"), "seconds": state.get("seconds"),
                 "error": state.get("error") if status == "failed" else None}
            )  # fmt: skip
        return pd.DataFrame(rows)

    def failures(self) -> pd.DataFrame:
        """The failed jobs: ``model``, ``job``, ``error``, ``traceback``."""
        rows = []
        for job in self.plan:
            state = self.folder.state(job) or {}
            if state.get("status") == "failed" and state.get("key") == job.key:
                rows.append({"model": job.model, "job": job.name, "error": state.get("error"),
                             "traceback": state.get("traceback")})  # fmt: skip
        return pd.DataFrame(rows, columns=["model", "job", "error", "traceback"])

    # -- the table -------------------------------------------------------------------------
    def _evaluations(self) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
        rows, found = [], []
        by_model: dict[str, list[Job]] = {}
        for job in self.plan:
            if job.kind == "evaluate" and finished(job, self.out):
                by_model.setdefault(job.model, []).append(job)
        revisions = {m.label: m.revision for m in self.study.models}
        for model, jobs in by_model.items():
            for task in dict.fromkeys(j.task for j in jobs):
                intact = [j for j in jobs if j.task == task and j.set == "intact"]
                if not intact:  # no baseline: the task's changes cannot be computed
                    continue
                for job in intact + [j for j in jobs if j.task == task and j.set != "intact"]:
                    folder = job.folder(self.out)
                    record = read_record(folder)
                    items = pd.read_csv(folder / "items.csv")
                    column = items[record["column"]]
                    values = column.to_numpy(dtype=bool if column.dtype == bool else float)
                    network = self.study.network(job.network) if job.network else None
                    rows.append(
                        {"model": model, "revision": revisions.get(model), "network": job.network,
                         "site": network.site if network else None,
                         "fraction": job.fraction if job.fraction is not None else 0.0,
                         "band": band_label(job.band) if job.band is not None else None,
                         "method": self.study.ablation.method, "set": job.set,
                         "match": job.match, "seed": job.seed, "task": task,
                         "metric": record["metric"], "n_units": record["n_units"],
                         "n_high_magnitude": record["n_high_magnitude"]}
                    )  # fmt: skip
                    found.append(values)
        return rows, found

    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._cache is None:
            rows, found = self._evaluations()
            if rows:
                direction = {name: task.higher_is_better for name, task in TASKS.items()}
                table, verdicts = summarize_sets(
                    rows, found, direction, n_boot=self.study.ablation.n_boot,
                    seed=self.study.ablation.seed,
                )  # fmt: skip
            else:
                table, verdicts = pd.DataFrame(columns=COLUMNS), pd.DataFrame()
            brain, brain_verdicts = self._brain()
            table = pd.concat([table.reindex(columns=COLUMNS), brain], ignore_index=True)
            numeric = ["fraction", "seed", "value", "change_pct", "change_low", "change_high",
                       "p_vs_intact", "p_vs_selected", "n_units", "n_high_magnitude"]  # fmt: skip
            table[numeric] = table[numeric].astype(float)
            verdicts = pd.concat([verdicts, brain_verdicts], ignore_index=True)
            self._cache = (table, verdicts)
        return self._cache

    def _brain(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        tables, verdicts = [], []
        for job in self.plan:
            if job.kind != "brain" or not finished(job, self.out):
                continue
            folder = job.folder(self.out)
            table = pd.read_csv(folder / "alignment.csv")
            network = self.study.network(str(job.network))
            revision = next(m.revision for m in self.study.models if m.label == job.model)
            own = network.own_selection()
            band = own.get("band")
            tables.append(
                table.assign(
                    model=job.model,
                    revision=revision,
                    network=job.network,
                    site=network.site,
                    fraction=own["top"] if band is None else round(band[1] - band[0], 12),
                    band=None if band is None else band_label(band),
                    method=None,
                    task=f"brain:{job.data}",
                    metric="r",
                    value=table["r"],
                    n_high_magnitude=np.nan,
                )
            )
            found = pd.read_csv(folder / "verdicts.csv")
            verdicts.append(found.assign(model=job.model, network=job.network,
                                         task=f"brain:{job.data}"))  # fmt: skip
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)
        return table.reindex(columns=COLUMNS), (
            pd.concat(verdicts, ignore_index=True) if verdicts else pd.DataFrame()
        )

    def frame(self) -> pd.DataFrame:
        """One tidy table across everything (see the module docstring): one row per model,
        network, fraction, unit set, task; brain rows carry ``r`` per set."""
        return self._tables()[0]

    def verdicts(self) -> pd.DataFrame:
        """The selected set against each control family, per model, network, task and
        fraction (and per brain dataset)."""
        return self._tables()[1]

    def headline(self) -> pd.DataFrame:
        """Per model, network and task: the effect of ablating the selected units, its
        difference from each control kind, and whether it holds (``specific`` against every
        control kind)."""
        verdicts = self.verdicts()
        if verdicts.empty:
            return pd.DataFrame()
        ablation = verdicts[~verdicts["task"].astype(str).str.startswith("brain:")]
        if "band" in ablation.columns and ablation["band"].isna().any():
            ablation = ablation[ablation["band"].isna()]  # the top sets, not the bands
        if ablation.empty:
            return pd.DataFrame()
        top = ablation.groupby(["model", "network"])["fraction"].transform("max")
        ablation = ablation[ablation["fraction"] == top]
        wide = ablation.pivot_table(
            index=["model", "network", "task", "selected_change_pct"], columns="match",
            values="difference_pct", aggfunc="first",
        ).add_prefix("vs ").reset_index()  # fmt: skip
        holds = ablation.groupby(["model", "network", "task"])["verdict"].agg(
            lambda v: "holds" if (v == "specific").all() else "does not hold"
        )
        return wide.merge(holds.rename("effect").reset_index(), on=["model", "network", "task"])

    # -- files and figures -------------------------------------------------------------------
    def write_tables(self) -> None:
        """``results.csv``, ``verdicts.csv`` and ``failures.csv`` in the study folder."""
        self.frame().to_csv(self.out / "results.csv", index=False)
        self.verdicts().to_csv(self.out / "verdicts.csv", index=False)
        self.failures().to_csv(self.out / "failures.csv", index=False)

    def figures(self) -> dict[str, Any]:
        """The paper's figures (seaborn): name -> matplotlib Figure."""
        from . import figures

        return figures.all_figures(self)

    def save_figures(self, folder: str | Path | None = None) -> list[Path]:
        import matplotlib.pyplot as plt

        folder = Path(folder) if folder is not None else self.out / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, fig in self.figures().items():
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
        return paths

    def localization(self, model: str, network: str) -> Any:
        """A model's localization of a network, as a :class:`Localization`."""
        from ..localize import Localization

        return Localization.load(self.out / "jobs" / model / f"localize-{network}")


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _alive(state: dict[str, Any]) -> bool:
    alive = process_alive(state.get("host"), state.get("pid"))
    return True if alive is None else alive


def study_status(out: str | Path) -> pd.DataFrame:
    """Every job of the study in ``out`` with its status."""
    found = _read_json(Path(out) / "study.json")
    if not isinstance(found, dict):
        raise LocalizeError(f"{out} holds no study.json: not a study folder.")
    return StudyResult(out).status()
