"""What tl_localize needs of a model, as a typed protocol.

Every function that runs a model takes a :class:`Model`: a TransformerLens
``TransformerBridge`` satisfies it (``load_model`` returns one, and
``TransformerBridge.boot_native`` builds a tiny one), and so does anything else with the same
hook interface. ``load_model`` also sets ``model.hf_tokenizer`` (the model's own tokenizer);
code reads it through :func:`tl_localize.models.hf_tokenizer`, which falls back to
``model.tokenizer``.

What every result of an analysis provides is :class:`Result`: a tidy table, the finding in
words, a figure, an HTML card, and a results folder that loads back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Hook", "Hooks", "Model", "ModelConfig", "Result", "weight"]

# A TransformerLens forward hook: (hook name, fn(activation, hook) -> activation or None)
Hook = tuple[str, Callable[..., Any]]
Hooks = Sequence[Hook]


class ModelConfig(Protocol):
    """The configuration fields tl_localize reads (``model.cfg``)."""

    model_name: str
    n_layers: int
    d_model: int
    d_mlp: int | None
    n_heads: int
    d_head: int
    n_ctx: int
    d_vocab: int


@runtime_checkable
class Model(Protocol):
    """A causal language model with TransformerLens' hook interface."""

    cfg: Any  # a ModelConfig; Any at run time so that bridge configs of any class pass
    tokenizer: Any
    hook_dict: Mapping[str, Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any: ...

    def hooks(self, *args: Any, **kwargs: Any) -> Any: ...

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...


def weight(model: Model, name: str) -> Any:
    """A model's stacked weight by its TransformerLens name (``W_U``, ``W_O``, ``W_out``) or
    a component (``ln_final``). Not part of :class:`Model`: checking that a model has them
    would read them, and a model offloaded to disk cannot be read without loading them."""
    return getattr(model, name)


@runtime_checkable
class Result(Protocol):
    """What every result type holds to (:class:`~tl_localize.localize.Localization`,
    :class:`~tl_localize.compare.AblationComparison`,
    :class:`~tl_localize.brain.BrainAlignment`, :class:`~tl_localize.attribution.Attribution`,
    :class:`~tl_localize.attribution.AttributionCheck`,
    :class:`~tl_localize.reliability.LocalizerPower`,
    :class:`~tl_localize.study.StudyResult`):

    - ``to_frame()``: a tidy table, one row per unit, set or size;
    - ``summary()``: the finding in a sentence or two, with the numbers;
    - ``plot()``: a matplotlib figure;
    - ``_repr_html_()``: the card a notebook shows;
    - ``save(folder, force=False)``: a results folder, written atomically, whose
      ``record.json`` carries the result's ``kind``, its ``config``, the model's signature
      and the package versions;
    - ``load(folder, model=None)`` (a classmethod): the result back from such a folder,
      refusing another kind's folder, a damaged one, or (with ``model``) one made for
      another model. :func:`tl_localize.results.load_result` picks the loader by the
      record's kind.
    """

    def to_frame(self) -> pd.DataFrame: ...

    def summary(self) -> str: ...

    def plot(self) -> Any: ...

    def _repr_html_(self) -> str: ...

    def save(self, folder: str | Path, *, force: bool = False) -> Path: ...

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> Result: ...
