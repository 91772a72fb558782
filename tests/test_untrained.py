"""Untrained twins: the same architecture and tokenizer with freshly initialized weights
(tiny local Hugging Face models in the fast tier, the embedded default in the model tier)."""

import pytest
import torch

from tl_localize import LocalizeError, load_model


def test_an_untrained_twin_localizes_ablates_and_aligns(tiny_hf, toy_contrast, toy_pairs, tmp_path):
    import numpy as np
    import pandas as pd

    from tl_localize import BrainData, Localization, brain_alignment, compare_ablation, localize
    from tl_localize.evaluate import minimal_pairs
    from tl_localize.models import model_fingerprint, model_signature

    # the fixture's model is itself HF's initialization from seed 0 (conftest.save_tiny_hf)
    trained = load_model(tiny_hf["llama"], dtype="float32", check_generation=False)
    state = torch.random.get_rng_state()
    twin = load_model(tiny_hf["llama"], dtype="float32", untrained=True, seed=5,
                      check_generation=False)  # fmt: skip
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG untouched
    again, other, zero = (
        load_model(tiny_hf["llama"], dtype="float32", untrained=True, seed=seed,
                   check_generation=False)
        for seed in (5, 6, 0)
    )  # fmt: skip

    def weights(model):
        return [p.detach().clone() for p in model.parameters()]

    w_twin, w_again, w_other, w_trained, w_zero = map(weights, (twin, again, other, trained, zero))
    assert [w.shape for w in w_twin] == [w.shape for w in w_trained]  # the same architecture
    assert all(torch.equal(a, b) for a, b in zip(w_twin, w_again, strict=True))  # one seed
    random = [i for i, w in enumerate(w_twin) if w.std() > 0]  # not the constant norms
    assert all(not torch.equal(w_twin[i], w_other[i]) for i in random)  # two seeds differ
    assert all(not torch.equal(w_twin[i], w_trained[i]) for i in random)
    # the family's own initialization: seed 0 rebuilds the fixture's weights exactly
    assert all(torch.equal(a, b) for a, b in zip(w_zero, w_trained, strict=True))
    assert twin.hf_tokenizer.get_vocab() == trained.hf_tokenizer.get_vocab()
    assert len({model_fingerprint(m) for m in (trained, twin, other)}) == 3
    assert model_fingerprint(zero) == model_fingerprint(trained)
    assert model_fingerprint(twin) == model_fingerprint(again)
    assert twin.cfg.model_name == "llama (untrained, seed 5)"
    signature = model_signature(twin)
    assert signature["untrained"] is True and signature["init_seed"] == 5
    assert model_signature(other)["init_seed"] == 6 and "untrained" not in model_signature(trained)

    loc = localize(twin, toy_contrast, top=5, progress=False)
    loc.save(tmp_path / "loc")
    record = Localization.load(tmp_path / "loc").record["model"]
    assert record["untrained"] is True and record["init_seed"] == 5
    pairs = ("pairs", lambda model, **kw: minimal_pairs(model, toy_pairs, **kw))
    effects = compare_ablation(twin, loc, [pairs], n_random=1, match="uniform", n_boot=100,
                               progress=False)  # fmt: skip
    assert set(effects.table["set"]) >= {"intact", "selected", "random"}
    rng = np.random.default_rng(0)
    sentences = [f"the {w} sat on mat {i}" for i, w in enumerate("abcdefghijkl")]
    data = BrainData.from_frame(
        pd.DataFrame({"Sentence": sentences, "EffectSize": rng.normal(size=len(sentences))})
    )
    aligned = brain_alignment(twin, loc, data, n_random=1, match="uniform", folds=3,
                              n_boot=100, n_permutations=100, progress=False)  # fmt: skip
    assert np.isfinite(aligned.table["r"]).all()
    # a mask of the trained model refuses its untrained twin
    with pytest.raises(LocalizeError, match=r"made for .llama.*untrained, seed 5"):
        localize(trained, toy_contrast, top=5, progress=False).units.check_model(twin)


def test_untrained_options_are_checked(tiny_hf):
    with pytest.raises(LocalizeError, match="seed= is the initialization seed"):
        load_model(tiny_hf["llama"], seed=1)
    with pytest.raises(LocalizeError, match="seed must be a whole number"):
        load_model(tiny_hf["llama"], untrained=True, seed=-1)
    with pytest.raises(LocalizeError, match="device_map= does not apply"):
        load_model(tiny_hf["llama"], untrained=True, device_map="auto")


@pytest.mark.model
def test_the_default_models_untrained_twin(default_model):
    from tl_localize.checks import check_model
    from tl_localize.models import model_fingerprint, model_signature

    twin = load_model(untrained=True, seed=0)
    assert twin.cfg.model_name == "SmolLM2-135M-Instruct (untrained, seed 0)"
    assert (twin.cfg.n_layers, twin.cfg.d_model) == (default_model.cfg.n_layers, 576)
    assert model_fingerprint(twin) != model_fingerprint(default_model)
    assert model_signature(twin)["untrained"] is True
    # the wiring checks rebuild the same untrained weights as their reference
    frame = check_model(twin, generation=False)
    row = frame.set_index("check").loc["logits_vs_transformers"]
    assert row["status"] == "pass", row["detail"]


def test_the_cli_localizes_an_untrained_twin(tiny_hf, toy_contrast, tmp_path, capsys):
    import json

    import pandas as pd

    from tl_localize.cli import main

    texts = toy_contrast.conditions
    csv = tmp_path / "toy.csv"
    pd.DataFrame(
        {"text": texts["words"] + texts["junk"], "condition": ["S"] * 8 + ["N"] * 8}
    ).to_csv(csv, index=False)
    args = ["localize", "--model", str(tiny_hf["llama"]), "--contrast", str(csv), "--positive",
            "S", "--negative", "N", "--top", "0.1", "--quiet"]  # fmt: skip
    assert main([*args, "--init-seed", "3", "--out", str(tmp_path / "no")]) == 2
    assert (
        "--init-seed is the seed of an untrained twin: add --untrained" in capsys.readouterr().err
    )
    assert main([*args, "--untrained", "--init-seed", "3", "--out", str(tmp_path / "twin")]) == 0
    record = json.loads((tmp_path / "twin" / "record.json").read_text())["model"]
    assert record["model"] == "llama (untrained, seed 3)" and record["init_seed"] == 3
    assert main([*args, "--out", str(tmp_path / "trained")]) == 0
    trained = json.loads((tmp_path / "trained" / "record.json").read_text())["model"]
    assert "untrained" not in trained and trained["fingerprint"] != record["fingerprint"]
