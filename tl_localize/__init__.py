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
from .attribution import Attribution, check_attribution, plot_check, unit_attribution
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
from .join import join, join_summary, plot_join, plot_join_layers
from .localize import PRESETS, Localization, LocalizeConfig, localize
from .models import load_model
from .networks import Overlap, overlap, plot_networks, plot_profile, profile
from .report import write_report
from .sites import SITES, Site
from .units import Units
from .views import (
    head_attention_view,
    head_writes,
    top_stimuli,
    top_stimuli_view,
    unit_tokens_view,
)

__all__ = [
    "PRESETS",
    "SITES",
    "Attribution",
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
    "check_attribution",
    "compare_ablation",
    "evaluate",
    "generation_sample",
    "head_attention_view",
    "head_writes",
    "high_magnitude_units",
    "join",
    "join_summary",
    "layer_alignment",
    "load_model",
    "localize",
    "overlap",
    "plot_ablation",
    "plot_brain_alignment",
    "plot_check",
    "plot_join",
    "plot_join_layers",
    "plot_layer_alignment",
    "plot_networks",
    "plot_profile",
    "profile",
    "sentence_features",
    "top_stimuli",
    "top_stimuli_view",
    "unit_attribution",
    "unit_means",
    "unit_tokens_view",
    "write_report",
]

__version__ = "0.1.0"
