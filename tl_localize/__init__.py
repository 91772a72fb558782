"""tl_localize: functional localizers for language models, on TransformerLens.

>>> from tl_localize import load_model, localize
>>> model = load_model()                                  # doctest: +SKIP
>>> loc = localize(model, "language", top=0.01)           # doctest: +SKIP
>>> loc.units.per_layer()                                 # doctest: +SKIP
"""

from .contrast import Contrast
from .errors import LocalizeError
from .localize import PRESETS, Localization, LocalizeConfig, localize
from .models import load_model
from .sites import SITES, Site
from .units import Units

__all__ = [
    "PRESETS",
    "SITES",
    "Contrast",
    "Localization",
    "LocalizeConfig",
    "LocalizeError",
    "Site",
    "Units",
    "load_model",
    "localize",
]

__version__ = "0.1.0"
