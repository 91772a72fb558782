import pytest
import torch

from tl_localize import LocalizeError, Units


def _units(rows, model="m", site="resid_post"):
    return Units(torch.tensor(rows, dtype=torch.bool), site, model)


def test_set_algebra_and_counts():
    a = _units([[1, 1, 0, 0], [0, 0, 1, 0]])
    b = _units([[1, 0, 0, 0], [0, 0, 1, 1]])
    assert len(a) == 3 and a.n_units == 8
    assert len(a & b) == 2 and len(a | b) == 4 and len(a - b) == 1
    assert a.jaccard(b) == pytest.approx(0.5)
    assert (a - b).to_frame().values.tolist() == [[0, 1]]
    assert a.per_layer()["count"].tolist() == [2, 1]
    assert a.layers() == [0, 1]
    assert a.hook_names() == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    with pytest.raises(LocalizeError, match="must share the model"):
        a & _units([[1, 0, 0, 0], [0, 0, 0, 0]], model="other")


@pytest.mark.parametrize("match", ["uniform", "layer"])
def test_random_controls(match):
    mask = torch.zeros(6, 50, dtype=torch.bool)
    mask[0, :10] = True
    mask[5, :5] = True
    units = Units(mask, "resid_post", "m")
    control = units.random_like(seed=3, match=match)
    assert len(control) == len(units)
    assert len(control & units) == 0
    assert control == units.random_like(seed=3, match=match)
    assert control != units.random_like(seed=4, match=match)
    if match == "layer":
        assert control.per_layer()["count"].tolist() == units.per_layer()["count"].tolist()
    else:
        assert control.per_layer()["count"].tolist() != units.per_layer()["count"].tolist()


def test_random_control_impossible():
    full = _units([[1, 1], [0, 0]])
    with pytest.raises(LocalizeError, match="layer-matched control is impossible"):
        full.random_like(0, match="layer")
    with pytest.raises(LocalizeError, match="Unknown match 'size'"):
        full.random_like(0, match="size")


def test_bad_mask_and_site():
    with pytest.raises(LocalizeError, match=r"bool tensor \[n_layers, width\]"):
        Units(torch.zeros(3), "resid_post", "m")
    with pytest.raises(LocalizeError, match="Unknown site 'resid'"):
        Units(torch.zeros(2, 2, dtype=torch.bool), "resid", "m")


def test_save_load_roundtrip_and_model_check(tmp_path, tiny, make_tiny):
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[1, 4] = mask[2, 7] = True
    units = Units(mask, "resid_post", tiny.cfg.model_name)
    path = units.save(tmp_path / "u")
    assert path.suffix == ".safetensors"
    assert Units.load(path, tiny) == units
    other = make_tiny(n_layers=2, name="other")
    with pytest.raises(LocalizeError, match=r"made for 'tiny' \(3 layers x 32.*'other' \(2 x 32\)"):
        Units.load(path, other)
    renamed = make_tiny(name="tiny-2")
    with pytest.raises(LocalizeError, match="made for 'tiny'"):
        Units.load(path, renamed)


def test_load_refuses_other_files(tmp_path):
    junk = tmp_path / "units.safetensors"
    junk.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(LocalizeError, match="not a units file"):
        Units.load(junk)
    with pytest.raises(LocalizeError, match="No saved units"):
        Units.load(tmp_path / "missing.safetensors")


def test_fingerprints_tell_weights_apart(make_tiny, tmp_path):
    from tl_localize.models import model_fingerprint

    a, b, again = make_tiny(seed=0), make_tiny(seed=1), make_tiny(seed=0)
    assert model_fingerprint(a) == model_fingerprint(again) != model_fingerprint(b)
    assert len(model_fingerprint(a)) == 16
    # a mask made for one checkpoint refuses another of the same name and shape
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[0, 1] = True
    units = Units(mask, "resid_post", "tiny", fingerprint=model_fingerprint(a))
    path = units.save(tmp_path / "u")
    assert Units.load(path, again) == units
    with pytest.raises(LocalizeError, match="with other weights"):
        Units.load(path, b)
