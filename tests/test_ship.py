"""training.ship (fast tier): it ships the checkpoint the run exported — the last epoch unless the run's
config asks for the best on its validation split (PublicTest by default). The accurate tier is tested
in test_ensemble.py."""

from __future__ import annotations

import json

import pytest

from fercore import runs
from training.ship import main


def _run(tmp_path, config: dict | None, files=(runs.LAST, runs.BEST, runs.SWA)):
    run = tmp_path / "run"
    for name in files:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"checkpoint")
    run.mkdir(exist_ok=True)
    if config is not None:
        (run / runs.CONFIG).write_text(json.dumps(config))
    return run


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"export_checkpoint": "last"}, "last"),
        ({"model": "fernet"}, "last"),  # a config from before export_checkpoint: the default
        (None, "last"),  # no config.json at all
        ({"export_checkpoint": "best"}, "best"),
        ({"swa_epochs": 5, "export_checkpoint": "best"}, "swa"),  # an SWA run exports its mean
        ({"swa_epochs": 0}, "last"),
    ],
)
def test_ships_the_checkpoint_the_run_exports(tmp_path, config, expected):
    run = _run(tmp_path, config)
    source, which = runs.exported_checkpoint(run)
    assert which == expected and source == run / {"best": runs.BEST, "swa": runs.SWA, "last": runs.LAST}[expected]


def test_best_falls_back_to_last_like_the_export(tmp_path):
    run = _run(tmp_path, {"export_checkpoint": "best"}, files=(runs.LAST,))
    assert runs.exported_checkpoint(run) == (run / runs.LAST, "last")


def test_a_run_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    run = _run(tmp_path, {"export_checkpoint": "last"}, files=())
    assert main(["--run", str(run), "--data", str(tmp_path / "nodata"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoints/last.keras" in err[0]
    assert not (tmp_path / "out").exists()
