"""MkDocs hook: serve the executed notebooks as pages of the documentation site.

The notebook tests write an executed copy of each ``notebooks/*.ipynb`` (outputs included)
to ``build/notebooks/`` (``$TL_LOCALIZE_EXECUTED`` when set). mkdocs-jupyter renders only
files that MkDocs knows about, so this hook adds each executed copy to the site's files as
``notebooks/<name>.ipynb``, without copying anything into ``docs/``; the site never
executes a notebook itself.

Only notebooks that exist in ``notebooks/`` are rendered (a stale copy is skipped). The build
fails with a clear message when there is no executed copy at all, or when a notebook has
none; the one exception is a notebook marked ``needs_shared_data`` in its
metadata (its test skips when the data is absent), which is rendered from its source,
without outputs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.docs_hooks")

EXECUTED_ENV = "TL_LOCALIZE_EXECUTED"
DEFAULT_EXECUTED = "build/notebooks"
SOURCE_DIR = "notebooks"
SITE_DIR = "notebooks"
# Sphinx roles in the docstrings (``:class:`Units` ``), which Google-style rendering keeps as
# text before the code span; a ``~`` target shows its last component, as in Sphinx.
SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([^<]*)<")


def _root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def _executed_dir(config: MkDocsConfig) -> Path:
    executed = (_root(config) / os.environ.get(EXECUTED_ENV, DEFAULT_EXECUTED)).resolve()
    if executed.name != SITE_DIR:
        # each page's path is its folder's name and the notebook's (mkdocs-jupyter's wrapper)
        raise PluginError(f"${EXECUTED_ENV} must name a folder called {SITE_DIR}: {executed}")
    return executed


def _needs_shared_data(path: Path) -> bool:
    metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return bool(metadata.get("tl_localize", {}).get("needs_shared_data"))


def _notebooks(config: MkDocsConfig) -> dict[str, Path]:
    """Each notebook in notebooks/ and the file to render: its executed copy, or its source."""
    executed = _executed_dir(config)
    copies = {p.name: p for p in sorted(executed.glob("*.ipynb"))}
    if not copies:
        raise PluginError(
            f"no executed notebook in {executed}: the site renders the executed copies the "
            "notebook tests write there; run `make docs` (it executes the notebooks first) "
            "or `make test`"
        )
    chosen: dict[str, Path] = {}
    missing = []
    for source in sorted((_root(config) / SOURCE_DIR).glob("*.ipynb")):
        if source.name in copies:
            chosen[source.name] = copies[source.name]
        elif _needs_shared_data(source):
            log.info("%s: no executed copy (needs the shared data); rendered unexecuted", source)
            chosen[source.name] = source
        else:
            missing.append(source.name)
    if missing:
        raise PluginError(
            f"no executed copy in {executed} of: {', '.join(missing)}; run `make notebooks` "
            "(or `make test`) to execute them"
        )
    for name in sorted(copies.keys() - chosen.keys()):
        log.info("%s: no such notebook in %s/; not rendered", copies[name], SOURCE_DIR)
    return chosen


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the notebook files
def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    for name, path in _notebooks(config).items():
        uri = f"{SITE_DIR}/{name}"
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"docs/{uri} exists: the notebooks are served from {path.parent}")
        # A real file under a source folder of its own, not File.generated: mkdocs-jupyter
        # wraps the file and recomputes its path from src_dir and src_uri.
        file = File(
            uri,
            src_dir=str(path.parent.parent),
            dest_dir=config.site_dir,
            use_directory_urls=config.use_directory_urls,
        )
        files.append(file)
    return files


def _strip_role(match: re.Match[str]) -> str:
    target = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{target}<"


def on_page_content(html: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri.startswith("reference/"):
        return SPHINX_ROLE.sub(_strip_role, html)
    return html
