"""tl_localize: functional localizers for language models, on TransformerLens.

>>> from tl_localize import localize
>>> loc = localize(model, toy_contrast, top=6, progress=False)
>>> len(loc.units)
6

Importing the package is cheap and changes no global state: each public name is imported
from its module the first time it is used (``from tl_localize import localize`` imports
``tl_localize.localize`` and what it needs, and nothing else). The one exception is in a
Jupyter kernel without ipywidgets, where ``tqdm.auto`` is imported quietly so that progress
shows as text bars without a ``TqdmWarning`` (:mod:`tl_localize._progress`).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._progress import quiet_notebook_bars
from ._version import __version__

quiet_notebook_bars()  # before transformers imports tqdm.auto; a no-op outside notebooks

# The one list of the public API: each module and the public names it defines. ``__all__``,
# the lazy lookup below, ``dir()`` and the tests (tests/test_package.py: every name is
# documented in docs/api.md and imported in the TYPE_CHECKING block at the end) read it.
_PUBLIC: dict[str, tuple[str, ...]] = {
    "ablation": (
        "ablated",
        "ablation_hooks",
        "generation_sample",
        "high_magnitude_units",
        "unit_means",
    ),
    "attribution": (
        "Attribution",
        "AttributionCheck",
        "check_attribution",
        "plot_check",
        "unit_attribution",
    ),
    "brain": (
        "BrainAlignment",
        "BrainData",
        "brain_alignment",
        "layer_alignment",
        "plot_brain_alignment",
        "plot_layer_alignment",
        "sentence_features",
    ),
    "checks": ("check_model",),
    "compare": ("AblationComparison", "compare_ablation", "plot_ablation"),
    "config": (
        "AblationConfig",
        "AttributionConfig",
        "BrainConfig",
        "LocalizeConfig",
        "ReliabilityConfig",
    ),
    "contrast": ("Contrast",),
    "errors": ("LocalizeError",),
    "join": ("join", "join_summary", "plot_join", "plot_join_layers"),
    "localize": ("PRESETS", "Localization", "localize"),
    "models": ("load_model",),
    "networks": ("Overlap", "overlap", "plot_networks", "plot_profile", "profile"),
    "protocol": ("Model",),
    "reliability": ("LocalizerPower", "reliability"),
    "report": ("write_report",),
    "sites": ("SITES", "Site"),
    "study": ("Study", "StudyResult", "run_study"),
    "tasks": ("TASKS", "Task", "get_task", "register_task"),
    "units": ("Units",),
    "views": (
        "head_attention_view",
        "head_writes",
        "top_stimuli",
        "top_stimuli_view",
        "unit_tokens_view",
    ),
}
_SUBMODULES = ("data", "evaluate", "study", "tasks")  # public as modules too
_EXPORTS = {name: module for module, names in _PUBLIC.items() for name in names}
__all__ = sorted({*_EXPORTS, *_SUBMODULES})


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'tl_localize' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])


class _Package(types.ModuleType):
    """Two modules define a function of their own name (``localize.localize``,
    ``join.join``); importing such a submodule would otherwise rebind the package's
    attribute to the module. The package keeps the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # what type checkers and IDEs see
    from . import data, evaluate, study, tasks
    from .ablation import (
        ablated,
        ablation_hooks,
        generation_sample,
        high_magnitude_units,
        unit_means,
    )
    from .attribution import (
        Attribution,
        AttributionCheck,
        check_attribution,
        plot_check,
        unit_attribution,
    )
    from .brain import (
        BrainAlignment,
        BrainData,
        brain_alignment,
        layer_alignment,
        plot_brain_alignment,
        plot_layer_alignment,
        sentence_features,
    )
    from .checks import check_model
    from .compare import AblationComparison, compare_ablation, plot_ablation
    from .config import (
        AblationConfig,
        AttributionConfig,
        BrainConfig,
        LocalizeConfig,
        ReliabilityConfig,
    )
    from .contrast import Contrast
    from .errors import LocalizeError
    from .join import join, join_summary, plot_join, plot_join_layers
    from .localize import PRESETS, Localization, localize
    from .models import load_model
    from .networks import Overlap, overlap, plot_networks, plot_profile, profile
    from .protocol import Model
    from .reliability import LocalizerPower, reliability
    from .report import write_report
    from .sites import SITES, Site
    from .study import Study, StudyResult, run_study
    from .tasks import TASKS, Task, get_task, register_task
    from .units import Units
    from .views import (
        head_attention_view,
        head_writes,
        top_stimuli,
        top_stimuli_view,
        unit_tokens_view,
    )
