"""SyntaxGym suites: surprisal predictions over regions of sentences (the data side).

A suite (JSON) has ``meta``, ``region_meta``, ``predictions`` and ``items``; each item has
``item_number`` and ``conditions``, each condition a ``condition_name`` and ``regions``
(``[{"region_number": 1, "content": "The"}, ...]``). A prediction is a formula such as
``((7;%match%) < (7;%mismatch%)) & ((5;%a%) + 1 > (5;%b%))`` where ``(r;%cond%)`` is the
surprisal in bits of region ``r`` of condition ``cond``.

This module reads and checks suites, parses their formulas and lays out each condition's
sentence and region spans; :func:`tl_localize.evaluate.syntaxgym` scores them with a model.
The sentence of a condition is its non-empty regions' contents joined by single spaces
(punctuation regions too), as the reference implementation does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pyparsing as pp

from ..errors import LocalizeError
from .io import read_json
from .tables import visible

__all__ = [
    "Formula",
    "SuiteSentence",
    "check_suites",
    "load_suites",
    "parse_formula",
    "suite_sentences",
]

_TRUTH_OPS = frozenset("<>=&|")  # the operators whose value is true or false


@dataclass(frozen=True)
class Formula:
    """A parsed prediction: a tree of tuples ``(op, left, right)``, ``("num", x)`` or
    ``("region", r, condition)`` whose top is a comparison (``< > =``) or ``& |``."""

    text: str
    tree: tuple

    def __post_init__(self) -> None:
        if self.tree[0] not in _TRUTH_OPS:
            raise LocalizeError(f"Formula {self.text!r} is a number, not a comparison.")

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
        return bool(_eval(self.tree, surprisal))


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


# -- the formula grammar (pyparsing), built once ----------------------------------------
# Loosest first: ``|``, ``&``, one comparison ``< > =`` (they do not chain), ``+ -`` (left
# associative), then atoms: a number, a region reference ``(r;%cond%)``, a parenthesized
# formula or a unary minus. Each level is written out rather than made by
# ``pp.infix_notation``: that helper chains every binary level (``a < b < c``) and where its
# syntax errors point has changed between pyparsing releases. ``-`` (pyparsing's error stop)
# after an operator, after ``(r;`` and before a closing ``)`` means that once these are
# read the rest must follow, so an error points at what is missing, not at the operator.
# The parse actions take all three arguments (text, location, tokens): pyparsing guesses
# the arity of a shorter one by calling it and reading where a TypeError came from, and a
# runtime type-checking wrapper (beartype, under the tests) defeats that guess.
def _number(_text: str, _loc: int, tokens: pp.ParseResults) -> tuple:
    return ("num", float(tokens[0]))


def _region(_text: str, _loc: int, tokens: pp.ParseResults) -> tuple:  # ["( 7 ;", "%match sing%"]
    return ("region", int(tokens[0][1:-1]), tokens[1][1:-1].strip())


def _negate(_text: str, _loc: int, tokens: pp.ParseResults) -> tuple:
    return ("-", ("num", 0.0), tokens[0])


def _fold_left(_text: str, _loc: int, tokens: pp.ParseResults) -> tuple:
    """``[x, op, y, op, z]`` as ``(op, (op, x, y), z)``."""
    tree = tokens[0]
    for i in range(1, len(tokens), 2):
        tree = (tokens[i], tree, tokens[i + 1])
    return tree


_NUMBER = pp.Regex(r"\d+(?:\.\d+)?").set_parse_action(_number)
_REGION_REF = (  # "(r;" is one regex so that "(" alone fails where "(" stands
    pp.Regex(r"\(\s*\d+\s*;") - pp.Regex(r"%[^%]+%").set_name("%condition%") + pp.Suppress(")")
).set_parse_action(_region)
_FORMULA = pp.Forward()
_ATOM = pp.Forward()
_ATOM <<= (
    _REGION_REF
    | _NUMBER
    | pp.Suppress("(") + _FORMULA - pp.Suppress(")")
    | (pp.Suppress("-") - _ATOM).set_parse_action(_negate)
).set_name("a number, a region (r;%condition%), '(' or '-'")
_SUM = (_ATOM + (pp.one_of("+ -") - _ATOM)[...]).set_parse_action(_fold_left)
_COMPARISON = (_SUM + pp.Opt(pp.one_of("< > =") - _SUM)).set_parse_action(_fold_left)
_AND = (_COMPARISON + (pp.Literal("&") - _COMPARISON)[...]).set_parse_action(_fold_left)
_FORMULA <<= (_AND + (pp.Literal("|") - _AND)[...]).set_parse_action(_fold_left)


def parse_formula(text: str) -> Formula:
    """Parse a SyntaxGym prediction formula; a syntax error says where it is.

    Grammar (loosest first): ``|``, ``&``, comparisons ``< > =`` (one per operand of ``&``
    and ``|``; ``a < b < c`` is an error), ``+ -``, then numbers, region references
    ``(r;%cond%)``, parenthesized formulas and unary minus. A formula that is a number, not
    a comparison, is an error too.
    """
    try:
        tree = _FORMULA.parse_string(text, parse_all=True)[0]
    except pp.ParseBaseException as error:
        at = error.loc
        found = f"found {text[at]!r}" if at < len(text) else "the formula ends too early"
        _syntax_error(text, at, f"{error.msg[:1].lower()}{error.msg[1:]}; {found}")
    except RecursionError:  # some 50 nested parentheses; real formulas nest a few
        raise LocalizeError(f"Formula {text!r} nests parentheses too deeply to parse.") from None
    return Formula(text, tree)


def _syntax_error(text: str, at: int, what: str) -> NoReturn:
    raise LocalizeError(
        f"Cannot parse formula at character {at} ({what}):\n  {text}\n  {' ' * at}^"
    )


def load_suites(source: str | Path, suites: Sequence[str] | None = None) -> dict[str, dict]:
    """Suites by name from a suite file or a folder of ``*.json`` suite files, each checked
    for the keys scoring needs (a missing key is an error naming the suite and the item)."""
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
        suite = read_json(files[name], "SyntaxGym suite")
        _check_suite(str(files[name]), suite)
        out[name] = suite
    suite_sentences(out)  # formulas name regions and conditions the items have
    return out


def check_suites(suites: Any) -> dict[str, dict]:
    """Suites given as a mapping of name -> suite (as :func:`load_suites` returns them),
    each checked as :func:`load_suites` checks a file."""
    if not isinstance(suites, Mapping) or not suites:
        raise LocalizeError(
            "SyntaxGym suites are a suite file, a folder of them, or a non-empty dict of "
            f"name -> suite; got {type(suites).__name__}"
            f"{' (empty)' if isinstance(suites, Mapping) else ''}."
        )
    out = {str(name): suite for name, suite in suites.items()}
    for name, suite in out.items():
        _check_suite(f"Suite {name!r}", suite)
    suite_sentences(out)
    return out


def _require(where: str, value: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, dict) or key not in value:
        raise LocalizeError(f"{where}: no {key!r}; a SyntaxGym suite needs it there.")
    found = value[key]
    if not isinstance(found, kind) or isinstance(found, bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LocalizeError(f"{where}: {key!r} is a {type(found).__name__}, expected {names}.")
    return found


def _region_number(where: str, region: dict) -> None:
    number = _require(where, region, "region_number", (int, str))
    if isinstance(number, str) and not number.strip().isdecimal():
        raise LocalizeError(f"{where}: 'region_number' is {number!r}, not a whole number.")


def _check_suite(where: str, suite: Any) -> None:
    predictions = _require(where, suite, "predictions", list)
    items = _require(where, suite, "items", list)
    if not predictions:
        raise LocalizeError(
            f"{where}: the suite has no predictions, so no item could be right or wrong; add "
            "at least one prediction formula."
        )
    if not items:
        raise LocalizeError(f"{where}: the suite has no items.")
    for i, prediction in enumerate(predictions):
        formula = _require(f"{where}, prediction {i}", prediction, "formula", str)
        try:
            parse_formula(formula)
        except LocalizeError as error:
            raise LocalizeError(f"{where}, prediction {i}: {error}") from None
    numbers: dict[Any, int] = {}
    for i, item in enumerate(items):
        at = f"{where}, item {i}"
        number = _require(at, item, "item_number", (int, str))
        if number in numbers:
            raise LocalizeError(
                f"{at}: item_number {number!r} is also item {numbers[number]}'s; each item "
                "needs its own number (their surprisals would be mixed up)."
            )
        numbers[number] = i
        conditions = _require(at, item, "conditions", list)
        if not conditions:
            raise LocalizeError(f"{at}: the item has no conditions.")
        names: set[str] = set()
        for j, condition in enumerate(conditions):
            name = _require(f"{at}, condition {j}", condition, "condition_name", str)
            if name in names:
                raise LocalizeError(f"{at}, condition {j}: condition_name {name!r} repeats.")
            names.add(name)
            regions = _require(f"{at}, condition {j}", condition, "regions", list)
            for k, region in enumerate(regions):
                _region_number(f"{at}, condition {j}, region {k}", region)
                content = region.get("content")
                if content is not None and not isinstance(content, str):
                    raise LocalizeError(
                        f"{at}, condition {j}, region {k}: 'content' is {content!r} (a "
                        f"{type(content).__name__}); a region's content is text, or null or "
                        '"" for an empty region.'
                    )


@dataclass(frozen=True)
class SuiteSentence:
    """One condition of one item: its sentence and each region's character span."""

    suite: str
    item_number: Any
    condition: str
    sentence: str
    spans: tuple[tuple[int, int, int], ...]  # (region number, start, end)


def _sentence(regions: list[dict]) -> tuple[str, list[tuple[int, int, int]]]:
    """The sentence and each region's (number, start, end) character span."""
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    pos = 0
    for region in regions:
        content = str(region.get("content", "") or "").strip()
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


def suite_sentences(
    suites: dict[str, dict],
) -> tuple[dict[str, list[Formula]], list[SuiteSentence]]:
    """Parse every suite's formulas, check that each names regions and conditions its items
    have, and lay out every condition's sentence. Returns the formulas per suite and the
    sentences to score (suite order, then item, then condition)."""
    parsed: dict[str, list[Formula]] = {}
    sentences = []
    for suite_name, suite in suites.items():
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
                if not visible(sentence):
                    raise LocalizeError(
                        f"Suite {suite_name!r}, item {item['item_number']}, condition {cond!r}: "
                        "every region is empty (or only invisible characters), so there is no "
                        "sentence to score."
                    )
                sentences.append(
                    SuiteSentence(suite_name, item["item_number"], cond, sentence, tuple(spans))
                )
    return parsed, sentences
