"""SyntaxGym suites scored with a model: surprisal predictions over regions of sentences.

Scoring, as the reference implementation does: a BOS token is prepended to each condition's
sentence (laid out by :func:`tl_localize.data.syntaxgym.suite_sentences`); a token belongs to
the region that holds its last character; a region's surprisal is the sum of its tokens'
surprisals in bits (an empty region has surprisal 0). ``=`` holds when both sides are close
(relative tolerance 1e-5, absolute 1e-3). An item is correct when every prediction holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.syntaxgym import check_suites, load_suites, suite_sentences
from ..errors import LocalizeError
from ..models import hf_tokenizer
from ..protocol import Hooks, Model
from ..scoring import token_logprobs

__all__ = ["syntaxgym"]


def syntaxgym(
    model: Model,
    suites: str | Path | Mapping[str, dict],
    *,
    names: Sequence[str] | None = None,
    hooks: Hooks = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate SyntaxGym suites (a suite file or a folder of them, ``names`` picking some;
    or suites already read by :func:`tl_localize.data.syntaxgym.load_suites`): one row per
    item with ``suite``, ``item_number``, ``correct`` and one boolean column per prediction
    (``prediction_0``, ...)."""
    loaded = check_suites(suites) if isinstance(suites, Mapping) else load_suites(suites, names)
    formulas, sentences = suite_sentences(loaded)
    tokenizer = hf_tokenizer(model)
    scores = token_logprobs(
        model,
        [s.sentence for s in sentences],
        hooks=hooks,
        batch_size=batch_size,
        progress=progress,
        desc="syntaxgym",
    )
    surprisal: dict[tuple[str, Any], dict[tuple[int, str], float]] = {}
    for s, logprobs in zip(sentences, scores, strict=True):
        offsets = tokenizer(s.sentence, return_offsets_mapping=True, add_special_tokens=False)[
            "offset_mapping"
        ]
        if len(offsets) != len(logprobs):
            raise LocalizeError(
                f"Suite {s.suite!r}, item {s.item_number}: token offsets do not line up with "
                "the scored tokens; this tokenizer adds special tokens of its own."
            )
        bits = (-logprobs / math.log(2)).tolist()
        # a token belongs to the region holding its last character; a token of spaces
        # only belongs to the region it precedes
        anchors = [e + 1 if not s.sentence[a:e].strip() else e for a, e in offsets]
        per_region = surprisal.setdefault((s.suite, s.item_number), {})
        for number, start, end in s.spans:
            per_region[(number, s.condition)] = sum(
                b for a, b in zip(anchors, bits, strict=True) if start < a <= end
            )
    rows = []
    for suite_name, suite in loaded.items():
        for item in suite["items"]:
            values = surprisal[(suite_name, item["item_number"])]
            results = [f.evaluate(values) for f in formulas[suite_name]]
            row: dict[str, Any] = {"suite": suite_name, "item_number": item["item_number"]}
            row.update({f"prediction_{i}": r for i, r in enumerate(results)})
            row["correct"] = all(results)
            rows.append(row)
    return pd.DataFrame(rows)
