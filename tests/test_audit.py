"""fercore.data.audit and python -m training.audit: generated faces with deliberately flipped labels that a fixed
fake model and a generated FER+ vote file expose; relabel files; the CLI's JSON; a slice of the real data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fercore.data.audit import (
    apply_relabel,
    audit,
    confident_classes,
    confident_joint,
    ferplus_majority,
    load_proba,
    read_relabel,
    save_proba,
    write_relabel,
)
from fercore.data.dataset import Dataset, LoadReport
from fercore.inference.preprocess import to_model_input
from fercore.labels import EMOTIONS
from fercore.types import DataError
from tests.conftest import requires_model, synthetic_faces
from training.audit import main

N = 140  # 20 faces per class
FLIPPED = [3, 17, 40, 77, 101]  # labels moved two classes on
FERPLUS_ONLY = 50  # FER+ disagrees, the model agrees with the label
TIE, NO_VOTES = 5, 6  # no clear FER+ majority
FLIPPED_TIE = 17  # flipped, but FER+ is split: only the model finds it
FIRST_ROW = 1000


class BarModel:
    """A fixed fake model: reads the class from the bright bar synthetic_faces draws, 0.9 sure."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        bands = np.stack([x[:, 4 + c * 6 : 8 + c * 6, 8:40, 0].mean(axis=(1, 2)) for c in range(7)], axis=1)
        out = np.full((len(x), 7), 0.1 / 6, np.float32)
        out[np.arange(len(x)), bands.argmax(axis=1)] = 0.9
        return out


def _truth_and_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, truth = synthetic_faces(N, seed=3)
    labels = truth.copy()
    labels[FLIPPED] = (truth[FLIPPED] + 2) % 7
    return images, truth.astype(np.int64), labels.astype(np.int64)


def _dataset() -> Dataset:
    images, _, labels = _truth_and_labels()
    ids = np.array([f"train/{EMOTIONS[c]}/{FIRST_ROW + i:05d}.png" for i, c in enumerate(labels)])
    return Dataset(images, labels, np.array(["train"] * N), ids, LoadReport("generated", "memory"))


def _votes() -> np.ndarray:
    """(N, 7) FER+ votes in FER2013 order: 8 for the true class, 2 for its neighbour, with exceptions."""
    _, truth, _ = _truth_and_labels()
    votes = np.zeros((N, 7), np.float32)
    votes[np.arange(N), truth] = 8
    votes[np.arange(N), (truth + 1) % 7] = 2
    for i in (TIE, FLIPPED_TIE):
        votes[i, truth[i]] = votes[i, (truth[i] + 1) % 7] = 5
    votes[NO_VOTES] = 0
    votes[FERPLUS_ONLY] = 0
    votes[FERPLUS_ONLY, (truth[FERPLUS_ONLY] + 3) % 7] = 7
    votes[FERPLUS_ONLY, truth[FERPLUS_ONLY]] = 3
    return votes


def _write_votes(path: Path, votes: np.ndarray) -> None:
    """A vote file in the FER+ layout (column order of fer2013new.csv plus the row), face NO_VOTES absent."""
    names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
    ours = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "Usage", "Image name", *names, "contempt", "unknown", "NF"])
        for i, v in enumerate(votes):
            if i != NO_VOTES:
                w.writerow(
                    [FIRST_ROW + i, "Training", f"fer{i:07d}.png", *(int(v[EMOTIONS.index(e)]) for e in ours), 0, 1, 0]
                )


def _proba(ds: Dataset) -> np.ndarray:
    return BarModel().predict(to_model_input(ds.images))


# ---------------------------------------------------------------------------------------------
# The rules


def test_confident_learning_by_hand():
    labels = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array(
        [
            [0.8, 0.1, 0.1],  # t0 = (0.8 + 0.2) / 2 = 0.5
            [0.2, 0.7, 0.1],  # labelled 0, class 1 at t1 = 0.7: suspect 0 → 1
            [0.1, 0.8, 0.1],
            [0.1, 0.6, 0.3],  # nothing reaches its threshold: not counted
            [0.3, 0.3, 0.4],  # t2 = 0.4
            [0.6, 0.0, 0.4],  # its own class reaches t2, class 0 is above t0 and likelier: suspect 2 → 0
        ]
    )
    assert confident_classes(proba, labels).tolist() == [0, 1, 1, -1, 2, 0]
    assert confident_joint(proba, labels).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_ferplus_majority_needs_more_than_half():
    votes = np.array([[6, 4, 0], [5, 5, 0], [4, 3, 3], [0, 0, 0]], np.float32)
    cls, share = ferplus_majority(votes)
    assert cls.tolist() == [0, -1, -1, -1]
    assert share[0] == pytest.approx(0.6)
    assert ferplus_majority(votes, min_share=0.0)[0].tolist() == [0, -1, 0, -1]  # plurality, ties still out


def test_model_rule_finds_exactly_the_flipped_labels():
    ds = _dataset()
    result = audit(ds, proba=_proba(ds))
    assert sorted(s.index for s in result.suspects) == FLIPPED
    _, truth, _ = _truth_and_labels()
    for s in result.suspects:
        assert (s.reason, s.suggested, s.confidence) == ("model", EMOTIONS[truth[s.index]], pytest.approx(0.9))
        assert s.row == FIRST_ROW + s.index and s.file.endswith(f"{s.row:05d}.png")
    assert result.rules == ["model"] and result.thresholds is not None


def test_both_rules_merge_and_count_the_undecided():
    ds = _dataset()
    result = audit(ds, proba=_proba(ds), votes=_votes())
    reasons = {s.index: s.reason for s in result.suspects}
    expected = {i: "ferplus+model" for i in FLIPPED} | {FLIPPED_TIE: "model", FERPLUS_ONLY: "ferplus"}
    assert reasons == expected
    assert result.excluded_no_majority == 3 and result.ferplus_no_votes == 1  # TIE, FLIPPED_TIE, NO_VOTES
    assert result.by_rule() == {"ferplus": 5, "model": 5, "both": 4}
    assert sum(result.by_pair().values()) == len(result.suspects)
    assert result.suspects[0].reason == "ferplus+model"  # most evidence first
    ferplus_only = next(s for s in result.suspects if s.index == FERPLUS_ONLY)
    assert (ferplus_only.model, ferplus_only.confidence) == (None, pytest.approx(0.7))
    # min_confidence drops weak accusations before merging: FER+ at 0.7 goes, the model's 0.9 stays
    strict = audit(ds, proba=_proba(ds), votes=_votes(), min_confidence=0.85)
    assert sorted(s.index for s in strict.suspects) == FLIPPED


def test_audit_rejects_bad_arguments():
    ds = _dataset()
    with pytest.raises(ValueError, match="needs FER"):
        audit(ds)
    with pytest.raises(ValueError, match=r"proba must have shape \(140, 7\)"):
        audit(ds, proba=np.zeros((3, 7)))
    with pytest.raises(ValueError, match="min_share"):
        audit(ds, votes=_votes(), min_share=1.5)


def test_load_proba_npy_and_csv(tmp_path):
    ds = _dataset()
    proba = _proba(ds)
    np.save(tmp_path / "p.npy", proba)
    assert np.array_equal(load_proba(tmp_path / "p.npy", ds), proba)
    order = np.random.default_rng(0).permutation(N)  # a CSV may list faces in any order
    with open(tmp_path / "p.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", *EMOTIONS])
        for i in order:
            w.writerow([FIRST_ROW + i, *proba[i]])
    assert np.allclose(load_proba(tmp_path / "p.csv", ds), proba)
    with pytest.raises(DataError, match=r"expected shape \(140, 7\)"):
        np.save(tmp_path / "short.npy", proba[:5])
        load_proba(tmp_path / "short.npy", ds)
    (tmp_path / "few.csv").write_text("row," + ",".join(EMOTIONS) + "\n1000,1,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match="no probabilities for 139 of the 140 faces"):
        load_proba(tmp_path / "few.csv", ds)
    (tmp_path / "nan.csv").write_text("row," + ",".join(EMOTIONS) + "\n1000,x,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match="not numbers"):
        load_proba(tmp_path / "nan.csv", ds)


def test_save_proba_round_trip_by_row_and_by_file(tmp_path):
    ds = _dataset()
    proba = _proba(ds)
    save_proba(tmp_path / "p.csv", ds, proba)
    assert np.allclose(load_proba(tmp_path / "p.csv", ds), proba)
    ds.ids[:] = [f"img_{i}.png" for i in range(N)]  # no rows: matched by file, row left empty
    save_proba(tmp_path / "f.csv", ds, proba)
    assert (tmp_path / "f.csv").read_text().splitlines()[1].startswith("img_0.png,,")
    assert np.allclose(load_proba(tmp_path / "f.csv", ds.subset(np.arange(N)[::-1])), proba[::-1])


# ---------------------------------------------------------------------------------------------
# Relabel files


def test_relabel_round_trip(tmp_path):
    ds = _dataset()
    before = ds.labels.copy()
    result = audit(ds, proba=_proba(ds))
    assert write_relabel(result.suspects, tmp_path / "r.csv") == len(FLIPPED)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "row,old_label,new_label" and len(lines) == 1 + len(FLIPPED)
    fixed = apply_relabel(ds, tmp_path / "r.csv")
    assert np.array_equal(fixed.labels, _truth_and_labels()[1])
    assert np.array_equal(ds.labels, before)  # the input is untouched
    # indices, aliases, blank lines and a spreadsheet's BOM are fine
    row = FIRST_ROW + FLIPPED[0]
    old = int(ds.labels[FLIPPED[0]])
    (tmp_path / "i.csv").write_text(f"\ufeffRow,Old_Label,New_Label\n\n{row},{old},Happiness\n", encoding="utf-8")
    assert read_relabel(tmp_path / "i.csv") == {row: (old, 3)}
    assert apply_relabel(ds, tmp_path / "i.csv").labels[FLIPPED[0]] == 3


def test_write_relabel_needs_rows(tmp_path):
    ds = _dataset()
    ds.ids[:] = [f"img_{i}.png" for i in range(N)]
    with pytest.raises(DataError, match="5 suspects have no FER2013 row"):
        write_relabel(audit(ds, proba=_proba(ds)).suspects, tmp_path / "r.csv")


HEADER = "row,old_label,new_label\n"
ROW, OLD = FIRST_ROW + FLIPPED[0], EMOTIONS[_truth_and_labels()[2][FLIPPED[0]]]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "starts with the header row,old_label,new_label"),
        ("row,label\n1000,happy\n", "starts with the header"),
        (HEADER + "abc,angry,sad\n", "line 2: row must be a non-negative integer"),
        (HEADER + f"{ROW},{OLD}\n", "line 2: expected 3 fields, got 2"),
        (HEADER + f"{ROW},{OLD},grumpy\n", "line 2: labels must be emotion names or indices 0–6"),
        (HEADER + f"{ROW},{OLD},9\n", "labels must be emotion names or indices"),
        (HEADER + f"{ROW},{OLD},sad\n{ROW},{OLD},happy\n", f"line 3: row {ROW} appears twice"),
        (HEADER + f"{ROW},{OLD},sad\n99999,sad,happy\n", "rows not in the data set: 1 (first: 99999)"),
        (HEADER + f"{ROW},neutral,sad\n", f"row {ROW} is labelled {OLD} in the data set, not neutral"),
    ],
)
def test_bad_relabel_files(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)) as err:
        apply_relabel(_dataset(), tmp_path / "bad.csv")
    assert "\n" not in str(err.value)


def test_unreadable_relabel_file(tmp_path):
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="cannot read the relabel file"):
        apply_relabel(_dataset(), tmp_path / "bin.csv")
    with pytest.raises(DataError, match="cannot read"):
        apply_relabel(_dataset(), tmp_path / "missing.csv")


# ---------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def generated_folder(tmp_path) -> Path:
    """train/<class>/NNNNN.png of the generated faces (flipped labels included), FER+ votes and a
    probability CSV written by the fake model."""
    import cv2

    ds = _dataset()
    root = tmp_path / "fer"
    for img, ident in zip(ds.images, ds.ids, strict=True):
        (root / Path(ident)).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / ident), img)
    for c in range(7):  # a test split, so the folder reads as the Kaggle layout
        (root / "test" / EMOTIONS[c]).mkdir(parents=True)
        cv2.imwrite(str(root / "test" / EMOTIONS[c] / f"{c:05d}.png"), ds.images[c])
    _write_votes(root / "ferplus_votes.csv", _votes())
    proba = _proba(ds)
    with open(tmp_path / "proba.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", *EMOTIONS])
        w.writerows([FIRST_ROW + i, *p] for i, p in enumerate(proba))
    return root


def test_cli_json(generated_folder, tmp_path, capsys):
    argv = ["--data", str(generated_folder), "--proba", str(tmp_path / "proba.csv"), "--json"]
    assert main([*argv, "--relabel-out", str(tmp_path / "r.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"n", "suspects", "by_pair", "excluded_no_majority"} <= set(out)
    assert out["n"] == N and out["excluded_no_majority"] == 3 and out["relabel_rows"] == 6
    assert {s["row"] - FIRST_ROW for s in out["suspects"]} == {*FLIPPED, FERPLUS_ONLY}
    assert {"file", "row", "label", "suggested", "reason", "confidence"} <= set(out["suspects"][0])
    assert sum(out["by_pair"].values()) == 6
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 7
    assert main([*argv, "--rules", "model", "--limit", "70"]) == 0  # a stratified half: about 70 judged
    assert abs(json.loads(capsys.readouterr().out)["n"] - 70) <= 3  # each of 7 classes rounded by at most ½
    assert main(["--data", str(generated_folder), "--rules", "ferplus", "--top", "3"]) == 0  # for people
    text = capsys.readouterr().out
    assert text.startswith("5 suspects among 140 faces") and "no clear FER+ majority" in text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "/nonexistent/fer"], "no such file or folder"),
        (["--min-confidence", "2"], "expected a number between 0 and 1"),
        (["--rules", "ferplus,vibes"], "rules are a comma-separated subset"),
        (["--split", "private"], "no split 'private'"),
        (["--ferplus", "/nonexistent/votes.csv"], "cannot read FER+ votes"),
        (["--proba", "/nonexistent/p.npy"], "not a readable .npy"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(generated_folder, capsys, extra, message):
    argv = ["--json", *extra] if "--data" in extra else ["--data", str(generated_folder), "--json", *extra]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def _exit_code(argv: list[str]) -> int:
    """main's return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_cli_without_votes_says_how(tmp_path, generated_folder, capsys):
    (generated_folder / "ferplus_votes.csv").unlink()
    assert main(["--data", str(generated_folder)]) == 2
    assert "give --ferplus FILE or --rules model" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.fixture
def real_slice(fer_dir, tmp_path) -> Path:
    """Every 200th training face and every 1000th test face of the real data, in their own Kaggle layout:
    decoding all 32k PNGs afresh would take a minute on a busy 2-core machine."""
    import shutil

    root = tmp_path / "slice"
    for split, step in (("train", 200), ("test", 1000)):
        for f in sorted((fer_dir / split).glob("*/*.png"))[::step]:
            (root / split / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, root / split / f.parent.name / f.name)
    return root


@requires_model
def test_real_data_slice(fer_dir, real_slice, tmp_path, capsys):
    """The shipped model and the real FER+ votes on ~140 training faces of every class."""
    votes = str(fer_dir / "ferplus_votes.csv")
    argv = ["--data", str(real_slice), "--ferplus", votes, "--limit", "120", "--json"]
    assert main([*argv, "--relabel-out", str(tmp_path / "r.csv"), "--proba-out", str(tmp_path / "p.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert main([*argv, "--proba", str(tmp_path / "p.csv")]) == 0  # the saved probabilities: same verdicts
    assert json.loads(capsys.readouterr().out)["suspects"] == out["suspects"]
    assert out["n"] == 120 and out["rules"] == ["ferplus", "model"]
    assert 0 < len(out["suspects"]) < 120 and 0 < out["excluded_no_majority"] < 120
    for s in out["suspects"]:
        assert s["label"] != s["suggested"] and s["reason"] in ("ferplus", "model", "ferplus+model")
        assert s["row"] == int(Path(s["file"]).stem) and 0 < s["confidence"] <= 1
    from fercore.data.loader import load_dataset

    train = load_dataset(real_slice).split("train")
    fixed = apply_relabel(train, tmp_path / "r.csv")
    assert (fixed.labels != train.labels).sum() == len(out["suspects"])


def test_relabel_refuses_data_whose_row_numbers_repeat(class_folder, tmp_path):
    """The generated layout numbers files from 0 in each split: a row would name a train and a test face."""
    from fercore.data.audit import apply_relabel
    from fercore.data.loader import load_dataset
    from fercore.types import DataError

    ds = load_dataset(class_folder)
    file = tmp_path / "relabel.csv"
    file.write_text("row,old_label,new_label\n0,angry,happy\n")
    with pytest.raises(DataError, match="not unique"):
        apply_relabel(ds, file)
