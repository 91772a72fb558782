"""Progress bars in notebooks without ipywidgets: text bars, and no warning.

``tqdm.auto`` (used here and by transformers and TransformerLens) picks the widget bar
inside Jupyter; without ipywidgets it falls back to text bars and prints a ``TqdmWarning``
when first imported, in every notebook that uses the toolkit. ipywidgets is optional and a
text bar shows progress well, so the package imports ``tqdm.auto`` once with that warning
silenced, in a notebook kernel only; elsewhere it does nothing.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["quiet_notebook_bars"]


def quiet_notebook_bars() -> None:
    """In a Jupyter kernel, import ``tqdm.auto`` without its no-ipywidgets warning (it
    then gives text bars); a no-op outside a kernel or once ``tqdm.auto`` is imported."""
    if "ipykernel" not in sys.modules or "tqdm.autonotebook" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import tqdm.auto  # noqa: F401
