"""A study's results: one tidy table across models, networks, tasks and unit sets, the
verdicts (p-values adjusted over all the study's comparisons), the headline, the
double-dissociation table, the paper's figures, job status and failures; all read from the
study folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LocalizeError
from ..options import BLOCKED, HURTS, NO_EFFECT
from ..results import (
    atomic_folder,
    check_kind,
    check_same_model,
    now,
    process_alive,
    read_record,
    versions,
    write_record,
)
from ..tasks import TASKS
from .folder import StudyFolder
from .folder import read_json as _read_json
from .folder import write_json as _write_json
from .lineage import STABLE_JACCARD, _step, unit_lineage
from .plan import Job, band_label, finished
from .spec import Study

__all__ = [
    "StudyResult",
    "dissociation_table",
    "double_dissociations",
    "headline_table",
    "study_status",
]

KIND = "study"  # the kind its record.json carries
TABLES_KEY = "tables.json"  # the key of the tables last written (StudyResult.tables_key)

COLUMNS = [
    "model", "revision", "untrained", "network", "site", "fraction", "band", "method", "set",
    "match", "seed", "task", "metric", "value", "value_low", "value_high", "chance",
    "change_pct", "change_low", "change_high", "p_vs_intact", "p_vs_selected", "n_units",
    "n_high_magnitude",
]  # fmt: skip


class StudyResult:
    """The results of a study folder (see :func:`tl_localize.study.run_study`).

    ``frame()`` is the whole table (also ``results.csv``), ``verdicts()`` the selected sets
    against each control family (``verdicts.csv``; p-values adjusted over all the study's
    comparisons), ``headline()`` the finding per model, network and task,
    ``dissociation()`` the network x task table, ``status()`` every job's state,
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
    def _evaluations(self) -> tuple[list[dict[str, Any]], list[np.ndarray], dict[str, float]]:
        rows, found, chance = [], [], {}
        by_model: dict[str, list[Job]] = {}
        for job in self.plan:
            if job.kind == "evaluate" and finished(job, self.out):
                by_model.setdefault(job.model, []).append(job)
        revisions = {m.label: m.revision for m in self.study.models}
        untrained = {m.label: m.untrained for m in self.study.models}
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
                    if job.set == "intact" and task in TASKS:
                        chance[str(task)] = TASKS[str(task)].chance_of(items)
                    network = self.study.network(job.network) if job.network else None
                    rows.append(
                        {"model": model, "revision": revisions.get(model),
                         "untrained": untrained.get(model), "network": job.network,
                         "site": network.site if network else None,
                         "fraction": job.fraction if job.fraction is not None else 0.0,
                         "band": band_label(job.band) if job.band is not None else None,
                         "method": self.study.ablation.method, "set": job.set,
                         "match": job.match, "seed": job.seed, "task": task,
                         "metric": record["metric"], "n_units": record["n_units"],
                         "n_high_magnitude": record["n_high_magnitude"]}
                    )  # fmt: skip
                    found.append(values)
        return rows, found, chance

    def _tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._cache is None:
            rows, found, chance = self._evaluations()
            if rows:
                from ..compare import summarize_sets  # with torch: only when there are rows

                direction = {name: task.higher_is_better for name, task in TASKS.items()}
                table, verdicts = summarize_sets(
                    rows, found, direction, n_boot=self.study.ablation.n_boot,
                    seed=self.study.ablation.seed, chance=chance, adjust="none",
                )  # fmt: skip
            else:
                table, verdicts = pd.DataFrame(columns=COLUMNS), pd.DataFrame()
            brain, brain_verdicts = self._brain()
            table = pd.concat([table.reindex(columns=COLUMNS), brain], ignore_index=True)
            numeric = ["fraction", "seed", "value", "value_low", "value_high", "chance",
                       "change_pct", "change_low", "change_high", "p_vs_intact", "p_vs_selected",
                       "n_units", "n_high_magnitude"]  # fmt: skip
            table[numeric] = table[numeric].astype(float)
            verdicts = pd.concat([verdicts, brain_verdicts], ignore_index=True)
            if not verdicts.empty:  # one family: every comparison of the study
                from ..compare import adjust_verdicts

                verdicts = adjust_verdicts(verdicts, self.study.adjust)
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
            spec = next(m for m in self.study.models if m.label == job.model)
            own = network.own_selection()
            band = own.get("band")
            tables.append(
                table.assign(
                    model=job.model,
                    revision=spec.revision,
                    untrained=spec.untrained,
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
        fraction (and per brain dataset); ``p_adjusted`` adjusts every tested comparison
        together as one family (the study's ``adjust``), and the verdicts rest on it."""
        return self._tables()[1]

    def headline(self) -> pd.DataFrame:
        """Per model, network and task (:func:`headline_table`): the effect of ablating the
        selected units, its difference from each control kind, the adjusted p and whether
        the effect holds; ``at chance`` or ``at ceiling`` instead of an effect where the
        intact model leaves nothing to measure; the number of comparisons and the
        adjustment."""
        wide = headline_table(self._top_sets(self.verdicts()), self.study.adjust)
        if not wide.empty:
            untrained = {m.label: m.untrained for m in self.study.models}
            wide.insert(1, "untrained", wide["model"].map(untrained))  # twins side by side
        return wide

    def dissociation(self) -> pd.DataFrame:
        """The double-dissociation table (:func:`dissociation_table`): per model, network
        ablated and task, whether the ablation hurts the task beyond its controls."""
        return dissociation_table(self._top_sets(self.verdicts()))

    def double_dissociations(self) -> pd.DataFrame:
        """The double dissociations the table shows (:func:`double_dissociations`)."""
        return double_dissociations(self.dissociation())

    @staticmethod
    def _top_sets(verdicts: pd.DataFrame) -> pd.DataFrame:
        """The verdicts of the top sets, where a study also ablates bands of the ranking
        (the bands stay in :meth:`verdicts`)."""
        if "band" in verdicts.columns and verdicts["band"].isna().any():
            return verdicts[verdicts["band"].isna()]
        return verdicts

    # -- files and figures -------------------------------------------------------------------
    def tables_key(self) -> str:
        """A key for what the tables are made from: the spec, and each job's key, status
        and the time of its last state (a job that ran again changes it)."""
        jobs = []
        for job in self.plan:
            state = self.folder.state(job) or {}
            jobs.append([job.id, job.key, finished(job, self.out), state.get("status"),
                         state.get("time"), state.get("error")])  # fmt: skip
        text = json.dumps([self.study.to_dict(), jobs], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def write_tables(self) -> bool:
        """``results.csv``, ``verdicts.csv``, ``failures.csv`` and ``record.json``
        (:meth:`write_record`) in the study folder (and ``lineage.csv`` and
        ``lineage_effects.csv`` for a study over checkpoints); tables
        made from the same jobs and spec (:meth:`tables_key`, kept in ``tables.json``) are
        left as they are. Returns whether they were written."""
        key = self.tables_key()
        names = ("results.csv", "verdicts.csv", "failures.csv", "record.json")
        if _read_json(self.out / TABLES_KEY) == {"key": key} and all(
            (self.out / name).is_file() for name in names
        ):
            return False
        self.frame().to_csv(self.out / "results.csv", index=False)
        self.verdicts().to_csv(self.out / "verdicts.csv", index=False)
        self.failures().to_csv(self.out / "failures.csv", index=False)
        if self.lineages():
            self.lineage().to_csv(self.out / "lineage.csv", index=False)
            self.lineage_effects().to_csv(self.out / "lineage_effects.csv", index=False)
        self.write_record()
        _write_json(self.out / TABLES_KEY, {"key": key})
        return True

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

    # -- the result protocol -------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """The whole table (:meth:`frame`)."""
        return self.frame()

    def summary(self) -> str:
        """The study in words: its jobs, and per model, network and task of the headline
        whether the effect of ablating the network holds against every control kind, with
        the change and the adjusted p (or that the task is at chance or at ceiling)."""
        counts = self.status()["status"].value_counts().to_dict()
        jobs = ", ".join(f"{n} {state}" for state, n in counts.items())
        text = f"The study {self.study.name!r} has {len(self.plan)} jobs ({jobs})."
        headline = self.headline()
        if headline.empty:
            return text + " No ablation verdict yet (no finished evaluation)."
        findings = []
        for row in headline.to_dict("records"):
            found = f"{row['model']}, {row['network']} units on {row['task']}: {row['effect']}"
            if row["effect"] not in BLOCKED:
                found += (
                    f" ({row['selected_change_pct']:+.1f}% vs intact, adjusted p "
                    f"{row['p_adjusted']:.2g})"
                )
            findings.append(found)
        adjust = f" after {self.study.adjust} adjustment" if self.study.adjust != "none" else ""
        return (
            f"{text} Against every control kind{adjust} over the study's "
            f"{int(headline['n_comparisons'].iloc[0])} comparisons: " + "; ".join(findings) + "."
        )

    def plot(self) -> Any:
        """The study's first figure (the ablation figure when there is one); every figure is
        in :meth:`figures`."""
        figures = self.figures()
        if not figures:
            raise LocalizeError(
                f"{self.out}: no job has finished, so there is no figure yet; run the study "
                "(tl-localize study run) first."
            )
        return figures.get("ablation", next(iter(figures.values())))

    def _repr_html_(self) -> str:
        """The card: the study's name, models, networks, tasks, jobs, the headline table and
        the summary."""
        from ..cards import card, frame_html

        counts = self.status()["status"].value_counts().to_dict()
        facts = {
            "study": self.study.name,
            "models": ", ".join(m.label for m in self.study.models),
            "networks": ", ".join(n.name for n in self.study.networks),
            "tasks": ", ".join(self.study.tasks),
            "jobs": ", ".join(f"{n} {state}" for state, n in counts.items()),
            "folder": str(self.out),
        }
        headline = self.headline()
        return card(
            "Study", facts, frame_html(headline) if not headline.empty else "", self.summary()
        )

    def model_signatures(self) -> dict[str, Any]:
        """Each model's signature (name, shapes, weights' fingerprint), read from its
        finished localizations' records: label -> signature."""
        found: dict[str, Any] = {}
        for job in self.plan:
            if job.kind == "localize" and job.model not in found and finished(job, self.out):
                signature = read_record(job.folder(self.out)).get("model")
                if isinstance(signature, dict):
                    found[job.model] = signature
        return found

    def write_record(self) -> Path:
        """``record.json`` in the study folder: kind ``study``, the spec as ``config``, the
        models' signatures, the summary and the package versions."""
        record = {
            "created": now(),
            "config": self.study.to_dict(),
            "models": self.model_signatures(),
            "summary": self.summary(),
            "versions": versions(),
        }
        return write_record(self.out, record, KIND)

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Copy the study folder (spec, plan, job states and every job's results) to
        ``folder``, atomically, with its tables and ``record.json``; the copy loads with
        :meth:`load` and reads as the original. An existing ``folder`` is replaced only with
        ``force=True`` (:func:`tl_localize.results.atomic_folder`)."""
        import shutil

        with atomic_folder(folder, force=force) as tmp:
            for entry in sorted(self.out.iterdir()):
                if entry.name.startswith(".") or entry.name in ("record.json", "report.html"):
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, tmp / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, tmp / entry.name)
            copy = StudyResult(tmp)
            copy.write_tables()
            copy.write_record()
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, model: Any = None) -> StudyResult:
        """The study in ``folder`` (a study folder, or a copy :meth:`save` wrote); a
        ``record.json`` there must be a study's. With ``model``, refuse a study that holds
        no model of that signature."""
        folder = Path(folder)
        if (folder / "record.json").is_file():
            check_kind(folder, read_record(folder, "a study folder"), KIND)
        if not (folder / "study.json").is_file():
            raise LocalizeError(
                f"{folder} holds no study.json: not a study folder. Run a study into it "
                "(tl-localize study run SPEC --out FOLDER), or name the study's folder."
            )
        result = cls(folder)
        if model is not None:
            from ..models import model_signature

            current = model_signature(model)
            signatures = result.model_signatures()
            for signature in signatures.values():
                try:
                    check_same_model(folder, signature, current)
                    return result
                except LocalizeError:
                    continue
            raise LocalizeError(
                f"{folder}: the study holds no model with the signature of "
                f"{current['model']!r} (its models: {sorted(signatures) or 'none finished'}); "
                "load it without model=."
            )
        return result

    # -- checkpoints ---------------------------------------------------------------------------
    def lineages(self) -> dict[str, list[str]]:
        """The study's training runs: lineage -> its models' labels in spec order. A lineage
        is the ``lineage`` of its models (``revisions = [...]`` sets it), else the models
        sharing one ``spec`` at several revisions."""
        runs: dict[str, list[str]] = {}
        for m in self.study.models:
            key = m.lineage or (str(m.spec) if m.revision is not None else None)
            if key is not None and not m.untrained:
                runs.setdefault(key, []).append(m.label)
        return {key: labels for key, labels in runs.items() if len(labels) > 1}

    def lineage(self, threshold: float = STABLE_JACCARD) -> pd.DataFrame:
        """Per training run, network, fraction and checkpoint: the selected units per layer,
        their Jaccard index with the previous and with the final checkpoint, and the first
        checkpoint from which it stays at or above ``threshold`` with the final set
        (:func:`~tl_localize.study.lineage.unit_lineage`); also ``lineage.csv``."""
        from ..localize import select_top

        frames = []
        revision = {m.label: m.revision for m in self.study.models}
        for run, labels in self.lineages().items():
            for network in self.study.networks:
                folders = [self.out / "jobs" / label / f"localize-{network.name}"
                           for label in labels]  # fmt: skip
                done = [lb for lb, f in zip(labels, folders, strict=True)
                        if (f / "record.json").is_file()]  # fmt: skip
                if len(done) < 2:
                    continue
                locs = [self.localization(label, network.name) for label in done]
                names = [revision[label] or label for label in done]
                for fraction in network.top:
                    sets = [
                        loc.units.with_mask(select_top(loc.stats["t"], fraction,
                                                       loc.config.selection))
                        for loc in locs
                    ]  # fmt: skip
                    frame = unit_lineage(sets, names, threshold=threshold)
                    frame.insert(0, "model", done)
                    frame.insert(0, "fraction", fraction)
                    frame.insert(0, "network", network.name)
                    frame.insert(0, "lineage", run)
                    frames.append(frame)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def lineage_effects(self) -> pd.DataFrame:
        """The verdicts (ablation and brain) of every checkpoint of each training run, in
        training order, with ``lineage``, ``checkpoint`` and ``step`` columns; also
        ``lineage_effects.csv``."""
        verdicts = self.verdicts()
        rows = [
            {"model": label, "lineage": run, "checkpoint": self._revision(label) or label,
             "order": i}
            for run, labels in self.lineages().items()
            for i, label in enumerate(labels)
        ]  # fmt: skip
        if verdicts.empty or not rows:
            return pd.DataFrame()
        runs = pd.DataFrame(rows)
        runs["step"] = [_step(c) for c in runs["checkpoint"]]
        merged = runs.merge(verdicts, on="model")
        keys = [c for c in ("lineage", "network", "task", "fraction", "match") if c in merged]
        order = merged.sort_values([*keys, "order"], kind="stable").drop(columns="order")
        return order.reset_index(drop=True)

    def _revision(self, label: str) -> str | None:
        return next(m.revision for m in self.study.models if m.label == label)


def _ablation_at_top(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The ablation verdicts at each network's largest fraction."""
    if verdicts.empty or "task" not in verdicts.columns:
        return pd.DataFrame()
    ablation = verdicts[~verdicts["task"].astype(str).str.startswith("brain:")]
    if ablation.empty:
        return ablation
    top = ablation.groupby(["model", "network"])["fraction"].transform("max")
    return ablation[ablation["fraction"] == top]


def headline_table(verdicts: pd.DataFrame, adjust: str = "holm") -> pd.DataFrame:
    """The headline from a study's verdicts: one row per model, network and task, at the
    network's largest fraction: ``selected_change_pct``, ``vs MATCH`` (the difference from
    each control kind, in points), ``p_adjusted`` (the largest over the control kinds) and
    ``effect``: ``holds`` (``specific`` against every control kind after adjustment),
    ``does not hold``, or ``at chance`` / ``at ceiling``, for which the effect columns are
    left empty (the numbers stay in ``frame()`` and ``verdicts()``). ``n_comparisons`` and
    ``adjust`` say over how many comparisons (every tested verdict of the study, brain
    alignment included) and how the p-values were adjusted."""
    ablation = _ablation_at_top(verdicts)
    if ablation.empty:
        return pd.DataFrame()
    n = int(verdicts["p_adjusted"].notna().sum()) if "p_adjusted" in verdicts.columns else 0
    matches = [f"vs {m}" for m in dict.fromkeys(ablation["match"])]
    rows = []
    for (model, network, task), group in ablation.groupby(["model", "network", "task"]):
        blocked = group["verdict"][group["verdict"].isin(BLOCKED)]
        state = str(blocked.iloc[0]) if len(blocked) else None
        row: dict[str, Any] = {"model": model, "network": network, "task": task}
        row["selected_change_pct"] = (
            np.nan if state else float(group["selected_change_pct"].iloc[0])
        )
        for v in group.itertuples():
            row[f"vs {v.match}"] = np.nan if state else float(v.difference_pct)
        p = group["p_adjusted"] if "p_adjusted" in group.columns else group["p_value"]
        row["p_adjusted"] = np.nan if state else float(p.max())
        row["effect"] = state or (
            "holds" if (group["verdict"] == "specific").all() else "does not hold"
        )
        rows.append(row)
    frame = pd.DataFrame(rows).assign(n_comparisons=n, adjust=adjust)
    first = ["model", "network", "task", "selected_change_pct", *matches, "p_adjusted"]
    return frame[[*first, "effect", "n_comparisons", "adjust"]]


def dissociation_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The double-dissociation table: one row per model, network ablated and task (at the
    network's largest fraction): ``selected_change_pct``, the ``control`` kind with the
    weakest evidence (largest adjusted p) with its ``difference_pct`` and ``p_adjusted``,
    and ``verdict``: ``hurts`` (the selected set hurts the task beyond every control kind
    after adjustment), ``no specific effect``, ``at chance`` or ``at ceiling``. A network
    not ablated on a task has no row."""
    ablation = _ablation_at_top(verdicts)
    columns = ["model", "network", "task", "selected_change_pct", "control", "difference_pct",
               "p_adjusted", "verdict"]  # fmt: skip
    if ablation.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (model, network, task), group in ablation.groupby(["model", "network", "task"], sort=False):
        p = group["p_adjusted"] if "p_adjusted" in group.columns else group["p_value"]
        weakest = group.loc[p.fillna(np.inf).idxmax()]
        blocked = group["verdict"][group["verdict"].isin(BLOCKED)]
        if len(blocked):
            verdict = str(blocked.iloc[0])
        else:
            verdict = HURTS if (group["verdict"] == "specific").all() else NO_EFFECT
        rows.append(
            {"model": model, "network": network, "task": task,
             "selected_change_pct": float(group["selected_change_pct"].iloc[0]),
             "control": weakest["match"], "difference_pct": float(weakest["difference_pct"]),
             "p_adjusted": float(p.max()), "verdict": verdict}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def double_dissociations(cells: pd.DataFrame) -> pd.DataFrame:
    """The double dissociations in a :func:`dissociation_table`: per model, two networks
    A, B and two tasks X, Y where ablating A hurts X and ablating B hurts Y beyond their
    controls, while A shows no specific effect on Y nor B on X (all four cells tested and
    measurable: a task at chance or at ceiling dissociates nothing)."""
    columns = ["model", "network_a", "task_a", "network_b", "task_b"]
    rows = []
    for model, part in cells.groupby("model", sort=False):
        verdict = {(r.network, r.task): r.verdict for r in part.itertuples()}
        networks = list(dict.fromkeys(part["network"]))
        tasks = list(dict.fromkeys(part["task"]))
        for i, a in enumerate(networks):
            for b in networks[i + 1 :]:
                for x in tasks:
                    for y in tasks:
                        if x != y and (
                            verdict.get((a, x)) == HURTS == verdict.get((b, y))
                            and verdict.get((a, y)) == NO_EFFECT == verdict.get((b, x))
                        ):
                            rows.append({"model": model, "network_a": a, "task_a": x,
                                         "network_b": b, "task_b": y})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


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
