"""The job graph of a study, and the keys that make it resumable.

Per model, in order: ``localize`` each network; ``evaluate`` each task intact; for each
network, fraction and task: ``evaluate`` the selected set and each (control kind, seed) random
set; ``brain`` alignment of each network on each dataset; ``attribution`` of each network's
site on each attribution task. A job's key hashes everything its result depends on (the
model's identity, read from its files without loading it, and its revision and dtype; the
stimuli's hash; the job's settings; the keys of the jobs it reads), so a job whose key is
unchanged and whose folder is complete is never run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..contrast import Contrast
from ..errors import LocalizeError
from ..options import default_model_path, resolve_dtype_name
from ..results import read_record
from ..tasks import PreparedTask, get_task
from .spec import ModelSpec, NetworkSpec, Study

__all__ = [
    "Job",
    "band_label",
    "contrast_of",
    "finished",
    "model_key",
    "plan_study",
    "prepared_tasks",
]


def _hash(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: Path, head: int = 1 << 20) -> str:
    """Size and the SHA-256 of the first and last MiB: enough to tell model files apart
    without reading gigabytes."""
    digest = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(head))
        if path.stat().st_size > 2 * head:
            handle.seek(-head, 2)
            digest.update(handle.read(head))
    return digest.hexdigest()[:16]


def model_key(spec: ModelSpec) -> str:
    """A key for a model spec, from its files (never by loading it): the GGUF file's or the
    folder's weights' digests and config, or a hub name; with revision and resolved dtype
    (and for an untrained twin its initialization seed)."""
    dtype = resolve_dtype_name(spec.dtype, spec.device)
    source = Path(spec.spec) if spec.spec is not None else default_model_path()
    if source.is_file():
        identity: Any = _file_digest(source)
    elif source.is_dir():
        folder = source / spec.revision if spec.revision else source
        files = sorted(
            p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json")
        ) if folder.is_dir() else []  # fmt: skip
        identity = [(p.name, _file_digest(p)) for p in files]
    else:
        identity = str(spec.spec)  # a hub name: its revision pins the weights
    if spec.untrained:  # the twin's weights come from its seed, not from the files
        return _hash(identity, spec.revision, dtype, "untrained", spec.seed or 0)
    return _hash(identity, spec.revision, dtype)


def contrast_of(network: NetworkSpec) -> Contrast:
    return Contrast.from_spec(
        network.contrast, positive=network.positive, negative=network.negative,
        pooling=network.pooling,
    )  # fmt: skip


def prepared_tasks(study: Study) -> dict[str, PreparedTask]:
    """Every task of the study with its items loaded (reads and checks every task file)."""
    out = {}
    for name, options in study.tasks.items():
        try:
            out[name] = get_task(name).prepare(**options)
        except LocalizeError as error:
            raise LocalizeError(f"tasks.{name}: {error}") from None
    return out


def _items_digest(items: Any) -> str:
    if isinstance(items, pd.DataFrame):
        return hashlib.sha256(items.to_json().encode()).hexdigest()[:16]
    return _hash(items)


@dataclass(frozen=True)
class Job:
    """One unit of work of a study, with its own results folder."""

    model: str
    name: str
    kind: str  # localize | evaluate | brain | attribution
    key: str
    network: str | None = None
    task: str | None = None
    fraction: float | None = None
    band: tuple[float, float] | None = None  # a band of the ranking instead of the top
    set: str | None = None  # intact | selected | random
    match: str | None = None
    seed: int | None = None
    data: str | None = None  # a brain dataset's name
    depends: tuple[str, ...] = field(default_factory=tuple)

    @property
    def id(self) -> str:
        return f"{self.model}/{self.name}"

    def folder(self, out: Path) -> Path:
        return out / "jobs" / self.model / self.name

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "depends": list(self.depends)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        band = data.get("band")
        return cls(
            **{
                **data,
                "band": None if band is None else (float(band[0]), float(band[1])),
                "depends": tuple(data.get("depends", ())),
            }
        )


def finished(job: Job, out: Path) -> bool:
    """Whether ``job`` has a complete results folder made with its current key."""
    folder = job.folder(out)
    if not (folder / "record.json").is_file():
        return False
    try:
        record = read_record(folder)
    except LocalizeError:
        return False
    study_job = record.get("study_job")
    return isinstance(study_job, dict) and study_job.get("key") == job.key


def _fraction_name(fraction: float) -> str:
    return f"{100 * fraction:g}pct"


def band_label(band: tuple[float, float]) -> str:
    """``(0.99, 1.0)`` as ``"99-100%"``: the ``band`` column of a study's table."""
    return f"{100 * band[0]:g}-{100 * band[1]:g}%"


def _unit_sets(network: NetworkSpec) -> list[tuple[float, tuple[float, float] | None, str]]:
    """The network's unit sets: (fraction of the site, band or None, name in job names)."""
    sets: list[tuple[float, tuple[float, float] | None, str]] = [
        (fraction, None, _fraction_name(fraction)) for fraction in network.top
    ]
    for band in network.band:
        name = f"band{100 * band[0]:g}-{100 * band[1]:g}pct"
        sets.append((round(band[1] - band[0], 12), band, name))
    return sets


def plan_study(study: Study, *, model_keys: dict[str, str] | None = None) -> list[Job]:
    """Every job of the study in the order a worker runs them (dependencies first)."""
    keys = model_keys or {m.label: model_key(m) for m in study.models}
    tasks = prepared_tasks(study)
    task_digest = {name: _items_digest(task.items) for name, task in tasks.items()}
    contrasts = {n.name: contrast_of(n) for n in study.networks}
    # only what changes a job's result goes into its key (n_boot, say, changes the table)
    ablation = {k: getattr(study.ablation, k) for k in ("method", "reference", "batch_size")}
    jobs: list[Job] = []
    for spec in study.models:
        mkey = keys[spec.label]
        localize_key = {}
        for network in study.networks:
            settings = {k: v for k, v in asdict(network).items() if k != "tasks"}
            if not settings["band"]:  # keys of studies without bands stay as they were
                del settings["band"]
            key = _hash(mkey, contrasts[network.name].hash, settings, study.batch_size)
            localize_key[network.name] = key
            jobs.append(Job(spec.label, f"localize-{network.name}", "localize", key,
                            network=network.name))  # fmt: skip
        for task in study.tasks:
            key = _hash(mkey, task, task_digest[task], study.ablation.batch_size)
            jobs.append(Job(spec.label, f"eval-{task}-intact", "evaluate", key, task=task,
                            set="intact"))  # fmt: skip
        for network in study.networks:
            depends = (f"{spec.label}/localize-{network.name}",)
            base = (mkey, localize_key[network.name], ablation)
            for task in study.tasks_of(network):
                for fraction, band, set_name in _unit_sets(network):
                    stem = f"eval-{task}-{network.name}-{set_name}"
                    common: dict[str, Any] = {
                        "network": network.name,
                        "task": task,
                        "fraction": fraction,
                        "band": band,
                    }
                    chosen: Any = fraction if band is None else ["band", *band]
                    key = _hash(*base, task, task_digest[task], chosen, "selected")
                    jobs.append(Job(spec.label, f"{stem}-selected", "evaluate", key,
                                    set="selected", depends=depends, **common))  # fmt: skip
                    for match in study.ablation.match:
                        for seed in range(study.ablation.n_random):
                            key = _hash(*base, task, task_digest[task], chosen, match, seed)
                            jobs.append(
                                Job(
                                    spec.label,
                                    f"{stem}-{match}-{seed}",
                                    "evaluate",
                                    key,
                                    set="random",
                                    match=match,
                                    seed=seed,
                                    depends=depends,
                                    **common,
                                )
                            )
            if study.brain is not None:
                brain = study.brain.key()
                for dataset in study.brain.data:
                    key = _hash(mkey, localize_key[network.name], brain, asdict(dataset),
                                _file_digest(Path(dataset.path)))  # fmt: skip
                    jobs.append(Job(spec.label, f"brain-{network.name}-{dataset.name}", "brain",
                                    key, network=network.name, data=dataset.name,
                                    depends=depends))  # fmt: skip
            if study.attribution is not None:
                for task in study.attribution.tasks:
                    key = _hash(mkey, localize_key[network.name], task, task_digest[task],
                                study.attribution.key())  # fmt: skip
                    jobs.append(Job(spec.label, f"attribution-{network.name}-{task}",
                                    "attribution", key, network=network.name, task=task,
                                    depends=depends))  # fmt: skip
    return jobs
