"""The first study of docs/studies.md runs as written: copied out of the page into an
empty folder and run with ``tl-localize study run`` on Ray, offline (the embedded default
model and its untrained twin, the language and MD networks, the built-in tasks), then run
again (model, study and ray tiers)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tl_localize.study import StudyResult

ROOT = Path(__file__).resolve().parents[1]


def first_toml() -> str:
    text = (ROOT / "docs" / "studies.md").read_text(encoding="utf-8")
    found = re.search(r"```toml\n(.*?)```", text, flags=re.S)
    assert found is not None, "docs/studies.md has no TOML block"
    return found.group(1)


def test_the_first_study_is_self_contained(tmp_path):
    from tl_localize.study import Study

    (tmp_path / "study.toml").write_text(first_toml())
    study = Study.from_toml(tmp_path / "study.toml")  # no path in it: it reads anywhere
    assert [(m.label, m.spec, m.untrained) for m in study.models] == [
        ("smollm2", None, False), ("smollm2-untrained", None, True)]  # fmt: skip
    assert [n.contrast for n in study.networks] == ["language", "md"]
    assert set(study.tasks) <= {"builtin", "arithmetic", "false_belief"}  # no data files


@pytest.mark.model
@pytest.mark.study
@pytest.mark.ray
def test_the_first_study_in_the_docs_runs_as_written_on_ray(tmp_path, capsys):
    (tmp_path / "study.toml").write_text(first_toml())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    command = [sys.executable, "-m", "tl_localize.cli", "study", "run", "study.toml",
               "--out", "results", "--executor", "ray", "--quiet"]  # fmt: skip
    seconds = []
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        runs.append(subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=3600))  # fmt: skip
        seconds.append(time.perf_counter() - start)
        assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    result = StudyResult(tmp_path / "results")
    assert (result.status()["status"] == "done").all()
    frame = result.frame()
    assert set(frame["model"]) == {"smollm2", "smollm2-untrained"}
    assert set(frame["network"].dropna()) == {"language", "md"}
    side = frame.groupby("model")["untrained"].first().to_dict()
    assert side == {"smollm2": False, "smollm2-untrained": True}
    headline = result.headline()
    assert set(zip(headline["model"], headline["untrained"], strict=True)) == {
        ("smollm2", False), ("smollm2-untrained", True)}  # fmt: skip
    record = json.loads(
        (tmp_path / "results/jobs/smollm2-untrained/localize-language/record.json").read_text()
    )
    assert record["model"]["untrained"] is True and record["model"]["init_seed"] == 0
    assert record["model"]["model"] == "SmolLM2-135M-Instruct (untrained, seed 0)"
    # the second run finds every job done: no model, no Ray instance
    assert "ran 0 job(s)" in runs[1].stdout and "model loads {}" in runs[1].stdout
    with capsys.disabled():  # measured, not asserted (machines differ)
        print(f"\ndocs study on Ray: first run {seconds[0]:.1f} s, re-run {seconds[1]:.2f} s")
