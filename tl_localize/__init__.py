"""tl_localize: functional localizers for language models, on TransformerLens.

>>> from tl_localize import load_model, localize
>>> model = load_model()                                  # doctest: +SKIP
>>> loc = localize(model, "language", top=0.01)           # doctest: +SKIP
>>> loc.units.per_layer()                                 # doctest: +SKIP
"""

from . import evaluate
from .ablation import (
    ablated,
    ablation_hooks,
    generation_sample,
    high_magnitude_units,
    unit_means,
)
from .brain import (
    BrainData,
    brain_alignment,
    layer_alignment,
    plot_brain_alignment,
    plot_layer_alignment,
    sentence_features,
)
from .compare import compare_ablation, plot_ablation
from .contrast import Contrast
from .errors import LocalizeError
from .localize import PRESETS, Localization, LocalizeConfig, localize
from .models import load_model
from .networks import Overlap, overlap, plot_networks, plot_profile, profile
from .sites import SITES, Site
from .units import Units

__all__ = [
    "PRESETS",
    "SITES",
    "BrainData",
    "Contrast",
    "Localization",
    "LocalizeConfig",
    "LocalizeError",
    "Overlap",
    "Site",
    "Units",
    "ablated",
    "ablation_hooks",
    "brain_alignment",
    "compare_ablation",
    "evaluate",
    "generation_sample",
    "high_magnitude_units",
    "layer_alignment",
    "load_model",
    "localize",
    "overlap",
    "plot_ablation",
    "plot_brain_alignment",
    "plot_layer_alignment",
    "plot_networks",
    "plot_profile",
    "profile",
    "sentence_features",
    "unit_means",
]

__version__ = "0.1.0"
