"""Training on data that do not fit in memory.

:func:`fit_chunks` streams row chunks of any sliceable array (a
:class:`numpy.memmap`, an HDF5 or Zarr dataset, ...) through an estimator's
``partial_fit``: per epoch, the chunk order and the rows within each chunk are
shuffled from ``random_state``, and only one chunk is in memory at a time.

:func:`fit_full_batch` is full-batch gradient descent without the memory:
each epoch sums the gradient over the chunks and makes one update, the update
in-memory full-batch GD makes.

Memory stays bounded for memory-mapped files: pages of a file mapping that a
process has read count in its resident memory until the kernel evicts them,
so slicing a :class:`numpy.memmap` chunk after chunk would grow the resident
set toward the size of the file. A C-contiguous memmap is therefore read with
``os.preadv`` into one reused buffer (:class:`ChunkReader`): the file's pages
stay in the page cache, which the kernel can reclaim, and never enter the
process's resident set. Other array-likes are sliced.
"""

from __future__ import annotations

import mmap
import os
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state


def chunk_bounds(n_samples: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``chunk_size`` rows."""
    n_samples = _check_count("n_samples", n_samples, minimum=0)
    chunk_size = _check_count("chunk_size", chunk_size)
    return [(start, min(n_samples, start + chunk_size)) for start in range(0, n_samples, chunk_size)]


def _check_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool) of at least ``minimum``; else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_arguments(X: Any, y: Any, sample_weight: Any, chunk_size: Any, epochs: Any) -> tuple[int, int, int]:
    """Validate what both public functions take; return ``(n_samples, chunk_size, epochs)``."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or not hasattr(X, "__getitem__"):
        raise TypeError("X must be a 2-D array-like with a shape and row slicing (ndarray, np.memmap, HDF5 or "
                        f"Zarr dataset), got {type(X).__name__}" + ("" if shape is None else f" of shape {shape}")
                        + ".")
    n_samples = int(shape[0])
    if n_samples < 1:
        raise ValueError("X has no rows.")
    chunk_size = _check_count("chunk_size", chunk_size)
    epochs = _check_count("epochs", epochs)
    for name, values in (("y", y), ("sample_weight", sample_weight)):
        if values is None and name == "sample_weight":
            continue
        if values is None or not hasattr(values, "__len__") or not hasattr(values, "__getitem__"):
            raise TypeError(f"{name} must be an array-like sliceable by rows, got {type(values).__name__}.")
        if len(values) != n_samples:
            raise ValueError(f"X has {n_samples} rows but {name} has {len(values)}.")
    return n_samples, chunk_size, epochs


class ChunkReader:
    """Reads row ranges of an array-like, through one reused buffer when it is a memory-mapped file.

    Parameters
    ----------
    array : array-like
        A :class:`numpy.memmap` (read with ``os.preadv``, see the module
        docstring), or anything with ``shape`` and row slicing.
    max_rows : int
        Most rows one :meth:`read` returns (the buffer's size).

    Notes
    -----
    The array :meth:`read` returns is a view of the buffer, overwritten by the
    next call: copy it to keep it.
    """

    def __init__(self, array: Any, max_rows: int) -> None:
        self.array = array
        self.position = _file_position(array) if hasattr(os, "preadv") else None
        self.buffer = None
        if self.position is not None:
            self.buffer = np.empty((max_rows, *array.shape[1:]), dtype=array.dtype)
            self.row_bytes = self.buffer[:1].nbytes

    @property
    def direct(self) -> bool:
        """Whether rows are read from the file into the buffer (not through the mapping)."""
        return self.buffer is not None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an ndarray."""
        if self.buffer is None:
            return np.asarray(self.array[start:stop])
        out = self.buffer[:stop - start]
        view = memoryview(out.reshape(-1).view(np.uint8))
        offset, done = self.position + start * self.row_bytes, 0
        with open(self.array.filename, "rb", buffering=0) as f:
            while done < len(view):
                n = os.preadv(f.fileno(), [view[done:]], offset + done)
                if n <= 0:
                    raise OSError(f"{self.array.filename}: file ended before row {stop}.")
                done += n
        return out


def _file_position(array: Any) -> int | None:
    """Byte offset in its file of a C-contiguous memmap's first element; None if not such a memmap."""
    mapping = getattr(array, "_mmap", None)
    # mode "c" (copy-on-write) keeps its changes in private pages that the file does not see
    if (not isinstance(array, np.memmap) or mapping is None or not getattr(array, "filename", None)
            or getattr(array, "mode", "c") == "c" or not array.flags.c_contiguous or array.size == 0):
        return None
    # numpy maps the file from ``offset`` rounded down to the allocation granularity; a slice keeps the
    # mapping (and the ``offset`` attribute) of the memmap it came from.
    map_start = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY
    map_address = np.frombuffer(mapping, dtype=np.uint8).ctypes.data
    return map_start + array.ctypes.data - map_address


def fit_chunks(estimator: Any, X: Any, y: Any, *, chunk_size: int = 100_000, epochs: int = 1,
               shuffle: bool = True, random_state: Any = None, classes: Any = None,
               sample_weight: Any = None) -> Any:
    """Train ``estimator`` by ``partial_fit`` over row chunks of ``X`` and ``y``.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        A fastgd (or any scikit-learn incremental) estimator; it is updated in place.
    X : array-like of shape (n_samples, n_features)
        Any object with ``shape`` and row slicing ``X[start:stop]`` (memmap, HDF5, Zarr).
        A C-contiguous :class:`numpy.memmap` is read from its file without
        mapping its pages into memory (see the module docstring).
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Targets, sliceable the same way.
    chunk_size : int, default=100_000
        Rows read at a time, an integer >= 1; memory use is about
        ``2 * chunk_size * n_features`` values (the chunk as read and
        shuffled) plus the estimator's.
    epochs : int, default=1
        Passes over the data, an integer >= 1.
    shuffle : bool, default=True
        Shuffle the chunk order and the rows within each chunk, per epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffles.
    classes : array-like, optional
        All class labels (classifiers); default: ``np.unique`` of ``y`` read chunk by chunk.
    sample_weight : array-like of shape (n_samples,), optional
        Sample weights, sliced like ``y``.

    Returns
    -------
    estimator
        The trained estimator.

    Raises
    ------
    TypeError, ValueError
        An argument of the wrong type or value, named in the message.
    """
    if not callable(getattr(estimator, "partial_fit", None)):
        raise TypeError(f"fit_chunks trains an estimator by its partial_fit; {type(estimator).__name__} has none.")
    n_samples, chunk_size, epochs = _check_arguments(X, y, sample_weight, chunk_size, epochs)
    if not isinstance(shuffle, bool | np.bool_):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}.")
    rng = _random_state(random_state)
    bounds = chunk_bounds(n_samples, chunk_size)
    readers = [ChunkReader(a, chunk_size) if a is not None else None for a in (X, y, sample_weight)]
    kwargs: dict[str, Any] = {}
    if is_classifier(estimator):
        kwargs["classes"] = _all_classes(readers[1], bounds) if classes is None else classes
    shuffled = None  # one buffer for the shuffled rows of X, reused from chunk to chunk
    for _ in range(epochs):
        chunk_order = rng.permutation(len(bounds)) if shuffle else np.arange(len(bounds))
        for index in chunk_order:
            start, stop = bounds[index]
            X_chunk, y_chunk, w_chunk = (None if r is None else r.read(start, stop) for r in readers)
            if shuffle:
                rows = rng.permutation(stop - start)
                if shuffled is None or shuffled.dtype != X_chunk.dtype or shuffled.shape[1:] != X_chunk.shape[1:]:
                    shuffled = np.empty((chunk_size, *X_chunk.shape[1:]), dtype=X_chunk.dtype)
                X_chunk = np.take(X_chunk, rows, axis=0, out=shuffled[:stop - start], mode="clip")  # unbuffered
                y_chunk = y_chunk[rows]
                w_chunk = None if w_chunk is None else w_chunk[rows]
            estimator.partial_fit(X_chunk, y_chunk, sample_weight=w_chunk, **kwargs)
    return estimator


def _random_state(random_state: Any) -> np.random.RandomState:
    try:
        return check_random_state(random_state)
    except ValueError:
        raise ValueError("random_state must be None, an int or a numpy.random.RandomState, got "
                         f"{random_state!r}.") from None


def _all_classes(y: ChunkReader, bounds: list[tuple[int, int]]) -> np.ndarray:
    return np.unique(np.concatenate([np.unique(y.read(a, b)) for a, b in bounds]))


def fit_full_batch(estimator: Any, X: Any, y: Any, *, chunk_size: int = 100_000, epochs: int | None = None,
                   classes: Any = None, sample_weight: Any = None) -> Any:
    """Exact full-batch gradient descent over data read ``chunk_size`` rows at a time.

    Each epoch reads every chunk once, sums the loss gradient over them and
    makes one optimizer update with the mean gradient plus the penalty: the
    same update as ``estimator.set_params(batch_size=None).fit(X, y)`` with
    ``shuffle=False``, with one chunk in memory instead of the whole data.

    Parameters
    ----------
    estimator : LinearClassifier or LinearRegressor
        A fastgd linear estimator (its solver, learning rate, penalty and
        clipping apply); it is fitted from zero.
    X : array-like of shape (n_samples, n_features)
        Any object with ``shape`` and row slicing (memmap, HDF5, Zarr).
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Targets, sliceable the same way.
    chunk_size : int, default=100_000
        Rows read at a time, an integer >= 1.
    epochs : int, optional
        Number of updates, an integer >= 1 (default: the estimator's ``max_iter``).
    classes : array-like, optional
        All class labels (classifiers); default: read from ``y``.
    sample_weight : array-like of shape (n_samples,), optional
        Sample weights, sliced like ``y``.

    Returns
    -------
    estimator
        The fitted estimator.

    Raises
    ------
    TypeError, ValueError
        An argument of the wrong type or value, named in the message.
    """
    if not hasattr(estimator, "_fit_full_batch"):
        raise TypeError(f"fit_full_batch trains fastgd's linear estimators, got {type(estimator).__name__}.")
    # epochs=None: the estimator's max_iter, which its own parameter validation checks
    n_samples, chunk_size, _ = _check_arguments(X, y, sample_weight, chunk_size, 1 if epochs is None else epochs)
    epochs = estimator.max_iter if epochs is None else int(epochs)
    bounds = chunk_bounds(n_samples, chunk_size)
    readers = [ChunkReader(a, chunk_size) if a is not None else None for a in (X, y, sample_weight)]
    if is_classifier(estimator) and classes is None:
        classes = _all_classes(readers[1], bounds)

    def read_chunks():
        for start, stop in bounds:
            yield tuple(None if r is None else r.read(start, stop) for r in readers)

    return estimator._fit_full_batch(read_chunks, epochs, classes)
