"""Time and peak memory of localizing the language network on the default model.

Each variant runs in a fresh subprocess; peak memory is the growth of the resident set over
the loaded model (the kernel's high-water mark is reset after loading, via
/proc/self/clear_refs). Prints a markdown table; each variant's time is given against the
bare forward of its own dtype (``hf_floor`` or ``hf_floor_bf16``) and against the float32
floor, both measured in the same run.

    python benchmarks/localize_speed.py            # all variants (about 12 minutes, 2 cores)
    python benchmarks/localize_speed.py --quick    # skip the 4800-stimulus run
    python benchmarks/localize_speed.py --only hf_floor,preset,preset_exact
    python benchmarks/localize_speed.py --only hf_floor,hf_floor_bf16,localize,localize_bf16 --n 96
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import language_contrast, reset_peak, rss_kib, run_fresh

VARIANTS = {
    "hf_floor": "plain batched HF forward (the floor; batch 32, full model)",
    "hf_floor_bf16": "plain batched HF forward, model loaded in bfloat16 (its own floor)",
    "localize": "localize, defaults (batch 32, no truncation)",
    "preset": "localize, preset='alkhamissi2025' (batched: 32, length-sorted, right-padded)",
    "preset_exact": "localize, preset='alkhamissi2025', batch_size=1 (the exact mode)",
    "reference_loop": "reference loop: 1 item/pass, float64 store, scipy t-test",
    "localize_bf16": "localize, defaults, model loaded in bfloat16",
    "localize_x10": "localize, defaults, 4800 stimuli (480 x 10)",
}
SAVE = Path(tempfile.gettempdir()) / "tl_localize_localize_speed"


def run_variant(name: str, n: int | None = None) -> dict:
    import numpy as np
    import torch
    from scipy import stats as sps

    from tl_localize import Contrast, load_model, localize
    from tl_localize.activations import token_batches

    bf16 = name.endswith("_bf16")
    model = load_model(dtype="bfloat16" if bf16 else "float32", device="cpu")
    contrast = language_contrast(n)
    texts = contrast.positive + contrast.negative
    with torch.no_grad():  # warm-up
        model.original_model(**model.hf_tokenizer(texts[:2], return_tensors="pt", padding=True))
    reset_peak()
    base = rss_kib("VmRSS")
    start = time.perf_counter()
    loc = None
    if name in ("hf_floor", "hf_floor_bf16"):
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
        for cond in (contrast.positive_condition, contrast.negative_condition):
            rows = []
            for text in contrast.conditions[cond]:
                enc = tok(text, truncation=True, max_length=12, return_tensors="pt")
                with torch.no_grad():
                    hf(**enc)
                rows.append(np.stack([store[i][0, -1].double().numpy() for i in range(len(store))]))
            acts[cond] = np.stack(rows)
        t = sps.ttest_ind(*(np.abs(a) for a in acts.values()), axis=0, equal_var=False).statistic
        np.argsort(-t.reshape(-1))[: int(0.01 * t.size)]
    else:
        raise SystemExit(f"unknown variant {name}")
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM")
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


def _floor_of(variant: str) -> str:
    return "hf_floor_bf16" if variant.endswith("_bf16") else "hf_floor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip the 4800-stimulus run")
    parser.add_argument("--only", default=None, help="a comma list of variants")
    parser.add_argument(
        "--n", type=int, default=None, help="the first N/2 stimuli of each condition (all: 480)"
    )
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.n)))
        return
    names = [n for n in VARIANTS if not (args.quick and n == "localize_x10")]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    results = {}
    for name in names:
        extra = () if args.n is None else ("--n", str(args.n))
        results[name] = run_fresh(__file__, name, *extra)
        print(f"  {name}: {results[name]['seconds']:.1f} s", file=sys.stderr)

    def ratio(name: str, floor: str) -> str:
        if floor not in results:
            return "-"
        return f"{results[name]['seconds'] / results[floor]['seconds']:.2f}"

    print(
        "| variant | what | time (s) | x own-dtype floor | x float32 floor "
        "| peak extra memory (MiB) |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {VARIANTS[name]} | {r['seconds']:.1f} | {ratio(name, _floor_of(name))} | "
            f"{ratio(name, 'hf_floor')} | {r['peak_extra_mib']:.0f} |"
        )
    print()
    for a, b in (("preset", "preset_exact"), ("localize_bf16", "localize")):
        if {a, b} <= results.keys():
            print(f"- {_agreement(a, b)}")


if __name__ == "__main__":
    main()
