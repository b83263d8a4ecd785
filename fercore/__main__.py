"""Command line: ``python -m fercore predict IMAGE_OR_DIR… [--json | --csv OUT.csv]`` and
``python -m fercore video IN --out OUT.mp4``.

Errors a user can cause (unreadable image or video, missing model, bad option) print one line to
stderr and exit with status 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fercore.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fercore.labels import EMOTIONS
from fercore.types import DetectorError

if TYPE_CHECKING:
    from fercore.inference.pipeline import FramePipeline

EXIT_ERROR = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fercore", description="Facial expression recognition.")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="faces and emotions in images")
    pr.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders searched recursively")
    out = pr.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON list: per image its faces")
    out.add_argument(
        "--csv",
        metavar="OUT.csv",
        help="append one row per face (file, face_id, box, label, 7 probabilities, whole_image, error; "
        "one row with empty face fields for an image without a face) to this CSV; files already in it "
        "are skipped, so re-running an interrupted command resumes it",
    )
    pr.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="images analysed at once, on threads sharing one model (default 1; bench/batch_predict.py "
        "measures what 2 gain on your machine)",
    )
    pr.add_argument(
        "--whole-image",
        action="store_true",
        help="when no face is found, classify the whole image as one face (for images that are face crops "
        "already, such as FER2013's): marked whole_image",
    )
    pr.add_argument(
        "--annotate", metavar="OUT", help="write the annotated image here (a folder when several images are given)"
    )
    _common(pr)

    vi = sub.add_parser("video", help="annotate a video file and tabulate its faces")
    vi.add_argument("input", metavar="IN", help="video file")
    vi.add_argument("--out", required=True, help="annotated MP4 to write")
    vi.add_argument("--csv", help="CSV to write: one row per face per analysed frame")
    vi.add_argument("--stride", type=_positive, default=1, help="analyse every N-th frame (default 1)")
    vi.add_argument("--max-frames", type=_positive, help="stop after this many frames")
    vi.add_argument(
        "--scan-every",
        type=_positive,
        default=1,
        metavar="N",
        help="haar: scan whole frames only every N analysed frames and follow known faces "
        "in between: several times faster, new faces appear up to N frames late "
        "(default 1: scan every frame)",
    )
    _common(vi)
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help="face detector: blaze (BlazeFace, fast and accurate; default), haar (OpenCV "
        "cascade), mtcnn (accurate on hard faces, slow)",
    )
    p.add_argument(
        "--min-face",
        type=_fraction,
        metavar="FRACTION",
        help="haar: smallest face to find, as a fraction of the image's shorter side "
        "(default 0.14; smaller finds smaller faces, cost grows as 1/FRACTION²)",
    )
    p.add_argument(
        "--detect-side",
        type=_positive,
        metavar="PX",
        help="haar: scan a copy whose longest side is PX whatever the face sizes "
        "(instead of --min-face; larger finds smaller faces)",
    )
    p.add_argument(
        "--model",
        help="fast | accurate (the shipped tiers) or a model file (.tflite, .keras, model.json); default: fast "
        "(videos: its int8 twin when shipped)",
    )


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.05, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _pipeline(args: argparse.Namespace, stream: bool = False, whole_image: bool = False) -> FramePipeline:
    """The one frame pipeline for these options (videos: a stream detector, a tracker and drawing)."""
    from fercore.inference.classify import stream_model_path
    from fercore.inference.detectors import make_detector, make_stream_detector
    from fercore.inference.pipeline import FramePipeline
    from fercore.models.ensemble import load_classifier

    params: dict = {}
    haar_only = {"--min-face": args.min_face, "--detect-side": args.detect_side}
    if stream and getattr(args, "scan_every", 1) > 1:
        haar_only["--scan-every"] = args.scan_every
    given = [flag for flag, value in haar_only.items() if value]
    if given and args.detector != "haar":
        raise DetectorError(f"{', '.join(given)} only apply to --detector haar (not {args.detector})")
    if args.min_face:
        params["min_face"] = args.min_face
    if args.detect_side:  # a fixed scan size: the relative limit is off unless also given
        params.update(max_side=args.detect_side, min_face=args.min_face or 0.0)
    with _native_stderr_silenced():  # LiteRT/TF print INFO lines straight to file descriptor 2
        if stream:
            detector = make_stream_detector(args.detector, scan_every=args.scan_every, **params)
        else:
            detector = make_detector(args.detector, **params)
        classifier = load_classifier(args.model or (stream_model_path() if stream else None))
        classifier.predict_proba(np.zeros((1, 48, 48), np.uint8))  # LiteRT logs on first run
    return FramePipeline(detector, classifier, tracker=stream, draw=stream, whole_image_fallback=whole_image)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send what C/C++ code writes to stderr to /dev/null for the duration (Python errors still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _annotation_path(out: str, image: str, many: bool) -> Path:
    target = Path(out)
    if many or target.is_dir():
        return target / f"{Path(image).stem}.annotated.png"
    return target


def _save_annotated(path: Path, rgb, preds) -> None:
    import cv2

    from fercore.inference.draw import annotate

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), annotate(rgb, preds)[:, :, ::-1]):
        raise OSError(f"{path}: could not write the annotated image (unknown extension?)")


def _describe(image: str, preds) -> str:
    lines = [f"{image}: {len(preds)} face{'s' if len(preds) != 1 else ''}"]
    for p in preds:
        scores = " ".join(f"{e} {p.scores[e]:.2f}" for e in EMOTIONS)
        lines.append(f"  face {p.face_id}  box {p.box.as_list()}  {p.label} {p.scores[p.label]:.2f}  ({scores})")
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    from fercore.inference.batch import IMAGE_SUFFIXES, find_images, predict_images
    from fercore.inference.image import load_image

    files = find_images(args.images)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {' '.join(args.images)}")
    pipeline = _pipeline(args, whole_image=args.whole_image)
    if args.csv:
        return _predict_to_csv(args, files, pipeline)
    results, failed = [], 0
    for result in predict_images(pipeline, ((f, f) for f in files), args.workers):
        results.append(result.to_dict())
        if result.error is not None:
            failed += 1
            _error(result.error)
            continue
        if not args.json:
            print(_describe(result.file, result.faces), flush=True)
        if args.annotate:  # decoded again: the batch keeps no images in memory
            path = _annotation_path(args.annotate, result.file, len(files) > 1)
            _save_annotated(path, load_image(result.file), result.faces)
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_ERROR if failed else 0


def _predict_to_csv(args: argparse.Namespace, files: list[str], pipeline: FramePipeline) -> int:
    """The batch mode: rows streamed to the CSV, a progress line on a terminal, failures listed at the end."""
    from fercore.inference.batch import ProgressClock, predict_to_csv

    if args.annotate:
        raise ValueError("--annotate is not available with --csv (a batch writes no images)")
    show, clock = sys.stderr.isatty(), ProgressClock()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\r{done}/{total} images  {clock.text(done / total)}   ", end="", file=sys.stderr, flush=True)

    run = predict_to_csv(pipeline, files, args.csv, workers=args.workers, progress=progress)
    if show and run.analysed:
        print(file=sys.stderr)
    print(
        f"{args.csv}: {run.analysed} images analysed ({run.faces} faces), {run.skipped} skipped as already in the CSV"
    )
    if run.earlier_errors:
        print(f"note: {run.earlier_errors} unreadable files of earlier runs have rows with an error", file=sys.stderr)
    for _, message in run.failed:
        print(f"  {message}", file=sys.stderr)
    if run.failed:
        _error(f"{len(run.failed)} of {run.analysed} images could not be read (listed above; rows with an error)")
        return EXIT_ERROR
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from fercore.inference.video import process_video

    pipeline = _pipeline(args, stream=True)
    show = sys.stderr.isatty()

    def progress(f: float) -> None:
        if show:
            print(f"\r{100 * f:5.1f}%", end="", file=sys.stderr, flush=True)

    result = process_video(
        args.input,
        args.out,
        args.csv,
        pipeline=pipeline,
        stride=args.stride,
        progress=progress,
        max_frames=args.max_frames,
    )
    if show:
        print(file=sys.stderr)
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    faces = result.table["face_id"].nunique()
    print(
        f"{args.out}: {result.frames} frames at {result.fps:.2f} fps ({result.codec}); "
        f"{result.analysed} analysed, {len(result.table)} face rows, {faces} distinct faces"
    )
    if args.csv:
        print(f"{args.csv}: {len(result.table)} rows")
    return 0


def _error(message: str) -> None:
    print(f"error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    try:
        return cmd_predict(args) if args.command == "predict" else cmd_video(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except (ValueError, OSError, RuntimeError) as exc:  # ImageError, VideoError, DetectorError, missing model, …
        _error(str(exc) or type(exc).__name__)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
