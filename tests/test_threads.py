"""``n_threads``: validation, the blocked mini-batch gradient, thread counts set for the fit only."""

import os
import threading
import time

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_info

import fastgd.backends.cpu as cpu
import fastgd.backends.cpu_mlp as cpu_mlp
from fastgd import LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor
from fastgd.backends.cpu import block_partition, resolve_n_threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [LinearClassifier, LinearRegressor, MLPClassifier, MLPRegressor]


@pytest.fixture(scope="module")
def wide():
    """4,000 x 100 samples: a full batch is 404,000 units of work, split into blocks."""
    X, y = make_classification(n_samples=4000, n_features=100, n_informative=20, random_state=0)
    return X, y


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_n_threads_is_a_parameter(cls):
    est = cls(n_threads=2)
    assert est.get_params()["n_threads"] == 2
    assert clone(est).n_threads == 2
    assert cls().n_threads is None
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match="n_threads"):
        cls(n_threads=0, max_iter=1).fit(X, y)


def test_resolve_n_threads_caps_at_numba_pool_and_leaves_busy_cpus_alone(monkeypatch):
    cap = numba.config.NUMBA_NUM_THREADS
    assert resolve_n_threads(1) == 1
    assert resolve_n_threads(10_000) == cap
    assert 1 <= resolve_n_threads(None) <= cap
    monkeypatch.setattr(cpu, "available_cpus", lambda: 64)
    monkeypatch.setattr(cpu.numba.config, "NUMBA_NUM_THREADS", 64)
    for idle, threads in [(64.0, 64), (63.6, 64), (63.4, 63), (53.5, 54), (0.8, 1), (0.0, 1)]:
        monkeypatch.setattr(cpu, "idle_cpus", lambda idle=idle: idle)
        assert resolve_n_threads(None) == threads, idle
    monkeypatch.setattr(cpu, "available_cpus", lambda: 2)
    for idle, threads in [(2.0, 2), (1.7, 2), (1.4, 1), (1.0, 1), (0.0, 1)]:
        monkeypatch.setattr(cpu, "idle_cpus", lambda idle=idle: idle)
        assert resolve_n_threads(None) == threads, idle
    # without /proc/stat: the 1-minute load average
    monkeypatch.setattr(cpu, "idle_cpus", lambda: None)
    for load, threads in [(0.3, 2), (0.6, 1), (1.0, 1), (4.0, 1)]:
        monkeypatch.setattr(cpu, "load_average", lambda load=load: load)
        assert resolve_n_threads(None) == threads, load


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="idle_cpus reads /proc/stat (Linux)")
def test_idle_cpus_leaves_out_this_process_and_counts_other_load(monkeypatch):
    """This process's own CPU use is not load; another process's is.

    The counters are swapped for made-up ones, so that the test does not depend on what else the machine runs:
    4 CPUs, a window of 1 s (400 ticks at 100 Hz).
    """
    samples = []

    def sample():
        return samples.pop(0)

    monkeypatch.setattr(cpu, "_cpu_sample", sample)
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(cpu.os, "sysconf", lambda name: 100)
    start = cpu._CpuSample(time=0.0, idle=0, total=0, own=0.0)
    # 1 s in which this process used 2 CPUs and the other 2 were idle: all 4 are free for it
    monkeypatch.setattr(cpu, "_idle_state", {"sample": start, "cpus": None})
    samples.append(cpu._CpuSample(time=1.0, idle=200, total=400, own=2.0))
    assert cpu.idle_cpus() == pytest.approx(4.0)
    # the next second another process kept 3 CPUs busy and this one used the fourth: 1 is free for it
    samples.append(cpu._CpuSample(time=2.0, idle=200, total=800, own=3.0))
    assert cpu.idle_cpus() == pytest.approx(1.0)
    # a call 0.05 s later reads nothing new: the last figure
    samples.append(cpu._CpuSample(time=2.05, idle=210, total=820, own=3.0))
    assert cpu.idle_cpus() == pytest.approx(1.0)
    # the real counters, twice, move forward; a busy second reads as this process's own
    monkeypatch.undo()
    before = cpu._cpu_sample()
    _spin(0.3)
    after = cpu._cpu_sample()
    assert after.total > before.total and after.own - before.own >= 0.25


def test_block_partition_depends_on_the_batch_only():
    rows, blocks = block_partition(4000, 101.0, 101)
    assert rows * blocks >= 4000 > rows * (blocks - 1)
    assert rows * 101 >= cpu.MIN_BLOCK_WORK and blocks <= cpu.MAX_BLOCKS
    assert block_partition(32, 101.0, 101) == (0, 1)                     # small batches stay serial
    assert block_partition(4000, 101.0, cpu.MAX_BLOCK_ELEMENTS) == (0, 1)  # too large a model to copy per block
    rows, blocks = block_partition(10**7, 101.0, 101)
    assert blocks == cpu.MAX_BLOCKS


def _full_batch_gd_reference(X, y, lr, alpha, epochs):
    """Full-batch GD on the mean logistic loss + alpha / 2 ||w||^2, in NumPy (labels in {-1, +1})."""
    s = np.where(y == 1, 1.0, -1.0)
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(epochs):
        margin = s * (X @ w + b)
        d = -s / (1.0 + np.exp(margin))
        w, b = w - lr * (X.T @ d / len(y) + alpha * w), b - lr * d.mean()
    return w, b


def test_blocked_full_batch_matches_numpy_and_is_bitwise_equal_across_thread_counts(wide):
    X, y = wide
    params = {"loss": "log_loss", "batch_size": None, "learning_rate": "constant", "learning_rate_init": 0.5,
              "max_iter": 20, "tol": None, "alpha": 1e-3, "shuffle": False}
    assert block_partition(len(y), X.shape[1] + 1.0, X.shape[1] + 1)[0] > 0  # the blocked path is taken
    fits = [LinearClassifier(**params, n_threads=n).fit(X, y) for n in (1, 2, 1)]
    w, b = _full_batch_gd_reference(X, y, 0.5, 1e-3, 20)
    np.testing.assert_allclose(fits[0].coef_[0], w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fits[0].intercept_[0], b, rtol=1e-9)
    for other in fits[1:]:
        np.testing.assert_array_equal(other.coef_, fits[0].coef_)
        np.testing.assert_array_equal(other.intercept_, fits[0].intercept_)
        assert other.loss_curve_ == fits[0].loss_curve_


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_mini_batches_are_bitwise_equal_across_thread_counts(wide, dtype, monkeypatch):
    X, y = wide
    X = X.astype(dtype)
    params = {"loss": "hinge", "solver": "adam", "batch_size": 1500, "learning_rate": "constant",
              "learning_rate_init": 1e-2, "max_iter": 4, "tol": None, "random_state": 0}
    a = LinearClassifier(**params, n_threads=1).fit(X, y)
    b = LinearClassifier(**params, n_threads=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.coef_.dtype == dtype
    with monkeypatch.context() as patch:  # the serial one-pass gradient (tested against NumPy in test_linear.py)
        patch.setattr(cpu, "THREADED_MIN_WORK", 1 << 62)
        serial = LinearClassifier(**params).fit(X, y)
    tol = 1e-10 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(a.coef_, serial.coef_, rtol=tol, atol=tol)
    Y = np.column_stack([X[:, :5] @ np.arange(5.0), X[:, 5]])
    reg = {"batch_size": 2000, "learning_rate": "constant", "learning_rate_init": 1e-2, "max_iter": 3,
           "tol": None, "random_state": 0, "fit_intercept": False}
    ra = LinearRegressor(**reg, n_threads=1).fit(X, Y)
    rb = LinearRegressor(**reg, n_threads=2).fit(X, Y)
    np.testing.assert_array_equal(ra.coef_, rb.coef_)
    np.testing.assert_array_equal(ra.intercept_, np.zeros(2))


def test_numba_threads_set_for_the_fit_and_restored(wide, monkeypatch):
    X, y = wide
    seen = []
    original = cpu.linear_epoch_blocked

    def recording(*args):
        seen.append(numba.get_num_threads())
        return original(*args)

    monkeypatch.setattr(cpu, "linear_epoch_blocked", recording)
    before = numba.get_num_threads()
    LinearClassifier(batch_size=None, learning_rate="constant", max_iter=2, tol=None, n_threads=1).fit(X, y)
    assert seen == [1, 1]
    assert numba.get_num_threads() == before
    seen.clear()
    monkeypatch.setattr(cpu, "idle_cpus", lambda: 64.0)  # an idle machine: the default takes every CPU
    LinearClassifier(batch_size=None, learning_rate="constant", max_iter=1, tol=None).fit(X, y)
    assert seen == [min(cpu.available_cpus(), numba.config.NUMBA_NUM_THREADS, block_partition(len(y), 101.0, 101)[1])]


def test_a_fit_in_another_thread_leaves_this_threads_count_alone(wide):
    X, y = wide
    before = numba.get_num_threads()
    results = {}

    def fit(n):
        results[n] = LinearClassifier(batch_size=None, learning_rate="constant", max_iter=3, tol=None, random_state=0,
                                      n_threads=n).fit(X, y).coef_

    workers = [threading.Thread(target=fit, args=(n,)) for n in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert numba.get_num_threads() == before
    np.testing.assert_array_equal(results[1], results[2])


def test_mlp_epochs_multiply_on_one_blas_thread(monkeypatch):
    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    seen = {}

    def recording(name):
        original = getattr(cpu_mlp, name)

        def epoch(*args):
            seen.setdefault(name, []).append(
                [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"])
            return original(*args)
        return epoch

    for name in ("mlp_epoch", "mlp_epoch_split"):
        monkeypatch.setattr(cpu_mlp, name, recording(name))
    MLPClassifier((8,), batch_size=8, max_iter=1, n_threads=1, random_state=0).fit(X, y)
    MLPClassifier((8,), batch_size=32, max_iter=1, n_threads=2, random_state=0).fit(X, y)
    assert len(seen["mlp_epoch"]) == 1 and all(n == 1 for n in seen["mlp_epoch"][0])  # a batch of one part
    split = seen["mlp_epoch_split"]  # parts of a batch on Numba's threads, one BLAS thread each
    assert len(split) == 1 and all(n == 1 for n in split[0])


def test_batch_parts_depend_on_the_batch_and_model_only():
    assert cpu_mlp.batch_parts(15, 60_000) == 1                          # two parts would have 7 and 8 rows
    assert cpu_mlp.batch_parts(16, 60_000) == 2
    assert cpu_mlp.batch_parts(32, 60_000) == 2
    assert cpu_mlp.batch_parts(128, 60_000) == 2                         # more parts only of 64 rows or more
    assert cpu_mlp.batch_parts(256, 60_000) == 256 // cpu_mlp.WIDE_PART_ROWS
    assert cpu_mlp.batch_parts(4096, 60_000) == cpu_mlp.MAX_PARTS
    assert cpu_mlp.batch_parts(4096, 10**6) == min(cpu_mlp.MAX_PARTS, cpu_mlp.MAX_PART_ELEMENTS // 10**6 + 1)
    assert cpu_mlp.batch_parts(4096, 10**8) == 2                         # a huge model: one extra buffer


@pytest.mark.parametrize("batch_size", [16, 48, 300, 1000])
def test_mlp_batches_split_into_parts_match_the_serial_epoch_on_any_thread_count(batch_size, monkeypatch):
    """Split batches compute the serial epoch's update to float64 round-off, and the same bits on 1 and 2 threads.

    The serial epoch (one part: ``MAX_PARTS = 1``) is checked against scikit-learn and finite differences in
    test_mlp.py. Batches of 16 and 48 are two parts (the last of 48, 40 rows: parts of 24 and 16 rows), of 300
    four parts of 75 rows (the last, 100 rows: 75 and 25), 1000 is the full batch in eight parts.
    """
    X, y = make_classification(n_samples=1000, n_features=12, n_informative=6, n_classes=3, random_state=0)
    rng = np.random.default_rng(0)
    sample_weight = rng.uniform(0.5, 2.0, size=y.size)
    Xs = sp.csr_matrix(np.where(rng.random(X.shape) < 0.5, 0.0, X))
    cases = [(MLPClassifier, X, y, {"alpha": 0.1}),
             (MLPClassifier, Xs, y, {"solver": "sgd", "momentum": 0.9, "clip_norm": 0.5}),
             (MLPRegressor, X, np.c_[X[:, 0], X[:, 1] - X[:, 2]], {"activation": "tanh", "solver": "adamw"})]
    assert cpu_mlp.batch_parts(batch_size, 1) >= 2
    for cls, data, target, options in cases:
        def fit(n_threads, cls=cls, data=data, target=target, options=options):
            return cls((16, 8), batch_size=batch_size, max_iter=3, shuffle=True, random_state=0, tol=0,
                       n_threads=n_threads, **options).fit(data, target, sample_weight=sample_weight)

        split = [fit(n) for n in (1, 2)]
        with monkeypatch.context() as m:
            m.setattr(cpu_mlp, "MAX_PARTS", 1)
            m.setattr(cpu_mlp, "PIECE_ROWS", 10**9)
            serial = fit(1)
        for a, b in zip(split[0].coefs_ + split[0].intercepts_, split[1].coefs_ + split[1].intercepts_, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(split[0].loss_curve_, split[1].loss_curve_)
        np.testing.assert_allclose(split[0].loss_curve_, serial.loss_curve_, rtol=1e-12)
        for a, b in zip(split[0].coefs_ + split[0].intercepts_, serial.coefs_ + serial.intercepts_, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(split[0].gradient_norms_, serial.gradient_norms_, rtol=1e-9)


def test_one_blas_thread_limits_and_restores():
    def blas_threads():
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    before = blas_threads()
    with cpu_mlp.one_blas_thread():
        assert blas_threads() and all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_blocked_csr_gradients_match_the_serial_pass(monkeypatch):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(6000, 300, density=0.3, random_state=0, format="csr")
    y = (X @ rng.normal(size=300) > 0).astype(int)
    params = {"loss": "log_loss", "batch_size": 3000, "learning_rate": "constant", "learning_rate_init": 0.1,
              "max_iter": 3, "tol": None, "random_state": 0}
    assert block_partition(3000, X.nnz / X.shape[0] + 1, 301)[0] > 0
    a = LinearClassifier(**params, n_threads=1).fit(X, y)
    b = LinearClassifier(**params, n_threads=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    monkeypatch.setattr(cpu, "THREADED_MIN_WORK", 1 << 62)
    serial = LinearClassifier(**params).fit(X, y)
    np.testing.assert_allclose(a.coef_, serial.coef_, rtol=1e-10, atol=1e-14)


_CONCURRENT_FITS = """
import threading, warnings
import numpy as np
from sklearn.datasets import make_classification
from fastgd import LinearClassifier
warnings.simplefilter("ignore")
X, y = make_classification(4000, 100, random_state=0)
results = {}
def fit(i, n):
    results[i] = LinearClassifier(batch_size=None, max_iter=10, tol=None, learning_rate="constant", n_threads=n,
                                  random_state=0).fit(X, y).coef_
threads = [threading.Thread(target=fit, args=(i, n)) for i, n in enumerate((1, 2, 1, 2))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert all(np.array_equal(results[0], r) for r in results.values())
import numba
print(numba.threading_layer())
"""


@pytest.mark.slow
def test_concurrent_fits_survive_the_workqueue_threading_layer():
    import os
    import subprocess
    import sys

    # workqueue aborts the process when two threads launch parallel code at once; fits take turns under it
    result = subprocess.run([sys.executable, "-c", _CONCURRENT_FITS], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NUMBA_THREADING_LAYER": "workqueue"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "workqueue"


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_mlp_batches_in_pieces_match_the_serial_epoch(monkeypatch, solver):
    """Parts larger than PIECE_ROWS run piece by piece, on one thread as on two, as the serial epoch does.

    With PIECE_ROWS = 40, MAX_PARTS = 2 and 300 samples: batch 200 is two parts of 100 rows in pieces of 40,
    40 and 20; L-BFGS's 300 rows likewise (parts of 150). The serial reference is one part (``MAX_PARTS = 1``)
    with PIECE_ROWS above the batch.
    """
    X, y = make_classification(n_samples=300, n_features=12, n_informative=6, n_classes=3, random_state=0)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    options = {"solver": solver, "batch_size": 200, "max_iter": 3, "random_state": 0, "tol": 0, "alpha": 0.01}

    def fit(n_threads):
        return MLPClassifier((16, 8), n_threads=n_threads, **options).fit(X, y, sample_weight=sample_weight)

    monkeypatch.setattr(cpu_mlp, "PIECE_ROWS", 10**9)
    monkeypatch.setattr(cpu_mlp, "MAX_PARTS", 1)
    serial = fit(1)
    monkeypatch.setattr(cpu_mlp, "PIECE_ROWS", 40)
    monkeypatch.setattr(cpu_mlp, "MAX_PARTS", 2)
    seen = []
    original = cpu_mlp.MLPTrainer._allocate_parts

    def recording(trainer):
        first = trainer.part_grads is None
        original(trainer)
        if first:
            seen.append((trainer.n_parts, trainer.x_parts.shape[1], trainer.piece_grads.shape[0]))

    monkeypatch.setattr(cpu_mlp.MLPTrainer, "_allocate_parts", recording)
    fits = [fit(n_threads) for n_threads in (1, 2)]
    for pieces in fits:
        for a, b in zip(pieces.coefs_ + pieces.intercepts_, serial.coefs_ + serial.intercepts_, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)
        np.testing.assert_allclose(pieces.loss_, serial.loss_, rtol=1e-10)
    for a, b in zip(fits[0].coefs_, fits[1].coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [s[0] for s in seen] == [2, 2] and all(rows == 40 and buffers > 0 for _, rows, buffers in seen)
