"""Running a study: resumable, with failures contained, locally or on Ray.

``run_study(study, out)`` plans the jobs, skips every job whose folder is complete with its
current key, and runs the rest model by model (each model loaded once per worker). Each job
writes its own atomic results folder, so a killed run (SIGINT, SIGKILL, a lost worker)
leaves nothing half-written that counts as done; the next run resumes. A model that cannot
load or a job that raises is recorded (model, job, error, traceback) in ``state/`` and the
failures table, and the other models go on; ``retry_failed=True`` reruns only those.

``run_study`` is a composition of the study's parts: the folder (:mod:`.folder`: spec,
plan, states, log; its layout is described there), the resources (:mod:`.resources`: memory
estimates, CPU shares), the scheduler (:mod:`.scheduler`: which jobs run, in what order,
how many models at once) and the executors (:mod:`.executors`: local and Ray).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LocalizeError
from .executors import RAY_INSTALL, ray_session, run_local, run_ray, warm_actor
from .folder import StudyFolder, check_folder
from .plan import Job, finished, model_key, plan_study
from .resources import estimate_memory, gib
from .scheduler import Resources, order_jobs, pending_jobs, schedule
from .spec import Study

if TYPE_CHECKING:
    from .results import StudyResult

# The worker (and with it torch, transformers and TransformerLens) is imported only where a
# model loads: planning, resuming and reading a study need none of them.

__all__ = ["EXECUTORS", "estimate_memory", "run_study"]

EXECUTORS = ("local", "ray")


# -- run --------------------------------------------------------------------------------------
def run_study(
    study: Study | str | Path,
    out: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
    retry_failed: bool = False,
    force: bool = False,
    progress: bool = True,
) -> StudyResult:
    """Run (or resume) a study into the folder ``out``; returns a :class:`StudyResult`.

    Args:
        study: a :class:`Study` or the path of a study TOML file.
        executor: ``"local"`` (default: this process) or ``"ray"`` (one actor per model;
            a local Ray instance sized to the machine, or the cluster at ``address``:
            ``"auto"`` or ``"ray://host:port"``).
        max_parallel: models run at once on Ray (default: as many as there are CPUs).
        retry_failed: rerun only the jobs that failed before.
        force: run in a folder that holds another study, and load models whose memory
            estimate exceeds what the machine has.
    """
    from .results import StudyResult

    if executor not in EXECUTORS:
        raise LocalizeError(f"Unknown executor {executor!r}; use one of {EXECUTORS}.")
    if max_parallel is not None and (isinstance(max_parallel, bool) or max_parallel < 1):
        raise LocalizeError(f"max_parallel must be at least 1, got {max_parallel!r}.")
    if address is not None and executor != "ray":
        raise LocalizeError("address= is for executor='ray'.")
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise LocalizeError(
                f"executor='ray' needs Ray, which is not installed: {RAY_INSTALL}"
            ) from None
    if not isinstance(study, Study):
        study = Study.from_toml(study)
    out = Path(out).expanduser().resolve()
    check_folder(study, out, force=force)
    keys = {m.label: model_key(m) for m in study.models}
    plan = plan_study(study, model_keys=keys)  # reads and checks every stimulus and task file
    folder = StudyFolder(out)
    folder.write_plan(study, plan)
    states = {job.id: folder.state(job) for job in plan}
    done = {job.id for job in plan if finished(job, out)}
    pending, skipped = pending_jobs(plan, states, done, retry_failed=retry_failed)
    todo = {label: order_jobs(jobs) for label, jobs in pending.items()}
    use_ray = executor == "ray" and bool(todo)
    session = ray_session(address, os.cpu_count() or 1) if use_ray else contextlib.nullcontext()
    with session as ray_api:
        # on a local instance, the first actor's process starts (and imports torch,
        # transformers and TransformerLens) while the models' sizes are read here
        warm = warm_actor(ray_api, study, out, plan, todo) if use_ray and not address else None
        estimates = _check_memory(study, todo, folder, force=force, progress=progress)
        folder.log(
            "run", executor=executor, todo=sum(map(len, todo.values())), skipped=len(skipped)
        )
        record = _RunRecord(study.name, folder, todo, skipped, progress=progress)
        workers: dict[str, str] = {}  # host:pid that held each model
        try:
            if not use_ray:  # the local executor, or nothing to do
                loads = run_local(study, out, todo, plan, record.report, record.start, workers)
            else:
                resources = _ray_resources(ray_api, estimates, elastic=address is None,
                                           max_parallel=max_parallel)  # fmt: skip
                loads = run_ray(ray_api, study, out, plan, schedule(todo, resources), record.report,
                                record.start, workers, warm)  # fmt: skip
        finally:
            record.close()
    for label, n in loads.items():
        folder.log("loads", model=label, loads=n, worker=workers.get(label))
    result = StudyResult(out)
    result.run_counts = {**record.counts, "loads": loads, "workers": workers,
                         "seconds": time.perf_counter() - record.started}  # fmt: skip
    result.write_tables()
    return result


def _check_memory(study: Study, todo: dict[str, list[Job]], folder: StudyFolder, *,
                  force: bool, progress: bool) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each model's memory estimate (:func:`estimate_memory`), logged and printed; a model
    that cannot fit is refused unless forced."""
    estimates = {}
    for label in todo:
        spec = next(m for m in study.models if m.label == label)
        estimate = estimate_memory(spec, study.batch_size)
        estimates[label] = estimate
        folder.log("memory", **estimate)
        if progress:
            print(
                f"{label}: about {gib(estimate['needed_bytes'])} needed "
                f"({estimate['parameters'] or 'unknown'} parameters in {estimate['dtype']}), "
                f"{gib(estimate['available_bytes'])} available"
            )
        if estimate["fits"] is False and not force:
            raise LocalizeError(
                f"models[{label!r}] needs about {gib(estimate['needed_bytes'])} and the "
                f"machine has {gib(estimate['available_bytes'])} available: it cannot "
                "load. Use device_map='auto' (with max_memory) to offload it, a smaller "
                "dtype, or pass --force (force=True) to try anyway."
            )
    return estimates


def _ray_resources(ray: Any, estimates: dict[str, dict[str, Any]], *, elastic: bool,
                   max_parallel: int | None) -> Resources:  # fmt: skip
    """What Ray's models may use: the cluster's CPUs, the models' sizes, and on a local
    instance (``elastic``: the machine is the study's) the memory each pool has now."""
    cpus = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
    memory: dict[str, int] = {}
    pools: dict[str, str | None] = {}
    if elastic:
        for label, estimate in estimates.items():
            pools[label] = estimate.get("device")
            if pools[label] is not None and estimate["available_bytes"] is not None:
                memory.setdefault(str(pools[label]), int(estimate["available_bytes"]))
    return Resources(
        cpus=cpus,
        sizes={label: e["parameters"] for label, e in estimates.items()},
        needed={label: e["needed_bytes"] for label, e in estimates.items()},
        memory=memory,
        pools=pools,
        elastic=elastic,
        max_parallel=max_parallel,
    )


class _RunRecord:
    """What a run did, as it happens: each job's state and log line, the progress bar,
    and the jobs ran, failed and skipped (``counts``)."""

    def __init__(self, name: str, folder: StudyFolder, todo: dict[str, list[Job]],
                 skipped: list[Job], *, progress: bool) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        self.folder = folder
        self.todo = todo
        total = sum(len(jobs) for jobs in todo.values())
        self.bar = tqdm(total=total, desc=f"study {name}", unit="job",
                        disable=not progress or not total)  # fmt: skip
        self.done = {label: 0 for label in todo}
        self.counts: dict[str, Any] = {"ran": [], "failed": [], "skipped": [j.id for j in skipped]}
        self.started = time.perf_counter()

    def start(self, label: str) -> None:
        for job in self.todo[label]:
            self.folder.set_state(job, "running")

    def report(self, job: Job, result: dict[str, Any]) -> None:
        status = result.get("status")
        if status == "done":
            self.folder.set_state(job, "done", seconds=result.get("seconds"))
            self.counts["ran"].append(job.id)
        else:
            self.folder.set_state(
                job, "failed", error=result.get("error"), traceback=result.get("traceback"),
                seconds=result.get("seconds"),
            )  # fmt: skip
            self.counts["failed"].append(job.id)
        self.folder.log("job", job=job.id, status=status, seconds=result.get("seconds"),
                        error=result.get("error"))  # fmt: skip
        self.done[job.model] += 1
        self.bar.set_postfix({k: f"{v}/{len(self.todo[k])}" for k, v in self.done.items()})
        self.bar.update()

    def close(self) -> None:
        self.bar.close()
