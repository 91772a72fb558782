"""Evaluations: each scores items with a model and returns a tidy DataFrame, one row per
item, with a boolean ``correct`` column where items are right or wrong; each accepts
``hooks=`` so that it can run on an ablated model.

The items themselves (the built-in suite, BLiMP, SyntaxGym suites, problems, stories) are
data, defined in :mod:`tl_localize.data`; their loaders are re-exported here for
convenience. :mod:`tl_localize.tasks` names each evaluation with its items and metric.
"""

from ..data.arithmetic import make_problems
from ..data.io import read_jsonl
from ..data.pairs import builtin_pairs, load_blimp, minimal_pairs_frame, read_pairs
from ..data.stories import builtin_stories, load_tomloc
from ..data.syntaxgym import load_suites, parse_formula
from .arithmetic import arithmetic
from .false_belief import false_belief
from .minimal_pairs import blimp, minimal_pairs
from .perplexity import perplexity
from .syntaxgym import syntaxgym

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
    "read_jsonl",
    "read_pairs",
    "syntaxgym",
]
