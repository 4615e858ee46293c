"""Row access shared by dense and CSR inputs.

Dense ``X`` is a C-contiguous 2-D array; CSR ``X`` is the tuple
``(data, indices, indptr)``. The functions below are overloaded on that type,
so a single epoch kernel serves both layouts without a branch per sample.

Dense rows are read through a *block*: before the samples of a block are
processed, their rows are copied, in shuffled order, into a small contiguous
buffer. The copy is a tight loop whose loads do not depend on each other, so
the CPU keeps many cache misses in flight; the SGD loop then reads the rows
from cache. Reading shuffled rows directly from ``X`` leaves the SGD loop
waiting on memory once per sample.
"""

from __future__ import annotations

from numba import types
from numba.extending import overload


def load_block(X, order, lo, hi, block):  # pragma: no cover - compiled overload below
    """Copy rows ``order[lo:hi]`` of dense ``X`` into ``block`` (no-op for CSR)."""
    raise NotImplementedError


def decision(X, block, order, i, r, params, n_features, n_outputs, fit_intercept, z):  # pragma: no cover
    """Write the ``n_outputs`` decision values of sample ``order[i]`` (block row ``r``) into ``z``."""
    raise NotImplementedError


def accumulate(X, block, order, i, r, dz, grads, n_features, n_outputs, fit_intercept, first):  # pragma: no cover
    """Add ``dz[k] * x`` to the gradient of output ``k``; overwrite instead when ``first``."""
    raise NotImplementedError


def _is_dense(X):
    return isinstance(X, types.Array)


@overload(load_block, jit_options={"cache": True})
def _load_block(X, order, lo, hi, block):
    if _is_dense(X):
        def impl(X, order, lo, hi, block):
            n_features = X.shape[1]
            for r in range(hi - lo):
                src = order[lo + r]
                for j in range(n_features):
                    block[r, j] = X[src, j]
        return impl

    def impl_csr(X, order, lo, hi, block):
        return None
    return impl_csr


@overload(decision, jit_options={"cache": True})
def _decision(X, block, order, i, r, params, n_features, n_outputs, fit_intercept, z):
    if _is_dense(X):
        def impl(X, block, order, i, r, params, n_features, n_outputs, fit_intercept, z):
            x = block[r]
            for k in range(n_outputs):
                w = params[k * n_features:(k + 1) * n_features]
                s = params[n_outputs * n_features + k] if fit_intercept else params.dtype.type(0)
                for j in range(n_features):
                    s += w[j] * x[j]
                z[k] = s
        return impl

    def impl_csr(X, block, order, i, r, params, n_features, n_outputs, fit_intercept, z):
        data, indices, indptr = X
        row = order[i]
        lo = indptr[row]
        hi = indptr[row + 1]
        for k in range(n_outputs):
            offset = k * n_features
            s = params[n_outputs * n_features + k] if fit_intercept else params.dtype.type(0)
            for p in range(lo, hi):
                s += params[offset + indices[p]] * data[p]
            z[k] = s
    return impl_csr


@overload(accumulate, jit_options={"cache": True})
def _accumulate(X, block, order, i, r, dz, grads, n_features, n_outputs, fit_intercept, first):
    if _is_dense(X):
        def impl(X, block, order, i, r, dz, grads, n_features, n_outputs, fit_intercept, first):
            x = block[r]
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

    def impl_csr(X, block, order, i, r, dz, grads, n_features, n_outputs, fit_intercept, first):
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
