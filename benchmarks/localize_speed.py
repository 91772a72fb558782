"""Time and peak memory of localizing the language network on the default model.

Each variant runs in a fresh subprocess; peak memory is the growth of the resident set over
the loaded model (the kernel's high-water mark is reset after loading, via
/proc/self/clear_refs). Prints a markdown table; ratios are against the first row, measured
in the same run.

    python benchmarks/localize_speed.py            # all variants (about 8 minutes, 2 cores)
    python benchmarks/localize_speed.py --quick    # skip the 4800-stimulus run
    python benchmarks/localize_speed.py --only hf_floor,preset,preset_exact
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "hf_floor": "plain batched HF forward (the floor; batch 32, full model)",
    "localize": "localize, defaults (batch 32, no truncation)",
    "preset": "localize, preset='alkhamissi2025' (batched: 32, length-sorted, right-padded)",
    "preset_exact": "localize, preset='alkhamissi2025', batch_size=1 (the exact mode)",
    "reference_loop": "reference loop: 1 item/pass, float64 store, scipy t-test",
    "localize_bf16": "localize, defaults, model loaded in bfloat16",
    "localize_x10": "localize, defaults, 4800 stimuli (480 x 10)",
}
SAVE = Path(tempfile.gettempdir()) / "tl_localize_localize_speed"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def run_variant(name: str) -> dict:
    import numpy as np
    import torch
    from scipy import stats as sps

    from tl_localize import Contrast, load_model, localize
    from tl_localize.activations import token_batches

    model = load_model(dtype="bfloat16" if name == "localize_bf16" else "float32")
    contrast = Contrast.builtin("language")
    texts = contrast.positive + contrast.negative
    with torch.no_grad():  # warm-up
        model.original_model(**model.hf_tokenizer(texts[:2], return_tensors="pt", padding=True))
    Path("/proc/self/clear_refs").write_text("5")
    base = _rss_kib("VmRSS")
    start = time.perf_counter()
    loc = None
    if name == "hf_floor":
        with torch.no_grad():
            for batch in token_batches(model, texts, batch_size=32):
                model.original_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    elif name in ("localize", "localize_bf16"):
        loc = localize(model, contrast, progress=False)
    elif name == "preset":
        loc = localize(model, contrast, preset="alkhamissi2025", progress=False)
    elif name == "preset_exact":
        loc = localize(model, contrast, preset="alkhamissi2025", batch_size=1, progress=False)
    elif name == "localize_x10":
        big = Contrast(
            "language_x10",
            {"s": contrast.positive * 10, "n": contrast.negative * 10},
            "s",
            "n",
            pooling="last",
        )
        localize(model, big, progress=False)
    elif name == "reference_loop":
        hf, tok = model.original_model, model.hf_tokenizer
        store: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(hf.model.layers):
            layer.register_forward_hook(
                lambda m, a, out, i=i: store.__setitem__(
                    i, out[0] if isinstance(out, tuple) else out
                )
            )
        acts = {}
        for cond in ("sentences", "nonwords"):
            rows = []
            for text in contrast.conditions[cond]:
                enc = tok(text, truncation=True, max_length=12, return_tensors="pt")
                with torch.no_grad():
                    hf(**enc)
                rows.append(np.stack([store[i][0, -1].double().numpy() for i in range(len(store))]))
            acts[cond] = np.stack(rows)
        t = sps.ttest_ind(
            np.abs(acts["sentences"]), np.abs(acts["nonwords"]), axis=0, equal_var=False
        ).statistic
        np.argsort(-t.reshape(-1))[: int(0.01 * t.size)]
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    if loc is not None:  # kept for the agreement columns
        SAVE.mkdir(exist_ok=True)
        np.savez(SAVE / f"{name}.npz", t=loc.stats["t"].numpy(), mask=loc.units.mask.numpy())
    return {"variant": name, "seconds": seconds, "peak_extra_mib": (peak - base) / 1024}


def _agreement(a: str, b: str) -> str:
    import numpy as np

    x, y = np.load(SAVE / f"{a}.npz"), np.load(SAVE / f"{b}.npz")
    both, either = (x["mask"] & y["mask"]).sum(), (x["mask"] | y["mask"]).sum()
    return (
        f"{a} vs {b}: mask Jaccard {both / either:.4f}, identical mask "
        f"{bool((x['mask'] == y['mask']).all())}, max |t difference| "
        f"{float(np.abs(x['t'] - y['t']).max()):.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip the 4800-stimulus run")
    parser.add_argument("--only", default=None, help="a comma list of variants")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant)))
        return
    names = [n for n in VARIANTS if not (args.quick and n == "localize_x10")]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    results = []
    for name in names:
        out = subprocess.run(
            [sys.executable, __file__, "--variant", name], capture_output=True, text=True
        )
        if out.returncode:
            raise SystemExit(out.stderr)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {name}: {results[-1]['seconds']:.1f} s", file=sys.stderr)
    floor = results[0]["seconds"]
    print("| variant | what | time (s) | x floor | peak extra memory (MiB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['variant']} | {VARIANTS[r['variant']]} | {r['seconds']:.1f} | "
            f"{r['seconds'] / floor:.2f} | {r['peak_extra_mib']:.0f} |"
        )
    print()
    done = {r["variant"] for r in results}
    for a, b in (("preset", "preset_exact"), ("localize_bf16", "localize")):
        if {a, b} <= done:
            print(f"- {_agreement(a, b)}")


if __name__ == "__main__":
    main()
