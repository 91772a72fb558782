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

__version__ = "0.2.0"
quiet_notebook_bars()  # before transformers imports tqdm.auto; a no-op outside notebooks

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "AblationComparison": "compare",
    "AblationConfig": "config",
    "Attribution": "attribution",
    "AttributionCheck": "attribution",
    "AttributionConfig": "config",
    "BrainAlignment": "brain",
    "BrainConfig": "config",
    "BrainData": "brain",
    "Contrast": "contrast",
    "Localization": "localize",
    "LocalizeConfig": "config",
    "LocalizeError": "errors",
    "Model": "protocol",
    "Overlap": "networks",
    "PRESETS": "localize",
    "ReliabilityConfig": "config",
    "SITES": "sites",
    "Study": "study",
    "StudyResult": "study",
    "Site": "sites",
    "TASKS": "tasks",
    "Task": "tasks",
    "Units": "units",
    "ablated": "ablation",
    "ablation_hooks": "ablation",
    "brain_alignment": "brain",
    "check_model": "checks",
    "check_attribution": "attribution",
    "compare_ablation": "compare",
    "generation_sample": "ablation",
    "get_task": "tasks",
    "head_attention_view": "views",
    "head_writes": "views",
    "high_magnitude_units": "ablation",
    "join": "join",
    "join_summary": "join",
    "layer_alignment": "brain",
    "load_model": "models",
    "localize": "localize",
    "overlap": "networks",
    "plot_ablation": "compare",
    "plot_brain_alignment": "brain",
    "plot_check": "attribution",
    "plot_join": "join",
    "plot_join_layers": "join",
    "plot_layer_alignment": "brain",
    "plot_networks": "networks",
    "plot_profile": "networks",
    "profile": "networks",
    "register_task": "tasks",
    "run_study": "study",
    "reliability": "reliability",
    "LocalizerPower": "reliability",
    "sentence_features": "brain",
    "top_stimuli": "views",
    "top_stimuli_view": "views",
    "unit_attribution": "attribution",
    "unit_means": "ablation",
    "unit_tokens_view": "views",
    "write_report": "report",
}
_SUBMODULES = ("data", "evaluate", "study", "tasks")

__all__ = [
    "PRESETS",
    "SITES",
    "TASKS",
    "AblationComparison",
    "AblationConfig",
    "Attribution",
    "AttributionCheck",
    "AttributionConfig",
    "BrainAlignment",
    "BrainConfig",
    "BrainData",
    "Contrast",
    "Localization",
    "LocalizeConfig",
    "LocalizeError",
    "LocalizerPower",
    "Model",
    "Overlap",
    "ReliabilityConfig",
    "Site",
    "Study",
    "StudyResult",
    "Task",
    "Units",
    "ablated",
    "ablation_hooks",
    "brain_alignment",
    "check_attribution",
    "check_model",
    "compare_ablation",
    "data",
    "evaluate",
    "generation_sample",
    "get_task",
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
    "register_task",
    "reliability",
    "run_study",
    "sentence_features",
    "tasks",
    "top_stimuli",
    "top_stimuli_view",
    "unit_attribution",
    "unit_means",
    "unit_tokens_view",
    "write_report",
]


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
    from . import data, evaluate, tasks
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
