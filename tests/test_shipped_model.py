"""The model shipped in models/: accuracy on PublicTest, formats agree, size, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SHIPPED_MODEL_DIR, requires_model

pytestmark = requires_model


@pytest.fixture(scope="module")
def public_test(fer_dir):
    from fercore.data.loader import load_dataset

    return load_dataset(fer_dir).split("test")


@pytest.fixture(scope="module")
def tflite_result(public_test):
    from fercore.evaluation.evaluate import evaluate

    return evaluate(None, public_test)  # default model = the shipped one


def test_default_model_is_shipped_tflite():
    from fercore.inference.classify import default_model_path

    assert default_model_path().resolve() == (SHIPPED_MODEL_DIR / "model.tflite").resolve()


def test_public_test_accuracy_no_regression(tflite_result):
    # The product target: >= 68 % top-1 on PublicTest without TTA (the shipped model measures 68.96 %).
    assert tflite_result.to_dict()["accuracy"] >= 0.68


def test_formats_give_same_top1(public_test, tflite_result):
    from fercore.evaluation.evaluate import evaluate

    ref = tflite_result.to_dict()["accuracy"]
    for name in ("model.keras", "model.json"):
        acc = evaluate(SHIPPED_MODEL_DIR / name, public_test).to_dict()["accuracy"]
        assert abs(acc - ref) <= 0.001, name


def test_metrics_json_matches_measurement(tflite_result):
    metrics = json.loads((SHIPPED_MODEL_DIR / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(tflite_result.to_dict()["accuracy"], abs=1e-4)
    assert np.array(metrics["confusion"]).shape == (7, 7)


def test_models_folder_is_lean():
    """Everything under models/ (tiers and members included) stays under 60 MB."""
    total = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 60 * 1024 * 1024
    assert (SHIPPED_MODEL_DIR / "MODEL_CARD.md").exists()


ACCURATE = SHIPPED_MODEL_DIR / "accurate"


@pytest.fixture(scope="module")
def accurate_manifest():
    from fercore.models.ensemble import read_manifest

    if not (ACCURATE / "manifest.json").exists():
        pytest.skip("the accurate tier is not shipped (no models/accurate/manifest.json)")
    return read_manifest(ACCURATE)


def test_accurate_tier_has_three_members_and_tta(accurate_manifest):
    assert len(accurate_manifest["members"]) >= 3 and accurate_manifest["tta"] is True
    assert all((ACCURATE / m["file"]).suffix == ".tflite" for m in accurate_manifest["members"])


def test_accurate_tier_beats_the_fast_one_as_its_manifest_says(accurate_manifest, public_test, tflite_result):
    """``--model accurate`` on all of PublicTest (its ten-view TTA applied once) reproduces the manifest's
    figure, and it is higher than every member's and the fast tier's."""
    from fercore.evaluation.evaluate import evaluate

    measured = evaluate("accurate", public_test).to_dict()
    assert measured["tta"] is True and measured["n"] == len(public_test)
    assert measured["accuracy"] == pytest.approx(accurate_manifest["metrics"]["accuracy"], abs=1e-4)
    assert measured["accuracy"] > tflite_result.to_dict()["accuracy"]
    assert all(measured["accuracy"] > m["accuracy_tta"] for m in accurate_manifest["members"])
