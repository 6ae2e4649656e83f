"""The layout rules of ARCHITECTURE.md, checked on the source: which package may import which, no
import cycles (function-level imports included), no product file past one sitting's reading, and test
folders that mirror the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("carla_bridge", "neural_render", "game")
MAX_LINES = 400

# Module (or package) -> what it may import besides itself. The most specific entry that names a module
# or one of its packages is its rule; an allowed name admits that module and everything below it.
# Read top to bottom, this is ARCHITECTURE.md's picture: core at the bottom, the game at the top.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "carla_bridge.core": (),
    "carla_bridge": ("carla_bridge.core",),  # the package's own __init__: the data model's names
    "carla_bridge.procedural": ("carla_bridge.core",),
    "carla_bridge.client": ("carla_bridge.core",),
    "carla_bridge.session": ("carla_bridge.core",),
    "carla_bridge.check_flow": ("carla_bridge.core", "carla_bridge.client.codec"),
    "carla_bridge.standin": ("carla_bridge.core", "carla_bridge.procedural", "carla_bridge.client.codec"),
    "carla_bridge.proxy": ("carla_bridge.core", "carla_bridge.client.codec", "carla_bridge.standin.rpc",
                           "carla_bridge.standin.tcp", "carla_bridge.standin.streaming",
                           "carla_bridge.standin.protocol", "carla_bridge.standin.actors"),
    # The proxy's CLI builds the Renderer it hands the proxy as a render factory: the one carla_bridge
    # module above neural_render.runtime. Nothing imports it, so no cycle runs through it (ARCHITECTURE.md).
    "carla_bridge.proxy.__main__": ("carla_bridge.core", "carla_bridge.proxy", "neural_render.checkpoint",
                                    "neural_render.runtime"),
    "neural_render": ("carla_bridge.core",),
    "neural_render.warp": ("carla_bridge.core",),
    "neural_render.model": ("carla_bridge.core", "neural_render.warp"),
    "neural_render.checkpoint": ("carla_bridge.core", "neural_render.model"),
    "neural_render.runtime": ("carla_bridge.core", "neural_render.model", "neural_render.checkpoint",
                              "neural_render.warp"),
    "neural_render.export": ("carla_bridge.core", "neural_render.model", "neural_render.checkpoint",
                             "neural_render.runtime"),
    "neural_render.serve": ("carla_bridge.core", "neural_render.model", "neural_render.checkpoint",
                            "neural_render.runtime"),
    "neural_render.metrics": ("carla_bridge.core", "neural_render.warp"),
    "neural_render.evaluate": ("carla_bridge", "neural_render"),
    "neural_render.calibrate": ("carla_bridge", "neural_render"),
    "neural_render.train": ("carla_bridge", "neural_render"),
    "game": ("carla_bridge", "neural_render"),
    "launch": ("game",),
}


def _modules() -> dict[str, Path]:
    found = {"launch": REPO / "launch.py"}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every project module that `module` imports, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from package import module` imports that module (and runs the package's __init__,
            # which is not an import of the package's names); `from module import name` imports module.
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            names = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        targets.update(name for name in names if name in known and name != module)
    return targets


def _rule(module: str) -> str:
    return max((key for key in MAY_IMPORT if module == key or module.startswith(key + ".")), key=len)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_rule():
    missing = []
    for name in _modules():
        try:
            _rule(name)
        except ValueError:
            missing.append(name)
    assert not missing, f"modules no MAY_IMPORT entry covers: {missing}"


def test_imports_point_down():
    wrong = []
    for module, targets in sorted(_graph().items()):
        rule = _rule(module)
        for target in sorted(targets):
            if not _within(target, rule) and not any(_within(target, ok) for ok in MAY_IMPORT[rule]):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against ARCHITECTURE.md's direction:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(map(" <-> ".join, cycles))


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module, target, allowed", [
    ("carla_bridge.core.frames", "neural_render.model", False),
    ("neural_render.runtime.renderer", "carla_bridge.procedural.world", False),
    ("neural_render.train.loop", "carla_bridge.procedural.world", True),
    ("carla_bridge.standin.world", "carla_bridge.client.source", False),
    ("game.app.app", "neural_render.runtime.renderer", True),
])
def test_rules_read_as_intended(module, target, allowed):
    rule = _rule(module)
    assert (_within(target, rule) or any(_within(target, ok) for ok in MAY_IMPORT[rule])) is allowed


def test_no_product_file_past_one_sitting():
    long = {str(path.relative_to(REPO)): n for path in _modules().values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_test_folders_mirror_the_packages():
    tests = REPO / "tests"
    strays = [str(folder.relative_to(tests)) for folder in tests.rglob("*") if folder.is_dir()
              and folder.name != "__pycache__" and "support" not in folder.relative_to(tests).parts
              and not (REPO / folder.relative_to(tests)).is_dir()]
    assert not strays, f"test folders with no package of that path: {strays}"
