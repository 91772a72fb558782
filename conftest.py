"""Fixtures for the tests and the package's doctests.

Tiny random models built in memory (fast tier) and the embedded default model (model tier).

The doctests of ``tl_localize`` run on a tiny random model (``model``) with a toy contrast,
a localization of it (``loc``) and toy minimal pairs, so every ``>>>`` example runs in the
fast tier without real weights.
"""

from __future__ import annotations

import functools
import string
from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

TOY_PAIRS = (
    ("the dogs run far", "the dogs ran far"),
    ("a cat sat here", "a cat sit here"),
    ("we go home now", "we gx home now"),
    ("she has a pen", "she hss a pen"),
    ("my owl flies", "my owl flied"),
)


def char_tokenizer(bos: bool = True, pad: bool = True) -> PreTrainedTokenizerFast:
    """A character-level tokenizer built in memory (no download)."""
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2}
    for char in string.printable[:95]:
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<bos> $A", special_tokens=[("<bos>", 1)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>" if bos else None,
        pad_token="<pad>" if pad else None,
        unk_token="<unk>",
        model_max_length=64,
    )
    # The bridge rebuilds tokenizers from name_or_path unless told BOS is already handled.
    tokenizer.init_kwargs["name_or_path"] = "char"
    tokenizer.init_kwargs["add_bos_token"] = True
    return tokenizer


def tiny_model(n_layers: int = 3, d_model: int = 32, seed: int = 0, name: str = "tiny", dtype=None):
    """A tiny random model (GPT-2-like: learned positions, LayerNorm), float32 unless
    ``dtype`` is given."""
    tokenizer = char_tokenizer()
    cfg = TransformerBridgeConfig(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=4,
        d_head=d_model // 4,
        d_mlp=2 * d_model,
        n_ctx=64,
        d_vocab=len(tokenizer.get_vocab()),
        act_fn="gelu",
        normalization_type="LN",
        seed=seed,
    )
    model = TransformerBridge.boot_native(cfg, tokenizer=tokenizer, dtype=dtype)
    model.eval()
    model.cfg.model_name = name
    return model


def toy_contrast_factory():
    from tl_localize import Contrast

    words = [
        f"the {w} sat on a mat" for w in ["cat", "dog", "owl", "fox", "hen", "ram", "cow", "elk"]
    ]
    junk = [f"zq{w}x vbk qqp" for w in ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op"]]
    return Contrast("toy", {"words": words, "junk": junk}, "words", "junk", pooling="mean")


@functools.cache
def _doctest_names() -> dict:
    import pandas as pd
    import torch

    from tl_localize import localize

    model = tiny_model()
    contrast = toy_contrast_factory()
    return {
        "model": model,
        "toy_contrast": contrast,
        "toy_pairs": list(TOY_PAIRS),
        "loc": localize(model, contrast, top=6, progress=False),
        "torch": torch,
        "pd": pd,
    }


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    """Names the package's ``>>>`` examples use (only built for doctests)."""
    if type(request.node).__name__ == "DoctestItem":
        doctest_namespace.update(_doctest_names())


def pytest_configure(config):
    """``TL_LOCALIZE_TEST_BF16_FAST=1`` runs the suite as on a machine that computes bfloat16
    fast (a CUDA GPU, a CPU with AMX / AVX512-BF16): ``dtype="auto"`` resolves to bfloat16
    whatever this machine's CPU, so a test that assumes float32 shows itself here.

    A run that leaves out the real-weights tier (``-m "not model ..."``, as ``make test-fast``)
    computes on one thread, here and in the processes its tests start: tiny models lose more to
    threads' overhead than they gain from them. A run with the model tier, or with
    ``OMP_NUM_THREADS`` set, keeps its threads."""
    import os

    if "not model" in (config.option.markexpr or "") and "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
    if os.environ.get("TL_LOCALIZE_TEST_BF16_FAST") == "1":
        import tl_localize.options

        tl_localize.options.bf16_is_fast = lambda device=None: True


SHARED_DATA = Path(__file__).resolve().parents[1] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny():
    return tiny_model()


@pytest.fixture(scope="session")
def saved_loc(tiny, toy_contrast, tmp_path_factory):
    """A localization of ``tiny`` (the toy contrast, top 6) and the folder it was saved in."""
    from tl_localize import localize

    loc = localize(tiny, toy_contrast, top=6, progress=False)
    folder = loc.save(tmp_path_factory.mktemp("saved") / "loc", figure=False)
    return loc, folder


@pytest.fixture(scope="session")
def make_tiny():
    """Build another tiny model: ``make_tiny(n_layers=2, name="other")``."""
    return tiny_model


@pytest.fixture(scope="session")
def toy_contrast():
    """Eight short sentences against eight letter strings, pooled by the mean."""
    return toy_contrast_factory()


@pytest.fixture(scope="session")
def toy_pairs():
    """Minimal pairs whose sentences have the same number of characters (tiny-model tokens)."""
    return list(TOY_PAIRS)


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model in float32, whatever ``auto`` picks on this machine: the
    model tier asserts numbers measured in float32 (the reference's precision). The default
    path of a bfloat16-fast machine is tested in tests/test_bf16.py on any machine."""
    from tl_localize import load_model

    return load_model(dtype="float32")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def save_tiny_hf(
    folder: Path, arch: str = "llama", seed: int = 0, layers: int | None = None
) -> Path:
    """A tiny random Hugging Face model with the character tokenizer, saved as a local
    folder (``arch``: ``"llama"`` or ``"gpt2"``; ``layers``: 2 and 3 by default): what
    ``load_model(folder)`` reads."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tokenizer = char_tokenizer()
    tokenizer.model_max_length = 128
    vocab = len(tokenizer.get_vocab())
    special = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}
    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers or 2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
            tie_word_embeddings=False, **special,
        )  # fmt: skip
    elif arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_embd=48, n_layer=layers or 3, n_head=4, n_positions=128, **special
        )
    else:
        raise ValueError(f"unknown arch {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def family_configs(vocab: int) -> dict:
    """Hand-written tiny configs (2 layers, d_model 32, 4 heads, 2 KV heads where the
    family has grouped queries) of the model families a lab would try first."""
    import transformers as tf

    special = {"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0, "vocab_size": vocab}
    llama_like = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
        "tie_word_embeddings": False, **special,
    }  # fmt: skip
    return {
        "gpt2": tf.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **special),
        "gpt_neox": tf.GPTNeoXConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            rotary_pct=0.25,
            **special,
        ),
        "llama": tf.LlamaConfig(**llama_like),
        "mistral": tf.MistralConfig(**llama_like),
        "qwen2": tf.Qwen2Config(**llama_like),
        "qwen3": tf.Qwen3Config(head_dim=8, **llama_like),
        "gemma2": tf.Gemma2Config(head_dim=8, **llama_like),
        "gemma3": tf.Gemma3TextConfig(head_dim=8, **llama_like),
        "phi3": tf.Phi3Config(**llama_like),
        "opt": tf.OPTConfig(
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=128,
            word_embed_proj_dim=32,
            **special,
        ),
        "falcon": tf.FalconConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, **special
        ),
        "gptj": tf.GPTJConfig(
            n_embd=32, n_layer=2, n_head=4, n_positions=128, rotary_dim=4, **special
        ),
        "bloom": tf.BloomConfig(hidden_size=32, n_layer=2, n_head=4, **special),
        "olmo2": tf.Olmo2Config(**llama_like),
        "stablelm": tf.StableLmConfig(**llama_like),
    }


FAMILIES = tuple(family_configs(100))


def save_tiny_family(folder: Path, family: str, seed: int = 0) -> Path:
    """A tiny random model of ``family`` (one of :data:`FAMILIES`) with the character
    tokenizer, saved as a local Hugging Face folder."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = char_tokenizer()
    tokenizer.model_max_length = 128
    config = family_configs(len(tokenizer.get_vocab()))[family]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory):
    """Two tiny random models saved as local HF folders: ``{"llama": path, "gpt2": path}``."""
    root = tmp_path_factory.mktemp("hf")
    return {
        arch: save_tiny_hf(root / arch, arch, seed=i) for i, arch in enumerate(("llama", "gpt2"))
    }
