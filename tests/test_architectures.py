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
