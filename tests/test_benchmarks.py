"""The GPU benchmark's CPU path: ``benchmarks/gpu.py --device cpu --tiny`` runs the same code
as on a GPU (test tier, localize / ablation / brain alignment against the floor, shapes at
several batch sizes) on tiny models, so the script runs the first time it meets a GPU.
It reads the default model's tokenizer (``model`` tier)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cells(text: str) -> list[list[str]]:
    """The cells of every markdown table row in ``text``."""
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows]


def table_rows(text: str, first: str) -> list[list[str]]:
    """The rows whose first cell is ``first``."""
    return [row for row in cells(text) if row[0] == first]


@pytest.mark.model
def test_gpu_benchmark_runs_its_cpu_path_to_the_end(shared_data):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--tiny",
         "--brain", str(shared_data / "brain" / "tuckute2024_language_network.csv")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    (tests,) = table_rows(text, "`pytest tests/test_stats.py`")
    assert "passed" in tests[1] and "failed" not in tests[1]
    (floor,) = table_rows(text, "bare batched forward (the floor)")
    assert float(floor[1]) > 0 and floor[2] == "1.00"
    for what in ("localize", "compare_ablation", "brain_alignment"):
        (row,) = [r for r in cells(text) if r[0].startswith(what)]
        assert float(row[1]) > 0 and float(row[2]) > 0
    for label in ("tiny-a", "tiny-b"):
        rows = table_rows(text, label)
        assert [row[2] for row in rows] == ["8", "16"]
        assert all(float(row[6]) > 0.1 for row in rows)  # peak RSS in GiB: the process
    assert "total" in text.splitlines()[-1]
