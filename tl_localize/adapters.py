"""Per-architecture adapters: what a loaded bridge needs before its numbers can be trusted.

``load_model`` wraps each Hugging Face model in a TransformerLens ``TransformerBridge``; with
transformer-lens 4.3 and transformers 5.25 some combinations compute wrong numbers or fail,
and the fix belongs to the loaded model, not to the code that uses it. Each fix is a function
of the bridge; which fixes a model gets is data (:data:`ADAPTERS`, keyed by the Hugging Face
``model_type``; :data:`EVERY_MODEL` applies to all). Applying a fix twice does nothing.

- :func:`read_cache_kwarg` (every model): transformers 5.x hands each attention layer its
  KV cache as ``cache=`` (it was ``past_key_values=``); the bridge's attention reads only
  ``past_key_values`` or ``layer_past``, so with the cache on, the cache stays empty and each
  generated token attends to itself alone. Greedy generation with the KV cache then differs
  from generation without it (GPT-2, Llama, Mistral, Qwen 2/3, Gemma 2/3, Phi-3, OLMo 2 and
  StableLM; GPT-NeoX, OPT, Falcon, GPT-J and Bloom still name it ``layer_past``). The fix
  lets the bridge's attention read ``cache=`` as well.
- :func:`rotary_in_model_dtype` (OLMo 2): OLMo 2's rotary embedding returns cos/sin in
  float32 and its own ``apply_rotary_pos_emb`` casts the rotated queries and keys back to
  their dtype; the bridge rotates with Llama's function, which does not, so in bfloat16 the
  attention pattern (float32) meets bfloat16 values and the forward pass fails ("expected m1
  and m2 to have the same dtype"). The fix casts the rotated queries and keys back to the
  model's dtype, as OLMo 2 does.
- :func:`mlp_width_from` (OPT): the bridge takes OPT's MLP width to be ``4 * d_model`` (it
  does not read ``ffn_dim``), so a model with another width gets ``mlp_post`` units of the
  wrong width; the fix reads ``ffn_dim``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "ADAPTERS",
    "EVERY_MODEL",
    "adapt",
    "mlp_width_from",
    "read_cache_kwarg",
    "rotary_in_model_dtype",
]

_DONE = "_tl_localize_adapted"


def _attention_modules(model: Any) -> list[Any]:
    """The bridge's attention components (each has the bridge's KV-cache update)."""
    return [m for m in model.modules() if hasattr(type(m), "_update_kv_cache")]


def read_cache_kwarg(model: Any) -> None:
    """Let each attention component of ``model`` take its KV cache from ``cache=`` too."""
    for module in _attention_modules(model):
        update = module._update_kv_cache  # the class's method, bound to this module

        def update_kv_cache(
            k: torch.Tensor, v: torch.Tensor, _update: Any = update, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None:
                kwargs["past_key_values"] = kwargs.get("cache")
            return _update(k, v, **kwargs)

        module._update_kv_cache = update_kv_cache


def rotary_in_model_dtype(model: Any) -> None:
    """Cast the rotated queries and keys back to the dtype of the attention's weights."""
    for module in _attention_modules(model):
        weights = next(module.parameters(), None)
        if weights is None:
            continue
        for name in ("hook_rot_q", "hook_rot_k"):
            point = getattr(module, name, None)
            if point is None:
                continue

            def cast(_point: Any, _inputs: Any, output: Any, _weights: Any = weights) -> Any:
                if isinstance(output, torch.Tensor) and output.dtype != _weights.dtype:
                    return output.to(_weights.dtype)
                return None

            # a plain torch hook, not a TransformerLens one: reset_hooks() leaves it in place
            point.register_forward_hook(cast)


def mlp_width_from(field: str) -> Callable[[Any], None]:
    """A fix that sets ``cfg.d_mlp`` (the width of the ``mlp_post`` site) from the Hugging
    Face config's ``field``, for families whose MLP width the bridge does not read."""

    def mlp_width(model: Any) -> None:
        width = getattr(model.original_model.config, field, None)
        if width:
            model.cfg.d_mlp = int(width)

    mlp_width.__name__ = f"mlp_width_from_{field}"
    return mlp_width


Adapter = Callable[[Any], None]

EVERY_MODEL: tuple[Adapter, ...] = (read_cache_kwarg,)

ADAPTERS: dict[str, tuple[Adapter, ...]] = {
    "olmo2": (rotary_in_model_dtype,),
    "opt": (mlp_width_from("ffn_dim"),),
}


def adapt(model: Any, model_type: str | None) -> None:
    """Apply the fixes for ``model_type`` (and those for every model) to ``model`` once."""
    if getattr(model, _DONE, False):
        return
    for fix in (*EVERY_MODEL, *ADAPTERS.get(model_type or "", ())):
        fix(model)
    setattr(model, _DONE, True)
