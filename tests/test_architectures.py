"""fercore.models.architectures' registry: the one place model names live."""

from __future__ import annotations

import pytest

from fercore.models import architectures
from fercore.models.architectures import build_model, get_model_builder, list_models, register_model


def test_registered_names_and_builders():
    assert list_models() == ("coursera", "fernet")
    assert get_model_builder("fernet") is architectures.build_fernet


def test_unknown_and_taken_names_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of coursera, fernet"):
        build_model("vgg")
    with pytest.raises(ValueError, match="already registered"):
        register_model("fernet")(lambda: None)


def test_a_registered_builder_is_a_choice_of_the_config_cli_and_form(monkeypatch):
    from fercore.train.config import TrainConfig, options

    monkeypatch.setattr(architectures, "_REGISTRY", dict(architectures._REGISTRY))
    with pytest.raises(ValueError, match="unknown model 'tiny'"):
        TrainConfig(model="tiny")
    register_model("tiny")(lambda **_: "built")
    assert build_model("tiny") == "built" and TrainConfig(model="tiny").model == "tiny"
    assert options()["model"].choices == ("coursera", "fernet", "tiny")


def test_saved_models_are_compressed_carry_their_config_and_load_back_the_same(tmp_path):
    import zipfile

    import numpy as np

    from fercore.models.architectures import build_model, load_keras_model, read_model_config, save_model

    model = build_model("fernet", widths=(8, 16), depths=(1, 1), stem_width=8, dropout=0.0)
    path = save_model(model, tmp_path / "m.keras", {"model": "fernet", "epochs": 3})
    with zipfile.ZipFile(path) as zf:
        entries = {e.filename: e for e in zf.infolist()}
    assert {"config.json", "model.weights.h5", "fercore.json"} <= set(entries)
    assert all(e.compress_type == zipfile.ZIP_DEFLATED for e in entries.values())
    assert entries["config.json"].compress_size < entries["config.json"].file_size / 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no staging file left behind
    assert read_model_config(path) == {"model": "fernet", "epochs": 3}
    x = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(load_keras_model(path).predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_a_fernet_with_an_open_side_serves_at_48_in_float32():
    """A model built for crops (input_size None) takes 40 px in training; its serving twin is fixed
    at 48×48 and float32 and predicts as the original does on whole faces."""
    import numpy as np

    from fercore.models.architectures import build_model, to_float32
    from tests.conftest import TINY

    model = build_model("fernet", **TINY, input_size=None)
    assert model.predict(np.zeros((2, 40, 40, 1), "float32"), verbose=0).shape == (2, 7)
    twin = to_float32(model)
    assert twin is not model and tuple(twin.inputs[0].shape)[1:] == (48, 48, 1)
    faces = np.random.default_rng(3).uniform(0, 255, (4, 48, 48, 1)).astype("float32")
    np.testing.assert_allclose(twin.predict(faces, verbose=0), model.predict(faces, verbose=0), atol=1e-6)
    fixed = build_model("fernet", **TINY)
    assert to_float32(fixed) is fixed


def test_fernet_can_pool_its_stem_before_batch_norm_and_drop_the_projections_batch_norm():
    """``stem_pool_first`` moves the stem's max-pool before its BatchNorm and ReLU (the stem's BN then
    sees 24×24, and stage 0 has no pool of its own); ``proj_bn=False`` removes the shortcuts'
    BatchNorms. The net keeps its input, output, sides and convolutions (same FLOPs)."""
    import numpy as np

    from fercore.models.architectures import build_model, count_flops

    kw = {"widths": (8, 16, 16), "depths": (1, 1, 1), "stem_width": 4, "dropout": 0.0}  # projections at s0, s1
    plain = build_model("fernet", **kw)
    lean = build_model("fernet", **kw, stem_pool_first=True, proj_bn=False)
    names = [layer.name for layer in lean.layers]
    assert names.index("stem_conv") < names.index("stem_pool") < names.index("stem_bn") < names.index("stem_relu")
    assert lean.get_layer("stem_bn").output.shape[1:3] == (24, 24)
    assert plain.get_layer("stem_bn").output.shape[1:3] == (48, 48)
    assert "s0_pool" not in names and "s1_pool" in names
    assert not [n for n in names if n.endswith("_proj_bn")] and "s1_proj" in names
    assert [n for n in (layer.name for layer in plain.layers) if n.endswith("_proj_bn")] == ["s0_proj_bn", "s1_proj_bn"]
    assert count_flops(lean) == count_flops(plain)
    assert lean.count_params() < plain.count_params()
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 1)).astype("float32")
    p = lean.predict(x, verbose=0)
    assert p.shape == (3, 7) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
