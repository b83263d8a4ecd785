"""fercore.data.loader: CSV, Kaggle layout, class folders, FER+ votes, cache, and bad input."""

from __future__ import annotations

import gzip
import os
import time

import cv2
import numpy as np
import pytest

from fercore.data.loader import (
    DataError,
    align_votes,
    load_csv,
    load_dataset,
    load_ferplus_votes,
    load_uploaded,
    majority_labels,
    soft_labels,
)
from fercore.labels import EMOTIONS, canonical_emotion
from tests.conftest import synthetic_faces


def write_csv(path, images, labels, usages, header="emotion,pixels,Usage"):
    lines = [header]
    for img, lab, use in zip(images, labels, usages, strict=True):
        lines.append(f"{lab},{' '.join(map(str, img.ravel()))},{use}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def csv_file(tmp_path):
    images, labels = synthetic_faces(21)
    usages = ["Training"] * 14 + ["PublicTest"] * 4 + ["PrivateTest"] * 3
    return write_csv(tmp_path / "fer2013.csv", images, labels, usages), images, labels


def test_csv_loads_pixels_labels_and_splits(csv_file):
    path, images, labels = csv_file
    ds = load_dataset(path)
    assert ds.images.shape == (21, 48, 48) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.split_names == ["train", "test", "private"]
    assert len(ds.split("PublicTest")) == 4 and len(ds.split("private")) == 3
    assert ds.rows().tolist() == list(range(21))


def test_csv_gz_equals_csv(csv_file, tmp_path):
    path, images, _ = csv_file
    gz = tmp_path / "fer.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(load_dataset(gz).images, images)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: "", "file is empty"),
        (lambda t: t.replace("emotion,pixels,Usage", "label,data,Usage"), "missing columns 'emotion', 'pixels'"),
        (lambda t: t.replace("emotion,pixels,Usage", "emotion,data,Usage"), "missing column 'pixels'"),
        (
            lambda t: t.replace(",", ",1 ", 1).replace("1 ", "", 1) if False else _drop_one_pixel(t),
            "2303 pixels, expected 2304",
        ),
        (lambda t: _replace_pixel(t, "abc"), "pixel 101 is not a number"),
        (lambda t: _replace_pixel(t, "300"), "pixel values must be 0–255"),
        (lambda t: t.split("\n")[0] + "\n", "header only"),
        (lambda t: t.replace(",Training", ",Secret", 1), "unknown Usage"),
        (lambda t: _replace_pixel(t, "9" * 30), "a pixel value is not a number 0–255"),
        (lambda t: t.replace("\n0,", "\n9,", 1), "emotion is not an integer 0–6"),
    ],
)
def test_bad_csv_gives_one_clear_message(csv_file, tmp_path, mutate, message):
    path, _, _ = csv_file
    bad = tmp_path / "bad.csv"
    bad.write_text(mutate(path.read_text()))
    with pytest.raises(DataError) as err:
        load_dataset(bad)
    text = str(err.value)
    assert message in text and "bad.csv" in text and "\n" not in text


def _drop_one_pixel(text: str) -> str:
    lines = text.split("\n")
    emo, pixels, use = lines[2].split(",")
    lines[2] = f"{emo},{' '.join(pixels.split()[:-1])},{use}"
    return "\n".join(lines)


def _replace_pixel(text: str, value: str) -> str:
    lines = text.split("\n")
    emo, pixels, use = lines[3].split(",")
    parts = pixels.split()
    parts[100] = value
    lines[3] = f"{emo},{' '.join(parts)},{use}"
    return "\n".join(lines)


def test_bad_csv_message_names_the_line(csv_file, tmp_path):
    path, _, _ = csv_file
    bad = tmp_path / "bad.csv"
    bad.write_text(_replace_pixel(path.read_text(), "x"))
    with pytest.raises(DataError, match="line 4"):
        load_csv(bad)


def test_kaggle_layout_loads_both_splits(class_folder):
    ds = load_dataset(class_folder)
    assert ds.report.kind == "kaggle"
    assert ds.split_names == ["train", "test"]
    assert len(ds.split("train")) == 140 and len(ds.split("test")) == 35
    assert np.bincount(ds.split("train").labels).tolist() == [20] * 7


def test_class_folders_any_format_aliases_and_unknown(tmp_path):
    root = tmp_path / "faces"
    (root / "Happiness").mkdir(parents=True)
    (root / "ANGER").mkdir()
    (root / "surprised").mkdir()
    (root / "misc").mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "Happiness" / "a.jpg"), rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    cv2.imwrite(str(root / "ANGER" / "b.png"), rgba)
    cv2.imwrite(str(root / "surprised" / "c.png"), (rgb[:, :, 0].astype(np.uint16) * 257))
    cv2.imwrite(str(root / "misc" / "d.png"), rgb)
    (root / "ANGER" / "broken.png").write_bytes(b"not an image at all")
    ds = load_dataset(root)
    assert ds.report.kind == "folder"
    assert sorted(EMOTIONS[i] for i in ds.labels) == ["angry", "happy", "surprise"]
    assert ds.images.shape == (3, 48, 48)
    assert ds.report.unknown_folders == ["misc"]
    assert ds.report.skipped and ds.report.skipped[0][0].endswith("broken.png")
    assert "1 unreadable skipped" in ds.report.summary()


def test_folder_without_class_folders_is_rejected(tmp_path):
    (tmp_path / "holiday").mkdir()
    cv2.imwrite(str(tmp_path / "holiday" / "x.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="no class folders found"):
        load_dataset(tmp_path)


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="not a data set"):
        load_dataset(tmp_path / "x.txt")


def test_cache_hit_and_invalidation(class_folder):
    first = load_dataset(class_folder)
    assert not first.report.from_cache
    second = load_dataset(class_folder)
    assert second.report.from_cache
    np.testing.assert_array_equal(first.images, second.images)
    extra = class_folder / "train" / "happy" / "99999.png"
    cv2.imwrite(str(extra), np.full((48, 48), 128, np.uint8))
    third = load_dataset(class_folder)
    assert not third.report.from_cache and len(third) == len(first) + 1
    os.utime(extra, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not load_dataset(class_folder).report.from_cache


def test_ferplus_votes_alignment(tmp_path, class_folder):
    votes_csv = tmp_path / "votes.csv"
    votes_csv.write_text(
        "row,Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
        "0,Training,a,0,8,2,0,0,0,0,0,0,0\n"
        "5,Training,b,6,0,0,4,0,0,0,0,0,0\n"
        "7,Training,c,0,0,0,0,0,0,0,0,10,0\n"
    )
    rows, votes = load_ferplus_votes(votes_csv)
    assert rows.tolist() == [0, 5, 7]
    assert votes[0, EMOTIONS.index("happy")] == 8 and votes[0, EMOTIONS.index("surprise")] == 2
    assert majority_labels(votes).tolist() == [EMOTIONS.index("happy"), EMOTIONS.index("neutral"), -1]
    np.testing.assert_allclose(soft_labels(votes)[1, EMOTIONS.index("sad")], 0.4)
    ds = load_dataset(class_folder)
    aligned = align_votes(ds, rows, votes)
    row_of = ds.rows()
    for i in np.flatnonzero(row_of == 5):
        assert aligned[i, EMOTIONS.index("neutral")] == 6
    assert aligned[row_of == 3].sum() == 0


def test_canonical_emotion_aliases():
    assert canonical_emotion("Happiness") == "happy"
    assert canonical_emotion("3") == "happy"
    assert canonical_emotion("5_surprised") == "surprise"
    assert canonical_emotion("holiday") is None


def test_upload_zip_with_nested_layout_and_wrong_layout(tmp_path, class_folder):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in class_folder.rglob("*.png"):
            zf.write(p, "FER/" + str(p.relative_to(class_folder)))
    ds = load_uploaded("fer.zip", buf.getvalue(), tmp_path / "up")
    assert len(ds) == 175 and ds.split_names == ["train", "test"]
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("photos/a.txt", "x")
    with pytest.raises(DataError, match="no class folders"):
        load_uploaded("bad.zip", bad.getvalue(), tmp_path / "up2")
    with pytest.raises(DataError, match="not a valid zip"):
        load_uploaded("junk.zip", b"garbage", tmp_path / "up3")


# ---------------------------------------------------------------------------------------- real data


def test_real_folder_layout_counts(fer_dir):
    ds = load_dataset(fer_dir)
    assert len(ds.split("train")) == 28709 and len(ds.split("test")) == 3589
    assert np.bincount(ds.split("test").labels, minlength=7).tolist() == [467, 56, 496, 895, 653, 415, 607]
    assert not ds.report.skipped


def test_real_sample_csv_matches_pngs(fer_dir):
    csv_ds = load_dataset(fer_dir / "fer2013_sample.csv")
    assert len(csv_ds) == 1200 and len(csv_ds.split("train")) == 1000
    folder = load_dataset(fer_dir)
    by_row = {int(r): i for i, r in enumerate(folder.rows())}
    diffs = []
    for k in range(0, 1200, 50):
        # the sample holds CSV rows 0–999 (Training) and 28709–28908 (first PublicTest rows)
        row = k if k < 1000 else 28709 + (k - 1000)
        i = by_row[row]
        assert folder.labels[i] == csv_ds.labels[k]
        diffs.append(np.abs(folder.images[i].astype(int) - csv_ds.images[k]).max())
    assert np.median(diffs) == 0


# ---------------------------------------------------------------------------------------- no echo, budgets


def test_data_error_is_the_one_from_fercore_types():
    from fercore import types

    assert DataError is types.DataError and issubclass(DataError, ValueError)


SECRET = "root:x:0:0:SECRET-LINE"


@pytest.mark.parametrize(
    "content, message",
    [
        (f"{SECRET},more\n0,1 2 3,Training\n", "missing columns 'emotion', 'pixels'"),
        (f"emotion,pixels,Usage\n{SECRET},{' '.join(['0'] * 2304)},Training\n", "emotion is not an integer 0–6"),
        (f"emotion,pixels,Usage\n0,{' '.join(['0'] * 2304)},{SECRET}\n", "unknown Usage"),
        (f"emotion,pixels,Usage\n0,{SECRET}\n", "line 2: 2 fields, expected 3"),
        (f"emotion,pixels\n0,{' '.join([SECRET] * 2304)}\n", "pixel 1 is not a number"),
    ],
)
def test_error_messages_name_the_problem_never_the_content(tmp_path, content, message):
    bad = tmp_path / "leak.csv"
    bad.write_text(content)
    with pytest.raises(DataError) as err:
        load_dataset(bad, use_cache=False)
    assert message in str(err.value) and "SECRET" not in str(err.value)


def test_binary_file_and_overlong_line_are_named_not_echoed(tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"emotion,pixels\n\xff\xfe" + SECRET.encode() + b"\n")
    with pytest.raises(DataError, match="line 2 is not UTF-8 text") as err:
        load_csv(binary)
    assert "SECRET" not in str(err.value)
    long = tmp_path / "long.csv"
    long.write_text("emotion,pixels\n" + "0," + "7" * 200_000 + "\n")
    with pytest.raises(DataError, match="line 2 is longer than 64 KB") as err:
        load_csv(long)
    assert "777" not in str(err.value)


def test_gzip_budget_and_damaged_gzip(csv_file, tmp_path):
    path, images, _ = csv_file
    gz = tmp_path / "fer.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    size = len(path.read_bytes())
    assert len(load_csv(gz, max_bytes=size)) == len(images)
    with pytest.raises(DataError, match="more than .* MB of text"):
        load_csv(gz, max_bytes=size - 1)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(DataError, match="not a valid gzip file"):
        load_csv(cut)


def test_ferplus_unreadable_file_is_named_not_echoed(tmp_path):
    bad = tmp_path / "votes.csv"
    bad.write_bytes(b"\xff\xfe\x00" + SECRET.encode() * 10)
    with pytest.raises(DataError) as err:
        load_ferplus_votes(bad)
    assert "votes.csv" in str(err.value) and "SECRET" not in str(err.value)


def _png_claiming_size(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims ``width``×``height`` (a decompression-bomb header)."""
    import struct
    import zlib

    ok, buf = cv2.imencode(".png", np.zeros((1, 1), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_folder_images_decode_through_fercore_image(tmp_path):
    root = tmp_path / "faces"
    (root / "happy").mkdir(parents=True)
    rgba = np.zeros((60, 60, 4), np.uint8)  # fully transparent black: white once composited
    cv2.imwrite(str(root / "happy" / "clear.png"), rgba)
    (root / "happy" / "bomb.png").write_bytes(_png_claiming_size(30_000, 30_000))
    ds = load_dataset(root, use_cache=False)
    assert len(ds) == 1 and int(ds.images[0].min()) == 255
    assert [(p.endswith("bomb.png"), why) for p, why in ds.report.skipped] == [(True, "more than 17 megapixels")]


def test_oversized_face_files_are_skipped_with_a_reason(tmp_path, monkeypatch):
    from fercore.data import folders

    root = tmp_path / "faces"
    (root / "sad").mkdir(parents=True)
    cv2.imwrite(str(root / "sad" / "small.png"), np.full((48, 48), 9, np.uint8))
    cv2.imwrite(str(root / "sad" / "wide.png"), np.full((100, 300), 9, np.uint8))  # 30,000 pixels
    (root / "sad" / "big.png").write_bytes(b"x" * 5000)
    monkeypatch.setattr(folders, "MAX_FACE_FILE_BYTES", 4000)
    monkeypatch.setattr(folders, "MAX_FACE_PIXELS", 20_000)
    ds = load_dataset(root, use_cache=False)
    assert len(ds) == 1
    assert sorted((os.path.basename(p), why) for p, why in ds.report.skipped) == [
        ("big.png", "file larger than 0 MB"),
        ("wide.png", "more than 0 megapixels"),
    ]


def test_report_summary_names_the_source_as_the_user_wrote_it():
    from fercore.data.dataset import LoadReport

    report = LoadReport(source="/somewhere/resolved/fer2013", kind="kaggle", loaded=12)
    assert report.summary() == "12 images from kaggle /somewhere/resolved/fer2013"
    shown = report.summary(shown_as="../data/fer2013")
    assert shown == "12 images from kaggle ../data/fer2013" and "/somewhere" not in shown
