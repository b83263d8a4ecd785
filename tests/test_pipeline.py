"""fercore.inference.pipeline: FramePipeline sequences detect → crop → classify → track → adjust → draw."""

from __future__ import annotations

import random
import threading

import cv2
import numpy as np
import pytest
from conftest import (
    ASTRONAUT_FACE,
    PHOTOS,
    FixedBackend,
    FixedDetector,
    contains,
    load_photo,
    requires_model,
)

from fercore.inference.classify import EmotionClassifier
from fercore.inference.detectors.blaze import BlazeFaceDetector
from fercore.inference.detectors.haar import HaarDetector
from fercore.inference.detectors.tracking import TrackingDetector
from fercore.inference.image import load_image
from fercore.inference.pipeline import FramePipeline, FrameResult, number_faces
from fercore.inference.track import FaceTracker
from fercore.labels import EMOTIONS
from fercore.types import Box, DetectorError, FacePrediction

FRAME = np.full((240, 320, 3), 60, np.uint8)
TWO_FACES = [Box(20, 30, 60, 60), Box(200, 40, 70, 70)]


def _pipeline(boxes=TWO_FACES, **kwargs) -> tuple[FramePipeline, FixedDetector, FixedBackend]:
    detector, backend = FixedDetector(boxes, gray=kwargs.pop("gray", False)), FixedBackend()
    return FramePipeline(detector, EmotionClassifier(backend=backend), **kwargs), detector, backend


# ------------------------------------------------------------------------------------ sequencing


def test_each_frame_calls_the_detector_once_and_the_classifier_once_with_all_its_faces():
    pipe, detector, backend = _pipeline()
    result = pipe(FRAME)
    assert isinstance(result, FrameResult) and result.image is None
    assert detector.shapes == [FRAME.shape]
    assert backend.calls == [2]
    assert [f.box for f in result.faces] == TWO_FACES
    for face in result.faces:
        assert isinstance(face, FacePrediction)
        assert face.face.shape == (48, 48) and face.face.dtype == np.uint8
        assert list(face.scores) == list(EMOTIONS) and face.label == "happy"
        assert not face.whole_image
    assert [f.face_id for f in result.faces] == [1, 2]  # a still image: numbered left to right
    pipe(FRAME)
    assert len(detector.shapes) == 2 and backend.calls == [2, 2]


def test_a_frame_without_faces_does_not_call_the_classifier():
    pipe, detector, backend = _pipeline(boxes=[])
    assert pipe(FRAME).faces == []
    assert len(detector.shapes) == 1 and backend.calls == []


def test_haar_style_detectors_get_the_gray_frame():
    pipe, detector, backend = _pipeline(gray=True)
    faces = pipe(FRAME).faces
    assert detector.shapes == [FRAME.shape[:2]] and len(faces) == 2 and backend.calls == [2]


def test_crops_are_cut_from_the_frame_at_the_boxes():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[30:90, 20:80] = 255  # the first face is white, the second black
    pipe, _, _ = _pipeline()
    first, second = pipe(frame).faces
    assert first.face[16:32, 16:32].min() == 255 and second.face.max() == 0


def test_frames_are_checked():
    pipe, _, _ = _pipeline()
    with pytest.raises(DetectorError, match="uint8"):
        pipe(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(DetectorError, match="shape"):
        pipe(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="max_side"):
        _pipeline(max_side=10)


# --------------------------------------------------------------------------------------- tracker


def test_tracker_gives_stable_ids_across_frames_and_reset_starts_again():
    detector = FixedDetector()
    pipe = FramePipeline(detector, EmotionClassifier(backend=FixedBackend()), tracker=True)
    assert isinstance(pipe.tracker, FaceTracker)
    ids = []
    for i in range(6):
        detector.boxes = [Box(20 + 3 * i, 30, 60, 60), Box(200 - 3 * i, 40, 70, 70)]
        faces = pipe(FRAME).faces
        ids.append(tuple(f.face_id for f in sorted(faces, key=lambda f: f.box.y)))
        assert all(f.raw_scores is not None for f in faces)
    assert set(ids) == {(1, 2)}
    pipe.reset()
    assert detector.resets == 1
    assert sorted(f.face_id for f in pipe(FRAME).faces) == [1, 2]  # ids start afresh


def test_a_given_tracker_is_used_and_its_ids_are_kept():
    tracker = FaceTracker(max_missed=1)
    pipe, detector, _ = _pipeline(tracker=tracker)
    assert pipe.tracker is tracker
    pipe(FRAME)
    assert len(tracker.tracks) == 2
    # a new face on the left: a stream keeps its track ids (the newcomer gets 3), a still image renumbers
    detector.boxes = [Box(2, 150, 50, 50), *TWO_FACES]
    tracked = pipe(FRAME).faces
    assert sorted((f.box.x, f.face_id) for f in tracked) == [(2, 3), (20, 1), (200, 2)]
    plain, _, _ = _pipeline(boxes=detector.boxes)
    assert plain.tracker is None and [(f.box.x, f.face_id) for f in plain(FRAME).faces] == [(2, 1), (20, 2), (200, 3)]
    plain.reset()  # nothing to reset: no error


def test_still_image_faces_are_numbered_left_to_right_by_x_then_y():
    # detector order is not reading order: a detector lists faces by score, size or scan position
    boxes = [Box(300, 10, 40, 40), Box(5, 200, 40, 40), Box(120, 90, 40, 40), Box(120, 20, 40, 40)]
    pipe, _, _ = _pipeline(boxes=boxes)
    faces = pipe(FRAME).faces
    assert [(f.box.x, f.box.y) for f in faces] == [(5, 200), (120, 20), (120, 90), (300, 10)]
    assert [f.face_id for f in faces] == [1, 2, 3, 4]
    assert all(type(f.face_id) is int for f in faces)
    assert [f.to_dict()["face_id"] for f in faces] == [1, 2, 3, 4]
    assert [f.to_row()["face_id"] for f in faces] == [1, 2, 3, 4]
    assert number_faces([]) == []
    again = number_faces(list(reversed(faces)))  # the same faces in any order get the same numbers
    assert [(f.box, f.face_id) for f in again] == [(f.box, f.face_id) for f in faces]


def test_whole_image_fallback_is_face_one():
    pipe, _, _ = _pipeline(boxes=[], whole_image_fallback=True)
    (face,) = pipe(FRAME).faces
    assert face.whole_image and face.face_id == 1


# ------------------------------------------------------------------------------------------- draw


def test_draw_off_on_and_custom():
    off, _, _ = _pipeline()
    assert off(FRAME).image is None
    on, _, _ = _pipeline(draw=True)
    image = on(FRAME).image
    assert image is not None and image.shape == FRAME.shape and image is not FRAME
    assert (image != FRAME).any() and (FRAME == 60).all()  # drawn on a copy
    seen = []

    def drawer(frame, faces):
        seen.append((frame, [f.face_id for f in faces]))
        return np.zeros_like(frame)

    custom, _, _ = _pipeline(draw=drawer, tracker=True)
    out = custom(FRAME)
    assert (out.image == 0).all() and seen[0][0] is FRAME
    assert seen[0][1] == [1, 2]  # the drawer sees tracked faces


def test_adjust_runs_after_the_tracker_and_before_drawing():
    order = []

    def adjust(faces):
        order.append(("adjust", [f.face_id for f in faces]))
        return faces[:1]

    def drawer(frame, faces):
        order.append(("draw", len(faces)))
        return frame

    pipe, _, _ = _pipeline(tracker=True, adjust=adjust, draw=drawer)
    assert len(pipe(FRAME).faces) == 1
    assert order == [("adjust", [1, 2]), ("draw", 1)]


# ------------------------------------------------------------------------------------- max_side


@pytest.mark.parametrize("gray", [False, True])
def test_large_frames_are_detected_on_a_small_copy_and_boxes_map_back(gray):
    big = np.zeros((2400, 3200, 3), np.uint8)
    big[400:600, 400:600] = 255
    pipe, detector, backend = _pipeline(boxes=[Box(100, 100, 50, 50), Box(780, 560, 40, 40)], gray=gray, max_side=800)
    faces = pipe(big).faces
    assert detector.shapes == [(600, 800, 3)[: 2 if gray else 3]]  # detection ran on a 4× smaller copy
    assert [f.box for f in faces] == [Box(400, 400, 200, 200), Box(3120, 2240, 80, 160)]  # clipped at the edge
    assert faces[0].face[8:40, 8:40].min() > 200  # crops come from the full-size frame
    assert backend.calls == [2]


def test_frames_within_max_side_are_not_resized():
    pipe, detector, _ = _pipeline(max_side=320)
    assert [f.box for f in pipe(FRAME).faces] == TWO_FACES
    assert detector.shapes == [FRAME.shape]


# ------------------------------------------------------------------------------ whole-image fallback


def test_whole_image_fallback_classifies_a_faceless_frame_as_one_face():
    frame = np.full((60, 90, 3), 100, np.uint8)
    pipe, _, backend = _pipeline(boxes=[], whole_image_fallback=True)
    (face,) = pipe(frame).faces
    assert face.whole_image and face.box == Box(0, 0, 90, 60)
    assert face.face.shape == (48, 48) and backend.calls == [1]
    assert face.to_dict()["whole_image"] is True
    # a face found: the normal path
    pipe, _, backend = _pipeline(boxes=[Box(10, 10, 30, 30)], whole_image_fallback=True)
    (face,) = pipe(frame).faces
    assert not face.whole_image and face.box == Box(10, 10, 30, 30)
    assert "whole_image" not in face.to_dict()
    # without the fallback a faceless frame gives nothing
    pipe, _, _ = _pipeline(boxes=[])
    assert pipe(frame).faces == []


# ------------------------------------------------------------------------------ building the steps


def test_detectors_by_name_or_object_and_stream_variants(fixed_classifier):
    pipe = FramePipeline("haar", fixed_classifier)
    assert isinstance(pipe.detector, HaarDetector) and pipe.classifier is fixed_classifier
    assert FramePipeline(pipe.detector, fixed_classifier).detector is pipe.detector
    stream = FramePipeline("haar", fixed_classifier, stream=True)
    assert isinstance(stream.detector, TrackingDetector)
    assert isinstance(FramePipeline("blaze", fixed_classifier, stream=True).detector, BlazeFaceDetector)
    assert isinstance(FramePipeline(None, fixed_classifier).detector, BlazeFaceDetector)  # the default
    with pytest.raises(DetectorError, match="unknown detector"):
        FramePipeline("nope", fixed_classifier)


def test_classifier_from_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        FramePipeline(FixedDetector(), tmp_path / "missing.tflite")


def test_one_pixel_image_gives_no_faces(fixed_classifier):
    pipe = FramePipeline("haar", fixed_classifier)
    assert pipe.predict(np.array([[[10, 200, 30]]], np.uint8)) == []


# ---------------------------------------------------------------------------------- real photos


@pytest.mark.data
def test_pipeline_on_a_photo(photos_dir, fixed_classifier):
    pipe = FramePipeline("haar", fixed_classifier)
    path = photos_dir / "astronaut.png"
    preds = pipe.predict(path)
    assert len(preds) == 1
    p = preds[0]
    assert isinstance(p, FacePrediction)
    assert contains(p.box, ASTRONAUT_FACE)
    assert p.face.shape == (48, 48) and p.face.dtype == np.uint8
    assert list(p.scores) == list(EMOTIONS)
    assert p.label == "happy" and p.confidence == pytest.approx(0.5)
    d = p.to_dict()
    assert d["box"] == p.box.as_list() and d["label"] == "happy" and d["face_id"] == 1
    assert sum(d["scores"].values()) == pytest.approx(1.0)
    # a path, bytes and an array give the same answer
    same = [pipe.predict(str(path)), pipe.predict(path.read_bytes()), pipe.predict(load_image(path))]
    assert all(q == preds for q in same)


@pytest.mark.data
def test_all_faces_of_an_image_are_classified_in_one_call(photos_dir, fixed_classifier):
    pipe = FramePipeline(HaarDetector(min_face=0.05), fixed_classifier)  # t1's faces: 1/8–1/10 of its side
    faces = pipe.predict(photos_dir / "t1.jpg")
    assert len(faces) >= 3
    assert fixed_classifier.backend.calls == [len(faces)]
    assert [f.box.x for f in faces] == sorted(f.box.x for f in faces)


@pytest.mark.data
@pytest.mark.slow
def test_10000_square_image_works_and_boxes_are_in_original_pixels(tmp_path, astronaut, fixed_classifier):
    """A 10 000 × 10 000 JPEG (100 MP) decodes; the face is found and boxed in full-size pixels.
    (BlazeFace: the face is 1/6 of the image, near the edge of Haar's default 0.14.)"""
    pipe = FramePipeline("blaze", fixed_classifier)
    big = np.zeros((10_000, 10_000, 3), np.uint8)
    big[1500:9500, 1000:9000] = cv2.resize(astronaut, (8000, 8000), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "huge.jpg"
    ok, buf = cv2.imencode(".jpg", big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    path.write_bytes(buf.tobytes())
    del big, buf
    preds = pipe.predict(path)
    assert len(preds) == 1
    face = preds[0].box
    f = 8000 / 512
    expected = (1000 + ASTRONAUT_FACE[0] * f, 1500 + ASTRONAUT_FACE[1] * f)
    assert contains(face, expected), face
    assert 900 < face.w < 3000


@requires_model
@pytest.mark.data
def test_astronaut_is_happy_with_the_shipped_model(photos_dir, shipped_classifier):
    pipe = FramePipeline("haar", shipped_classifier)
    (face,) = pipe.predict(photos_dir / "astronaut.png")
    assert face.label == "happy", face.scores


@requires_model
@pytest.mark.data
@pytest.mark.slow
def test_one_pipeline_shared_by_8_threads_gives_the_single_threaded_faces(shipped_classifier):
    """The Photo page's path: one cached FramePipeline (BlazeFace + the shipped model, no tracker)
    serves every session at once."""
    assert PHOTOS.exists()
    photos = {name: load_photo(name) for name in ("astronaut.png", "grace_hopper.jpg", "messi5.jpg", "t1.jpg")}
    pipe = FramePipeline("blaze", shipped_classifier)
    expected = {name: pipe(rgb).faces for name, rgb in photos.items()}
    assert sum(len(faces) for faces in expected.values()) >= 8  # 1 + 1 + 1 + 5–6
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    checked = []

    def work(seed: int) -> None:
        try:
            order = list(photos) * 5
            random.Random(seed).shuffle(order)
            barrier.wait()
            for name in order:
                got = pipe(photos[name]).faces
                want = expected[name]
                assert [f.box for f in got] == [f.box for f in want], name
                assert [f.label for f in got] == [f.label for f in want], name
                for g, w in zip(got, want, strict=True):
                    np.testing.assert_array_equal(g.face, w.face)
                    np.testing.assert_allclose(list(g.scores.values()), list(w.scores.values()), rtol=0, atol=1e-6)
                checked.append(name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]
    assert len(checked) == 8 * 20
