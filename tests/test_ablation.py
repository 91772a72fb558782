import pytest
import torch

from tl_localize import (
    LocalizeError,
    Units,
    ablated,
    ablation_hooks,
    high_magnitude_units,
    unit_means,
)

TEXT = "the cat sat on the mat"


def _cache(model, hooks=(), names=("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")):
    ids = model.to_tokens(TEXT)
    with model.hooks(fwd_hooks=list(hooks)), torch.no_grad():
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
    return {n: cache[n][0] for n in names}


def _units(model, coords, site="resid_post", width=32):
    mask = torch.zeros(model.cfg.n_layers, width, dtype=torch.bool)
    for layer, unit in coords:
        mask[layer, unit] = True
    return Units(mask, site, model.cfg.model_name)


def test_zero_ablation_changes_exactly_the_selected_coordinates(tiny):
    units = _units(tiny, [(1, 3), (1, 17), (1, 30)])
    intact = _cache(tiny)
    patched = _cache(tiny, ablation_hooks(units))
    torch.testing.assert_close(
        patched["blocks.0.hook_resid_post"], intact["blocks.0.hook_resid_post"]
    )
    layer1 = patched["blocks.1.hook_resid_post"]
    assert (layer1[:, [3, 17, 30]] == 0).all()
    keep = [i for i in range(32) if i not in (3, 17, 30)]
    torch.testing.assert_close(layer1[:, keep], intact["blocks.1.hook_resid_post"][:, keep])
    assert not torch.equal(layer1, intact["blocks.1.hook_resid_post"])


def test_mean_ablation_uses_the_reference_means(tiny):
    units = _units(tiny, [(0, 5), (1, 6)])
    means = unit_means(tiny, ["a dog ran", "some text here", TEXT])
    assert means.shape == (3, 32)
    patched = _cache(tiny, ablation_hooks(units, method="mean", means=means))
    assert torch.allclose(
        patched["blocks.0.hook_resid_post"][:, 5], means[0, 5].expand(len(TEXT) + 1)
    )
    assert torch.allclose(
        patched["blocks.1.hook_resid_post"][:, 6], means[1, 6].expand(len(TEXT) + 1)
    )


def test_context_manager_removes_its_hooks(tiny):
    units = _units(tiny, [(2, i) for i in range(32)])
    ids = tiny.to_tokens(TEXT)
    with torch.no_grad():
        before = tiny(ids)
        with ablated(tiny, units):
            inside = tiny(ids)
        after = tiny(ids)
    assert not torch.allclose(before, inside)
    torch.testing.assert_close(before, after)


def test_ablation_applies_inside_generate(tiny):
    # Zeroing the whole last block output makes every position's logits identical, so greedy
    # decoding repeats one token: visible only if the hooks run inside generate.
    units = _units(tiny, [(2, i) for i in range(32)])
    ids = tiny.to_tokens("abc")
    kwargs = {"max_new_tokens": 6, "do_sample": False, "stop_at_eos": False, "verbose": False}
    with ablated(tiny, units):
        tokens = tiny.generate(ids, return_type="tokens", **kwargs)
    new = tokens[0, ids.shape[1] :].tolist()
    assert len(new) == 6 and len(set(new)) == 1
    intact = tiny.generate(ids, return_type="tokens", **kwargs)[0, ids.shape[1] :].tolist()
    assert intact != new


def test_mlp_and_attention_sites(tiny):
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[1, [0, 9]] = True  # attn_z: head 0 dim 0 and head 1 dim 1
    units = Units(mask, "attn_z", "tiny")
    names = ("blocks.1.attn.hook_z",)
    z = _cache(tiny, ablation_hooks(units), names)["blocks.1.attn.hook_z"]
    assert z.shape[1:] == (4, 8)
    assert (z[:, 0, 0] == 0).all() and (z[:, 1, 1] == 0).all() and (z[:, 0, 1] != 0).any()


def test_bad_ablation_arguments(tiny, make_tiny):
    units = _units(tiny, [(0, 1)])
    with pytest.raises(LocalizeError, match="Unknown ablation method 'noise'"):
        ablation_hooks(units, method="noise")
    with pytest.raises(LocalizeError, match="method='mean' needs means="):
        ablation_hooks(units, method="mean")
    with pytest.raises(LocalizeError, match=r"means has shape \(2, 32\)"):
        ablation_hooks(units, method="mean", means=torch.zeros(2, 32))
    other = make_tiny(n_layers=2, name="other")
    with pytest.raises(LocalizeError, match="made for 'tiny'"), ablated(other, units):
        pass


def test_magnitude_matched_controls_and_diagnostic():
    gen = torch.Generator().manual_seed(0)
    magnitude = torch.rand(4, 200, generator=gen) * 5 + 1
    magnitude[2, 7] = 400.0  # a massive-activation dimension
    magnitude[2, 8] = 350.0
    mask = torch.zeros(4, 200, dtype=torch.bool)
    mask[2, 7] = True
    mask[1, :20] = True
    units = Units(mask, "resid_post", "m")
    control = units.random_like(0, "magnitude", magnitude)
    assert len(control) == len(units) and len(control & units) == 0
    assert control.per_layer()["count"].tolist() == units.per_layer()["count"].tolist()
    assert control.mask[2, 8]  # the only other loud unit of layer 2 matches the loud one
    uniform = units.random_like(0, "uniform")
    assert not uniform.mask[2, 8]
    loud = high_magnitude_units(units, magnitude)
    assert loud[["layer", "unit"]].values.tolist() == [[2, 7]]
    assert loud["ratio_to_median"].iloc[0] > 20
    assert len(high_magnitude_units(uniform, magnitude)) == 0
    with pytest.raises(LocalizeError, match="match='magnitude' needs magnitude="):
        units.random_like(0, "magnitude")


def test_least_active_controls_come_from_each_layers_quietest_units():
    gen = torch.Generator().manual_seed(1)
    magnitude = torch.rand(4, 200, generator=gen) * 5 + 1
    mask = torch.zeros(4, 200, dtype=torch.bool)
    mask[1, :12] = True
    mask[3, 50:53] = True
    quietest = magnitude.argsort(dim=1)[:, :25]  # more than the 10% pool of 20, selected ones too
    mask[3, quietest[3, 0]] = True  # a selected unit among the quietest: never drawn again
    units = Units(mask, "resid_post", "m")
    control = units.random_like(0, "least_active", magnitude)
    assert len(control) == len(units) and len(control & units) == 0
    assert control.per_layer()["count"].tolist() == units.per_layer()["count"].tolist()
    for layer in (1, 3):
        free = (~mask[layer]).nonzero().flatten()
        pool = free[magnitude[layer, free].argsort()[:20]]  # the 20 least active unselected
        assert set(control.mask[layer].nonzero().flatten().tolist()) <= set(pool.tolist())
    assert control == units.random_like(0, "least_active", magnitude)  # seeded
    assert control != units.random_like(1, "least_active", magnitude)
    layer_matched = units.random_like(0, "layer")
    assert magnitude[control.mask].mean() < magnitude[layer_matched.mask].mean()
    crowded = torch.zeros(4, 200, dtype=torch.bool)
    crowded[0, :30] = True  # more selected units than the pool of 20: the 30 quietest others
    whole = Units(crowded, "resid_post", "m").random_like(0, "least_active", magnitude)
    expected = 30 + magnitude[0, 30:].argsort()[:30]
    assert whole.mask[0].nonzero().flatten().tolist() == sorted(expected.tolist())
    with pytest.raises(LocalizeError, match="match='least_active' needs magnitude="):
        units.random_like(0, "least_active")
    full = torch.zeros(4, 200, dtype=torch.bool)
    full[2, :150] = True
    with pytest.raises(LocalizeError, match="least-active control is impossible"):
        Units(full, "resid_post", "m").random_like(0, "least_active", magnitude)
