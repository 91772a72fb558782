"""No import cycles in tl_localize: the import graph, with the imports made only for type
checking (``if TYPE_CHECKING:``) and those made inside functions, has no circle. A circle
is printed module by module, with the line of each import."""

import itertools

import grimp


def import_graph(package: str) -> grimp.ImportGraph:
    """Every import between the package's modules, TYPE_CHECKING and function-level ones
    included."""
    return grimp.build_graph(
        package, include_external_packages=False, exclude_type_checking_imports=False,
        cache_dir=None,
    )  # fmt: skip


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """One circle per strongly connected group of modules (Tarjan), as the modules in import
    order, the first repeated at the end."""
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth: the package's module count
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in imports[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == module:
                    break
            if len(group) > 1 or module in imports[module]:
                groups.append(group)

    for module in sorted(imports):
        if module not in index:
            visit(module)
    found = []
    for group in groups:
        start = min(group)
        path = graph.find_shortest_chain(
            importer=next(m for m in imports[start] if m in group), imported=start
        )
        found.append([start, *(path or [])])
    return found


def describe(graph: grimp.ImportGraph, circle: list[str]) -> str:
    lines = []
    for importer, imported in itertools.pairwise(circle):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = (
            f" (line {details[0]['line_number']}: {details[0]['line_contents']})" if details else ""
        )
        lines.append(f"  {importer} -> {imported}{where}")
    return "\n".join(lines)


def test_tl_localize_has_no_import_cycle():
    graph = import_graph("tl_localize")
    assert len(graph.modules) > 40  # the whole package was read
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(graph, c) for c in found)


def test_a_cycle_through_type_checking_imports_is_found(tmp_path, monkeypatch):
    package = tmp_path / "circle_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n"
    )
    (package / "c.py").write_text("def f():\n    from .a import b\n    return b\nC = 1\n")
    (package / "d.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = import_graph("circle_pkg")
    found = cycles(graph)
    assert len(found) == 1 and set(found[0]) == {"circle_pkg.a", "circle_pkg.b", "circle_pkg.c"}
    assert found[0][0] == found[0][-1]
    text = describe(graph, found[0])
    assert "circle_pkg.b -> circle_pkg.c (line 3: from .c import C)" in text
