"""Fixtures: tiny random models (fast tier) and the embedded default model (model tier)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformers import PreTrainedTokenizerFast

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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


def tiny_model(n_layers: int = 3, d_model: int = 32, seed: int = 0, name: str = "tiny"):
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
    model = TransformerBridge.boot_native(cfg, tokenizer=tokenizer)
    model.eval()
    model.cfg.model_name = name
    return model


@pytest.fixture(scope="session")
def tiny():
    return tiny_model()


@pytest.fixture(scope="session")
def make_tiny():
    """Build another tiny model: ``make_tiny(n_layers=2, name="other")``."""
    return tiny_model


@pytest.fixture(scope="session")
def toy_contrast():
    """Eight short sentences against eight letter strings, pooled by the mean."""
    from tl_localize import Contrast

    words = [
        f"the {w} sat on a mat" for w in ["cat", "dog", "owl", "fox", "hen", "ram", "cow", "elk"]
    ]
    junk = [f"zq{w}x vbk qqp" for w in ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op"]]
    return Contrast("toy", {"words": words, "junk": junk}, "words", "junk", pooling="mean")


@pytest.fixture(scope="session")
def toy_pairs():
    """Minimal pairs whose sentences have the same number of characters (tiny-model tokens)."""
    return [
        ("the dogs run far", "the dogs ran far"),
        ("a cat sat here", "a cat sit here"),
        ("we go home now", "we gx home now"),
        ("she has a pen", "she hss a pen"),
        ("my owl flies", "my owl flied"),
    ]


@pytest.fixture(scope="session")
def default_model():
    from tl_localize import load_model

    return load_model()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA
