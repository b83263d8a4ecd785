"""fercore.inference.batch and ``python -m fercore predict … --csv``: folders walked recursively, zips read under
limits, results in input order whatever the number of workers, a resumable CSV, failures listed.

Generated images hold no face a detector finds, which is what whole-image mode is for; the shipped
model classifies them (LiteRT, fast).
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fercore.inference.batch import (
    BATCH_COLUMNS,
    BatchCsv,
    BatchLimits,
    ImageResult,
    ProgressClock,
    find_images,
    predict_images,
    read_uploads,
)
from fercore.paths import PROJECT_ROOT as ROOT
from fercore.types import DataError

requires_model = pytest.mark.skipif(not (ROOT / "models" / "model.tflite").exists(), reason="no shipped model")


def png(seed: int, size: int = 48) -> bytes:
    import cv2

    img = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture
def folder(tmp_path) -> Path:
    """a.png, b.jpg, bad.png (text), notes.txt, sub/c.png, sub/deeper/d.bmp."""
    import cv2

    root = tmp_path / "imgs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.png").write_bytes(png(0))
    gray = np.random.default_rng(1).integers(0, 255, (60, 80), dtype=np.uint8)
    (root / "b.jpg").write_bytes(cv2.imencode(".jpg", gray)[1].tobytes())
    (root / "bad.png").write_bytes(b"this is not a png")
    (root / "notes.txt").write_text("not an image, not listed")
    (root / "sub" / "c.png").write_bytes(png(2, 64))
    (root / "sub" / "deeper" / "d.bmp").write_bytes(cv2.imencode(".bmp", gray)[1].tobytes())
    return root


def run(*args, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fercore", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_find_images_recursive_sorted_and_named_files_kept(folder):
    found = [Path(f).relative_to(folder).as_posix() for f in find_images([folder])]
    assert found == ["a.png", "b.jpg", "bad.png", "sub/c.png", "sub/deeper/d.bmp"]
    missing = folder / "missing.png"
    assert find_images([folder / "notes.txt", missing]) == [str(folder / "notes.txt"), str(missing)]


@requires_model
def test_cli_csv_whole_image_resume_and_exit_status(folder, tmp_path):
    out = tmp_path / "out" / "faces.csv"
    proc = run("predict", folder, "--csv", out, "--whole-image")
    assert proc.returncode == 1, proc.stderr
    assert "bad.png: not an image" in proc.stderr and "1 of 5 images could not be read" in proc.stderr
    assert "Traceback" not in proc.stderr and "\r" not in proc.stderr  # no progress bar off a terminal
    table = pd.read_csv(out)
    assert list(table.columns) == BATCH_COLUMNS
    assert [Path(f).name for f in table["file"]] == ["a.png", "b.jpg", "bad.png", "c.png", "d.bmp"]
    good = table[table["error"].isna()]
    assert good["whole_image"].astype(bool).all() and len(good) == 4
    assert (good["w"] > 0).all() and good["label"].notna().all()
    np.testing.assert_allclose(
        good[["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]].sum(axis=1), 1.0, atol=1e-3
    )
    bad = table[table["error"].notna()].iloc[0]
    assert pd.isna(bad["label"]) and pd.isna(bad["x"])
    before = out.read_bytes()

    proc = run("predict", folder, "--csv", out, "--whole-image")  # a re-run skips every file
    assert proc.returncode == 0, proc.stderr
    assert "0 images analysed" in proc.stdout and "5 skipped" in proc.stdout
    assert out.read_bytes() == before

    (folder / "sub" / "e.png").write_bytes(png(5))  # a new file: only it is analysed, appended
    proc = run("predict", folder, "--csv", out, "--whole-image")
    assert proc.returncode == 0 and "1 images analysed" in proc.stdout, proc.stdout
    assert out.read_bytes().startswith(before) and len(pd.read_csv(out)) == 6


@requires_model
def test_cli_without_whole_image_gives_one_empty_row_per_faceless_image(folder, tmp_path):
    (folder / "bad.png").unlink()
    out = tmp_path / "faces.csv"
    proc = run("predict", folder / "a.png", folder / "sub", "--csv", out)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    assert len(table) == 3 and table["label"].isna().all() and table["error"].isna().all()
    assert "3 images analysed (0 faces)" in proc.stdout


@requires_model
def test_workers_give_the_same_rows(folder, tmp_path):
    for name in ("one", "two"):
        workers = "1" if name == "one" else "2"
        run("predict", folder, "--csv", tmp_path / f"{name}.csv", "--whole-image", "--workers", workers)
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


@requires_model
def test_cli_json_and_text_accept_folders(folder):
    import json

    (folder / "bad.png").unlink()
    proc = run("predict", folder / "sub", "--json", "--whole-image")
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert [Path(e["image"]).name for e in entries] == ["c.png", "d.bmp"]
    assert all(e["faces"][0]["whole_image"] and len(e["faces"][0]["scores"]) == 7 for e in entries)
    proc = run("predict", folder / "notes.txt", "--csv", folder / "x.csv")
    assert proc.returncode == 1 and "not an image" in proc.stderr
    proc = run("predict", folder / "sub" / "deeper" / "nothing", "--csv", folder / "x.csv")
    assert proc.returncode == 1 and "no such file" in proc.stderr
    proc = run("predict", folder, "--csv", folder / "x.csv", "--json")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_batch_csv_drops_a_cut_line_and_refuses_foreign_csvs(tmp_path):
    path = tmp_path / "b.csv"
    out = BatchCsv(path)
    out.write(ImageResult("x.png"))
    out.write(ImageResult("y.png", error="y.png: not an image"))
    out.close()
    with open(path, "a") as f:
        f.write("z.png,,1,2")  # a killed run: no newline
    again = BatchCsv(path)
    assert again.has("x.png") and again.has("./y.png") and not again.has("z.png")
    assert again.earlier_errors == 1
    again.close()
    assert path.read_text().endswith(",y.png: not an image\n")
    cut = tmp_path / "cut.csv"
    cut.write_text("file,face_id,x")  # killed while writing the header: starts afresh
    BatchCsv(cut).close()
    assert cut.read_text().splitlines() == [",".join(BATCH_COLUMNS)]
    other = tmp_path / "video.csv"
    other.write_text("frame,time_s\n0,0.0\n")
    with pytest.raises(DataError, match="not a batch CSV"):
        BatchCsv(other)


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_read_uploads_expands_zips_skips_and_lists_bad_members():
    members = {f"faces/{i:02d}.png": png(i) for i in range(5)}
    members |= {"faces/readme.txt": b"hello", "__MACOSX/faces/._00.png": b"junk", "faces/big.png": png(9, 400)}
    items = [("one.png", png(1)), ("album.zip", make_zip(members))]
    limits = BatchLimits(max_files=5, max_file_bytes=100_000)
    images, skipped = read_uploads(items, limits)
    assert [n for n, _ in images] == ["one.png", *[f"album.zip/faces/{i:02d}.png" for i in range(4)]]
    reasons = dict(skipped)
    assert "not an image" in reasons["album.zip/faces/readme.txt"]
    assert "over the limit of 5 images" in reasons["album.zip/faces/04.png"]
    assert "larger than" in reasons["album.zip/faces/big.png"]
    assert not any("MACOSX" in n for n, _ in skipped)


@pytest.mark.parametrize(
    "members, words",
    [
        ({"../evil.png": b"x"}, "outside"),
        ({f"{i}.png": b"x" for i in range(30)}, "more than 20 files"),
    ],
)
def test_read_uploads_refuses_hostile_zips_and_goes_on(members, words):
    items = [("evil.zip", make_zip(members)), ("fake.zip", b"PK\x03\x04 not really"), ("ok.png", png(0))]
    images, skipped = read_uploads(items, BatchLimits(max_members=20))
    assert [n for n, _ in images] == ["ok.png"]
    assert [n for n, _ in skipped] == ["evil.zip", "fake.zip"]
    assert words in skipped[0][1] and "not a valid zip" in skipped[1][1]


@requires_model
def test_predict_images_order_errors_and_previews():
    from fercore.inference.pipeline import FramePipeline

    pipe = FramePipeline(whole_image_fallback=True)
    sources = [(f"{i}.png", png(i) if i != 3 else b"broken") for i in range(9)]
    one = list(predict_images(pipe, sources, workers=1, preview=96))
    two = list(predict_images(pipe, sources, workers=2, preview=96))
    assert [r.file for r in two] == [r.file for r in one] == [n for n, _ in sources]
    assert [r.rows() for r in two] == [r.rows() for r in one]
    assert one[3].error and "not an image" in one[3].error and one[3].preview is None
    assert one[0].preview.shape == (96, 96, 3) and one[0].summary()["labels"].endswith("(whole image)")
    with pytest.raises(ValueError, match="stateless"):
        list(predict_images(FramePipeline(tracker=True), sources))


def test_progress_clock_eta():
    now = [0.0]
    clock = ProgressClock(lambda: now[0])
    assert clock.text(0.1) == "10 %"  # no ETA in the first 2 s
    now[0] = 10.0
    assert clock.eta(0.25) == pytest.approx(30.0)
    assert clock.text(0.25) == "25 % · 0:30 left" and clock.text(1.0) == "100 %"


def _fixed_pipeline(boxes):
    from conftest import FixedBackend, FixedDetector

    from fercore.inference.classify import EmotionClassifier
    from fercore.inference.pipeline import FramePipeline

    return FramePipeline(FixedDetector(boxes), EmotionClassifier(backend=FixedBackend()))


def test_batch_report_one_account_of_analysed_and_skipped_items(tmp_path):
    """A zip of 5 photos + a corrupt JPEG + notes.txt, and a broken PNG uploaded beside it: 5 analysed,
    3 skipped or unreadable, each listed with its reason; the CSV keeps integer boxes beside error rows."""
    from fercore.inference.batch import BatchReport
    from fercore.types import Box

    members = {f"album/{i}.png": png(i, 96) for i in range(5)}
    members |= {"album/corrupt.jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "album/notes.txt": b"hello"}
    items = [("album.zip", make_zip(members)), ("broken.png", b"\x89PNG\r\n\x1a\n broken")]
    images, skipped = read_uploads(items)
    pipe = _fixed_pipeline([Box(50, 10, 30, 30), Box(5, 40, 30, 30)])
    report = BatchReport.of(predict_images(pipe, images), skipped)
    assert len(report.analysed) == 5 and report.faces == 10 and report.without_face == 0
    reasons = {row["file"]: row["reason"] for row in report.problem_rows()}
    assert set(reasons) == {"album.zip/album/notes.txt", "album.zip/album/corrupt.jpg", "broken.png"}
    assert "not an image" in reasons["album.zip/album/notes.txt"]
    assert all(reasons.values())  # every item has its reason
    assert [r.file for r in report.analysed] == [f"album.zip/album/{i}.png" for i in range(5)]

    table = report.table()
    assert len(table) == 10 + 3 and table["error"].notna().sum() == 3
    path = tmp_path / "faces.csv"
    table.to_csv(path, index=False)
    text = path.read_text()
    assert ".0," not in text  # no 53.0: boxes and face numbers stay integers beside the error rows
    back = pd.read_csv(path)
    faces = back[back["error"].isna()]
    assert faces["face_id"].tolist() == [1, 2] * 5 and faces["x"].tolist() == [5, 50] * 5

    entries = report.to_json()
    assert [len(e["faces"]) for e in entries[:5]] == [2] * 5 and all("error" in e for e in entries[5:])
    assert [f["face_id"] for f in entries[0]["faces"]] == [1, 2]


def test_find_upload_reads_one_named_image():
    from fercore.inference.batch import find_upload

    members = {f"faces/{i}.png": png(i) for i in range(3)} | {"faces/notes.txt": b"hi"}
    items = [("one.png", png(7)), ("album.zip", make_zip(members))]
    assert find_upload(items, "one.png") == png(7)
    assert find_upload(items, "album.zip/faces/2.png") == png(2)
    assert find_upload(items, "album.zip/faces/notes.txt") is None  # not an image: never handed out
    assert find_upload(items, "album.zip/faces/9.png") is None and find_upload(items, "other.png") is None
    assert find_upload([("bad.zip", b"PK not a zip")], "bad.zip/x.png") is None
