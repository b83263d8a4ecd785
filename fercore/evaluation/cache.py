"""Evaluations computed once: results kept by what they depend on, in memory and on disk.

An evaluation depends on the model's files, the data, the split, the sample size and test-time
augmentation, nothing else. :class:`EvalKey` names exactly that, so comparing model a with b right
after evaluating a only classifies the faces with b, and a result outlives a page reload or a server
restart (it is saved under the data cache folder, ``$FER_CACHE`` or ``~/.cache/fercore``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fercore.data.dataset import stratified_subset
from fercore.data.loader import Dataset, default_cache_dir
from fercore.evaluation.evaluate import EvalResult, evaluate
from fercore.models.ensemble import MANIFEST

__all__ = ["EvalKey", "EvalCache", "file_identity", "model_identity", "evaluation_sample", "evaluate_many", "eta"]

CACHE_FORMAT = 1


def file_identity(path: str | Path) -> str:
    """``resolved path|size|mtime_ns`` of a file or folder: changes when it is rewritten."""
    p = Path(path).resolve()
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"


def model_identity(path: str | Path) -> str:
    """A model file's identity; for a tier (its manifest) also every member file beside it, since
    re-shipping a member changes the tier without touching the manifest."""
    p = Path(path)
    parts = [file_identity(p)]
    if p.name == MANIFEST:
        parts += [file_identity(f) for f in sorted(p.parent.iterdir()) if f.is_file() and f.name != MANIFEST]
    return ";".join(parts)


@dataclass(frozen=True)
class EvalKey:
    """What an evaluation's result depends on (``limit`` 0 = the whole split)."""

    model: str
    data: str
    split: str
    limit: int
    tta: bool

    @classmethod
    def of(cls, model: str | Path, data: str, split: str, limit: int, tta: bool) -> EvalKey:
        """The key of ``model`` (a file, identified by :func:`model_identity`) on ``data`` (an
        identity string such as :func:`file_identity` of the data path)."""
        return cls(model_identity(model), data, split, int(limit), bool(tta))

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:20]


def evaluation_sample(dataset: Dataset, split: str, limit: int) -> Dataset:
    """The faces an evaluation runs on: the split, or a reproducible class-balanced sample of
    ``limit`` of its faces (0 or more than the split: all of it)."""
    sub = dataset.split(split)
    return stratified_subset(sub, int(limit)) if 0 < limit < len(sub) else sub


class EvalCache:
    """Evaluation results by :class:`EvalKey`: the last ``max_entries`` in memory, and (with a
    ``folder``) each one saved as a small ``.npz`` (labels and probabilities) so that a new process
    finds it again; the ``max_files`` most recent files are kept. Thread-safe."""

    def __init__(self, folder: str | Path | None = None, max_entries: int = 16, max_files: int = 64):
        if max_entries < 1 or max_files < 1:
            raise ValueError("max_entries and max_files must be ≥ 1")
        self.folder = Path(folder) if folder is not None else None
        self.max_entries, self.max_files = max_entries, max_files
        self._memory: OrderedDict[EvalKey, EvalResult] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> EvalCache:
        """A cache saving under the data cache folder (``$FER_CACHE`` or ``~/.cache/fercore``)."""
        return cls(default_cache_dir() / "evaluations")

    def _file(self, key: EvalKey) -> Path | None:
        return self.folder / f"eval-{key.digest()}.npz" if self.folder is not None else None

    def get(self, key: EvalKey) -> EvalResult | None:
        """The saved result for ``key``, or None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        result = self._load(key)
        if result is not None:
            self._remember(key, result)
        return result

    def put(self, key: EvalKey, result: EvalResult) -> None:
        self._remember(key, result)
        file = self._file(key)
        if file is None:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp = file.with_suffix(".tmp.npz")
            meta = {"format": CACHE_FORMAT, "key": asdict(key), "model": result.model, "tta": result.tta}
            meta["temperature"] = result.temperature
            np.savez(tmp, y_true=result.y_true, proba=result.proba, meta=np.array(json.dumps(meta)))
            tmp.replace(file)
            self._prune()
        except OSError:  # a read-only or full disk: the result stays in memory only
            pass

    def _remember(self, key: EvalKey, result: EvalResult) -> None:
        with self._lock:
            self._memory[key] = result
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_entries:
                self._memory.popitem(last=False)

    def _load(self, key: EvalKey) -> EvalResult | None:
        file = self._file(key)
        if file is None or not file.exists():
            return None
        try:
            with np.load(file) as npz:
                meta = json.loads(str(npz["meta"]))
                if meta.get("format") != CACHE_FORMAT or meta.get("key") != asdict(key):
                    return None
                return EvalResult(
                    y_true=npz["y_true"],
                    proba=npz["proba"],
                    model=str(meta["model"]),
                    tta=bool(meta["tta"]),
                    temperature=float(meta["temperature"]),
                )
        except (OSError, ValueError, KeyError):  # damaged or from another version: recompute
            return None

    def _prune(self) -> None:
        if self.folder is None:
            return
        files = sorted(self.folder.glob("eval-*.npz"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in files[self.max_files :]:
            old.unlink(missing_ok=True)


def eta(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the rate so far; None before anything is done."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, elapsed_s / done * (total - done))


def evaluate_many(
    models: Sequence[str | Path],
    sample: Dataset,
    keys: Sequence[EvalKey],
    cache: EvalCache,
    tta: bool = False,
    progress: Callable[[int, int, float | None], None] | None = None,
) -> list[EvalResult]:
    """Each model evaluated on ``sample`` (its result under the matching key), reusing what ``cache``
    already holds. ``progress(faces_done, faces_total, seconds_left)`` counts only the faces that
    are really classified, so a comparison after evaluating model a reports (and costs) model b alone."""
    if len(models) != len(keys):
        raise ValueError("one key per model")
    results: list[EvalResult | None] = [cache.get(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    total, start = len(sample) * len(todo), time.perf_counter()
    for n, i in enumerate(todo):

        def tick(fraction: float, before: int = n * len(sample)) -> None:
            if progress is not None:
                done = before + round(fraction * len(sample))
                progress(done, total, eta(done, total, time.perf_counter() - start))

        result = evaluate(str(models[i]), sample, tta=tta, progress=tick, model_name=str(models[i]))
        cache.put(keys[i], result)
        results[i] = result
    return [r for r in results if r is not None]
