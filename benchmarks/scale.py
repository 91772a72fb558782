"""Cost of localizing as the model grows: random-init models of real shapes (SmolLM2-135M,
360M and 1.7B), in float32 and bfloat16.

Each model and dtype runs in a fresh process: the model is built with
``AutoModelForCausalLM.from_config`` (random weights: the cost does not depend on them) and
wrapped with ``TransformerBridge.boot_transformers`` with the default model's tokenizer; the
process runs the bare batched forward of the full model over the stimuli (the floor, the
unembedding included), then ``localize`` on the same stimuli, then scores them
(``token_logprobs``, a study's evaluation pass; untimed). The peak is the process's
resident-set high-water mark over all of it (interpreter and libraries, weights, the three
passes), set against the study's estimate (``tl_localize.study.estimate_memory``, sized
for the same batch and the longest stimulus). Ratios of time are against the floor of the
row's own dtype and against the float32 floor of the same shape, both measured in the same
run.

    python benchmarks/scale.py                    # 3 shapes x 2 dtypes, 64 stimuli
    python benchmarks/scale.py --quick            # 135M and 360M only
    python benchmarks/scale.py --only 1.7B:bfloat16 --n 32
    python benchmarks/scale.py --device cuda      # peak is torch.cuda.max_memory_allocated

On a CPU without bfloat16 arithmetic (AVX2 only) the bfloat16 times are slow and say
nothing about the hardware that runs bfloat16; the ratio to the bfloat16 floor still
measures what ``localize`` adds to the forward in that dtype.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    SHAPES,
    TINY_SHAPES,
    gib,
    language_contrast,
    random_model,
    rss_kib,
    run_fresh,
    save_config,
)

DTYPES = ("float32", "bfloat16")
CONFIGS = Path(tempfile.gettempdir()) / "tl_localize_scale_configs"


def run_variant(variant: str, n: int, device: str, batch_size: int) -> dict:
    import torch

    from tl_localize import localize
    from tl_localize.activations import token_batches
    from tl_localize.scoring import token_logprobs
    from tl_localize.study import ModelSpec, estimate_memory

    label, dtype_name = variant.split(":")
    shape = {**SHAPES, **TINY_SHAPES}[label]
    dtype = getattr(torch, dtype_name)
    contrast = language_contrast(n)
    texts = contrast.positive + contrast.negative
    cuda = device.startswith("cuda")
    base = rss_kib() * 1024
    start = time.perf_counter()
    model = random_model(f"random-{label}", shape, dtype, device)
    load_s = time.perf_counter() - start
    loaded = torch.cuda.memory_allocated() if cuda else rss_kib() * 1024
    n_params = sum(p.numel() for p in model.original_model.parameters())
    batches = token_batches(model, texts, batch_size=batch_size)
    tokens = max(int(b.input_ids.shape[1]) for b in batches)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def floor() -> None:
        with torch.no_grad():
            for batch in batches:
                ids, mask = batch.on(torch.device(device))
                model.original_model(input_ids=ids, attention_mask=mask)
        sync()

    with torch.no_grad():  # warm-up
        model.original_model(
            **model.hf_tokenizer(texts[:2], return_tensors="pt", padding=True).to(device)
        )
    start = time.perf_counter()
    floor()
    floor_s = time.perf_counter() - start
    start = time.perf_counter()
    localize(model, contrast, batch_size=batch_size, progress=False)
    sync()
    localize_s = time.perf_counter() - start
    token_logprobs(model, texts, batch_size=batch_size)  # a study's scoring pass (memory)
    peak = torch.cuda.max_memory_allocated() if cuda else rss_kib("VmHWM") * 1024
    spec = ModelSpec(label=label, spec=str(CONFIGS / label), dtype=dtype_name, device=device)
    estimate = estimate_memory(spec, min(batch_size, len(texts)), tokens)
    return {
        "variant": variant,
        "params": n_params,
        "tokens": tokens,
        "load_s": load_s,
        "base_bytes": base,
        "loaded_bytes": loaded,
        "floor_s": floor_s,
        "localize_s": localize_s,
        "peak_bytes": peak,
        "estimate_bytes": estimate["needed_bytes"],
        "estimate_parameters": estimate["parameters"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="135M and 360M only")
    parser.add_argument("--only", default=None, help="a comma list of SHAPE:DTYPE (135M:float32)")
    parser.add_argument("--n", type=int, default=64, help="stimuli, half of each condition")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes: checks the script")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.n, args.device, args.batch_size)))
        return
    shapes = TINY_SHAPES if args.tiny else SHAPES
    names = [f"{s}:{d}" for s in shapes for d in DTYPES if not (args.quick and s == "1.7B")]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    for label, shape in shapes.items():
        save_config(shape, CONFIGS / label)
    extra = ("--n", str(args.n), "--device", args.device, "--batch-size", str(args.batch_size))
    results = {}
    for name in names:
        results[name] = run_fresh(__file__, name, *extra)
        r = results[name]
        print(json.dumps(r), file=sys.stderr)
        print(f"  {name}: floor {r['floor_s']:.1f} s, localize {r['localize_s']:.1f} s, "
              f"peak {gib(r['peak_bytes'])} GiB", file=sys.stderr)  # fmt: skip
    peak_what = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    print(f"{args.n} stimuli of the built-in language contrast, batch {args.batch_size}, "
          f"device {args.device}\n")  # fmt: skip
    print(
        f"| model | params | dtype | floor (s) | localize (s) | x own floor | x float32 floor "
        f"| {peak_what} (GiB) | bytes / param | estimate (GiB) | estimate / peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        label, dtype = name.split(":")
        f32 = results.get(f"{label}:float32")
        x_f32 = f"{r['localize_s'] / f32['floor_s']:.2f}" if f32 else "-"
        print(
            f"| {label} | {r['params'] / 1e6:.0f}M | {dtype} | {r['floor_s']:.1f} | "
            f"{r['localize_s']:.1f} | {r['localize_s'] / r['floor_s']:.2f} | {x_f32} | "
            f"{gib(r['peak_bytes'])} | {r['peak_bytes'] / r['params']:.1f} | "
            f"{gib(r['estimate_bytes'])} | {r['estimate_bytes'] / r['peak_bytes']:.2f} |"
        )


if __name__ == "__main__":
    main()
