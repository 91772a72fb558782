"""The executors: run the models' jobs locally (one model after another, in this process)
or on Ray (one actor per model, several models at once), in the order and with the shares
the scheduler (:mod:`~tl_localize.study.scheduler`) gives. Each executor calls ``start``
when a model starts and ``report`` with each job's result; the runner records them.

The worker (and with it torch, transformers and TransformerLens) is imported only where a
model loads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LocalizeError
from .plan import Job
from .resources import model_gpus
from .scheduler import Schedule
from .spec import Study

if TYPE_CHECKING:
    from .worker import ModelRunner

__all__ = ["RAY_INSTALL", "Report", "ray_session", "run_local", "run_ray", "warm_actor"]

RAY_INSTALL = "pip install 'tl_localize[ray]'"

Report = Callable[[Job, dict[str, Any]], None]


def _worker_id() -> str:
    """Where a model is held: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_local(study: Study, out: Path, todo: Mapping[str, Sequence[Job]], plan: list[Job],
              report: Report, start: Callable[[str], None],
              workers: dict[str, str]) -> dict[str, int]:  # fmt: skip
    """Each model of ``todo`` in turn in this process: loaded once, its jobs run in order;
    returns the loads per model."""
    if not todo:  # nothing to run: no model code to import
        return {}
    from .worker import ModelRunner

    loads = {}
    for label, jobs in todo.items():
        start(label)
        workers[label] = _worker_id()
        runner = ModelRunner(study, label, out, plan)
        try:
            runner.load()
        except Exception as error:  # an unloadable model fails its jobs; the others go on
            failure = _load_failure(error)
            for job in jobs:
                report(job, failure)
            loads[label] = runner.loads
            continue
        for job in jobs:
            report(job, runner.run(job))
        loads[label] = runner.loads
        del runner  # frees the model before the next one loads
    return loads


def _load_failure(error: BaseException) -> dict[str, Any]:
    import traceback

    return {
        "status": "failed",
        "error": f"the model could not be loaded: {type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
        "stage": "load",
    }


class _RayWorker:
    """A Ray actor that holds one model at a time: a :class:`ModelRunner`, so the model loads
    once and serves all its jobs. When its model is done the actor may take another model
    that needs the same resources (one process start and one import of torch, transformers
    and TransformerLens fewer); the finished model is released first."""

    def __init__(self, study: dict[str, Any], out: str, plan: list[dict], threads: int) -> None:
        self.study = Study.from_dict(study)
        self.out = out
        self.plan = [Job.from_dict(j) for j in plan]
        self.threads = threads
        self.runner: ModelRunner | None = None

    def load(self, label: str) -> dict[str, Any]:
        import gc

        from .worker import ModelRunner

        self.runner = None  # the previous model, if any, is freed before the next loads
        gc.collect()
        self.runner = ModelRunner(self.study, label, self.out, self.plan, threads=self.threads)
        try:
            self.runner.load()
        except Exception as error:  # reported to the driver, which records it
            return {**_load_failure(error), "worker": _worker_id()}
        return {"status": "loaded", "loads": self.runner.loads, "worker": _worker_id()}

    def run(self, job: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
        import torch

        assert self.runner is not None, "load() comes first"
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)  # this model's share of the CPUs now
        return self.runner.run(Job.from_dict(job))


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[Any]:
    """Ray, connected to the cluster at ``address`` or to a local instance of ``num_cpus``
    started here (and stopped after)."""
    try:
        import ray
    except ImportError:
        raise LocalizeError(
            f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}"
        ) from None
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise LocalizeError(
                f"Could not reach the Ray cluster at {address!r} ({error}). Check the address "
                "(`ray status` on a node of the cluster), or drop --address to start a local "
                "Ray instance."
            ) from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _study_dict(study: Study) -> dict[str, Any]:
    """The spec as Study.from_dict reads it back (paths are absolute already)."""
    data = study.to_dict()
    for key in ("brain", "attribution"):
        if data[key] is None:
            del data[key]
    return data


def _new_actor(ray: Any, study: Study, out: Path, plan: list[Job], *, gpus: float,
               threads: int) -> Any:  # fmt: skip
    actor_class = ray.remote(num_cpus=threads, num_gpus=gpus)(_RayWorker)
    return actor_class.remote(_study_dict(study), str(out), [j.to_dict() for j in plan],
                              threads)  # fmt: skip


def warm_actor(ray: Any, study: Study, out: Path, plan: list[Job],
                todo: dict[str, list[Job]]) -> tuple[float, Any]:  # fmt: skip
    """An actor started ahead of its model (its process start and imports overlap the
    driver's remaining checks); it reserves one CPU and has the GPU needs of the first
    model in the spec (an actor whose needs match no model is released unused)."""
    gpus = model_gpus(next(m for m in study.models if m.label in todo))
    return gpus, _new_actor(ray, study, out, plan, gpus=gpus, threads=1)


def run_ray(ray: Any, study: Study, out: Path, plan: list[Job], todo: Schedule,
            report: Report, start: Callable[[str], None], workers: dict[str, str],
            warm: tuple[float, Any] | None = None) -> dict[str, int]:  # fmt: skip
    """The models of the schedule ``todo`` on Ray: each held by one actor that runs its jobs
    one at a time; models start in the schedule's order as it allows
    (:meth:`Schedule.start`), each job runs with the model's thread share
    (:meth:`Schedule.threads_of`), and an actor whose model is done takes the next model
    that needs the same GPUs (``warm``: an actor started ahead, with no model yet). Returns
    the loads per model."""
    waiting = list(todo.order)
    running: dict[Any, tuple[str, Job | None, Any]] = {}  # ref -> (label, job, actor)
    queued: dict[str, list[Job]] = {}  # each actor runs one job at a time
    idle: list[tuple[float, Any]] = [warm] if warm else []  # (gpus, actor) with no model
    gpus_of: dict[str, float] = {}
    loads: dict[str, int] = {}

    def launch(label: str) -> None:
        gpus = model_gpus(next(m for m in study.models if m.label == label))
        reuse = next((pair for pair in idle if pair[0] == gpus), None)
        if reuse is not None:
            idle.remove(reuse)
            actor = reuse[1]
        else:
            actor = _new_actor(ray, study, out, plan, gpus=gpus, threads=todo.threads)
        gpus_of[label] = gpus
        start(label)
        running[actor.load.remote(label)] = (label, None, actor)
        queued[label] = list(todo.jobs[label])

    def submit(label: str, actor: Any) -> None:
        job = queued[label].pop(0)
        share = todo.threads_of(label, list(queued))
        running[actor.run.remote(job.to_dict(), share)] = (label, job, actor)

    while waiting or running:
        for label in todo.start(waiting, list(queued)):
            waiting.remove(label)
            launch(label)
        while idle:  # not reusable by what is left: its reserved CPUs/GPUs go back
            ray.kill(idle.pop()[1])
        ready, _ = ray.wait(list(running), num_returns=1)
        label, job, actor = running.pop(ready[0])
        lost = False
        try:
            result = ray.get(ready[0])
        except Exception as error:  # a lost worker: its job is recorded as failed
            lost = True
            result = {"status": "failed", "error": f"the worker was lost: {error}",
                      "traceback": repr(error)}  # fmt: skip
        if job is None:
            loads[label] = int(result.get("loads", 0))
            workers[label] = str(result.get("worker"))
            if result.get("status") == "failed":  # unloadable: its jobs fail, as locally
                for failed in queued[label]:
                    report(failed, result)
                queued[label] = []
        else:
            loads[label] = max(loads.get(label, 0), int(result.get("loads", 0)))
            report(job, result)
        if queued[label]:
            submit(label, actor)
        else:
            del queued[label]
            if waiting and not lost:
                idle.append((gpus_of[label], actor))
            else:
                ray.kill(actor)
    return loads
