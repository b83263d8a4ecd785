"""Command line: ``python -m fercore predict IMAGE_OR_DIR… [--json | --csv OUT.csv] [--engine ray]``,
``python -m fercore video IN --out OUT.mp4 [--csv OUT.csv]`` and, for a collection of videos,
``python -m fercore video PATH… --out-dir DIR [--engine local|ray]`` (``fercore.inference.collection``).
This module only parses arguments and prints; the work is done in ``fercore``.

Errors a user can cause (unreadable image or video, missing model, bad option) print one line to
stderr and exit with status 1 (2 for usage errors), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fercore.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fercore.labels import EMOTIONS

if TYPE_CHECKING:
    from fercore.inference.pipeline import FramePipeline, PipelineSpec

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
        metavar="N",
        help="images analysed at once: local engine, threads sharing one model (default 1; "
        "bench/batch_predict.py measures what 2 gain on your machine); ray engine without --address, "
        "the CPUs of the Ray started here (default: all)",
    )
    _engine_options(pr, "", workers=False)
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

    vi = sub.add_parser(
        "video",
        help="annotate a video file and tabulate its faces, or analyse a collection of videos",
        description="One video: IN --out OUT.mp4 [--csv OUT.csv]. A collection: files, folders and globs "
        "--out-dir DIR: per video DIR/NAME.csv (and NAME.annotated.mp4 with --annotate), for all of them "
        "DIR/summary.csv and summary.json. A re-run skips finished videos and resumes interrupted ones.",
    )
    vi.add_argument("inputs", nargs="+", metavar="IN", help="video files, folders (searched recursively) or globs")
    dest = vi.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="one video: the annotated MP4 to write")
    dest.add_argument(
        "--out-dir", metavar="DIR", help="a collection: the folder for every output (shared by all nodes)"
    )
    vi.add_argument("--csv", help="one video: CSV to write, one row per face per analysed frame")
    vi.add_argument("--annotate", action="store_true", help="a collection: also write each annotated MP4")
    vi.add_argument(
        "--segment-seconds",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="a collection: cut videos into segments of S seconds, analysed in parallel (default 60; "
        "a face crossing a segment edge gets a new id there)",
    )
    _engine_options(vi, "a collection: ")
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


def _engine_options(p: argparse.ArgumentParser, scope: str, workers: bool = True) -> None:
    from fercore.inference.engines import ENGINES

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help=f"{scope}where the work runs: local (processes on this machine; default) or ray (a Ray "
        "cluster; needs requirements-scale.txt, see docs/scale.md)",
    )
    p.add_argument(
        "--address",
        metavar="ray://HOST:10001|auto",
        help="--engine ray: the cluster to use (default: start Ray on this machine)",
    )
    if workers:
        p.add_argument(
            "--workers",
            type=_positive,
            metavar="N",
            help=f"{scope}worker processes on this machine (local engine, or the Ray started here; "
            "default: one per CPU)",
        )


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


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _spec(args: argparse.Namespace) -> PipelineSpec:
    """The pipeline options given on the command line (``DetectorError`` for a Haar option on another detector)."""
    from fercore.inference.pipeline import PipelineSpec

    return PipelineSpec(
        detector=args.detector,
        model=args.model,
        min_face=args.min_face,
        detect_side=args.detect_side,
        scan_every=getattr(args, "scan_every", 1),
    )


def _pipeline(args: argparse.Namespace, stream: bool = False, whole_image: bool = False) -> FramePipeline:
    """The one frame pipeline for these options (videos: a stream detector, a tracker and drawing)."""
    spec = _spec(args)
    with _native_stderr_silenced():  # LiteRT/TF print INFO lines straight to file descriptor 2
        return spec.build(stream=stream, whole_image=whole_image)


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
    """The ``predict`` command: faces and emotions of each image in ``args`` (JSON or a table); 0 or 2."""
    from fercore.data.folders import IMAGE_EXTENSIONS
    from fercore.inference.batch import find_images
    from fercore.inference.image import load_image

    files = find_images(args.images)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {' '.join(args.images)}")
    with contextlib.ExitStack() as stack:
        predict = _image_predictor(args, stack)
        if args.csv:
            return _predict_to_csv(args, files, predict)
        results, failed = [], 0
        for result in predict(files):
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


def _image_predictor(args: argparse.Namespace, stack: contextlib.ExitStack) -> Callable[[list[str]], Iterator]:
    """files → their ``ImageResult``s in order: on threads here (local) or on the workers of a Ray engine."""
    from fercore.inference.batch import predict_images, predict_on_engine
    from fercore.inference.engines import make_engine

    if args.engine == "local":
        if args.address:
            raise ValueError("--address applies to --engine ray only")
        pipeline = _pipeline(args, whole_image=args.whole_image)
        return lambda files: predict_images(pipeline, ((f, f) for f in files), args.workers or 1)
    spec = _spec(args)
    engine = make_engine(args.engine, args.workers or os.cpu_count() or 1, args.address)
    stack.callback(engine.close)
    return lambda files: predict_on_engine(engine, spec, files, whole_image=args.whole_image)


def _predict_to_csv(args: argparse.Namespace, files: list[str], predict: Callable[[list[str]], Iterator]) -> int:
    """The batch mode: rows streamed to the CSV, a progress line on a terminal, failures listed at the end."""
    from fercore.inference.batch import ProgressClock, predict_to_csv

    if args.annotate:
        raise ValueError("--annotate is not available with --csv (a batch writes no images)")
    show, clock = sys.stderr.isatty(), ProgressClock()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\r{done}/{total} images  {clock.text(done / total)}   ", end="", file=sys.stderr, flush=True)

    run = predict_to_csv(None, files, args.csv, progress=progress, predict=predict)
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
    """The ``video`` command: one video (``--out``/``--csv``) or a collection (``--out-dir``); 0, 1 or 2."""
    if args.out_dir:
        return _video_collection(args)
    if len(args.inputs) != 1:
        raise ValueError(f"--out takes one video ({len(args.inputs)} given): use --out-dir DIR for several")
    if args.annotate or args.engine != "local" or args.address or args.workers:
        raise ValueError("--annotate, --engine, --address and --workers apply to a collection (--out-dir)")
    from fercore.inference.video import process_video

    pipeline = _pipeline(args, stream=True)
    show = sys.stderr.isatty()

    def progress(f: float) -> None:
        if show:
            print(f"\r{100 * f:5.1f}%", end="", file=sys.stderr, flush=True)

    result = process_video(
        args.inputs[0],
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


def _video_collection(args: argparse.Namespace) -> int:
    """Every video of the inputs on the chosen engine; the summary table lists the ones that failed."""
    from fercore.inference.collection import CollectionOptions, find_videos, run_collection
    from fercore.inference.engines import make_engine

    if args.csv:
        raise ValueError("--csv is for one video (--out): a collection writes DIR/NAME.csv per video")
    videos = find_videos(args.inputs)
    if not videos:
        raise FileNotFoundError(f"no videos in {' '.join(args.inputs)}")
    options = CollectionOptions(
        spec=_spec(args),
        stride=args.stride,
        segment_s=args.segment_seconds,
        annotate=args.annotate,
        max_frames=args.max_frames,
    )
    engine = make_engine(args.engine, args.workers or os.cpu_count() or 1, args.address)
    try:
        run = run_collection(videos, args.out_dir, options, engine, show_progress=sys.stderr.isatty())
    finally:
        engine.close()
    out = Path(args.out_dir)
    print(
        f"{out / 'summary.csv'}: {len(run.summary)} videos, {run.analysed} analysed now "
        f"({run.segments_run} segments), {run.skipped} skipped as finished before; per video {out}/NAME.csv"
    )
    for row in run.summary:
        if row["error"]:
            print(f"  {row['video']}: {row['error']}", file=sys.stderr)
    if run.failed:
        _error(f"{len(run.failed)} of {len(run.summary)} videos could not be read (listed above and in the summary)")
        return EXIT_ERROR
    return 0


def _error(message: str) -> None:
    print(f"error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m fercore``: parse ``argv`` (default: the command line) and run a command; the exit code."""
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
