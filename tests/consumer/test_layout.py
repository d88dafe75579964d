"""The layout's rules (issue 16), read from the source: who may import what."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import consumer

PACKAGE = Path(consumer.__file__).parent
DEVTOOLS_USERS = {"cli/demo.py", "cli/sample.py", "cli/sandbox.py"}


def modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return []


def top_level_imports(tree: ast.Module) -> set[str]:
    """What a module imports when it is imported (not inside functions)."""
    names: set[str] = set()
    for node in tree.body:
        nodes = [node, *ast.walk(node)] if isinstance(node, ast.If | ast.Try) else [node]
        for inner in nodes:
            names.update(imported(inner))
    return names


def all_imports(tree: ast.Module) -> set[str]:
    return {name for node in ast.walk(tree) for name in imported(node)}


def test_only_demo_sample_and_sandbox_import_devtools() -> None:
    for name, tree in modules().items():
        if name.startswith("devtools/") or name in DEVTOOLS_USERS:
            continue
        uses = {n for n in all_imports(tree) if n.startswith("consumer.devtools")}
        assert not uses, f"{name} imports {sorted(uses)}"


def test_the_other_commands_never_load_devtools() -> None:
    """The parser imports a command's module only when that command runs."""
    commands = [
        "consumer.cli." + path.stem
        for path in sorted((PACKAGE / "cli").glob("*.py"))
        if f"cli/{path.name}" not in DEVTOOLS_USERS and path.stem != "__main__"
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {commands!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('consumer.devtools')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "[]"
    assert len(commands) >= 8


def test_nothing_outside_the_cli_imports_it() -> None:
    for name, tree in modules().items():
        if not name.startswith("cli/"):
            uses = {n for n in all_imports(tree) if n.startswith("consumer.cli")}
            assert not uses, f"{name} imports {sorted(uses)}"


def test_no_import_cycles_at_import_time() -> None:
    trees = modules()

    def module_name(path: str) -> str:
        dotted = "consumer." + path.removesuffix(".py").replace("/", ".")
        return dotted.removesuffix(".__init__")

    names = {module_name(path): tree for path, tree in trees.items()}
    graph = {
        name: {dep for dep in top_level_imports(tree) if dep in names and dep != name}
        for name, tree in names.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        if name in done:
            return
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
