"""Sites: which activations count as units.

A site is a TransformerLens hook-name pattern with one hook per layer and a width (how many
units each layer has). The table below is data: add a row to add a site.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import LocalizeError
from .protocol import Model

__all__ = ["SITES", "Site", "get_site"]


@dataclass(frozen=True)
class Site:
    """A unit site.

    Attributes:
        name: short name (``resid_post``).
        hook: hook-name template with ``{layer}``.
        width: which config fields multiply to the number of units per layer.
        description: what a unit is here.
    """

    name: str
    hook: str
    width: tuple[str, ...]
    description: str

    def hook_name(self, layer: int) -> str:
        """The hook name of this site at ``layer``."""
        return self.hook.format(layer=layer)

    def n_units(self, model: Model) -> int:
        """Units per layer in ``model`` (activations are flattened after the batch and
        position axes, so per-head sites such as ``attn_z`` have ``n_heads * d_head``)."""
        width = 1
        for field in self.width:
            value = getattr(model.cfg, field, None)
            if not value:
                raise LocalizeError(
                    f"Site {self.name!r} needs cfg.{field}, which this model does not set."
                )
            width *= int(value)
        return width


SITES: dict[str, Site] = {
    site.name: site
    for site in (
        Site(
            "resid_post",
            "blocks.{layer}.hook_resid_post",
            ("d_model",),
            "block output: the residual stream after block l (the reference's units)",
        ),
        Site(
            "mlp_post",
            "blocks.{layer}.mlp.hook_post",
            ("d_mlp",),
            "MLP neurons: the hidden activation that the output projection reads",
        ),
        Site("mlp_out", "blocks.{layer}.hook_mlp_out", ("d_model",), "MLP output, per dimension"),
        Site(
            "attn_out",
            "blocks.{layer}.hook_attn_out",
            ("d_model",),
            "attention output, per dimension",
        ),
        Site(
            "attn_z",
            "blocks.{layer}.attn.hook_z",
            ("n_heads", "d_head"),
            "per-head attention values before the output projection (unit = head x dim)",
        ),
    )
}


def get_site(site: str | Site, model: Model | None = None) -> Site:
    """Look up a site by name; check that ``model`` has its hooks when given."""
    if isinstance(site, Site):
        resolved = site
    elif site in SITES:
        resolved = SITES[site]
    else:
        raise LocalizeError(f"Unknown site {site!r}. Sites: {sorted(SITES)}.")
    if model is not None:
        missing = [
            resolved.hook_name(layer)
            for layer in range(model.cfg.n_layers)
            if resolved.hook_name(layer) not in model.hook_dict
        ]
        if missing:
            raise LocalizeError(
                f"This model has no hook {missing[0]!r} for site {resolved.name!r}. Its "
                f"block-0 hooks are: "
                f"{sorted(n for n in model.hook_dict if n.startswith('blocks.0.'))}."
            )
    return resolved
