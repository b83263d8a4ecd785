"""fercore.data.locations: data roots, the path check of the dashboard's path fields, dataset discovery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fercore.data import locations
from fercore.data.locations import (
    check_dataset_path,
    data_candidates,
    data_roots,
    find_dataset,
    looks_like_dataset,
    photos_dir,
    within_data_roots,
)
from fercore.types import DataError


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No FER_DATA / FER_DATA_ROOTS; the shared data folder is a fresh folder of this test."""
    for var in ("FER_DATA", "FER_DATA_ROOTS"):
        monkeypatch.delenv(var, raising=False)
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    monkeypatch.setenv("FER_SHARED_DATA", str(shared))
    return shared


def make_kaggle(root: Path) -> Path:
    for split in ("train", "test"):
        (root / split / "happy").mkdir(parents=True)
        (root / split / "happy" / "0.png").write_bytes(b"png")
    return root


def test_roots_by_setting(env, tmp_path, monkeypatch):
    names = {r.name: r.path for r in data_roots()}
    assert names["the project's data/ folder"] == (locations.PROJECT_ROOT / "data").resolve()
    assert names["the shared data folder (FER_SHARED_DATA)"] == env.resolve()
    assert "FER_DATA" not in names and "FER_DATA_ROOTS" not in names
    csv = tmp_path / "elsewhere" / "fer2013.csv"
    csv.parent.mkdir()
    csv.write_text("emotion,pixels\n")
    monkeypatch.setenv("FER_DATA", str(csv))
    extra1, extra2 = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("FER_DATA_ROOTS", f"{extra1}{os.pathsep}{os.pathsep} {extra2} ")
    roots = data_roots()
    assert [r.path for r in roots if r.name == "FER_DATA"] == [csv.parent.resolve()]  # a file: its folder
    assert [r.path for r in roots if r.name == "FER_DATA_ROOTS"] == [extra1.resolve(), extra2.resolve()]


def test_default_shared_folder_is_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("FER_SHARED_DATA", raising=False)
    assert locations.shared_data_dir() == locations.PROJECT_ROOT.parent / "shared" / "data"


def test_inside_a_root_is_accepted_and_resolved(env, tmp_path, monkeypatch):
    fer = make_kaggle(env / "fer2013")
    assert check_dataset_path(str(fer)) == fer.resolve()
    assert check_dataset_path(f"  {env}/fer2013/train/../  ") == fer.resolve()
    monkeypatch.chdir(env)
    assert check_dataset_path("fer2013") == fer.resolve()  # relative to the working folder


def test_outside_the_roots_same_message_whether_it_exists_or_not(env, tmp_path):
    outside = make_kaggle(tmp_path / "private" / "fer")
    messages = set()
    for path in (
        outside,
        tmp_path / "private" / "missing",
        Path("/etc/passwd"),
        Path("/no/such/thing"),
        env / ".." / ".." / "private" / "fer",
    ):
        with pytest.raises(DataError) as err:
            check_dataset_path(str(path))
        messages.add(str(err.value).replace(str(path), "<path>"))
    assert len(messages) == 1, messages
    text = messages.pop()
    assert "not inside a data folder this app may read" in text and "FER_DATA_ROOTS" in text
    assert str(env) not in text  # roots are named, not listed by their paths


def test_symlink_out_of_a_root_is_refused(env, tmp_path):
    outside = make_kaggle(tmp_path / "private" / "fer")
    (env / "link").symlink_to(outside)
    with pytest.raises(DataError, match="not inside a data folder"):
        check_dataset_path(str(env / "link"))
    assert not within_data_roots(env / "link" / "train")
    (env / "inner").symlink_to(make_kaggle(env / "real"))  # a link that stays inside is fine
    assert check_dataset_path(str(env / "inner")) == (env / "real").resolve()


def test_allow_list_and_fer_data_make_roots(env, tmp_path, monkeypatch):
    extra = make_kaggle(tmp_path / "mine" / "fer")
    monkeypatch.setenv("FER_DATA_ROOTS", str(tmp_path / "mine"))
    assert check_dataset_path(str(extra)) == extra.resolve()
    monkeypatch.delenv("FER_DATA_ROOTS")
    monkeypatch.setenv("FER_DATA", str(extra))
    assert check_dataset_path(str(extra / "train")) == (extra / "train").resolve()


def test_inside_a_root_problems_are_named(env):
    with pytest.raises(DataError, match="no dataset path given"):
        check_dataset_path("   ")
    with pytest.raises(DataError, match="no such file or folder"):
        check_dataset_path(str(env / "missing"))
    (env / "junk").mkdir()
    (env / "junk" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="not a dataset"):
        check_dataset_path(str(env / "junk"))
    with pytest.raises(DataError, match="not inside a data folder"):
        check_dataset_path("bad\x00path")


def test_looks_like_dataset(env, tmp_path):
    csv = env / "x.csv.gz"
    csv.write_bytes(b"")
    assert looks_like_dataset(csv) and looks_like_dataset(make_kaggle(env / "k"))
    assert looks_like_dataset(env / "k" / "train")
    (env / "holiday" / "beach").mkdir(parents=True)
    assert not looks_like_dataset(env / "holiday") and not looks_like_dataset(env / "nope")
    (env / "notes.txt").write_text("x")
    assert not looks_like_dataset(env / "notes.txt")


def test_find_dataset_order(env, tmp_path, monkeypatch):
    assert data_candidates()[-1] == env / "fer2013"
    assert find_dataset() in (None, *[c for c in data_candidates() if c.exists()])
    shared_fer = make_kaggle(env / "fer2013")
    if not any(c.exists() for c in data_candidates()[:-1]):  # the project's data/ holds nothing
        assert find_dataset() == shared_fer
    monkeypatch.setenv("FER_DATA", str(tmp_path / "wrong"))
    assert find_dataset() == tmp_path / "wrong"  # an explicit setting wins, even when wrong
    assert data_candidates()[0] == tmp_path / "wrong"


def test_photos_dir(env):
    assert photos_dir() is None
    (env / "photos").mkdir()
    assert photos_dir() == env / "photos"


def test_shown_paths_are_relative_inside_the_project_and_unchanged_outside(tmp_path):
    from fercore import paths

    assert paths.shown(paths.MODELS_DIR / "model.tflite") == "models/model.tflite"
    assert paths.shown(paths.PROJECT_ROOT) == "."
    outside = tmp_path / "elsewhere" / "m.keras"
    assert paths.shown(outside) == str(outside)
    # a file that leaves the machine keeps only the last parts of an outside path
    assert paths.shown(outside, tail=2) == "elsewhere/m.keras"
    assert paths.shown(paths.MODELS_DIR / "accurate" / "a.keras", tail=2) == "models/accurate/a.keras"
