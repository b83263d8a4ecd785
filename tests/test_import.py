"""The core package stays light: no streamlit (ever) and no tensorflow on the inference path."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_fercore_pulls_no_streamlit_nor_tensorflow():
    mods = _modules_after("import fercore, fercore.data, fercore.stats, fercore.runs, fercore.labels")
    assert "fercore.data" in mods
    assert not any(m == "streamlit" or m.startswith("streamlit.") for m in mods)
    assert "tensorflow" not in mods


def test_inference_modules_need_no_tensorflow():
    mods = _modules_after(
        "import fercore.classify, fercore.detect, fercore.predictor, fercore.track, fercore.video, "
        "fercore.draw, fercore.evaluate")
    assert "fercore.predictor" in mods
    assert "tensorflow" not in mods and "streamlit" not in mods


def test_no_core_module_imports_ui_or_cli_code():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "fercore"
    for file in root.glob("*.py"):
        for line in file.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert not stripped.split()[1].split(".")[0] in {"streamlit", "training", "dashboard"}, \
                    f"{file.name}: {stripped}"


def test_tensorflow_then_webcam_stack_does_not_crash():
    """The dashboard imports pylibsrtp first; TF then the webrtc stack must then be safe."""
    code = ("import pylibsrtp, tensorflow, streamlit_webrtc, aiortc\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__('os').environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert res.returncode == 0 and res.stdout.strip().endswith("ok")


def test_dashboard_entry_imports_pylibsrtp_before_anything_else():
    from pathlib import Path

    app = (Path(__file__).resolve().parent.parent / "dashboard" / "app.py").read_text()
    imports = [ln for ln in app.splitlines() if ln.startswith(("import ", "from "))]
    assert imports[0].startswith("import pylibsrtp")
