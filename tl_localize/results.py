"""Results folders: written atomically, with a record of how they were made."""

from __future__ import annotations

import contextlib
import platform
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .errors import LocalizeError

__all__ = ["atomic_folder", "now", "versions"]


@contextlib.contextmanager
def atomic_folder(folder: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; rename it to ``folder`` when the block
    completes. An interrupted block leaves nothing behind; an existing ``folder`` is
    replaced only with ``force=True``."""
    folder = Path(folder)
    if folder.exists() and not force:
        raise LocalizeError(
            f"{folder} already exists; choose another folder or pass force=True "
            "(--force on the command line) to replace it."
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape a result."""
    out = {"python": platform.python_version()}
    for pkg in ("tl_localize", "torch", "transformer-lens", "transformers", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
