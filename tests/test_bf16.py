"""The default path of a bfloat16-fast machine, on any machine.

On a CUDA GPU or a CPU with AMX / AVX512-BF16, ``dtype="auto"`` resolves to bfloat16. Here
the detection is made to answer as it does there (``bf16_is_fast`` patched to True), so the
main paths run in bfloat16 whatever this machine's CPU: tiny models in the fast tier, and
the demo's commands once on the default model (model tier), whose 30 layers are deep enough
for bfloat16 rounding to have aborted a float32-tolerance check.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tl_localize.models as models
import tl_localize.options as options
from conftest import TOY_PAIRS, save_tiny_hf
from tl_localize import (
    BrainData,
    Contrast,
    brain_alignment,
    compare_ablation,
    join,
    load_model,
    localize,
    unit_attribution,
)
from tl_localize.cli import main
from tl_localize.evaluate.minimal_pairs import minimal_pairs
from tl_localize.models import model_dtype, resolve_dtype
from tl_localize.study import Study, run_study

WORDS = "the a cat dog sat ran on in mat park red big small fox hen owl".split()


@pytest.fixture
def bf16_fast(monkeypatch):
    """``dtype="auto"`` answers as on a machine that computes bfloat16 fast."""
    monkeypatch.setattr(options, "bf16_is_fast", lambda device=None: True)
    assert resolve_dtype("auto") == torch.bfloat16


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("bf16")
    return {
        "llama": save_tiny_hf(root / "llama", "llama", seed=0),
        "gpt2": save_tiny_hf(root / "gpt2", "gpt2", seed=1),
        "deep": save_tiny_hf(root / "deep", "llama", seed=2, layers=24),
    }


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("contrast") / "small.csv"
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, size=rng.integers(3, 7))) for _ in range(12)]
    junk = ["".join(rng.choice(list("zqxvbkp"), size=rng.integers(6, 20))) for _ in range(12)]
    pd.DataFrame({"text": sentences + junk, "condition": ["S"] * 12 + ["N"] * 12}).to_csv(
        path, index=False
    )
    return path


def test_auto_is_bfloat16_and_the_record_says_so(bf16_fast, folders):
    model = load_model(folders["llama"], check_generation=False)
    assert model_dtype(model) == torch.bfloat16
    hardware = models.model_signature(model)["hardware"]
    assert hardware["dtype"] == "bfloat16" and hardware["dtype_auto"] is True
    assert hardware["bf16_fast"] is True and hardware["device"] == "cpu"
    assert hardware["device_auto"] is True and hardware["devices"] == ["cpu"]
    pinned = load_model(folders["llama"], dtype="float32", check_generation=False)
    assert models.model_signature(pinned)["hardware"]["dtype_auto"] is False


def test_a_deep_model_localizes_in_bfloat16(bf16_fast, folders, small_csv):
    """24 layers: bfloat16 rounding grows with depth; the check passes on rounding."""
    model = load_model(folders["deep"], check_generation=False)
    contrast = Contrast.from_csv(small_csv, positive="S", negative="N")
    loc = localize(model, contrast, top=0.05, progress=False)
    (check,) = loc.record["checks"]
    assert check["passed"] and "bfloat16" in check["detail"], check
    assert loc.units.dtype == "bfloat16" and loc.record["model"]["dtype"] == "bfloat16"
    float32 = load_model(folders["deep"], dtype="float32", check_generation=False)
    reference = localize(float32, contrast, top=0.05, progress=False)
    with pytest.warns(UserWarning, match="different precisions"):
        agreement = loc.units.jaccard(reference.units)
    assert agreement > 0.5  # the same selection up to rounding near the threshold


def test_main_paths_in_bfloat16(bf16_fast, folders, toy_contrast):
    model = load_model(folders["llama"], check_generation=False)
    loc = localize(model, toy_contrast, top=6, progress=False)
    assert loc.record["checks"][0]["passed"] and len(loc.units) == 6

    pairs = list(TOY_PAIRS)
    items = minimal_pairs(model, pairs, progress=False)
    assert len(items) == len(pairs) and items["correct"].isin([True, False]).all()

    task = ("toy", lambda m, **options: minimal_pairs(m, pairs, **options))
    result = compare_ablation(
        model, loc, [task], n_random=1, match=["uniform", "magnitude"], n_boot=100, progress=False
    )
    assert set(result.table["set"]) >= {"selected", "random"}
    assert np.isfinite(result.table["value"].to_numpy(float)).all()

    rng = np.random.default_rng(0)
    sentences = list(
        dict.fromkeys(" ".join(rng.choice(WORDS, size=rng.integers(3, 8))) for _ in range(80))
    )
    data = BrainData.from_frame(
        pd.DataFrame({"Sentence": sentences, "EffectSize": rng.normal(size=len(sentences))})
    )
    alignment = brain_alignment(model, loc.units, data, n_random=1, match="uniform", folds=5,
                                progress=False)  # fmt: skip
    assert np.isfinite(alignment.table["r"]).all()

    attribution = unit_attribution(model, "resid_post", pairs, progress=False)
    assert attribution.record["model"]["dtype"] == "bfloat16"
    frame = join(loc, attribution)
    assert len(frame) == loc.units.n_units and frame["patch_abs"].notna().all()


def test_a_two_model_study_in_bfloat16(bf16_fast, folders, small_csv, tmp_path):
    study = Study.from_dict(
        {
            "name": "bf16-study",
            "models": [
                {"label": "llama", "spec": str(folders["llama"])},
                {"label": "gpt2", "spec": str(folders["gpt2"])},
            ],
            "networks": [
                {
                    "name": "lang",
                    "contrast": str(small_csv),
                    "positive": "S",
                    "negative": "N",
                    "top": [0.1],
                }
            ],
            "ablation": {"n_random": 1, "n_boot": 100},
            "tasks": {"builtin": {"n_per_paradigm": 1}},
        }
    )
    result = run_study(study, tmp_path / "study", progress=False)
    assert result.failures().empty, result.failures()
    for label in ("llama", "gpt2"):
        loc = result.localization(label, "lang")
        assert loc.record["model"]["dtype"] == "bfloat16"
        assert loc.record["model"]["hardware"]["dtype_auto"] is True


def demo_commands(model: str | None, contrast: str, out, extra=()):
    loc, abl = out / "language", out / "ablation"
    model_args = [] if model is None else ["--model", model]
    return [
        ["localize", *model_args, "--contrast", contrast, "--positive", "S", "--negative", "N",
         "--top", "5%", "--out", str(loc), "--quiet"],
        ["ablate", *model_args, "--units", str(loc), "--tasks", "builtin", "--n-random", "1",
         "--match", "uniform,magnitude", "--n-per-paradigm", "1", *extra, "--out", str(abl),
         "--quiet"],
        ["report", str(out)],
    ]  # fmt: skip


def test_the_demo_commands_in_bfloat16(bf16_fast, folders, small_csv, tmp_path, capsys):
    for command in demo_commands(str(folders["llama"]), str(small_csv), tmp_path):
        assert main(command) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "language" / "record.json").read_text())
    assert record["model"]["dtype"] == "bfloat16" and record["checks"][0]["passed"]
    ablation = json.loads((tmp_path / "ablation" / "record.json").read_text())
    assert ablation["localization"]["model"]["hardware"]["bf16_fast"] is True
    page = (tmp_path / "report.html").read_text()
    assert "bfloat16" in page


@pytest.mark.model
def test_the_demo_commands_on_the_default_model_in_bfloat16(bf16_fast, tmp_path, capsys):
    """The 30-layer default model in bfloat16: its rounding aborted the float32-tolerance
    pooling check. A sample of the built-in language stimuli (the shortest, the longest and
    others, so batches are padded) keeps the run short on CPUs slow at bfloat16."""
    full = Contrast.builtin("language")
    keep = sorted(range(len(full.positive)), key=lambda i: len(full.positive[i]))
    keep = keep[:10] + keep[-10:]
    texts = [full.positive[i] for i in keep] + [full.negative[i] for i in keep]
    path = tmp_path / "language.csv"
    pd.DataFrame({"text": texts, "condition": ["S"] * 20 + ["N"] * 20}).to_csv(path, index=False)
    for command in demo_commands(None, str(path), tmp_path / "out"):
        assert main(command) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "language" / "record.json").read_text())
    assert record["model"]["dtype"] == "bfloat16" and record["model"]["n_layers"] == 30
    (check,) = record["checks"]
    assert check["passed"] and check["tolerance"] > 1e-4, check
