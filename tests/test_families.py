"""Model families a lab would try: tiny random models of each, built from their transformers
config classes and saved as local folders, through the whole toolkit in float32 and bfloat16.

Each model is loaded with ``load_model`` as a user's folder would be, then checked
(``check_model``, its generation row included), localized at every site it has, ablated
against a random control and scored on minimal pairs. Cached and uncached greedy generation
are compared step by step on the logits (a random model's near ties can flip a greedy token
without anything being wrong).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import FAMILIES, family_configs, save_tiny_family
from tl_localize import SITES, ablated, check_model, compare_ablation, evaluate, localize
from tl_localize.adapters import ADAPTERS
from tl_localize.models import generation_check, kv_cache_agrees, load_model, model_dtype

# bfloat16 in the slow tier: `make test` runs it, `make test-fast` does not
DTYPES = ("float32", pytest.param("bfloat16", marks=pytest.mark.slow))


@pytest.fixture(scope="module")
def family_folder(tmp_path_factory):
    """``family_folder(name)``: the saved tiny model of that family (built once)."""
    root = tmp_path_factory.mktemp("families")
    built: dict[str, object] = {}

    def folder(family: str):
        if family not in built:
            built[family] = save_tiny_family(root / family, family)
        return built[family]

    return folder


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A fresh cache folder, so the generation check is measured, not read back."""
    monkeypatch.setenv("TL_LOCALIZE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _load_quietly(folder, dtype):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(folder, dtype=dtype)
    said = [str(w.message) for w in caught if "KV cache" in str(w.message)]
    assert said == [], said  # the generation check passed: nothing to say
    return model


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_family_end_to_end(family, dtype, family_folder, own_cache, toy_contrast, toy_pairs):
    model = _load_quietly(family_folder(family), dtype)
    assert model_dtype(model) == getattr(torch, dtype)
    assert "generate" not in vars(model)  # load_model leaves the bridge's generate alone

    frame = check_model(model).set_index("check")
    failed = frame[frame["status"] == "fail"]
    assert failed.empty, failed[["value", "tolerance", "detail"]].to_dict("index")
    assert frame.loc["logits_vs_transformers", "status"] == "pass"
    assert frame.loc["generation_kv_cache", "status"] == "pass"

    sites = [name for name, site in SITES.items() if site.hook_name(0) in model.hook_dict]
    assert {"resid_post", "mlp_post"} <= set(sites), sites
    locs = {}
    for site in sites:
        locs[site] = localize(model, toy_contrast, site=site, top=4, progress=False)
        assert len(locs[site].units) == 4 and locs[site].units.site == site

    ids = model.hf_tokenizer("the cat sat", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        intact = model(ids)
        with ablated(model, locs["resid_post"].units):
            changed = model(ids)
    assert not torch.equal(intact, changed)

    pairs = evaluate.minimal_pairs(model, toy_pairs, progress=False)
    assert len(pairs) == len(toy_pairs)
    assert torch.isfinite(torch.tensor(pairs[["logprob_good", "logprob_bad"]].values)).all()
    task = ("pairs", lambda m, **kw: evaluate.minimal_pairs(m, toy_pairs, **kw))
    result = compare_ablation(
        model, locs["mlp_post"], [task], n_random=1, n_boot=100, progress=False
    )
    assert set(result.table["set"]) >= {"intact", "selected"}


def _break_kv_cache(model) -> None:
    """Undo the KV-cache adapter: the bridge's attention reads ``past_key_values`` only."""
    for module in model.modules():
        if "_update_kv_cache" in vars(module):
            del module._update_kv_cache


@pytest.mark.parametrize("family", ["gpt2", "llama", "olmo2"])
def test_generation_check_finds_a_cache_that_forgets(family, family_folder, own_cache):
    model = load_model(family_folder(family), dtype="float32")
    assert generation_check(model)["passed"]
    _break_kv_cache(model)
    found = generation_check(model)
    assert not found["passed"] and found["value"] > 100 * found["tolerance"], found


def test_kv_cache_finding_is_said_once_and_kept(family_folder, own_cache):
    model = load_model(family_folder("llama"), dtype="float32", check_generation=False)
    _break_kv_cache(model)
    with pytest.warns(UserWarning, match="KV cache differs from generation without it"):
        assert kv_cache_agrees(model) is False
    kept = list((own_cache / "checks").glob("*.json"))
    assert len(kept) == 1 and "float32" in kept[0].name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kv_cache_agrees(model) is False  # remembered on the model: no second word
        again = load_model(family_folder("llama"), dtype="float32", check_generation=False)
        _break_kv_cache(again)
        assert kv_cache_agrees(again) is False  # read from disk, not said again
    # the toolkit's own generation takes the uncached path for such a model
    from tl_localize import generation_sample

    ids = again.hf_tokenizer("the cat sat on the mat", return_tensors="pt")["input_ids"]
    texts = {
        cached: again.hf_tokenizer.decode(
            again.generate(ids, max_new_tokens=12, do_sample=False, verbose=False,
                           return_type="tokens", use_past_kv_cache=cached)[0, ids.shape[1] :]
        )
        for cached in (True, False)
    }  # fmt: skip
    assert texts[True] != texts[False]  # the broken cache shows in the tokens here
    sample = generation_sample(
        again, {"intact": None}, prompt="the cat sat on the mat", max_new_tokens=12
    )
    assert sample["continuation"].tolist() == [texts[False]]


def test_olmo2_bfloat16_needs_its_adapter(family_folder, own_cache):
    assert "olmo2" in ADAPTERS
    model = load_model(family_folder("olmo2"), dtype="bfloat16")
    ids = model.hf_tokenizer("the cat sat", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = model(ids)
    assert logits.dtype == torch.bfloat16
    for module in model.modules():  # remove the cast the adapter put on the rotated q/k
        for name in ("hook_rot_q", "hook_rot_k"):
            point = getattr(module, name, None)
            if point is not None:
                point._forward_hooks.clear()
    with pytest.raises(RuntimeError, match="same dtype"), torch.inference_mode():
        model(ids)


def test_the_tested_families_are_the_ones_named():
    from tl_localize.models import TESTED_FAMILIES

    named = {config.model_type for config in family_configs(100).values()}
    assert named == set(TESTED_FAMILIES) and len(named) == 15


def test_an_architecture_the_bridge_cannot_wrap_is_refused(tmp_path, own_cache):
    import transformers

    from conftest import char_tokenizer
    from tl_localize import LocalizeError

    tokenizer = char_tokenizer()
    config = transformers.BioGptConfig(
        vocab_size=len(tokenizer.get_vocab()), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64,
    )  # fmt: skip
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "biogpt")
    tokenizer.save_pretrained(tmp_path / "biogpt")
    with pytest.raises(LocalizeError, match="BioGptForCausalLM.*not one that transformer-lens"):
        load_model(tmp_path / "biogpt", dtype="float32")
