"""TrainConfig.relabel / --relabel: a relabel file from ``python -m training.audit`` changes the training
targets of its rows (and nothing else); a bad file stops the CLI with one line before TensorFlow loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fercore.data.loader import DataError, load_dataset
from fercore.labels import EMOTIONS
from fercore.paths import PROJECT_ROOT as ROOT
from fercore.train import TrainConfig, options, prepare_data


def _train_rows(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of the train split, in the order prepare_data returns it."""
    train = load_dataset(data).split("train")
    return train.rows(), np.asarray(train.labels)


def _write(path: Path, lines: list[tuple[int, str, str]]) -> Path:
    path.write_text("row,old_label,new_label\n" + "".join(f"{r},{o},{n}\n" for r, o, n in lines))
    return path


def test_relabel_is_a_config_option_and_a_cli_flag():
    from fercore.train.__main__ import parse_args, resolve_config

    assert TrainConfig().relabel == "" and options()["relabel"].type is str
    assert resolve_config(parse_args(["--relabel", "r.csv"])) == {"relabel": "r.csv"}
    assert TrainConfig.from_dict({"model": "coursera"}).relabel == ""  # configs from before


def test_relabelled_rows_change_their_training_targets(fer_folder, tmp_path):
    rows, labels = _train_rows(fer_folder)
    picks = [3, 10, 41]  # train positions; relabel each to the next class
    changes = [(int(rows[i]), EMOTIONS[labels[i]], EMOTIONS[(labels[i] + 1) % 7]) for i in picks]
    relabel = _write(tmp_path / "relabel.csv", changes)

    base = TrainConfig(data=str(fer_folder))
    x0, y0, w0, vx0, vy0 = prepare_data(base)
    x1, y1, w1, vx1, vy1 = prepare_data(TrainConfig(data=str(fer_folder), relabel=str(relabel)))

    changed = np.flatnonzero((y0 != y1).any(axis=1))
    assert changed.tolist() == picks
    assert y1[picks].argmax(axis=1).tolist() == [(labels[i] + 1) % 7 for i in picks]
    assert np.array_equal(x0, x1) and np.array_equal(w0, w1)
    assert np.array_equal(vx0, vx1) and np.array_equal(vy0, vy1)  # the validation split is untouched


def test_a_wrong_old_label_is_a_data_error(fer_folder, tmp_path):
    rows, labels = _train_rows(fer_folder)
    wrong = _write(tmp_path / "wrong.csv", [(int(rows[0]), EMOTIONS[(labels[0] + 1) % 7], EMOTIONS[labels[0]])])
    with pytest.raises(DataError, match="not .* as the file says"):
        prepare_data(TrainConfig(data=str(fer_folder), relabel=str(wrong)))


@pytest.mark.parametrize(
    "content, message",
    [
        ("row,old_label,new_label\n99999,angry,happy\n", "rows not in the data set"),
        ("row,label\n1,angry\n", "starts with the header"),
        (None, "cannot read the relabel file"),
    ],
    ids=["unknown-row", "bad-header", "missing"],
)
def test_a_bad_relabel_file_fails_fast_in_the_cli(fer_folder, tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    if content is not None:
        bad.write_text(content)
    script = (
        "import sys\nfrom fercore.train.__main__ import main\n"
        f"rc = main(['--quiet', '--data', {str(fer_folder)!r}, '--relabel', {str(bad)!r}, "
        f"'--run-dir', {str(tmp_path / 'runs' / 'r')!r}])\n"
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')\nsys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "no tensorflow"
