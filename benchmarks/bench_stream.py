"""asv suite: a linear model trained on a memory-mapped file larger than the memory it may use.

``StreamFit`` trains ``LinearClassifier(loss="log_loss")`` for 2 epochs with
:func:`fastgd.stream.fit_chunks` (chunks of 200,000 rows) over a float32
``numpy.memmap`` of ``STREAM_ROWS`` x 100 -- 10,000,000 rows, 4 GB on disk, by
default; set ``FASTGD_BENCH_STREAM_ROWS`` for a smaller run. The file is
written once per asv run (``setup_cache``) by blocks, so writing it maps
nothing into memory; where the disk lacks room the row count shrinks to fit
and the benchmarks report the size used (``track_rows``).

- ``peakmem_fit``: asv's peak resident memory of the process (target: under 1 GB);
- ``track_peak_rss_during_training``: the peak resident set of the training alone
  (Linux: reset through ``/proc/self/clear_refs`` before it, read from
  ``VmHWM`` after), in MB;
- ``track_samples_per_s``: rows x epochs / seconds.

The helpers are shared with ``benchmarks/compare.py --stream``.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

try:
    from fastgd import LinearClassifier
    from fastgd.stream import fit_chunks
except ImportError:  # a commit without the streaming helper: the benchmarks are skipped
    LinearClassifier = fit_chunks = None

STREAM_ROWS = int(os.environ.get("FASTGD_BENCH_STREAM_ROWS", 10_000_000))
STREAM_FEATURES = 100
STREAM_CHUNK = 200_000
STREAM_EPOCHS = 2


def rows_that_fit(directory: str | Path, n_rows: int, n_features: int = STREAM_FEATURES,
                  reserve: int = 2 << 30) -> int:
    """``n_rows``, or fewer so that the data leave ``reserve`` bytes free on the disk of ``directory``."""
    free = shutil.disk_usage(directory).free - reserve
    row_bytes = n_features * 4 + 1  # float32 features, an int8 label
    return max(0, min(n_rows, free // row_bytes))


def write_dataset(directory: str | Path, n_rows: int, n_features: int = STREAM_FEATURES, seed: int = 0,
                  block: int = 100_000) -> tuple[Path, Path]:
    """Write ``X.f32`` (raw float32, row-major) and ``y.npy`` (int8 labels) into ``directory`` by blocks.

    Labels are ``x . w + noise > 0`` for a fixed random ``w``: a linearly
    learnable problem (about 95 % accuracy is reachable). Nothing is memory
    mapped while writing, so the writer's resident memory stays that of a block.
    """
    directory = Path(directory)
    X_path, y_path = directory / "X.f32", directory / "y.npy"
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features).astype(np.float32)
    y = np.empty(n_rows, dtype=np.int8)
    with open(X_path, "wb") as f:
        for start in range(0, n_rows, block):
            stop = min(n_rows, start + block)
            X = rng.standard_normal((stop - start, n_features), dtype=np.float32)
            noise = rng.standard_normal(stop - start, dtype=np.float32) * np.float32(np.sqrt(n_features) / 4)
            y[start:stop] = X @ w + noise > 0
            X.tofile(f)
    np.save(y_path, y)
    return X_path, y_path


def open_dataset(X_path: str | Path, y_path: str | Path, n_features: int = STREAM_FEATURES):
    """The data as read-only memmaps (nothing is read yet)."""
    n_rows = os.path.getsize(X_path) // (4 * n_features)
    X = np.memmap(X_path, dtype=np.float32, mode="r", shape=(n_rows, n_features))
    return X, np.load(y_path, mmap_mode="r")


def evict_from_page_cache(path: str | Path) -> bool:
    """Ask the kernel to drop the file's pages from its cache (``posix_fadvise``): the next read is from disk."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


class PeakRSS:
    """Peak resident set size of this process over a stretch of code.

    On Linux the kernel's high-water mark (``VmHWM``) is reset before
    (``/proc/self/clear_refs``) and read after; elsewhere it falls back to
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the peak of the whole
    process's life (``exact`` is then False).
    """

    def __enter__(self) -> PeakRSS:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = True
        except OSError:
            self.exact = False
        return self

    def __exit__(self, *exc) -> None:
        self.bytes = _vm_hwm() if self.exact else _ru_maxrss()


def current_rss() -> int:
    """Resident set size of this process now, in bytes (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return _ru_maxrss()


def _ru_maxrss() -> int:
    scale = 1 if os.uname().sysname == "Darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def train(X, y, chunk_size: int = STREAM_CHUNK, epochs: int = STREAM_EPOCHS) -> tuple[object, float, PeakRSS]:
    """Fit the benchmarked model over the memmaps; returns it, the seconds and the peak RSS of the training."""
    model = LinearClassifier(loss="log_loss", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_chunks(LinearClassifier(loss="log_loss", random_state=0), X[:2000], y[:2000], chunk_size=1000)  # compile
        with PeakRSS() as peak:
            started = time.perf_counter()
            fit_chunks(model, X, y, chunk_size=chunk_size, epochs=epochs, random_state=0)
            seconds = time.perf_counter() - started
    return model, seconds, peak


class StreamFit:
    """``fit_chunks`` over a float32 memmap of STREAM_ROWS x 100 (4 GB at 10,000,000 rows), 2 epochs."""

    timeout = 1800
    number = 1
    repeat = 1
    warmup_time = 0

    def setup_cache(self):
        if LinearClassifier is None:
            raise NotImplementedError("fastgd.stream is not available in this commit")
        rows = rows_that_fit(".", STREAM_ROWS)
        X_path, y_path = write_dataset(".", rows)
        return str(X_path.resolve()), str(y_path.resolve())

    def setup(self, paths):
        if LinearClassifier is None:
            raise NotImplementedError("fastgd.stream is not available in this commit")
        self.X, self.y = open_dataset(*paths)

    def peakmem_fit(self, paths):
        train(self.X, self.y)

    def track_samples_per_s(self, paths):
        _, seconds, _ = train(self.X, self.y)
        return self.X.shape[0] * STREAM_EPOCHS / seconds

    track_samples_per_s.unit = "samples/s"

    def track_peak_rss_during_training(self, paths):
        _, _, peak = train(self.X, self.y)
        return peak.bytes / 1e6

    track_peak_rss_during_training.unit = "MB"

    def track_rows(self, paths):
        return self.X.shape[0]

    track_rows.unit = "rows"
