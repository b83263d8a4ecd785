"""Helpers for the browser tests: Streamlit servers, Debian's Chromium through Playwright, network
namespaces for WebRTC, and a y4m fake camera made from a real photo (see DESIGN.md)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from fercore.data.locations import shared_data_dir
from fercore.paths import PROJECT_ROOT as ROOT

APP = ROOT / "dashboard" / "app.py"
# Screenshots refresh the README's only when asked (FER_UPDATE_SCREENSHOTS=1); otherwise a temp folder.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("FER_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "fer-screenshots"
)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def skip_unless_browser(need_root: bool = False) -> None:
    """Skip (with the reason) when Chromium or Playwright is missing, or root is needed and absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    if need_root:
        if os.geteuid() != 0:
            pytest.skip("needs root: the WebRTC test runs in a network namespace (ip netns)")
        if shutil.which("ip") is None:
            pytest.skip("needs the `ip` command (iproute2) for a network namespace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ``python -c DEBUG_LAUNCHER loggers streamlit run APP …``: Streamlit's own CLI, the named loggers at DEBUG
DEBUG_LAUNCHER = """import logging, runpy, sys
h = logging.StreamHandler()
h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
for name in sys.argv[1].split(","):
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(h)
    logger.propagate = False
sys.argv = sys.argv[2:]
runpy.run_module("streamlit", run_name="__main__")
"""


def streamlit_cmd(port: int, address: str = "127.0.0.1", debug_loggers: tuple[str, ...] = ()) -> list[str]:
    """``streamlit run`` of the app; with ``debug_loggers``, through DEBUG_LAUNCHER (the same CLI)."""
    entry = [sys.executable, "-c", DEBUG_LAUNCHER, ",".join(debug_loggers)] if debug_loggers else [sys.executable, "-m"]
    return [
        *entry,
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


class Server:
    """A Streamlit server process (optionally inside a network namespace), its log in a file."""

    def __init__(
        self, port: int, env: dict[str, str], log: Path, netns: str | None = None, debug_loggers: tuple[str, ...] = ()
    ):
        self.port, self.netns, self.log = port, netns, log
        # with debug_loggers, these libraries' debug lines (timestamped) go to the log too
        cmd = streamlit_cmd(port, "0.0.0.0" if netns else "127.0.0.1", debug_loggers)
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self._log = open(log, "wb")  # noqa: SIM115 - open for the server's lifetime, closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"

    def wait_healthy(self, timeout: float = 60) -> float:
        """Block until /_stcore/health answers ok; returns the time.perf_counter() of that answer."""
        deadline = time.time() + timeout
        if self.netns:  # the server is only reachable from inside its namespace: poll from there
            probe = (
                "import sys,time,urllib.request\n"
                f"d=time.time()+{timeout}\n"
                "while time.time()<d:\n"
                "  try:\n"
                f"    r=urllib.request.urlopen('http://127.0.0.1:{self.port}/_stcore/health',timeout=2)\n"
                "    if r.read().strip()==b'ok': sys.exit(0)\n"
                "  except Exception: time.sleep(0.1)\n"
                "sys.exit(1)\n"
            )
            rc = subprocess.run(
                ["ip", "netns", "exec", self.netns, sys.executable, "-c", probe], timeout=timeout + 10
            ).returncode
            if rc != 0:
                raise RuntimeError(f"streamlit did not become healthy:\n{self.log_text()}")
            return time.perf_counter()
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited ({self.proc.returncode}):\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return time.perf_counter()
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"streamlit did not become healthy in {timeout} s:\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()


def checkout_relative(path: Path) -> str:
    """``path`` relative to the checkout, where every test server runs: it works there and keeps this
    machine's folders out of the pages (and of the screenshots the docs show)."""
    return os.path.relpath(path, ROOT)


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FER_DATA", "FER_ICE_SERVERS")}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    if "FER_SHARED_DATA" not in env:
        env["FER_SHARED_DATA"] = checkout_relative(shared_data_dir())
    return env


@contextmanager
def netns(name: str):
    """A network namespace with loopback and a veth pair 10.203.0.1 ↔ 10.203.0.2 (DESIGN.md)."""

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ip("-n", name, "addr", "add", "10.203.0.1/24", "dev", "v0")
        ip("-n", name, "addr", "add", "10.203.0.2/24", "dev", "v1")
        ip("-n", name, "link", "set", "v0", "up")
        ip("-n", name, "link", "set", "v1", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def chromium_in_netns(name: str, folder: Path, nice: int = 0) -> Path:
    """An executable that starts Chromium inside the namespace (Playwright talks to it over pipes);
    ``nice`` > 0 runs it that much nicer than its caller."""
    wrapper = folder / "chromium-netns.sh"
    prefix = f"nice -n {int(nice)} " if nice else ""
    wrapper.write_text(f'#!/bin/sh\nexec {prefix}ip netns exec {name} "{CHROMIUM}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def write_y4m(photo: Path, out: Path, frames: int = 30, width: int = 640, height: int = 480, fps: int = 15) -> Path:
    """A y4m clip for --use-file-for-fake-video-capture: the photo, letterboxed, drifting a little."""
    import cv2

    bgr = cv2.imread(str(photo))
    if bgr is None:
        raise FileNotFoundError(photo)
    scale = min((width - 40) / bgr.shape[1], (height - 20) / bgr.shape[0])
    img = cv2.resize(bgr, (int(bgr.shape[1] * scale), int(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    with open(out, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            canvas = np.full((height, width, 3), 40, np.uint8)
            dx = int(10 * np.sin(2 * np.pi * i / frames))
            x0 = (width - img.shape[1]) // 2 + dx
            y0 = (height - img.shape[0]) // 2
            canvas[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out


def wait_idle(page, timeout: float = 60, quiet: float = 1.0) -> None:
    """Wait until the app has rendered and no script run is in progress for ``quiet`` seconds."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout * 1000)
    deadline = time.time() + timeout
    calm_since = None
    while time.time() < deadline:
        running = page.locator(
            '[data-testid="stStatusWidgetRunningIcon"], '
            '[data-testid="stStatusWidgetRunningManIcon"], [data-testid="stSkeleton"], '
            '[data-testid="stSpinner"]'
        ).count()
        if running:
            calm_since = None
        elif calm_since is None:
            calm_since = time.time()
        elif time.time() - calm_since >= quiet:
            return
        time.sleep(0.1)
    raise TimeoutError("the app kept running")


def page_errors(page) -> list[str]:
    """Texts of exception elements and error alerts on the page."""
    loc = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [loc.nth(i).inner_text() for i in range(loc.count())]


def write_mp4(photo: Path, out: Path, frames: int = 20, size: int = 320) -> Path:
    """A short H.264 clip (PyAV) of the photo panning slowly."""
    import av
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    side = min(rgb.shape[:2])
    rgb = cv2.resize(rgb[:side, :side], (size + 20, size + 20), interpolation=cv2.INTER_AREA)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            crop = np.ascontiguousarray(rgb[i % 20 : i % 20 + size, :size])
            for packet in stream.encode(av.VideoFrame.from_ndarray(crop, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def save_screenshot(page, path: Path, max_height: int = 3000) -> None:
    """The whole app (Streamlit scrolls inside its main block, so grow the viewport to fit it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(...[...document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], section')].map(e => e.scrollHeight), 0)""")
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), max_height))})
    try:
        time.sleep(0.5)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)


def open_app(page, url: str, timeout: float = 90, server: Server | None = None) -> None:
    """Open a page of the app and wait until it has rendered; one reload if the first load stalls
    (a loaded 2-core machine can drop the first WebSocket handshake)."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in (1, 2):
        try:
            page.goto(url)
            wait_idle(page, timeout=timeout)
            return
        except (TimeoutError, PlaywrightError) as exc:
            if attempt == 2:
                body = page.inner_text("body")[:1000] if page.locator("body").count() else ""
                log = server.log_text() if server else ""
                raise AssertionError(f"{url} did not render: {exc}\npage: {body}\nserver log: {log}") from None


def choose(page, label: str, option: str, attempts: int = 3, timeout: float = 10_000) -> None:
    """Pick ``option`` in the selectbox labelled ``label``, then wait for the app to settle. Its list can
    take a moment to open on a busy machine, and a rerun still under way (an expander just opened) can
    close it before the click lands: open it and click again, ``attempts`` times, ``timeout`` ms each."""
    import re

    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    choice = page.get_by_role("option").filter(has_text=re.compile(f"^{re.escape(option)}$")).first
    for attempt in range(attempts):
        wait_idle(page)
        box.click()
        try:
            choice.click(timeout=timeout)
            break
        except Exception:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)


def selected(page, label: str) -> str:
    """The value a selectbox shows."""
    return page.locator('[data-testid="stSelectbox"]').filter(has_text=label).locator("input").input_value()
