"""fercore.predictor: image decoding (bad and unusual inputs), the Predictor pipeline, drawing."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import SHIPPED_MODEL_DIR, requires_model
from fercore import predictor as predictor_mod
from fercore.classify import EmotionClassifier
from fercore.detect import Box
from fercore.draw import annotate, caption
from fercore.labels import EMOTIONS, color_rgb
from fercore.predictor import FacePrediction, ImageError, Predictor, load_image

ASTRONAUT_FACE = (222, 115)  # face centre in astronaut.png
GRACE_FACE = (262, 215)  # face centre in grace_hopper.jpg (512 wide × 600 high)
FIXED = np.array([0.05, 0.05, 0.1, 0.5, 0.1, 0.1, 0.1], np.float32)


class FixedBackend:
    """Stands in for a trained model: the same probabilities (happy first) for every face."""

    def __init__(self):
        self.calls: list[int] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and x.shape[1:] == (48, 48, 1)
        self.calls.append(len(x))
        return np.tile(FIXED, (len(x), 1))


@pytest.fixture
def predictor() -> Predictor:
    return Predictor("haar", EmotionClassifier(backend=FixedBackend()))


def _contains(box: Box, point) -> bool:
    return box.x <= point[0] <= box.x + box.w and box.y <= point[1] <= box.y + box.h


def _encode(rgb: np.ndarray, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **save)
    return buf.getvalue()


def _one_line_error(exc_info, *words: str) -> None:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    for w in words:
        assert w in msg, msg


# -------------------------------------------------------------------------------- bad input files


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "empty.jpg", "empty")


def test_random_bytes_named_jpg(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "noise.jpg", "not an image")
    assert isinstance(e.value, ValueError)


def test_truncated_jpeg(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = _encode(rgb, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "cut.jpg", "truncated")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "nope.png")
    _one_line_error(e, "nope.png", "no such file")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_one_pixel_image_gives_no_faces(tmp_path, predictor):
    path = tmp_path / "dot.png"
    path.write_bytes(_encode(np.array([[[10, 200, 30]]], np.uint8), "PNG"))
    rgb = load_image(path)
    assert rgb.shape == (1, 1, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [10, 200, 30]
    assert predictor.predict(path) == []


def test_image_above_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_mod, "MAX_PIXELS", 50 * 50)
    path = tmp_path / "big.png"
    path.write_bytes(_encode(np.zeros((60, 60, 3), np.uint8), "PNG"))
    with pytest.raises(ImageError) as e:
        load_image(path)
    _one_line_error(e, "big.png", "60×60", "megapixel limit")


@pytest.mark.data
@pytest.mark.slow
def test_10000_square_image_works_and_boxes_are_in_original_pixels(tmp_path, photos_dir, predictor):
    """A 10 000 × 10 000 JPEG (100 MP) decodes; the face is found and boxed in full-size pixels.
    (BlazeFace: the face is 1/6 of the image, near the edge of Haar's default 0.14.)"""
    predictor = Predictor("blaze", predictor.classifier)
    small = load_image(photos_dir / "astronaut.png")
    big = np.zeros((10_000, 10_000, 3), np.uint8)
    big[1500:9500, 1000:9000] = cv2.resize(small, (8000, 8000), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "huge.jpg"
    ok, buf = cv2.imencode(".jpg", big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    path.write_bytes(buf.tobytes())
    del big, buf
    preds = predictor.predict(path)
    assert len(preds) == 1
    face = preds[0].box
    f = 8000 / 512
    expected = (1000 + ASTRONAUT_FACE[0] * f, 1500 + ASTRONAUT_FACE[1] * f)
    assert _contains(face, expected), face
    assert 900 < face.w < 3000


# ----------------------------------------------------------------------------- unusual encodings


@pytest.fixture
def astronaut(photos_dir) -> np.ndarray:
    return load_image(photos_dir / "astronaut.png")


@pytest.fixture
def grace(photos_dir) -> np.ndarray:
    return load_image(photos_dir / "grace_hopper.jpg")


@pytest.mark.data
def test_rgba_png_is_composited_and_the_face_found(tmp_path, astronaut, predictor):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:, :60, 3] = 0  # a transparent strip on the left
    rgba[:, 60:80, 3] = 128
    path = tmp_path / "rgba.png"
    path.write_bytes(_encode(rgba, "PNG"))
    rgb = load_image(path)
    assert rgb.shape == astronaut.shape
    assert (rgb[:, :60] == 255).all()  # transparent → white
    half = (astronaut[:, 60:80].astype(int) + 255) / 2
    assert np.abs(rgb[:, 60:80] - half).max() <= 1
    assert np.array_equal(rgb[:, 80:], astronaut[:, 80:])
    (face,) = predictor.predict(path)
    assert _contains(face.box, ASTRONAUT_FACE)


@pytest.mark.data
def test_16_bit_png_gray_and_colour(tmp_path, astronaut, predictor):
    rgb16 = astronaut.astype(np.uint16) * 257
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])
    decoded = load_image(path)
    assert decoded.dtype == np.uint8 and decoded.shape == astronaut.shape
    assert np.abs(decoded.astype(int) - astronaut).max() <= 1
    (face,) = predictor.predict(path)
    assert _contains(face.box, ASTRONAUT_FACE)

    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray.astype(np.uint16) * 257)
    assert Image.open(path).mode.startswith("I")
    decoded = load_image(path)
    assert decoded.shape == astronaut.shape
    assert np.abs(decoded[:, :, 0].astype(int) - gray).max() <= 1
    (face,) = predictor.predict(path)
    assert _contains(face.box, ASTRONAUT_FACE)


@pytest.mark.data
def test_cmyk_jpeg(tmp_path, astronaut, predictor):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut).convert("CMYK").save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    rgb = load_image(path)
    assert rgb.shape == astronaut.shape
    assert np.abs(rgb.astype(int) - astronaut).mean() < 8  # colours survive, not inverted
    (face,) = predictor.predict(path)
    assert _contains(face.box, ASTRONAUT_FACE)


@pytest.mark.data
def test_exif_rotated_jpeg_is_turned_upright_and_the_box_lands_on_the_face(tmp_path, grace, predictor):
    """Pixels stored sideways with orientation 6 (rotate 90° clockwise to view), as phones do."""
    sideways = Image.fromarray(grace).transpose(Image.Transpose.ROTATE_90)  # stored turned left
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    sideways.save(path, "JPEG", quality=95, exif=exif)
    assert Image.open(path).size == (600, 512)  # stored landscape

    rgb = load_image(path)
    assert rgb.shape == grace.shape  # 600 high × 512 wide, upright
    assert np.abs(rgb.astype(int) - grace).mean() < 6
    (face,) = predictor.predict(path)
    assert _contains(face.box, GRACE_FACE), face.box
    (upright,) = predictor.predict(grace)
    assert face.box.iou(upright.box) > 0.7


def test_palette_and_grayscale_files(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    path = tmp_path / "gray.png"
    path.write_bytes(_encode(gray, "PNG"))
    rgb = load_image(path)
    assert rgb.shape == (32, 64, 3) and np.array_equal(rgb[:, :, 1], gray)
    pal = Image.fromarray(np.dstack([gray] * 3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "pal.gif"
    pal.save(path)
    assert load_image(path).shape == (32, 64, 3)


def test_arrays_and_bytes(tmp_path):
    assert load_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert load_image(np.ones((4, 5, 3), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert load_image(np.full((4, 5, 3), 65535, np.uint16))[0, 0].tolist() == [255, 255, 255]
    rgba = np.zeros((4, 5, 4), np.uint8)
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]  # fully transparent → white
    rgb = np.random.default_rng(2).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(load_image(_encode(rgb, "PNG")), rgb)
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(ImageError, match="no pixels"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match="upload.jpg: empty"):
        load_image(b"", name="upload.jpg")


# ------------------------------------------------------------------------------------- Predictor


@pytest.mark.data
def test_predictor_pipeline_on_a_photo(photos_dir, predictor):
    path = photos_dir / "astronaut.png"
    preds = predictor.predict(path)
    assert len(preds) == 1
    p = preds[0]
    assert isinstance(p, FacePrediction)
    assert _contains(p.box, ASTRONAUT_FACE)
    assert p.face.shape == (48, 48) and p.face.dtype == np.uint8
    assert list(p.scores) == list(EMOTIONS)
    assert p.label == "happy" and p.confidence == pytest.approx(0.5)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["box"] == p.box.as_list() and d["label"] == "happy" and d["face_id"] is None
    assert sum(d["scores"].values()) == pytest.approx(1.0)
    # a path, bytes and an array give the same answer
    same = [predictor.predict(path.read_bytes()), predictor.predict(load_image(path))]
    assert all(q[0].box == p.box for q in same)


@pytest.mark.data
def test_all_faces_of_an_image_are_classified_in_one_call(photos_dir):
    backend = FixedBackend()
    pred = Predictor("haar", EmotionClassifier(backend=backend))
    from fercore.detect import HaarDetector

    pred.detector = HaarDetector(min_face=0.05)  # t1's faces are 1/8–1/10 of its shorter side
    faces = pred.predict(photos_dir / "t1.jpg")
    assert len(faces) >= 3
    assert backend.calls == [len(faces)]
    assert [f.box.x for f in faces] == sorted(f.box.x for f in faces)


def test_predictor_accepts_detector_names_and_objects():
    clf = EmotionClassifier(backend=FixedBackend())
    det = Predictor("haar", clf).detector
    assert Predictor(det, clf).detector is det
    with pytest.raises(ValueError, match="unknown detector"):
        Predictor("nope", clf)


@requires_model
@pytest.mark.data
def test_astronaut_is_happy_with_the_shipped_model(photos_dir):
    pred = Predictor("haar", EmotionClassifier(SHIPPED_MODEL_DIR / "model.tflite"))
    (face,) = pred.predict(photos_dir / "astronaut.png")
    assert face.label == "happy", face.scores


# ------------------------------------------------------------------------------------------ draw


def test_annotate_draws_boxes_in_the_label_colour_without_touching_the_input():
    rgb = np.full((240, 320, 3), 30, np.uint8)
    scores = dict(zip(EMOTIONS, FIXED.tolist()))
    pred = FacePrediction(Box(100, 80, 60, 60), scores, "happy", np.zeros((48, 48), np.uint8), face_id=7)
    out = annotate(rgb, [pred])
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert (rgb == 30).all()  # input untouched
    left_edge = out[100:130, 100]
    assert (np.abs(left_edge.astype(int) - color_rgb("happy")).sum(axis=1) < 40).all()
    assert caption(pred) == "#7 happy 50%"
    plain = annotate(rgb, [pred], show_bars=False)
    assert (out != plain).any()  # bars were drawn beside the box
    assert annotate(rgb, []).tolist() == rgb.tolist()
