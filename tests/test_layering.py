"""Every import points down: no package imports a package above it (README, "Layout").

The AST of every module is walked, imports inside functions included (a function-local import is
still a dependency), and each importing and imported module is mapped to its layer. Packages on
one rank (models, tasks) may not import each other either. Inside compression the subpackages
are layered the same way.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# bottom first; a package may import only packages of a lower rank
LAYERS: dict[str, int] = {
    "core": 0,
    "models": 1,
    "tasks": 1,
    "compression": 2,
    "harness": 3,
    "leaderboard": 4,
    "cli": 5,
}

# inside compression: tensors and distill at the bottom, then the shared schema and the manifest,
# then the stages, then the grid-level modules (config, recipes, plan, cache, build, texts, tiny)
COMPRESSION_LAYERS: dict[str, int] = {
    "compression.tensors": 0,
    "compression.distill": 0,
    "compression.schema": 1,
    "compression.manifest": 1,
    "compression.stages": 2,
}
COMPRESSION_TOP = 3


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from compression.distill import loop` imports compression.distill.loop
            out += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return out


def _sub_rank(module: str) -> int:
    for prefix, rank in COMPRESSION_LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return COMPRESSION_TOP


def _project_modules() -> list[Path]:
    return sorted(p for pkg in LAYERS for p in (ROOT / pkg).rglob("*.py"))


def upward_imports() -> list[str]:
    problems = []
    for path in _project_modules():
        src = _module_name(path)
        src_pkg = src.split(".")[0]
        for line, target in _imports(path):
            dst_pkg = target.split(".")[0]
            if dst_pkg not in LAYERS or dst_pkg == src_pkg:
                if dst_pkg == src_pkg == "compression" and _sub_rank(target) > _sub_rank(src):
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {src} imports {target}, "
                                    f"a layer above it inside compression")
                continue
            if LAYERS[dst_pkg] >= LAYERS[src_pkg]:
                problems.append(f"{path.relative_to(ROOT)}:{line}: {src_pkg} (layer {LAYERS[src_pkg]}) "
                                f"imports {target} ({dst_pkg}, layer {LAYERS[dst_pkg]})")
    return problems


def test_every_package_is_in_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS)


def test_imports_point_down():
    problems = upward_imports()
    assert not problems, "imports that point up:\n" + "\n".join(problems)


def test_the_walk_sees_function_local_imports(tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.py").write_text("def f():\n    from cli.app import app\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _imports(tmp_path / "core" / "x.py") == [(2, "cli.app.app")]


@pytest.mark.parametrize("module,rank", [("compression.tensors.surgery", 0), ("compression.stages", 2),
                                         ("compression.plan", COMPRESSION_TOP)])
def test_compression_sub_layers(module, rank):
    assert _sub_rank(module) == rank
