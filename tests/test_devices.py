"""Devices: ``auto`` takes a GPU where there is one, a device that is not there is one
clear error before any model loads, and results say where they were computed (fast tier;
nothing here assumes this machine has or lacks a GPU)."""

import pytest
import torch

import tl_localize.models as models
from tl_localize import LocalizeError
from tl_localize.cards import computed_on
from tl_localize.cli import main
from tl_localize.models import hardware, loading_options, model_hardware, resolve_device
from tl_localize.study import Study

MISSING_GPU = f"cuda:{torch.cuda.device_count() + 7}"  # never there, whatever the machine


def test_auto_takes_a_gpu_only_where_there_is_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected == resolve_device(None).type
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (MISSING_GPU, "is not available"),
        ("tpu", "Unknown device|not supported"),
        ("meta", "not supported"),
        ("gpu0", "Unknown device"),
    ],
)
def test_devices_that_are_not_there_are_refused(device, message):
    with pytest.raises(LocalizeError, match=message):
        resolve_device(device)


def test_mps_is_refused_where_it_is_missing():
    if torch.backends.mps.is_available():
        assert resolve_device("mps").type == "mps"
    else:
        with pytest.raises(LocalizeError, match="MPS is not available"):
            resolve_device("mps")


def test_loading_options_are_checked_together():
    with pytest.raises(LocalizeError, match="max_memory= goes with device_map="):
        loading_options("auto", "auto", None, {"cpu": "1GiB"})
    with pytest.raises(LocalizeError, match="not both"):
        loading_options("auto", "cpu", "auto", None)
    with pytest.raises(LocalizeError, match="Unknown dtype"):
        loading_options("float64", "cpu", None, None)
    options = loading_options("auto", "auto", "auto", {"cpu": "1GiB"})
    assert options["device"] is None and options["device_auto"] is False
    options = loading_options("float32", "cpu", None, None)
    assert options["dtype"] == torch.float32 and not options["dtype_auto"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", MISSING_GPU], f"Device '{MISSING_GPU}' is not available"),
        (["--device", "quantum"], "Unknown device 'quantum'"),
        (["--max-memory", "cpu=1GiB"], "max_memory= goes with device_map="),
        (["--device-map", "auto", "--max-memory", "lots"], "is not DEVICE=SIZE"),
        (["--device", "cpu", "--device-map", "auto"], "not both"),
    ],
)
def test_the_cli_refuses_a_placement_before_loading(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("a model loaded"))
    out = tmp_path / "out"
    for command in (
        ["localize", "--contrast", "language", "--out", str(out), *extra],
        ["check-model", *extra],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_study_refuses_an_unknown_device_with_its_key_path():
    data = {
        "models": [{"label": "m", "device": "gpu"}],
        "networks": [{"name": "x"}],
        "tasks": {"builtin": {}},
    }
    with pytest.raises(LocalizeError, match=r"models\[0\].device: unknown device 'gpu'"):
        Study.from_dict(data)
    auto = Study.from_dict({**data, "models": [{"label": "m", "device": "auto"}]})
    assert auto.models[0].device is None  # auto, as load_model's default


def test_results_say_where_they_were_computed(tiny):
    cpu = hardware("cpu")
    assert cpu["device"] == "cpu" and cpu["name"] and isinstance(cpu["bf16_fast"], bool)
    found = model_hardware(tiny)
    assert found["dtype"] == "float32" and found["devices"] == ["cpu"]
    assert found["dtype_auto"] is None  # built natively: nobody chose for it
    words = computed_on({"dtype": "bfloat16", "hardware": {**found, "dtype_auto": True}})
    assert words.startswith("bfloat16 (auto) on cpu, ") and "bfloat16 " in words
    gpu = {"device": "cuda:0", "name": "NVIDIA H100", "memory_gib": 79.1, "dtype_auto": False}
    assert computed_on({"dtype": "float32", "hardware": gpu}) == (
        "float32 on cuda:0, NVIDIA H100 (79.1 GiB)"
    )
    assert computed_on({"dtype": "float32"}) == "float32" and computed_on(None) is None
