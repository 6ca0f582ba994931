"""Layers only point down: a package imports itself or a lower layer, never a higher one and never a neighbour.

The order, lowest first (what each layer may use is everything below it):

    messages        the vocabulary: frozen messages and domain values
    strategies      the strategy interface and the built-in strategies (read messages)
    configuration   the schema, loading, logging and masking (validates strategy parameters)
    persistence     the database; exchange: the ccxt client, modes, budget (neighbours: neither imports the other)
    simulator       the paper exchange, built on exchange's cost budget and client
    control         the control endpoint, its client and CLI (talks to a ControlTarget it never imports)
    actors          the actors and the wiring: runner, endpoint (starts the simulator), preflight
    backtest        the actors on a replay of history: data files, download, driver, report, plot
    run.py          the command line
    testkit         what strategy authors test with: the symbol actor, the whole system, the simulator

Every import counts: at the top of a module, inside a function, under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("messages",),
    ("strategies",),
    ("configuration",),
    ("persistence", "exchange"),
    ("simulator",),
    ("control",),
    ("actors",),
    ("backtest",),  # backtests: the actors on a replay of history, the report
    ("run",),  # run.py
    ("testkit",),  # installed with the package; imports any layer, none imports it (tests may)
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
NOT_LAYERED = {"tests", "benchmarks"}  # they may import anything


def project_packages() -> set[str]:
    """Every top-level package of the repository (a folder with __init__.py), and the run module."""
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"run"}
    return found - NOT_LAYERED


def modules(package: str) -> list[Path]:
    """The source files of a package (or run.py)."""
    if package == "run":
        return [ROOT / "run.py"]
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import anywhere in the module; relative ones stay inside it."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def offending_imports() -> list[str]:
    """One line per import that points up or sideways: file:line, what it imports, and both layers."""
    offending = []
    for package in sorted(project_packages() & RANK.keys()):
        for path in modules(package):
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            for lineno, target in imported(ast.parse(source, filename=str(path))):
                if target == package or target not in RANK or RANK[target] < RANK[package]:
                    continue
                where = "sideways to" if RANK[target] == RANK[package] else "up to"
                offending.append(f"{path.relative_to(ROOT)}:{lineno}: {lines[lineno - 1].strip()!r} - {package} "
                                 f"(layer {RANK[package]}) imports {where} {target} (layer {RANK[target]})")
    return offending


def test_every_package_has_a_layer() -> None:
    missing = sorted(project_packages() - RANK.keys())
    assert not missing, f"place these packages in LAYERS (tests/test_layers.py): {missing}"


def test_layers_only_point_down() -> None:
    offending = offending_imports()
    assert not offending, "imports that point up or sideways:\n" + "\n".join(offending)


def test_the_check_sees_imports_inside_functions() -> None:
    tree = ast.parse("import os\nif True:\n    def f():\n        from simulator import start_simulator\n")
    assert imported(tree) == [(1, "os"), (4, "simulator")]
