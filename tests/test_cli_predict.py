"""``python -m fercore predict|video``: output contract, one-line errors, exit codes; the LiteRT path
imports no tensorflow. A tiny untrained model (converted once per module) stands in for the shipped one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ASTRONAUT_FACE, encode, moving_face_frames, write_video

import fercore.__main__ as cli
from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.detectors.tracking import TrackingDetector
from fercore.inference.image import load_image
from fercore.labels import EMOTIONS

TINY_MODEL_CODE = """
import sys, tensorflow as tf
from fercore.models.architectures import build_model
model = build_model("fernet", widths=(8, 8, 8, 8), depths=(1, 1, 1, 1), stem_width=8)
open(sys.argv[1], "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.tflite"
    subprocess.run([sys.executable, "-c", TINY_MODEL_CODE, str(path)], check=True, timeout=300, capture_output=True)
    return path


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fercore", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    files = {
        "empty": tmp_path / "empty.jpg",
        "noise": tmp_path / "noise.jpg",
        "truncated": tmp_path / "cut.jpg",
    }
    files["empty"].write_bytes(b"")
    files["noise"].write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    import cv2

    ok, buf = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    files["truncated"].write_bytes(buf.tobytes()[: len(buf) // 2])
    return files


@pytest.mark.parametrize("kind, words", [("empty", "empty"), ("noise", "not an image"), ("truncated", "truncated")])
def test_unreadable_image_exits_nonzero_with_one_line(bad_files, kind, words):
    path = bad_files[kind]
    assert_one_line_error(run("predict", path), path.name, words)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP"])
def test_truncated_file_exits_nonzero_with_one_line(tmp_path, fmt):
    """OpenCV's codecs print their own errors on truncated data; those files must go to Pillow instead."""
    data = encode(np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("predict", path), path.name, "truncated")


def test_missing_file_and_bad_options(tmp_path):
    assert_one_line_error(run("predict", tmp_path / "nope.png"), "nope.png", "no such file")
    proc = run("video", tmp_path / "x.mp4", "--out", tmp_path / "y.mp4", "--stride", "0")
    assert proc.returncode == 2 and "positive integer" in proc.stderr


@pytest.mark.data
def test_predict_json_contract(photos_dir, tiny_model, bad_files, tmp_path):
    good = photos_dir / "astronaut.png"
    proc = run("predict", good, "--json", "--model", tiny_model, "--annotate", tmp_path / "ann.png")
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    assert entry["image"] == str(good)
    (face,) = entry["faces"]
    x, y, w, h = face["box"]
    assert all(isinstance(v, int) for v in face["box"])
    assert x <= ASTRONAUT_FACE[0] <= x + w and y <= ASTRONAUT_FACE[1] <= y + h
    assert list(face["scores"]) == list(EMOTIONS)
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["scores"], key=face["scores"].get)

    assert load_image(tmp_path / "ann.png").shape == load_image(good).shape

    # one good and one bad image: the good one is still reported, the exit code says failure
    proc = run("predict", good, bad_files["noise"], "--json", "--model", tiny_model)
    assert_one_line_error(proc, "noise.jpg")
    entries = json.loads(proc.stdout)
    assert len(entries[0]["faces"]) == 1 and "not an image" in entries[1]["error"]


@pytest.mark.data
def test_predict_numbers_a_photos_faces_left_to_right_in_json_csv_and_text(photos_dir, tiny_model, tmp_path):
    """t1.jpg's six faces: integer numbers 1…6 in order of box x, the same in --json, --csv and the text."""
    t1 = photos_dir / "t1.jpg"
    proc = run("predict", t1, "--json", "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)
    ids = [f["face_id"] for f in entry["faces"]]
    xs = [f["box"][0] for f in entry["faces"]]
    assert ids == [1, 2, 3, 4, 5, 6] and all(type(i) is int for i in ids)
    assert xs == sorted(xs) and len(set(xs)) == 6

    out = tmp_path / "t1.csv"
    proc = run("predict", t1, "--csv", out, "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert ".0," not in text  # integers, not 1.0 or 53.0
    table = pd.read_csv(out)
    assert table["face_id"].tolist() == ids and table["x"].tolist() == xs
    assert str(table["face_id"].dtype) == "int64"

    proc = run("predict", t1, "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    assert [(int(i), int(x)) for i, x in re.findall(r"face (\d+)  box \[(\d+)", proc.stdout)] == list(
        zip(ids, xs, strict=True)
    )


@pytest.mark.data
def test_predict_text_output_and_missing_model(photos_dir, tiny_model, tmp_path):
    proc = run("predict", photos_dir / "astronaut.png", photos_dir / "grace_hopper.jpg", "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    assert "astronaut.png: 1 face" in proc.stdout and "grace_hopper.jpg: 1 face" in proc.stdout
    assert proc.stdout.count("box [") == 2
    proc = run("predict", photos_dir / "astronaut.png", "--model", tmp_path / "missing.tflite")
    assert_one_line_error(proc, "missing.tflite", "not found")


@pytest.mark.data
def test_video_command(photos_dir, tiny_model, tmp_path):
    src = tmp_path / "in.mp4"
    write_video(src, moving_face_frames(20))
    out, csv = tmp_path / "out.mp4", tmp_path / "faces.csv"
    proc = run("video", src, "--out", out, "--csv", csv, "--stride", "2", "--model", tiny_model)
    assert proc.returncode == 0, proc.stderr
    assert "20 frames" in proc.stdout and "10 analysed" in proc.stdout
    table = pd.read_csv(csv)
    assert set(table["frame"]) <= set(range(0, 20, 2)) and len(table) >= 8
    assert out.stat().st_size > 0

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    assert_one_line_error(run("video", bad, "--out", tmp_path / "o.mp4", "--model", tiny_model), "bad.mp4")


@pytest.mark.parametrize(
    "args, words",
    [
        (["video", "IN", "--out", "OUT", "--scan-every", "3"], ["--scan-every", "--detector haar", "blaze"]),
        (["video", "IN", "--out", "OUT", "--scan-every", "3", "--detector", "mtcnn"], ["--scan-every", "mtcnn"]),
        (["predict", "IMG", "--min-face", "0.1"], ["--min-face", "--detector haar"]),
        (["predict", "IMG", "--detect-side", "640", "--detector", "blaze"], ["--detect-side", "--detector haar"]),
    ],
)
def test_haar_only_options_with_another_detector_are_rejected(tmp_path, tiny_model, args, words):
    src = tmp_path / "in.mp4"
    write_video(src, [np.full((64, 64, 3), 90, np.uint8)] * 2)
    img = tmp_path / "img.png"
    img.write_bytes(encode(np.full((64, 64, 3), 90, np.uint8), "PNG"))
    argv = [{"IN": str(src), "OUT": str(tmp_path / "out.mp4"), "IMG": str(img)}.get(a, a) for a in args]
    proc = run(*argv, "--model", tiny_model)
    assert_one_line_error(proc, *words)
    assert proc.returncode == 1
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.data
def test_scan_every_with_haar_really_follows_faces(photos_dir, tiny_model, tmp_path, monkeypatch, capsys):
    """``video --detector haar --scan-every 3`` run in-process: the pipeline the CLI builds scans
    whole frames only about every third frame and follows the face in between, on every frame."""
    src = tmp_path / "in.mp4"
    frames = 30
    write_video(src, moving_face_frames(frames))
    built = []
    real = cli._pipeline

    def spy(args, stream=False):
        built.append(real(args, stream))
        return built[-1]

    monkeypatch.setattr(cli, "_pipeline", spy)
    csv = tmp_path / "faces.csv"
    argv = ["video", str(src), "--out", str(tmp_path / "out.mp4"), "--csv", str(csv), "--model", str(tiny_model)]
    assert cli.main([*argv, "--detector", "haar", "--scan-every", "3"]) == 0
    (pipeline,) = built
    detector = pipeline.detector
    assert isinstance(detector, TrackingDetector) and detector.full_every == 3
    assert pipeline.tracker is not None
    table = pd.read_csv(csv)
    assert len(table) >= 0.9 * frames and table["face_id"].nunique() == 1  # the face was followed...
    assert detector.full_scans <= frames // 3 + 3  # ...with a full scan only every third frame or so
    assert f"{frames} analysed" in capsys.readouterr().out

    # the default (--scan-every 1) scans every frame in full
    assert cli.main([*argv, "--detector", "haar"]) == 0
    assert isinstance(built[-1].detector, HaarDetector)


@pytest.mark.data
def test_litert_inference_does_not_import_tensorflow(photos_dir, tiny_model):
    code = (
        "import sys\n"
        "from fercore.inference.classify import EmotionClassifier\n"
        "from fercore.inference.pipeline import FramePipeline\n"
        "from fercore.inference.draw import annotate\n"
        f"p = FramePipeline('haar', EmotionClassifier({str(tiny_model)!r}), tracker=True)\n"
        f"faces = p.predict({str(photos_dir / 'astronaut.png')!r})\n"
        "assert len(faces) == 1 and faces[0].face_id == 1\n"
        "import numpy as np\n"
        "assert annotate(np.zeros((300, 300, 3), np.uint8), faces).any()\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
