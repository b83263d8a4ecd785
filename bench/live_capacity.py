"""Live capacity: how many webcam streams ONE dashboard server holds, for N = 1, 2, 4, 8 at once.

One Streamlit server (the dashboard) and one headless Chromium (Debian's, through Playwright) run in
a network namespace, as the webcam browser test runs them (aiortc ignores loopback ICE candidates;
DESIGN.md). Chromium's fake camera plays a y4m of a real photo (one face, 640×480, ``--fps``
frames/s). For each N, N browser contexts (N Streamlit sessions) open the Webcam page and press
START; once every stream is processing, the bench waits ``--warmup`` seconds and then measures for
``--seconds``:

* frames/s per stream — frames the server ran through the pipeline (detect + classify + track +
  draw), from the per-frame log each ``LiveSession`` writes when ``FER_LIVE_STATS`` is set (the
  server gets it from the bench). streamlit-webrtc processes the newest frame and sends the last
  annotated one for every camera frame, so this, not the returned video's rate, is what a user sees
  update; the returned video's rate (repeats included) is printed too, from the player's
  ``getVideoPlaybackQuality()``;
* p50 / p95 processing latency — ``LiveSession.process`` per frame, all streams pooled;
* server CPU — user + system seconds of the server's process tree over the window, in cores;
  the browser's (+ this bench's) CPU separately: Chromium encodes and decodes every stream on the
  same 2 cores, which a real deployment's clients would not;
* server CPU per processed frame — the server's CPU seconds over the window divided by the frames
  it processed: the figure to size a server whose clients run elsewhere;
* server memory — the process tree's RSS at the start of the window and its peak (polled 10×/s).

The Webcam page stays open in every session, so its once-a-second readout (metrics + chart) runs
too, as it would for real users.

    sudo .venv/bin/python bench/live_capacity.py [--streams 1,2,4,8] [--seconds 20] [--warmup 6]
                                                 [--fps 15] [--photo astronaut.png] [--nice 10]
                                                 [--browser-nice 0] [--timeout 90]

Needs root (``ip netns``), Chromium, Playwright, the shipped model and ../shared/data/photos.
Bounded: every browser step times out after ``--timeout`` s; the server, the browser and the
namespace are removed whatever happens. Only the namespace's addresses (127.0.0.1 and the veth
pair 10.203.0.1/2 inside it) are used.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)
import numpy as np

from fercore.paths import PROJECT_ROOT as ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "browser"))  # browser_helpers: how the browser tests start things

from browser_helpers import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_FLAGS,
    Server,
    chromium_in_netns,
    netns,
    open_app,
    page_errors,
    server_env,
    write_y4m,
)

from bench.frames import PHOTOS  # noqa: E402
from bench.load_sessions import RssMonitor, client_tree, cpu_seconds, pct, process_tree  # noqa: E402
from fercore.inference.live import STATS_ENV, FrameLog  # noqa: E402

PORT = 8765  # inside a fresh namespace every port is free
PLAYER = 'iframe[data-testid="stCustomComponentV1"]'
VIDEO_FRAMES_JS = "(v) => v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : null"
FPS_TARGET = 10.0


@dataclass
class Step:
    """What one N measured."""

    n: int
    started: int = 0  # streams whose START was pressed without an error
    errors: list[str] = field(default_factory=list)
    window_s: float = 0.0
    fps: list[float] = field(default_factory=list)  # processed frames/s, one per stream that ran
    video_fps: list[float] = field(default_factory=list)  # returned video frames/s seen by the players
    latencies_ms: list[float] = field(default_factory=list)
    faces_per_frame: float = 0.0
    server_cpu: float = 0.0  # cores
    client_cpu: float = 0.0
    server_ms_per_frame: float = 0.0  # server CPU per processed frame, everything included
    rss_mb: float = 0.0
    peak_mb: float = 0.0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------- the server's logs


def frames_between(stats: Path, t0: float, t1: float) -> list[np.ndarray]:
    """Per stream log in ``stats``: its rows timed in [t0, t1) (streams with none are left out)."""
    out = []
    for path in sorted(stats.glob("*.tsv")):
        rows = FrameLog.read(path)
        rows = rows[(rows[:, 0] >= t0) & (rows[:, 0] < t1)]
        if len(rows):
            out.append(rows)
    return out


def wait_streams(stats: Path, n: int, timeout: float, recent: float = 2.0) -> int:
    """Wait until ``n`` streams have processed a frame in the last ``recent`` s; how many have."""
    deadline, active = time.time() + timeout, 0
    while time.time() < deadline:
        now = time.time()
        active = len(frames_between(stats, now - recent, now + 1))
        if active >= n:
            break
        time.sleep(0.5)
    return active


def wait_quiet(stats: Path, timeout: float = 30, recent: float = 2.0) -> int:
    """Wait until no stream has processed a frame for ``recent`` s; how many still run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = time.time()
        running = len(frames_between(stats, now - recent, now + 1))
        if not running:
            return 0
        time.sleep(0.5)
    return running


# ---------------------------------------------------------------------------------- the browser side


def open_webcam(browser, url: str, timeout: float):
    """A new context (a new Streamlit session) on the Webcam page, not yet started."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(timeout * 1000)
    try:
        open_app(page, f"{url}/webcam", timeout=timeout)
        if errors := page_errors(page):
            raise RuntimeError("; ".join(errors)[:300])
    except BaseException:
        context.close()
        raise
    return context, page


def press(page, name: str, timeout: float) -> None:
    """Click the player's START or STOP button (inside the component's iframe)."""
    button = page.frame_locator(PLAYER).first.get_by_role("button", name=re.compile(name, re.I))
    button.click(timeout=timeout * 1000)


def video_frames(page) -> int | None:
    """Frames the page's player has decoded from the returned stream so far (None if unknown)."""
    try:
        return page.frame_locator(PLAYER).first.locator("video").first.evaluate(VIDEO_FRAMES_JS, timeout=5000)
    except Exception:  # noqa: BLE001 - a figure the bench prints as unknown, not a failure
        return None


def stop_stream(context, page) -> None:
    try:
        press(page, "stop", 15)
    except Exception:  # noqa: BLE001 - closing the context ends the connection anyway
        pass
    context.close()


# ---------------------------------------------------------------------------------- one N


def run_step(n: int, browser, server: Server, stats: Path, args) -> Step:
    step = Step(n)
    streams = []
    try:
        t = time.perf_counter()
        for i in range(n):  # all pages first, so that opening one does not compete with running streams
            try:
                streams.append(open_webcam(browser, server.url, args.timeout))
            except Exception as exc:  # noqa: BLE001 - a stream that did not start is reported, not fatal
                step.errors.append(f"page {i}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        for i, (_, page) in enumerate(streams):
            try:
                press(page, "start", args.timeout)
                step.started += 1
            except Exception as exc:  # noqa: BLE001
                step.errors.append(f"START {i}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        active = wait_streams(stats, step.started, args.timeout)
        print(
            f"   {step.started} of {n} started, {active} processing after {time.perf_counter() - t:.0f} s", flush=True
        )
        if active < step.started:
            step.errors.append(f"only {active} of {step.started} started streams processed frames")
        time.sleep(args.warmup)

        server_pids = set(process_tree(server.proc.pid))
        monitor = RssMonitor(server.proc.pid)
        step.rss_mb = monitor.current_kb() / 1024
        shown0 = [video_frames(page) for _, page in streams]
        cpu0 = cpu_seconds(process_tree(server.proc.pid)), cpu_seconds(client_tree(server_pids))
        t0 = time.time()
        with monitor:
            time.sleep(args.seconds)
        t1 = time.time()
        cpu1 = cpu_seconds(process_tree(server.proc.pid)), cpu_seconds(client_tree(server_pids))
        shown1 = [video_frames(page) for _, page in streams]
        step.load = os.getloadavg()
        step.window_s = t1 - t0
        step.server_cpu = (cpu1[0] - cpu0[0]) / step.window_s
        step.client_cpu = (cpu1[1] - cpu0[1]) / step.window_s
        step.peak_mb = monitor.peak_kb / 1024
        logs = frames_between(stats, t0, t1)
        step.fps = [len(rows) / step.window_s for rows in logs]
        processed = sum(len(rows) for rows in logs)
        step.server_ms_per_frame = 1000 * (cpu1[0] - cpu0[0]) / processed if processed else 0.0
        if logs:
            pooled = np.concatenate(logs)
            step.latencies_ms = list(1000 * pooled[:, 1])
            step.faces_per_frame = float(pooled[:, 2].mean())
        step.video_fps = [
            (b - a) / step.window_s for a, b in zip(shown0, shown1, strict=True) if a is not None and b is not None
        ]
    finally:
        for context, page in streams:
            stop_stream(context, page)
        still = wait_quiet(stats)
        if still:
            step.errors.append(f"{still} stream(s) still running after STOP and closing the pages")
    return step


# ---------------------------------------------------------------------------------- report


def report(steps: list[Step], cores: int) -> None:
    print(
        f"\n{'N':>2} {'ran':>4}  {'frames/s per stream':>21}  {'video back':>10}  {'latency p50/p95':>15}  "
        f"{'server CPU':>10}  {'server CPU':>10}  {'browser CPU':>11}  {'server RSS / peak':>17}  load 1-min"
    )
    print(
        f"{'':>2} {'':>4}  {'mean (min – max)':>21}  {'fps mean':>10}  {'ms':>15}  "
        f"{'cores':>10}  {'ms/frame':>10}  {'cores':>11}  {'MB':>17}"
    )
    for s in steps:
        fps = f"{np.mean(s.fps):5.1f} ({min(s.fps):4.1f} – {max(s.fps):4.1f})" if s.fps else "–"
        video = f"{np.mean(s.video_fps):.1f}" if s.video_fps else "–"
        lat = f"{pct(s.latencies_ms, 50):.0f} / {pct(s.latencies_ms, 95):.0f}" if s.latencies_ms else "–"
        print(
            f"{s.n:>2} {len(s.fps):>4}  {fps:>21}  {video:>10}  {lat:>15}  {s.server_cpu:>10.2f}  "
            f"{s.server_ms_per_frame:>10.0f}  "
            f"{s.client_cpu:>11.2f}  {s.rss_mb:>7.0f} / {s.peak_mb:>7.0f}  {s.load[0]:.2f}"
        )
    for s in steps:
        for e in s.errors:
            print(f"   ! N = {s.n}: {e}")
    held = [s.n for s in steps if s.fps and len(s.fps) == s.n and min(s.fps) >= FPS_TARGET]
    print(
        f"\n{cores} cores in all (server + browser + anything else). Faces per frame: "
        + ", ".join(f"N={s.n}: {s.faces_per_frame:.2f}" for s in steps)
    )
    print(
        f"Largest N with every stream at >= {FPS_TARGET:.0f} processed frames/s: {max(held) if held else 'none'}"
        " (with the browsers on the same cores)"
    )
    busiest = max((s for s in steps if s.server_ms_per_frame), key=lambda s: s.n, default=None)
    if busiest is not None:
        print(
            f"Server CPU per processed frame at N = {busiest.n}: {busiest.server_ms_per_frame:.0f} ms "
            f"(WebRTC decode and encode of every camera frame, the pipeline, the page's readout): {cores} idle "
            f"cores would feed about {cores * 1000 / busiest.server_ms_per_frame / FPS_TARGET:.1f} streams at "
            f"{FPS_TARGET:.0f} frames/s if the server had them to itself and one Python process could use them "
            "all (an estimate, not a measurement)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="1,2,4,8", help="comma-separated N values, run in turn on one server")
    p.add_argument("--seconds", type=float, default=20, help="measuring window per N")
    p.add_argument("--warmup", type=float, default=6, help="seconds between all streams running and measuring")
    p.add_argument("--fps", type=int, default=15, help="frames/s of the fake camera")
    p.add_argument("--photo", default="astronaut.png", help="photo in ../shared/data/photos for the fake camera")
    p.add_argument("--nice", type=int, default=10, help="niceness increment for the bench, server and browser")
    p.add_argument("--browser-nice", type=int, default=0, help="extra niceness for Chromium only")
    p.add_argument("--timeout", type=float, default=90, help="seconds one browser step may take")
    p.add_argument("--budget", type=float, default=900, help="start no further N after this many seconds")
    args = p.parse_args(argv)
    ns = [int(v) for v in args.streams.split(",") if v.strip()]
    if not ns or min(ns) < 1 or max(ns) > 16 or not 5 <= args.seconds <= 120 or not 1 <= args.fps <= 30:
        p.error("--streams: 1–16 each; --seconds: 5–120; --fps: 1–30")

    photo = PHOTOS / args.photo
    missing = [str(x) for x in (CHROMIUM, photo) if not Path(x).exists()]
    from fercore.inference.classify import stream_model_path

    if not stream_model_path().exists():
        missing.append(str(stream_model_path()))
    if missing:
        print(f"cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("cannot run: needs root and `ip` (the streams run in a network namespace)", file=sys.stderr)
        return 2
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        print("cannot run: the playwright Python package is not installed", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SystemExit: the server and namespace go too
    if args.nice:
        os.nice(args.nice)  # inherited by the server and the browser started below
    cores = os.cpu_count() or 1
    print(
        f"nice {os.nice(0)} (browser +{args.browser_nice}); load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
        + f" / {cores} cores; fake camera {args.photo} 640×480 at {args.fps} fps; model {stream_model_path().name}; "
        f"the page's default detector; {args.warmup:.0f} s warm-up + {args.seconds:.0f} s measured per N"
    )
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="fer-live-") as tmp:
        work = Path(tmp)
        stats = work / "stats"
        y4m = write_y4m(photo, work / "face.y4m", frames=2 * args.fps, fps=args.fps)
        with netns(f"ferlive{os.getpid()}") as name:
            env = server_env(FER_RUNS=str(work / "runs"), FER_CACHE=str(work / "cache"), **{STATS_ENV: str(stats)})
            server = Server(PORT, env, work / "streamlit.log", netns=name)
            try:
                server.wait_healthy(timeout=120)
                print(f"server up; RSS {RssMonitor(server.proc.pid).current_kb() / 1024:.0f} MB before any session")
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(
                        executable_path=str(chromium_in_netns(name, work, nice=args.browser_nice)),
                        args=[
                            *CHROMIUM_FLAGS,
                            "--use-fake-ui-for-media-stream",
                            "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-video-capture={y4m}",
                        ],
                    )
                    try:
                        began = time.perf_counter()
                        for n in ns:
                            if time.perf_counter() - began > args.budget:
                                print(f"N = {n}: skipped, the --budget of {args.budget:.0f} s is spent")
                                continue
                            t = time.perf_counter()
                            steps.append(run_step(n, browser, server, stats, args))
                            s = steps[-1]
                            print(
                                f"N = {n}: {len(s.fps)} stream(s) measured, "
                                f"{np.mean(s.fps) if s.fps else 0:.1f} frames/s each on average "
                                f"({time.perf_counter() - t:.0f} s for the step)",
                                flush=True,
                            )
                            for e in s.errors:
                                print(f"   ! {e}", flush=True)
                    finally:
                        browser.close()
            finally:
                server.stop()
                log = server.log_text()
                tracebacks = log.count("Traceback")
                last_traceback = log[log.rfind("Traceback") :] if tracebacks else ""
    report(steps, cores)
    print(
        f"{tracebacks} traceback(s) in the tail of the server log; load average now "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    if last_traceback:  # say what it was: the server's log goes with its temporary folder
        print("the last one:\n" + "\n".join(last_traceback.splitlines()[:25]))
    return 0 if all(len(s.fps) == s.n for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
