"""HTML for circuitsvis views: shown inline in Jupyter, saved as standalone pages, read back.

circuitsvis' own ``_repr_html_`` probes the internet to choose between a CDN script and an
inlined one; these views always inline the JavaScript, so they work offline and in saved
reports. Each view is data (a circuitsvis component and its props, a title, a table); an
:class:`HTMLView` renders its views with one copy of circuitsvis' bundle (about 1.3 MB, from
the installed package). A saved view carries its data as a JSON manifest, and the report
renders saved views from that manifest alone, with its own copy of the bundle: a results
folder someone sends you cannot run its JavaScript in your browser.

The analyses that make views are in :mod:`tl_localize.views`; this module knows nothing of
models (no torch), so the report renders saved views without them.
"""

from __future__ import annotations

import functools
import html
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import LocalizeError

__all__ = [
    "BUNDLE_TAG",
    "COMPONENTS",
    "HTMLView",
    "ViewPart",
    "bundle",
    "read_view",
    "render_parts",
    "script_json",
]

BUNDLE_TAG = '<script data-tl-localize="circuitsvis">'
MANIFEST_ID = "tl-localize-views"
# the circuitsvis components these views use; a saved view naming another is not rendered
COMPONENTS = ("ColoredTokensMulti", "ColoredTokens", "AttentionHeads", "AttentionPatterns")
_RENDER = re.compile(
    r"CircuitsVis\.render\(\s*\"(?P<id>[^\"]+)\",\s*CircuitsVis\.(?P<component>\w+),\s*"
    r"(?P<props>\{.*\})\s*\)\s*</script>\s*$",
    re.S,
)


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escape)
    return text


@functools.cache
def bundle() -> str:
    """circuitsvis' JavaScript bundle, taken from the installed package (not from any file
    a results folder holds)."""
    import circuitsvis as cv

    source = cv.tokens.colored_tokens(["a"], [0.0]).local_src
    body = source.split('<script crossorigin type="module">', 1)[1]
    body = body[: body.rindex("CircuitsVis.render(")]
    return re.sub(r"//# sourceMappingURL=\S+", "", body)


@dataclass
class ViewPart:
    """One view: a title, an optional table, and a circuitsvis component with its props."""

    title: str
    component: str
    props: dict[str, Any]
    table: dict[str, Any] | None = None  # {"columns": [...], "rows": [[...], ...]}

    @classmethod
    def from_circuitsvis(cls, title: str, view: Any, table: pd.DataFrame | None = None) -> ViewPart:
        match = _RENDER.search(view.local_src)
        if match is None:
            raise LocalizeError(
                "This circuitsvis version writes views in a layout tl_localize does not know; "
                "pin circuitsvis 1.43."
            )
        tabular = None
        if table is not None:
            tabular = {
                "columns": [str(c) for c in table.columns],
                "rows": table.astype(str).values.tolist(),
            }
        return cls(title, match["component"], json.loads(match["props"]), tabular)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "component": self.component, "props": self.props,
                "table": self.table}  # fmt: skip


def render_parts(parts: Sequence[ViewPart], *, with_bundle: bool = True) -> str:
    """HTML for views with one shared copy of the trusted bundle. Titles and tables are
    escaped; each component's props are passed as script-safe JSON."""
    out = []
    for part in parts:
        if part.component not in COMPONENTS:
            raise LocalizeError(f"Unknown view component {part.component!r}.")
        block = f"<h4>{html.escape(part.title)}</h4>"
        if part.table is not None:
            frame = pd.DataFrame(part.table["rows"], columns=part.table["columns"])
            block += frame.to_html(index=False, escape=True, border=0)
        element = f"circuits-vis-{uuid.uuid4().hex[:12]}"
        block += (
            f'<div id="{element}" style="margin: 15px 0;"></div><script>'
            f'CircuitsVis.render("{element}", CircuitsVis.{part.component}, '
            f"{script_json(part.props)})</script>"
        )
        out.append(block)
    head = f"{BUNDLE_TAG}{bundle()}</script>" if with_bundle and parts else ""
    return head + "\n".join(out)


class HTMLView:
    """Views with ``_repr_html_`` (Jupyter) and :meth:`save` (a standalone page that works
    offline). The page carries the views' data as a JSON manifest, which is all that
    ``tl-localize report`` reads back from it."""

    def __init__(self, parts: Sequence[ViewPart]) -> None:
        self.parts = list(parts)

    @property
    def html(self) -> str:
        return render_parts(self.parts)

    def _repr_html_(self) -> str:
        return self.html

    def manifest(self) -> str:
        return script_json(
            {"format": "tl_localize.views/1", "parts": [p.to_dict() for p in self.parts]}
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        page = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
            f'<script type="application/json" id="{MANIFEST_ID}">{self.manifest()}</script>'
            f"{self.html}</body></html>"
        )
        path.write_text(page, "utf-8")
        return path


def read_view(path: str | Path) -> list[ViewPart]:
    """The views of a page written by :meth:`HTMLView.save`, from its manifest only: no
    markup or script of the file is used. A file without a valid manifest is refused."""
    text = Path(path).read_text(encoding="utf-8")
    match = re.search(
        rf'<script type="application/json" id="{MANIFEST_ID}">(.*?)</script>', text, re.S
    )
    if match is None:
        raise LocalizeError(f"{path} is not a view saved by tl_localize (no manifest).")
    try:
        manifest = json.loads(match.group(1))
    except json.JSONDecodeError as error:
        raise LocalizeError(f"{path}: the view manifest is not valid JSON ({error}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "tl_localize.views/1":
        raise LocalizeError(f"{path}: unknown view manifest format.")
    parts = []
    for item in manifest.get("parts", []):
        if not isinstance(item, dict) or item.get("component") not in COMPONENTS:
            raise LocalizeError(f"{path}: a view names an unknown component; it is not rendered.")
        if not isinstance(item.get("props"), dict) or not isinstance(item.get("title"), str):
            raise LocalizeError(f"{path}: a view lacks its title or props.")
        table = item.get("table")
        if table is not None and not (
            isinstance(table, dict) and isinstance(table.get("columns"), list)
            and isinstance(table.get("rows"), list)
        ):  # fmt: skip
            raise LocalizeError(f"{path}: a view's table is malformed.")
        parts.append(ViewPart(item["title"], item["component"], item["props"], table))
    return parts
