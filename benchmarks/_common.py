"""Helpers shared by the benchmark scripts: fresh-process variants, the resident set, and
random-init models of real shapes.

A benchmark script runs each variant in a fresh Python process (``run_fresh``): the process
calls the script again with ``--variant NAME`` and prints one JSON line, which is read back
here. Peak memory is read from ``/proc/self/status`` (Linux): ``VmHWM`` is the kernel's
high-water mark of the resident set, which ``reset_peak()`` sets back to the current size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# A 16-text contrast (sentences S, non-word lists N) for the study and start-up benchmarks.
SMALL_STIMULI = {
    "S": ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
          "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass",
          "an elk stood still", "the ram ran up the hill"],
    "N": ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop",
          "fft yyq wwe", "gzq pqt lln", "rrm ssd qqw"],
}  # fmt: skip


def write_small_contrast(path: Path) -> Path:
    """:data:`SMALL_STIMULI` as a contrast CSV (``text``, ``condition``) at ``path``."""
    import pandas as pd

    rows = [{"text": t, "condition": c} for c, texts in SMALL_STIMULI.items() for t in texts]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# Random-init models of real shapes (Llama configs as the SmolLM2 checkpoints have them).
SHAPES: dict[str, dict[str, Any]] = {
    "135M": {"num_hidden_layers": 30, "hidden_size": 576, "num_attention_heads": 9,
             "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152},
    "360M": {"num_hidden_layers": 32, "hidden_size": 960, "num_attention_heads": 15,
             "num_key_value_heads": 5, "intermediate_size": 2560, "vocab_size": 49152},
    "1.7B": {"num_hidden_layers": 24, "hidden_size": 2048, "num_attention_heads": 32,
             "num_key_value_heads": 32, "intermediate_size": 8192, "vocab_size": 49152},
}  # fmt: skip
# Tiny stand-ins with the same code path (``--tiny``: checks the scripts, not the numbers).
TINY_SHAPES: dict[str, dict[str, Any]] = {
    "tiny-a": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 49152},
    "tiny-b": {"num_hidden_layers": 3, "hidden_size": 96, "num_attention_heads": 4,
               "num_key_value_heads": 4, "intermediate_size": 192, "vocab_size": 49152},
}  # fmt: skip


def rss_kib(field: str = "VmRSS") -> int:
    """A field of ``/proc/self/status`` in KiB: ``VmRSS`` (now) or ``VmHWM`` (the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    """Set the kernel's high-water mark of the resident set back to the current size."""
    Path("/proc/self/clear_refs").write_text("5")


def run_fresh(script: str, variant: str, *extra: str) -> dict[str, Any]:
    """Run ``script --variant VARIANT *extra`` in a fresh Python process; its last stdout
    line, parsed as JSON. A failed variant stops the benchmark with its stderr."""
    out = subprocess.run(
        [sys.executable, script, "--variant", variant, *extra], capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(f"variant {variant} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def llama_config(shape: dict[str, Any]) -> Any:
    """A Llama config of ``shape`` (SmolLM2's special tokens, tied embeddings)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **shape,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        architectures=["LlamaForCausalLM"],
    )


def default_tokenizer() -> Any:
    """The default model's tokenizer, read from its cached folder (no weights loaded; the
    folder is made, by de-quantizing the GGUF file once, when there is none)."""
    from transformers import AutoTokenizer

    from tl_localize.models import _cached_gguf_folder, cache_dir, default_model_path

    path = default_model_path()
    found = [f for f in cache_dir().glob(f"{path.stem}-*") if (f / "tokenizer.json").is_file()]
    return AutoTokenizer.from_pretrained(found[0] if found else _cached_gguf_folder(path))


def random_model(name: str, shape: dict[str, Any], dtype: Any, device: str) -> Any:
    """A random-init Llama of ``shape`` in ``dtype`` on ``device``, wrapped as a
    ``TransformerBridge`` with the default model's tokenizer."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        hf_model = AutoModelForCausalLM.from_config(llama_config(shape), dtype=dtype)
    tokenizer = default_tokenizer()
    model = TransformerBridge.boot_transformers(
        name, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    model.eval()
    model.cfg.model_name = name
    model.hf_tokenizer = tokenizer
    return model


def save_config(shape: dict[str, Any], folder: Path) -> Path:
    """Write the config of ``shape`` (and the default tokenizer) to ``folder``, without
    weights: what ``tl_localize.study.estimate_memory`` reads to size a model."""
    folder.mkdir(parents=True, exist_ok=True)
    llama_config(shape).save_pretrained(folder)
    default_tokenizer().save_pretrained(folder)
    return folder


def language_contrast(n: int | None = None) -> Any:
    """The built-in language contrast, or its first ``n // 2`` texts of each condition."""
    from tl_localize import Contrast

    contrast = Contrast.builtin("language")
    if n is None:
        return contrast
    k = n // 2
    return Contrast(
        f"language_{n}",
        {
            contrast.positive_condition: contrast.positive[:k],
            contrast.negative_condition: contrast.negative[:k],
        },
        contrast.positive_condition,
        contrast.negative_condition,
        pooling=contrast.pooling,
    )


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f}"
