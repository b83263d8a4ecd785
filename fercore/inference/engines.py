"""Where the work of a collection runs: ``local`` (a process pool on this machine, the default) or
``ray`` (a Ray cluster, or a Ray started on this machine). Both map one module-level function over
picklable tasks and yield ``(task, result)`` pairs as tasks finish, in any order.

Ray is an optional extra (``pip install .[scale]`` or ``requirements-scale.txt``): it is imported
only when a ``RayEngine`` is built, so ``import fercore`` and the dashboard never load it.

Each worker process builds its frame pipeline once (``worker_pipeline``, cached per process) and
reuses it for every task it runs: the model is loaded once per worker, not once per task. Ray tasks
whose worker dies (killed, out of memory, the node lost) are retried by Ray (``max_retries``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:  # the pipeline (and its model code) is imported by workers, not by whoever lists ENGINES
    from fercore.inference.pipeline import FramePipeline, PipelineSpec

ENGINES: tuple[str, ...] = ("local", "ray")
T = TypeVar("T")
R = TypeVar("R")


@functools.lru_cache(maxsize=4)
def worker_pipeline(spec: PipelineSpec, stream: bool = False, whole_image: bool = False) -> FramePipeline:
    """This process's pipeline for ``spec``, built on first use and then reused (one model load per
    worker). A stream pipeline holds a tracker: callers ``reset()`` it before each video segment."""
    return spec.build(stream=stream, whole_image=whole_image)


class Engine(Protocol):
    """Runs ``fn`` over tasks on some workers."""

    workers: int

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        """``(task, fn(task))`` as each task finishes (any order). An exception in ``fn`` is raised here."""
        ...

    def close(self) -> None: ...


class LocalEngine:
    """A pool of ``workers`` processes on this machine (spawned: no state forked from the caller)."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        pending: dict[Future[R], T] = {}
        for task in tasks:
            pending[self._pool.submit(fn, task)] = task
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _exit_with_parent(parent: int) -> None:
    """In a pool worker: exit when the process that started it is gone (killed with SIGKILL, say), so
    no orphan keeps a CPU busy; an interrupted collection is resumed by running it again."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="fer-parent-watch", daemon=True).start()


def code_root() -> str:
    """The folder holding this ``fercore`` package, for workers that must import the same code."""
    return str(Path(__file__).resolve().parent.parent.parent)


def ray_runtime_env() -> dict[str, Any]:
    """A Ray ``runtime_env`` whose workers import this checkout's ``fercore`` (local clusters; on a real
    cluster every node has the project installed instead)."""
    path = os.pathsep.join(p for p in (code_root(), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


class RayEngine:
    """Ray tasks on a cluster (``address``: ``ray://HOST:10001``, ``auto`` for the cluster this machine
    belongs to) or on a new Ray started here (``address`` None, ``workers`` CPUs). An already initialised
    Ray (``ray.init`` called by the caller) is used as it is. ``max_retries``: attempts after a worker dies."""

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3):
        try:
            import ray
        except ImportError:
            raise RuntimeError(
                "--engine ray needs Ray: pip install -r requirements-scale.txt (or pip install '.[scale]')"
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            if address:  # a cluster: its nodes have the project installed
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(  # "local": a new Ray here, even when this machine already runs one
                    address="local",
                    num_cpus=workers,
                    runtime_env=ray_runtime_env(),
                    include_dashboard=False,
                    log_to_driver=False,
                )
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self.max_retries = max_retries

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_apply)
        fn_ref = ray.put(fn)  # any picklable callable, shipped once
        pending = {remote.remote(fn_ref, task): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # a worker died more often than retried, a node lost…
                    raise RuntimeError(f"a Ray task failed: {str(exc).strip().splitlines()[-1]}") from None
                yield task, result

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _apply(fn: Callable[[T], R], task: T) -> R:
    """The Ray task: ``fn(task)`` (Ray wraps functions, not callable objects)."""
    return fn(task)


def make_engine(name: str = "local", workers: int = 1, address: str | None = None) -> Engine:
    """The engine called ``name`` (one of ``ENGINES``)."""
    if name == "local":
        if address:
            raise ValueError("--address applies to --engine ray only")
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(address, workers)
    raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
