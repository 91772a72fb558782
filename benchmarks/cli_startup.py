"""How fast the command line starts: ``tl-localize --help``, ``tasks``, ``study status`` and a
re-run of a finished study (every job done), each in a fresh process as a user runs it, with
Python's own start-up and ``import pandas`` as floors. For each: the best and median wall
time over ``--repeats`` runs, the best CPU time (user + system; steadier than wall time on a
busy machine), and which of torch, transformers and TransformerLens the command imported
(read from ``python -X importtime``). Prints a markdown table.

The study (one tiny random model saved as a local Hugging Face folder, a 16-text contrast,
one pair per paradigm) is run once first, by the checkout measured. ``--checkout`` measures
another checkout of the project (for example the commit before a change) with the same
study files:

    python benchmarks/cli_startup.py [--repeats 5] [--checkout PATH]   # ~2 min, 2 cores
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's conftest
from _common import write_small_contrast

from conftest import save_tiny_hf

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "transformer_lens")


def _study(root: Path) -> Path:
    save_tiny_hf(root / "llama", "llama")
    write_small_contrast(root / "small.csv")
    spec = root / "study.toml"
    spec.write_text(
        f'name = "cli-startup"\n[[models]]\nlabel = "llama"\nspec = "{root / "llama"}"\n'
        f'dtype = "float32"\n[[networks]]\nname = "lang"\ncontrast = "{root / "small.csv"}"\n'
        'positive = "S"\nnegative = "N"\ntop = [0.05]\n[ablation]\nn_random = 1\n'
        "n_boot = 200\n[tasks.builtin]\nn_per_paradigm = 1\n"
    )
    return spec


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system) and stderr of one fresh process (run in the
    study's folder: ``python -m`` puts the working folder first on the path)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, cwd=tempfile.gettempdir()
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr


def _imported(argv: list[str], env: dict[str, str]) -> str:
    stderr = _run([argv[0], "-X", "importtime", *argv[1:]], env)[2]
    names = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if "|" in line}
    found = [name for name in HEAVY if name in names]
    return ", ".join(found) if found else "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checkout", default=str(ROOT), help="the checkout to measure")
    args = parser.parse_args()
    checkout = Path(args.checkout).resolve()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    root = Path(tempfile.mkdtemp(prefix="cli-startup-"))
    spec, out = _study(root), root / "out"
    cli = [sys.executable, "-m", "tl_localize.cli"]
    _run([*cli, "study", "run", str(spec), "--out", str(out), "--quiet"], env)  # the study
    commands = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "python -c 'import pandas' (floor)": [sys.executable, "-c", "import pandas"],
        "tl-localize --help": [*cli, "--help"],
        "tl-localize tasks": [*cli, "tasks"],
        "tl-localize study status DIR": [*cli, "study", "status", str(out)],
        "tl-localize study run spec.toml --out DIR (all done)": [
            *cli,
            "study",
            "run",
            str(spec),
            "--out",
            str(out),
        ],
    }
    print(f"checkout: {checkout}; load average before: {os.getloadavg()[0]:.1f}\n")
    print("| command | wall (s): best | median | CPU (s): best | imports |")
    print("|---|---|---|---|---|")
    for name, argv in commands.items():
        runs = [_run(argv, env)[:2] for _ in range(args.repeats)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"| {name} | {min(walls):.2f} | {statistics.median(walls):.2f} | {min(cpus):.2f} "
            f"| {_imported(argv, env)} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
