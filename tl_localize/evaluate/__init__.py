"""Evaluations: each returns a tidy DataFrame, one row per item, with a boolean ``correct``
column where items are right or wrong, and accepts ``hooks=`` so that it can run on an
ablated model."""

from .arithmetic import arithmetic, make_problems
from .false_belief import builtin_stories, false_belief, load_tomloc
from .minimal_pairs import blimp, builtin_pairs, load_blimp, minimal_pairs, minimal_pairs_frame
from .perplexity import perplexity
from .syntaxgym import load_suites, parse_formula, syntaxgym

__all__ = [
    "arithmetic",
    "blimp",
    "builtin_pairs",
    "builtin_stories",
    "false_belief",
    "load_blimp",
    "load_suites",
    "load_tomloc",
    "make_problems",
    "minimal_pairs",
    "minimal_pairs_frame",
    "parse_formula",
    "perplexity",
    "syntaxgym",
]
