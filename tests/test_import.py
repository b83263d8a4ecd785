"""The core package stays light and layered: no streamlit (ever), no tensorflow on the inference
path, no CLI/UI/training code, and no import cycles between its modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fercore.paths import PROJECT_ROOT as ROOT

FERCORE = ROOT / "fercore"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_fercore_pulls_no_streamlit_nor_tensorflow():
    mods = _modules_after("import fercore, fercore.data.loader, fercore.data.stats, fercore.runs, fercore.labels")
    assert "fercore.data.loader" in mods
    assert not any(m == "streamlit" or m.startswith("streamlit.") for m in mods)
    assert "tensorflow" not in mods


def test_the_public_api_resolves_lazily_and_stays_light():
    names = [
        "EMOTIONS",
        "FramePipeline",
        "load_classifier",
        "load_dataset",
        "TrainConfig",
        "evaluate",
        "EmotionClassifier",
    ]
    bare = _modules_after("import fercore")
    assert not {"tensorflow", "keras", "streamlit", "ray", "cv2"} & bare
    assert not any(m.startswith("fercore.inference") for m in bare)  # nothing imported before it is asked for
    code = "import fercore\n" + "\n".join(f"assert fercore.{n} is not None" for n in names)
    resolved = _modules_after(code)
    assert {"fercore.inference.pipeline", "fercore.models.ensemble", "fercore.train.config"} <= resolved
    assert not {"tensorflow", "keras", "streamlit", "ray"} & resolved


def test_the_package_root_holds_few_modules():
    """The folders show the architecture: at most six modules beside the subpackages."""
    root_modules = sorted(p.name for p in FERCORE.glob("*.py"))
    assert len(root_modules) <= 6, root_modules
    assert {p.name for p in FERCORE.iterdir() if (p / "__init__.py").exists()} == {
        "data",
        "evaluation",
        "inference",
        "models",
        "runs",
        "train",
    }


def test_every_lazy_name_is_public():
    import fercore

    assert set(fercore._LAZY) | {"EMOTIONS", "NUM_CLASSES"} == set(fercore.__all__)


def test_an_unknown_public_name_is_an_attribute_error():
    import fercore

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fercore.nope  # noqa: B018
    from fercore import FramePipeline
    from fercore.inference.pipeline import FramePipeline as defined

    assert FramePipeline is defined and "FramePipeline" in dir(fercore)


def test_inference_modules_need_no_tensorflow():
    mods = _modules_after(
        "import fercore.inference.classify, fercore.inference.detectors, fercore.inference.detectors.haar, "
        "fercore.inference.detectors.blaze, fercore.inference.detectors.tracking, fercore.inference.detectors.mtcnn, "
        "fercore.inference.image, fercore.types, fercore.inference.preprocess, fercore.inference.pipeline, "
        "fercore.inference.track, fercore.inference.video, fercore.inference.draw, fercore.evaluation.evaluate"
    )
    assert "fercore.inference.pipeline" in mods
    assert "tensorflow" not in mods and "streamlit" not in mods and "keras" not in mods


# ------------------------------------------------------------------------------- the import graph


def _module_names() -> dict[str, Path]:
    """Dotted name → file of every module under fercore/ (packages by their __init__.py)."""
    names = {}
    for file in sorted(FERCORE.rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = file
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node that may run: module level and inside functions, not ``if TYPE_CHECKING:`` bodies
    (annotations only; they never execute, so they cannot make a runtime cycle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _imports(name: str, file: Path) -> list[tuple[str, int]]:
    """(imported dotted name, line) for every import in ``file``: ``import a.b``, ``from a.b import c``
    (as ``a.b.c``: resolved to a module or its package later), relative imports, and
    ``importlib.import_module("fercore.…")`` with a constant or f-string prefix (as ``prefix*``)."""
    tree = ast.parse(file.read_text(), filename=str(file))
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((arg.value, node.lineno))
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                found.append((str(arg.values[0].value) + "*", node.lineno))
    return found


def _import_graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int]]]]:
    """Edges between fercore modules, and every import (fercore or not) of each module."""
    modules = _module_names()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    raw: dict[str, list[tuple[str, int]]] = {}
    for name, file in modules.items():
        raw[name] = _imports(name, file)
        for target, _ in raw[name]:
            if target.endswith("*"):  # a dynamic import: every module under that prefix
                graph[name] |= {m for m in modules if m.startswith(target[:-1]) and m != name}
                continue
            if not (target == "fercore" or target.startswith("fercore.")):
                continue
            while target not in modules:  # fercore.x.attr → fercore.x
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph, raw


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, …, a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iters = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_cycles():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"a"}}) == ["a", "a"]


def test_the_graph_sees_imports_inside_functions_relative_and_dynamic_imports():
    graph, _ = _import_graph()
    assert "fercore.types" in graph["fercore.inference.detectors.base"]  # module level
    assert "fercore.inference.detectors.tracking" in graph["fercore.inference.detectors"]  # inside a function
    assert (
        "fercore.inference.detectors.haar" in graph["fercore.inference.detectors"]
    )  # importlib.import_module(f"fercore.inference.detectors.…")
    assert "fercore.inference.classify" in graph["fercore.inference.pipeline"]
    assert "fercore.labels" in graph["fercore"]
    assert "fercore.train.__main__" in graph["fercore.train.launch"]  # the launcher imports what it starts


def test_fercore_has_no_import_cycle():
    graph, _ = _import_graph()
    assert len(graph) > 20
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_run_folders_and_scoring_stay_in_their_floors():
    """``fercore.runs`` (run directories) is imported by training and read by pages, and imports only
    the ground floor; scoring (``fercore.evaluation``) sits above what it scores, so serving never
    reaches up into it (a model's temperature is :mod:`fercore.inference.temperature`'s)."""
    graph, _ = _import_graph()
    ground = {"fercore.paths", "fercore.labels", "fercore.types"}
    up = [f"{m} → {t}" for m, ts in graph.items() if m.startswith("fercore.runs") for t in ts
          if not t.startswith("fercore.runs") and t not in ground]  # fmt: skip
    below_scoring = ("fercore.inference", "fercore.models", "fercore.data", "fercore.runs")
    up += [f"{m} → {t}" for m, ts in graph.items() if m.startswith(below_scoring) for t in ts
           if t.startswith("fercore.evaluation")]  # fmt: skip
    assert not up, "imports that run back up: " + ", ".join(sorted(up))


def test_no_core_module_imports_ui_cli_or_training_code():
    _, raw = _import_graph()
    bad = []
    for name, imports in raw.items():
        for target, line in imports:
            top = target.split(".")[0]
            if top in {"streamlit", "training", "dashboard"} or (top == "argparse" and not name.endswith("__main__")):
                bad.append(f"{name}:{line} imports {target}")
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------------------------ the process


def test_tensorflow_then_webcam_stack_does_not_crash():
    """The dashboard imports pylibsrtp first; TF then the webrtc stack must then be safe."""
    code = "import pylibsrtp, tensorflow, streamlit_webrtc, aiortc\nprint('ok')"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    assert res.returncode == 0 and res.stdout.strip().endswith("ok")


def test_dashboard_entry_imports_pylibsrtp_before_anything_else():
    app = (ROOT / "dashboard" / "app.py").read_text()
    imports = [ln for ln in app.splitlines() if ln.startswith(("import ", "from "))]
    assert imports[0].startswith("import pylibsrtp")


def test_ray_is_loaded_only_when_its_engine_is_asked_for():
    """Ray (the optional scale extra) is heavy: the library, the CLI and the dashboard never import it
    on their own; ``fercore.inference.engines.RayEngine`` does, when built."""
    mods = _modules_after(
        "import importlib, pkgutil, sys, fercore, fercore.inference\n"
        "for m in pkgutil.walk_packages(fercore.inference.__path__, 'fercore.inference.'):\n"
        "    importlib.import_module(m.name)\n"
        "import fercore.__main__\n"
        f"sys.path.insert(0, {str(ROOT / 'dashboard')!r})\n"
        "import common, webcam_views"
    )
    assert {"fercore.inference.collection", "fercore.inference.engines", "common"} <= mods
    assert not any(m == "ray" or m.startswith("ray.") for m in mods)
