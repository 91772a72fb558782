"""Circuitsvis views of units, shown inline in Jupyter and saved as standalone HTML.

circuitsvis' own ``_repr_html_`` probes the internet to choose between a CDN script and an
inlined one; these views always inline the JavaScript, so they work offline and in saved
reports. Each view is data (a circuitsvis component and its props, a title, a table); an
:class:`HTMLView` renders its views with one copy of circuitsvis' bundle (about 1.3 MB, from
the installed package). A saved view carries its data as a JSON manifest, and the report
renders saved views from that manifest alone, with its own copy of the bundle: a results
folder someone sends you cannot run its JavaScript in your browser.
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
import torch
from jaxtyping import Float
from torch import Tensor

from .activations import iter_pooled, token_batches
from .contrast import Contrast
from .errors import LocalizeError, check_int
from .models import hf_tokenizer
from .protocol import Model, weight
from .sites import get_site
from .units import Units

__all__ = [
    "HTMLView",
    "ViewPart",
    "head_attention_view",
    "head_writes",
    "read_view",
    "token_activations",
    "top_stimuli",
    "top_stimuli_view",
    "unit_tokens_view",
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


def token_activations(
    model: Model, text: str, units: Units, *, prepend_bos: bool | None = None
) -> tuple[list[str], Float[Tensor, "pos n_units"]]:
    """Per-token activations of each selected unit (row-major order) on one text."""
    units.check_model(model)
    return _unit_columns(model, text, units.site, units.indices(), prepend_bos)


def _unit_columns(
    model: Model, text: str, site_name: str, idx: Tensor, prepend_bos: bool | None
) -> tuple[list[str], Tensor]:
    if len(idx) == 0:
        raise LocalizeError("The unit set is empty: nothing to show.")
    site = get_site(site_name)
    batch = token_batches(model, [text], batch_size=1, prepend_bos=prepend_bos)[0]
    names = {site.hook_name(layer) for layer in idx[:, 0].tolist()}
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.input_ids, names_filter=lambda n: n in names)
    columns = []
    for layer, unit in idx.tolist():
        acts = cache[site.hook_name(layer)][0]
        columns.append(acts.reshape(acts.shape[0], -1)[:, unit])
    tokens = [hf_tokenizer(model).decode([t]) for t in batch.input_ids[0].tolist()]
    return tokens, torch.stack(columns, dim=1)


def unit_tokens_view(
    model: Model,
    units: Units,
    texts: Sequence[str],
    *,
    order: Float[Tensor, "layer unit"] | None = None,
    max_units: int = 12,
    prepend_bos: bool | None = None,
) -> HTMLView:
    """Colored tokens: each selected unit's activation on each token of each text.

    Args:
        texts: a few texts, e.g. one sentence and one non-word list.
        units: the units to show: the first ``max_units`` by ``order`` (a score per unit,
            e.g. the localizer's t; highest first), or in layer order without it.
    """
    import circuitsvis as cv

    if not isinstance(units, Units) or isinstance(texts, Units):
        raise LocalizeError("unit_tokens_view takes (model, units, texts).")
    units.check_model(model)
    idx = _ranked(units, order, max_units)
    labels = [f"L{layer}.{unit}" for layer, unit in idx.tolist()]
    parts = []
    for text in texts:
        tokens, acts = _unit_columns(model, text, units.site, idx, prepend_bos)
        view = cv.tokens.colored_tokens_multi(tokens, acts, labels)
        parts.append(ViewPart.from_circuitsvis(text, view))
    return HTMLView(parts)


def _texts(texts: Contrast | str | Sequence[str]) -> tuple[list[str], list[str | None]]:
    if isinstance(texts, str):
        texts = Contrast.builtin(texts)
    if isinstance(texts, Contrast):
        pairs = [(t, c) for c, items in texts.conditions.items() for t in items]
        return [t for t, _ in pairs], [c for _, c in pairs]
    texts = list(texts)
    if not texts:
        raise LocalizeError("No texts given: pass a list of texts or a Contrast.")
    return texts, [None] * len(texts)


def _ranked(units: Units, order: Float[Tensor, "layer unit"] | None, n: int) -> Tensor:
    idx = units.indices()
    if len(idx) == 0:
        raise LocalizeError("The unit set is empty: nothing to show.")
    if order is not None:
        idx = idx[order[units.mask].argsort(descending=True)]
    return idx[:n]


def top_stimuli(
    model: Model,
    units: Units,
    texts: Contrast | str | Sequence[str],
    *,
    order: Float[Tensor, "layer unit"] | None = None,
    n_units: int = 8,
    k: int = 3,
    pooling: str = "last",
    absolute: bool = True,
    batch_size: int = 32,
) -> pd.DataFrame:
    """The texts on which each selected unit responds most.

    Args:
        texts: a list of texts, a :class:`Contrast` or a built-in contrast's name (then a
            ``condition`` column says where each text comes from).
        order: a score per unit (e.g. the localizer's t): show the first ``n_units`` by it.
        pooling: ``last`` token (the language localizer's) or ``mean``.
        absolute: rank by |activation| (as the localizer's t-test does) or by activation.

    Returns:
        One row per (unit, rank): ``unit`` (``L<layer>.<index>``), ``layer``, ``index``,
        ``rank``, ``text``, ``condition``, ``activation`` (pooled, signed).
    """
    units.check_model(model)
    check_int("n_units", n_units, 1)
    check_int("k", k, 1)
    all_texts, conditions = _texts(texts)
    idx = _ranked(units, order, n_units)
    site = get_site(units.site)
    layers = sorted(set(idx[:, 0].tolist()))
    names = [site.hook_name(layer) for layer in layers]
    acts = torch.empty(len(all_texts), len(idx))
    for index, pooled in iter_pooled(
        model, all_texts, names, pooling=pooling, batch_size=batch_size
    ):
        for column, (layer, unit) in enumerate(idx.tolist()):
            acts[index, column] = pooled[site.hook_name(layer)][:, unit].float()
    rank_by = acts.abs() if absolute else acts
    rows = []
    for column, (layer, unit) in enumerate(idx.tolist()):
        best = rank_by[:, column].argsort(descending=True)[:k].tolist()
        for rank, i in enumerate(best, start=1):
            rows.append(
                {
                    "unit": f"L{layer}.{unit}",
                    "layer": layer,
                    "index": unit,
                    "rank": rank,
                    "text": all_texts[i],
                    "condition": conditions[i],
                    "activation": float(acts[i, column]),
                }
            )
    return pd.DataFrame(rows)


def top_stimuli_view(
    model: Model,
    units: Units,
    texts: Contrast | str | Sequence[str],
    *,
    prepend_bos: bool | None = None,
    **kwargs: Any,
) -> HTMLView:
    """:func:`top_stimuli` as colored tokens: the top texts of all shown units, one after
    another; choose a unit in the view to color every token by that unit's activation.
    Keyword arguments are :func:`top_stimuli`'s."""
    import circuitsvis as cv

    table = top_stimuli(model, units, texts, **kwargs)
    labels = list(dict.fromkeys(table["unit"]))
    idx = torch.tensor(
        table.drop_duplicates("unit")[["layer", "index"]].to_numpy(), dtype=torch.long
    )
    tokens: list[str] = []
    values = []
    for text in dict.fromkeys(table["text"]):
        text_tokens, acts = _unit_columns(model, text, units.site, idx, prepend_bos)
        tokens += [*text_tokens, "\n"]
        values += [acts.float(), torch.zeros(1, len(labels))]
    view = cv.tokens.colored_tokens_multi(tokens, torch.cat(values), labels)
    summary = table.pivot_table(index="rank", columns="unit", values="text", aggfunc="first")
    table = summary[labels].reset_index()
    return HTMLView([ViewPart.from_circuitsvis("Top stimuli per unit", view, table)])


def head_writes(
    model: Model,
    units: Units,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    prepend_bos: bool | None = None,
) -> pd.DataFrame:
    """The attention heads that write most into selected residual-stream units.

    A head in layer j writes ``z_h @ W_O[j, h]`` into the residual stream, which every
    ``resid_post`` of layer j or later carries. Its score is the mean over the texts' tokens
    of ``|write|`` on each selected unit downstream of it, summed over those units.

    Returns:
        One row per head, highest ``write`` first: ``layer``, ``head``, ``write``,
        ``n_downstream`` (selected units at its layer or later) and ``write_per_unit``.
    """
    if units.site != "resid_post":
        raise LocalizeError(
            f"head_writes needs residual-stream units (site 'resid_post'), not {units.site!r}."
        )
    units.check_model(model)
    if len(units) == 0:
        raise LocalizeError("The unit set is empty: no head writes into it.")
    n_layers = units.n_layers
    # downstream[j, i]: how many selected units of dimension i sit at layer j or later
    downstream = units.mask.flip(0).cumsum(0).flip(0).float()
    last = int(units.layers()[-1])
    names = [get_site("attn_z").hook_name(layer) for layer in range(last + 1)]
    w_o = weight(model, "W_O").detach().float()
    n_heads = int(w_o.shape[1])
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    n_tokens = 0
    for batch in token_batches(model, list(texts), batch_size=batch_size, prepend_bos=prepend_bos):
        with torch.no_grad():
            _, cache = model.run_with_cache(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                names_filter=lambda n: n in names,
            )
        weights = batch.attention_mask.float()
        n_tokens += int(weights.sum())
        for layer in range(last + 1):
            dims = downstream[layer].nonzero().flatten()
            if len(dims) == 0:
                continue
            z = cache[names[layer]].float()
            write = torch.einsum("bphe,hed->bphd", z, w_o[layer][:, :, dims]).abs()
            per_head = torch.einsum("bphd,d,bp->h", write, downstream[layer, dims], weights)
            total[layer] += per_head.double()
    layers, heads = torch.meshgrid(torch.arange(n_layers), torch.arange(n_heads), indexing="ij")
    n_down = downstream.sum(1, keepdim=True).expand(n_layers, n_heads)
    frame = pd.DataFrame(
        {
            "layer": layers.flatten().numpy(),
            "head": heads.flatten().numpy(),
            "write": (total / n_tokens).flatten().numpy(),
            "n_downstream": n_down.flatten().numpy().astype(int),
        }
    )
    frame["write_per_unit"] = frame["write"] / frame["n_downstream"].clip(lower=1)
    return frame.sort_values("write", ascending=False, ignore_index=True)


def head_attention_view(
    model: Model,
    heads: pd.DataFrame | Sequence[tuple[int, int]],
    texts: Sequence[str],
    *,
    prepend_bos: bool | None = None,
) -> HTMLView:
    """Attention patterns of some heads (``(layer, head)`` pairs, or the first rows of
    :func:`head_writes`) on each text, e.g. one sentence and one non-word list."""
    import circuitsvis as cv

    if isinstance(heads, pd.DataFrame):
        heads = list(zip(heads["layer"].tolist(), heads["head"].tolist(), strict=True))
    heads = [(int(layer), int(head)) for layer, head in heads]
    if not heads:
        raise LocalizeError("No heads given: pass (layer, head) pairs or head_writes(...).")
    n_heads = int(model.cfg.n_heads)
    bad = [h for h in heads if not (0 <= h[0] < model.cfg.n_layers and 0 <= h[1] < n_heads)]
    if bad:
        raise LocalizeError(
            f"Head {bad[0]} does not exist: this model has {model.cfg.n_layers} layers of "
            f"{n_heads} heads."
        )
    names = {f"blocks.{layer}.attn.hook_pattern" for layer, _ in heads}
    parts = []
    for text in texts:
        batch = token_batches(model, [text], batch_size=1, prepend_bos=prepend_bos)[0]
        with torch.no_grad():
            _, cache = model.run_with_cache(batch.input_ids, names_filter=lambda n: n in names)
        patterns = torch.stack(
            [cache[f"blocks.{layer}.attn.hook_pattern"][0, head] for layer, head in heads]
        )
        tokens = [hf_tokenizer(model).decode([t]) for t in batch.input_ids[0].tolist()]
        view = cv.attention.attention_heads(
            tokens=tokens,
            attention=patterns.float(),
            attention_head_names=[f"L{layer}H{head}" for layer, head in heads],
        )
        parts.append(ViewPart.from_circuitsvis(text, view))
    return HTMLView(parts)
