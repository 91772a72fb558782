"""The command line as a user runs it, in fresh processes: it starts without model code
(torch, transformers, TransformerLens), ends quietly when its output is closed early, and
prints on stderr only its own progress bars and one line per warning (nothing at all with
``--quiet``; third-party load messages only with ``--verbose``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tl_localize import LocalizeError
from tl_localize.cli import EXIT_BROKEN_PIPE, build_parser, main
from tl_localize.study import run_study

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "tl_localize.cli"]
HEAVY = ("torch", "transformers", "transformer_lens")
# runs the command line's main() and reports the heavy modules it imported, even when the
# command exits through SystemExit (--help)
PROBE = f"""
import sys
try:
    from tl_localize.cli import main
    code = main(sys.argv[1:])
finally:
    heavy = [m for m in {HEAVY!r} if m in sys.modules]
    sys.stderr.write(f"imported: {{heavy}}\\n")
sys.exit(code)
"""
STIMULI = {
    "S": ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
          "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass"],
    "N": ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop",
          "fft yyq wwe"],
}  # fmt: skip


def _env() -> dict[str, str]:
    """This checkout first on the path, whatever is installed."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600, check=False
    )


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("contrast")
    rows = [{"text": t, "condition": c} for c, texts in STIMULI.items() for t in texts]
    pd.DataFrame(rows).to_csv(folder / "small.csv", index=False)
    return folder / "small.csv"


@pytest.fixture(scope="module")
def planned_study(tmp_path_factory, small_csv, tiny_hf) -> tuple[Path, Path]:
    """A study folder planned and written with nothing run (``retry_failed`` with no failed
    job runs nothing and loads no model): its spec file and its folder."""
    root = tmp_path_factory.mktemp("study")
    spec = root / "study.toml"
    spec.write_text(
        f'name = "quiet"\n[[models]]\nlabel = "llama"\nspec = "{tiny_hf["llama"]}"\n'
        f'[[networks]]\nname = "lang"\ncontrast = "{small_csv}"\npositive = "S"\n'
        'negative = "N"\ntop = [0.05]\n[tasks.builtin]\nn_per_paradigm = 1\n'
    )
    result = run_study(spec, root / "out", retry_failed=True, progress=False)
    assert result.run_counts["loads"] == {} and set(result.status()["status"]) == {"pending"}
    return spec, root / "out"


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["tasks"],
        ["study", "status", "{out}"],
        ["study", "run", "{spec}", "--out", "{out}", "--retry-failed"],
    ],
    ids=["help", "tasks", "study-status", "study-rerun"],
)
def test_the_command_line_starts_without_model_code(command, planned_study, tmp_path):
    spec, out = planned_study
    argv = [part.format(spec=spec, out=out) for part in command]
    run = _run([sys.executable, "-c", PROBE, *argv], tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[-1] == "imported: []", run.stderr
    assert run.stdout.strip()  # the command did its work


@pytest.mark.parametrize(
    "command",
    [["--help"], ["tasks"], ["study", "status", "{out}"]],
    ids=["help", "tasks", "study-status"],
)
def test_output_closed_early_ends_quietly(command, planned_study, tmp_path):
    _, out = planned_study
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the command writes a byte (as `| head -0`)
    try:
        child = subprocess.Popen(
            [*CLI, *(part.format(out=out) for part in command)],
            stdout=writer, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(),
        )  # fmt: skip
    finally:
        os.close(writer)
    _, stderr = child.communicate(timeout=600)
    assert stderr == ""
    assert child.returncode == EXIT_BROKEN_PIPE == 141


def test_a_pipe_into_head_prints_its_line_and_nothing_on_stderr(planned_study, tmp_path):
    _, out = planned_study
    command = f"{' '.join(CLI)} study status {out} | head -1"
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=600, check=False,
    )  # fmt: skip
    assert run.stdout.split() == ["model", "job", "kind", "status", "time", "seconds"]
    assert run.stderr == ""
    assert run.returncode in (0, EXIT_BROKEN_PIPE)  # 0 when the table fit the pipe at once


def _warnings(stderr: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", stderr) if "warning" in line.lower()]


@pytest.mark.slow  # three fresh processes that load a model: `make test`, not test-fast
def test_quiet_and_one_line_warnings(small_csv, tiny_hf, tmp_path):
    # fdr at 1e-12 selects no unit on this contrast: one warning that matters
    base = [*CLI, "localize", "--model", str(tiny_hf["llama"]), "--contrast", str(small_csv),
            "--positive", "S", "--negative", "N", "--top", "fdr:1e-12"]  # fmt: skip
    quiet = _run([*base, "--out", "quiet", "--quiet"], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "selected 0 of" in quiet.stdout  # the results are still printed

    default = _run([*base, "--out", "default"], tmp_path)
    assert default.returncode == 0, default.stderr
    lines = _warnings(default.stderr)
    assert all(line.startswith("tl-localize: warning: ") for line in lines), lines
    assert len([line for line in lines if "No unit passes fdr at 1e-12" in line]) == 1, lines
    assert "Loading weights" not in default.stderr  # transformers' bar (shown with --verbose)
    assert "warnings.warn(" not in default.stderr  # no source lines
    assert "%|" in default.stderr  # the analysis's own progress bar stays

    # --verbose says where a warning came from
    verbose = _run([*base, "--out", "verbose", "--verbose"], tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    (warning,) = [line for line in _warnings(verbose.stderr) if "No unit passes fdr" in line]
    assert re.search(r"\(UserWarning at \S+\.py:\d+\)$", warning), warning
    # a flag removed in 0.3.0 is an input error in one line, with --verbose too
    old_flag = [*CLI, "ablate", "--units", "quiet", "--means-from", "language", "--out", "x"]
    removed = _run([*old_flag, "--verbose"], tmp_path)
    assert removed.returncode == 2, removed.stderr
    (error,) = removed.stderr.splitlines()
    assert "unrecognized arguments: --means-from" in error, error
    assert error.count("tl-localize") == 2, error  # "tl-localize: error: ..." and its --help


def test_a_usage_error_names_the_program_once(capsys):
    assert main(["localize", "--out", "x", "--bogus"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tl-localize: error: unrecognized arguments: --bogus"), line
    assert line.endswith("(see tl-localize --help)"), line


def test_every_command_takes_quiet_and_verbose():
    parser = build_parser()
    (group,) = parser._subparsers._group_actions  # every command of the parser is listed below
    assert set(group.choices) == {"localize", "reliability", "compare-ablation", "ablate",
                                  "brain-alignment", "brain", "unit-attribution", "attribute",
                                  "report", "check-model", "study", "tasks"}  # fmt: skip
    commands = [["localize", "--out", "x"], ["ablate", "--units", "u", "--out", "x"],
                ["brain", "--units", "u", "--data", "d", "--out", "x"],
                ["attribute", "--units", "u", "--out", "x"], ["report", "f"], ["check-model"],
                ["study", "run", "s", "--out", "x"], ["study", "status", "x"],
                ["study", "report", "x"], ["tasks"], ["reliability", "--out", "x"]]  # fmt: skip
    for command in commands:
        quiet, verbose = parser.parse_args([*command, "--quiet"]), parser.parse_args(command)
        assert quiet.quiet and not quiet.verbose and not verbose.quiet
        assert parser.parse_args([*command, "--verbose"]).verbose
        with pytest.raises(LocalizeError, match="not allowed with argument"):
            parser.parse_args([*command, "--quiet", "--verbose"])
