"""The dependency direction of STYLE.md: no module of bertkit imports a module of a higher layer.

Imports are read with ``ast`` (function-local ones included), so a lazy import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bertkit

SRC = Path(bertkit.__file__).parent

# bottom to top; the same layer may import itself. "x.*" is every module under package x, x included.
LAYERS: dict[int, tuple[str, ...]] = {
    0: ("config", "records", "errors", "atomic", "tagschemes"),
    # writers (records -> files), augment (records -> records), metrics_classify (beside metrics), report
    # and tune (jobs beside plots and finetune) came after STYLE.md's list; placed by job and imports
    1: ("readers.*", "metrics", "datasets", "writers", "augment", "metrics_classify"),
    2: ("modeling", "optim", "runtime"),
    3: ("tasks.*",),
    4: ("loop", "evaluate", "predict", "checkpoint", "plots", "finetune", "report", "tune"),
    # the package itself (``bertkit.load``) is the Python API, a front door like the CLI and the server
    5: ("cli", "serve", ""),
}


def module_names() -> dict[str, Path]:
    """Every module under src/bertkit by dotted name relative to the package ("" is bertkit itself)."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def layer_of(module: str) -> int | None:
    for layer, patterns in LAYERS.items():
        for pattern in patterns:
            if module == pattern or (
                pattern.endswith(".*") and (module == pattern[:-2] or module.startswith(pattern[:-1]))
            ):
                return layer
    return None


def resolve(target: str, modules: dict[str, Path]) -> str:
    """The module a dotted name refers to: itself, or the nearest enclosing module (for attributes)."""
    while target not in modules:
        target = target.rpartition(".")[0]
    return target


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported bertkit module, line) for every import in the file, at any depth."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "bertkit" or alias.name.startswith("bertkit."):
                    found.append((resolve(alias.name[len("bertkit.") :], modules), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ..x import y
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                source = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module == "bertkit" or (node.module or "").startswith("bertkit."):
                source = node.module[len("bertkit.") :]
            else:
                continue
            for alias in node.names:
                # `from bertkit import datasets` imports the module bertkit.datasets
                name = f"{source}.{alias.name}" if source else alias.name
                found.append((resolve(name if name in modules else source, modules), node.lineno))
    return found


def all_edges() -> list[tuple[str, str, int]]:
    modules = module_names()
    return [
        (module, target, line)
        for module, path in sorted(modules.items())
        for target, line in imports_of(module, path, modules)
    ]


def test_every_module_has_a_layer():
    unassigned = sorted(m or "bertkit/__init__" for m in module_names() if layer_of(m) is None)
    assert not unassigned, f"assign these modules a layer in tests/test_layers.py LAYERS: {unassigned}"


def test_the_scanner_sees_top_level_local_and_package_imports():
    edges = {(a, b) for a, b, _ in all_edges()}
    assert ("tasks.ner", "tasks.windows") in edges  # from bertkit.tasks.windows import ...
    assert ("cli", "datasets") in edges  # from bertkit import datasets
    assert ("cli", "finetune") in edges  # inside run_finetune
    assert ("readers", "readers.conll") in edges  # inside a function of readers/__init__.py
    assert ("", "predict") in edges  # bertkit.load
    assert ("tasks.ner", "config") in edges


def test_no_module_imports_a_higher_layer():
    violations = []
    for module, target, line in all_edges():
        here, there = layer_of(module), layer_of(target)
        if here is not None and there is not None and there > here:
            where = f"src/bertkit/{module.replace('.', '/') or '__init__'}:{line}"
            violations.append(
                f"{where} ({module or 'bertkit'}, layer {here}) imports {target or 'bertkit'} (layer {there})"
            )
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_layer_check_catches_an_upward_import(tmp_path):
    assert layer_of("readers.conll") == 1 and layer_of("readers") == 1 and layer_of("tasks.ner") == 3
    assert layer_of("readersx") is None and layer_of("taskset") is None
    fake = tmp_path / "metrics.py"
    fake.write_text(
        "import bertkit.records\n\ndef f():\n    from bertkit.loop import fit\n"
        "    from . import tasks\n    from .readers.conll import read_conll\n"
    )
    modules = {**module_names(), "metrics": fake}
    found = imports_of("metrics", fake, modules)
    assert found == [("records", 1), ("loop", 4), ("tasks", 5), ("readers.conll", 6)]
    assert [t for t, _ in found if layer_of(t) > layer_of("metrics")] == ["loop", "tasks"]
