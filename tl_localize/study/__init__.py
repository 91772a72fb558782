"""Studies: the paper's whole comparison over many models in one command, resumable, on Ray.

A :class:`Study` names models, networks, an ablation design, tasks, brain data and
attribution; :func:`run_study` runs it as a graph of jobs (each with its own results folder)
locally or on Ray and returns a :class:`StudyResult`. See docs/studies.md.
"""

from .lineage import unit_lineage
from .plan import Job, model_key, plan_study
from .results import StudyResult, study_status
from .runner import EXECUTORS, estimate_memory, run_study
from .spec import (
    AblationSpec,
    AttributionSpec,
    BrainDataSpec,
    BrainSpec,
    ModelSpec,
    NetworkSpec,
    Study,
)

__all__ = [
    "EXECUTORS",
    "AblationSpec",
    "AttributionSpec",
    "BrainDataSpec",
    "BrainSpec",
    "Job",
    "ModelSpec",
    "NetworkSpec",
    "Study",
    "StudyResult",
    "estimate_memory",
    "model_key",
    "plan_study",
    "run_study",
    "study_status",
    "unit_lineage",
]
