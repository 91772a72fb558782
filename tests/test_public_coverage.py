"""Every public function and class, and every command of ``tl-localize``, is exercised by some
test (fast tier; a static scan of tests/, nothing runs).

Public: the callables of ``tl_localize.__all__`` and of the ``__all__`` of its public modules
(``tl_localize.evaluate``, ``tl_localize.tasks``). A name counts as tested when a test calls it,
reads an attribute of it (``Units.load``), reaches it as an attribute (``evaluate.perplexity``)
or passes it to a call (``partial(Contrast, ...)``); importing it is not enough. A command
counts as tested when a list of arguments in a test spells it (its name or an alias, after
any ``python -m tl_localize.cli`` or ``tl-localize`` in front), as tests pass to the CLI's
``main`` or to a subprocess. The commands are read from the CLI's parser.
"""

from __future__ import annotations

import argparse
import ast
import inspect
from functools import cache
from pathlib import Path

import pytest
from _hostile import cli_commands

import tl_localize

TESTS = Path(__file__).resolve().parent
# what may stand before the command in an argument list: the interpreter and the CLI's module
LAUNCHER = {"-m", "tl_localize.cli", "tl-localize", "-X", "importtime"}


def public_names() -> list[str]:
    names = []
    for name in tl_localize.__all__:
        obj = getattr(tl_localize, name)
        if inspect.ismodule(obj):
            names += [
                f"{name}.{member}"
                for member in getattr(obj, "__all__", [])
                if callable(getattr(obj, member))
            ]
        elif callable(obj):
            names.append(name)
    return sorted(set(names))


def scan_source(text: str) -> tuple[set[str], list[tuple[str, ...]]]:
    """The names a test file uses, and the leading string words of its argument lists."""
    used: set[str] = set()
    lists: list[tuple[str, ...]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute):
            used.add(node.attr)
            if isinstance(node.value, ast.Name):
                used.add(node.value.id)
        elif isinstance(node, ast.Call):
            for part in [node.func, *node.args, *(k.value for k in node.keywords)]:
                if isinstance(part, ast.Name):
                    used.add(part.id)
        elif isinstance(node, ast.List | ast.Tuple):
            words: list[str] = []
            for element in node.elts:
                if isinstance(element, ast.Constant) and isinstance(element.value, str):
                    if not words and element.value in LAUNCHER:
                        continue
                    words.append(element.value)
                elif words:
                    break
                # anything else in front (sys.executable, str(exe)) is the launcher
            if words:
                lists.append(tuple(words))
    return used, lists


@cache
def scan() -> tuple[frozenset[str], tuple[tuple[str, ...], ...]]:
    """What every test file but this one uses (see :func:`scan_source`)."""
    used: set[str] = set()
    lists: list[tuple[str, ...]] = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name != Path(__file__).name:
            names, found = scan_source(path.read_text(encoding="utf-8"))
            used |= names
            lists += found
    return frozenset(used), tuple(lists)


def spelled(spellings: tuple[tuple[str, ...], ...], words: tuple[str, ...]) -> bool:
    return len(words) >= len(spellings) and all(
        word in names for word, names in zip(words, spellings, strict=False)
    )


def test_every_public_name_is_used_by_a_test():
    used, _ = scan()
    untested = [n for n in public_names() if n.split(".")[-1] not in used]
    assert not untested, f"no test calls or uses these public names: {untested}"


def test_every_cli_command_is_run_by_a_test():
    _, lists = scan()
    untested = [
        " ".join(words)
        for words, (_, spellings) in cli_commands().items()
        if not any(spelled(spellings, found) for found in lists)
    ]
    assert not untested, f"no test runs these commands of tl-localize: {untested}"


@pytest.mark.parametrize(
    "source, command, names",
    [
        ('main(["localize", "--out", "x"])', ("localize",), {"main"}),
        ('main(["study", "run", "s.toml"])', ("study", "run"), {"main"}),
        (
            'run([sys.executable, "-m", "tl_localize.cli", "tasks"])',
            ("tasks",),
            {"sys", "run", "executable"},
        ),
        (
            'subprocess.run([str(exe), "check-model"])',
            ("check-model",),
            {"subprocess", "run", "str", "exe"},
        ),
        ("P(Contrast, 'c', TWO)", None, {"P", "Contrast", "TWO"}),
        ("Units.load(path)", None, {"Units", "load", "path"}),
        ("from tl_localize import overlap", None, set()),
    ],
)
def test_the_scan_reads_names_and_commands_as_tests_write_them(source, command, names):
    """The two checks above are only as good as this scan: a command however a test launches
    it, a name however a test uses it, and an import alone is no use."""
    used, lists = scan_source(source)
    assert used == names
    spellings = (("study",), ("run",), ("localize",), ("tasks",), ("check-model",))
    found = [c for c in spellings if any(spelled((c,), w) for w in lists)]
    if command is None:
        assert not lists
    else:
        assert spelled(tuple((w,) for w in command), lists[0]) and found == [(command[0],)]


def test_a_command_is_read_with_its_aliases_and_run_under_any_of_them():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("compare-ablation", aliases=["ablate"])
    group = sub.add_parser("study").add_subparsers()
    group.add_parser("run")
    commands = cli_commands(parser)
    assert {words: spellings for words, (_, spellings) in commands.items()} == {
        ("compare-ablation",): (("compare-ablation", "ablate"),),
        ("study", "run"): (("study",), ("run",)),
    }
    ablation = commands[("compare-ablation",)][1]
    assert spelled(ablation, ("ablate", "--units")) and spelled(ablation, ("compare-ablation",))
    assert not spelled(ablation, ("brain",)) and not spelled((("study",), ("run",)), ("study",))
