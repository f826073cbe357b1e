"""The direction of imports, read from the source with `ast` (lazy imports inside functions too).

Domain packages never import the entry points (web, cli) nor the workflows built on
them (flows); analytics never imports prediction (the metrics flows call analytics,
then prediction); modules are imported by name, never through importlib, except
`importlib.resources` for files shipped inside the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tutorscore"
DOMAINS = (
    "analytics",
    "auth",
    "db",
    "evaluation",
    "ingest",
    "interventions",
    "prediction",
    "reviews",
)
ENTRY_POINTS = ("web", "cli")
# what `importlib` may be used for, and where (package data only)
IMPORTLIB_ALLOWED = {"importlib.resources"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:  # `from tutorscore import web` imports a package
                yield node.lineno, f"{base}.{alias.name}"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tutorscore" else None


def _within(imported: str, layer: str) -> bool:
    return imported == f"tutorscore.{layer}" or imported.startswith(f"tutorscore.{layer}.")


IMPORTS = [
    (module, path, line, imported)
    for module, path in _modules()
    for line, imported in _imports(module, path)
]


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parent)}:{line}"


def test_the_walk_sees_the_imports() -> None:
    """The parser finds known edges (so an empty result below means something)."""
    found = {(m, i) for m, _, _, i in IMPORTS}
    assert ("tutorscore.flows.metrics", "tutorscore.prediction.churn") in found
    assert ("tutorscore.web.app", "tutorscore.web.api.sessions") in found
    assert ("tutorscore.cli", "tutorscore.cli.demo") in found
    assert len({m for m, *_ in IMPORTS}) > 100


@pytest.mark.parametrize("domain", DOMAINS)
def test_domain_packages_never_import_entry_points_or_flows(domain: str) -> None:
    bad = [
        f"{_where(path, line)} imports {imported}"
        for module, path, line, imported in IMPORTS
        if _layer(module) == domain
        and any(_within(imported, upper) for upper in (*ENTRY_POINTS, "flows"))
    ]
    assert not bad, "\n".join(bad)


def test_flows_never_import_entry_points() -> None:
    bad = [
        f"{_where(path, line)} imports {imported}"
        for module, path, line, imported in IMPORTS
        if _layer(module) == "flows" and any(_within(imported, e) for e in ENTRY_POINTS)
    ]
    assert not bad, "\n".join(bad)


def test_analytics_never_imports_prediction() -> None:
    bad = [
        f"{_where(path, line)} imports {imported}"
        for module, path, line, imported in IMPORTS
        if _layer(module) == "analytics" and _within(imported, "prediction")
    ]
    assert not bad, "\n".join(bad)


def _importlib_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, what) for each name taken from importlib: `importlib.resources`, ..."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "importlib":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "importlib":
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            yield node.lineno, "__import__"


def test_importlib_only_for_package_data() -> None:
    bad = [
        f"{_where(path, line)} uses {what}"
        for _, path in _modules()
        for line, what in _importlib_uses(ast.parse(path.read_text()))
        if not any(what == ok or what.startswith(f"{ok}.") for ok in IMPORTLIB_ALLOWED)
    ]
    assert not bad, "\n".join(bad)


def test_the_importlib_check_sees_a_string_import() -> None:
    tree = ast.parse(
        "import importlib\nfrom importlib import import_module, resources\n__import__('x')\n"
    )
    found = [what for _, what in _importlib_uses(tree)]
    assert found == ["importlib", "importlib.import_module", "importlib.resources", "__import__"]
