"""fercore.models.ensemble: EnsembleBackend (averaging, TTA, thread safety), tier manifests, load_tier,
and training.ship --tier accurate with tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from fercore.models.ensemble import (
    MANIFEST,
    TTA_VIEWS,
    EnsembleBackend,
    combine,
    load_tier,
    read_manifest,
    resolve_tier,
    tta_views,
    write_manifest,
)
from tests.conftest import ROOT


class ConstBackend:
    """Returns the same probabilities for every face and records each batch it was given."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, np.float32)
        self.batches: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x)
        return np.tile(self.probs, (len(x), 1))


class BrightnessBackend:
    """Probability of class 0 = mean brightness of the face's left half / 255 (mirroring matters)."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        left = x[:, :, :24, 0].mean(axis=(1, 2)) / 255.0
        out = np.zeros((len(x), 7), np.float32)
        out[:, 0], out[:, 1] = left, 1 - left
        return out


def faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


def test_members_are_averaged():
    a = ConstBackend([1, 0, 0, 0, 0, 0, 0])
    b = ConstBackend([0, 0, 0, 1, 0, 0, 0])
    out = EnsembleBackend([a, b]).predict(faces(3))
    np.testing.assert_allclose(out, np.tile([0.5, 0, 0, 0.5, 0, 0, 0], (3, 1)))
    assert out.dtype == np.float32 and [len(x) for x in a.batches] == [3]


def test_tta_sends_all_ten_views_in_one_batch_and_averages_them():
    x = np.zeros((2, 48, 48, 1), np.float32)
    x[:, :, :24] = 255  # left half white: a mirrored view sees it on the right
    member = ConstBackend(np.full(7, 1 / 7))
    EnsembleBackend([member], tta=True).predict(x)
    assert [b.shape for b in member.batches] == [(20, 48, 48, 1)]
    plain = EnsembleBackend([BrightnessBackend()]).predict(x)
    tta = EnsembleBackend([BrightnessBackend()], tta=True).predict(x)
    assert plain[0, 0] == pytest.approx(1.0)
    assert tta[0, 0] == pytest.approx(0.5, abs=0.05)  # half the views are mirrored
    expected = np.mean([BrightnessBackend().predict(v[..., None])[:, 0] for v in tta_views(x[..., 0])], axis=0)
    np.testing.assert_allclose(tta[:, 0], expected, atol=1e-6)


def test_a_single_model_with_tta_in_evaluation_is_a_one_member_tta_tier():
    """evaluate's TTA average and the tier's are the same code: same numbers for the same faces."""
    from fercore.evaluation.evaluate import predict_proba

    x = np.random.default_rng(3).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    tier = EnsembleBackend([BrightnessBackend()], tta=True).predict(x[..., None].astype(np.float32))
    np.testing.assert_allclose(predict_proba(BrightnessBackend(), x, tta=True, batch_size=20), tier, atol=1e-7)


def test_combine_is_the_mean_of_the_members():
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    np.testing.assert_allclose(combine([a, b]), [[0.4, 0.6]])
    assert combine([a]).dtype == np.float32
    with pytest.raises(ValueError, match="at least one"):
        combine([])


def test_empty_and_bad_input():
    ens = EnsembleBackend([ConstBackend(np.full(7, 1 / 7))], tta=True)
    assert ens.predict(np.zeros((0, 48, 48, 1), np.float32)).shape == (0, 7)
    with pytest.raises(ValueError, match=r"\(n, 48, 48, 1\)"):
        ens.predict(np.zeros((2, 48, 48), np.float32))
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleBackend([])


def test_tta_views():
    f = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    views = tta_views(f)
    assert len(views) == 10 == TTA_VIEWS and all(v.shape == f.shape and v.dtype == np.float32 for v in views)
    # uint8 and float32 faces give the same views (nothing rounded): a model with TTA sees what a tier sees
    for a, b in zip(views, tta_views(f.astype(np.float32)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(views[0], np.round(views[0]))  # the resized crops keep their fractions
    np.testing.assert_array_equal(views[1], views[0][:, :, ::-1])
    np.testing.assert_array_equal(tta_views(f, crop=48)[0], f)
    with pytest.raises(ValueError, match="crop"):
        tta_views(f, crop=0)


@pytest.fixture
def tiny_tier(tmp_path, tiny_model_dir):
    """A two-member tier folder of the tiny model (tflite) with a manifest."""
    import shutil

    folder = tmp_path / "accurate"
    folder.mkdir()
    for i in (1, 2):
        shutil.copy(tiny_model_dir / "model.tflite", folder / f"member_{i}.tflite")
    write_manifest(
        folder,
        [{"file": "member_1.tflite", "accuracy": 0.1}, {"file": "member_2.tflite"}],
        tta=True,
        name="accurate",
        metrics={"accuracy": 0.2},
    )
    return folder


def test_load_tier_from_folder_manifest_and_file(tiny_tier, tiny_model_dir):
    from fercore.inference.classify import TFLiteBackend, load_backend

    x = faces(4)
    single = load_backend(tiny_model_dir / "model.tflite")
    expected = EnsembleBackend([single], tta=True).predict(x)
    for ref in (tiny_tier, tiny_tier / MANIFEST, str(tiny_tier)):
        tier = load_tier(ref)
        assert isinstance(tier, EnsembleBackend) and tier.tta and len(tier.members) == 2
        np.testing.assert_allclose(tier.predict(x), expected, atol=1e-6)
    assert isinstance(load_tier(tiny_model_dir / "model.tflite"), TFLiteBackend)
    assert resolve_tier(tiny_tier) == tiny_tier / MANIFEST


def test_named_tiers(monkeypatch, tmp_path, tiny_tier, tiny_model_dir):
    import fercore.models.ensemble as ens

    monkeypatch.setenv("FER_MODEL", str(tiny_model_dir / "model.tflite"))
    assert resolve_tier("fast") == resolve_tier(None) == tiny_model_dir / "model.tflite"
    monkeypatch.setattr(ens, "MODELS_DIR", tmp_path)
    assert resolve_tier("accurate") == tiny_tier / MANIFEST
    monkeypatch.setattr(ens, "MODELS_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="'accurate' tier is not installed"):
        load_tier("accurate")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_tier(tmp_path / "missing.tflite")


def test_ensemble_is_thread_safe_with_thread_safe_members(tiny_tier):
    tier = load_tier(tiny_tier)
    inputs = [faces(n, seed=n) for n in (1, 2, 3, 4, 5, 6)]
    expected = [tier.predict(x) for x in inputs]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(5):
                np.testing.assert_allclose(tier.predict(inputs[k]), expected[k], atol=1e-6)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"members": []}', "non-empty 'members'"),
        ('{"members": [{"path": "x"}]}', "'file' entry"),
        ('{"members": [{"file": "absent.tflite"}]}', "tier member not found"),
        ("{not json", "unreadable tier manifest"),
    ],
)
def test_bad_manifest(tmp_path, content, message):
    (tmp_path / MANIFEST).write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_manifest(tmp_path)


def _small_data(tmp_path, fer_dir):
    """2 training and 6 test faces per class of the real set."""
    import shutil

    data = tmp_path / "data"
    for split, n in (("train", 2), ("test", 6)):
        for cls in sorted((fer_dir / split).iterdir()):
            (data / split / cls.name).mkdir(parents=True)
            for f in sorted(cls.glob("*.png"))[:n]:
                shutil.copy(f, data / split / cls.name / f.name)
    return data


def test_ship_accurate_tier_then_evaluate_it(tmp_path, fer_dir, tiny_model_dir):
    """training.ship --tier accurate writes float16 twins + manifest; training.evaluate --model
    <tier> applies the tier's TTA and reports the ensemble."""
    data = _small_data(tmp_path, fer_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "accurate"
    (out).mkdir()
    (out / "calibration.json").write_text('{"temperature": 3.0}')  # stale: removed by the re-ship
    members = [str(tiny_model_dir / "model.keras"), str(tiny_model_dir / "model.json")]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.ship",
            "--tier",
            "accurate",
            "--members",
            *members,
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = read_manifest(out)
    assert manifest["tta"] is True and manifest["name"] == "accurate"
    assert [m["file"] for m in manifest["members"]] == ["member_1.tflite", "member_2.tflite"]
    assert all(m["max_abs_diff"] < 1e-2 and 0 <= m["accuracy"] <= 1 for m in manifest["members"])
    assert all(m["weights"] == "float16" for m in manifest["members"])
    full = (tiny_model_dir / "model.tflite").stat().st_size
    assert (out / "member_1.tflite").stat().st_size < 0.7 * full  # float16 weights: about half the file
    assert manifest["metrics"]["n"] == 42 and not (out / "calibration.json").exists()
    assert str(tmp_path) not in (out / MANIFEST).read_text()  # no machine-specific paths
    res = subprocess.run(
        [sys.executable, "-m", "training.evaluate", "--data", str(data), "--model", str(out), "--tta", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout)
    assert report["tta"] is True and report["n"] == 42
    assert report["accuracy"] == pytest.approx(manifest["metrics"]["accuracy"])  # TTA applied once, not twice
    # the manifest scores the mean of the members' view-averaged outputs: the tier's own output
    assert report["confusion"] == manifest["metrics"]["confusion"]
    assert report["ece_uncalibrated"] == pytest.approx(manifest["metrics"]["ece"], abs=1e-6)


def test_reship_a_tier_with_one_of_its_own_tflite_members(tmp_path, fer_dir, tiny_model_dir):
    """A .tflite member is shipped as it is, even from the folder being re-shipped, and keeps the
    source its old manifest recorded."""
    from training.ship import ship_tier

    data, out = _small_data(tmp_path, fer_dir), tmp_path / "accurate"
    keras_file, json_file = str(tiny_model_dir / "model.keras"), str(tiny_model_dir / "model.json")
    assert ship_tier("accurate", [keras_file, json_file], str(data), out) == 0
    old = read_manifest(out)["members"][1]
    old_bytes = (out / "member_2.tflite").read_bytes()
    assert ship_tier("accurate", [str(out / "member_2.tflite"), keras_file], str(data), out) == 0
    first, second = read_manifest(out)["members"]
    assert (out / "member_1.tflite").read_bytes() == old_bytes
    assert first["source"] == old["source"] != str(out / "member_2.tflite")
    assert first["weights"] == "float16" and first["params"] is None and first["max_abs_diff"] is None
    assert first["accuracy"] == old["accuracy"] and first["accuracy_tta"] == old["accuracy_tta"]
    assert second["params"] > 0 and second["max_abs_diff"] < 1e-2
