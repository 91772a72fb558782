"""Results folders: written atomically, with a record of how they were made, and replaced
only when they are ours.

Every results folder holds a ``record.json`` that says how it was made and carries the
toolkit's mark (``"tl_localize": {"format": ...}``). A folder is written under a hidden
temporary name in the same parent (``.NAME.partial-XXXX``) and renamed into place when
complete, so an interrupted save never leaves something that counts as a result.

``force=True`` (``--force``) replaces an existing folder only if it is a results folder this
toolkit wrote, holding nothing but the files the toolkit writes; it never replaces the
current folder, a folder above it, the home folder or the root, and never a file. Replacing
is itself atomic: the old folder is moved aside (``.NAME.old-XXXX``), the new one renamed
into place, and only then is the old one deleted, so a crash at any moment leaves the old
results or the new ones on disk, never neither. Temporary folders left by a killed save are
removed by the next save into the same parent (an old folder left aside with nothing in its
place is moved back), with a warning that says so.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import platform
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import LocalizeError

__all__ = [
    "FORMAT",
    "RESULT_KINDS",
    "atomic_folder",
    "base_record",
    "check_kind",
    "check_location",
    "check_output",
    "check_same_model",
    "folder_kind",
    "is_results_folder",
    "load_result",
    "now",
    "process_alive",
    "read_record",
    "record_kind",
    "result_class",
    "versions",
    "write_record",
]

FORMAT = "tl_localize.results/1"
# what the toolkit writes into a results folder (anything else makes it not replaceable)
RESULT_PATTERNS = (
    "record.json",
    "*.csv",
    "*.png",
    "*.safetensors",
    "*.npz",
    "*.html",
    "*.toml",
    "*.json",
)
_OWNER = ".tl_localize-owner"  # inside a temporary folder: host and pid of the writer
_STALE_S = 24 * 3600  # a temporary folder of another host this old is left by a dead save


def write_record(folder: Path, record: dict[str, Any], kind: str) -> Path:
    """Write ``record.json`` into ``folder`` with the toolkit's mark and the result's kind."""
    marked = {"tl_localize": {"format": FORMAT, "kind": kind}, **record}
    path = folder / "record.json"
    path.write_text(json.dumps(marked, indent=2, default=str), encoding="utf-8")
    return path


def read_record(folder: str | Path, what: str = "a results folder") -> dict[str, Any]:
    """The record of a results folder, checked to be one: a JSON object in ``record.json``."""
    folder = Path(folder)
    path = folder / "record.json"
    if not folder.is_dir():
        raise LocalizeError(f"{folder} is not a folder: expected {what}.")
    if not path.is_file():
        raise LocalizeError(f"{folder} holds no record.json: not {what}.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LocalizeError(
            f"{path} is damaged (not valid JSON: {error}); the results cannot be trusted. "
            "Write them again."
        ) from None
    if not isinstance(record, dict):
        raise LocalizeError(f"{path} holds a JSON {type(record).__name__}, not a record.")
    return record


# The result types, by the kind their record.json carries: kind -> "module:class". Data, not
# imports: this module sits below every result type, and each loader is imported on use.
RESULT_KINDS = {
    "localization": "tl_localize.localize:Localization",
    "ablation": "tl_localize.compare:AblationComparison",
    "brain alignment": "tl_localize.brain:BrainAlignment",
    "attribution": "tl_localize.attribution:Attribution",
    "attribution check": "tl_localize.attribution:AttributionCheck",
    "localizer power": "tl_localize.reliability:LocalizerPower",
    "study": "tl_localize.study.results:StudyResult",
}
STUDY_RECORD = "study.json"  # a study folder's own record, written when the study starts


def record_kind(record: dict[str, Any]) -> str | None:
    """The kind a record carries in its mark (``"tl_localize": {"kind": ...}``), or None for
    a record written before records carried one."""
    mark = record.get("tl_localize")
    kind = mark.get("kind") if isinstance(mark, dict) else None
    return kind if isinstance(kind, str) else None


def folder_kind(folder: str | Path) -> str | None:
    """The kind of results in ``folder``, read from its record: ``record.json``'s mark, or
    ``"study"`` for a study folder (whose record is ``study.json``); None when the folder
    has no record or its record carries no kind."""
    folder = Path(folder)
    if (folder / "record.json").is_file():
        with contextlib.suppress(LocalizeError):
            kind = record_kind(read_record(folder))
            if kind is not None:
                return kind
    if (folder / STUDY_RECORD).is_file():
        return "study"
    return None


def result_class(kind: str) -> type:
    """The result type of ``kind`` (a key of :data:`RESULT_KINDS`), imported on use."""
    import importlib

    if kind not in RESULT_KINDS:
        raise LocalizeError(
            f"No result type is registered for the kind {kind!r}; the kinds with a loader are "
            f"{sorted(RESULT_KINDS)}."
        )
    module, name = RESULT_KINDS[kind].split(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def read_result_record(
    folder: Path, kind: str, what: str, needed: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record of a saved result of ``kind`` and its ``config`` (taken out of it), read
    strictly: another kind, or a config that is missing or lacks one of ``needed``, is one
    LocalizeError naming the file and the fix."""
    record = read_record(folder, what)
    check_kind(folder, record, kind)
    config = record.pop("config", None)
    if not isinstance(config, dict) or any(k not in config for k in needed):
        lacking = f" (it needs {list(needed)})" if needed else ""
        raise LocalizeError(
            f"{folder / 'record.json'} has no complete 'config'{lacking}, so how the {kind} "
            f"was made is unknown; make the {kind} again to write a complete folder."
        )
    return record, config


def check_kind(
    folder: str | Path, record: dict[str, Any], kind: str, *, required: bool = True
) -> None:
    """Refuse a record that is not of ``kind``: another kind names the loader that reads it;
    a record without a kind (written before records carried one) is refused when
    ``required`` (the result types that have always written theirs)."""
    path = Path(folder) / "record.json"
    found = record_kind(record)
    if found == kind or (found is None and not required):
        return
    if found is None:
        raise LocalizeError(
            f"{path} carries no kind: it was written by an older tl_localize or by hand, and "
            f"is not known to hold {_a(kind)}. Write the {kind} again with this version."
        )
    loader = RESULT_KINDS.get(found, "").replace(":", ".")
    hint = f"load it with {loader}.load or tl_localize.results.load_result" if loader else (
        "it has no loader of its own"
    )  # fmt: skip
    raise LocalizeError(f"{path} is the record of {_a(found)}, not of {_a(kind)}; {hint}.")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def load_result(folder: str | Path, model: Any = None) -> Any:
    """The result saved in ``folder``, restored by the loader of the kind its record names
    (:data:`RESULT_KINDS`); with ``model``, a result made for another model is refused."""
    folder = Path(folder)
    kind = folder_kind(folder)
    if kind is None:
        read_record(folder)  # no folder, no record.json, or a damaged one: that error first
        raise LocalizeError(
            f"{folder / 'record.json'} carries no kind (written by an older tl_localize), so "
            "which result it holds is unknown. Write the result again with this version."
        )
    if kind not in RESULT_KINDS:
        raise LocalizeError(
            f"{folder / 'record.json'} holds a {kind}, which has no loader (the kinds that "
            f"load are {sorted(RESULT_KINDS)}); read its tables with pandas."
        )
    result: Any = result_class(kind).load(folder, model=model)  # type: ignore[attr-defined]
    return result


def base_record(record: dict[str, Any], config: dict[str, Any], summary: str) -> dict[str, Any]:
    """A result's record as :func:`write_record` stores it: what the result carries, its
    ``config``, its ``summary`` and the package ``versions`` (kept when already there)."""
    return {**record, "config": config, "summary": summary,
            "versions": record.get("versions") or versions()}  # fmt: skip


def check_same_model(folder: str | Path, saved: Any, current: dict[str, Any]) -> None:
    """Refuse a result whose record's model signature (``saved``) is not the signature of
    the model it is loaded for (``current``, :func:`tl_localize.models.model_signature`):
    name, shape and the weights' fingerprint must agree where the record has them."""
    path = Path(folder) / "record.json"
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), str):
        raise LocalizeError(
            f"{path} names no model signature ('model'), so it cannot be checked against "
            f"{current.get('model')!r}; load it without model=, or compute it again."
        )
    for key in ("model", "n_layers", "d_model", "fingerprint"):
        if saved.get(key) is not None and saved.get(key) != current.get(key):
            raise LocalizeError(
                f"{path}: computed for model {saved['model']!r} ({key} {saved[key]!r}), not "
                f"for this one ({key} {current.get(key)!r}); load it without model=, or "
                "compute it again for this model."
            )


def _is_ours(record: dict[str, Any]) -> bool:
    mark = record.get("tl_localize")
    if isinstance(mark, dict) and mark.get("format") == FORMAT:
        return True
    versions_ = record.get("versions")  # folders written before the mark existed
    return isinstance(versions_, dict) and "tl_localize" in versions_


def is_results_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a ``record.json`` written by this toolkit."""
    try:
        return _is_ours(read_record(folder))
    except LocalizeError:
        return False


def _foreign(folder: Path) -> list[str]:
    """Entries of ``folder`` that the toolkit does not write: subfolders must be results
    folders holding nothing else, or temporary folders of a save (hidden, with the owner
    file)."""
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name == _OWNER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            if entry.name.startswith("."):
                if not (entry / _OWNER).is_file():
                    out.append(entry.name + "/")
            elif not is_results_folder(entry):
                out.append(entry.name + "/")
            else:
                out += [f"{entry.name}/{name}" for name in _foreign(entry)]
        elif entry.is_symlink() or not any(fnmatch.fnmatch(entry.name, p) for p in RESULT_PATTERNS):
            out.append(entry.name)
    return out


def check_location(folder: str | Path) -> Path:
    """The folder results may be written to, resolved; refuses a path that is a file or a
    link, the current folder, a folder above it, the home folder (or above it) and the
    root, whatever is in them."""
    folder = Path(folder).expanduser()
    if not folder.name or folder.name in (".", ".."):
        resolved = folder.resolve()
    else:
        resolved = folder.parent.resolve() / folder.name
    if resolved.is_file() or (resolved.is_symlink() and not resolved.is_dir()):
        raise LocalizeError(
            f"The output {folder} is a file, not a folder; name a new folder for the results."
        )
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved in (cwd, home) or resolved in cwd.parents:
        raise LocalizeError(
            f"Refusing to write results to {folder} ({resolved}): it is the current folder, a "
            "folder above it, the home folder or the root. Name a new folder for the results, "
            "e.g. results/language."
        )
    if resolved in home.parents:
        raise LocalizeError(
            f"Refusing to write results to {folder}: it holds the home folder. Name a new folder."
        )
    if resolved.is_symlink():
        raise LocalizeError(
            f"The output {folder} is a symbolic link; name a plain folder for the results."
        )
    return resolved


def check_output(folder: str | Path, *, force: bool = False) -> Path:
    """Check that results may be written to ``folder``, before any work is done.

    A missing folder is fine. An existing one needs ``force=True`` and must be a results
    folder of this toolkit holding only what the toolkit writes; the current folder, a folder
    above it, the home folder, the root and a path that is a file are always refused
    (:func:`check_location`).
    """
    resolved = check_location(folder)
    if not resolved.exists():
        return resolved
    if not force:
        raise LocalizeError(
            f"{folder} already exists; choose another folder or pass force=True (--force on "
            "the command line) to replace it."
        )
    if not is_results_folder(resolved):
        raise LocalizeError(
            f"{folder} exists and is not a results folder of tl_localize (no record.json of "
            "ours), so --force will not replace it. Choose a new folder for the results."
        )
    foreign = _foreign(resolved)
    if foreign:
        raise LocalizeError(
            f"{folder} is a results folder but also holds files the toolkit did not write "
            f"({', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}), so --force will "
            "not replace it. Move them out first, or choose a new folder."
        )
    return resolved


def process_alive(host: str | None, pid: int | str | None) -> bool | None:
    """Whether process ``pid`` of ``host`` is running: None when ``host`` is another machine
    (it cannot be told from here)."""
    if host != socket.gethostname():
        return None
    try:
        number = int(pid)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    if number <= 0:
        return False
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(owner: Path) -> bool:
    """Whether the save that made a temporary folder may still be running."""
    try:
        host, pid = owner.read_text().split()
    except (OSError, ValueError):
        return False
    alive = process_alive(host, pid)
    if alive is None:  # another machine: trust it for a day
        return time.time() - owner.stat().st_mtime < _STALE_S
    return alive


def clean_leftovers(parent: Path) -> list[str]:
    """Remove temporary folders of dead saves in ``parent`` (only ours: they hold the owner
    file); move back an old folder left aside with nothing in its place. Returns what was
    done, one line each."""
    done: list[str] = []
    if not parent.is_dir():
        return done
    for entry in sorted(parent.iterdir()):
        name = entry.name
        if not entry.is_dir() or not name.startswith("."):
            continue
        if ".partial-" in name:
            owner = entry / _OWNER
            if owner.is_file() and not _alive(owner):
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed {entry} (left by an interrupted save)")
        elif ".old-" in name and (entry / _OWNER).is_file():
            target = parent / name[1 : name.index(".old-")]
            if not _alive(entry / _OWNER):
                if target.exists():
                    shutil.rmtree(entry, ignore_errors=True)
                    done.append(f"removed {entry} (results replaced by an interrupted save)")
                else:
                    (entry / _OWNER).unlink()
                    entry.rename(target)
                    done.append(f"restored {target} (an interrupted save had moved it aside)")
    return done


def _mark_owner(folder: Path) -> None:
    (folder / _OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")


@contextlib.contextmanager
def atomic_folder(folder: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; move it into place when the block
    completes. An interrupted block leaves nothing that counts as a result; an existing
    ``folder`` is replaced only with ``force=True`` and only if :func:`check_output` allows
    it (a results folder of this toolkit holding nothing else)."""
    target = check_output(folder, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    for line in clean_leftovers(target.parent):
        warnings.warn(f"tl_localize: {line}.", stacklevel=3)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    _mark_owner(tmp)
    try:
        yield tmp
        if target.exists():
            check_output(target, force=force)  # still ours, still only our files
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            aside.rmdir()
            _mark_owner(target)  # so that a crash from here on is undone by the next save
            target.rename(aside)
            tmp.rename(target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            tmp.rename(target)
        (target / _OWNER).unlink(missing_ok=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape a result."""
    from ._version import __version__  # the code that runs, even where the metadata is older

    out = {"python": platform.python_version(), "tl_localize": __version__}
    for pkg in ("torch", "transformer-lens", "transformers", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
