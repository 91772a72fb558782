"""The files of a study folder: the spec (``study.json``), the plan, each job's state, the
log; read by the runner that writes them and by the results that read them, so neither
imports the other for them."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from ..errors import LocalizeError
from ..results import now
from .plan import Job

__all__ = ["StudyFolder"]


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=str)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
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
        found = _read_json(self.out / "study.json")
        return found if isinstance(found, dict) else None

    def plan(self) -> list[Job]:
        found = _read_json(self.out / "plan.json")
        if not isinstance(found, list):
            raise LocalizeError(f"{self.out} holds no plan.json: not a study folder.")
        return [Job.from_dict(item) for item in found]

    def state_path(self, job: Job) -> Path:
        return self.out / "state" / job.model / f"{job.name}.json"

    def state(self, job: Job) -> dict[str, Any] | None:
        found = _read_json(self.state_path(job))
        return found if isinstance(found, dict) else None

    def set_state(self, job: Job, status: str, **info: Any) -> None:
        _write_json(
            self.state_path(job),
            {"job": job.id, "key": job.key, "status": status, "host": socket.gethostname(),
             "pid": os.getpid(), "time": now(), **info},
        )  # fmt: skip

    def log(self, event: str, **info: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": now(), "event": event, **info}, default=str) + "\n")
