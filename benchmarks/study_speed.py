"""A 3-model study (the default model and two tiny random models of other shapes, saved as
local Hugging Face folders) run by the local executor and by Ray, in one run: time, model
loads per model, Ray's overhead over local (start-up included), and the time to re-run the
finished study (nothing to do: no model may load). Each executor runs in a fresh Python
process, as ``tl-localize study run`` does (imports included), alternating local and Ray
``--repeats`` times; the best time of each gives the ratio (this machine's speed drifts by
10-15% over minutes). Prints a markdown table per size:

- ``small``: a 16-text contrast and one pair per paradigm (seconds of work: Ray's start-up
  shows in full);
- ``builtin``: the built-in language contrast (480 stimuli) and the whole built-in suite
  (334 pairs), one control of each kind: the size of a real study's jobs.

    python benchmarks/study_speed.py [--sizes small,builtin] [--repeats 2]   # ~12 min, 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's conftest
from _common import write_small_contrast

from conftest import save_tiny_hf
from tl_localize.study import Study, StudyResult, run_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,builtin")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each executor")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        run(size, args)


def run(size: str, args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="study-speed-"))
    tiny = {
        arch: save_tiny_hf(root / arch, arch, seed=i) for i, arch in enumerate(("llama", "gpt2"))
    }
    write_small_contrast(root / "small.csv")
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
                    "top": [0.05],
                }
                if size == "small"
                else {"name": "lang", "contrast": "language", "top": [0.05]}
            ],
            "ablation": {"n_random": 1, "n_boot": 200},
            "tasks": {"builtin": {"n_per_paradigm": 1} if size == "small" else {}},
        }
    )
    spec_file = root / "study.json"
    spec_file.write_text(json.dumps(study.to_dict()))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for attempt in range(args.repeats):
        for executor in ("local", "ray"):
            out = root / f"{executor}-{attempt}"
            times[executor].append(run_fresh(spec_file, out, executor))
    local_out, ray_out = root / "local-0", root / "ray-0"
    start = time.perf_counter()
    again = run_study(study, local_out, progress=False)
    rerun = time.perf_counter() - start
    local, ray = StudyResult(local_out), StudyResult(ray_out)
    try:
        pd.testing.assert_frame_equal(local.frame(), ray.frame(), rtol=1e-6)
        same = True
    except AssertionError:
        same = False
    local_s, ray_s = min(times["local"]), min(times["ray"])
    n_jobs = len(local.plan)

    def shown(values: list[float]) -> str:
        return f"{min(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})"

    print(f"\n{size}: {n_jobs} jobs over 3 models; Ray frame equals local: {same}\n")
    print("| run (a fresh process each, as the CLI) | time (s): best (each run) | "
          "model loads per model | x local |")  # fmt: skip
    print("|---|---|---|---|")
    print(f"| local executor | {shown(times['local'])} | {loads(local_out)} | 1.00 |")
    print(f"| Ray executor, local instance (start-up included) | {shown(times['ray'])} | "
          f"{loads(ray_out)} | {ray_s / local_s:.2f} |")  # fmt: skip
    print(f"| re-run of the finished study (in this process) | {rerun:.2f} | "
          f"{again.run_counts['loads'] or 'none'} | {rerun / local_s:.3f} |")  # fmt: skip


RUN = """
import json, sys
from tl_localize.study import Study, StudyResult, run_study
spec, out, executor = sys.argv[1:]
run_study(Study.from_dict(json.load(open(spec))), out, executor=executor, progress=False)
"""


def run_fresh(spec_file: Path, out: Path, executor: str) -> float:
    """Wall time of ``run_study`` in a fresh Python process (imports included, as the CLI)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, str(spec_file), str(out), executor], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def loads(out: Path) -> dict[str, int]:
    """Model loads per model, from the study's log."""
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {e["model"]: e["loads"] for e in events if e["event"] == "loads"}


if __name__ == "__main__":
    main()
