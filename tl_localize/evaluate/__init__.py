"""Evaluations: each returns a tidy DataFrame, one row per item, with a boolean ``correct``
column where items are right or wrong, and accepts ``hooks=`` so that it can run on an
ablated model."""

from .minimal_pairs import blimp, builtin_pairs, load_blimp, minimal_pairs
from .perplexity import perplexity
from .syntaxgym import load_suites, parse_formula, syntaxgym

__all__ = [
    "blimp",
    "builtin_pairs",
    "load_blimp",
    "load_suites",
    "minimal_pairs",
    "parse_formula",
    "perplexity",
    "syntaxgym",
]
