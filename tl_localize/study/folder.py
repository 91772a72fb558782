"""The study folder: its spec, plan, job states and log, written atomically.

Layout of a study folder::

    study.json    the spec (and its digest), what plan.json was made from
    plan.json     every job: model, kind, network, task, set, key
    state/        one JSON file per job: status, times, error
    log.jsonl     what each run did (model loads, jobs run, skipped, failed)
    jobs/MODEL/JOB/   each job's results folder (record.json says how it was made)
    results.csv, verdicts.csv, failures.csv, figures/, report.html   (made from the jobs)
    tables.json   the key of the jobs and spec the tables were made from: a re-run with
                  nothing new leaves them (and loads no model code) as they are

Nothing here imports model code: ``study status`` and a re-run of a finished study read
the folder without torch, transformers or TransformerLens.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from ..errors import LocalizeError
from ..results import check_location, now
from .plan import Job
from .spec import Study

__all__ = ["StudyFolder", "check_folder", "read_json", "write_json"]


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=str)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None where it is missing or damaged."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StudyFolder:
    """The files of a study folder: spec, plan, job states, log."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)

    @property
    def exists(self) -> bool:
        return (self.out / "study.json").is_file()

    def spec(self) -> dict[str, Any] | None:
        found = read_json(self.out / "study.json")
        return found if isinstance(found, dict) else None

    def plan(self) -> list[Job]:
        found = read_json(self.out / "plan.json")
        if not isinstance(found, list):
            raise LocalizeError(f"{self.out} holds no plan.json: not a study folder.")
        return [Job.from_dict(item) for item in found]

    def write_plan(self, study: Study, plan: list[Job]) -> None:
        """``study.json`` (the spec and its digest) and ``plan.json`` (every job)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "study.json", {"study": study.to_dict(), "digest": study.digest()})
        write_json(self.out / "plan.json", [j.to_dict() for j in plan])

    def state_path(self, job: Job) -> Path:
        return self.out / "state" / job.model / f"{job.name}.json"

    def state(self, job: Job) -> dict[str, Any] | None:
        found = read_json(self.state_path(job))
        return found if isinstance(found, dict) else None

    def set_state(self, job: Job, status: str, **info: Any) -> None:
        write_json(
            self.state_path(job),
            {"job": job.id, "key": job.key, "status": status, "host": socket.gethostname(),
             "pid": os.getpid(), "time": now(), **info},
        )  # fmt: skip

    def log(self, event: str, **info: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": now(), "event": event, **info}, default=str) + "\n")


def check_folder(study: Study, out: Path, *, force: bool) -> None:
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
