"""The compiled epoch of multi-layer perceptrons.

Parameters live in one flat vector, layer after layer: the ``(n_in, n_out)``
weights of layer ``l`` in row-major order, then its ``n_out`` biases
(``offsets[l]`` is where the weights start). For every batch, the kernel
gathers the batch's rows into a contiguous buffer, runs the forward pass
(BLAS matrix products through ``np.dot`` into preallocated buffers, bias and
activation fused), the fused output/loss/delta step, the backward pass, and
the optimizer step. Nothing is allocated per batch.

Batches of at most :data:`SMALL_BATCH` rows (per-sample training) replace the
BLAS calls by fused loops (:func:`small_forward`, :func:`small_backward`) that
skip ReLU's zeros and read each row of a layer's weights once for the weight
gradient, the L2 term, the deltas of the layer below and the update. Unless
the gradient is clipped by its global norm (which must be known before any
update) or the update is threaded, the optimizer step runs inside the backward
pass, a block of :data:`FUSED_ROWS` weight rows at a time, as soon as the
block's gradient is final and nothing reads its weights any more: parameters
and gradients are updated while in cache instead of in a pass of their own
(the optimizer kernels are inlined, :func:`fastgd.optim._registry.update_range`).
The arithmetic is that of the separate passes, up to where a fused multiply-add
rounds once. All per-element arithmetic stays in the parameters' dtype (float32
stays float32).

Larger batches go through :func:`mlp_epoch_split` (and, for L-BFGS's full batch,
:func:`mlp_loss_and_gradient_split`), which splits every batch into parts of rows
(:func:`split_batch`): Numba's threads share out the parts, and each part runs its forward and
backward pass (its own workspaces, BLAS on one thread; a large part piece by piece, adding the
pieces' sums) and leaves sums of the loss and gradient; then the parameters are cut into as many
chunks as there are parts, and for each chunk the parts' sums are added in part order, finished
(L2 term, division by the batch's sample weights) and updated while in cache. How many parts, and
so every sum's order, is decided by the caller from the batch and the model alone
(:func:`fastgd.backends.cpu_mlp.batch_parts`), never from the thread count: any number of threads
computes the same bits. The arithmetic per element is the serial epoch's; the sums over the
batch's rows are added in another order (round-off).

The loss and its gradient follow scikit-learn's MLP: squared error is half the
mean squared error, the log-losses are averaged over samples, the L2 term is
``alpha / 2 * sum(W^2) / sum(sample_weight)``, and the output delta is
``prediction - target`` for each canonical pairing (identity and squared
error, logistic and binary log-loss, softmax and cross-entropy).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import overload

from .._config import INNER_OPTIONS, REDUCTION_FASTMATH, jit
from .._numeric.cast import cast_like
from .._numeric.float_env import adopt_float_control, float_control, restore_float_control
from ..optim._registry import fused_step, update_range
from ..optim.schedules import update_lr
from .activations import LEAKY_SLOPE, add_bias_and_activate, derivative, multiply_by_derivative
from .linear import norm_and_clip_scale
from .losses import OutputLoss
from .rows import prefetch_row, prefetch_targets, run_overload

_JIT_OPTIONS = {"cache": False, "fastmath": set(REDUCTION_FASTMATH), "error_model": "numpy"}


def gather_rows(X, order, start, stop, out):  # pragma: no cover - compiled overload below
    """Copy rows ``order[start:stop]`` of ``X`` (dense, or CSR as a tuple) into dense ``out``.

    A CSR row's stored entries may come in any column order, and several entries of one column add up
    (scipy's rule for a matrix not in canonical format): each row is zeroed, then its entries added.

    Rows a few samples ahead are prefetched (:func:`fastgd.kernels.rows.prefetch_row`): shuffled, each row is
    a cache miss (512 shuffled rows of 100 float32 from a 20 MB array: 89 us without, 26 us with).
    """
    return run_overload(_gather_rows, X, order, start, stop, out)


@overload(gather_rows, jit_options=_JIT_OPTIONS)
def _gather_rows(X, order, start, stop, out):
    if isinstance(X, types.Array):
        def impl(X, order, start, stop, out):
            for r in range(stop - start):
                prefetch_row(X, order, start + r)
                out[r, :] = X[order[start + r]]
        return impl

    def impl_csr(X, order, start, stop, out):
        data, indices, indptr = X
        for r in range(stop - start):
            prefetch_row(X, order, start + r)
            row = order[start + r]
            out[r, :] = 0
            for p in range(indptr[row], indptr[row + 1]):
                out[r, indices[p]] += data[p]  # duplicates add up, as in scipy
    return impl_csr


@jit(reduction=True, **INNER_OPTIONS)
def output_delta(P, Y, sw, loss_kind, delta):
    """``delta = (P - Y) * sw`` row-wise; returns the batch's weighted loss sum (scikit-learn's definitions).

    ``P - Y`` is the derivative of each loss with respect to the output's pre-activation for its canonical
    link: identity and squared error, logistic and binary log-loss, softmax and log-loss, ``exp`` and the
    Poisson loss, whose sum is ``xlogy(y, y / p) - y + p`` (half the Poisson deviance, summed over the
    outputs as scikit-learn's ``poisson_loss`` does).
    """
    n_rows, n_out = P.shape
    eps = np.finfo(P.dtype).eps
    total = 0.0
    for i in range(n_rows):
        w = sw[i]
        row_loss = 0.0
        for k in range(n_out):
            p = P[i, k]
            y = Y[i, k]
            delta[i, k] = (p - y) * w
            if loss_kind == OutputLoss.SQUARED_ERROR:
                row_loss += (y - p) * (y - p)
            elif loss_kind == OutputLoss.POISSON:
                if y != 0:
                    row_loss += y * math.log(y / p)
                row_loss += p - y
            else:
                pc = min(max(p, eps), 1 - eps)
                if y != 0:
                    row_loss -= y * math.log(pc)
                if loss_kind == OutputLoss.BINARY_LOG_LOSS and y != 1:
                    row_loss -= (1 - y) * math.log(1 - pc)
        total += w * row_loss
    if loss_kind == OutputLoss.SQUARED_ERROR:
        total *= 0.5 / n_out
    return total


#: Batches of at most this many rows run the fused loops below instead of BLAS calls: a matrix
#: product of a handful of rows is dominated by the call, and the loops skip the zeros of ReLU.
SMALL_BATCH = 4

#: Rows of ``W`` per fused optimizer update of the small-batch path (enough elements to amortise the update's
#: scalar set-up, few enough to stay in the L1 cache).
FUSED_ROWS = 16


@jit(reduction=True, inlined=True)
def column_sums(delta, out):
    """``out = delta.sum(axis=0)``."""
    out[:] = 0
    for r in range(delta.shape[0]):
        dr = delta[r]
        for j in range(np.uint64(out.size)):
            out[j] += dr[j]


@jit(reduction=True, inlined=True)
def finish_weight_block(grads, params, lo, hi, a, inv):
    """``grads[lo:hi] = (grads[lo:hi] + a params[lo:hi]) inv``, flat; returns the sums of ``g^2`` and ``w^2``.

    A block of whole rows of a layer's weights in one loop (the BLAS and split paths, where the products
    were summed first). The small-batch path finishes each row as it computes it instead
    (:func:`weight_gradient_row`): a pass of its own per row had cost a narrow layer more in loop set-up and
    sums than in arithmetic (100-8-10, one sample's step without the update: 3.16 us row by row, 2.28 us in
    blocks), while finishing in the product's own pass costs nothing extra (per-sample Adam on 100-8-10:
    2.97-3.24 us with blocks, 2.66-2.71 us now).
    """
    g = grads[lo:hi]
    w = params[lo:hi]
    g_sq = cast_like(0.0, grads)
    w_sq = cast_like(0.0, grads)
    for k in range(g.size):
        wk = w[k]
        gk = (g[k] + a * wk) * inv
        g[k] = gk
        g_sq += gk * gk
        w_sq += wk * wk
    return g_sq, w_sq


@jit(reduction=True, inlined=True)
def finish_layer_gradient(gW, gb, W, delta, alpha, inv_weight_sum, fuse, rule, params, grads, slots, step, lr, w_lo):
    """``gW = (gW + alpha W) / sum(sw)``, ``gb = column sums of delta / sum(sw)``.

    With ``fuse``, the optimizer ``rule`` then updates the layer's parameters (``params[w_lo:]``, flat, with
    ``grads`` and ``slots``) block of rows by block of rows, while they are in cache. Returns the squared
    norm of the layer's gradient and ``sum(W^2)`` (for the L2 term of the loss; before the update).
    """
    a = cast_like(alpha, W)
    inv = cast_like(inv_weight_sum, W)
    sq = cast_like(0.0, W)
    wsq = 0.0
    n_in, n_out = W.shape
    column_sums(delta, gb)
    for j in range(np.uint64(n_out)):
        g = gb[j] * inv
        gb[j] = g
        sq += g * g
    if fuse:
        b_lo = w_lo + n_in * n_out
        update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, 1.0, rule.clip_value, b_lo,
                     b_lo + n_out)
    for block_lo in range(0, n_in, FUSED_ROWS):
        lo = w_lo + block_lo * n_out
        hi = w_lo + min(n_in, block_lo + FUSED_ROWS) * n_out
        block_sq, block_wsq = finish_weight_block(grads, params, lo, hi, a, inv)
        sq += block_sq
        wsq += block_wsq
        if fuse:
            update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, 1.0, rule.clip_value, lo, hi)
    return sq, wsq


@jit(reduction=True, inlined=True)
def small_forward(A_in, W, A):
    """``A = A_in W`` for a few rows, skipping the zero inputs (ReLU's)."""
    b, n_in = A_in.shape
    n_out = W.shape[1]
    for r in range(b):
        Ar = A[r]
        for j in range(np.uint64(n_out)):
            Ar[j] = 0
        for i in range(n_in):
            s = A_in[r, i]
            if s != 0:
                Wi = W[i]
                for j in range(np.uint64(n_out)):
                    Ar[j] += s * Wi[j]


@jit(reduction=True, inlined=True)
def weight_gradient_row(A_in, delta, i, Wi, gWi, a, inv):
    """``gWi = (A_in[:, i] @ delta + a Wi) inv`` for a few rows of ``delta``; returns the sums of ``g^2`` and ``w^2``.

    The last row's product, the L2 term, the division and both sums are made in one pass over the row (one
    pass in all for a single sample: per-sample Adam, float32, 41-44 -> 37-40 us per sample on
    100-256-128-10, 3.0-3.2 -> 2.7 us on 100-8-10, alternating runs). Zero inputs (ReLU's) are skipped in the
    rows before the last.
    """
    b = delta.shape[0]
    n_out = gWi.size
    if b > 1:
        for j in range(np.uint64(n_out)):
            gWi[j] = 0
        for r in range(b - 1):
            s = A_in[r, i]
            if s != 0:
                dr = delta[r]
                for j in range(np.uint64(n_out)):
                    gWi[j] += s * dr[j]
    s = A_in[b - 1, i]
    d = delta[b - 1]
    g_sq = cast_like(0.0, Wi)
    w_sq = cast_like(0.0, Wi)
    # two loops, not one with ``gWi[j] if b > 1 else 0``: that one ran 100-8-10 per-sample Adam at 2.70-3.07 us
    # instead of 2.57-2.67
    if b == 1:  # nothing summed before: the row is written in this pass alone
        for j in range(np.uint64(n_out)):
            w = Wi[j]
            g = (s * d[j] + a * w) * inv
            gWi[j] = g
            g_sq += g * g
            w_sq += w * w
    else:
        for j in range(np.uint64(n_out)):
            w = Wi[j]
            g = (gWi[j] + s * d[j] + a * w) * inv
            gWi[j] = g
            g_sq += g * g
            w_sq += w * w
    return g_sq, w_sq


@jit(reduction=True, inlined=True)
def small_backward(A_in, delta, W, gW, gb, delta_in, code, alpha, inv_weight_sum, with_delta_in, fuse, rule,
                   params, grads, slots, step, lr, w_lo):
    """One layer's backward pass for a few rows, fused row by row of ``W``.

    ``gW = (A_in^T delta + alpha W) / sum(sw)``, ``gb = column sums of delta / sum(sw)`` and, with
    ``with_delta_in``, ``delta_in = (delta W^T) * act'(A_in)`` (no product where the derivative is zero).
    Each row of ``W`` is read once for all three. With ``fuse``, the optimizer ``rule`` updates the layer's
    parameters (``params[w_lo:]``, flat, with ``grads`` and ``slots``) block of rows by block of rows, while
    they are in cache, as soon as nothing reads them any more. Returns the layer's squared gradient norm and
    ``sum(W^2)`` (before the update).
    """
    b = delta.shape[0]
    n_in, n_out = W.shape
    a = cast_like(alpha, W)
    inv = cast_like(inv_weight_sum, W)
    one = cast_like(1.0, W)
    slope = cast_like(LEAKY_SLOPE, W)
    sq = cast_like(0.0, W)
    wsq = 0.0
    for j in range(np.uint64(n_out)):
        gb[j] = delta[0, j]
    for r in range(1, b):
        dr = delta[r]
        for j in range(np.uint64(n_out)):
            gb[j] += dr[j]
    for j in range(np.uint64(n_out)):
        g = gb[j] * inv
        gb[j] = g
        sq += g * g
    if fuse:
        b_lo = w_lo + n_in * n_out
        update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, 1.0, rule.clip_value, b_lo,
                     b_lo + n_out)
    for block_lo in range(0, n_in, FUSED_ROWS):
        block_hi = min(n_in, block_lo + FUSED_ROWS)
        for i in range(block_lo, block_hi):
            Wi = W[i]
            if with_delta_in:
                for r in range(b):
                    d = derivative(code, A_in[r, i], one, slope)
                    if d != 0:
                        dr = delta[r]
                        dot = cast_like(0.0, W)
                        for j in range(np.uint64(n_out)):
                            dot += dr[j] * Wi[j]
                        delta_in[r, i] = dot * d
                    else:
                        delta_in[r, i] = 0
            row_sq, row_wsq = weight_gradient_row(A_in, delta, i, Wi, gW[i], a, inv)
            sq += row_sq
            wsq += row_wsq
        if fuse:
            update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, 1.0, rule.clip_value,
                         w_lo + block_lo * n_out, w_lo + block_hi * n_out)
    return sq, wsq


@jit(inlined=True)
def add_layer_norms(layer_sq, norm_sums):
    """Add each layer's gradient norm ``sqrt(layer_sq)`` to ``norm_sums``; returns the squared global norm."""
    total_sq = 0.0
    for layer in range(layer_sq.size):
        total_sq += layer_sq[layer]
        norm_sums[layer] += math.sqrt(layer_sq[layer])
    return total_sq


@jit(reduction=True, inlined=True)
def batch_weight_sum(sample_weight, order, start, stop):
    """Sum of the sample weights of ``order[start:stop]``."""
    total = 0.0
    for i in range(start, stop):
        total += sample_weight[order[i]]
    return total


@jit(reduction=True, **INNER_OPTIONS)
def forward_and_output_delta(X, Y, sample_weight, order, start, stop, params, units, offsets, hidden_code, out_code,
                             loss_kind, x_batch, y_batch, sw_batch, activations, deltas, small):
    """Gather samples ``order[start:stop]``, run the forward pass and the fused output/loss/delta step.

    Activations of layer ``l`` go to ``activations`` and the output delta to ``deltas``, each layer at the
    offset of ``x_batch.shape[0]`` rows per unit of the layers before it; ``small`` multiplies with the
    fused loops of :func:`small_forward` instead of BLAS. Returns the weighted data loss (a sum over the
    samples, no L2 term) and the sum of the samples' weights.
    """
    rows = x_batch.shape[0]
    n_layers = units.size - 1
    b = stop - start
    gather_rows(X, order, start, stop, x_batch)
    weight_sum = 0.0
    for r in range(b):
        prefetch_targets(Y, sample_weight, order, start + r)
        row = order[start + r]
        y_batch[r, :] = Y[row]
        sw_batch[r] = sample_weight[row]
        weight_sum += sample_weight[row]
    # forward: A_l = act(A_{l-1} W_l + b_l)
    a_prev = x_batch[:b]
    a_off = 0
    for layer in range(n_layers):
        n_in = units[layer]
        n_out = units[layer + 1]
        w_lo = offsets[layer]
        W = params[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
        A = activations[a_off:a_off + b * n_out].reshape(b, n_out)
        if small:
            small_forward(a_prev, W, A)
        else:
            np.dot(a_prev, W, A)
        add_bias_and_activate(A, params[w_lo + n_in * n_out:w_lo + (n_in + 1) * n_out],
                              out_code if layer == n_layers - 1 else hidden_code)
        a_prev = A
        a_off += rows * n_out
    n_last = units[n_layers]
    a_off -= rows * n_last
    delta = deltas[a_off:a_off + b * n_last].reshape(b, n_last)
    return output_delta(a_prev, y_batch[:b], sw_batch[:b], loss_kind, delta), weight_sum


@jit(**INNER_OPTIONS)  # returns views: compiled with reference counting, not inlined
def layer_views(params, grads, x_batch, activations, deltas, units, offsets, layer, b):
    """Views of layer ``layer`` for the backward pass over ``b`` rows: ``W``, ``gW``, ``gb``, its input
    activations ``A_in`` and the delta of its output and of its input (the latter a placeholder for layer 0)."""
    rows = x_batch.shape[0]
    n_in = units[layer]
    n_out = units[layer + 1]
    w_lo = offsets[layer]
    a_off = 0  # start of layer l's activations (and deltas): rows x the widths of the layers before
    for k in range(1, layer):
        a_off += rows * units[k]
    d_off = a_off + (rows * units[layer] if layer > 0 else 0)
    W = params[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
    gW = grads[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
    gb = grads[w_lo + n_in * n_out:w_lo + (n_in + 1) * n_out]
    delta = deltas[d_off:d_off + b * n_out].reshape(b, n_out)
    if layer == 0:
        return W, gW, gb, x_batch[:b], delta, delta
    A_in = activations[a_off:a_off + b * n_in].reshape(b, n_in)
    return W, gW, gb, A_in, delta, deltas[a_off:a_off + b * n_in].reshape(b, n_in)


@jit(reduction=True, **INNER_OPTIONS)
def part_sums(X, Y, sample_weight, order, start, stop, params, grads, units, offsets, hidden_code, out_code,
              loss_kind, x_batch, y_batch, sw_batch, activations, deltas):
    """Sums over samples ``order[start:stop]`` of the loss and its gradient, for a part of a split batch.

    The weighted data loss (no L2 term, not divided by the sum of the sample weights) is returned;
    ``grads`` receives per layer ``A^T delta`` and the column sums of ``delta`` (no L2 term, not divided).
    The parts of a batch (:func:`split_batch`) add them up and finish them together. Only the BLAS path:
    compiling the fused small-batch loops and updates of :func:`batch_loss_and_gradient` here as well
    would double the first fit's compile time for nothing.
    """
    b = stop - start
    loss, _ = forward_and_output_delta(X, Y, sample_weight, order, start, stop, params, units, offsets, hidden_code,
                                       out_code, loss_kind, x_batch, y_batch, sw_batch, activations, deltas, False)
    # backward: gW_l = A_{l-1}^T delta_l, delta_{l-1} = (delta_l W_l^T) * act'(A_{l-1})
    for layer in range(units.size - 2, -1, -1):
        W, gW, gb, A_in, delta, delta_in = layer_views(params, grads, x_batch, activations, deltas, units, offsets,
                                                       layer, b)
        np.dot(A_in.T, delta, gW)
        if layer > 0:
            np.dot(delta, W.T, delta_in)
            multiply_by_derivative(delta_in, A_in, hidden_code)
        column_sums(delta, gb)
    return loss


@jit(reduction=True, **INNER_OPTIONS)
def batch_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units, offsets, hidden_code,
                            out_code, loss_kind, x_batch, y_batch, sw_batch, activations, deltas, alpha, layer_sq,
                            rule, fuse, slots, step, lr):
    """Loss of samples ``order[start:stop]`` and its finished gradient in ``grads`` (the serial epoch).

    With ``fuse``, the optimizer ``rule`` (without clipping by norm) also makes update number ``step`` at rate
    ``lr``, layer by layer during the backward pass, with the state ``slots``: the parameters and their
    gradients are updated while still in cache, instead of in a pass of their own.

    Returns the batch loss (scikit-learn's definition, L2 term included); the
    squared gradient norm of each layer goes to ``layer_sq``. Workspaces have
    room for ``x_batch.shape[0]`` rows. Also returns ``fuse`` (whether the parameters were updated).
    """
    b = stop - start
    small = b <= SMALL_BATCH
    loss, weight_sum = forward_and_output_delta(X, Y, sample_weight, order, start, stop, params, units, offsets,
                                                hidden_code, out_code, loss_kind, x_batch, y_batch, sw_batch,
                                                activations, deltas, small)
    weight_sq = 0.0
    # backward: gW_l = A_{l-1}^T delta_l, delta_{l-1} = (delta_l W_l^T) * act'(A_{l-1})
    for layer in range(units.size - 2, -1, -1):
        W, gW, gb, A_in, delta, delta_in = layer_views(params, grads, x_batch, activations, deltas, units, offsets,
                                                       layer, b)
        w_lo = offsets[layer]
        if small:
            sq, wsq = small_backward(A_in, delta, W, gW, gb, delta_in, hidden_code, alpha, 1.0 / weight_sum,
                                     layer > 0, fuse, rule, params, grads, slots, step, lr, w_lo)
        else:
            np.dot(A_in.T, delta, gW)
            if layer > 0:  # before the update of W
                np.dot(delta, W.T, delta_in)
                multiply_by_derivative(delta_in, A_in, hidden_code)
            sq, wsq = finish_layer_gradient(gW, gb, W, delta, alpha, 1.0 / weight_sum, fuse, rule, params, grads,
                                            slots, step, lr, w_lo)
        layer_sq[layer] = sq
        weight_sq += wsq
    return (loss + 0.5 * alpha * weight_sq) / weight_sum, fuse


@jit(reduction=True)
def mlp_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units, offsets, hidden_code,
                          out_code, loss_kind, x_batch, y_batch, sw_batch, activations, deltas, alpha, layer_sq, rule,
                          slots):
    """:func:`batch_loss_and_gradient` without an update, called from Python (L-BFGS): the cached entry point.

    :func:`batch_loss_and_gradient` itself is not cached on its own (:data:`fastgd._config.INNER_OPTIONS`).
    Returns the loss; the gradient goes to ``grads``.
    """
    return batch_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units, offsets,
                                   hidden_code, out_code, loss_kind, x_batch, y_batch, sw_batch, activations, deltas,
                                   alpha, layer_sq, rule, False, slots, 0, 0.0)[0]


@jit(reduction=True)
def mlp_epoch(X, Y, sample_weight, order, params, grads, slots, units, offsets, hidden_code, out_code, loss_kind,
              x_batch, y_batch, sw_batch, activations, deltas, rule, step, alpha, batch_size, layer_sq, norm_sums):
    """Train a multi-layer perceptron for one epoch, one optimizer update per batch.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or tuple (data, indices, indptr)
        Dense or CSR samples.
    Y : ndarray of shape (n_samples, n_outputs)
        Targets (indicator matrix for classifiers).
    sample_weight : ndarray of shape (n_samples,)
        Sample weights.
    order : ndarray of int64
        Visiting order.
    params, grads : ndarray
        Flat parameters (updated in place) and gradient workspace.
    slots : ndarray
        Optimizer state rows.
    units : ndarray of int64
        Layer widths, input first.
    offsets : ndarray of int64
        Start of each layer's weights in ``params``.
    hidden_code, out_code : int
        Activations of hidden and output layers.
    loss_kind : int
        ``OutputLoss.SQUARED_ERROR``, ``OutputLoss.LOG_LOSS``, ``OutputLoss.BINARY_LOG_LOSS`` or ``OutputLoss.POISSON``.
    x_batch, y_batch, sw_batch : ndarray
        Batch workspaces of ``batch_size`` rows.
    activations, deltas : ndarray
        Flat workspaces for every layer's batch activations and deltas.
    rule : UpdateRule
        Optimizer, schedule and clipping.
    step : int
        Updates made before this epoch.
    alpha : float
        L2 strength.
    batch_size : int
        Samples per update.
    layer_sq : ndarray of shape (n_layers,)
        Workspace for per-layer squared gradient norms.
    norm_sums : ndarray of shape (n_layers,)
        Receives, per layer, the sum over updates of the layer's gradient norm.

    Returns
    -------
    loss_sum : float
        Sum over batches of ``batch loss * batch length`` (NaN once non-finite).
    step : int
        Updates made, including this epoch's.
    """
    n_samples = order.shape[0]
    loss_sum = 0.0
    norm_sums[:] = 0.0
    # the update runs inside the backward pass, unless the norm of the whole gradient is needed first
    # (clipping by norm) or the update runs on Numba's threads
    fuse = not rule.threaded and not rule.clip_norm < math.inf
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        lr = update_lr(rule, step + 1)
        loss, updated = batch_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units,
                                                offsets, hidden_code, out_code, loss_kind, x_batch, y_batch,
                                                sw_batch, activations, deltas, alpha, layer_sq, rule, fuse,
                                                slots, step + 1, lr)
        loss_sum += loss * (stop - start)
        norm, scale = norm_and_clip_scale(add_layer_norms(layer_sq, norm_sums), rule.clip_norm)
        if not (math.isfinite(norm) and math.isfinite(loss_sum)):
            return np.nan, step
        step += 1
        if updated:  # NaN parameters, if any, are caught by the trainer (the engine restores the last good epoch)
            continue
        fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, rule.threaded)
    return loss_sum, step


@jit(reduction=True, inlined=True)
def add_into(total, term):
    """``total += term`` (flat arrays of one size)."""
    for i in range(total.size):
        total[i] += term[i]


@jit(reduction=True, inlined=True)
def finish_summed_gradient(grads, part_grads, n_parts, params, units, offsets, alpha, inv_weight_sum, lo, hi, sq,
                           wsq):
    """Add the parts' gradient sums into ``grads[lo:hi]`` and finish them there.

    ``grads`` holds part 0's sums, ``part_grads[p - 1]`` part ``p``'s. Weights become
    ``(sum + alpha W) / sum(sw)``, biases ``sum / sum(sw)``; per layer, the squared norm of the finished
    gradient is added to ``sq`` and, over weights, ``sum(W^2)`` to ``wsq``. (The loops run over slices from
    0: an index from a range that may start below zero would keep LLVM from vectorising them.)
    """
    a = cast_like(alpha, grads)
    inv = cast_like(inv_weight_sum, grads)
    for layer in range(units.size - 1):
        w_lo = offsets[layer]
        b_lo = w_lo + units[layer] * units[layer + 1]
        b_hi = b_lo + units[layer + 1]
        first, last = max(lo, w_lo), min(hi, b_hi)
        if first >= last:
            continue
        g = grads[first:last]
        for p in range(n_parts - 1):
            add_into(g, part_grads[p, first:last])
        n_weights = max(0, min(last, b_lo) - first)
        layer_sq, layer_wsq = finish_weight_block(grads, params, first, first + n_weights, a, inv)
        for i in range(n_weights, g.size):
            gi = g[i] * inv
            g[i] = gi
            layer_sq += gi * gi
        sq[layer] += layer_sq
        wsq[layer] += layer_wsq


@jit(parallel=True, reduction=True, **INNER_OPTIONS)
def split_batch(X, Y, sample_weight, order, start, stop, params, grads, part_grads, piece_grads, part_rows, units,
                offsets, hidden_code, out_code, loss_kind, x_parts, y_parts, sw_parts, activation_parts, delta_parts,
                alpha, part_sq, part_loss, layer_sq, rule, update, slots, step, lr):
    """Loss of samples ``order[start:stop]`` and its gradient in ``grads``, the rows split into parts on threads.

    Part ``p`` is the rows ``order[start + p * part_rows:][:part_rows]`` (at most ``x_parts.shape[0]``
    parts): its forward and backward passes run with its own workspaces (``x_parts[p]`` ...), in pieces of
    ``x_parts.shape[1]`` rows, and leave the sums of its loss and gradient (:func:`part_sums`) in
    ``part_loss[p]`` and in ``grads`` (part 0) or ``part_grads[p - 1]``; each piece
    after the first goes through ``piece_grads[p]`` (empty rows when parts are one piece). Then each thread
    takes a chunk of the parameters, adds the parts' sums there and finishes them
    (:func:`finish_summed_gradient`); with ``update``, the optimizer ``rule`` then makes update number
    ``step`` at rate ``lr`` on the chunk while it is in cache. ``part_sq`` is a ``(2 * n_parts, n_layers)``
    workspace; the squared gradient norm of each layer goes to ``layer_sq``. Returns the loss
    (scikit-learn's definition, L2 term included).
    """
    n_parts, work_rows = x_parts.shape[0], x_parts.shape[1]
    n = params.size
    chunk = ((n + n_parts - 1) // n_parts + 15) // 16 * 16  # whole cache lines per thread
    active = (stop - start + part_rows - 1) // part_rows
    mode = float_control()  # Numba's threads compute in the calling thread's mode (float_env)
    for p in numba.prange(active):
        previous = adopt_float_control(mode)
        lo = start + p * part_rows
        hi = min(stop, lo + part_rows)
        part_sum = grads if p == 0 else part_grads[p - 1]
        loss = 0.0
        for piece_lo in range(lo, hi, work_rows):
            first = piece_lo == lo
            loss += part_sums(X, Y, sample_weight, order, piece_lo, min(hi, piece_lo + work_rows), params,
                              part_sum if first else piece_grads[p], units, offsets, hidden_code, out_code,
                              loss_kind, x_parts[p], y_parts[p], sw_parts[p], activation_parts[p], delta_parts[p])
            if not first:
                add_into(part_sum, piece_grads[p])
        part_loss[p] = loss
        restore_float_control(previous)
    inv_weight_sum = 1.0 / batch_weight_sum(sample_weight, order, start, stop)
    part_sq[:] = 0.0
    for c in numba.prange(n_parts):
        previous = adopt_float_control(mode)
        lo = c * chunk
        hi = min(n, lo + chunk)
        finish_summed_gradient(grads, part_grads, active, params, units, offsets, alpha, inv_weight_sum, lo, hi,
                               part_sq[c], part_sq[n_parts + c])
        if update:
            update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, 1.0, rule.clip_value, lo, hi)
        restore_float_control(previous)
    weight_sq = 0.0
    for layer in range(layer_sq.size):
        sq = 0.0
        for c in range(n_parts):
            sq += part_sq[c, layer]
            weight_sq += part_sq[n_parts + c, layer]
        layer_sq[layer] = sq
    loss = 0.5 * alpha * weight_sq
    for p in range(active):
        loss += part_loss[p]
    return loss * inv_weight_sum


@jit(reduction=True)
def mlp_loss_and_gradient_split(X, Y, sample_weight, order, start, stop, params, grads, part_grads, piece_grads,
                                units, offsets, hidden_code, out_code, loss_kind, x_parts, y_parts, sw_parts,
                                activation_parts, delta_parts, alpha, part_sq, layer_sq, rule, slots):
    """:func:`mlp_loss_and_gradient` with the rows split into parts on Numba's threads (:func:`split_batch`)."""
    part_loss = np.zeros(x_parts.shape[0])
    part_rows = -(-(stop - start) // x_parts.shape[0])
    return split_batch(X, Y, sample_weight, order, start, stop, params, grads, part_grads, piece_grads, part_rows,
                       units, offsets, hidden_code, out_code, loss_kind, x_parts, y_parts, sw_parts, activation_parts,
                       delta_parts, alpha, part_sq, part_loss, layer_sq, rule, False, slots, 0, 0.0)


@jit(reduction=True)
def mlp_epoch_split(X, Y, sample_weight, order, params, grads, part_grads, piece_grads, slots, units, offsets,
                    hidden_code, out_code, loss_kind, x_parts, y_parts, sw_parts, activation_parts, delta_parts, rule,
                    step, alpha, batch_size, part_sq, layer_sq, norm_sums):
    """:func:`mlp_epoch` with each batch split into parts of rows, computed on Numba's threads (:func:`split_batch`).

    Unless the gradient is clipped by its global norm, each thread updates its chunk of the parameters as
    soon as it is summed and finished. Same arguments and result as :func:`mlp_epoch`, plus the
    workspaces of :func:`split_batch` (``part_grads``, ``piece_grads``, ``x_parts`` ... ``delta_parts``,
    ``part_sq``). Parts have ``ceil(batch_size / n_parts)`` rows.
    """
    n_samples = order.shape[0]
    part_loss = np.zeros(x_parts.shape[0])
    part_rows = -(-batch_size // x_parts.shape[0])
    loss_sum = 0.0
    norm_sums[:] = 0.0
    fuse = not rule.clip_norm < math.inf
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        lr = update_lr(rule, step + 1)
        loss = split_batch(X, Y, sample_weight, order, start, stop, params, grads, part_grads, piece_grads,
                           part_rows, units, offsets, hidden_code, out_code, loss_kind, x_parts, y_parts, sw_parts,
                           activation_parts, delta_parts, alpha, part_sq, part_loss, layer_sq, rule, fuse, slots,
                           step + 1, lr)
        loss_sum += loss * (stop - start)
        norm, scale = norm_and_clip_scale(add_layer_norms(layer_sq, norm_sums), rule.clip_norm)
        if not (math.isfinite(norm) and math.isfinite(loss_sum)):
            return np.nan, step
        step += 1
        if fuse:
            continue
        fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, True)
    return loss_sum, step


@jit(reduction=True)
def mlp_forward(X, params, units, offsets, hidden_code, out_code, out, chunk):
    """Output activations of every sample of ``X`` into ``out``, ``chunk`` rows at a time."""
    n_samples = out.shape[0]
    n_layers = units.size - 1
    widest = 0
    for layer in range(1, units.size):
        widest = max(widest, units[layer])
    x_chunk = np.empty((chunk, units[0]), dtype=params.dtype)
    buf_a = np.empty(chunk * widest, dtype=params.dtype)
    buf_b = np.empty(chunk * widest, dtype=params.dtype)
    order = np.arange(n_samples)
    for start in range(0, n_samples, chunk):
        stop = min(n_samples, start + chunk)
        b = stop - start
        gather_rows(X, order, start, stop, x_chunk)
        a_prev = x_chunk[:b]
        for layer in range(n_layers):
            n_in = units[layer]
            n_out = units[layer + 1]
            w_lo = offsets[layer]
            W = params[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
            target = buf_a if layer % 2 == 0 else buf_b
            A = target[:b * n_out].reshape(b, n_out)
            np.dot(a_prev, W, A)
            add_bias_and_activate(A, params[w_lo + n_in * n_out:w_lo + (n_in + 1) * n_out],
                                  out_code if layer == n_layers - 1 else hidden_code)
            a_prev = A
        out[start:stop] = a_prev
