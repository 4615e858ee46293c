"""Subnormal numbers flushed to zero while fastgd trains, and the floating-point mode restored afterwards.

The effect is observed through results: a product below the smallest normal number is 0 inside
:func:`fastgd._numeric.float_env.subnormals_flushed` and subnormal outside it; a subnormal parameter reads as 0
in a threaded optimizer step launched inside it (Numba's threads adopt the launching thread's mode); in fits,
serial or split across threads, a feature whose values are subnormal reads as 0 and its weights get no
gradient. The exact values outside the block come from NumPy, which computes with subnormals.
"""

from __future__ import annotations

import subprocess
import sys

import numba
import numpy as np
import pytest

from fastgd import LinearRegressor, MLPRegressor
from fastgd._numeric.float_env import HAS_MXCSR, _subnormals_are_flushed, subnormals_flushed
from fastgd.backends.cpu import block_partition
from fastgd.optim import OPTIMIZERS

pytestmark = pytest.mark.skipif(not HAS_MXCSR or numba.config.DISABLE_JIT,
                                reason="FTZ/DAZ are set on x86 CPUs, in compiled code")


@numba.njit(cache=False)
def products(a, b, out):
    """``out[i] = a[i] * b[i]`` (from arrays: not folded at compile time), on the calling thread."""
    for i in range(out.size):
        out[i] = a[i] * b[i]


@numba.njit(parallel=True, cache=False)
def products_on_every_thread(a, b, out):
    """:func:`products`, the rows spread over Numba's threads."""
    for i in numba.prange(out.size):
        out[i] = a[i] * b[i]


def _products(dtype, kernel=products_on_every_thread, n=4096):
    small = np.sqrt(np.finfo(dtype).tiny) / 4  # squares to a sixteenth of the smallest normal number
    a = np.full(n, small, dtype=dtype)
    out = np.empty_like(a)
    kernel(a, a, out)
    return out, a * a  # NumPy's product: subnormal


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_are_flushed_inside_the_block_and_subnormal_again_after(dtype):
    out, exact = _products(dtype)
    assert exact[0] != 0 and abs(exact[0]) < np.finfo(dtype).tiny
    np.testing.assert_array_equal(out, exact)
    assert not _subnormals_are_flushed()
    with subnormals_flushed():
        assert _subnormals_are_flushed()
        inside, _ = _products(dtype, products)
    np.testing.assert_array_equal(inside, 0.0)
    assert not _subnormals_are_flushed()
    after, _ = _products(dtype)
    np.testing.assert_array_equal(after, exact)  # Numba's threads are back to their own mode too


def test_the_mode_is_restored_when_the_block_raises():
    with pytest.raises(RuntimeError, match="inside"):
        with subnormals_flushed():
            raise RuntimeError("inside")
    assert not _subnormals_are_flushed()


def test_numba_threads_of_a_threaded_step_adopt_the_mode_of_the_launching_thread():
    """SGD with lr 1 adds 4 tiny to parameters of tiny / 2: 4.5 tiny exactly, or 4 tiny when the input reads as 0."""
    tiny = np.finfo(np.float32).tiny
    n = 1 << 18  # threaded: many chunks, on every Numba thread
    opt = OPTIMIZERS["sgd"](lr=1.0)
    grads = np.full(n, -4 * tiny, dtype=np.float32)
    results = {}
    for flushed in (False, True, False):
        params = np.full(n, tiny / 2, dtype=np.float32)
        if flushed:
            with subnormals_flushed():
                opt.step(params, grads, opt.init(params))
        else:
            opt.step(params, grads, opt.init(params))
        results.setdefault(flushed, []).append(params)
    exact = np.float32(tiny / 2) + np.float32(4 * tiny)  # NumPy: 4.5 tiny
    for params in results[False]:
        np.testing.assert_array_equal(params, exact)
    np.testing.assert_array_equal(results[True][0], np.float32(4 * tiny))


def _subnormal_feature(n_rows, n_features, seed=0):
    """Rows whose feature 0 is half the smallest normal float64 (subnormal) and targets far from 0.

    Without DAZ, every product of feature 0 with a delta of the order of -1e6 is a normal number, far above
    the smallest one (so are the gradient and the moments made of it), so feature 0's weights receive a
    gradient and move; with DAZ the feature reads as 0 and they receive none.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    X[:, 0] = np.finfo(np.float64).tiny / 2
    y = 1e6 + X[:, 1:].sum(axis=1)
    return X, y


@pytest.mark.parametrize("n_threads", [1, 2])
def test_an_mlp_fit_reads_subnormal_inputs_as_zero_and_leaves_the_mode_as_it_was(n_threads):
    """The weights of feature 0 start at 0 and stay there; split across threads, each part reads it as 0."""
    X, y = _subnormal_feature(40, 3)
    product = 1e4 * X[:, 0]  # what NumPy computes for a row's product with a delta of 1e4: normal
    assert np.all(product >= 1000 * np.finfo(np.float64).tiny)
    est = MLPRegressor((4,), activation="identity", batch_size=20, max_iter=1, shuffle=False, random_state=0,
                       n_threads=n_threads, warm_start=True)
    with pytest.warns(Warning):  # one epoch: not converged
        est.fit(X, y)
    est.coefs_[0][0] = 0.0
    with pytest.warns(Warning):
        est.fit(X, y)
    np.testing.assert_array_equal(est.coefs_[0][0], 0.0)
    assert np.all(est.coefs_[0][1:] != 0.0)  # the other features' weights were trained
    assert not _subnormals_are_flushed()
    out, exact = _products(np.float64)
    np.testing.assert_array_equal(out, exact)


@pytest.mark.parametrize("batch_size", [1, None])
def test_a_linear_fit_reads_subnormal_inputs_as_zero(batch_size):
    """Per sample, and in full batches split into blocks on Numba's threads."""
    X, y = _subnormal_feature(4000, 100)
    if batch_size is None:
        assert block_partition(len(y), X.shape[1] + 1.0, X.shape[1] + 1)[0] > 0  # the blocked path is taken
    est = LinearRegressor(solver="adam", batch_size=batch_size, max_iter=1, tol=None, random_state=0,
                          n_threads=2)
    est.fit(X, y)
    assert est.coef_[0] == 0.0
    assert np.all(est.coef_[1:] != 0.0)
    assert not _subnormals_are_flushed()


_FIRST_PARALLEL_REGION_IN_A_FIT = """
import warnings

import numba
import numpy as np
from fastgd import MLPRegressor

warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
MLPRegressor((4,), batch_size=20, max_iter=1, n_threads=2, random_state=0).fit(X, y)  # Numba's first parallel code


@numba.njit(parallel=True)
def products(a, out):
    for i in numba.prange(out.size):
        out[i] = a[i] * a[i]


a = np.full(4096, np.sqrt(np.finfo(np.float64).tiny) / 4)
out = np.empty_like(a)
products(a, out)
flushed = int(np.count_nonzero(out != a * a))
print("flushed products:", flushed)
raise SystemExit(1 if flushed else 0)
"""


@pytest.mark.slow
def test_threads_created_during_a_fit_do_not_keep_the_flushed_mode():
    """A new thread inherits its creator's control word: Numba's threads must not be born inside a fit."""
    result = subprocess.run([sys.executable, "-c", _FIRST_PARALLEL_REGION_IN_A_FIT], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
