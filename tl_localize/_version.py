"""The version of tl_localize (kept in one light module that records read)."""

__version__ = "0.3.0"
