"""fercore.models.catalog: the installed tiers, what their manifests say, the models a user can pick."""

from __future__ import annotations

import shutil

import pytest

from fercore.models import catalog
from fercore.models.ensemble import write_manifest


@pytest.fixture
def models_dir(tmp_path, monkeypatch, tiny_model_dir):
    """A models/ folder with the tiny model as the fast tier (no accurate tier yet)."""
    import fercore.models.ensemble as ens

    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "model.tflite", folder / "model.tflite")
    shutil.copy(tiny_model_dir / "model.keras", folder / "model.keras")
    monkeypatch.setenv("FER_MODEL", str(folder / "model.tflite"))
    monkeypatch.setattr(ens, "MODELS_DIR", folder)
    return folder


def _install_accurate(folder, metrics):
    tier = folder / "accurate"
    tier.mkdir()
    for i in (1, 2, 3):
        shutil.copy(folder / "model.tflite", tier / f"member_{i}.tflite")
    write_manifest(tier, [{"file": f"member_{i}.tflite"} for i in (1, 2, 3)], tta=True, name="accurate",
                   metrics=metrics)  # fmt: skip
    return tier


def test_only_the_fast_tier_until_the_accurate_one_is_installed(models_dir):
    assert list(catalog.tiers().values()) == [models_dir / "model.tflite"]
    assert catalog.tier_summary("accurate") is None
    tier = _install_accurate(models_dir, {"split": "PublicTest", "accuracy": 0.725})
    assert list(catalog.tiers().values()) == [models_dir / "model.tflite", tier / "manifest.json"]
    assert catalog.tier_summary("accurate") == {"members": 3, "tta": True, "accuracy": 0.725, "split": "PublicTest"}


def test_a_broken_manifest_is_no_tier_summary(models_dir):
    tier = _install_accurate(models_dir, {})
    assert catalog.tier_summary()["accuracy"] is None  # installed, but no figures recorded
    (tier / "member_2.tflite").unlink()
    assert catalog.tier_summary() is None
    (tier / "manifest.json").write_text("{not json")
    assert catalog.tier_summary() is None


def test_available_models_lists_tiers_then_runs(models_dir, tmp_path):
    run = tmp_path / "runs" / "run-1" / "export"
    run.mkdir(parents=True)
    (run.parent / "config.json").write_text("{}")  # what makes a folder a run
    (tmp_path / "runs" / "not-a-run").mkdir()
    shutil.copy(models_dir / "model.tflite", run / "model.tflite")
    models = catalog.available_models(tmp_path / "runs")
    assert list(models.values()) == [models_dir / "model.tflite", run / "model.tflite"]
    assert catalog.keras_model_for(models_dir / "model.tflite") == models_dir / "model.keras"
    assert catalog.keras_model_for(run / "model.tflite") is None
    assert set(catalog.export_files(models_dir / "model.tflite")) == {"tflite", "keras"}
