"""asv suites: training throughput and peak memory of ``fastgd.LinearClassifier``.

Parametrised by solver x batch size (1: per-sample SGD, 32: mini-batches,
"full": full-batch GD) x dtype. ``setup`` compiles the kernels (or loads them
from Numba's cache) with a tiny fit of the same configuration once per process,
so the timings exclude compilation.
"""

from __future__ import annotations

import time
import warnings
from functools import lru_cache

import numpy as np
from sklearn.datasets import make_classification

try:
    from fastgd import LinearClassifier
except ImportError:  # a commit without the estimators: every benchmark is skipped
    LinearClassifier = None

SOLVERS = ["sgd", "adam"]
BATCH_SIZES = [1, 32, "full"]
DTYPES = ["float32", "float64"]

#: Size of the throughput data set and number of epochs per fit.
N_SAMPLES, N_FEATURES, EPOCHS = 20_000, 50, 5
#: Size of the peak-memory data set (float64: 80 MB of X).
PEAKMEM_SAMPLES, PEAKMEM_FEATURES = 100_000, 100

_WARMED: set[tuple[str, object, str]] = set()


@lru_cache(maxsize=4)
def classification_data(n_samples: int, n_features: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``make_classification`` data, C-contiguous in ``dtype``, made once per process."""
    X, y = make_classification(n_samples=n_samples, n_features=n_features, n_informative=n_features // 2,
                               random_state=0)
    return np.ascontiguousarray(X, dtype=dtype), y


def make_estimator(solver, batch_size, max_iter=EPOCHS):
    """The benchmarked classifier; raises NotImplementedError when fastgd lacks it."""
    if LinearClassifier is None:
        raise NotImplementedError("fastgd.LinearClassifier is not available in this commit")
    kwargs = {} if solver == "sgd" else {"learning_rate": "constant", "learning_rate_init": 1e-3}
    return LinearClassifier(solver=solver, batch_size=batch_size, max_iter=max_iter, tol=None,
                            random_state=0, **kwargs)


def warm_up(solver, batch_size, dtype) -> None:
    """Compile (or load) the kernels of this configuration with a tiny fit, once per process."""
    key = (solver, batch_size, dtype)
    if key in _WARMED:
        return
    X, y = classification_data(200, 10, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_estimator(solver, batch_size, max_iter=2).fit(X, y)
    _WARMED.add(key)


class LinearClassifierFit:
    """``LinearClassifier.fit``: 5 epochs over 20,000 x 50 samples, no early stop."""

    params = (SOLVERS, BATCH_SIZES, DTYPES)
    param_names = ["solver", "batch_size", "dtype"]
    timeout = 180

    def setup(self, solver, batch_size, dtype):
        warm_up(solver, batch_size, dtype)
        self.X, self.y = classification_data(N_SAMPLES, N_FEATURES, dtype)
        self.est = make_estimator(solver, batch_size)

    def time_fit(self, solver, batch_size, dtype):
        self.est.fit(self.X, self.y)

    def track_samples_per_s(self, solver, batch_size, dtype):
        """Samples processed per second: n_samples * epochs / median fit time of 3."""
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            self.est.fit(self.X, self.y)
            times.append(time.perf_counter() - t0)
        return self.X.shape[0] * self.est.n_iter_ / float(np.median(times))

    track_samples_per_s.unit = "samples/s"


class LinearClassifierPeakMem:
    """Peak resident memory of a process that fits on 100,000 x 100 samples (X included)."""

    params = (BATCH_SIZES, DTYPES)
    param_names = ["batch_size", "dtype"]
    timeout = 180

    def setup(self, batch_size, dtype):
        warm_up("sgd", batch_size, dtype)
        self.X, self.y = classification_data(PEAKMEM_SAMPLES, PEAKMEM_FEATURES, dtype)
        self.est = make_estimator("sgd", batch_size, max_iter=2)

    def peakmem_fit(self, batch_size, dtype):
        self.est.fit(self.X, self.y)
