"""fercore.inference.classify: EmotionClassifier over LiteRT (thread-safe interpreter pool) and fake backends."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from conftest import SHIPPED_MODEL_DIR, synthetic_faces

from fercore.inference.classify import EmotionClassifier, TFLiteBackend, default_model_path, load_backend
from fercore.labels import EMOTIONS


def _random_faces(n: int, seed: int) -> np.ndarray:
    """Half noise, half synthetic 'faces' (a bright bar on dark noise)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    bars, _ = synthetic_faces(n, seed)
    return np.where(rng.random(n)[:, None, None] < 0.5, noise, bars).astype(np.uint8)


def test_classifier_over_a_backend(fixed_backend):
    clf = EmotionClassifier(backend=fixed_backend)
    faces = np.zeros((3, 48, 48), np.uint8)
    probs = clf.predict_proba(faces)
    assert probs.shape == (3, 7) and fixed_backend.calls == [3]
    assert clf.predict(faces) == ["happy"] * 3
    assert clf.predict_proba(np.zeros((48, 48), np.uint8)).shape == (1, 7)  # one face without a batch axis
    with pytest.raises(ValueError, match="48×48"):
        clf.predict_proba(np.zeros((2, 32, 32), np.uint8))


def test_default_model_path_follows_fer_model(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "m.tflite"))
    assert default_model_path() == tmp_path / "m.tflite"
    monkeypatch.delenv("FER_MODEL")
    assert default_model_path().parent == SHIPPED_MODEL_DIR
    with pytest.raises(FileNotFoundError, match="nope.tflite"):
        load_backend(tmp_path / "nope.tflite")


def test_shipped_model_probabilities(shipped_classifier):
    faces = _random_faces(9, seed=1)
    probs = shipped_classifier.predict_proba(faces)
    assert probs.shape == (9, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert set(shipped_classifier.predict(faces)) <= set(EMOTIONS)
    assert shipped_classifier.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    # a face's probabilities do not depend on the batch it is in
    np.testing.assert_allclose(shipped_classifier.predict_proba(faces[:4]), probs[:4], rtol=0, atol=1e-6)


def test_tflite_backend_rejects_a_bad_pool_size(shipped_classifier):
    with pytest.raises(ValueError, match="max_interpreters"):
        TFLiteBackend(shipped_classifier.backend.path, max_interpreters=0)


@pytest.mark.slow
def test_one_classifier_shared_by_8_threads_gives_the_single_threaded_results(shipped_classifier):
    """Batches of 1–37 random faces from 8 threads at once, each thread many times, through ONE
    EmotionClassifier (more threads than the backend's interpreters): every result equals the
    single-threaded one and nothing raises."""
    backend = shipped_classifier.backend
    assert isinstance(backend, TFLiteBackend)
    batches = {size: _random_faces(size, seed=size) for size in range(1, 38)}
    expected = {size: shipped_classifier.predict_proba(faces) for size, faces in batches.items()}
    # every size is run by at least two threads; small batches more often (more overlapping calls)
    plans = []
    for t in range(8):
        rng = random.Random(t)
        sizes = [s for s in range(1, 38) if s % 4 == t % 4] + rng.choices(range(1, 9), k=24)
        rng.shuffle(sizes)
        plans.append(sizes)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    done: list[int] = []

    def work(plan: list[int]) -> None:
        try:
            barrier.wait()
            for size in plan:
                got = shipped_classifier.predict_proba(batches[size])
                assert got.shape == (size, 7)
                np.testing.assert_allclose(got, expected[size], rtol=0, atol=1e-6, err_msg=f"batch of {size}")
                done.append(size)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(plan,)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[0]
    assert len(done) == sum(len(p) for p in plans)
    assert 1 <= backend._created <= backend._max  # the pool stayed bounded
