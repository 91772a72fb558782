"""Units: a selection of units at one site of one model.

A :class:`Units` is a boolean mask ``[n_layers, width]`` plus the site and the model it was
made for (its name and, when known, a fingerprint of its weights). It supports set algebra,
per-layer counts, seeded random controls, and saving to a single ``.safetensors`` file
(tensor + JSON metadata, never pickle) that refuses to load for a model of another name,
shape or weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int, Shaped
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch import Tensor

from .errors import Expected, LocalizeError, check_arguments, check_int
from .options import (
    DEFAULT_MATCH,
    DEFAULT_N_RANDOM,
    LEAST_ACTIVE_SHARE,
    MATCHES,
    NEEDS_MAGNITUDE,
)
from .precision import warn_precisions
from .protocol import Model
from .sites import SITES, get_site

__all__ = [
    "DEFAULT_MATCH",
    "DEFAULT_N_RANDOM",
    "MATCHES",
    "NEEDS_MAGNITUDE",
    "Units",
    "check_matches",
    "unit_table",
]

FORMAT = "tl_localize.units/1"


class Units:
    """A set of units: ``mask[layer, unit]`` is True for selected units.

    Args:
        mask: bool tensor ``[n_layers, width]``.
        site: the site name (``resid_post``, ``mlp_post``, ...).
        model_name: the name of the model the mask belongs to (``model.cfg.model_name``).
        fingerprint: a fingerprint of that model's weights
            (:func:`tl_localize.models.model_fingerprint`), when known: two checkpoints of
            one architecture under the same name are told apart by it.
        dtype: the dtype the model computed in when the units were selected
            (``"float32"``, ``"bfloat16"``), when known: sets computed in different
            precisions can be compared, and a comparison says so (rounding alone moves a
            few units of a 1% set: Jaccard 0.988 between bfloat16 and float32 on the
            default model).

    >>> a = Units(torch.tensor([[True, False], [False, True]]), "resid_post", "m")
    >>> b = Units(torch.tensor([[True, True], [False, False]]), "resid_post", "m")
    >>> len(a & b), len(a | b), a.jaccard(b)
    (1, 3, 0.3333333333333333)
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Units:
        # Checked here, before __init__ (and a runtime type checker wrapping it) sees them,
        # so that a wrong type is a LocalizeError like any other bad input.
        check_arguments("Units", Units.__init__, args, kwargs, _ARGUMENTS)
        return super().__new__(cls)

    def __init__(
        self,
        mask: Shaped[Tensor, "..."],
        site: str,
        model_name: str | None = None,
        *,
        fingerprint: str | None = None,
        dtype: str | None = None,
    ) -> None:
        if not isinstance(model_name, str) or not model_name:
            raise LocalizeError(
                f"Units need the name of the model they belong to (model_name=, "
                f"model.cfg.model_name); got {model_name!r}."
            )
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or mask.ndim != 2:
            raise LocalizeError(
                f"A unit mask is a bool tensor [n_layers, width]; got {mask.dtype} with shape "
                f"{tuple(mask.shape)}."
            )
        if 0 in mask.shape:
            raise LocalizeError(
                f"A unit mask needs at least one layer and one unit; got shape {tuple(mask.shape)}."
            )
        self.mask = mask.detach().cpu()
        self.site = get_site(site).name
        self.model_name = model_name
        self.fingerprint = fingerprint
        self.dtype = dtype

    # -- basic facts ---------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        return int(self.mask.shape[1])

    @property
    def n_units(self) -> int:
        """Units at the site in all layers together (selected or not)."""
        return self.n_layers * self.width

    def __len__(self) -> int:
        return int(self.mask.sum())

    def __repr__(self) -> str:
        return (
            f"Units({len(self)} of {self.n_units} at {self.site!r} of {self.model_name!r}, "
            f"{len(self) / self.n_units:.3%})"
        )

    def _repr_html_(self) -> str:
        from .cards import busiest_layers, card, layer_ranges, layers_figure

        counts = self.mask.sum(1).numpy()
        facts = {
            "model": self.model_name,
            "site": self.site,
            "units": f"{len(self):,} of {self.n_units:,} ({len(self) / self.n_units:.3%})",
            "most in layers": layer_ranges(busiest_layers(counts)) if len(self) else "-",
            "fingerprint": self.fingerprint,
            "dtype": self.dtype,
        }
        return card("Units", facts, layers_figure(counts) if len(self) else "")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Units)
            and self.site == other.site
            and self.model_name == other.model_name
            and _same_fingerprint(self.fingerprint, other.fingerprint)
            and torch.equal(self.mask, other.mask)
        )

    __hash__ = None  # type: ignore[assignment]

    def indices(self) -> Int[Tensor, "n 2"]:
        """``[layer, unit]`` index pairs of the selected units, in row-major order."""
        return self.mask.nonzero()

    def layers(self) -> list[int]:
        """Layers that hold at least one selected unit."""
        return [int(layer) for layer in self.mask.any(1).nonzero().flatten()]

    def per_layer(self) -> pd.DataFrame:
        """Selected units per layer: columns ``layer``, ``count``, ``fraction`` (of the layer)."""
        counts = self.mask.sum(1).numpy()
        return pd.DataFrame(
            {"layer": np.arange(self.n_layers), "count": counts, "fraction": counts / self.width}
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per selected unit: ``layer``, ``unit``."""
        idx = self.indices().numpy()
        return pd.DataFrame({"layer": idx[:, 0], "unit": idx[:, 1]})

    def hook_names(self) -> list[str]:
        """Hook names of the layers that hold selected units."""
        site = get_site(self.site)
        return [site.hook_name(layer) for layer in self.layers()]

    # -- set algebra ---------------------------------------------------------------------
    def _check_compatible(self, other: Units) -> None:
        if not isinstance(other, Units):
            raise TypeError(f"expected Units, got {type(other).__name__}")
        if (self.site, self.model_name, self.mask.shape) != (
            other.site,
            other.model_name,
            other.mask.shape,
        ) or not _same_fingerprint(self.fingerprint, other.fingerprint):
            raise LocalizeError(
                f"Cannot combine {self!r} with {other!r}: unit sets must share the model (name "
                "and weights), the site and the shape."
            )
        warn_precisions(self.dtype, other.dtype, "These unit sets")

    def with_mask(self, mask: Bool[Tensor, "layer unit"]) -> Units:
        """Another set of the same model and site, with ``mask``."""
        return Units(
            mask, self.site, self.model_name, fingerprint=self.fingerprint, dtype=self.dtype
        )

    def __and__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self.with_mask(self.mask & other.mask)

    def __or__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self.with_mask(self.mask | other.mask)

    def __sub__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self.with_mask(self.mask & ~other.mask)

    def __invert__(self) -> Units:
        return self.with_mask(~self.mask)

    def jaccard(self, other: Units) -> float:
        """Intersection over union (0 when both are empty); sets selected in different
        precisions are compared with a :class:`tl_localize.precision.PrecisionWarning`
        that says so."""
        self._check_compatible(other)
        union = int((self.mask | other.mask).sum())
        return int((self.mask & other.mask).sum()) / union if union else 0.0

    # -- random controls -----------------------------------------------------------------
    def random_like(
        self,
        seed: int,
        match: str = "uniform",
        magnitude: Float[Tensor, "layer unit"] | None = None,
        n_nearest: int = 5,
    ) -> Units:
        """As many units as this set, drawn from the units not in it.

        ``match="uniform"`` draws over all layers together (the reference control);
        ``"layer"`` keeps the number of units in each layer; ``"magnitude"`` also matches
        each selected unit's typical activation size: for each one (in random order) it
        draws one of the ``n_nearest`` unselected, unused units of the same layer closest to
        it in log ``magnitude`` (``Localization.stats["magnitude"]``); ``"least_active"``
        keeps the number of units in each layer and draws them from the layer's least
        active units: the ``ceil(LEAST_ACTIVE_SHARE * width)`` (10%) unselected units of the
        layer with the lowest ``magnitude`` (more if the layer holds more selected units than
        that, then every one of them is taken).
        """
        rng = np.random.default_rng(check_int("seed", seed, 0))
        free = ~self.mask.numpy()
        mask = np.zeros_like(free)
        if match in NEEDS_MAGNITUDE:
            if magnitude is None or tuple(magnitude.shape) != tuple(self.mask.shape):
                raise LocalizeError(
                    f"match={match!r} needs magnitude=, a [n_layers, width] tensor of each "
                    "unit's mean |activation| (Localization.stats['magnitude'])."
                )
            if not bool(torch.isfinite(magnitude).all()):
                raise LocalizeError(
                    "magnitude= holds NaN or infinite values, so no unit can be matched to "
                    "it; the statistics are damaged. Localize again, or match='uniform'."
                )
        if match == "least_active":
            assert magnitude is not None
            size = magnitude.double().numpy()
            n_low = math.ceil(LEAST_ACTIVE_SHARE * self.width)
            for layer, count in enumerate(self.mask.sum(1).tolist()):
                pool = np.flatnonzero(free[layer])
                if len(pool) < count:
                    raise LocalizeError(
                        f"Layer {layer} has {count} selected units and only {len(pool)} others; "
                        "a least-active control is impossible. Use match='uniform'."
                    )
                quiet = pool[np.argsort(size[layer, pool], kind="stable")[: max(n_low, count)]]
                mask[layer, rng.choice(quiet, size=count, replace=False)] = True
        elif match == "magnitude":
            assert magnitude is not None
            log_mag = np.log(magnitude.double().clamp_min(1e-12).numpy())
            selected = self.indices().numpy()
            for layer, unit in selected[rng.permutation(len(selected))]:
                pool = np.flatnonzero(free[layer] & ~mask[layer])
                if len(pool) == 0:
                    raise LocalizeError(
                        f"Layer {layer} has no unselected units left for a magnitude-matched "
                        "control. Use match='uniform'."
                    )
                distance = np.abs(log_mag[layer, pool] - log_mag[layer, unit])
                order = np.argsort(distance, kind="stable")[:n_nearest]
                close = order[distance[order] <= np.log(1.5)]
                mask[layer, pool[rng.choice(close)] if len(close) else pool[order[0]]] = True
        elif match == "uniform":
            pool = np.flatnonzero(free)
            if len(pool) < len(self):
                raise LocalizeError(
                    f"Cannot draw {len(self)} control units from the {len(pool)} unselected ones."
                )
            mask.flat[rng.choice(pool, size=len(self), replace=False)] = True
        elif match == "layer":
            for layer, count in enumerate(self.mask.sum(1).tolist()):
                pool = np.flatnonzero(free[layer])
                if len(pool) < count:
                    raise LocalizeError(
                        f"Layer {layer} has {count} selected units and only {len(pool)} others; "
                        "a layer-matched control is impossible. Use match='uniform'."
                    )
                mask[layer, rng.choice(pool, size=count, replace=False)] = True
        else:
            raise LocalizeError(f"Unknown match {match!r}; use one of {MATCHES}.")
        return self.with_mask(torch.from_numpy(mask))

    # -- model checks and files ----------------------------------------------------------
    def check_model(self, model: Model) -> None:
        """Raise :class:`LocalizeError` unless these units fit ``model``: its name, the
        site's shape in it, and (when both are known) the fingerprint of its weights."""
        from .models import model_fingerprint

        site = get_site(self.site, model)
        shape = (int(model.cfg.n_layers), site.n_units(model))
        if (self.n_layers, self.width) != shape or self.model_name != model.cfg.model_name:
            raise LocalizeError(
                f"These units were made for {self.model_name!r} ({self.n_layers} layers x "
                f"{self.width} units at {self.site!r}); this model is "
                f"{model.cfg.model_name!r} ({shape[0]} x {shape[1]}). Localize again on this "
                "model."
            )
        if self.fingerprint is not None:
            found = model_fingerprint(model)
            if found != self.fingerprint:
                raise LocalizeError(
                    f"These units were made for a model named {self.model_name!r} with other "
                    f"weights (fingerprint {self.fingerprint[:12]}, this model's "
                    f"{found[:12]}): another checkpoint or a retrained copy. Localize again "
                    "on this model."
                )

    def save(self, path: str | Path) -> Path:
        """Write the mask and its metadata to one ``.safetensors`` file."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "site": self.site,
            "model": self.model_name,
            "n_layers": str(self.n_layers),
            "width": str(self.width),
        }
        if self.fingerprint is not None:
            meta["fingerprint"] = self.fingerprint
        if self.dtype is not None:
            meta["dtype"] = self.dtype
        save_file({"mask": self.mask.to(torch.uint8).contiguous()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path, model: Model | None = None) -> Units:
        """Read units saved by :meth:`save`; with ``model``, refuse a mask made for another.

        The file is checked against itself: a boolean (0/1) mask of the shape its header
        declares, a known site, a model name."""
        path = Path(path)
        if path.is_dir():
            path = path / "units.safetensors"
        if not path.is_file():
            raise LocalizeError(f"No saved units at {path}.")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                keys = list(handle.keys())
                mask = handle.get_tensor("mask") if "mask" in keys else None
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise LocalizeError(
                f"{path} is not a units file written by Units.save ({error})."
            ) from error
        if meta.get("format") != FORMAT or mask is None:
            raise LocalizeError(
                f"{path} is not a units file written by Units.save (format "
                f"{meta.get('format')!r}, expected {FORMAT!r}, with a 'mask' tensor)."
            )
        try:
            declared = (int(meta["n_layers"]), int(meta["width"]))
            site, name = meta["site"], meta["model"]
        except (KeyError, ValueError) as error:
            raise LocalizeError(
                f"{path}: its header is damaged ({error!r} missing or not a number); write "
                "the units again."
            ) from None
        if tuple(mask.shape) != declared:
            raise LocalizeError(
                f"{path}: the mask has shape {tuple(mask.shape)} but its header declares "
                f"{declared}; the file is damaged. Write the units again."
            )
        if mask.dtype not in (torch.uint8, torch.bool) or not bool(
            ((mask == 0) | (mask == 1)).all()
        ):
            raise LocalizeError(
                f"{path}: the mask is not boolean (dtype {mask.dtype}, values other than 0 and "
                "1); the file is damaged. Write the units again."
            )
        if site not in SITES:
            raise LocalizeError(
                f"{path}: unknown site {site!r} in its header; sites: {sorted(SITES)}."
            )
        units = cls(
            mask.bool(), site, name, fingerprint=meta.get("fingerprint"), dtype=meta.get("dtype")
        )
        if model is not None:
            units.check_model(model)
        return units


def _same_fingerprint(a: str | None, b: str | None) -> bool:
    """Two fingerprints agree unless both are known and differ."""
    return a is None or b is None or a == b


def check_matches(match: str | Sequence[str]) -> list[str]:
    """Control kinds as a list, each one of :data:`MATCHES`."""
    matches = [match] if isinstance(match, str) else list(match)
    if not matches:
        raise LocalizeError(f"match names no control kind; use some of {MATCHES}.")
    for m in matches:
        if m not in MATCHES:
            raise LocalizeError(f"Unknown match {m!r}; use one of {MATCHES}.")
    return matches


_ARGUMENTS = {
    "mask": Expected(
        Tensor, "a bool tensor [n_layers, width] (torch.as_tensor(mask, dtype=torch.bool))"
    ),
    "site": Expected(str, f"a site name, one of {sorted(SITES)}"),
    "model_name": Expected((str, type(None)), "the model's name (model.cfg.model_name)"),
    "fingerprint": Expected((str, type(None)), "a weights fingerprint (a string) or None"),
    "dtype": Expected((str, type(None)), "the dtype's name ('float32', 'bfloat16') or None"),
}


def unit_table(tensors: dict[str, Tensor]) -> pd.DataFrame:
    """One row per unit (``layer``, ``unit``) with a column per ``[n_layers, width]`` tensor."""
    shapes = {tuple(t.shape) for t in tensors.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise LocalizeError(f"unit_table needs tensors of one [n_layers, width] shape: {shapes}.")
    n_layers, width = next(iter(shapes))
    layer, unit = np.divmod(np.arange(n_layers * width), width)
    frame = pd.DataFrame({"layer": layer, "unit": unit})
    for name, tensor in tensors.items():
        frame[name] = tensor.reshape(-1).numpy()
    return frame
