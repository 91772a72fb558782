"""Running one model's jobs: the model is loaded once and everything its jobs share (the
tasks' items, the localizations, reference means, brain features, attributions) is kept in
memory for the next job. The local executor runs a :class:`ModelRunner` in the calling
process; the Ray executor runs one inside each model's actor."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import torch

from ..ablation import ablation_hooks, plan_controls, resample_pool, unit_means
from ..attribution import unit_attribution
from ..brain import BrainData, brain_alignment, sentence_features
from ..compare import evaluate_set, selected_units
from ..contrast import BUILTINS, Contrast
from ..errors import LocalizeError
from ..join import join, join_summary
from ..localize import Localization, localize
from ..models import load_model, model_signature
from ..results import atomic_folder, now, versions, write_record
from ..tasks import PreparedTask, read_texts
from ..units import Units
from .plan import Job, contrast_of, finished, prepared_tasks
from .spec import Study

__all__ = ["ModelRunner", "finished"]


class ModelRunner:
    """Loads one model of a study (once) and runs its jobs, writing each job's folder."""

    def __init__(
        self,
        study: Study,
        label: str,
        out: str | Path,
        jobs: list[Job],
        *,
        threads: int | None = None,
    ):
        self.study = study
        self.spec = next(m for m in study.models if m.label == label)
        self.out = Path(out)
        self.jobs = [j for j in jobs if j.model == label]  # the model's whole plan
        self.model: Any = None
        self.loads = 0
        if threads is not None:
            torch.set_num_threads(threads)
        self._tasks: dict[str, PreparedTask] | None = None
        self._locs: dict[str, Localization] = {}
        self._sets: dict[tuple[str, float, Any], dict[tuple[Any, ...], Units]] = {}
        self._means: dict[str, torch.Tensor] = {}
        self._pools: dict[str, Any] = {}
        self._data: dict[str, BrainData] = {}
        self._features: dict[tuple[str, str, str], torch.Tensor] = {}
        self._attributions: dict[tuple[str, str], Any] = {}

    # -- the model and what jobs share ---------------------------------------------------
    def load(self) -> dict[str, Any]:
        """Load the model (once); returns its signature."""
        if self.model is None:
            spec = self.spec
            twin: dict[str, Any] = {"untrained": True, "seed": spec.seed or 0}
            self.model = load_model(
                spec.spec, revision=spec.revision, dtype=spec.dtype, device=spec.device,
                device_map=spec.device_map, max_memory=spec.max_memory,
                **(twin if spec.untrained else {}),
            )  # fmt: skip
            self.loads += 1
        return model_signature(self.model)

    def tasks(self) -> dict[str, PreparedTask]:
        if self._tasks is None:
            self._tasks = prepared_tasks(self.study)
        return self._tasks

    def localization(self, network: str) -> Localization:
        if network not in self._locs:
            job_folder = self.out / "jobs" / self.spec.label / f"localize-{network}"
            if not (job_folder / "record.json").is_file():
                raise LocalizeError(
                    f"the localization of network {network!r} has no result (its job failed "
                    "or has not run); it is needed first."
                )
            self._locs[network] = Localization.load(job_folder, self.model)
        return self._locs[network]

    def units(self, job: Job) -> Units | None:
        """The unit set ``job`` ablates (None: intact), from the same plan of controls as
        :func:`~tl_localize.compare.compare_ablation` (:func:`plan_controls`)."""
        if job.set == "intact":
            return None
        assert job.network is not None and job.fraction is not None
        key = (job.network, job.fraction, job.band)
        if key not in self._sets:
            loc = self.localization(job.network)
            selected = selected_units(loc, job.fraction, job.band)
            plan = plan_controls(
                {job.fraction: selected}, match=self.study.ablation.match,
                n_random=self.study.ablation.n_random, magnitude=loc.stats["magnitude"],
            )  # fmt: skip
            self._sets[key] = {(p.set, p.match, p.seed): p.units for p in plan}
        return self._sets[key][(job.set, job.match, job.seed)]

    def reference_texts(self) -> list[str]:
        reference = self.study.ablation.reference or "language"
        if reference in BUILTINS:
            contrast = Contrast.builtin(reference)
            return [t for texts in contrast.conditions.values() for t in texts]
        return read_texts(reference)

    def hooks(self, job: Job, units: Units | None) -> list[Any]:
        if units is None:
            return []
        method = self.study.ablation.method
        means, pool = None, None
        if method == "mean":
            if units.site not in self._means:
                self._means[units.site] = unit_means(
                    self.model, self.reference_texts(), site=units.site, progress=False
                )
            means = self._means[units.site]
        elif method == "resample":
            assert job.network is not None
            if job.network not in self._pools:  # every set of the network in one pass
                sets = [
                    self.units(other)
                    for other in self.network_jobs(job.network)
                    if other.kind == "evaluate"
                ]
                self._pools[job.network] = resample_pool(
                    self.model, self.reference_texts(), [s for s in sets if s is not None],
                    progress=False,
                )  # fmt: skip
            pool = self._pools[job.network]
        return ablation_hooks(
            units, method=method, means=means, pool=pool, seed=self.study.ablation.seed
        )

    def network_jobs(self, network: str) -> list[Job]:
        return [j for j in self.jobs if j.network == network]

    # -- jobs ------------------------------------------------------------------------------
    def run(self, job: Job) -> dict[str, Any]:
        """Run ``job`` and write its folder; never raises: a failure is returned as
        ``{"status": "failed", "error": ..., "traceback": ...}``."""
        start = time.perf_counter()
        try:
            self.load()
            info = getattr(self, f"_run_{job.kind}")(job)
        except Exception as error:  # a failed job is recorded and the study goes on
            return {
                "status": "failed",
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
                "seconds": time.perf_counter() - start,
                "loads": self.loads,
            }
        return {"status": "done", "seconds": time.perf_counter() - start, "loads": self.loads,
                **info}  # fmt: skip

    def _record(self, job: Job, **extra: Any) -> dict[str, Any]:
        return {
            "created": now(),
            "study": self.study.name,
            "study_job": {**job.to_dict(), "id": job.id},
            "model": model_signature(self.model),
            "revision": self.spec.revision,
            "versions": versions(),
            **extra,
        }

    def _run_localize(self, job: Job) -> dict[str, Any]:
        assert job.network is not None
        network = self.study.network(job.network)
        loc = localize(
            self.model, contrast_of(network), site=network.site, pooling=network.pooling,
            preset=network.preset, batch_size=self.study.batch_size, progress=False,
            **network.own_selection(),
        )  # fmt: skip
        loc.record["study_job"] = self._record(job)["study_job"]
        loc.record["study"] = self.study.name
        loc.save(job.folder(self.out), force=True)
        self._locs.pop(job.network, None)
        self._sets = {k: v for k, v in self._sets.items() if k[0] != job.network}
        return {"n_units": len(loc.units)}

    def _run_evaluate(self, job: Job) -> dict[str, Any]:
        assert job.task is not None
        task = self.tasks()[job.task]
        units = self.units(job)
        magnitude = None
        if units is not None:
            assert job.network is not None
            magnitude = self.localization(job.network).stats["magnitude"]
        found = evaluate_set(
            self.model, task, units, hooks=self.hooks(job, units), magnitude=magnitude,
            batch_size=self.study.ablation.batch_size,
        )  # fmt: skip
        with atomic_folder(job.folder(self.out), force=True) as tmp:
            found.items.to_csv(tmp / "items.csv", index=False)
            if units is not None:
                units.save(tmp / "units.safetensors")
            record = self._record(
                job, task=job.task, metric=task.task.metric, column=task.task.column,
                value=found.value, n_items=len(found.items), n_units=len(units) if units else 0,
                n_high_magnitude=found.n_high_magnitude, method=self.study.ablation.method,
                site=units.site if units is not None else None,
            )  # fmt: skip
            write_record(tmp, record, "study evaluation")
        return {"value": found.value}

    def _run_brain(self, job: Job) -> dict[str, Any]:
        assert self.study.brain is not None and job.network is not None and job.data is not None
        brain = self.study.brain
        spec = next(d for d in brain.data if d.name == job.data)
        name = str(spec.name)
        if name not in self._data:
            self._data[name] = BrainData.from_csv(
                spec.path, sentence=spec.sentence, responses=spec.responses, groups=spec.groups,
                name=spec.name,
            )  # fmt: skip
        data = self._data[name]
        loc = self.localization(job.network)
        pooling = str(loc.record["contrast"]["pooling"])
        key = (name, loc.units.site, pooling)
        if key not in self._features:
            self._features[key] = sentence_features(
                self.model,
                data.sentences,
                site=loc.units.site,
                pooling=pooling,
                batch_size=brain.batch_size,
                progress=False,
            )
        result = brain_alignment(
            self.model, loc, data, **brain.settings(), features=self._features[key],
            progress=False,
        )  # fmt: skip
        result.record.update(self._record(job))
        result.save(job.folder(self.out), force=True)
        return {"value": float(result.table["r"].iloc[0])}

    def _run_attribution(self, job: Job) -> dict[str, Any]:
        assert self.study.attribution is not None and job.network is not None
        assert job.task is not None
        loc = self.localization(job.network)
        key = (loc.units.site, job.task)
        if key not in self._attributions:
            options = self.study.tasks.get(job.task, {})
            spec = self.study.attribution
            self._attributions[key] = unit_attribution(
                self.model, loc.units.site, job.task, n_items=spec.n_items,
                unaligned=spec.unaligned, batch_size=spec.batch_size, seed=spec.seed,
                blimp=options.get("blimp"), progress=False,
            )  # fmt: skip
        att = self._attributions[key]
        frame = join(loc, att)
        summary = join_summary(frame)
        with atomic_folder(job.folder(self.out), force=True) as tmp:
            att.write(tmp)
            frame.to_csv(tmp / "join.csv", index=False)
            summary.to_csv(tmp / "summary.csv", index=False)
            write_record(tmp, {**att.record, **self._record(job)}, "attribution")
        return {"value": float(summary["spearman"].iloc[0])}
