"""Studies: the spec and its checks (fast tier), and studies run end to end on tiny models
saved as local Hugging Face folders (``study`` tier), locally, killed and resumed, with a
failing model, sharded, over checkpoints, on a real local Ray instance (``ray`` tier), and
with the embedded default model among them (``model`` tier)."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.multitest import multipletests

from tl_localize import LocalizeError, Units, load_model, localize
from tl_localize.cli import main
from tl_localize.report import build_study_report
from tl_localize.study import Study, StudyResult, plan_study, run_study

STIMULI = ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
           "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass",
           "an elk stood still", "the ram ran up the hill"]  # fmt: skip
JUNK = ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop",
        "fft yyq wwe", "gzq pqt lln", "rrm ssd qqw"]  # fmt: skip


@pytest.fixture(scope="module")
def small_contrast(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contrast")
    frame = pd.DataFrame({"text": STIMULI + JUNK, "condition": ["S"] * 8 + ["N"] * 8})
    frame.to_csv(folder / "small.csv", index=False)
    return folder / "small.csv"


def spec(models, contrast, **extra):
    data = {
        "name": "tiny-study",
        "models": models,
        "networks": [
            {
                "name": "lang",
                "contrast": str(contrast),
                "positive": "S",
                "negative": "N",
                "top": [0.05],
            }
        ],
        "ablation": {"n_random": 1, "n_boot": 200},
        "tasks": {"builtin": {"n_per_paradigm": 1}},
    }
    data.update(extra)
    return data


def tiny_models(tiny_hf):
    return [{"label": "llama", "spec": str(tiny_hf["llama"])},
            {"label": "gpt2", "spec": str(tiny_hf["gpt2"])}]  # fmt: skip


# -- the spec (fast tier) ---------------------------------------------------------------
def test_a_study_file_reads_and_plans(tmp_path, small_contrast, tiny_hf):
    text = f"""
name = "toml-study"
[[models]]
label = "llama"
spec = "{tiny_hf["llama"]}"
dtype = "float32"
[[networks]]
name = "lang"
contrast = "{small_contrast}"
positive = "S"
negative = "N"
top = [0.05, 0.1]
[ablation]
match = ["uniform"]
n_random = 2
[tasks.builtin]
n_per_paradigm = 1
[attribution]
tasks = ["builtin"]
"""
    (tmp_path / "study.toml").write_text(text)
    study = Study.from_toml(tmp_path / "study.toml")
    assert study.name == "toml-study" and study.networks[0].top == [0.05, 0.1]
    jobs = plan_study(study)
    kinds = pd.Series([j.kind for j in jobs]).value_counts().to_dict()
    # localize, intact, 2 fractions x (selected + 2 uniform seeds), attribution
    assert kinds == {"localize": 1, "evaluate": 1 + 2 * 3, "attribution": 1}
    assert len({j.key for j in jobs}) == len(jobs) and len({j.id for j in jobs}) == len(jobs)
    assert jobs[0].kind == "localize" and all(
        j.depends == ("llama/localize-lang",) for j in jobs if j.set in ("selected", "random")
    )
    # a changed setting changes the keys of what depends on it, and only those
    again = Study.from_dict({**json.loads(json.dumps(study.to_dict())), "attribution": {
        "tasks": ["builtin"], "n_items": 4}})  # fmt: skip
    changed = {j.id for j, k in zip(jobs, plan_study(again), strict=True) if j.key != k.key}
    assert changed == {"llama/attribution-lang-builtin"}


def test_brain_and_attribution_settings_of_a_study_reach_their_jobs_only(
    tmp_path, small_contrast, tiny_hf
):
    csv = tmp_path / "brain.csv"
    pd.DataFrame({"Sentence": STIMULI, "EffectSize": np.arange(8.0)}).to_csv(csv, index=False)
    models = [{"label": "llama", "spec": str(tiny_hf["llama"]), "dtype": "float32"}]
    base = spec(models, small_contrast, brain={"data": [{"path": str(csv)}], "folds": 4},
                attribution={"tasks": ["builtin"]})  # fmt: skip
    keys = {j.id: j.key for j in plan_study(Study.from_dict(base))}
    # the defaults written out give the same jobs as left out (keys of older studies hold)
    spelled = {**base, "brain": {**base["brain"], "n_boot": 1000, "include_all": True},
               "attribution": {"tasks": ["builtin"], "batch_size": 16, "seed": 0}}  # fmt: skip
    assert {j.id: j.key for j in plan_study(Study.from_dict(spelled))} == keys
    # ... and hash what studies hashed before these settings existed
    plain = Study.from_dict(spelled)
    assert plain.brain.key() == {"folds": 4, "n_random": 3, "match": ["uniform", "magnitude"],
                                 "seed": 0}  # fmt: skip
    assert plain.attribution.key() == {"tasks": ["builtin"], "n_items": None}
    brain = {**base["brain"], "n_boot": 200, "ceiling": 0.5, "include_all": False}
    attribution = {"tasks": ["builtin"], "batch_size": 4, "unaligned": "drop"}
    changed = {**base, "brain": brain, "attribution": attribution}
    study = Study.from_dict(changed)
    assert study.brain.settings() == {
        "folds": 4, "n_random": 3, "match": ["uniform", "magnitude"], "seed": 0,
        "include_all": False, "ceiling": 0.5, "n_boot": 200, "n_permutations": 1000,
        "batch_size": 32,
    }  # fmt: skip
    moved = {j.id for j in plan_study(study) if keys[j.id] != j.key}
    assert moved == {"llama/brain-lang-brain", "llama/attribution-lang-builtin"}
    # checked by the analyses' own configs, the key path named
    for table, bad, message in [
        ("brain", {"ceiling": 1.5}, r"brain.ceiling"),
        ("brain", {"n_boot": 5}, r"brain.n_boot"),
        ("attribution", {"unaligned": "keep"}, r"attribution.unaligned"),
    ]:
        with pytest.raises(LocalizeError, match=message):
            Study.from_dict({**base, table: {**base[table], **bad}})


def test_bands_and_the_least_active_control_in_a_study_spec(small_contrast, tiny_hf):
    data = spec([{"label": "llama", "spec": str(tiny_hf["llama"])}], small_contrast)
    data["networks"][0]["band"] = [0.99, 1.0]  # one band, and no top: only the band
    del data["networks"][0]["top"]
    data["ablation"]["match"] = ["least_active"]
    study = Study.from_dict(data)
    assert study.networks[0].band == [(0.99, 1.0)] and study.networks[0].top == []
    assert study.networks[0].own_selection() == {"band": (0.99, 1.0)}
    data["networks"][0].update(band=[[0.8, 0.9], "99-100%"], top=[0.01])
    study = Study.from_dict(data)
    assert study.networks[0].band == [(0.8, 0.9), (0.99, 1.0)]
    again = Study.from_dict(json.loads(json.dumps(study.to_dict())))  # as study.json reads
    assert again.networks[0].band == study.networks[0].band and again.digest() == study.digest()
    jobs = [j for j in plan_study(study) if j.set == "selected"]
    assert [(j.name, j.fraction, j.band) for j in jobs] == [
        ("eval-builtin-lang-1pct-selected", 0.01, None),
        ("eval-builtin-lang-band80-90pct-selected", 0.1, (0.8, 0.9)),
        ("eval-builtin-lang-band99-100pct-selected", 0.01, (0.99, 1.0)),
    ]
    assert len({j.key for j in jobs}) == 3  # the top 1% and the band 99-100%: other sets
    assert {j.match for j in plan_study(study) if j.set == "random"} == {"least_active"}
    assert all(j == type(j).from_dict(json.loads(json.dumps(j.to_dict()))) for j in jobs)


BAD_SPECS = [
    ({"models": []}, "models: the study names no model"),
    ({"models": [{"label": "a"}, {"label": "a"}]}, r"models\[1\].label: 'a' is used twice"),
    ({"models": [{"label": "a", "device_map": 3}]}, r"models\[0\].device_map: expected a string"),
    ({"models": [{"label": "a", "spec": "missing.gguf"}]}, r"models\[0\].spec: no model file"),
    ({"models": [{"label": "a", "dtype": "float64"}]}, r"models\[0\].dtype: 'float64' is not one"),
    ({"models": [{"label": "a", "colour": 1}]}, r"models\[0\].colour: unknown key; allowed"),
    ({"networks": [{"name": "x", "contrast": "vision"}]}, r"networks\[0\].contrast: 'vision'"),
    ({"networks": [{"name": "x", "site": "neurons"}]}, r"networks\[0\].site: 'neurons' is not"),
    ({"networks": [{"name": "x", "top": [1.5]}]}, r"networks\[0\].top\[0\]: 1.5 is not a fraction"),
    ({"networks": [{"name": "x", "tasks": ["glue"]}]}, r"networks\[0\].tasks\[0\]: 'glue' is not"),
    ({"networks": [{"name": "x", "band": [0.9, 0.8]}]}, r"networks\[0\].band: band=\[0.9, 0.8\]"),
    ({"networks": [{"name": "x", "band": [[0.8, 0.9], "x"]}]}, r"networks\[0\].band\[1\]: "),
    ({"networks": [{"name": "x", "band": 0.5}]}, r"networks\[0\].band: expected a band"),
    ({"networks": [{"name": "x", "top": []}]}, r"networks\[0\].top: give at least one"),
    ({"ablation": {"match": ["quiet"]}}, r"ablation.match\[0\]: 'quiet' is not one of"),
    ({"tasks": {"glue": {}}}, r"tasks.glue: unknown task"),
    ({"tasks": {"blimp": {}}}, r"tasks.blimp.blimp: required"),
    ({"tasks": {"blimp": {"blimp": "nowhere"}}}, r"tasks.blimp.blimp: no file or folder"),
    ({"tasks": {}}, r"networks\[0\]: network 'lang' has no task to be ablated for"),
    ({"ablation": {"method": "drop"}}, r"ablation.method: 'drop' is not one of"),
    ({"ablation": {"n_random": -1}}, r"ablation.n_random: n_random must be a whole number"),
    ({"brain": {"data": [{"path": "none.csv"}]}}, r"brain.data\[0\].path: no file"),
    ({"attribution": {"tasks": ["arithmetic"]}}, r"attribution.tasks\[0\]: 'arithmetic' is not"),
    ({"colour": "red"}, r"colour: unknown key; allowed here"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SPECS)
def test_bad_specs_are_refused_with_the_key_path(change, message, small_contrast, tmp_path):
    data = spec([{"label": "m"}], small_contrast)
    data.update(change)
    with pytest.raises(LocalizeError, match=message):
        Study.from_dict(data, base=tmp_path)


def test_bad_runs_are_refused_before_any_model_loads(tmp_path, small_contrast, monkeypatch):
    import tl_localize.study.worker as worker

    monkeypatch.setattr(worker, "load_model", lambda *a, **k: pytest.fail("a model loaded"))
    study = Study.from_dict(spec([{"label": "m"}], small_contrast))
    with pytest.raises(LocalizeError, match="Unknown executor 'slurm'"):
        run_study(study, tmp_path / "s", executor="slurm")
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(LocalizeError, match=r"needs Ray, which is not installed: pip install"):
        run_study(study, tmp_path / "s", executor="ray")
    monkeypatch.undo()
    other = tmp_path / "other"
    other.mkdir()
    (other / "study.json").write_text(json.dumps({"study": {"name": "another"}}))
    with pytest.raises(LocalizeError, match="holds another study"):
        run_study(study, other)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(LocalizeError, match="not empty and is not a study folder"):
        run_study(study, tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    with pytest.raises(LocalizeError, match="the current folder"):
        run_study(study, Path.cwd())


# -- end to end on tiny models (study tier) -----------------------------------------------
@pytest.mark.study
def test_a_study_runs_resumes_and_reports(tmp_path, small_contrast, tiny_hf, capsys):
    data = spec(tiny_models(tiny_hf), small_contrast,
                attribution={"tasks": ["builtin"], "n_items": 4})  # fmt: skip
    (tmp_path / "study.toml").write_text(_toml(data))
    out = tmp_path / "out"
    assert main(["study", "run", str(tmp_path / "study.toml"), "--out", str(out), "--quiet"]) == 0
    result = StudyResult(out)
    status = result.status()
    assert (status["status"] == "done").all(), status
    frame = result.frame()
    assert set(frame["model"]) == {"llama", "gpt2"}
    assert set(frame["set"]) == {"intact", "selected", "random"}
    assert set(frame["match"].dropna()) == {"uniform", "magnitude"}
    assert len(result.verdicts()) == 2 * 2  # two models x two control kinds
    headline = result.headline()
    assert list(headline.columns[:5]) == [
        "model",
        "untrained",
        "network",
        "task",
        "selected_change_pct",
    ]
    written_files = {"study.json", "plan.json", "state", "jobs", "results.csv", "verdicts.csv"}
    assert {p.name for p in out.iterdir()} >= written_files | {"failures.csv"}
    written = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(written, pd.read_csv(io.StringIO(frame.to_csv(index=False))))
    # the job folders are ordinary results folders
    loc = result.localization("gpt2", "lang")
    assert loc.units.model_name == "gpt2" and len(loc.units) == int(0.05 * 3 * 48)
    # a second run does nothing and loads no model
    start = time.perf_counter()
    again = run_study(tmp_path / "study.toml", out, progress=False)
    assert again.run_counts["loads"] == {} and again.run_counts["ran"] == []
    assert time.perf_counter() - start < 60  # (generous: the benchmark measures it)
    # status and the re-run as a user runs them (fresh processes) import no model code, and
    # the re-run keeps the tables it would make again
    tables = {name: (out / name).stat().st_mtime_ns for name in ("results.csv", "verdicts.csv")}
    probe = (
        "import sys; from tl_localize.cli import main; code = main(sys.argv[1:]); "
        "print([m for m in ('torch', 'transformers', 'transformer_lens') if m in sys.modules]); "
        "sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    show = ["study", "status", str(out)]
    rerun = ["study", "run", str(tmp_path / "study.toml"), "--out", str(out)]
    for command in (show, rerun):
        argv = [sys.executable, "-c", probe, *command]
        run = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        assert run.stdout.splitlines()[-1] == "[]", run.stdout
    assert "ran 0 job(s)" in run.stdout and "model loads {}" in run.stdout
    assert tables == {name: (out / name).stat().st_mtime_ns for name in tables}
    # status and report from the command line
    assert main(["study", "status", str(out)]) == 0
    assert "done" in capsys.readouterr().out
    assert main(["study", "report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<h2>Headline</h2>" in page and page.count("<img ") >= 3  # ablation, depth, matrix
    # random tiny models: the built-in pairs may be at chance for them, said as such
    assert set(headline["effect"]) <= {"holds", "does not hold", "at chance"}
    assert all(effect in page for effect in headline["effect"])
    assert "<h2>Double dissociation</h2>" in page
    n = int(result.verdicts()["p_adjusted"].notna().sum())
    assert f"p-values adjusted over the study&#x27;s {n} comparisons by Holm" in page
    assert (headline["n_comparisons"] == n).all() and (headline["adjust"] == "holm").all()


@pytest.mark.study
def test_brain_and_attribution_settings_of_a_study_are_used(tmp_path, small_contrast, tiny_hf):
    csv = tmp_path / "brain.csv"
    responses = np.random.default_rng(0).normal(size=16)
    pd.DataFrame({"Sentence": STIMULI + JUNK, "EffectSize": responses}).to_csv(csv, index=False)
    data = spec([{"label": "llama", "spec": str(tiny_hf["llama"]), "dtype": "float32"}],
                small_contrast, brain={"data": [{"path": str(csv)}], "folds": 4, "n_boot": 200,
                                       "n_permutations": 50, "include_all": False,
                                       "n_random": 1, "match": ["uniform"]},
                attribution={"tasks": ["builtin"], "n_items": 8, "batch_size": 4})  # fmt: skip
    result = run_study(Study.from_dict(data), tmp_path / "out", progress=False)
    assert (result.status()["status"] == "done").all(), result.failures()
    brain = tmp_path / "out" / "jobs" / "llama" / "brain-lang-brain"
    assert set(pd.read_csv(brain / "alignment.csv")["set"]) == {"selected", "random"}  # no "all"
    config = json.loads((brain / "record.json").read_text())["config"]
    assert (config["n_boot"], config["n_permutations"], config["folds"]) == (200, 50, 4)


@pytest.mark.study
def test_a_study_with_bands_and_least_active_controls(tmp_path, small_contrast, tiny_hf):
    data = spec([{"label": "llama", "spec": str(tiny_hf["llama"])}], small_contrast)
    data["networks"][0]["band"] = [[0.5, 0.55], [0.95, 1.0]]
    data["ablation"]["match"] = ["uniform", "least_active"]
    result = run_study(Study.from_dict(data), tmp_path / "out", progress=False)
    assert (result.status()["status"] == "done").all(), result.failures()
    frame = result.frame()
    assert list(frame.columns).index("band") == list(frame.columns).index("fraction") + 1
    selected = frame[frame["set"] == "selected"]
    selected = selected.set_index(selected["band"].fillna("top"))
    assert set(selected.index) == {"top", "50-55%", "95-100%"}
    loc = result.localization("llama", "lang")
    n = int(0.05 * loc.units.n_units)
    assert n >= 3 and (selected["n_units"] == n).all()  # 5% of the site, whatever the band
    assert set(frame.loc[frame["set"] == "random", "match"]) == {"uniform", "least_active"}
    verdicts = result.verdicts()
    assert len(verdicts) == 3 * 2 and set(verdicts["band"].fillna("top")) == set(selected.index)
    jobs = tmp_path / "out" / "jobs" / "llama"
    top = Units.load(jobs / "eval-builtin-lang-5pct-selected" / "units.safetensors")
    low = Units.load(jobs / "eval-builtin-lang-band95-100pct-selected" / "units.safetensors")
    assert len(top) == len(low) == n and len(top & low) == 0
    assert low == loc.select(band=(0.95, 1.0)) and top == loc.units
    assert len(result.headline()) == 1  # the headline is the top set's


@pytest.mark.study
def test_a_study_ablates_as_compare_ablation_does(tmp_path, small_contrast, tiny_hf):
    """One engine: a study's evaluation jobs give compare_ablation's table, row for row,
    for the same localization, controls and seeds."""
    from tl_localize import compare_ablation

    data = spec([{"label": "llama", "spec": str(tiny_hf["llama"])}], small_contrast)
    data["ablation"].update({"n_random": 2, "match": ["uniform", "magnitude"]})
    result = run_study(Study.from_dict(data), tmp_path / "out", progress=False)
    model = load_model(tiny_hf["llama"], check_generation=False)
    direct = compare_ablation(
        model, result.localization("llama", "lang"), ["builtin"], n_random=2,
        match=["uniform", "magnitude"], n_per_paradigm=1, n_boot=200, progress=False,
    )  # fmt: skip
    keys = ["set", "match", "seed"]
    columns = ["n_units", "n_high_magnitude", "value", "value_low", "value_high", "change_pct",
               "change_low", "change_high", "p_vs_intact", "p_vs_selected"]  # fmt: skip
    study = result.frame().set_index(keys)[columns]
    table = direct.table.set_index(keys)[columns].astype(float)
    assert len(table) == 1 + 1 + 2 * 2
    pd.testing.assert_frame_equal(study.loc[table.index], table, rtol=1e-9, check_index_type=False)
    mine = direct.verdicts.set_index("match")[["difference_pct", "p_value", "p_adjusted"]]
    theirs = result.verdicts().set_index("match")[mine.columns]
    pd.testing.assert_frame_equal(theirs.loc[mine.index], mine, rtol=1e-9, check_index_type=False)


def _toml(data):
    lines = [f'name = "{data["name"]}"']
    for model in data["models"]:
        lines += ["[[models]]", *(f'{k} = "{v}"' for k, v in model.items())]
    for network in data["networks"]:
        lines.append("[[networks]]")
        for k, v in network.items():
            lines.append(f"{k} = {json.dumps(v)}")
    for section in ("ablation", "attribution"):
        if section in data:
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in data[section].items()]
    for task, options in data["tasks"].items():
        lines.append(f"[tasks.{task}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.study
def test_a_killed_run_resumes_where_it_stopped(tmp_path, small_contrast, tiny_hf):
    (tmp_path / "study.toml").write_text(_toml(spec(tiny_models(tiny_hf), small_contrast)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "tl_localize.cli", "study", "run",
               str(tmp_path / "study.toml"), "--out", str(out), "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once the first model's first jobs are done
        done = list((out / "jobs" / "llama").glob("eval-*")) if (out / "jobs").exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    plan = StudyResult(out).plan
    finished_before = [j.id for j in plan if (j.folder(out) / "record.json").is_file()]
    assert 2 <= len(finished_before) < len(plan)
    status = StudyResult(out).status().set_index("model")
    assert "interrupted" in set(status["status"]) or "pending" in set(status["status"])
    result = run_study(tmp_path / "study.toml", out, progress=False)
    assert set(result.run_counts["ran"]).isdisjoint(finished_before)
    assert set(result.run_counts["ran"]) | set(finished_before) == {j.id for j in plan}
    assert all(n == 1 for n in result.run_counts["loads"].values())
    assert (result.status()["status"] == "done").all()
    # no leftover temporary folder counts as a result, and none is left behind
    assert not list((out / "jobs").rglob(".*.partial-*"))


@pytest.mark.study
def test_a_failing_model_is_recorded_and_the_others_finish(tmp_path, small_contrast, tiny_hf):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf["gpt2"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    models = [
        {"label": "broken", "spec": str(broken)},
        {"label": "llama", "spec": str(tiny_hf["llama"])},
    ]
    study = Study.from_dict(spec(models, small_contrast))
    out = tmp_path / "out"
    result = run_study(study, out, progress=False)
    failures = result.failures()
    assert set(failures["model"]) == {"broken"} and len(failures) == 1 + 1 + 3
    assert failures["error"].str.contains("could not be loaded").all()
    assert failures["traceback"].str.contains("Traceback").all()
    status = result.status()
    assert (status[status["model"] == "llama"]["status"] == "done").all()
    assert set(result.frame()["model"]) == {"llama"}
    # a plain rerun leaves failed jobs alone; --retry-failed reruns only them
    assert run_study(study, out, progress=False).run_counts["ran"] == []
    shutil.copy(tiny_hf["gpt2"] / "model.safetensors", broken / "model.safetensors")
    retried = run_study(study, out, retry_failed=True, progress=False)
    assert sorted(retried.run_counts["ran"]) == sorted(
        f"{r.model}/{r.job}" for r in failures.itertuples()
    )
    assert retried.failures().empty and set(retried.frame()["model"]) == {"broken", "llama"}


@pytest.mark.study
def test_a_checkpoint_sweep(tmp_path, small_contrast, tiny_hf):
    from conftest import save_tiny_hf

    checkpoints = tmp_path / "checkpoints"
    for i, step in enumerate(("step-100", "step-200")):
        save_tiny_hf(checkpoints / step, "llama", seed=10 + i)
    models = [{"label": f"llama-{s}", "spec": str(checkpoints), "revision": s}
              for s in ("step-100", "step-200")]  # fmt: skip
    result = run_study(Study.from_dict(spec(models, small_contrast)), tmp_path / "out",
                       progress=False)  # fmt: skip
    frame = result.frame()
    assert set(frame["revision"].dropna()) == {"step-100", "step-200"}
    masks = [result.localization(m["label"], "lang").units for m in models]
    assert masks[0].fingerprint != masks[1].fingerprint  # two checkpoints told apart
    # the sweep figure draws the effects; tiny random models may be at chance on the task,
    # and then there is no effect to draw
    blocked = set(result.headline()["effect"]) <= {"at chance", "at ceiling"}
    assert ("sweep" in result.figures()) != blocked
    # two revisions of one spec are one lineage; its table is in the report
    assert result.lineages() == {str(checkpoints): [m["label"] for m in models]}
    lineage = result.lineage()
    assert lineage["checkpoint"].tolist() == ["step-100", "step-200"]
    assert lineage["jaccard_final"].iloc[-1] == 1.0
    from tl_localize.report import build_study_report

    page = build_study_report(tmp_path / "out")
    assert "<h2>Checkpoints</h2>" in page and "jaccard_previous" in page


@pytest.mark.study
def test_sharded_equals_unsharded(tiny_hf):
    from conftest import TOY_PAIRS, toy_contrast_factory
    from tl_localize import compare_ablation, unit_attribution
    from tl_localize.models import model_fingerprint

    whole = load_model(tiny_hf["llama"])
    device_map = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
                  "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}  # fmt: skip
    sharded = load_model(tiny_hf["llama"], device_map=device_map)
    assert any(p.device.type == "meta" for p in sharded.parameters())  # really offloaded
    assert model_fingerprint(sharded) == model_fingerprint(whole)
    contrast = toy_contrast_factory()
    a, b = (localize(m, contrast, top=5, progress=False) for m in (whole, sharded))
    assert torch.equal(a.units.mask, b.units.mask)
    torch.testing.assert_close(a.stats["t"], b.stats["t"])
    task = ("pairs", lambda model, **kw: __import__("tl_localize").evaluate.minimal_pairs(
        model, list(TOY_PAIRS), **kw))  # fmt: skip
    x, y = (compare_ablation(m, loc, [task], n_random=1, match="uniform", n_boot=100,
                             progress=False) for m, loc in ((whole, a), (sharded, b)))  # fmt: skip
    pd.testing.assert_frame_equal(x.items, y.items)
    p, q = (unit_attribution(m, "resid_post", list(TOY_PAIRS), progress=False)
            for m in (whole, sharded))  # fmt: skip
    torch.testing.assert_close(p.scores["patch_mean"], q.scores["patch_mean"])
    with pytest.raises(LocalizeError, match="max_memory= goes with device_map="):
        load_model(tiny_hf["llama"], max_memory={"cpu": "1GiB"})


def test_thread_shares_follow_model_size():
    from tl_localize.study.resources import thread_shares

    sizes = {"big": 135_000_000, "tiny": 100_000, "also": 120_000, "unknown": None}
    assert thread_shares(2, sizes, ["big", "tiny"]) == {"big": 2, "tiny": 1}
    assert thread_shares(16, sizes, ["tiny", "also"]) == {"tiny": 7, "also": 9}
    assert thread_shares(2, sizes, ["tiny"]) == {"tiny": 2}
    assert thread_shares(4, sizes, ["unknown", "big"]) == {"unknown": 2, "big": 2}
    assert thread_shares(1, {"a": 5, "b": 5}, ["a", "b"]) == {"a": 1, "b": 1}


@pytest.mark.study
@pytest.mark.ray
def test_ray_gives_the_local_results(tmp_path, small_contrast, tiny_hf):
    study = Study.from_dict(spec(tiny_models(tiny_hf), small_contrast))
    local = run_study(study, tmp_path / "local", progress=False)
    ray = run_study(study, tmp_path / "ray", executor="ray", max_parallel=2, progress=False)
    assert ray.run_counts["loads"] == {"llama": 1, "gpt2": 1}
    pd.testing.assert_frame_equal(local.frame(), ray.frame(), rtol=1e-6)
    for model in ("llama", "gpt2"):
        assert local.localization(model, "lang").units == ray.localization(model, "lang").units
    assert len(set(ray.run_counts["workers"].values())) == 2  # two models at once
    with pytest.raises(LocalizeError, match="Could not reach the Ray cluster"):
        run_study(study, tmp_path / "nowhere", executor="ray", address="ray://127.0.0.1:9")


@pytest.mark.study
@pytest.mark.ray
def test_ray_actors_are_reused_and_an_unloadable_model_fails_as_locally(
    tmp_path, small_contrast, tiny_hf
):
    """One model at a time (max_parallel=1): one actor holds each model in turn, an
    unloadable model's jobs fail without a retry per job, and the results equal the local
    executor's."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf["gpt2"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    models = [{"label": "broken", "spec": str(broken)}, *tiny_models(tiny_hf)]
    study = Study.from_dict(spec(models, small_contrast))
    local = run_study(study, tmp_path / "local", progress=False)
    ray = run_study(study, tmp_path / "ray", executor="ray", max_parallel=1, progress=False)
    workers = ray.run_counts["workers"]
    assert set(workers) == {"broken", "llama", "gpt2"}
    assert len(set(workers.values())) == 1  # the same actor, in turn
    assert workers["llama"] != local.run_counts["workers"]["llama"]  # not the driver
    assert ray.run_counts["loads"] == {"broken": 0, "llama": 1, "gpt2": 1}
    pd.testing.assert_frame_equal(local.frame(), ray.frame(), rtol=1e-6)
    failed = ray.failures()
    assert set(failed["model"]) == {"broken"} and len(failed) == len(local.failures())
    assert failed["error"].str.contains("could not be loaded").all()
    again = run_study(study, tmp_path / "ray", executor="ray", progress=False)  # nothing to do
    assert again.run_counts["ran"] == [] and again.run_counts["loads"] == {}


@pytest.mark.model
@pytest.mark.study
def test_three_models_of_different_shapes(tmp_path, small_contrast, tiny_hf, default_model):
    models = [{"label": "smollm2", "dtype": "float32"}, *tiny_models(tiny_hf)]
    result = run_study(Study.from_dict(spec(models, small_contrast)), tmp_path / "out",
                       progress=False)  # fmt: skip
    assert result.run_counts["loads"] == {"smollm2": 1, "llama": 1, "gpt2": 1}
    frame = result.frame()
    assert set(frame["model"]) == {"smollm2", "llama", "gpt2"}
    sizes = frame[frame["set"] == "selected"].set_index("model")["n_units"].to_dict()
    assert sizes == {"smollm2": int(0.05 * 30 * 576), "llama": int(0.05 * 2 * 32),
                     "gpt2": int(0.05 * 3 * 48)}  # fmt: skip
    loc = result.localization("smollm2", "lang")
    assert loc.units == localize(default_model, loc_contrast(small_contrast), top=0.05,
                                 progress=False).units  # fmt: skip


@pytest.mark.model
@pytest.mark.study
def test_a_study_of_arithmetic_on_the_default_model(tmp_path, small_contrast):
    data = spec(
        [{"label": "smollm2", "dtype": "float32"}],
        small_contrast,
        tasks={"arithmetic": {"n_per_paradigm": 10}, "builtin": {"n_per_paradigm": 1}},
        ablation={"n_random": 1, "n_boot": 200, "match": ["uniform"]},
    )
    data["networks"][0]["top"] = [0.01]
    result = run_study(Study.from_dict(data), tmp_path / "out", progress=False)
    verdicts = result.verdicts()
    tested = verdicts[verdicts["verdict"].isin(["specific", "not specific"])]
    holm = multipletests(tested["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(tested["p_adjusted"], holm, rtol=1e-12)  # the study's own p
    arithmetic = result.headline().set_index("task").loc["arithmetic"]
    state = result.frame().query("task == 'arithmetic' and set == 'intact'").iloc[0]
    page = build_study_report(tmp_path / "out")
    if state["value_low"] <= state["chance"]:  # at chance: said, and no effect printed
        assert arithmetic["effect"] == "at chance"
        assert np.isnan(arithmetic["selected_change_pct"])
        assert (verdicts.query("task == 'arithmetic'")["verdict"] == "at chance").all()
        assert "-100%" not in page and "-100.0%" not in page
        assert "at chance" in page
    else:  # above chance with its interval: an effect, and a verdict on it
        assert arithmetic["effect"] in ("holds", "does not hold")
        assert not np.isnan(arithmetic["selected_change_pct"])


def loc_contrast(path):
    from tl_localize import Contrast

    return Contrast.from_csv(path, positive="S", negative="N")


def test_memory_is_estimated_and_a_model_that_cannot_fit_is_refused(
    tmp_path, small_contrast, tiny_hf, monkeypatch
):
    import psutil

    import tl_localize.models as models
    import tl_localize.options as options
    import tl_localize.study.worker as worker
    from tl_localize.study import ModelSpec, estimate_memory

    spec_ = ModelSpec(label="llama", spec=str(tiny_hf["llama"]))
    estimate = estimate_memory(spec_)
    model = load_model(tiny_hf["llama"], check_generation=False)
    assert estimate["parameters"] == sum(p.numel() for p in model.original_model.parameters())
    element = torch.tensor([], dtype=models.resolve_dtype("auto")).element_size()
    assert estimate["dtype"] == str(models.resolve_dtype("auto")).removeprefix("torch.")
    assert estimate["weights_bytes"] == element * estimate["parameters"]
    assert estimate["needed_bytes"] == (
        estimate["baseline_bytes"] + estimate["weights_bytes"] + estimate["activation_bytes"]
    )
    assert estimate["fits"] is True
    # where "auto" resolves to bfloat16 (a GPU, a CPU with AMX), weights count 2 bytes
    monkeypatch.setattr(options, "bf16_is_fast", lambda device=None: True)
    bf16 = estimate_memory(spec_)
    assert bf16["dtype"] == "bfloat16"
    assert bf16["weights_bytes"] == 2 * bf16["parameters"]
    assert bf16["activation_bytes"] < estimate["activation_bytes"] or element == 2
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("m", (), {"available": 1000})())
    monkeypatch.setattr(worker, "load_model", lambda *a, **k: pytest.fail("a model loaded"))
    study = Study.from_dict(spec(tiny_models(tiny_hf)[:1], small_contrast))
    with pytest.raises(LocalizeError, match=r"models\['llama'\] needs about .* cannot load"):
        run_study(study, tmp_path / "s", progress=False)


def test_memory_estimate_grows_with_the_batch_the_tokens_and_the_shape(tiny_hf, tmp_path):
    from tl_localize.study import ModelSpec, estimate_memory
    from tl_localize.study.resources import read_size

    spec_ = ModelSpec(label="llama", spec=str(tiny_hf["llama"]), dtype="float32")
    size = read_size(spec_)
    # the tiny Llama of conftest.save_tiny_hf: width 32, MLP 64, 2 layers, 4 heads
    assert size is not None
    assert {k: size[k] for k in ("d_model", "d_mlp", "n_layers", "n_heads")} == {
        "d_model": 32, "d_mlp": 64, "n_layers": 2, "n_heads": 4
    }  # fmt: skip
    one = estimate_memory(spec_, batch_size=1, tokens=10)["activation_bytes"]
    per_position = size["vocab"] * 12 + 32 * 20 + 64 * 12 + 4 * 10 * 8
    assert one == 10 * per_position + 2 * 32 * (4 + 64)
    assert estimate_memory(spec_, batch_size=8, tokens=10)["activation_bytes"] > 7 * one
    assert estimate_memory(spec_, batch_size=1, tokens=40)["activation_bytes"] > 4 * one
    gpt2 = read_size(ModelSpec(label="gpt2", spec=str(tiny_hf["gpt2"])))
    assert gpt2 is not None  # GPT-2 names its sizes n_embd, n_layer, n_head; MLP 4 x width
    assert (gpt2["d_model"], gpt2["d_mlp"], gpt2["n_layers"], gpt2["n_heads"]) == (48, 192, 3, 4)
    # tied input and output embeddings (as in SmolLM2) count once
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, tie_word_embeddings=True,
                architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path / "tied")  # fmt: skip
    tied = read_size(ModelSpec(label="tied", spec=str(tmp_path / "tied")))
    per_layer = 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32
    assert tied is not None and tied["parameters"] == 100 * 32 + 2 * per_layer + 32


@pytest.mark.model
def test_memory_estimate_reads_the_default_models_gguf_header():
    from tl_localize.study import ModelSpec, estimate_memory
    from tl_localize.study.resources import read_size

    size = read_size(ModelSpec(label="default"))
    assert size == {"parameters": size["parameters"], "d_model": 576, "d_mlp": 1536,
                    "n_layers": 30, "n_heads": 9, "vocab": 49152}  # fmt: skip
    assert 134e6 < size["parameters"] < 135e6
    estimate = estimate_memory(ModelSpec(label="default", dtype="float32"))
    assert estimate["weights_bytes"] == 4 * size["parameters"]
