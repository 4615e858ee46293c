"""Row access shared by dense and CSR inputs.

Dense ``X`` is a C-contiguous 2-D array; CSR ``X`` is the tuple
``(data, indices, indptr)``. The functions below are overloaded on that type,
so a single epoch kernel serves both layouts without a branch per sample.

Shuffled rows are latency-bound: each sample's row is a cache miss, and the
compiled loop would wait for it. :func:`prefetch_row` asks for the row of the
sample :data:`PREFETCH_DISTANCE` steps ahead, so that memory works while the
CPU computes. (Copying shuffled blocks of rows into a contiguous buffer was
measured too: the copy itself waited on the same misses.)

The overloads are compiled with :data:`fastgd._config.INLINE_OPTIONS`: LLVM
inlines them into the epoch loop, where a call per sample (argument
marshalling and reference counts of every array) would cost more than the
arithmetic of a small row. Their sums run in the parameters' dtype: a float64
accumulator would turn a vectorised float32 loop into a float64 one.
"""

from __future__ import annotations

import numba
from numba import types
from numba.extending import overload

from .._config import INLINE_OPTIONS, REDUCTION_FASTMATH
from ._cast import cast_like
from ._prefetch import prefetch

_JIT_OPTIONS = {"cache": False, "fastmath": set(REDUCTION_FASTMATH), "error_model": "numpy", **INLINE_OPTIONS}
#: :func:`sample_gradient` sums nothing; without fast-math, ``d * x + l2 * w`` is not contracted to a fused
#: multiply-add and gives the bits of a batch of one sample (``d * x`` stored, then ``+ l2 * w``).
_STRICT_JIT_OPTIONS = {**_JIT_OPTIONS, "fastmath": False}


#: How many samples ahead :func:`prefetch_row` reaches.
PREFETCH_DISTANCE = 8

#: Bytes per cache line.
CACHE_LINE = 64


def run_overload(typer, *args):
    """Run the implementation that overload ``typer`` picks for ``args``, in plain Python.

    Compiled code never calls the Python stubs below; with
    ``NUMBA_DISABLE_JIT=1`` (coverage runs) they run the very implementation
    the compiled code would inline.
    """
    return typer(*[numba.typeof(arg) for arg in args])(*args)


def prefetch_row(X, order, i):  # pragma: no cover - compiled overload below
    """Prefetch the row of sample ``order[i + PREFETCH_DISTANCE]``, if any."""
    return run_overload(_prefetch_row, X, order, i)


def decision(X, order, i, params, n_features, n_outputs, fit_intercept, z, norms):  # pragma: no cover
    """Write the ``n_outputs`` decision values of sample ``order[i]`` into ``z``.

    With ``norms`` an array of shape ``(2, n_outputs)``, the same pass also
    writes ``x . w_k`` into ``norms[0, k]`` and ``||w_k||^2`` into
    ``norms[1, k]`` and returns ``||x||^2``: the pieces of the norm of the
    sample's gradient (see :func:`fastgd.kernels.linear.sample_norm2`). With
    ``norms=None`` it returns 0.
    """
    return run_overload(_decision, X, order, i, params, n_features, n_outputs, fit_intercept, z, norms)


def accumulate(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first):  # pragma: no cover
    """Add ``dz[k] * x`` to the gradient of output ``k``; overwrite instead when ``first``."""
    return run_overload(_accumulate, X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first)


def sample_gradient(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2):  # pragma: no cover
    """Write the gradient of sample ``order[i]`` alone into ``grads``.

    Output ``k``'s weights get ``dz[k] * x + l2 * w_k``, its intercept
    ``dz[k]`` (0 without ``fit_intercept``): the gradient of a batch of one
    sample, in one pass over the row and the weights.
    """
    return run_overload(_sample_gradient, X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2)


def _is_dense(X):
    """Whether ``X`` is the Numba type of a dense array (else a CSR tuple)."""
    return isinstance(X, types.Array)


@overload(prefetch_row, jit_options=_JIT_OPTIONS)
def _prefetch_row(X, order, i):
    if _is_dense(X):
        line = max(1, CACHE_LINE // (X.dtype.bitwidth // 8))  # elements per cache line, a compile-time constant

        def impl(X, order, i):
            ahead = i + PREFETCH_DISTANCE
            if ahead < order.shape[0]:
                n_features = X.shape[1]
                row = X[order[ahead]]
                for j in range(0, n_features, line):
                    prefetch(row, j)
                prefetch(row, n_features - 1)
        return impl

    def impl_csr(X, order, i):
        return None
    return impl_csr


@overload(decision, jit_options=_JIT_OPTIONS)
def _decision(X, order, i, params, n_features, n_outputs, fit_intercept, z, norms):
    with_norms = not isinstance(norms, types.NoneType)
    if _is_dense(X):
        if not with_norms:
            def impl(X, order, i, params, n_features, n_outputs, fit_intercept, z, norms):
                x = X[order[i]]
                for k in range(n_outputs):
                    w = params[k * n_features:(k + 1) * n_features]
                    s = cast_like(0.0, params)
                    for j in range(n_features):
                        s += w[j] * x[j]
                    z[k] = s + params[n_outputs * n_features + k] if fit_intercept else s
                return cast_like(0.0, params)
            return impl

        def impl_norms(X, order, i, params, n_features, n_outputs, fit_intercept, z, norms):
            x = X[order[i]]
            xx = cast_like(0.0, params)
            for k in range(n_outputs):
                w = params[k * n_features:(k + 1) * n_features]
                s = cast_like(0.0, params)
                ww = cast_like(0.0, params)
                if k == 0:
                    for j in range(n_features):
                        s += w[j] * x[j]
                        ww += w[j] * w[j]
                        xx += x[j] * x[j]
                else:
                    for j in range(n_features):
                        s += w[j] * x[j]
                        ww += w[j] * w[j]
                norms[0, k] = s
                norms[1, k] = ww
                z[k] = s + params[n_outputs * n_features + k] if fit_intercept else s
            return xx
        return impl_norms

    def impl_csr(X, order, i, params, n_features, n_outputs, fit_intercept, z, norms):
        data, indices, indptr = X
        row = order[i]
        lo = indptr[row]
        hi = indptr[row + 1]
        xx = cast_like(0.0, params)
        if with_norms:
            for p in range(lo, hi):
                xx += data[p] * data[p]
        for k in range(n_outputs):
            offset = k * n_features
            s = cast_like(0.0, params)
            for p in range(lo, hi):
                s += params[offset + indices[p]] * data[p]
            if with_norms:
                w = params[offset:offset + n_features]
                ww = cast_like(0.0, params)
                for j in range(n_features):
                    ww += w[j] * w[j]
                norms[0, k] = s
                norms[1, k] = ww
            z[k] = s + params[n_outputs * n_features + k] if fit_intercept else s
        return xx
    return impl_csr


@overload(accumulate, jit_options=_JIT_OPTIONS)
def _accumulate(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first):
    if _is_dense(X):
        def impl(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first):
            x = X[order[i]]
            for k in range(n_outputs):
                g = grads[k * n_features:(k + 1) * n_features]
                d = dz[k]
                if first:
                    for j in range(n_features):
                        g[j] = d * x[j]
                else:
                    for j in range(n_features):
                        g[j] += d * x[j]
                if fit_intercept:
                    b = n_outputs * n_features + k
                    grads[b] = d if first else grads[b] + d
        return impl

    def impl_csr(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first):
        data, indices, indptr = X
        row = order[i]
        if first:
            grads[:] = 0
        for k in range(n_outputs):
            offset = k * n_features
            d = dz[k]
            for p in range(indptr[row], indptr[row + 1]):
                grads[offset + indices[p]] += d * data[p]
            if fit_intercept:
                grads[n_outputs * n_features + k] += d
    return impl_csr


@overload(sample_gradient, jit_options=_STRICT_JIT_OPTIONS)
def _sample_gradient(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2):
    if _is_dense(X):
        def impl(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2):
            x = X[order[i]]
            l2_ = cast_like(l2, params)
            n_coefs = n_outputs * n_features
            for k in range(n_outputs):
                w = params[k * n_features:(k + 1) * n_features]
                g = grads[k * n_features:(k + 1) * n_features]
                d = dz[k]
                for j in range(n_features):
                    g[j] = d * x[j] + l2_ * w[j]
                grads[n_coefs + k] = d if fit_intercept else cast_like(0.0, params)
        return impl

    def impl_csr(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2):
        data, indices, indptr = X
        row = order[i]
        l2_ = cast_like(l2, params)
        n_coefs = n_outputs * n_features
        for j in range(n_coefs):
            grads[j] = l2_ * params[j]
        for k in range(n_outputs):
            offset = k * n_features
            d = dz[k]
            for p in range(indptr[row], indptr[row + 1]):
                grads[offset + indices[p]] += d * data[p]
            grads[n_coefs + k] = d if fit_intercept else cast_like(0.0, params)
    return impl_csr
