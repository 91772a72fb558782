"""Attribution patching against real activation patching on the default model.

    python benchmarks/attribution_speed.py

Attribution patching estimates the effect of patching every unit at a site from one forward
and backward pass per sentence; real patching needs one forward pass per unit. On 64
aligned pairs of the built-in suite, this times ``unit_attribution`` at ``resid_post``
(17,280 units) at three batch sizes, and real patching of 8 units (the clean sentences with
one unit taking its corrupted-run values; the corrupted runs are cached once), and prints a
markdown table with the cost per unit and the ratio, both measured in this run.
"""

from __future__ import annotations

import time

import torch

from tl_localize import load_model, unit_attribution
from tl_localize.attribution import _patched_logprobs, pair_batches
from tl_localize.models import hf_tokenizer


def main() -> None:
    model = load_model()
    n_items, n_patched = 64, 8
    unit_attribution(model, "resid_post", n_items=8, progress=False)  # warm-up
    timings = {}
    for batch_size in (8, 16, 32):
        start = time.perf_counter()
        att = unit_attribution(
            model, "resid_post", n_items=n_items, batch_size=batch_size, progress=False
        )
        timings[batch_size] = time.perf_counter() - start
    n_units = att.scores["patch_mean"].numel()

    batches = pair_batches(att.items, 32, hf_tokenizer(model).pad_token_id)
    units = att.scores["patch_abs"].reshape(-1).topk(n_patched).indices.tolist()
    width = att.scores["patch_abs"].shape[1]
    names = sorted({f"blocks.{i // width}.hook_resid_post" for i in units})
    start = time.perf_counter()
    corrupted = []  # the corrupted runs, once (as check_attribution does)
    for _, _, bad, mask in batches:
        with torch.inference_mode():
            _, cache = model.run_with_cache(bad, attention_mask=mask, names_filter=names)
        corrupted.append({n: cache[n].reshape(*bad.shape, -1) for n in names})
    for index in units:
        layer, unit = divmod(index, width)
        name = f"blocks.{layer}.hook_resid_post"
        for (_, good, _, mask), acts in zip(batches, corrupted, strict=True):
            _patched_logprobs(model, good, mask, name, unit, acts[name][..., unit])
    patched = time.perf_counter() - start

    best = min(timings.values())
    per_unit_patch = patched / n_patched
    print(f"{n_items} pairs, site resid_post ({n_units} units)")
    print("| method | units | time (s) | s per unit | full site (s) | vs attribution |")
    print("|---|---|---|---|---|---|")
    for batch_size, seconds in timings.items():
        print(
            f"| attribution patching, batch {batch_size} | {n_units} | {seconds:.1f} | "
            f"{seconds / n_units:.1e} | {seconds:.1f} | {seconds / best:.2f} |"
        )
    full = per_unit_patch * n_units
    print(
        f"| real patching, batch 32 | {n_patched} | "
        f"{patched:.1f} | {per_unit_patch:.2f} | {full:.0f} (extrapolated) | "
        f"{full / best:.0f} |"
    )


if __name__ == "__main__":
    main()
