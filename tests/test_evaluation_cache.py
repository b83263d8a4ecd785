"""fercore.evaluation.cache: a comparison classifies only what is not computed yet, results come back from
disk in a new process, a rewritten model file is a new key, the sample is reproducible, the ETA."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from fercore.data.dataset import Dataset, LoadReport
from fercore.evaluation.cache import EvalCache, EvalKey, eta, evaluate_many, evaluation_sample
from fercore.evaluation.evaluate import evaluate
from tests.conftest import SHIPPED_MODEL_DIR, requires_model, synthetic_faces


def _dataset(n: int = 140) -> Dataset:
    images, labels = synthetic_faces(n, seed=5)
    splits = np.array(["train", "test"] * (n // 2))
    ids = np.array([f"{i:05d}.png" for i in range(n)])
    return Dataset(images, labels.astype(np.int64), splits, ids, LoadReport("generated", "memory"))


@pytest.fixture
def two_models(tmp_path):
    """The shipped fast model and a copy of it under another name (model b)."""
    a = tmp_path / "a" / "model.tflite"
    b = tmp_path / "b" / "model.tflite"
    for f in (a, b):
        f.parent.mkdir()
        shutil.copy(SHIPPED_MODEL_DIR / "model.tflite", f)
    return a, b


def test_sample_is_the_split_or_a_reproducible_class_balanced_part():
    ds = _dataset()
    assert len(evaluation_sample(ds, "test", 0)) == 70
    assert len(evaluation_sample(ds, "test", 500)) == 70
    part = evaluation_sample(ds, "test", 35)
    assert len(part) == 35 and set(part.splits) == {"test"}
    assert np.array_equal(part.ids, evaluation_sample(ds, "test", 35).ids)
    assert np.bincount(part.labels, minlength=7).tolist() == [5] * 7  # 10 per class in the split, half of each


def test_eta_is_the_rate_so_far():
    assert eta(0, 100, 3.0) is None
    assert eta(25, 100, 5.0) == pytest.approx(15.0)
    assert eta(100, 100, 9.0) == 0.0


@requires_model
def test_comparison_after_evaluating_a_classifies_only_b(tmp_path, two_models):
    a, b = two_models
    sample = evaluation_sample(_dataset(), "test", 0)
    keys = [EvalKey.of(m, "data-1", "test", 0, False) for m in (a, b)]
    cache = EvalCache(tmp_path / "cache")
    totals: list[int] = []

    def progress(done: int, total: int, left: float | None) -> None:
        totals.append(total)
        assert 0 <= done <= total and (left is None or left >= 0)

    (first,) = evaluate_many([a], sample, keys[:1], cache, progress=progress)
    assert set(totals) == {len(sample)}
    totals.clear()
    both = evaluate_many([a, b], sample, keys, cache, progress=progress)
    assert set(totals) == {len(sample)}, "model a was classified again"
    assert both[0] is first
    assert np.allclose(both[1].proba, evaluate(str(b), sample).proba)
    totals.clear()
    assert evaluate_many([a, b], sample, keys, cache, progress=progress)[1] is both[1]
    assert totals == []  # nothing left to classify

    # a new process (a new cache on the same folder) finds both results on disk
    again = EvalCache(tmp_path / "cache")
    restored = again.get(keys[1])
    assert restored is not None
    assert np.array_equal(restored.proba, both[1].proba) and np.array_equal(restored.y_true, sample.labels)
    assert restored.temperature == both[1].temperature and restored.model == both[1].model


@requires_model
def test_a_rewritten_model_or_other_settings_are_other_keys(tmp_path, two_models):
    a, _ = two_models
    key = EvalKey.of(a, "data-1", "test", 0, False)
    assert EvalKey.of(a, "data-1", "test", 0, False) == key
    assert len({key, EvalKey.of(a, "data-2", "test", 0, False), EvalKey.of(a, "data-1", "train", 0, False)}) == 3
    assert EvalKey.of(a, "data-1", "test", 300, False) != key and EvalKey.of(a, "data-1", "test", 0, True) != key
    cache = EvalCache(tmp_path / "cache")
    sample = evaluation_sample(_dataset(), "test", 0)
    evaluate_many([a], sample, [key], cache)
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    rewritten = EvalKey.of(a, "data-1", "test", 0, False)
    assert rewritten != key and cache.get(rewritten) is None and cache.get(key) is not None


def test_damaged_cache_file_is_recomputed_not_an_error(tmp_path):
    cache = EvalCache(tmp_path)
    key = EvalKey("m", "d", "test", 0, False)
    (tmp_path / f"eval-{key.digest()}.npz").write_bytes(b"not a zip")
    assert cache.get(key) is None
    with pytest.raises(ValueError):
        EvalCache(tmp_path, max_entries=0)
