"""One name, one meaning: no two modules of fercore define a top-level function or class of the same
name, except the few listed here with the reason they share it."""

from __future__ import annotations

import ast
from collections import defaultdict

from fercore.paths import PROJECT_ROOT

FERCORE = PROJECT_ROOT / "fercore"

# name → why several modules may define it (each definition means the same thing in its own place).
# Private helpers (a leading underscore) are local to their module and not scanned.
ALLOWED = {
    "main": "the entry point of a runnable module (python -m …)",
}


def _definitions() -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for file in sorted(FERCORE.rglob("*.py")):
        module = ".".join(file.relative_to(FERCORE.parent).with_suffix("").parts)
        for node in ast.parse(file.read_text(), str(file)).body:
            defines = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if defines and not node.name.startswith("_"):
                where[node.name].append(module)
    return where


def test_no_public_name_is_defined_twice_in_fercore():
    shared = {name: mods for name, mods in _definitions().items() if len(mods) > 1 and name not in ALLOWED}
    assert not shared, f"the same name in several modules (rename one, or justify it in ALLOWED): {shared}"


def test_the_scan_sees_the_package():
    found = _definitions()
    assert found["FramePipeline"] == ["fercore.inference.pipeline"] and found["stratified_subset"] == [
        "fercore.data.dataset"
    ]
