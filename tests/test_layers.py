"""The dependency direction of STYLE.md: no module of bertkit imports a module of a higher layer.

Imports are read with ``ast`` (function-local ones included), so a lazy import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import bertkit

SRC = Path(bertkit.__file__).parent

# Bottom to top; a module may import its own layer and those below. "x.*" is every module under
# package x, x included; a module takes the first layer that names it, so "training.*" at 5 holds the
# training modules not named at 4. Layers are kept small so that an upward edge has somewhere to show:
# the loop (5) cannot import the recipes (6-8), nor the fine-tuning recipe the search built on it.
LAYERS: dict[int, tuple[str, ...]] = {
    0: ("config", "records", "errors", "atomic"),
    # readers, writers, the data set registry, tag schemes (readers check tags where they read them),
    # windows and batching: everything that turns files into records and features, task-free
    1: ("data.*",),
    2: ("modeling.*",),
    3: ("tasks.*", "pretrain.*"),
    # what the loop and inference stand on; reports read files and need no model
    4: (
        "training.runtime",
        "training.threads",
        "training.distributed",
        "training.optim",
        "training.checkpoint",
        "training.state",
        "reporting.*",
    ),
    5: ("training.*", "inference.*"),
    6: ("recipes.run_dir",),
    7: ("recipes.finetune", "recipes.pretrain"),
    8: ("recipes.*",),
    # the package itself (``bertkit.load``) is the Python API, a front door like the CLI
    9: ("cli.*", "", "__main__"),
}
# Task families are plug-ins: only the registry (``tasks/__init__.py``) names them.
FAMILIES = ("tasks.ner", "tasks.classify", "tasks.qa", "tasks.relation", "tasks.seq2seq")


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
                # `from bertkit import datasets` imports the module bertkit.data.registry
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
    assert ("tasks.ner.task", "data.windows") in edges  # from bertkit.data.windows import ...
    assert ("recipes.finetune", "data.registry") in edges  # from bertkit.data import registry
    assert ("cli.finetune", "recipes.finetune") in edges  # inside a function
    assert ("data.readers", "data.readers.conll") in edges  # inside a function of readers/__init__.py
    assert ("", "inference.predictor") in edges  # bertkit.load
    assert ("tasks.ner.task", "config") in edges


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


def family_of(module: str) -> str | None:
    return next((f for f in FAMILIES if module == f or module.startswith(f + ".")), None)


def test_no_module_names_a_task_family_but_the_registry():
    leaks = [
        f"{module or 'bertkit'}:{line} imports {target}"
        for module, target, line in all_edges()
        if family_of(target) and module != "tasks" and family_of(module) != family_of(target)
    ]
    assert not leaks, "only tasks/__init__.py may name a task family:\n" + "\n".join(leaks)


def test_every_family_is_listed():
    found = {".".join(m.split(".")[:2]) for m in module_names() if m.startswith("tasks.") and "." in m[6:]}
    assert found == set(FAMILIES)


def test_layer_check_catches_an_upward_import(tmp_path):
    assert layer_of("data.readers.conll") == 1 and layer_of("data.readers") == 1
    assert layer_of("tasks.ner.task") == 3 and layer_of("training.runtime") == 4
    assert layer_of("training.loop") == 5 and layer_of("recipes.tune") == 8
    assert layer_of("datax") is None and layer_of("taskset") is None
    fake = tmp_path / "loop.py"
    fake.write_text(
        "import bertkit.records\n\ndef f():\n    from bertkit.recipes.tune import tune\n"
        "    from . import checkpoint\n    from ..data.readers.conll import read_conll\n"
    )
    modules = {**module_names(), "training.loop": fake}
    found = imports_of("training.loop", fake, modules)
    assert found == [
        ("records", 1),
        ("recipes.tune", 4),
        ("training.checkpoint", 5),
        ("data.readers.conll", 6),
    ]
    assert [t for t, _ in found if layer_of(t) > layer_of("training.loop")] == ["recipes.tune"]
