"""The package's surface: what docs/api.md names exists, the public names resolve, importing
is cheap and changes nothing, the layers only point down (fast tier)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import tl_localize

ROOT = Path(__file__).resolve().parents[1]
# first names of calls in docs/api.md that are examples on user objects, not API names
LOCAL = {"model", "loc", "units", "result", "a", "frame", "att", "check", "len"}


def _resolve(dotted: str) -> object:
    import importlib

    parts = dotted.split(".")
    if parts[0] == "tl_localize":  # the longest module prefix, then attributes
        for cut in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for part in parts[cut:]:
                obj = getattr(obj, part)
            return obj
    obj = getattr(tl_localize, parts[0])
    for part in parts[1:]:
        obj = getattr(obj, part)
    return obj


def api_names() -> list[str]:
    text = re.sub(r"```.*?```", "", (ROOT / "docs" / "api.md").read_text(), flags=re.S)
    names = set()
    for span in re.findall(r"`([^`]+)`", text):
        match = re.match(r"([A-Za-z_][\w.]*)\(", span)
        if match and match.group(1).split(".")[0] not in LOCAL:
            names.add(match.group(1))
    return sorted(names)


DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("name", tl_localize.__all__)
def test_each_public_name_imports_and_is_documented(name):
    import inspect

    namespace: dict = {}
    exec(f"from tl_localize import {name}", namespace)  # the spelling users write
    obj = namespace[name]
    if inspect.ismodule(obj):
        assert obj.__name__ == f"tl_localize.{name}" and inspect.getdoc(obj), name
    elif inspect.isclass(obj) or inspect.isfunction(obj):
        assert obj.__module__.startswith("tl_localize."), (name, obj.__module__)
        own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
        assert (own or "").strip(), f"{name} has no docstring of its own"
    assert re.search(rf"`[^`\n]*\b{name}\b", DOCS), f"{name} is named nowhere in docs/*.md"


@pytest.mark.parametrize("name", api_names())
def test_every_name_in_api_md_is_importable(name):
    assert callable(_resolve(name)), name


def test_public_names_resolve():
    for name in tl_localize.__all__:
        assert getattr(tl_localize, name) is not None, name
    assert set(dir(tl_localize)) >= set(tl_localize.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = tl_localize.nothing
    # a submodule named like its function does not shadow the function
    import importlib

    importlib.import_module("tl_localize.localize")
    assert callable(tl_localize.localize) and callable(tl_localize.join)


def test_import_is_cheap_and_changes_nothing():
    code = (
        "import sys, matplotlib; before = matplotlib.get_backend(); import tl_localize; "
        "heavy = [m for m in ('torch', 'pandas', 'transformer_lens', 'transformers', "
        "'seaborn', 'sklearn', 'scipy') if m in sys.modules]; "
        "print(heavy, before == matplotlib.get_backend())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[] True"


def test_layers_only_point_down():
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Layers only point down KEPT" in run.stdout
