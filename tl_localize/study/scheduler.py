"""The study's scheduler: which jobs run, in what order, how many models at once and with
how many threads each. Pure functions of the jobs, their states and the resources: no Ray,
no files, no model code, so tests hold every rule without a cluster (as Ray's and Dask's
schedulers are tested).

- :func:`pending_jobs`: which jobs run and which are skipped, from each job's state (done
  with its current key, failed, interrupted, missing);
- :func:`order_jobs`: a model's jobs with every job after the jobs it depends on;
- :func:`schedule`: the order models start in (largest first), how many run at once, the
  threads each gets; :meth:`Schedule.start` says which waiting models may start now (no
  more than ``parallel``, and on one machine only as many as fit in its memory together);
  :meth:`Schedule.threads` a running model's share of the CPUs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .plan import Job
from .resources import cpu_shares, thread_shares

__all__ = ["Resources", "Schedule", "order_jobs", "pending_jobs", "schedule"]


def pending_jobs(
    plan: Sequence[Job],
    states: Mapping[str, Mapping[str, Any] | None],
    done: Collection[str],
    *,
    retry_failed: bool = False,
) -> tuple[dict[str, list[Job]], list[Job]]:
    """The jobs to run, per model in plan order, and the jobs skipped.

    ``states`` holds each job's last state by job id (``status`` and the ``key`` it ran
    with; None or missing: never ran), ``done`` the ids of the jobs whose results folder is
    complete with their current key. A done job is skipped; with ``retry_failed`` only the
    jobs that failed run (whatever changed since); otherwise a job that failed with its
    current key is left alone (it failed for a reason) and every other job runs: missing,
    changed since it ran, failed with other settings, or interrupted (a state ``running``
    whose process is gone).
    """
    todo: dict[str, list[Job]] = {}
    skipped: list[Job] = []
    for job in plan:
        state = states.get(job.id) or {}
        failed = state.get("status") == "failed"
        if job.id in done:
            skipped.append(job)
        elif retry_failed:
            (todo.setdefault(job.model, []) if failed else skipped).append(job)
        elif failed and state.get("key") == job.key:
            skipped.append(job)
        else:
            todo.setdefault(job.model, []).append(job)
    return todo, skipped


def order_jobs(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` with each one after the jobs it depends on among them, otherwise in their
    given order (a dependency not among them is done already or belongs to another run)."""
    ids = {job.id for job in jobs}
    placed: set[str] = set()
    ordered: list[Job] = []
    waiting = list(jobs)
    while waiting:
        ready = [j for j in waiting if all(d in placed or d not in ids for d in j.depends)]
        if not ready:
            cycle = ", ".join(j.id for j in waiting)
            raise ValueError(f"the jobs {cycle} depend on each other")
        first = ready[0]
        waiting.remove(first)
        ordered.append(first)
        placed.add(first.id)
    return ordered


@dataclass(frozen=True)
class Resources:
    """What a run's models may use.

    Attributes:
        cpus: the CPUs of the machine or cluster.
        sizes: each model's parameter count (None: unknown, counted as the largest known).
        needed: each model's memory need in bytes (``estimate_memory``; None: unknown).
        memory: the bytes available per memory pool (``"cpu"``, ``"cuda:0"``): models
            drawing on one pool start together only while their needs fit in it. Empty
            where the scheduler does not place memory (a cluster: Ray places the actors).
        pools: the memory pool each model draws on (None or missing: none counted).
        elastic: the machine is the study's (a local Ray instance): threads follow the
            models running at once, and models too small for a CPU of their own share an
            actor; False on a cluster, where each actor keeps what it reserved.
        max_parallel: at most this many models at once (None: as many as there are CPUs).
    """

    cpus: int
    sizes: Mapping[str, int | None] = field(default_factory=dict)
    needed: Mapping[str, int | None] = field(default_factory=dict)
    memory: Mapping[str, int] = field(default_factory=dict)
    pools: Mapping[str, str | None] = field(default_factory=dict)
    elastic: bool = True
    max_parallel: int | None = None


@dataclass(frozen=True)
class Schedule:
    """How a run's models are run (:func:`schedule`).

    Attributes:
        order: the models in the order they start: the largest first (they take longest).
        jobs: each model's jobs, dependencies first (:func:`order_jobs`).
        parallel: models at once.
        threads: the threads of a model's actor when it starts (a fixed share of the CPUs).
        resources: what the schedule was made for.
    """

    order: tuple[str, ...]
    jobs: Mapping[str, tuple[Job, ...]]
    parallel: int
    threads: int
    resources: Resources

    def start(self, waiting: Sequence[str], running: Collection[str]) -> list[str]:
        """The models of ``waiting`` (in start order) to start now, beside ``running``: in
        order, while fewer than ``parallel`` run, and while each one's memory need fits in
        what its pool has beside the models running on it; the first that does not fit
        waits, and so do the ones after it (the largest is never passed over). With nothing
        running the first always starts (a model that cannot fit alone was refused before,
        or forced)."""
        started: list[str] = []
        for label in waiting:
            active = [*running, *started]
            if len(active) >= self.parallel or (active and not self._fits(label, active)):
                break
            started.append(label)
        return started

    def _fits(self, label: str, active: Sequence[str]) -> bool:
        resources = self.resources
        pool = resources.pools.get(label)
        need = resources.needed.get(label)
        if pool is None or need is None or pool not in resources.memory:
            return True
        used = sum(
            resources.needed.get(other) or 0
            for other in active
            if resources.pools.get(other) == pool
        )
        return used + need <= resources.memory[pool]

    def threads_of(self, label: str, running: Sequence[str]) -> int:
        """The threads of ``label``'s next job while ``running`` models (``label`` among
        them) have jobs: its share of the CPUs by size (:func:`thread_shares`) on a machine
        that is the study's, else the fixed ``threads``."""
        if not self.resources.elastic:
            return self.threads
        resources = self.resources
        return thread_shares(resources.cpus, dict(resources.sizes), list(running))[label]


def schedule(todo: Mapping[str, Sequence[Job]], resources: Resources) -> Schedule:
    """The schedule of ``todo`` (each model's jobs to run) on ``resources``.

    Models start largest first. At most ``max_parallel`` (default: the CPUs) run at once,
    and never more than there are models; on a machine that is the study's (``elastic``,
    no ``max_parallel``) only models whose CPU share of the whole run (:func:`cpu_shares`)
    is at least half a CPU get a slot of their own: the others run after a larger one, in
    its actor (a process start and the imports of torch, transformers and TransformerLens
    cost more than they would save). Each actor starts with ``cpus // parallel`` threads.
    """
    labels = list(todo)
    if not labels:
        return Schedule((), {}, 0, resources.cpus, resources)
    shares = cpu_shares(resources.cpus, dict(resources.sizes), labels)
    slots = len(labels)
    if resources.elastic and resources.max_parallel is None:
        slots = max(1, sum(1 for share in shares.values() if share >= 0.5))
    parallel = max(1, min(resources.max_parallel or resources.cpus, len(labels), slots))
    threads = max(1, resources.cpus // parallel)
    order = tuple(sorted(labels, key=lambda label: -shares[label]))  # stable among equals
    jobs = {label: tuple(order_jobs(todo[label])) for label in labels}
    return Schedule(order, jobs, parallel, threads, resources)
