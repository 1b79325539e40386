"""The layers of DESIGN.md stay visible: imports point down the stack only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_hface"

# Layer of each top-level subpackage; a module may import its own layer and lower ones.
LAYERS = {
    "": 0,  # trio_hface base modules: _models, _typing, errors, events
    "protocols": 1,
    "networking": 2,
    "connections": 3,
    "server": 4,
    "client": 4,
    "cli": 5,
}
# Third-party imports that a layer must not use.
FORBIDDEN = {
    0: {"trio", "h11", "h2", "aioquic", "socket", "ssl", "asyncio", "anyio"},
    # ssl is allowed in protocols for its constants only (aioquic's verify_mode).
    1: {"trio", "socket", "asyncio", "anyio", "time"},
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "trio_hface"
    if parts[1:] == ["__main__"]:
        return LAYERS["cli"]  # python -m trio_hface runs the command line
    if len(parts) == 1 or parts[1] not in LAYERS:
        return 0
    return LAYERS[parts[1]]


def imports_of(path: Path) -> list[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if module.endswith(".__init__"):
        module = module[: -len(".__init__")]
        package = module
    else:
        package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                found += [name] if node.module else [f"{name}.{alias.name}" for alias in node.names]
            else:
                found.append(node.module or "")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    """No module imports a higher layer or a library its layer must not use."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    own = layer_of(module)
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "trio_hface":
            assert layer_of(name) <= own, f"{module} imports {name} from a higher layer"
        else:
            assert top not in FORBIDDEN.get(own, set()), f"{module} (layer {own}) imports {top}"


def test_no_anyio_or_trio_in_protocols_at_run_time() -> None:
    """Importing every protocol loads neither AnyIO nor Trio."""
    code = (
        "import sys, trio_hface, trio_hface.events, trio_hface.protocols, "
        "trio_hface.protocols.http1, trio_hface.protocols.http2, trio_hface.protocols.http3\n"
        "bad = sorted(m for m in ('anyio', 'trio', 'asyncio') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def _module_name(path: Path) -> str:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return module[: -len(".__init__")] if module.endswith(".__init__") else module


def _import_graph() -> dict[str, set[str]]:
    """Module -> the trio_hface modules it imports (TYPE_CHECKING imports included)."""
    modules = {_module_name(path): path for path in MODULES}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imports_of(path):
            while name and name not in modules:  # `from pkg import attr`: the package
                name = name.rpartition(".")[0]
            if name.startswith("trio_hface") and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def test_server_and_client_never_import_each_other() -> None:
    """The two facades are siblings: what they share lives in a lower layer."""
    for module, targets in _import_graph().items():
        for side, other in (("server", "client"), ("client", "server")):
            if module.startswith(f"trio_hface.{side}"):
                bad = sorted(t for t in targets if t.startswith(f"trio_hface.{other}"))
                assert not bad, f"{module} imports {bad}"


def test_no_import_cycle() -> None:
    """No module imports itself through others, not even for type checking only."""
    graph = _import_graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_no_test_module_imports_another() -> None:
    """Shared test code lives in helper modules (tests/helpers.py, tests/pairs.py, tests/peers.py, ...), not in
    test modules: no module under tests/ imports a test module, in any spelling."""
    tests = Path(__file__).resolve().parent
    for path in sorted(tests.rglob("*.py")):
        for name in imports_of_test(path, tests.parent):
            parts = name.split(".")
            assert not (parts[0] == "tests" and any(p.startswith("test_") for p in parts[1:])), (
                f"{path.relative_to(tests)} imports {name}"
            )


def imports_of_test(path: Path, root: Path) -> list[str]:
    """Every module (or module attribute) that *path* imports, relative imports resolved from *root*."""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]  # `from pkg import test_x`
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_the_test_import_check_sees_every_spelling(tmp_path: Path) -> None:
    """The check above catches absolute, from-package and relative imports of a test module."""
    folder = tmp_path / "tests" / "server"
    folder.mkdir(parents=True)
    spellings = {
        "import tests.server.test_a": "tests.server.test_a",
        "from tests.server import test_a": "tests.server.test_a",
        "from .test_a import helper": "tests.server.test_a",
        "from . import test_a": "tests.server.test_a",
        "from ..client.test_b import x": "tests.client.test_b",
    }
    for line, imported in spellings.items():
        (folder / "mod.py").write_text(line + "\n")
        assert any(
            name == imported or name.startswith(imported + ".")
            for name in imports_of_test(folder / "mod.py", tmp_path)
        ), line


#: Known exceptions to the sizes (none since the message state moved to protocols/_message.py).
OVERSIZED: set[str] = set()


def test_sizes() -> None:
    """No module above 650 lines, no class above 450, no function above 80 (but the known ones)."""
    found = set()
    for path in MODULES:
        text = path.read_text()
        name = str(path.relative_to(PACKAGE))
        if text.count("\n") > 650:
            found.add(f"module {name}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno
                if isinstance(node, ast.ClassDef) and size > 450:
                    found.add(f"class {node.name}")
                elif not isinstance(node, ast.ClassDef) and size > 80:
                    found.add(f"function {name}:{node.name}")
    assert found <= OVERSIZED, sorted(found - OVERSIZED)
    assert found == OVERSIZED, f"no longer oversized, take off the list: {sorted(OVERSIZED - found)}"
