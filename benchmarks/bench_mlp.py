"""asv suite: training throughput of ``fastgd.MLPClassifier`` (a 100-256-128-10 ReLU network).

Parametrised by optimizer (``adam``, ``sgd``: scikit-learn's rules) x batch size x dtype. Each benchmark
trains one epoch on a small subset of ``make_classification(n_features=100, n_informative=50,
n_classes=10)``: 2,000 samples at batch size 1, 10,000 otherwise. ``setup`` fits a first epoch, so that the
kernels are compiled (or loaded from Numba's cache) before any timing; each timed call is one more epoch of
the same model (``warm_start=True``, ``max_iter=1``). ``MLPEpoch`` trains on one thread (``n_threads=1``: the
serial epoch, comparable across machines and with earlier commits); ``MLPEpochThreads`` on one and two (Adam,
float32), where two threads split each batch into two parts; ``MLPEpochLate`` per-sample Adam after five
epochs, when subnormal numbers have appeared.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

try:
    from fastgd import MLPClassifier as _MLPClassifier
except ImportError:  # a commit without the MLP estimators: every benchmark is skipped
    _MLPClassifier = None

OPTIMIZERS = ["adam", "sgd"]
BATCH_SIZES = [1, 32, 128, 1024]
DTYPES = ["float32", "float64"]
HIDDEN = (256, 128)

_DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def n_samples(batch_size: int) -> int:
    """Samples of the subset trained at ``batch_size``."""
    return 2_000 if batch_size == 1 else 10_000


def data(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's samples in ``dtype`` (made once per process)."""
    if dtype not in _DATA:
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=10_000, n_features=100, n_informative=50, n_classes=10,
                                   random_state=0)
        _DATA[dtype] = (X.astype(dtype), y)
    return _DATA[dtype]


def samples_per_second(epoch, n_samples: int, repeats: int = 3) -> float:
    """``n_samples`` divided by the median time of ``repeats`` calls of ``epoch()``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return n_samples / float(np.median(times))


class MLPEpoch:
    """One epoch of MLP training: seconds (``time_``) and samples per second (``track_``)."""

    params = (OPTIMIZERS, BATCH_SIZES, DTYPES)
    param_names = ["optimizer", "batch_size", "dtype"]
    timeout = 120

    def setup(self, optimizer: str, batch_size: int, dtype: str) -> None:
        if _MLPClassifier is None:
            raise NotImplementedError("fastgd.MLPClassifier is not available in this commit")
        X, y = data(dtype)
        n = n_samples(batch_size)
        self.X, self.y = X[:n], y[:n]
        self.model = _MLPClassifier(hidden_layer_sizes=HIDDEN, solver=optimizer, batch_size=batch_size,
                                    max_iter=1, warm_start=True, random_state=0, tol=0.0, n_iter_no_change=10**9,
                                    n_threads=1)
        self.epoch()  # compiles (or loads) the kernels

    def epoch(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch is not convergence
            self.model.fit(self.X, self.y)

    # ``*params``: asv passes each class's parameters; the subclasses time and track the same way
    def time_epoch(self, *params) -> None:
        self.epoch()

    def track_samples_per_second(self, *params) -> float:
        return samples_per_second(self.epoch, self.X.shape[0])

    track_samples_per_second.unit = "samples/s"


class MLPEpochThreads(MLPEpoch):
    """One epoch of Adam on float32 with ``n_threads`` 1 and 2 (two threads: each batch split in two parts)."""

    params = ([32, 128, 1024], [1, 2])
    param_names = ["batch_size", "n_threads"]

    def setup(self, batch_size: int, n_threads: int) -> None:
        super().setup("adam", batch_size, "float32")
        self.model.set_params(n_threads=n_threads)
        self.epoch()  # the split epoch's kernels, on two threads


class MLPEpochLate(MLPEpoch):
    """Per-sample Adam on float32 after five epochs: the regime where subnormal numbers appear.

    By then 15-25 % of the weights have decayed below 1e-19 (``benchmarks/subnormal_epochs.py``); arithmetic
    on what they produce is slow on x86 unless it is flushed to zero, as fastgd's epochs do
    (``fastgd._numeric.float_env``). An early epoch (``MLPEpoch``) does not show it.
    """

    params = ([1],)
    param_names = ["batch_size"]

    def setup(self, batch_size: int) -> None:
        super().setup("adam", batch_size, "float32")
        for _ in range(4):
            self.epoch()


def _cuda_reason() -> str | None:
    """Why the CUDA benchmarks cannot run here (None when they can)."""
    try:
        from fastgd.cuda import simulated, unavailable_reason
    except ImportError:
        return "this commit has no CUDA backend"
    if simulated():
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): not a speed measurement"
    return unavailable_reason()


class MLPEpochCUDA(MLPEpoch):
    """One epoch of MLP training with ``device="cuda"`` (Adam, float32); skipped without a usable GPU."""

    params = ([32, 128, 1024],)
    param_names = ["batch_size"]
    timeout = 300

    def setup(self, batch_size: int) -> None:
        reason = _cuda_reason()
        if reason is not None or _MLPClassifier is None:
            raise NotImplementedError(reason or "fastgd.MLPClassifier is not available in this commit")
        from numba import cuda

        self.synchronize = cuda.synchronize
        self.X, self.y = data("float32")
        self.model = _MLPClassifier(hidden_layer_sizes=HIDDEN, batch_size=batch_size, max_iter=1, warm_start=True,
                                    random_state=0, tol=0.0, n_iter_no_change=10**9, device="cuda")
        self.epoch()

    def epoch(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(self.X, self.y)
        self.synchronize()
