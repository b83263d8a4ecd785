"""Distillation: a teacher's probabilities cached by ``training.evaluate --proba-out`` become part of the
training targets (TrainConfig.teacher / teacher_weight / teacher_temperature)."""

from __future__ import annotations

import numpy as np
import pytest

from fercore.data.audit import save_proba
from fercore.data.loader import DataError, load_dataset
from fercore.train import TrainConfig, options, prepare_data
from fercore.train.teacher import soften, teacher_targets


def _probs(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).dirichlet(np.ones(7), size=n).astype(np.float32)
    return p


def test_soften_keeps_order_and_flattens():
    p = _probs(50)
    assert np.allclose(soften(p, 1.0), p, atol=1e-6)
    warm = soften(p, 3.0)
    assert np.allclose(warm.sum(axis=1), 1.0, atol=1e-6)
    assert (warm.argmax(axis=1) == p.argmax(axis=1)).all()
    assert (warm.max(axis=1) < p.max(axis=1)).all()  # flatter: the top class loses mass
    zero = soften(np.zeros((2, 7)), 2.0)
    assert not zero.any()
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0.0)


def test_teacher_targets_match_images_by_id_in_any_order(fer_folder, tmp_path):
    train = load_dataset(fer_folder).split("train")
    probs = _probs(len(train), seed=1)
    cache = tmp_path / "teacher.csv"
    save_proba(cache, train, probs)
    pick = np.array([40, 3, 17, 66, 0])
    got = teacher_targets(cache, train.subset(pick))
    assert np.allclose(got, probs[pick], atol=1e-5)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left nothing behind


def test_a_teacher_lacking_images_or_unreadable_is_a_data_error(fer_folder, tmp_path):
    ds = load_dataset(fer_folder)
    train = ds.split("train")
    partial = tmp_path / "partial.csv"
    save_proba(partial, train.subset(np.arange(10)), _probs(10))
    with pytest.raises(DataError, match="no probabilities for 60 of the 70"):
        teacher_targets(partial, train)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff not a csv")
    with pytest.raises(DataError):
        teacher_targets(garbage, train)
    with pytest.raises(DataError):
        teacher_targets(tmp_path / "missing.csv", train)


def test_the_teacher_takes_its_share_of_the_targets(fer_folder, tmp_path):
    train = load_dataset(fer_folder).split("train")
    probs = _probs(len(train), seed=2)
    cache = tmp_path / "teacher.csv"
    save_proba(cache, train, probs)
    _, plain, *_ = prepare_data(TrainConfig(data=str(fer_folder), subset=0))
    x, taught, w, vx, vy = prepare_data(
        TrainConfig(data=str(fer_folder), teacher=str(cache), teacher_weight=0.6, teacher_temperature=2.0)
    )
    expected = 0.4 * plain + 0.6 * soften(probs, 2.0)
    assert np.allclose(taught, expected, atol=1e-5)
    assert np.allclose(taught.sum(axis=1), 1.0, atol=1e-5)
    off = prepare_data(TrainConfig(data=str(fer_folder), teacher=str(cache), teacher_weight=0.0))[1]
    assert np.array_equal(off, plain)  # weight 0 ignores the file


def test_teacher_options_are_cli_flags():
    from fercore.train.__main__ import parse_args, resolve_config

    assert {"teacher", "teacher_weight", "teacher_temperature"} <= set(options())
    args = parse_args(["--teacher", "t.csv", "--teacher-weight", "0.5", "--teacher-temperature", "2"])
    assert resolve_config(args) == {"teacher": "t.csv", "teacher_weight": 0.5, "teacher_temperature": 2.0}


def test_evaluate_proba_out_writes_a_teacher_cache(fer_folder, tiny_model_dir, tmp_path):
    from fercore.evaluation.evaluate import predict_proba
    from training.evaluate import main

    out = tmp_path / "runs" / "teacher.csv"
    out.parent.mkdir()
    model = tiny_model_dir / "model.tflite"
    rc = main(["--data", str(fer_folder), "--split", "train", "--model", str(model), "--proba-out", str(out), "--json"])
    assert rc == 0
    train = load_dataset(fer_folder).split("train")
    assert np.allclose(teacher_targets(out, train), predict_proba(model, train.images), atol=1e-5)
