"""Units: a selection of units at one site of one model.

A :class:`Units` is a boolean mask ``[n_layers, width]`` plus the site and the signature of
the model it was made for. It supports set algebra, per-layer counts, seeded random
controls, and saving to a single ``.safetensors`` file (tensor + JSON metadata, never pickle)
that refuses to load for a model of another name or shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int, Shaped
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch import Tensor

from .errors import LocalizeError
from .sites import get_site

__all__ = ["MATCHES", "Units", "unit_table"]

MATCHES = ("uniform", "layer", "magnitude")
FORMAT = "tl_localize.units/1"


class Units:
    """A set of units: ``mask[layer, unit]`` is True for selected units.

    Args:
        mask: bool tensor ``[n_layers, width]``.
        site: the site name (``resid_post``, ``mlp_post``, ...).
        model: the name of the model the mask belongs to (``model.cfg.model_name``).

    >>> a = Units(torch.tensor([[True, False], [False, True]]), "resid_post", "m")
    >>> b = Units(torch.tensor([[True, True], [False, False]]), "resid_post", "m")
    >>> len(a & b), len(a | b), a.jaccard(b)
    (1, 3, 0.3333333333333333)
    """

    def __init__(self, mask: Shaped[Tensor, "..."], site: str, model: str) -> None:
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or mask.ndim != 2:
            raise LocalizeError(
                f"A unit mask is a bool tensor [n_layers, width]; got {mask.dtype} with shape "
                f"{tuple(mask.shape)}."
            )
        self.mask = mask.detach().cpu()
        self.site = get_site(site).name
        self.model = model

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
            f"Units({len(self)} of {self.n_units} at {self.site!r} of {self.model!r}, "
            f"{len(self) / self.n_units:.3%})"
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Units)
            and self.site == other.site
            and self.model == other.model
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
        if (self.site, self.model, self.mask.shape) != (other.site, other.model, other.mask.shape):
            raise LocalizeError(
                f"Cannot combine {self!r} with {other!r}: unit sets must share the model, the "
                "site and the shape."
            )

    def _with_mask(self, mask: Tensor) -> Units:
        return Units(mask, self.site, self.model)

    def __and__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self._with_mask(self.mask & other.mask)

    def __or__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self._with_mask(self.mask | other.mask)

    def __sub__(self, other: Units) -> Units:
        self._check_compatible(other)
        return self._with_mask(self.mask & ~other.mask)

    def __invert__(self) -> Units:
        return self._with_mask(~self.mask)

    def jaccard(self, other: Units) -> float:
        """Intersection over union (0 when both are empty)."""
        union = len(self | other)
        return len(self & other) / union if union else 0.0

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
        it in log ``magnitude`` (``Localization.stats["magnitude"]``).
        """
        rng = np.random.default_rng(seed)
        free = ~self.mask.numpy()
        mask = np.zeros_like(free)
        if match == "magnitude":
            if magnitude is None or tuple(magnitude.shape) != tuple(self.mask.shape):
                raise LocalizeError(
                    "match='magnitude' needs magnitude=, a [n_layers, width] tensor of each "
                    "unit's mean |activation| (Localization.stats['magnitude'])."
                )
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
        return self._with_mask(torch.from_numpy(mask))

    # -- model checks and files ----------------------------------------------------------
    def check_model(self, model: Any) -> None:
        """Raise :class:`LocalizeError` unless these units fit ``model``."""
        site = get_site(self.site, model)
        shape = (int(model.cfg.n_layers), site.n_units(model))
        if (self.n_layers, self.width) != shape or self.model != model.cfg.model_name:
            raise LocalizeError(
                f"These units were made for {self.model!r} ({self.n_layers} layers x "
                f"{self.width} units at {self.site!r}); this model is "
                f"{model.cfg.model_name!r} ({shape[0]} x {shape[1]}). Localize again on this "
                "model."
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
            "model": self.model,
            "n_layers": str(self.n_layers),
            "width": str(self.width),
        }
        save_file({"mask": self.mask.to(torch.uint8).contiguous()}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path, model: Any | None = None) -> Units:
        """Read units saved by :meth:`save`; with ``model``, refuse a mask made for another."""
        path = Path(path)
        if path.is_dir():
            path = path / "units.safetensors"
        if not path.is_file():
            raise LocalizeError(f"No saved units at {path}.")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                mask = handle.get_tensor("mask")
        except (SafetensorError, OSError, json.JSONDecodeError) as error:
            raise LocalizeError(
                f"{path} is not a units file written by Units.save ({error})."
            ) from error
        if meta.get("format") != FORMAT:
            raise LocalizeError(
                f"{path} is not a units file written by Units.save (format "
                f"{meta.get('format')!r}, expected {FORMAT!r})."
            )
        units = cls(mask.bool(), meta["site"], meta["model"])
        if model is not None:
            units.check_model(model)
        return units


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
