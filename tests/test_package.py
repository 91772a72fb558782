"""The package's surface: what docs/api.md names exists, the public names resolve, importing
is cheap and changes nothing, the layers only point down (fast tier)."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tl_localize
from tl_localize import LocalizeError

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


def test_every_public_name_is_documented_in_api_md():
    text = (ROOT / "docs" / "api.md").read_text()
    undocumented = [
        name
        for name in tl_localize.__all__
        if not re.search(rf"`(tl_localize\.)?{re.escape(name)}\b", text)
    ]
    assert not undocumented, f"docs/api.md does not mention: {undocumented}"


def _type_checking_imports() -> dict[str, str]:
    """What the TYPE_CHECKING block of tl_localize/__init__.py imports: name -> module."""
    tree = ast.parse((ROOT / "tl_localize" / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    imported = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        for alias in node.names:
            imported[alias.asname or alias.name] = node.module or alias.name
    return imported


def test_type_checkers_see_exactly_the_public_names():
    # __all__ is built from one table (_PUBLIC); the imports type checkers read are the one
    # other place that names them, and must name the same things from the same modules
    imported = _type_checking_imports()
    assert sorted(imported) == tl_localize.__all__
    for name, module in imported.items():
        assert module == tl_localize._EXPORTS.get(name, name), name


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


# -- 0.3.0 removed the spellings 0.2.0 kept with a DeprecationWarning (CHANGELOG.md) ---------
def _by_position():
    from tl_localize import evaluate
    from tl_localize.ablation import (
        ablated,
        ablation_hooks,
        generation_sample,
        unit_means,
    )
    from tl_localize.brain import brain_alignment, sentence_features
    from tl_localize.join import join_summary
    from tl_localize.networks import profile

    return {  # each call passes its first option by position, as 0.2.0 allowed
        "unit_means": lambda: unit_means(None, ["a b"], "resid_post"),
        "ablation_hooks": lambda: ablation_hooks(None, "zero"),
        "ablated": lambda: ablated(None, None, "zero"),
        "generation_sample": lambda: generation_sample(None, {}, "The cat"),
        "sentence_features": lambda: sentence_features(None, ["a b"], "resid_post"),
        "brain_alignment": lambda: brain_alignment(None, None, None, 10),
        "profile": lambda: profile(None, None, "language", ["sentences"]),
        "join_summary": lambda: join_summary(None, "patch_abs"),
        "syntaxgym": lambda: evaluate.syntaxgym(None, {}, ["suite"]),
        "blimp": lambda: evaluate.blimp(None, "folder", ["paradigm"]),
    }


@pytest.mark.parametrize("name", sorted(_by_position()))
def test_options_by_position_are_gone(name):
    with pytest.raises(TypeError, match="positional argument"):
        _by_position()[name]()


def test_renamed_attributes_and_keywords_are_gone():
    import inspect

    import torch

    from tl_localize import AblationComparison, Attribution, Units, compare_ablation

    mask = torch.zeros(2, 4, dtype=torch.bool)
    with pytest.raises(TypeError, match="model"):
        Units(mask, "resid_post", model="m")  # model_name=
    with pytest.raises(AttributeError):
        _ = Units(mask, "resid_post", "m").model  # .model_name
    assert not hasattr(Attribution, "model")  # .model_name
    assert not hasattr(AblationComparison, "__iter__")  # result.table, result.items
    assert "return_items" not in inspect.signature(compare_ablation).parameters


def test_arithmetic_takes_no_count_by_position():
    import inspect

    from tl_localize.evaluate import arithmetic

    with pytest.raises(LocalizeError, match="problems must be a DataFrame.*n_per_level="):
        inspect.unwrap(arithmetic)(None, 50)  # as a user calls it: no runtime type checker


def test_one_version_everywhere():
    import tomllib

    from tl_localize.results import versions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == tl_localize.__version__ == versions()["tl_localize"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{tl_localize.__version__}] - " in changelog
