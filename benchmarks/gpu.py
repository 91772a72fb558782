"""The toolkit on a GPU, in one command (under 8 minutes on one H100).

    python benchmarks/gpu.py                       # CUDA: the default model and real shapes
    python benchmarks/gpu.py --device cpu --tiny   # the same code path on tiny models (CPU)

Three parts, each printing a markdown table:

1. The test tier, run by pytest in a subprocess on this machine (``--tests``: the fast tier
   by default; ``--tiny``: tests/test_stats.py). The fixtures build their models on the CPU
   (conftest.py has no device setting), so this checks the suite on the GPU machine; the
   GPU paths themselves are exercised by parts 2 and 3.
2. The default model (``load_model(dtype="auto", device=DEVICE)``: bfloat16 on a GPU), on
   the 480 built-in language stimuli: the bare batched forward of the full model (the
   floor), ``localize``, ``compare_ablation`` of the selected units with 6 controls (3
   uniform, 3 magnitude-matched) on the built-in suite, and brain alignment on the Tuckute
   et al. 2024 sentences (``--brain``; skipped with a note where the file is absent), each
   against the floor. ``--tiny``: a random-init 2-layer model, 32 stimuli, 2 pairs per
   paradigm of the suite, 200 sentences.
3. Random-init models of SmolLM2-135M's, 360M's and 1.7B's shapes (bfloat16 where the
   device is fast at it, else float32) at batch sizes 32, 64, 128 and 256: ``localize`` on
   the 480 stimuli and its peak memory (``torch.cuda.max_memory_allocated`` on a GPU, the
   resident-set high-water mark on the CPU), against the model's floor at batch 32.
   ``--tiny``: two tiny shapes, batch sizes 8 and 16, 32 stimuli.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import SHAPES, TINY_SHAPES, gib, language_contrast, random_model, reset_peak, rss_kib

ROOT = Path(__file__).resolve().parents[1]
BRAIN = ROOT.parent / "shared/data/brain/tuckute2024_language_network.csv"
FAST_TIER = "not model and not notebook and not browser and not ray and not study"


class Device:
    """Synchronising, and peak memory, on a GPU or the CPU."""

    def __init__(self, name: str) -> None:
        import torch

        self.name = name
        self.cuda = name.startswith("cuda")
        if self.cuda and not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: no CUDA device here; use --device cpu --tiny.")

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()

    def reset(self) -> None:
        import torch

        self.sync()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            reset_peak()

    def peak(self) -> int:
        import torch

        self.sync()
        return torch.cuda.max_memory_allocated() if self.cuda else rss_kib("VmHWM") * 1024

    def timed(self, fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
        self.sync()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.sync()
        return time.perf_counter() - start, out


def floor(model: Any, texts: list[str], batch_size: int, device: Device) -> float:
    """The bare batched forward of the full Hugging Face model over ``texts``."""
    import torch

    from tl_localize.activations import input_device, token_batches

    batches = token_batches(model, texts, batch_size=batch_size)

    def run() -> None:
        with torch.no_grad():
            for batch in batches:
                ids, mask = batch.on(input_device(model))
                model.original_model(input_ids=ids, attention_mask=mask)

    return device.timed(run)[0]


def part_tests(args: argparse.Namespace) -> None:
    selection = ["tests/test_stats.py"] if args.tiny else ["-m", args.tests]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection]
    start = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    summary = (out.stdout.strip().splitlines() or ["(no output)"])[-1].strip("= ")
    print("| test tier | result | time (s) |")
    print("|---|---|---|")
    print(f"| `pytest {' '.join(selection)}` | {summary} | {seconds:.0f} |")
    print()
    if out.returncode:
        print(out.stdout[-3000:], file=sys.stderr)


def part_default_model(args: argparse.Namespace, device: Device) -> None:
    import pandas as pd
    import torch

    from tl_localize import BrainData, brain_alignment, compare_ablation, load_model, localize
    from tl_localize.models import resolve_dtype

    n = 32 if args.tiny else None
    contrast = language_contrast(n)
    texts = contrast.positive + contrast.negative
    if args.tiny:
        dtype = resolve_dtype("auto", device.name)
        model = random_model("tiny-a", TINY_SHAPES["tiny-a"], dtype, device.name)
        what = f"random-init tiny model ({dtype})"
    else:
        model = load_model(dtype="auto", device=device.name)
        what = f"the default model ({next(model.original_model.parameters()).dtype})"
    floor(model, texts[:8], 8, device)  # warm-up
    rows = [("bare batched forward (the floor)", floor(model, texts, 32, device))]
    seconds, loc = device.timed(localize, model, contrast, progress=False)
    rows.append(("localize", seconds))
    seconds, _ = device.timed(
        compare_ablation, model, loc, ["builtin"], n_random=3, match=("uniform", "magnitude"),
        n_per_paradigm=2 if args.tiny else None, progress=False,
    )  # fmt: skip
    suite = "builtin suite, 2 pairs per paradigm" if args.tiny else "builtin suite"
    rows.append((f"compare_ablation, {suite}, intact + selected + 6 controls", seconds))
    notes = []
    if args.brain.is_file():
        frame = pd.read_csv(args.brain)
        if args.tiny:
            frame = frame.head(200)
        data = BrainData.from_frame(frame, name="tuckute2024")
        seconds, _ = device.timed(brain_alignment, model, loc, data, progress=False)
        rows.append((f"brain_alignment, {len(data)} sentences, selected + 6 controls + all",
                     seconds))  # fmt: skip
    else:
        notes.append(f"brain alignment skipped: no {args.brain} (pass --brain CSV)")
    print(f"{what}, {len(texts)} language stimuli, device {device.name}")
    print()
    print("| what | time (s) | x floor |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / rows[0][1]:.2f} |")
    for note in notes:
        print(f"\n{note}")
    print()
    del model
    if device.cuda:
        torch.cuda.empty_cache()


def part_shapes(args: argparse.Namespace, device: Device) -> None:
    import torch

    from tl_localize import localize
    from tl_localize.models import resolve_dtype

    shapes = TINY_SHAPES if args.tiny else SHAPES
    batch_sizes = (8, 16) if args.tiny else (32, 64, 128, 256)
    contrast = language_contrast(32 if args.tiny else None)
    texts = contrast.positive + contrast.negative
    dtype = resolve_dtype("auto", device.name)
    peak_what = "peak GPU memory" if device.cuda else "peak RSS"
    print(f"random-init models of real shapes, {dtype}, {len(texts)} language stimuli")
    print()
    print(f"| model | params | batch | floor at batch {batch_sizes[0]} (s) | localize (s) "
          f"| x floor | {peak_what} (GiB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label, shape in shapes.items():
        model = random_model(f"random-{label}", shape, dtype, device.name)
        params = sum(p.numel() for p in model.original_model.parameters())
        floor(model, texts[:8], 8, device)  # warm-up
        base = floor(model, texts, batch_sizes[0], device)
        for batch_size in batch_sizes:
            device.reset()
            seconds, _ = device.timed(
                localize, model, contrast, batch_size=batch_size, check=False, progress=False
            )
            row = (f"| {label} | {params / 1e6:.0f}M | {batch_size} | {base:.2f} | "
                   f"{seconds:.2f} | {seconds / base:.2f} | {gib(device.peak())} |")  # fmt: skip
            print(row, flush=True)
        del model
        if device.cuda:
            torch.cuda.empty_cache()
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny models: checks the script")
    parser.add_argument("--tests", default=FAST_TIER, help="pytest -m expression of part 1")
    parser.add_argument("--skip-tests", action="store_true", help="skip part 1")
    parser.add_argument("--brain", type=Path, default=BRAIN, help="brain-data CSV of part 2")
    args = parser.parse_args()
    device = Device(args.device)
    start = time.perf_counter()
    if not args.skip_tests:
        part_tests(args)
    part_default_model(args, device)
    part_shapes(args, device)
    print(f"total {time.perf_counter() - start:.0f} s on {args.device}")


if __name__ == "__main__":
    main()
