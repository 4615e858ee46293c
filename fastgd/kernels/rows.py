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

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._config import INLINE_OPTIONS, REDUCTION_FASTMATH, jit
from .._numeric.cast import cast_like, flush_subnormal, tiny_like
from .._numeric.prefetch import prefetch, prefetch_l1
from ..optim.sgd import plain_sgd_value
from .penalty import cumulative_l1_value

_JIT_OPTIONS = {"cache": False, "fastmath": set(REDUCTION_FASTMATH), "error_model": "numpy", **INLINE_OPTIONS}
#: :func:`sample_gradient` sums nothing; without fast-math, ``d * x + l2 * w`` is not contracted to a fused
#: multiply-add and gives the bits of a batch of one sample (``d * x`` stored, then ``+ l2 * w``).
_STRICT_JIT_OPTIONS = {**_JIT_OPTIONS, "fastmath": False}


#: How many samples ahead :func:`prefetch_row` asks for rows (into L2) and :func:`prefetch_targets` for targets.
PREFETCH_DISTANCE = 8

#: How many samples ahead :func:`prefetch_row` moves rows on into L1.
NEAR_PREFETCH_DISTANCE = 3

#: Samples ahead whose weights a CSR row will touch are prefetched (:func:`prefetch_weights`).
WEIGHT_PREFETCH_DISTANCE = 4

#: Weights of fewer bytes stay in a core's L2 cache: :func:`prefetch_weights` then does nothing (hashed
#: text, 84 nonzeros per row: prefetching 2**12 weights cost 50-70 ns per sample, 2**20 weights saved 100).
WEIGHT_PREFETCH_MIN_BYTES = 1 << 20

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
    """Prefetch the row of sample ``order[i + PREFETCH_DISTANCE]`` into L2, that of ``order[i + 3]`` into L1.

    CSR rows: the values and column indices of row ``order[i + PREFETCH_DISTANCE]``
    into L2. Nothing beyond the last sample.
    """
    return run_overload(_prefetch_row, X, order, i)


def prefetch_weights(X, order, i, params, n_features, n_outputs):  # pragma: no cover - compiled overload below
    """Prefetch into L2 the weights that the CSR row of sample ``order[i + WEIGHT_PREFETCH_DISTANCE]`` will touch.

    On wide models (hashed text: 2**20 columns and more) per-sample SGD waits
    on these weights: each nonzero of a row reads and writes a weight at a
    random place in megabytes of them. The row's column indices were
    prefetched :data:`PREFETCH_DISTANCE` samples ahead, so reading them here
    does not stall. Nothing on dense rows (their weights are read in order),
    on models under :data:`WEIGHT_PREFETCH_MIN_BYTES`, nor with several
    outputs: a row then touches a weight in each of ``n_outputs`` rows
    megabytes apart, and asking for all of them four samples ahead was
    measured slower than not asking (hashed text, 2**20 columns, one thread:
    3 outputs 2.49 -> 2.20 us per sample without, 5 outputs 5.07 -> 3.93, 20
    outputs 31.0 -> 21.2).
    """
    return run_overload(_prefetch_weights, X, order, i, params, n_features, n_outputs)


@jit(inlined=True)
def prefetch_targets(Y, sample_weight, order, i):
    """Prefetch the targets and the weight of sample ``order[i + PREFETCH_DISTANCE]``, if any.

    Shuffled, they are cache misses too (two 800 kB arrays for 200,000
    samples, evicted by the rows streaming through), and the loss of the
    sample waits for them: prefetching them took per-sample SGD (hinge,
    200,000 x 100 float32) from 91 to 77 ns per sample.
    """
    ahead = i + PREFETCH_DISTANCE
    if ahead < order.shape[0]:
        sample = order[ahead]
        prefetch(Y, sample * Y.shape[1])
        prefetch(sample_weight, sample)


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
    """Add ``dz[k] * x`` to the gradient of output ``k``; overwrite instead when ``first`` (the intercepts' with 0
    without ``fit_intercept``: the workspace may hold anything before the first sample)."""
    return run_overload(_accumulate, X, order, i, dz, grads, n_features, n_outputs, fit_intercept, first)


def sample_gradient(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2):  # pragma: no cover
    """Write the gradient of sample ``order[i]`` alone into ``grads``.

    Output ``k``'s weights get ``dz[k] * x + l2 * w_k``, its intercept
    ``dz[k]`` (0 without ``fit_intercept``): the gradient of a batch of one
    sample, in one pass over the row and the weights.
    """
    return run_overload(_sample_gradient, X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2)


def sgd_step_and_decide(X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept, l2, l1_step,
                        weight_decay, lr, grad_scale, clip, intercept_decay, z, norms, lazy,
                        l1_applied, averaged):  # pragma: no cover - compiled overload
    """Plain SGD step on the gradient of sample ``order[i]``, then the decision of sample ``order[i + 1]``.

    The step is :func:`fastgd.optim.sgd.plain_sgd_value` on each parameter
    with the gradient of :func:`sample_gradient` (``dz[k] * x + l2 * w_k``,
    intercept ``intercept_decay * dz[k]``), then, when ``l1_step`` (this
    update's ``lr * l1``) is positive, the cumulative L1 penalty
    (:func:`~fastgd.kernels.penalty.cumulative_l1_value`) on the weights the
    step touched: every weight of a dense row, the nonzeros' of a CSR row.
    The penalty's running total is ``lazy[3, 0]``, each weight's record
    ``l1_applied`` (both kept over the epochs of a fit). With weight decay,
    gradient scaling or clipping these are the bits of
    :func:`sample_gradient` and :func:`fastgd.optim.sgd.sgd_update` in a row; without them the rule
    is contracted to fused multiply-adds (:func:`unclipped_sample_sgd_value`,
    the same values to round-off). ``xx`` is the ``||x||^2`` of sample
    ``order[i]`` (what the call before returned). The next sample's
    decision values, and the pieces of its gradient norm, are written into
    ``z`` and ``norms`` as :func:`decision` does; the return is its
    ``||x||^2``. (The last sample has no next one: its own row is used.)

    On dense rows it is one pass: each new weight is multiplied into the next
    row's dot product as soon as it is written. Per-sample SGD is bound by the
    chain sample -> dot product -> update -> next dot product; fusing the
    two loops halves its length (of ``lazy`` only the L1 total is used).

    CSR rows keep the weights as ``s * params`` (scikit-learn's ``wscale``),
    with the scale ``s = lazy[0, 0]``: the step multiplies ``s`` by
    ``1 - lr * (grad_scale * l2 + weight_decay)`` and moves only the weights of
    the row's nonzero features, so a step costs the row's nonzeros, not the
    number of features (20,000 x 50,000, 50 nonzeros per row, 5 epochs:
    2,575 -> 33 ms). ``lazy[1, k]`` tracks ``||params_k||^2`` (updated in
    closed form, recomputed exactly when ``s`` is folded back into the
    weights, below 1e-9) and ``lazy[2, k]`` the current row's
    ``x . params_k``; :func:`fold_weight_scale` folds ``s`` back at the end of
    the epoch. Clipping by value is not linear in the weights: with it the
    caller takes the general route instead (see :func:`one_pass_sgd_applies`).

    Averaged SGD (a non-empty ``averaged``, see :func:`average_step`) on CSR
    rows: the step keeps the average it represents unchanged while it moves
    weights (``averaged[j] -= alpha * (new - old)`` for each moved weight,
    ``alpha = lazy[4, 0]``).
    """
    return run_overload(_sgd_step_and_decide, X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept,
                        l2, l1_step, weight_decay, lr, grad_scale, clip, intercept_decay, z, norms, lazy, l1_applied,
                        averaged)


def average_step(X, params, averaged, lazy, n_coefs, count):  # pragma: no cover - compiled overload below
    """Averaged SGD: take the parameters after an update into their running average.

    ``count`` is the number of updates averaged so far, this one included;
    the average of the parameters after each of them is ``averaged`` (the
    weights ``averaged[:n_coefs]``, then the intercepts). On dense rows it is
    updated in place, ``averaged += (params - averaged) / count``.

    On CSR rows a pass over every weight per sample would undo the weight
    scale, so the average of the weights is kept lazily, as Bottou (2012,
    "Stochastic gradient descent tricks", section 5.3) describes: it is
    ``(averaged[j] + alpha * params[j]) / beta`` with the scalars ``alpha =
    lazy[4, 0]`` and ``beta = lazy[5, 0]`` (0 and 1 when nothing is pending).
    With ``mu = 1 / count`` and ``s`` the weight scale, this step sets ``beta
    /= 1 - mu`` (not on the first averaged update, where ``mu = 1``) and
    ``alpha += mu * beta * s``; the step before kept the representation
    unchanged while it moved weights (:func:`sgd_step_and_decide`), and
    :func:`fold_weight_scale` folds ``alpha`` and ``beta`` into ``averaged``.
    The intercepts are averaged in place. O(1) per step, plus the row's
    nonzeros in the step; the first averaged update of a fit (``count = 1``)
    also clears what an earlier fit left in ``averaged``.
    """
    return run_overload(_average_step, X, params, averaged, lazy, n_coefs, count)


def one_pass_sgd_applies(X, l1, clip_value):  # pragma: no cover - compiled overload below
    """Whether :func:`sgd_step_and_decide` serves plain SGD on ``X``: always on dense rows, on CSR rows
    only without clipping by value (which the scaled weights cannot carry); ``l1`` is not a condition."""
    return run_overload(_one_pass_sgd_applies, X, l1, clip_value)


@jit(inlined=True)
def unsigned(p):
    """``p`` as an unsigned integer, to index CSR arrays with.

    Numba checks every signed index for being negative (Python's count from
    the end); positions and column indices of a valid CSR matrix never are,
    and unsigned ones are not checked. On rows of 84 nonzeros a dot product
    and an update of the weights took 330 -> 190 ns.
    """
    return numba.uint64(p)


@jit(inlined=True)
def nonzero_product(data, indices, p, values, offset):
    """``data[p] * values[offset + indices[p]]``: nonzero ``p`` of a CSR row times its weight."""
    q = unsigned(p)
    return data[q] * values[unsigned(offset + indices[q])]


@jit(inlined=True)
def nonzero_square(data, p):
    """``data[p] ** 2``."""
    x = data[unsigned(p)]
    return x * x


@jit(inlined=True)
def sparse_dot(data, indices, lo, hi, values, offset):
    """``sum(data[p] * values[offset + indices[p]] for p in range(lo, hi))`` in float64.

    Four partial sums, over the nonzeros ``p`` with ``(p - lo) % 4`` equal,
    added at the end as ``(a + b) + (c + d)``: a fixed order, so the same
    bits on every machine and thread count. One running sum makes each
    addition wait for the one before. Written out rather than left to
    fast-math: a reassociated loop is vectorised with AVX-512 gathers,
    measured slower than these scalar loads (CSR per-sample SGD, 50 nonzeros
    per row: 457 -> 245 ns per sample).
    """
    a = 0.0
    b = 0.0
    c = 0.0
    d = 0.0
    p = lo
    while p + 4 <= hi:
        a += nonzero_product(data, indices, p, values, offset)
        b += nonzero_product(data, indices, p + 1, values, offset)
        c += nonzero_product(data, indices, p + 2, values, offset)
        d += nonzero_product(data, indices, p + 3, values, offset)
        p += 4
    if p < hi:
        a += nonzero_product(data, indices, p, values, offset)
    if p + 1 < hi:
        b += nonzero_product(data, indices, p + 1, values, offset)
    if p + 2 < hi:
        c += nonzero_product(data, indices, p + 2, values, offset)
    return (a + b) + (c + d)


@jit(inlined=True)
def sparse_squares(data, lo, hi):
    """``sum(data[lo:hi] ** 2)`` in float64, in four partial sums as :func:`sparse_dot`."""
    a = 0.0
    b = 0.0
    c = 0.0
    d = 0.0
    p = lo
    while p + 4 <= hi:
        a += nonzero_square(data, p)
        b += nonzero_square(data, p + 1)
        c += nonzero_square(data, p + 2)
        d += nonzero_square(data, p + 3)
        p += 4
    if p < hi:
        a += nonzero_square(data, p)
    if p + 1 < hi:
        b += nonzero_square(data, p + 1)
    if p + 2 < hi:
        c += nonzero_square(data, p + 2)
    return (a + b) + (c + d)


def fold_weight_scale(X, params, n_coefs, lazy, averaged):  # pragma: no cover - compiled overload below
    """Multiply the weights ``params[:n_coefs]`` by the scale ``lazy[0, 0]`` of CSR training, then reset it to 1.

    See :func:`sgd_step_and_decide`; ``lazy[1, k]`` becomes the exact squared
    norm of weight row ``k`` and ``lazy[6, k]`` the sum of its absolute
    values, in float64 (the penalty of the epoch's loss: the trainer needs no
    other pass over the weights). A non-empty ``averaged`` (averaged SGD)
    first becomes the average it represents (see :func:`average_step`).
    Nothing to do for dense ``X``.
    """
    return run_overload(_fold_weight_scale, X, params, n_coefs, lazy, averaged)


@jit(inlined=True)
def sample_sgd_value(param, d, x, l2, lr, weight_decay, grad_scale, clip, tiny):
    """``param`` after the plain SGD step on its per-sample gradient ``d * x + l2 * param``.

    Compiled without fast-math, as :func:`sample_gradient`: the gradient is
    rounded, not contracted into a fused multiply-add.
    """
    return plain_sgd_value(param, d * x + l2 * param, lr, weight_decay, grad_scale, clip, tiny)


@jit(inlined=True, fastmath={"contract"})
def unclipped_sample_sgd_value(param, x, lr_l2, lr_d, tiny):
    """:func:`sample_sgd_value` without weight decay, scaling or clipping, in two fused multiply-adds.

    ``(param - lr_l2 * param) - lr_d * x`` with ``lr_l2 = lr * l2`` and
    ``lr_d = lr * d``: the rule ``param - lr * (d * x + l2 * param)``
    reassociated and contracted (the same value to round-off). It is on the
    chain of operations that bounds per-sample SGD; the strict form compiles
    to 15 vector operations per element, this to 5 (hinge, 100 float32
    features: 70 -> 60 ns per sample).
    """
    return flush_subnormal((param - lr_l2 * param) - lr_d * x, tiny)


@jit(reduction=True, refcount=False, inline="always")
def sgd_row_step(general, w, x, x_next, d, l2, lr, weight_decay, grad_scale, clip, tiny, l1_total, l1_applied):
    """Plain SGD step of the weight row ``w`` on ``d * x + l2 * w``; returns ``(w . x_next, ||w||^2, ||x_next||^2)``.

    ``general`` (a constant of each call site) applies weight decay, gradient
    scaling and clipping (:func:`sample_sgd_value`) and, with a positive
    ``l1_total``, the cumulative L1 penalty (``l1_applied`` is the row's
    record, see :func:`~fastgd.kernels.penalty.cumulative_l1_value`);
    otherwise none of them (:func:`unclipped_sample_sgd_value`). The sums use
    the new weights.
    """
    s = cast_like(0.0, w)
    ww = cast_like(0.0, w)
    xx = cast_like(0.0, w)
    shrink = l1_total > 0
    lr_l2 = lr * l2
    lr_d = lr * d
    for j in range(w.size):
        if general:
            v = sample_sgd_value(w[j], d, x[j], l2, lr, weight_decay, grad_scale, clip, tiny)
            if shrink:
                penalised = cast_like(cumulative_l1_value(v, 1.0, l1_total, l1_applied[j]), w)
                l1_applied[j] += penalised - v
                v = penalised
        else:
            v = unclipped_sample_sgd_value(w[j], x[j], lr_l2, lr_d, tiny)
        w[j] = v
        s += v * x_next[j]
        ww += v * v
        xx += x_next[j] * x_next[j]
    return s, ww, xx


def _is_dense(X):
    """Whether ``X`` is the Numba type of a dense array (else a CSR tuple)."""
    return isinstance(X, types.Array)


@jit(refcount=False, inline="always")
def prefetch_lines(into_l1, X, order, ahead, line):
    """Prefetch every cache line (``line`` elements) of dense row ``order[ahead]``, if any; ``into_l1`` a constant."""
    if ahead < order.shape[0]:
        n_features = X.shape[1]
        row = X[order[ahead]]
        for j in range(0, n_features, line):
            if into_l1:
                prefetch_l1(row, j)
            else:
                prefetch(row, j)
        if into_l1:
            prefetch_l1(row, n_features - 1)
        else:
            prefetch(row, n_features - 1)


@overload(prefetch_row, jit_options=_JIT_OPTIONS)
def _prefetch_row(X, order, i):
    if _is_dense(X):
        line = max(1, CACHE_LINE // (X.dtype.bitwidth // 8))  # elements per cache line, a compile-time constant

        def impl(X, order, i):
            prefetch_lines(False, X, order, i + PREFETCH_DISTANCE, line)
            prefetch_lines(True, X, order, i + NEAR_PREFETCH_DISTANCE, line)
        return impl

    data_line = max(1, CACHE_LINE // (X[0].dtype.bitwidth // 8))
    index_line = max(1, CACHE_LINE // (X[1].dtype.bitwidth // 8))

    def impl_csr(X, order, i):
        ahead = i + PREFETCH_DISTANCE
        if ahead < order.shape[0]:
            data, indices, indptr = X
            row = order[ahead]
            lo = indptr[row]
            hi = indptr[row + 1]
            if hi > lo:
                for p in range(lo, hi, data_line):
                    prefetch(data, p)
                prefetch(data, hi - 1)
                for p in range(lo, hi, index_line):
                    prefetch(indices, p)
                prefetch(indices, hi - 1)
    return impl_csr


@overload(prefetch_weights, jit_options=_JIT_OPTIONS)
def _prefetch_weights(X, order, i, params, n_features, n_outputs):
    if _is_dense(X):
        def impl(X, order, i, params, n_features, n_outputs):
            return None
        return impl

    itemsize = params.dtype.bitwidth // 8

    def impl_csr(X, order, i, params, n_features, n_outputs):
        ahead = i + WEIGHT_PREFETCH_DISTANCE
        if ahead < order.shape[0] and n_outputs == 1 and n_features * itemsize >= WEIGHT_PREFETCH_MIN_BYTES:
            _, indices, indptr = X
            row = order[ahead]
            for k in range(n_outputs):
                offset = k * n_features
                for p in range(indptr[row], indptr[row + 1]):
                    prefetch(params, offset + indices[unsigned(p)])
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
        xx = cast_like(sparse_squares(data, lo, hi) if with_norms else 0.0, params)
        for k in range(n_outputs):
            offset = k * n_features
            s = cast_like(sparse_dot(data, indices, lo, hi, params, offset), params)
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
                b = n_outputs * n_features + k
                if fit_intercept:
                    grads[b] = d if first else grads[b] + d
                elif first:  # the workspace may hold anything: the intercepts' gradient is 0 without them
                    grads[b] = 0
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
                q = unsigned(p)
                grads[unsigned(offset + indices[q])] += d * data[q]
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
                q = unsigned(p)
                grads[unsigned(offset + indices[q])] += d * data[q]
            grads[n_coefs + k] = d if fit_intercept else cast_like(0.0, params)
    return impl_csr


@overload(sgd_step_and_decide, jit_options=_JIT_OPTIONS)
def _sgd_step_and_decide(X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept, l2, l1_step,
                         weight_decay, lr, grad_scale, clip, intercept_decay, z, norms, lazy, l1_applied, averaged):
    if _is_dense(X):
        def impl(X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept, l2, l1_step,
                 weight_decay, lr, grad_scale, clip, intercept_decay, z, norms, lazy, l1_applied, averaged):
            x = X[order[i]]
            x_next = X[order[i + 1]] if i + 1 < order.shape[0] else x
            l2_ = cast_like(l2, params)
            shrink = l1_step > 0.0
            total = 0.0
            if shrink:
                total = lazy[3, 0] + l1_step
                lazy[3, 0] = total
            wd = cast_like(weight_decay, params)
            lr_ = cast_like(lr, params)
            scale = cast_like(grad_scale, params)
            clip_ = cast_like(clip, params)
            tiny = tiny_like(params)
            zero = cast_like(0.0, params)
            decay = cast_like(intercept_decay, params)
            n_coefs = n_outputs * n_features
            # weight decay, clipping and L1 cost 10 of the 15 vector operations per element: left out when off
            unclipped = not shrink and wd == 0 and scale == 1 and not clip_ < math.inf
            xx_next = zero
            for k in range(n_outputs):
                w = params[k * n_features:(k + 1) * n_features]
                d = dz[k]
                record = l1_applied[k * n_features:(k + 1) * n_features] if shrink else l1_applied
                if unclipped:
                    s, ww, xx_k = sgd_row_step(False, w, x, x_next, d, l2_, lr_, wd, scale, clip_, tiny, total,
                                               record)
                else:
                    s, ww, xx_k = sgd_row_step(True, w, x, x_next, d, l2_, lr_, wd, scale, clip_, tiny, total,
                                               record)
                if k == 0:
                    xx_next = xx_k
                b = n_coefs + k
                params[b] = plain_sgd_value(params[b], d * decay if fit_intercept else zero, lr_, wd, scale, clip_,
                                            tiny)
                norms[0, k] = s
                norms[1, k] = ww
                z[k] = s + params[b] if fit_intercept else s
            return xx_next
        return impl

    def impl_csr(X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept, l2, l1_step,
                 weight_decay, lr, grad_scale, clip, intercept_decay, z, norms, lazy, l1_applied, averaged):
        data, indices, indptr = X
        n_coefs = n_outputs * n_features
        wd = cast_like(weight_decay, params)
        lr_ = cast_like(lr, params)
        scale = cast_like(grad_scale, params)
        clip_ = cast_like(clip, params)
        tiny = tiny_like(params)
        zero = cast_like(0.0, params)
        decay = cast_like(intercept_decay, params)
        row = order[i]
        lo = indptr[row]
        hi = indptr[row + 1]
        s = lazy[0, 0] * (1.0 - lr * (grad_scale * l2 + weight_decay))
        if not s >= 1e-9:  # fold the scale into the weights (also when a huge rate made it 0 or negative)
            for k in range(n_outputs):
                lazy[2, k] *= s
            lazy[0, 0] = s
            fold_weight_scale(X, params, n_coefs, lazy, averaged)
            s = 1.0
        averaging = averaged.size > 0
        alpha = lazy[4, 0]
        for k in range(n_outputs):
            offset = k * n_features
            move = lr * grad_scale * dz[k] / s  # params_k -= move * x keeps s * params_k on the rule
            for p in range(lo, hi):
                q = unsigned(p)
                j = unsigned(offset + indices[q])
                step = cast_like(move * data[q], params)
                params[j] -= step
                if averaging:
                    averaged[j] += cast_like(alpha * step, params)
            lazy[1, k] += move * (move * xx - 2.0 * lazy[2, k])
            if l1_step > 0.0:  # the cumulative penalty on the weights just moved
                if k == 0:
                    lazy[3, 0] += l1_step
                total = lazy[3, 0]
                ww_change = 0.0
                for p in range(lo, hi):
                    j = unsigned(offset + indices[unsigned(p)])
                    old = params[j]
                    new = cast_like(cumulative_l1_value(old, s, total, l1_applied[j]), params)
                    if new != old:
                        params[j] = new
                        l1_applied[j] += s * (new - old)
                        ww_change += new * new - old * old
                        if averaging:
                            averaged[j] -= cast_like(alpha * (new - old), params)
                lazy[1, k] += ww_change
            b = n_coefs + k
            params[b] = plain_sgd_value(params[b], dz[k] * decay if fit_intercept else zero, lr_, wd, scale, clip_,
                                        tiny)
        lazy[0, 0] = s
        row = order[min(i + 1, order.shape[0] - 1)]
        lo = indptr[row]
        hi = indptr[row + 1]
        xx_next = sparse_squares(data, lo, hi)
        for k in range(n_outputs):
            xv = sparse_dot(data, indices, lo, hi, params, k * n_features)
            lazy[2, k] = xv
            norms[0, k] = s * xv
            norms[1, k] = s * s * lazy[1, k]
            z[k] = s * xv + params[n_coefs + k] if fit_intercept else s * xv
        return cast_like(xx_next, params)
    return impl_csr


@overload(fold_weight_scale, jit_options=_JIT_OPTIONS)
def _fold_weight_scale(X, params, n_coefs, lazy, averaged):
    if _is_dense(X):
        def impl(X, params, n_coefs, lazy, averaged):
            return None
        return impl

    def impl_csr(X, params, n_coefs, lazy, averaged):
        alpha = lazy[4, 0]
        beta = lazy[5, 0]
        if averaged.size > 0 and (alpha != 0.0 or beta != 1.0):  # the pending average, before the scale moves
            alpha_ = cast_like(alpha, params)
            beta_ = cast_like(beta, params)
            for j in range(n_coefs):
                averaged[j] = (averaged[j] + alpha_ * params[j]) / beta_
            lazy[4, 0] = 0.0
            lazy[5, 0] = 1.0
        s = lazy[0, 0]
        s_ = cast_like(s, params)
        lazy[0, 0] = 1.0
        n_outputs = lazy.shape[1]
        n_features = n_coefs // n_outputs
        for k in range(n_outputs):  # one pass: each weight is scaled, its square and absolute value summed
            w = params[k * n_features:(k + 1) * n_features]  # indexed from 0: a loop LLVM vectorises (4x)
            ww = 0.0
            absolutes = 0.0
            if s != 1.0:
                for j in range(n_features):
                    v = w[j] * s_
                    w[j] = v
                    vd = np.float64(v)
                    ww += vd * vd
                    absolutes += abs(vd)
            else:
                for j in range(n_features):
                    vd = np.float64(w[j])
                    ww += vd * vd
                    absolutes += abs(vd)
            lazy[1, k] = ww
            lazy[6, k] = absolutes
    return impl_csr


@overload(average_step, jit_options=_JIT_OPTIONS)
def _average_step(X, params, averaged, lazy, n_coefs, count):
    if _is_dense(X):
        def impl(X, params, averaged, lazy, n_coefs, count):
            n = cast_like(count, params)
            for j in range(params.size):
                averaged[j] += (params[j] - averaged[j]) / n
        return impl

    def impl_csr(X, params, averaged, lazy, n_coefs, count):
        mu = 1.0 / count
        if count > 1:
            lazy[5, 0] /= 1.0 - mu
        else:  # the first update averaged: what an earlier fit left is no iterate of this one
            averaged[:n_coefs] = 0
        lazy[4, 0] += mu * lazy[5, 0] * lazy[0, 0]
        n = cast_like(count, params)
        for j in range(n_coefs, params.size):
            averaged[j] += (params[j] - averaged[j]) / n
    return impl_csr


@overload(one_pass_sgd_applies, jit_options=_JIT_OPTIONS)
def _one_pass_sgd_applies(X, l1, clip_value):
    if _is_dense(X):
        def impl(X, l1, clip_value):
            return True
        return impl

    def impl_csr(X, l1, clip_value):
        return not clip_value < math.inf
    return impl_csr
