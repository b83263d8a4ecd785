"""Many users on one dashboard: N browser sessions at once against ONE Streamlit server.

For each N (default 4, then 8) a fresh server is started on 127.0.0.1 (as the browser tests start
it), warmed up by one session that visits Photo, Evaluate and Video once, and then N sessions of
one headless Chromium (Debian's, through Playwright; one browser context per session) start
together. Session i does task ``i`` of ``--mix`` (default photo, evaluate, photo, video, repeated),
``--rounds`` times (each round reloads the page, so it is a new Streamlit session):

* photo — Photo page, upload astronaut.png or t1.jpg (alternating between photo sessions). Each
  upload gets unique bytes (a PNG text chunk / JPEG comment holding the session and round; the
  pixels are identical), so no cache keyed by content can answer for it: every upload is
  decoded, detected and classified. ``--same-bytes`` uploads the files as they are. Right:
  astronaut shows 1 face, "happy"; t1 shows "6 face(s) found".
* evaluate — Evaluate page, shipped model, test split limited to ``--eval-limit`` faces (the
  page's fixed random sample), press Evaluate. Right: an accuracy ≥ 50 % and the same accuracy in
  every evaluate session.
* video — Video page, upload a generated 20-frame 320×320 clip of grace_hopper.jpg panning.
  Right: 20 frames and at least one tracked face.

Per page it prints p50/p95 of the time to open the page and of the time to result (from the
upload or the click to the result on screen), the errors (an exception or error box on the page,
a timeout, a wrong result) and, for the server, the RSS after warm-up, the peak RSS of its
process tree (polled every 0.1 s from /proc) and the main process's VmHWM. The browser runs on
the same cores as the server, as it would for a demo on one laptop: the CPU seconds that the
server and the browser used during the sessions are printed beside the core-seconds available,
so a slow figure can be told apart from a busy machine (note the load average too).

    python bench/load_sessions.py [--sessions 4,8] [--rounds 2] [--mix photo,evaluate,photo,video]
                                  [--eval-limit 300] [--same-bytes] [--timeline] [--nice N] [--timeout 240]

Needs Chromium (``bash scripts/bootstrap.sh --browser``), Playwright, the shipped model and
../shared/data (FER2013 and the photos). Everything is bounded: each task times out after
``--timeout`` seconds, the server and the browser are stopped whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import _root  # noqa: F401, E402 - puts the checkout on sys.path (see bench/_root.py)

from fercore.paths import PROJECT_ROOT as ROOT  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "browser"))  # browser_helpers: how the browser tests start things

from browser_helpers import CHROMIUM, CHROMIUM_FLAGS, Server, free_port, server_env, write_mp4  # noqa: E402

from bench.frames import PHOTOS, SHARED  # noqa: E402

FER = SHARED / "fer2013"
MIX = ("photo", "evaluate", "photo", "video")
PHOTO_FILES = ("astronaut.png", "t1.jpg")
EXPECTED_FACES = {"astronaut.png": 1, "t1.jpg": 6}
VIDEO_FRAMES = 20
MIN_ACCURACY = 0.50

ERROR_BOXES = '[data-testid="stException"], [data-testid="stAlertContentError"]'
RUNNING = (
    '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"], '
    '[data-testid="stSkeleton"], [data-testid="stSpinner"]'
)


@dataclass
class Outcome:
    """One task of one session: what it did, how long it took, what went wrong."""

    page: str
    session: int
    round: int
    open_s: float | None = None
    action_at: float | None = None  # perf_counter of the upload / click …
    result_at: float | None = None  # … and of the result (or error box) on screen
    result_s: float | None = None
    error: str | None = None  # an error box, a timeout, a browser failure
    wrong: str | None = None  # a result that is not the right one
    detail: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------- inputs


def unique_png(data: bytes, tag: str) -> bytes:
    """The PNG with a tEXt chunk after IHDR: other bytes (another cache key), the same pixels."""
    body = b"Comment\x00" + tag.encode()
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]  # 8-byte signature + 25-byte IHDR chunk


def unique_jpeg(data: bytes, tag: str) -> bytes:
    """The JPEG with a COM segment after SOI: other bytes, the same pixels."""
    body = tag.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]


def photo_upload(name: str, tag: str | None, folder: Path) -> Path:
    """The sample photo as a file to upload (``tag``: made unique, same name, same pixels)."""
    data = (PHOTOS / name).read_bytes()
    if tag is None:
        return PHOTOS / name
    data = unique_png(data, tag) if name.endswith(".png") else unique_jpeg(data, tag)
    out = folder / tag / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def check_unique_uploads(folder: Path) -> None:
    """The unique copies decode to exactly the originals' pixels."""
    import numpy as np

    from fercore.inference.image import load_image

    for name in PHOTO_FILES:
        same = np.array_equal(load_image(PHOTOS / name), load_image(photo_upload(name, "check", folder)))
        if not same:
            raise SystemExit(f"bench bug: the unique copy of {name} decodes to other pixels")


# ---------------------------------------------------------------------------------- server memory


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes and of their ended children (a closed page's
    renderer counts in Chromium's times once Chromium has reaped it)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / tick


def client_tree(server_pids: set[int]) -> list[int]:
    """This process and its descendants (Playwright's driver, Chromium) except the server's."""
    return [p for p in process_tree(os.getpid()) if p not in server_pids]


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat parent ids)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    stat = fh.read()
                parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        tree += frontier
    return tree


class RssMonitor:
    """Polls the RSS of a process tree every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-monitor", daemon=True)

    def current_kb(self) -> int:
        return sum(_status_kb(p, "VmRSS") for p in process_tree(self.pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, self.current_kb())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssMonitor:
        self.peak_kb = self.current_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------------- one session


async def open_page(page, url: str, timeout: float) -> float:
    """Open ``url`` and wait until it has rendered and no script runs for 1 s; seconds taken.
    One reload if the first load stalls (a loaded machine can drop the first WebSocket)."""
    from playwright.async_api import Error as PlaywrightError

    t0 = time.perf_counter()
    for attempt in (1, 2):
        try:
            await page.goto(url)
            await page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout * 1000)
            await wait_idle(page, timeout)
            return time.perf_counter() - t0
        except (TimeoutError, PlaywrightError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def wait_idle(page, timeout: float, quiet: float = 1.0) -> None:
    deadline = time.time() + timeout
    calm_since = None
    while time.time() < deadline:
        if await page.locator(RUNNING).count():
            calm_since = None
        elif calm_since is None:
            calm_since = time.time()
        elif time.time() - calm_since >= quiet:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the page kept running for {timeout:.0f} s")


async def error_texts(page) -> list[str]:
    loc = page.locator(ERROR_BOXES)
    return [" ".join((await loc.nth(i).inner_text()).split())[:200] for i in range(await loc.count())]


async def wait_result(page, result, timeout: float) -> float:
    """Wait for ``result`` (a locator) or an error box; the time at which either showed."""
    await result.or_(page.locator(ERROR_BOXES)).first.wait_for(timeout=timeout * 1000)
    return time.perf_counter()


async def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return (await box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


async def photo_task(page, url: str, upload: Path, out: Outcome, timeout: float) -> None:
    out.open_s = await open_page(page, f"{url}/photo", timeout)
    if errors := await error_texts(page):  # a broken page: no need to wait for its widgets
        out.error = "on opening: " + "; ".join(errors)
        return
    found = page.get_by_text(re.compile(r"\d+ face\(s\) found"))
    out.action_at = time.perf_counter()
    await page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(upload))
    out.result_at = await wait_result(page, found, timeout)
    out.result_s = out.result_at - out.action_at
    await wait_idle(page, timeout)
    if errors := await error_texts(page):
        out.error = "; ".join(errors)
        return
    caption = await found.first.inner_text()
    n = int(caption.split()[0])
    labels = [await c.inner_text() for c in await page.get_by_text(re.compile(r"^face \d+: \w+$")).all()]
    out.detail = {"photo": upload.name, "faces": n, "labels": labels}
    want = EXPECTED_FACES[upload.name]
    if n != want:
        out.wrong = f"{upload.name}: {n} face(s) found, expected {want}"
    elif upload.name == "astronaut.png" and labels != ["face 1: happy"]:
        out.wrong = f"astronaut.png: {labels}, expected ['face 1: happy']"


async def evaluate_task(page, url: str, limit: int, out: Outcome, timeout: float) -> None:
    out.open_s = await open_page(page, f"{url}/evaluate", timeout)
    if errors := await error_texts(page):  # a broken page: no need to wait for its widgets
        out.error = "on opening: " + "; ".join(errors)
        return
    box = page.get_by_label("Images (0 = all)", exact=True).and_(page.locator("input"))
    await box.fill(str(limit))
    await box.press("Enter")
    button = page.get_by_role("button", name=re.compile(rf"Evaluate on {limit:,} faces"))
    await button.wait_for(timeout=timeout * 1000)
    await wait_idle(page, timeout)
    out.action_at = time.perf_counter()
    await button.click()
    out.result_at = await wait_result(page, page.get_by_text("Misclassified faces"), timeout)
    out.result_s = out.result_at - out.action_at
    await wait_idle(page, timeout)
    if errors := await error_texts(page):
        out.error = "; ".join(errors)
        return
    accuracy = await metric(page, "Accuracy")
    images = await metric(page, "Images")
    out.detail = {"accuracy": accuracy, "images": images}
    if images.replace(",", "") != str(limit):
        out.wrong = f"evaluated {images} images, expected {limit}"
    elif float(accuracy.rstrip("%")) / 100 < MIN_ACCURACY:
        out.wrong = f"accuracy {accuracy} < {MIN_ACCURACY:.0%}"


async def video_task(page, url: str, clip: Path, out: Outcome, timeout: float) -> None:
    out.open_s = await open_page(page, f"{url}/video", timeout)
    if errors := await error_texts(page):  # a broken page: no need to wait for its widgets
        out.error = "on opening: " + "; ".join(errors)
        return
    out.action_at = time.perf_counter()
    await page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(clip))
    done = page.get_by_role("button", name="Per-frame CSV")
    out.result_at = await wait_result(page, done, timeout)
    out.result_s = out.result_at - out.action_at
    await wait_idle(page, timeout)
    if errors := await error_texts(page):
        out.error = "; ".join(errors)
        return
    frames, tracked = await metric(page, "Frames"), await metric(page, "Faces tracked")
    out.detail = {"frames": frames, "tracked": tracked}
    if frames != str(VIDEO_FRAMES) or int(tracked) < 1:
        out.wrong = f"{frames} frames / {tracked} faces tracked, expected {VIDEO_FRAMES} / >= 1"


async def run_task(context, kind: str, url: str, out: Outcome, args, inputs: dict) -> Outcome:
    page = await context.new_page()
    page.set_default_timeout(args.timeout * 1000)  # a starved browser may be slow to even take an upload
    try:
        if kind == "photo":
            await photo_task(page, url, inputs["upload"], out, args.timeout)
        elif kind == "evaluate":
            await evaluate_task(page, url, args.eval_limit, out, args.timeout)
        else:
            await video_task(page, url, inputs["clip"], out, args.timeout)
    except Exception as exc:  # a timeout or a browser failure is an error of this task, not of the bench
        out.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    finally:
        await page.close()
    return out


async def session(
    browser, n: int, index: int, url: str, args, work: Path, clip: Path, start: asyncio.Event
) -> list[Outcome]:
    mix = args.mix
    kind = mix[index % len(mix)]
    earlier_photos = sum(1 for j in range(index) if mix[j % len(mix)] == "photo")
    photo = PHOTO_FILES[earlier_photos % len(PHOTO_FILES)]  # photo sessions alternate
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    outcomes = []
    try:
        await start.wait()
        for r in range(args.rounds):
            inputs = {"clip": clip}
            if kind == "photo":
                tag = None if args.same_bytes else f"n{n}-s{index}-r{r}"
                inputs["upload"] = photo_upload(photo, tag, work)
            outcomes.append(await run_task(context, kind, url, Outcome(kind, index, r), args, inputs))
    finally:
        await context.close()
    return outcomes


async def warm_up(browser, url: str, args, work: Path, clip: Path) -> list[Outcome]:
    """One visit to each page (models, detector, dataset, plotting and video libraries loaded)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        warm = photo_upload("t1.jpg", "warm-up", work)
        return [
            await run_task(context, "photo", url, Outcome("photo", -1, 0), args, {"upload": warm}),
            await run_task(context, "evaluate", url, Outcome("evaluate", -1, 0), args, {}),
            await run_task(context, "video", url, Outcome("video", -1, 0), args, {"clip": clip}),
        ]
    finally:
        await context.close()


async def load_round(n: int, args, work: Path, clip: Path) -> dict:
    """A fresh server, warm-up, then ``n`` sessions at once. Returns what was measured."""
    from playwright.async_api import async_playwright

    server_tmp = work / f"server-tmp-{n}"  # the server's temporary files, counted afterwards
    server_tmp.mkdir()
    env = server_env(
        FER_DATA=str(FER), FER_RUNS=str(work / f"runs-{n}"), FER_CACHE=str(work / "cache"), TMPDIR=str(server_tmp)
    )
    server = Server(free_port(), env, work / f"streamlit-{n}.log")
    try:
        await asyncio.to_thread(server.wait_healthy, 120)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                t0 = time.perf_counter()
                warm = await warm_up(browser, server.url, args, work, clip)
                warm_s = time.perf_counter() - t0
                monitor = RssMonitor(server.proc.pid)
                baseline_kb = monitor.current_kb()
                start = asyncio.Event()
                tasks = [
                    asyncio.create_task(session(browser, n, i, server.url, args, work, clip, start)) for i in range(n)
                ]
                server_pids = set(process_tree(server.proc.pid))
                cpu0 = cpu_seconds(process_tree(server.proc.pid)), cpu_seconds(client_tree(server_pids))
                with monitor:
                    t0 = time.perf_counter()
                    start.set()
                    results = await asyncio.wait_for(
                        asyncio.gather(*tasks), timeout=args.timeout * (args.rounds + 1) + 60
                    )
                    wall_s = time.perf_counter() - t0
                server_cpu = cpu_seconds(process_tree(server.proc.pid)) - cpu0[0]
                client_cpu = cpu_seconds(client_tree(server_pids)) - cpu0[1]
                hwm_kb = _status_kb(server.proc.pid, "VmHWM")
            finally:
                await browser.close()
        log = server.log_text()
        return {
            "n": n,
            "rounds": args.rounds,
            "tmp_left": sum(1 for _ in server_tmp.iterdir()),
            "warm": warm,
            "warm_s": warm_s,
            "outcomes": [o for r in results for o in r],
            "wall_s": wall_s,
            "t0": t0,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "baseline_mb": baseline_kb / 1024,
            "peak_mb": monitor.peak_kb / 1024,
            "hwm_mb": hwm_kb / 1024,
            "tracebacks": log.count("Traceback"),
        }
    finally:
        server.stop()


# ---------------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of a non-empty list."""
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q / 100 * len(s)))) - 1]


def fmt_times(values: list[float]) -> str:
    if not values:
        return "      –       "
    return f"{statistics.median(values):6.2f} / {pct(values, 95):6.2f}"


def report(r: dict, timeline: bool = False) -> None:
    print(
        f"\n== N = {r['n']} sessions × {r['rounds']} round(s): {len(r['outcomes'])} tasks in {r['wall_s']:.1f} s "
        f"(warm-up {r['warm_s']:.1f} s)"
    )
    for w in r["warm"]:
        if w.error or w.wrong:
            print(f"   warm-up {w.page}: {w.error or w.wrong}")
    print(
        f"   {'page':<9} {'tasks':>5}  {'open p50 / p95 s':>16}  {'result p50 / p95 s':>18}  "
        "errors (box/timeout + wrong)"
    )
    for page in ("photo", "evaluate", "video"):
        outs = [o for o in r["outcomes"] if o.page == page]
        if not outs:
            continue
        opened = [o.open_s for o in outs if o.open_s is not None]
        done = [o.result_s for o in outs if o.result_s is not None and not o.error]
        errors = sum(1 for o in outs if o.error)
        wrong = sum(1 for o in outs if o.wrong and not o.error)
        print(
            f"   {page:<9} {len(outs):>5}  {fmt_times(opened):>16}  {fmt_times(done):>18}  "
            f"{errors + wrong} ({errors} + {wrong})"
        )
    print(
        f"   CPU during the sessions: server {r['server_cpu']:.0f} s, browser + Playwright {r['client_cpu']:.0f} s "
        f"(of {r['wall_s'] * (os.cpu_count() or 1):.0f} core-seconds; the rest went to other processes)"
    )
    if timeline:
        print("   timeline (s from the start; action → result):")
        for o in sorted(r["outcomes"], key=lambda o: o.action_at or 1e18):
            if o.action_at is not None:
                end = f"{o.result_at - r['t0']:6.1f}" if o.result_at else "     –"
                print(f"     {o.page:<8} s{o.session} r{o.round}: {o.action_at - r['t0']:6.1f} → {end}")
    for o in r["outcomes"]:
        if o.error or o.wrong:
            print(f"   ! {o.page} session {o.session} round {o.round}: {o.error or o.wrong}")
    accs = {o.detail.get("accuracy") for o in r["outcomes"] if o.page == "evaluate" and not o.error}
    if len(accs) > 1:
        print(f"   ! evaluate sessions disagree on the accuracy: {sorted(accs)}")
    print(
        f"   server RSS: {r['baseline_mb']:.0f} MB after warm-up, peak {r['peak_mb']:.0f} MB during the sessions "
        f"(process tree, polled), main process VmHWM {r['hwm_mb']:.0f} MB; "
        f"{r['tracebacks']} traceback(s) in the server log; {r['tmp_left']} entries left in the server's TMPDIR"
    )


def inconsistent_accuracy(r: dict) -> int:
    accs = [o.detail.get("accuracy") for o in r["outcomes"] if o.page == "evaluate" and not o.error]
    return 0 if len(set(accs)) <= 1 else len(accs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", default="4,8", help="comma-separated N values, each run on a fresh server")
    p.add_argument("--rounds", type=int, default=2, help="tasks per session (each on a reloaded page)")
    p.add_argument("--eval-limit", type=int, default=300, help="faces per evaluation (the page's 'Images' field)")
    p.add_argument("--same-bytes", action="store_true", help="upload the photos unchanged (a content cache may answer)")
    p.add_argument("--mix", default=",".join(MIX), help="tasks of sessions 0, 1, 2, … in turn (photo, evaluate, video)")
    p.add_argument(
        "--nice", type=int, default=0, help="niceness increment for the bench, its server and browser (< 0 needs root)"
    )
    p.add_argument("--timeline", action="store_true", help="print when each task acted and got its result")
    p.add_argument("--timeout", type=float, default=240, help="seconds one task may take")
    args = p.parse_args(argv)
    ns = [int(v) for v in args.sessions.split(",") if v.strip()]
    args.mix = [v.strip() for v in args.mix.split(",") if v.strip()]
    if not args.mix or set(args.mix) - {"photo", "evaluate", "video"}:
        p.error("--mix: a comma-separated list of photo, evaluate, video")
    if not ns or min(ns) < 1 or max(ns) > 32 or not 1 <= args.rounds <= 10:
        p.error("--sessions: 1–32 each; --rounds: 1–10")

    missing = [
        str(x) for x in (CHROMIUM, PHOTOS / "astronaut.png", PHOTOS / "t1.jpg", FER / "test") if not Path(x).exists()
    ]
    from fercore.inference.classify import default_model_path

    if not default_model_path().exists():
        missing.append(str(default_model_path()))
    if missing:
        print(
            f"cannot run: missing {', '.join(missing)} (chromium: bash scripts/bootstrap.sh --browser)", file=sys.stderr
        )
        return 2
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        print("cannot run: the playwright Python package is not installed", file=sys.stderr)
        return 2

    if args.nice:
        os.nice(args.nice)  # inherited by the server and the browser started below
    print(
        f"nice {os.nice(0)}; load average {os.getloadavg()[0]:.2f} / {os.cpu_count()} cores; "
        f"mix per session {' '.join(args.mix)} …; "
        f"{args.rounds} round(s); evaluate on {args.eval_limit} test faces; "
        f"{'same' if args.same_bytes else 'unique'} photo bytes per upload"
    )
    bad = 0
    with tempfile.TemporaryDirectory(prefix="fer-load-") as tmp:
        work = Path(tmp)
        check_unique_uploads(work)
        clip = write_mp4(PHOTOS / "grace_hopper.jpg", work / "face.mp4", frames=VIDEO_FRAMES)
        for n in ns:
            r = asyncio.run(load_round(n, args, work, clip))
            report(r, args.timeline)
            bad += sum(1 for o in r["outcomes"] if o.error or o.wrong) + inconsistent_accuracy(r)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
