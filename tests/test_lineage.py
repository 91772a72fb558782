"""Untrained twins and checkpoint sweeps in a study: the spec (fast tier), the lineage of a
selected set over checkpoints (fast tier on hand-made masks), and a tiny model trained here
for a few hundred steps, saved at several steps and run as a study (``study`` tier)."""

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from tl_localize import LocalizeError, Units
from tl_localize.study import Study, model_key, plan_study, unit_lineage

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
             "the hen laid an egg"]  # fmt: skip
JUNK = ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn"]


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "small.csv"
    pd.DataFrame({"text": SENTENCES + JUNK, "condition": ["S"] * 4 + ["N"] * 4}).to_csv(
        path, index=False
    )
    return path


def study_dict(models, contrast, **extra):
    data = {
        "name": "lineage",
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
        "ablation": {"n_random": 1, "n_boot": 200, "match": ["uniform"]},
        "tasks": {"builtin": {"n_per_paradigm": 1}},
    }
    data.update(extra)
    return data


# -- the spec (fast tier) ---------------------------------------------------------------
def test_revisions_expand_into_one_model_per_checkpoint(tmp_path, small_csv, tiny_hf):
    from conftest import save_tiny_hf

    run = tmp_path / "run"
    for step in ("step10", "step20"):
        save_tiny_hf(run / step, "llama")
    models = [{"label": "tiny", "spec": str(run), "revisions": ["step10", "step20"],
               "dtype": "float32"},
              {"label": "twin", "spec": str(tiny_hf["llama"]), "untrained": True, "seed": 3},
              {"label": "trained", "spec": str(tiny_hf["llama"])}]  # fmt: skip
    study = Study.from_dict(study_dict(models, small_csv))
    labels = [(m.label, m.revision, m.lineage, m.untrained) for m in study.models]
    assert labels == [("tiny@step10", "step10", "tiny", False),
                      ("tiny@step20", "step20", "tiny", False),
                      ("twin", None, None, True), ("trained", None, None, False)]  # fmt: skip
    assert study.models[2].seed == 3 and study.models[0].dtype == "float32"
    # what a Ray actor and the results read back is the same study
    again = Study.from_dict(json.loads(json.dumps(study.to_dict())))
    assert again.to_dict() == study.to_dict()
    keys = [model_key(m) for m in study.models]
    assert len(set(keys)) == 4  # the twin is not the trained model, nor two checkpoints one
    reseeded = Study.from_dict(study_dict(
        [{"label": "twin", "spec": str(tiny_hf["llama"]), "untrained": True, "seed": 4}],
        small_csv))  # fmt: skip
    assert model_key(reseeded.models[0]) != keys[2]
    assert {j.model for j in plan_study(study)} == {m.label for m in study.models}


BAD_MODELS = [
    ({"label": "a", "seed": 1}, r"models\[0\].seed: the initialization seed of an untrained"),
    ({"label": "a", "untrained": "yes"}, r"models\[0\].untrained: expected true or false"),
    ({"label": "a", "untrained": True, "seed": -2}, r"models\[0\].seed: expected a whole"),
    ({"label": "a", "untrained": True, "device_map": "auto"},
     r"models\[0\].device_map: an untrained twin is built in memory"),
    ({"label": "a", "revisions": []}, r"models\[0\].revisions: expected a string or a non-empty"),
    ({"label": "a", "revisions": ["s1", "s1"]}, r"models\[0\].revisions: 's1' is listed twice"),
    ({"label": "a", "revisions": ["s1"], "revision": "s1"},
     r"models\[0\].revision: give revisions or revision, not both"),
    ({"label": "a", "revisions": ["s1"], "untrained": True},
     r"models\[0\].untrained: give revisions or untrained, not both"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "message"), BAD_MODELS)
def test_bad_model_tables_are_refused(model, message, small_csv):
    with pytest.raises(LocalizeError, match=message):
        Study.from_dict(study_dict([model], small_csv))


def test_a_missing_checkpoint_is_named(tmp_path, small_csv, tiny_hf):
    run = tiny_hf["llama"].parent
    with pytest.raises(LocalizeError, match=r"models\[0\].revisions\[1\].revision: no checkpoint"):
        Study.from_dict(study_dict([{"label": "t", "spec": str(run), "revisions": ["llama",
                                                                                  "gone"]}],
                                   small_csv))  # fmt: skip


# -- the lineage of masks (fast tier) -----------------------------------------------------
def _units(indices, n_layers=2, width=8, name="m"):
    mask = torch.zeros(n_layers, width, dtype=torch.bool)
    for index in indices:
        mask.view(-1)[index] = True
    return Units(mask, "resid_post", name)


def test_unit_lineage_reports_the_jaccards_and_the_stable_step():
    sets = [_units([0, 1, 2, 3]), _units([2, 3, 4, 5]), _units([8, 9, 10, 11, 12]),
            _units([8, 9, 10, 11, 13]), _units([8, 9, 10, 11, 12])]  # fmt: skip
    names = ["step0", "step10", "step20", "step30", "step40"]
    frame = unit_lineage(sets, names)
    assert frame["checkpoint"].tolist() == names and frame["step"].tolist() == [0, 10, 20, 30, 40]
    assert frame["per_layer"].tolist()[:3] == ["4 0", "4 0", "0 5"]
    np.testing.assert_allclose(frame["jaccard_previous"].iloc[1:], [2 / 6, 0, 4 / 6, 4 / 6])
    np.testing.assert_allclose(frame["jaccard_final"], [0, 0, 1, 4 / 6, 1])
    assert frame["stable"].tolist() == [False, False, False, False, True]
    assert (frame["stable_from"] == "step40").all()
    lenient = unit_lineage(sets, names, threshold=0.6)
    assert lenient["stable"].tolist() == [False, False, True, True, True]
    assert lenient["stable_from"].iloc[0] == "step20"
    # a dip below the threshold after a stable stretch resets it
    dip = unit_lineage([sets[2], sets[0], sets[4]], ["a", "b", "c"])
    assert dip["stable_from"].iloc[0] == "c"
    with pytest.raises(LocalizeError, match="one set per checkpoint"):
        unit_lineage(sets, names[:2])
    with pytest.raises(LocalizeError, match="share the architecture and the site"):
        unit_lineage([sets[0], _units([1], n_layers=3)], ["a", "b"])


# -- data layouts: one error that shows the expected layout (fast tier) --------------------
def test_a_wrong_blimp_layout_shows_the_expected_one(tmp_path, small_csv):
    from tl_localize.data.pairs import load_blimp

    repo = tmp_path / "blimp"
    (repo / "data").mkdir(parents=True)
    line = {"sentence_good": "dogs run", "sentence_bad": "dogs runs"}
    (repo / "data" / "regular_plural.jsonl").write_text(json.dumps(line) + "\n")
    layout = r"one \{paradigm\}.jsonl file each .*github.com/alexwarstadt/blimp"
    with pytest.raises(LocalizeError, match=rf"No .jsonl files in .*{layout}.*are in .*data: pass"):
        load_blimp(repo)
    with pytest.raises(LocalizeError, match=rf"is a file; expected a folder .*{layout}"):
        load_blimp(repo / "data" / "regular_plural.jsonl")
    (repo / "data" / "other.jsonl").write_text(json.dumps({"good": "a", "bad": "b"}) + "\n")
    with pytest.raises(LocalizeError, match=rf"other.jsonl has no 'sentence_good' .*{layout}"):
        load_blimp(repo / "data")
    # in a study: one error naming the key, before any model loads
    data = study_dict([{"label": "m"}], small_csv, tasks={"blimp": {"blimp": str(repo)}})
    with pytest.raises(LocalizeError, match=rf"tasks.blimp: No .jsonl files in .*{layout}"):
        plan_study(Study.from_dict(data))


def test_a_wrong_brain_layout_shows_the_expected_one(tmp_path, small_csv):
    from tl_localize import BrainData

    folder = tmp_path / "brain"
    folder.mkdir()
    pd.DataFrame({"stimulus": ["a b"], "voxel_1": [0.1]}).to_csv(folder / "raw.csv", index=False)
    layout = r"expected one CSV file with a row per sentence: .*'Sentence'.*'EffectSize'"
    with pytest.raises(LocalizeError, match=rf"is a folder \(CSV files in it: \['raw.csv'\]\); "
                                            rf"{layout}"):  # fmt: skip
        BrainData.from_csv(folder)
    with pytest.raises(LocalizeError, match=rf"No column 'Sentence' .*{layout}"):
        BrainData.from_csv(folder / "raw.csv")
    bad = [({"path": str(folder)}, rf"brain.data\[0\].path: .* is a folder; {layout}"),
           ({"path": str(folder / "raw.csv")},
            rf"brain.data\[0\].sentence: .*raw.csv has no column 'Sentence' \(its columns: "
            rf"\['stimulus', 'voxel_1'\]\).*{layout}"),
           ({"path": str(folder / "raw.csv"), "sentence": "stimulus"},
            r"brain.data\[0\].responses: .*no column 'EffectSize'")]  # fmt: skip
    for dataset, message in bad:
        with pytest.raises(LocalizeError, match=message):
            Study.from_dict(study_dict([{"label": "m"}], small_csv, brain={"data": [dataset]}))


# -- real checkpoints: a tiny model trained here (study tier) -----------------------------
STEPS = (0, 10, 25, 50, 100, 150, 200, 250, 300)


def train_tiny_llama(folder, steps=STEPS, seed=0):
    """A 2-layer, 48-wide Llama with the character tokenizer, trained with AdamW (lr 1e-2,
    linear decay to 0) on the toolkit's own 240 language-localizer sentences, batches of 16,
    saved as ``folder/step{N}`` at each of ``steps``. A few hundred steps on one CPU thread."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from conftest import char_tokenizer
    from tl_localize import Contrast

    texts = Contrast.builtin("language").conditions["sentences"]
    tokenizer = char_tokenizer()
    tokenizer.model_max_length = 128
    config = LlamaConfig(
        vocab_size=len(tokenizer.get_vocab()), hidden_size=48, intermediate_size=96,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=128, tie_word_embeddings=False, bos_token_id=1, eos_token_id=1,
        pad_token_id=0,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and fair to neighbours
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config)
            last = max(steps)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / last)
            draw = torch.Generator().manual_seed(seed)
            losses = {}
            for step in range(last + 1):
                if step in steps:
                    model.save_pretrained(folder / f"step{step}")
                    tokenizer.save_pretrained(folder / f"step{step}")
                if step == last:
                    break
                batch = tokenizer([texts[i] for i in torch.randint(len(texts), (16,),
                                                                   generator=draw)],
                                  return_tensors="pt", padding=True)  # fmt: skip
                labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
                loss = model(**batch, labels=labels).loss
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                losses[step + 1] = float(loss)
    finally:
        torch.set_num_threads(threads)
    return losses


@pytest.mark.study
def test_the_lineage_of_a_trained_tiny_model(tmp_path, capsys):
    from tl_localize.study import run_study

    start = time.perf_counter()
    losses = train_tiny_llama(tmp_path / "run")
    train_s = time.perf_counter() - start
    assert losses[300] < losses[10] - 0.5  # it learned
    revisions = [f"step{s}" for s in STEPS]
    data = {
        "name": "lineage",
        "models": [{"label": "tiny", "spec": "run", "revisions": revisions, "dtype": "float32"}],
        "networks": [{"name": "language", "contrast": "language", "pooling": "mean", "top": [0.1]}],
        "ablation": {"n_random": 1, "n_boot": 200, "match": ["uniform"]},
        "tasks": {"builtin": {"n_per_paradigm": 1}},
    }
    study = Study.from_dict(data, base=tmp_path)
    result = run_study(study, tmp_path / "out", progress=False)
    assert (result.status()["status"] == "done").all()
    assert result.lineages() == {"tiny": [f"tiny@{r}" for r in revisions]}
    lineage = result.lineage()
    assert lineage["checkpoint"].tolist() == revisions and lineage["step"].tolist() == list(STEPS)
    assert (lineage["n_units"] == int(0.1 * 2 * 48)).all()
    assert lineage["per_layer"].map(lambda t: sum(map(int, t.split()))).eq(9).all()
    # the set changes early: the first checkpoints share little with their predecessors
    early = lineage[lineage["step"].between(1, 50)]
    assert early["jaccard_previous"].max() < 0.5 and early["jaccard_final"].max() < 0.5
    # and it stabilizes before training ends, from a step the table reports
    stable_from = lineage["stable_from"].iloc[0]
    stable_step = int(lineage.set_index("checkpoint").loc[stable_from, "step"])
    assert 50 < stable_step < STEPS[-1]
    after = lineage[lineage["step"] >= stable_step]
    assert (after["jaccard_final"] >= 0.8).all() and after["stable"].all()
    assert lineage[lineage["step"] < stable_step]["jaccard_final"].iloc[-1] < 0.8
    assert (tmp_path / "out" / "lineage.csv").is_file()
    effects = result.lineage_effects()
    assert effects["checkpoint"].tolist() == revisions  # one verdict per checkpoint, in order
    assert set(effects["verdict"].dropna()) and effects["step"].tolist() == list(STEPS)
    frame = result.frame()
    assert set(frame["revision"].dropna()) == set(revisions)
    with capsys.disabled():  # measured, not asserted (machines differ)
        print(f"\ntiny model: {STEPS[-1]} steps in {train_s:.1f} s; stable from {stable_from}")
        print(lineage[["checkpoint", "per_layer", "jaccard_previous", "jaccard_final"]])
