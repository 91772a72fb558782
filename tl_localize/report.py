"""One self-contained HTML page from a folder of results.

Every results folder below the given one (a folder with a ``record.json``, or with the
tables and figures the commands write) becomes a section: how it was made (the command,
date, model and package versions, and the whole record), its figures (PNG, embedded as data
URIs), its tables, and its circuitsvis views. The page loads nothing from the network. A
file that cannot be read is reported in its section and the rest is still rendered.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LocalizeError
from .results import now

__all__ = ["build_report", "find_results", "write_report"]

RESULT_FILES = ("record.json", "*.csv", "*.png", "*.view.html")
MAX_ROWS = 40
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .8em; }
.error { background: #fdecea; border-left: 4px solid #d93025; padding: .5em 1em; }
.meta td, .meta th { text-align: left; }
.note { color: #666; font-size: .85em; }
"""


def find_results(folder: str | Path) -> list[Path]:
    """The results folders at or below ``folder`` (sorted), skipping hidden ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LocalizeError(f"{folder} is not a folder; pass a results folder to report on.")
    found = []
    for path in sorted([folder, *(p for p in folder.rglob("*") if p.is_dir())]):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if any(next(path.glob(pattern), None) for pattern in RESULT_FILES):
            found.append(path)
    return found


def _kind(folder: Path) -> str:
    for name, kind in (
        ("attribution.csv", "attribution"),
        ("ablation.csv", "ablation"),
        ("alignment.csv", "brain alignment"),
        ("units.safetensors", "localization"),
    ):
        if (folder / name).exists():
            return kind
    return "results"


def _error(path: Path, error: BaseException) -> str:
    message = f"{type(error).__name__}: {error}".strip()
    return (
        f'<div class="error">Could not read <code>{html.escape(path.name)}</code>: '
        f"{html.escape(message)}. The rest of this section is shown.</div>"
    )


def _record(path: Path) -> str:
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError("record.json does not hold a JSON object")
    model = record.get("model") or record.get("localization", {}).get("model") or {}
    facts = {
        "command": record.get("command"),
        "created": record.get("created"),
        "model": model.get("model") if isinstance(model, dict) else model,
        "contrast": (record.get("contrast") or record.get("localization", {}).get("contrast", {}))
        .get("name"),
        "versions": ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
    }  # fmt: skip
    rows = "".join(
        f"<tr><th>{k}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in facts.items()
        if v
    )
    full = html.escape(json.dumps(record, indent=2, default=str))
    return (
        f'<table class="meta">{rows}</table>'
        f"<details><summary>The whole record (record.json)</summary><pre>{full}</pre></details>"
    )


def _figure(path: Path) -> str:
    from PIL import Image

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes the whole image: a truncated file fails here
        if image.format != "PNG":
            raise ValueError(f"not a PNG image ({image.format})")
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption class='note'>{html.escape(path.name)}</figcaption></figure>"
    )


def _reduce(path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The part of a table worth showing on the page, and a note on what was left out."""
    n = len(frame)
    if path.name == "units.csv" and {"selected", "t"} <= set(frame.columns):
        chosen = frame[frame["selected"].astype(bool)].sort_values("t", ascending=False)
        shown = chosen.head(MAX_ROWS)
        return shown, f"the {len(shown)} selected units with the highest t, of {len(chosen)}"
    if path.name in ("attribution.csv", "join.csv") and "patch_abs" in frame.columns:
        chosen = frame.sort_values("patch_abs", ascending=False).head(MAX_ROWS)
        return chosen, f"the {len(chosen)} units with the highest patch_abs, of {n}"
    if path.name == "alignment.csv" and {"set", "r"} <= set(frame.columns):
        return (
            frame.groupby("set")["r"].agg(["count", "mean", "min", "max"]).reset_index(),
            f"r by set, summarized over {n} rows",
        )
    if n > MAX_ROWS:
        return frame.head(MAX_ROWS), f"the first {MAX_ROWS} of {n} rows"
    return frame, ""


def _table(path: Path) -> str:
    frame = pd.read_csv(path)
    if frame.empty:
        raise ValueError("the table has no rows")
    shown, note = _reduce(path, frame)
    caption = f"<h4>{html.escape(path.name)}</h4>"
    if note:
        caption += f'<p class="note">Showing {html.escape(note)}.</p>'
    return caption + shown.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0)


def _view(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    body = text.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
    return f"<h4>{html.escape(path.name)}</h4>{body}"


def _section(root: Path, folder: Path, anchor: str) -> str:
    title = "." if folder == root else str(folder.relative_to(root))
    parts = [f'<section id="{anchor}"><h2>{html.escape(title)} ({_kind(folder)})</h2>']
    record = folder / "record.json"
    if record.exists():
        try:
            parts.append(_record(record))
        except Exception as error:  # a damaged file is reported, the rest still rendered
            parts.append(_error(record, error))
    else:
        parts.append('<p class="note">No record.json: how these results were made is unknown.</p>')
    for render, pattern in ((_figure, "*.png"), (_table, "*.csv"), (_view, "*.view.html")):
        for path in sorted(folder.glob(pattern)):
            try:
                parts.append(render(path))
            except Exception as error:
                parts.append(_error(path, error))
    parts.append("</section>")
    return "\n".join(parts)


def _one_bundle(page: str) -> str:
    """Keep the first circuitsvis bundle of the page; later views render with it."""
    from .views import BUNDLE_TAG

    pattern = re.compile(re.escape(BUNDLE_TAG) + r".*?</script>", re.S)
    first = pattern.search(page)
    if first is None:
        return page
    rest = pattern.sub("", page[first.end() :])
    return page[: first.end()] + rest


def build_report(folder: str | Path, title: str | None = None) -> str:
    """The report page for the results at or below ``folder``, as one HTML string."""
    root = Path(folder)
    found = find_results(root)
    if not found:
        raise LocalizeError(
            f"{root} holds no results (no record.json, .csv or .png in it or below it). Write "
            "some first, e.g. 'tl-localize localize --out RESULTS/language', then report on "
            "RESULTS."
        )
    anchors = [f"r{i}" for i in range(len(found))]
    toc = "".join(
        f'<li><a href="#{a}">{html.escape("." if f == root else str(f.relative_to(root)))}</a>'
        f" ({_kind(f)})</li>"
        for a, f in zip(anchors, found, strict=True)
    )
    sections = "\n".join(_section(root, f, a) for f, a in zip(found, anchors, strict=True))
    sections = _one_bundle(sections)
    heading = html.escape(title or f"tl_localize report: {root.resolve().name}")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{heading}</title><style>{STYLE}</style></head><body>"
        f"<h1>{heading}</h1><p class='note'>Made {now()} from {html.escape(str(root))}.</p>"
        f"<ul>{toc}</ul>{sections}</body></html>"
    )


def write_report(folder: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write :func:`build_report`'s page to ``out`` (default ``<folder>/report.html``)."""
    page = build_report(folder, **kwargs)
    path = Path(out) if out is not None else Path(folder) / "report.html"
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
