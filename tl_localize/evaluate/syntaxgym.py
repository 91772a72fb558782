"""SyntaxGym suites: surprisal predictions over regions of sentences.

A suite (JSON) has ``meta``, ``region_meta``, ``predictions`` and ``items``; each item has
``item_number`` and ``conditions``, each condition a ``condition_name`` and ``regions``
(``[{"region_number": 1, "content": "The"}, ...]``). A prediction is a formula such as
``((7;%match%) < (7;%mismatch%)) & ((5;%a%) + 1 > (5;%b%))`` where ``(r;%cond%)`` is the
surprisal in bits of region ``r`` of condition ``cond``.

Scoring, as the reference implementation does: the sentence is the non-empty regions'
contents joined by single spaces (punctuation regions too); a BOS token is prepended; a
token belongs to the region that holds its last character; a region's surprisal is the sum
of its tokens' surprisals (an empty region has surprisal 0). ``=`` holds when both sides are
close (relative tolerance 1e-5, absolute 1e-3). An item is correct when every prediction
holds.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import LocalizeError
from ..models import hf_tokenizer
from ..scoring import token_logprobs

__all__ = ["Formula", "load_suites", "parse_formula", "syntaxgym"]

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|(\(\s*\d+\s*;\s*%[^%]+%\s*\))|([()<>=&|+\-]))")
_REGION = re.compile(r"\(\s*(\d+)\s*;\s*%([^%]+)%\s*\)")


@dataclass(frozen=True)
class Formula:
    """A parsed prediction: a tree of tuples ``(op, left, right)``, ``("num", x)`` or
    ``("region", r, condition)``."""

    text: str
    tree: tuple

    def regions(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []

        def walk(node: tuple) -> None:
            if node[0] == "region":
                out.append((node[1], node[2]))
            elif node[0] != "num":
                walk(node[1])
                walk(node[2])

        walk(self.tree)
        return out

    def evaluate(self, surprisal: dict[tuple[int, str], float]) -> bool:
        value = _eval(self.tree, surprisal)
        if not isinstance(value, bool):
            raise LocalizeError(f"Formula {self.text!r} is a number, not a comparison.")
        return value


def _eval(node: tuple, s: dict[tuple[int, str], float]) -> Any:
    op = node[0]
    if op == "num":
        return node[1]
    if op == "region":
        return s[(node[1], node[2])]
    left, right = _eval(node[1], s), _eval(node[2], s)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "<":
        return left < right
    if op == ">":
        return left > right
    if op == "=":
        return math.isclose(left, right, rel_tol=1e-5, abs_tol=1e-3)
    if op == "&":
        return bool(left) and bool(right)
    return bool(left) or bool(right)  # "|"


def parse_formula(text: str) -> Formula:
    """Parse a SyntaxGym prediction formula; a syntax error says where it is.

    Grammar (loosest first): ``|``, ``&``, comparisons ``< > =``, ``+ -``, then numbers,
    region references ``(r;%cond%)`` and parenthesized expressions.
    """
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            _syntax_error(text, pos + len(text[pos:]) - len(text[pos:].lstrip()), "unexpected")
        start = match.start(match.lastindex or 0)
        if match.group(1):
            tokens.append(("num", float(match.group(1)), start))
        elif match.group(2):
            region = _REGION.fullmatch(match.group(2).strip())
            assert region is not None
            tokens.append(("region", (int(region.group(1)), region.group(2).strip()), start))
        else:
            tokens.append(("op", match.group(3), start))
        pos = match.end()
    parser = _Parser(text, tokens)
    tree = parser.expr()
    if parser.i != len(tokens):
        _syntax_error(text, tokens[parser.i][2], "unexpected")
    return Formula(text, tree)


def _syntax_error(text: str, at: int, what: str) -> None:
    raise LocalizeError(
        f"Cannot parse formula at character {at} ({what}):\n  {text}\n  {' ' * at}^"
    )


class _Parser:
    LEVELS = (("|",), ("&",), ("<", ">", "="), ("+", "-"))

    def __init__(self, text: str, tokens: list[tuple[str, Any, int]]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0

    def _peek(self) -> tuple[str, Any, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expr(self, level: int = 0) -> tuple:
        if level == len(self.LEVELS):
            return self.atom()
        left = self.expr(level + 1)
        while (tok := self._peek()) and tok[0] == "op" and tok[1] in self.LEVELS[level]:
            self.i += 1
            right = self.expr(level + 1)
            left = (tok[1], left, right)
            if level == 2:  # comparisons do not chain
                break
        return left

    def atom(self) -> tuple:
        tok = self._peek()
        if tok is None:
            _syntax_error(self.text, len(self.text), "the formula ends too early")
        assert tok is not None
        self.i += 1
        if tok[0] == "num":
            return ("num", tok[1])
        if tok[0] == "region":
            return ("region", *tok[1])
        if tok[1] == "(":
            inner = self.expr()
            close = self._peek()
            if close is None or close[1] != ")":
                where = close[2] if close else len(self.text)
                _syntax_error(self.text, where, "expected ')'")
            self.i += 1
            return inner
        if tok[1] == "-":
            return ("-", ("num", 0.0), self.atom())
        _syntax_error(self.text, tok[2], f"unexpected {tok[1]!r}")
        raise AssertionError


def load_suites(source: str | Path, suites: Sequence[str] | None = None) -> dict[str, dict]:
    """Suites by name from a suite file or a folder of ``*.json`` suite files."""
    path = Path(source)
    if path.is_file():
        files = {path.stem: path}
    elif path.is_dir():
        files = {p.stem: p for p in sorted(path.glob("*.json"))}
    else:
        raise LocalizeError(f"No SyntaxGym suite file or folder at {path}.")
    if not files:
        raise LocalizeError(f"No .json suite files in {path}.")
    chosen = list(files) if suites is None else list(suites)
    unknown = [s for s in chosen if s not in files]
    if unknown:
        raise LocalizeError(f"Unknown suite {unknown[0]!r}. Suites in {path}: {sorted(files)}.")
    out = {}
    for name in chosen:
        try:
            suite = json.loads(files[name].read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise LocalizeError(f"{files[name]}: not valid JSON ({error}).") from None
        missing = [k for k in ("predictions", "items") if k not in suite]
        if missing:
            raise LocalizeError(f"{files[name]}: not a SyntaxGym suite (no {missing[0]!r}).")
        out[name] = suite
    return out


def _sentence(regions: list[dict]) -> tuple[str, list[tuple[int, int, int]]]:
    """The sentence and each region's (number, start, end) character span."""
    parts, spans, pos = [], [], 0
    for region in regions:
        content = str(region.get("content", "")).strip()
        number = int(region["region_number"])
        if not content:
            spans.append((number, pos, pos))
            continue
        if parts:
            pos += 1
        parts.append(content)
        spans.append((number, pos, pos + len(content)))
        pos += len(content)
    return " ".join(parts), spans


def syntaxgym(
    model: Any,
    suites: str | Path,
    names: Sequence[str] | None = None,
    *,
    hooks: Sequence[tuple[str, Any]] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate SyntaxGym suites: one row per item with ``suite``, ``item_number``,
    ``correct`` and one boolean column per prediction (``prediction_0``, ...)."""
    loaded = load_suites(suites, names)
    tokenizer = hf_tokenizer(model)
    jobs = []  # (suite, item, condition, sentence, spans)
    parsed: dict[str, list[Formula]] = {}
    for suite_name, suite in loaded.items():
        parsed[suite_name] = [parse_formula(p["formula"]) for p in suite["predictions"]]
        for item in suite["items"]:
            conditions = {c["condition_name"]: c for c in item["conditions"]}
            for formula in parsed[suite_name]:
                for region, cond in formula.regions():
                    if cond not in conditions:
                        raise LocalizeError(
                            f"Suite {suite_name!r}, item {item['item_number']}: the formula "
                            f"{formula.text!r} names condition {cond!r}; the item has "
                            f"{sorted(conditions)}."
                        )
                    numbers = {int(r["region_number"]) for r in conditions[cond]["regions"]}
                    if region not in numbers:
                        raise LocalizeError(
                            f"Suite {suite_name!r}, item {item['item_number']}, condition "
                            f"{cond!r}: the formula {formula.text!r} names region {region}; "
                            f"the condition has regions {sorted(numbers)}."
                        )
            for cond, condition in conditions.items():
                sentence, spans = _sentence(condition["regions"])
                jobs.append((suite_name, item["item_number"], cond, sentence, spans))
    scores = token_logprobs(
        model,
        [j[3] for j in jobs],
        hooks=hooks,
        batch_size=batch_size,
        progress=progress,
        desc="syntaxgym",
    )
    surprisal: dict[tuple[str, Any], dict[tuple[int, str], float]] = {}
    for (suite_name, item_number, cond, sentence, spans), logprobs in zip(
        jobs, scores, strict=True
    ):
        offsets = tokenizer(sentence, return_offsets_mapping=True, add_special_tokens=False)[
            "offset_mapping"
        ]
        if len(offsets) != len(logprobs):
            raise LocalizeError(
                f"Suite {suite_name!r}, item {item_number}: token offsets do not line up with "
                "the scored tokens; this tokenizer adds special tokens of its own."
            )
        bits = (-logprobs / math.log(2)).tolist()
        # a token belongs to the region holding its last character; a token of spaces
        # only belongs to the region it precedes
        anchors = [e + 1 if not sentence[s:e].strip() else e for s, e in offsets]
        per_region = surprisal.setdefault((suite_name, item_number), {})
        for number, start, end in spans:
            per_region[(number, cond)] = sum(
                b for a, b in zip(anchors, bits, strict=True) if start < a <= end
            )
    rows = []
    for suite_name, suite in loaded.items():
        for item in suite["items"]:
            values = surprisal[(suite_name, item["item_number"])]
            results = [f.evaluate(values) for f in parsed[suite_name]]
            row = {"suite": suite_name, "item_number": item["item_number"]}
            row.update({f"prediction_{i}": r for i, r in enumerate(results)})
            row["correct"] = all(results)
            rows.append(row)
    return pd.DataFrame(rows)
