"""Many users at once: the dashboard shares one stateless FramePipeline (Photo) and its classifier's
backend (Evaluate) between every session. From 8 threads at once, for a few seconds, every call
must give exactly what the same call gives on one thread — no error, not one bit of difference.

Uses the shipped model (models/model.tflite), the sample photos and real FER2013 test faces; skips
with the reason when any of them is missing.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FER_DIR, PHOTOS, SHIPPED_MODEL_DIR

pytestmark = pytest.mark.data

THREADS = 8
SECONDS = 3.0  # concurrent calls start for at least this long …
MAX_SECONDS = 30.0  # … and until every job ran once, but never longer than this
BATCH_SIZES = range(1, 38)  # 1 … 37 faces per backend call
N_FACES = 600  # real FER2013 test faces, a fixed sample over all classes
PHOTO_NAMES = ("astronaut.png", "t1.jpg", "grace_hopper.jpg", "messi5.jpg")


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = SHIPPED_MODEL_DIR / "model.tflite"
    if not path.exists():
        pytest.skip(f"no shipped model at {path} (train and ship one: python -m training.ship)")
    return path


@pytest.fixture(scope="module")
def pipeline(model_path):
    """One pipeline for every thread, built as dashboard/common.py's get_pipeline builds it."""
    from fercore.inference.classify import EmotionClassifier
    from fercore.inference.pipeline import FramePipeline

    return FramePipeline(None, EmotionClassifier(model_path))


@pytest.fixture(scope="module")
def photo_bytes() -> dict[str, bytes]:
    missing = [n for n in PHOTO_NAMES if not (PHOTOS / n).exists()]
    if missing:
        pytest.skip(f"sample photos {missing} not found in {PHOTOS} (needs ../shared/data)")
    return {n: (PHOTOS / n).read_bytes() for n in PHOTO_NAMES}


@pytest.fixture(scope="module")
def fer_faces() -> np.ndarray:
    """(N_FACES, 48, 48) uint8: a fixed sample of the FER2013 test PNGs (all classes, sorted order)."""
    import cv2

    test = FER_DIR / "test"
    if not test.is_dir():
        pytest.skip(f"FER2013 test images not found at {test} (needs ../shared/data)")
    files = sorted(test.glob("*/*.png"))
    if len(files) < N_FACES:
        pytest.skip(f"only {len(files)} FER2013 test images at {test}, need {N_FACES}")
    pick = np.random.default_rng(0).choice(len(files), N_FACES, replace=False)
    faces = [cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE) for i in sorted(pick)]
    assert all(f is not None and f.shape == (48, 48) for f in faces)
    return np.stack(faces)


def photo_key(faces) -> list[tuple]:
    """Everything a Photo page shows of a result, exactly (floats unrounded, crops byte for byte)."""
    return [(tuple(f.box), f.label, tuple(f.scores.items()), f.face.tobytes()) for f in faces]


def batch_jobs(n_faces: int) -> list[tuple[int, int]]:
    """(start, size) of backend calls: every size 1–37, each at its own start."""
    rng = random.Random(1)
    return [(rng.randrange(0, n_faces - size), size) for size in BATCH_SIZES]


def hammer(jobs: list, run, expected: dict) -> dict:
    """Run ``run(job)`` from THREADS threads (released together) that take the next job of a shuffled
    cycle of ``jobs`` in turn, and compare each result with ``expected[job]``. New calls start for
    SECONDS, and until every job has been taken once (at most MAX_SECONDS). Returns the counts."""
    order = list(jobs)
    random.Random(0).shuffle(order)
    start = threading.Barrier(THREADS)
    lock = threading.Lock()
    taken = 0
    stats: dict = {"calls": 0, "errors": [], "diffs": [], "per_thread": [], "seconds": 0.0}
    t0 = [0.0]

    def next_job():
        nonlocal taken
        with lock:
            elapsed = time.perf_counter() - t0[0]
            if elapsed >= MAX_SECONDS or (elapsed >= SECONDS and taken >= len(order)):
                return None
            taken += 1
            return order[(taken - 1) % len(order)]

    def worker() -> None:
        calls, errors, diffs = 0, [], []
        if start.wait() == 0:
            t0[0] = time.perf_counter()
        start.wait()
        while (job := next_job()) is not None:
            try:
                got = run(job)
            except Exception as exc:  # every failure counts, whatever its type
                errors.append(f"{job}: {type(exc).__name__}: {exc}")
            else:
                if not _same(got, expected[job]):
                    diffs.append(job)
            calls += 1
        with lock:
            stats["calls"] += calls
            stats["errors"] += errors
            stats["diffs"] += diffs
            stats["per_thread"].append(calls)

    threads = [threading.Thread(target=worker, name=f"hammer-{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=MAX_SECONDS + 120)
    assert not any(t.is_alive() for t in threads), "a worker thread hung (deadlock?)"
    stats["seconds"] = time.perf_counter() - t0[0]
    stats["covered"] = min(taken, len(order))
    stats["jobs"] = len(order)
    return stats


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


def check(stats: dict, what: str) -> None:
    print(
        f"\n{what}: {stats['calls']} calls ({stats['covered']} of {stats['jobs']} distinct jobs) from "
        f"{THREADS} threads in {stats['seconds']:.1f} s (per thread {sorted(stats['per_thread'])}), "
        f"{len(stats['errors'])} errors, {len(stats['diffs'])} differences"
    )
    assert not stats["errors"], stats["errors"][:5]
    assert not stats["diffs"], f"results differ from single-threaded ones for {sorted(set(stats['diffs']))[:10]}"
    assert len(stats["per_thread"]) == THREADS and min(stats["per_thread"]) >= 1, stats["per_thread"]
    assert stats["covered"] == stats["jobs"], f"only {stats['covered']} of {stats['jobs']} jobs ran in {MAX_SECONDS} s"


def test_photo_and_evaluate_paths_from_8_threads(pipeline, photo_bytes, fer_faces):
    """Photo (``pipeline.predict(bytes)``) and Evaluate (``backend.predict`` on 1–37 real faces)
    calls interleaved on one shared pipeline: exactly the single-threaded results."""
    from fercore.inference.preprocess import to_model_input

    backend = pipeline.classifier.backend

    def run(job):
        kind, arg = job
        if kind == "photo":
            return photo_key(pipeline.predict(photo_bytes[arg]))
        start, size = arg
        return backend.predict(to_model_input(fer_faces[start : start + size]))

    jobs = [("photo", n) for n in PHOTO_NAMES] + [("batch", j) for j in batch_jobs(len(fer_faces))]
    expected = {job: run(job) for job in jobs}  # one thread, before any concurrency
    # the results are worth comparing: the photos' known answers, probabilities that sum to 1
    astronaut = expected[("photo", "astronaut.png")]
    assert [f[1] for f in astronaut] == ["happy"], astronaut
    assert len(expected[("photo", "t1.jpg")]) == 6
    for job in jobs:
        if job[0] == "batch":
            assert expected[job].shape == (job[1][1], 7)
            np.testing.assert_allclose(expected[job].sum(axis=1), 1.0, atol=1e-4)

    stats = hammer(jobs, run, expected)
    check(stats, "photo + backend batches")


@pytest.mark.slow
def test_evaluate_from_8_threads(pipeline, fer_faces):
    """``fercore.evaluation.evaluate.predict_proba`` — the loop behind ``evaluate`` and the Evaluate page —
    on the shared backend with batch sizes 1–37 from 8 threads: exactly the single-threaded result."""
    from fercore.evaluation.evaluate import predict_proba

    backend = pipeline.classifier.backend
    rng = random.Random(2)
    # size + 5 faces: at least one full batch and a ragged tail
    jobs = [(rng.randrange(0, len(fer_faces) - 45), size + 5, size) for size in BATCH_SIZES]

    def run(job):
        start, n, batch = job
        return predict_proba(backend, fer_faces[start : start + n], batch_size=batch)

    expected = {job: run(job) for job in jobs}
    check(hammer(jobs, run, expected), "evaluate.predict_proba")


def test_one_backend_call_gives_the_same_answer_whatever_the_batch(pipeline, fer_faces):
    """Not a thread test, but what makes exact comparisons meaningful across batch sizes: a face's
    probabilities do not depend on which batch it came in (LiteRT resizes the input per call)."""
    from fercore.inference.preprocess import to_model_input

    backend = pipeline.classifier.backend
    one_by_one = np.concatenate([backend.predict(to_model_input(fer_faces[i : i + 1])) for i in range(37)])
    for size in (2, 7, 37):
        batched = np.concatenate(
            [backend.predict(to_model_input(fer_faces[s : min(s + size, 37)])) for s in range(0, 37, size)]
        )
        np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=1e-5)
