"""Training on data that do not fit in memory.

:func:`fit_chunks` streams row chunks of any sliceable array (a
:class:`numpy.memmap`, an HDF5 or Zarr dataset, ...) through an estimator's
``partial_fit``: per epoch, the chunk order and the rows within each chunk are
shuffled from ``random_state``, and only one chunk is in memory at a time.

:func:`fit_full_batch` is full-batch gradient descent without the memory:
each epoch sums the gradient over the chunks and makes one update, the update
in-memory full-batch GD makes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils import check_random_state


def chunk_bounds(n_samples: int, chunk_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of at most ``chunk_size`` rows."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    return [(start, min(n_samples, start + chunk_size)) for start in range(0, n_samples, chunk_size)]


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
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Targets, sliceable the same way.
    chunk_size : int, default=100_000
        Rows read at a time; memory use is about ``chunk_size * n_features`` values.
    epochs : int, default=1
        Passes over the data.
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
    """
    if epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    n_samples = X.shape[0]
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} rows but y has {len(y)}.")
    bounds = chunk_bounds(n_samples, chunk_size)
    rng = check_random_state(random_state)
    kwargs: dict[str, Any] = {}
    if is_classifier(estimator):
        kwargs["classes"] = _all_classes(y, bounds) if classes is None else classes
    for _ in range(epochs):
        chunk_order = rng.permutation(len(bounds)) if shuffle else np.arange(len(bounds))
        for index in chunk_order:
            start, stop = bounds[index]
            X_chunk, y_chunk = np.asarray(X[start:stop]), np.asarray(y[start:stop])
            w_chunk = None if sample_weight is None else np.asarray(sample_weight[start:stop])
            if shuffle:
                rows = rng.permutation(stop - start)
                X_chunk, y_chunk = X_chunk[rows], y_chunk[rows]
                w_chunk = None if w_chunk is None else w_chunk[rows]
            estimator.partial_fit(X_chunk, y_chunk, sample_weight=w_chunk, **kwargs)
    return estimator


def _all_classes(y: Any, bounds: list[tuple[int, int]]) -> np.ndarray:
    return np.unique(np.concatenate([np.unique(np.asarray(y[a:b])) for a, b in bounds]))


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
        Rows read at a time.
    epochs : int, optional
        Number of updates (default: the estimator's ``max_iter``).
    classes : array-like, optional
        All class labels (classifiers); default: read from ``y``.
    sample_weight : array-like of shape (n_samples,), optional
        Sample weights, sliced like ``y``.

    Returns
    -------
    estimator
        The fitted estimator.
    """
    if not hasattr(estimator, "_fit_full_batch"):
        raise TypeError(f"fit_full_batch trains fastgd's linear estimators, got {type(estimator).__name__}.")
    n_samples = X.shape[0]
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} rows but y has {len(y)}.")
    bounds = chunk_bounds(n_samples, chunk_size)
    if is_classifier(estimator) and classes is None:
        classes = _all_classes(y, bounds)

    def read_chunks():
        for start, stop in bounds:
            weights = None if sample_weight is None else np.asarray(sample_weight[start:stop])
            yield np.asarray(X[start:stop]), np.asarray(y[start:stop]), weights

    return estimator._fit_full_batch(read_chunks, estimator.max_iter if epochs is None else int(epochs), classes)
