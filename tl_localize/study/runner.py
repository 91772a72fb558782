"""Running a study: resumable, with failures contained, locally or on Ray.

``run_study(study, out)`` plans the jobs, skips every job whose folder is complete with its
current key, and runs the rest model by model (each model loaded once per worker). Each job
writes its own atomic results folder, so a killed run (SIGINT, SIGKILL, a lost worker)
leaves nothing half-written that counts as done; the next run resumes. A model that cannot
load or a job that raises is recorded (model, job, error, traceback) in ``state/`` and the
failures table, and the other models go on; ``retry_failed=True`` reruns only those.

Layout of a study folder::

    study.json    the spec (and its digest), what plan.json was made from
    plan.json     every job: model, kind, network, task, set, key
    state/        one JSON file per job: status, times, error
    log.jsonl     what each run did (model loads, jobs run, skipped, failed)
    jobs/MODEL/JOB/   each job's results folder (record.json says how it was made)
    results.csv, verdicts.csv, failures.csv, figures/, report.html   (made from the jobs)
    tables.json   the key of the jobs and spec the tables were made from: a re-run with
                  nothing new leaves them (and loads no model code) as they are
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LocalizeError
from ..results import check_location
from .folder import StudyFolder, _write_json
from .plan import Job, finished, model_key, plan_study
from .spec import ModelSpec, Study

if TYPE_CHECKING:
    from .worker import ModelRunner

# The worker (and with it torch, transformers and TransformerLens) is imported only where a
# model loads: planning, resuming and reading a study need none of them.

__all__ = ["EXECUTORS", "estimate_memory", "run_study"]

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'tl_localize[ray]'"


def _check_folder(study: Study, out: Path, *, force: bool) -> None:
    """The study folder: new, empty, or this study's. Another study's is refused unless
    forced; a folder holding other things is always refused."""
    check_location(out)  # refuses a file, the current folder, one above it, home, the root
    if not out.exists():
        return
    if not out.is_dir():
        raise LocalizeError(f"The output {out} is a file; name a folder for the study.")
    folder = StudyFolder(out)
    if folder.exists:
        spec = folder.spec() or {}
        name = (spec.get("study") or {}).get("name")
        if name != study.name and not force:
            raise LocalizeError(
                f"{out} holds another study ({name!r}, not {study.name!r}); choose another "
                "folder, or pass --force (force=True) to run this study there too."
            )
        return
    entries = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    if entries:
        raise LocalizeError(
            f"{out} is not empty and is not a study folder ({', '.join(entries[:4])}); name a "
            "new folder for the study."
        )


# -- memory -----------------------------------------------------------------------------------
# What a worker process holds besides the model: the interpreter with torch, transformers,
# TransformerLens and this package imported, a tokenizer and the thread pools (measured
# 0.61-0.67 GiB on the CPU with a model of 3M parameters); on a GPU, the CUDA context and
# the kernels' workspace, which come out of the device's free memory.
BASELINE_BYTES = {"cpu": 600 * 2**20, "cuda": 512 * 2**20}


def _read_size(spec: ModelSpec) -> dict[str, int] | None:
    """The number of parameters and the shape (width, MLP width, layers, heads, vocabulary),
    read from the config or the GGUF header (no weights loaded), when known."""
    from ..models import default_model_path

    source = Path(spec.spec) if spec.spec is not None else default_model_path()
    if source.is_file() and source.suffix == ".gguf":
        try:
            from gguf import GGUFReader

            reader = GGUFReader(str(source))
            arch = reader.fields["general.architecture"].contents()

            def field(key: str) -> int:
                return int(reader.fields[f"{arch}.{key}"].contents())

            d_model = field("embedding_length")
            return {
                "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
                "d_model": d_model,
                "d_mlp": field("feed_forward_length"),
                "n_layers": field("block_count"),
                "n_heads": field("attention.head_count"),
                "vocab": len(reader.fields["tokenizer.ggml.tokens"].contents()),
            }
        except (ImportError, OSError, ValueError, KeyError, TypeError):
            return None
    folder = source / spec.revision if source.is_dir() and spec.revision else source
    if not folder.is_dir():
        return None  # a hub name: not known offline
    try:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(folder)
        with init_empty_weights():
            empty = AutoModelForCausalLM.from_config(config)
        empty.tie_weights()  # tied embeddings count once (from_config leaves them apart)
        text = config.get_text_config()

        def first(*names: str) -> int | None:
            found = (getattr(text, name, None) for name in names)
            return next((int(v) for v in found if v is not None), None)

        d_model = first("hidden_size", "n_embd", "d_model") or 0
        return {
            "parameters": int(sum(p.numel() for p in empty.parameters())),
            "d_model": d_model,
            "d_mlp": first("intermediate_size", "n_inner", "ffn_dim") or 4 * d_model,
            "n_layers": first("num_hidden_layers", "n_layer", "num_layers") or 0,
            "n_heads": first("num_attention_heads", "n_head") or 0,
            "vocab": first("vocab_size") or 0,
        }
    except (OSError, ValueError, KeyError):
        return None


def _activation_bytes(size: dict[str, int], batch: int, tokens: int, element: int) -> int:
    """The largest pass of a study over one batch of ``batch x tokens`` positions, in bytes:
    the logits in the model's dtype with two float32 copies (the scored copy and its
    log-softmax), one block's intermediates (four residual-width tensors in the dtype and
    one in float32 inside the norm, three MLP-width tensors) and the attention scores and
    their softmax in float32; plus the pooled activations of one batch at every layer
    (float32) and the running moments (eight float64 numbers per unit)."""
    per_position = (
        size["vocab"] * (element + 8)
        + size["d_model"] * (4 * element + 4)
        + size["d_mlp"] * 3 * element
        + size["n_heads"] * tokens * 2 * 4
    )
    units = size["n_layers"] * size["d_model"]
    return batch * tokens * per_position + units * (batch * 4 + 8 * 8)


def estimate_memory(spec: ModelSpec, batch_size: int = 32, tokens: int = 128) -> dict[str, Any]:
    """What a model needs, before it loads, and what the device has available.

    needed = baseline + weights + activations, where
    - baseline is what a worker holds besides the model (:data:`BASELINE_BYTES`: 600 MiB of
      interpreter, libraries and tokenizer on the CPU; 512 MiB of CUDA context on a GPU);
    - weights are the parameters (counted from the config or the GGUF header, no weights
      read) times the bytes of the dtype that ``spec.dtype`` resolves to on ``spec.device``;
    - activations are the largest pass over one batch of ``batch_size`` texts of ``tokens``
      tokens: ``batch x tokens x (vocab x (e + 8) + d_model x (4e + 4) + d_mlp x 3e +
      heads x tokens x 8)`` bytes for an element size ``e`` (logits and their float32
      copies, one block's intermediates, attention scores), plus pooled activations and
      running moments (``n_layers x d_model x (4 batch + 64)``).

    Within 2% of the peak resident set measured for random-init models of SmolLM2-135M's,
    360M's and 1.7B's shapes in float32 (``benchmarks/scale.py``, docs/benchmarks.md).
    ``parameters`` (and so ``needed_bytes`` and ``fits``) is None where the size cannot be
    read offline (a hub name).
    """
    import psutil  # type: ignore[import-untyped]
    import torch

    from ..models import resolve_dtype

    dtype = resolve_dtype(spec.dtype, spec.device)
    element = torch.tensor([], dtype=dtype).element_size()
    size = _read_size(spec)
    n_params = None if size is None else size["parameters"]
    weights = None if n_params is None else n_params * element
    activations = 0 if size is None else _activation_bytes(size, batch_size, tokens, element)
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")  # None: auto
    on_cuda = device.startswith("cuda")
    baseline = BASELINE_BYTES["cuda" if on_cuda else "cpu"]
    if spec.device_map is not None:
        available = None  # placement is accelerate's; offloading makes it fit
    elif on_cuda and torch.cuda.is_available():
        available = int(torch.cuda.mem_get_info(torch.device(device))[0])
    else:
        available = int(psutil.virtual_memory().available)
    needed = None if weights is None else baseline + weights + activations
    return {
        "model": spec.label,
        "parameters": n_params,
        "dtype": str(dtype).removeprefix("torch."),
        "weights_bytes": weights,
        "activation_bytes": activations,
        "baseline_bytes": baseline,
        "needed_bytes": needed,
        "available_bytes": available,
        "fits": None if needed is None or available is None else needed <= available,
    }


def _gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.2f} GiB"


# -- executors --------------------------------------------------------------------------------
Report = Callable[[Job, dict[str, Any]], None]


def _worker_id() -> str:
    """Where a model is held: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_local(study: Study, out: Path, todo: dict[str, list[Job]], plan: list[Job],
               report: Report, start: Callable[[str], None],
               workers: dict[str, str]) -> dict[str, int]:  # fmt: skip
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


def _gpus(spec: ModelSpec) -> float:
    """The GPUs a model's actor asks Ray for."""
    import torch

    if spec.device is not None and spec.device.startswith("cuda"):
        return 1.0
    if spec.device_map is not None and torch.cuda.is_available():
        if isinstance(spec.max_memory, dict):
            return float(sum(1 for k in spec.max_memory if str(k) not in ("cpu", "disk")))
        return float(torch.cuda.device_count())
    return 0.0


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
def _ray(address: str | None, num_cpus: int) -> Iterator[Any]:
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


def _study_dict(study: Study, base_dir: Path) -> dict[str, Any]:
    """The spec as Study.from_dict reads it back (paths are absolute already)."""
    data = study.to_dict()
    for key in ("brain", "attribution"):
        if data[key] is None:
            del data[key]
    return data


def _cpu_shares(total: int, sizes: dict[str, int | None], active: list[str]) -> dict[str, float]:
    """Each model's share of ``total`` CPUs among the ``active`` ones, in proportion to the
    models' parameter counts (the work of a job grows with them); a model of unknown size
    counts as the largest known one."""
    known = [v for v in sizes.values() if v]
    default = max(known) if known else 1
    weight = {label: float(sizes.get(label) or default) for label in active}
    whole = sum(weight.values())
    return {label: total * weight[label] / whole for label in active}


def _thread_shares(total: int, sizes: dict[str, int | None], active: list[str]) -> dict[str, int]:
    """Threads per model running at once on a machine of ``total`` CPUs: its CPU share
    (:func:`_cpu_shares`), rounded, at least one."""
    return {label: max(1, round(v)) for label, v in _cpu_shares(total, sizes, active).items()}


def _new_actor(ray: Any, study: Study, out: Path, plan: list[Job], *, gpus: float,
               threads: int) -> Any:  # fmt: skip
    actor_class = ray.remote(num_cpus=threads, num_gpus=gpus)(_RayWorker)
    return actor_class.remote(_study_dict(study, out), str(out), [j.to_dict() for j in plan],
                              threads)  # fmt: skip


def _warm_actor(ray: Any, study: Study, out: Path, plan: list[Job],
                todo: dict[str, list[Job]]) -> tuple[float, Any]:  # fmt: skip
    """An actor started ahead of its model (its process start and imports overlap the
    driver's remaining checks); it reserves one CPU and has the GPU needs of the first
    model in the spec (an actor whose needs match no model is released unused)."""
    gpus = _gpus(next(m for m in study.models if m.label in todo))
    return gpus, _new_actor(ray, study, out, plan, gpus=gpus, threads=1)


def _run_ray(ray: Any, study: Study, out: Path, todo: dict[str, list[Job]], plan: list[Job],
             report: Report, start: Callable[[str], None], *, elastic: bool,
             max_parallel: int | None, sizes: dict[str, int | None], workers: dict[str, str],
             warm: tuple[float, Any] | None = None) -> dict[str, int]:  # fmt: skip
    cpus = os.cpu_count() or 1
    total_cpus = int(ray.cluster_resources().get("CPU", cpus))
    # On a local instance the machine is ours: each job of a model gets that model's share
    # of all the CPUs among the models running then (by size: a tiny model next to a big
    # one does not halve the big one's threads; a model finishing gives its CPUs back to
    # the next jobs of the others), and models whose share of the whole study is under
    # half a CPU get no actor of their own: they run after a larger one, in its actor
    # (a process start and the imports of torch, transformers and TransformerLens cost
    # more than they would save). On a cluster an actor keeps the CPUs it reserved.
    shares = _cpu_shares(total_cpus, sizes, list(todo))
    slots = len(todo)
    if elastic and max_parallel is None:
        slots = max(1, sum(1 for share in shares.values() if share >= 0.5))
    parallel = max(1, min(max_parallel or total_cpus, len(todo), slots))
    threads = max(1, total_cpus // parallel)
    # the largest models first: they take longest, so they should not start last
    waiting = sorted(todo, key=lambda label: -shares[label])
    running: dict[Any, tuple[str, Job | None, Any]] = {}  # ref -> (label, job, actor)
    queued: dict[str, list[Job]] = {}  # each actor runs one job at a time
    idle: list[tuple[float, Any]] = [warm] if warm else []  # (gpus, actor) with no model
    gpus_of: dict[str, float] = {}
    loads: dict[str, int] = {}

    def launch(label: str) -> None:
        model = next(m for m in study.models if m.label == label)
        gpus = _gpus(model)
        reuse = next((pair for pair in idle if pair[0] == gpus), None)
        if reuse is not None:
            idle.remove(reuse)
            actor = reuse[1]
        else:
            actor = _new_actor(ray, study, out, plan, gpus=gpus, threads=threads)
        gpus_of[label] = gpus
        start(label)
        running[actor.load.remote(label)] = (label, None, actor)
        queued[label] = list(todo[label])

    def submit(label: str, actor: Any) -> None:
        job = queued[label].pop(0)
        if elastic:
            share = _thread_shares(total_cpus, sizes, list(queued))[label]
        else:
            share = threads
        running[actor.run.remote(job.to_dict(), share)] = (label, job, actor)

    while waiting or running:
        while waiting and len(queued) < parallel:
            launch(waiting.pop(0))
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
) -> Any:
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
    from tqdm.auto import tqdm

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
    _check_folder(study, out, force=force)
    keys = {m.label: model_key(m) for m in study.models}
    plan = plan_study(study, model_keys=keys)  # reads and checks every stimulus and task file
    folder = StudyFolder(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "study.json", {"study": study.to_dict(), "digest": study.digest()})
    _write_json(out / "plan.json", [j.to_dict() for j in plan])

    todo: dict[str, list[Job]] = {}
    skipped = []
    for job in plan:
        state = folder.state(job) or {}
        failed = state.get("status") == "failed"
        if finished(job, out):
            skipped.append(job)
        elif retry_failed:  # only the jobs that failed, whatever changed since
            (todo.setdefault(job.model, []) if failed else skipped).append(job)
        elif failed and state.get("key") == job.key:
            skipped.append(job)  # failed with these very settings: left alone
        else:
            todo.setdefault(job.model, []).append(job)  # missing, changed, interrupted
    use_ray = executor == "ray" and bool(todo)
    with _ray(address, os.cpu_count() or 1) if use_ray else contextlib.nullcontext() as ray_api:
        # on a local instance, the first actor's process starts (and imports torch,
        # transformers and TransformerLens) while the models' sizes are read here
        warm = _warm_actor(ray_api, study, out, plan, todo) if use_ray and not address else None
        sizes: dict[str, int | None] = {}
        for label in todo:
            spec = next(m for m in study.models if m.label == label)
            estimate = estimate_memory(spec, study.batch_size)
            sizes[label] = estimate["parameters"]
            folder.log("memory", **estimate)
            if progress:
                print(
                    f"{label}: about {_gib(estimate['needed_bytes'])} needed "
                    f"({estimate['parameters'] or 'unknown'} parameters in {estimate['dtype']}), "
                    f"{_gib(estimate['available_bytes'])} available"
                )
            if estimate["fits"] is False and not force:
                raise LocalizeError(
                    f"models[{label!r}] needs about {_gib(estimate['needed_bytes'])} and the "
                    f"machine has {_gib(estimate['available_bytes'])} available: it cannot "
                    "load. Use device_map='auto' (with max_memory) to offload it, a smaller "
                    "dtype, or pass --force (force=True) to try anyway."
                )
        folder.log(
            "run", executor=executor, todo=sum(map(len, todo.values())), skipped=len(skipped)
        )
        total = sum(len(jobs) for jobs in todo.values())
        bar = tqdm(
            total=total, desc=f"study {study.name}", unit="job", disable=not progress or not total
        )
        done_per_model = {label: 0 for label in todo}
        counts: dict[str, Any] = {"ran": [], "failed": [], "skipped": [j.id for j in skipped]}

        def start(label: str) -> None:
            for job in todo[label]:
                folder.set_state(job, "running")

        def report(job: Job, result: dict[str, Any]) -> None:
            status = result.get("status")
            if status == "done":
                folder.set_state(job, "done", seconds=result.get("seconds"))
                counts["ran"].append(job.id)
            else:
                folder.set_state(
                    job,
                    "failed",
                    error=result.get("error"),
                    traceback=result.get("traceback"),
                    seconds=result.get("seconds"),
                )
                counts["failed"].append(job.id)
            folder.log("job", job=job.id, status=status, seconds=result.get("seconds"),
                       error=result.get("error"))  # fmt: skip
            done_per_model[job.model] += 1
            bar.set_postfix({k: f"{v}/{len(todo[k])}" for k, v in done_per_model.items()})
            bar.update()

        started = time.perf_counter()
        workers: dict[str, str] = {}  # host:pid that held each model
        try:
            if not use_ray:  # the local executor, or nothing to do
                loads = _run_local(study, out, todo, plan, report, start, workers)
            else:
                loads = _run_ray(ray_api, study, out, todo, plan, report, start,
                                 elastic=address is None, max_parallel=max_parallel,
                                 sizes=sizes, workers=workers, warm=warm)  # fmt: skip
        finally:
            bar.close()
    for label, n in loads.items():
        folder.log("loads", model=label, loads=n, worker=workers.get(label))
    counts["loads"] = loads
    counts["workers"] = workers
    counts["seconds"] = time.perf_counter() - started
    result = StudyResult(out)
    result.run_counts = counts
    result.write_tables()
    return result
