"""A 3-model study (the default model and two tiny random models of other shapes, saved as
local Hugging Face folders) run by the local executor and by Ray, in one run: time, model
loads per model, Ray's overhead over local (start-up included), and the time to re-run the
finished study (nothing to do: no model may load). Prints a markdown table per size:

- ``small``: a 16-text contrast and one pair per paradigm (seconds of work: Ray's start-up
  shows in full);
- ``builtin``: the built-in language contrast (480 stimuli) and the whole built-in suite
  (334 pairs), one control of each kind: the size of a real study's jobs.

    python benchmarks/study_speed.py [--sizes small,builtin]   # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's conftest
from conftest import save_tiny_hf
from tl_localize.study import Study, run_study

STIMULI = {
    "S": ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
          "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass",
          "an elk stood still", "the ram ran up the hill"],
    "N": ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop",
          "fft yyq wwe", "gzq pqt lln", "rrm ssd qqw"],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,builtin")
    for size in parser.parse_args().sizes.split(","):
        run(size)


def run(size: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="study-speed-"))
    tiny = {
        arch: save_tiny_hf(root / arch, arch, seed=i) for i, arch in enumerate(("llama", "gpt2"))
    }
    rows = [{"text": t, "condition": c} for c, texts in STIMULI.items() for t in texts]
    pd.DataFrame(rows).to_csv(root / "small.csv", index=False)
    study = Study.from_dict(
        {
            "name": "speed",
            "models": [
                {"label": "smollm2", "dtype": "float32"},
                {"label": "llama", "spec": str(tiny["llama"])},
                {"label": "gpt2", "spec": str(tiny["gpt2"])},
            ],
            "networks": [
                {
                    "name": "lang",
                    "contrast": str(root / "small.csv"),
                    "positive": "S",
                    "negative": "N",
                    "top": [0.01],
                }
                if size == "small"
                else {"name": "lang", "contrast": "language", "top": [0.01]}
            ],
            "ablation": {"n_random": 1, "n_boot": 200},
            "tasks": {"builtin": {"n_per_paradigm": 1} if size == "small" else {}},
        }
    )
    results = {}
    for executor in ("local", "ray"):
        start = time.perf_counter()
        result = run_study(study, root / executor, executor=executor, progress=False)
        results[executor] = (time.perf_counter() - start, result)
    start = time.perf_counter()
    again = run_study(study, root / "local", progress=False)
    rerun = time.perf_counter() - start
    local_s, local = results["local"]
    ray_s, ray = results["ray"]
    try:
        pd.testing.assert_frame_equal(local.frame(), ray.frame(), rtol=1e-6)
        same = True
    except AssertionError:
        same = False
    n_jobs = len(local.plan)
    print(f"\n{size}: {n_jobs} jobs over 3 models; Ray frame equals local: {same}\n")
    print("| run | time (s) | model loads per model | x local |")
    print("|---|---|---|---|")
    print(f"| local executor | {local_s:.1f} | {local.run_counts['loads']} | 1.00 |")
    print(f"| Ray executor, local instance (start-up included) | {ray_s:.1f} | "
          f"{ray.run_counts['loads']} | {ray_s / local_s:.2f} |")  # fmt: skip
    print(f"| re-run of the finished study | {rerun:.2f} | {again.run_counts['loads'] or 'none'} "
          f"| {rerun / local_s:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
