"""The compiled epoch of multi-layer perceptrons.

Parameters live in one flat vector, layer after layer: the ``(n_in, n_out)``
weights of layer ``l`` in row-major order, then its ``n_out`` biases
(``offsets[l]`` is where the weights start). For every batch, the kernel
gathers the batch's rows into a contiguous buffer, runs the forward pass
(BLAS matrix products through ``np.dot`` into preallocated buffers, bias and
activation fused), the fused output/loss/delta step, the backward pass, and
the fused optimizer step. Nothing is allocated per batch.

The loss and its gradient follow scikit-learn's MLP: squared error is half the
mean squared error, the log-losses are averaged over samples, the L2 term is
``alpha / 2 * sum(W^2) / sum(sample_weight)``, and the output delta is
``prediction - target`` for each canonical pairing (identity and squared
error, logistic and binary log-loss, softmax and cross-entropy).
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .._config import REDUCTION_FASTMATH, jit
from ..optim._registry import fused_step
from ..optim.schedules import update_lr
from ._cast import cast_like
from .activations import add_bias_and_activate, multiply_by_derivative

SQUARED_ERROR = 0
LOG_LOSS = 1
BINARY_LOG_LOSS = 2

_JIT_OPTIONS = {"cache": True, "fastmath": set(REDUCTION_FASTMATH), "error_model": "numpy"}


def gather_rows(X, order, start, stop, out):  # pragma: no cover - compiled overload below
    """Copy rows ``order[start:stop]`` of ``X`` (dense, or CSR as a tuple) into dense ``out``."""
    raise NotImplementedError


@overload(gather_rows, jit_options=_JIT_OPTIONS)
def _gather_rows(X, order, start, stop, out):
    if isinstance(X, types.Array):
        def impl(X, order, start, stop, out):
            for r in range(stop - start):
                out[r, :] = X[order[start + r]]
        return impl

    def impl_csr(X, order, start, stop, out):
        data, indices, indptr = X
        for r in range(stop - start):
            row = order[start + r]
            out[r, :] = 0
            for p in range(indptr[row], indptr[row + 1]):
                out[r, indices[p]] = data[p]
    return impl_csr


@jit(reduction=True)
def output_delta(P, Y, sw, loss_kind, delta):
    """``delta = (P - Y) * sw`` row-wise; returns the batch's weighted loss sum (scikit-learn's definitions)."""
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
            if loss_kind == SQUARED_ERROR:
                row_loss += (y - p) * (y - p)
            else:
                pc = min(max(p, eps), 1 - eps)
                if y != 0:
                    row_loss -= y * math.log(pc)
                if loss_kind == BINARY_LOG_LOSS and y != 1:
                    row_loss -= (1 - y) * math.log(1 - pc)
        total += w * row_loss
    if loss_kind == SQUARED_ERROR:
        total *= 0.5 / n_out
    return total


@jit(reduction=True)
def finish_layer_gradient(gW, gb, W, delta, alpha, inv_weight_sum):
    """``gW = (gW + alpha W) / sum(sw)``, ``gb = column sums of delta / sum(sw)``; returns the squared norm."""
    a = cast_like(alpha, W)
    inv = cast_like(inv_weight_sum, W)
    sq = cast_like(0.0, W)
    n_in, n_out = W.shape
    for i in range(n_in):
        for j in range(n_out):
            g = (gW[i, j] + a * W[i, j]) * inv
            gW[i, j] = g
            sq += g * g
    gb[:] = 0
    for r in range(delta.shape[0]):
        for j in range(n_out):
            gb[j] += delta[r, j]
    for j in range(n_out):
        g = gb[j] * inv
        gb[j] = g
        sq += g * g
    return sq


@jit(reduction=True)
def squared_weight_sum(params, units, offsets):
    """``sum(W^2)`` over every layer's weights (biases excluded)."""
    total = 0.0
    for layer in range(units.size - 1):
        lo = offsets[layer]
        for j in range(lo, lo + units[layer] * units[layer + 1]):
            total += params[j] * params[j]
    return total


@jit(reduction=True)
def batch_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units, offsets, hidden_code,
                            out_code, loss_kind, x_batch, y_batch, sw_batch, activations, deltas, alpha, layer_sq):
    """Loss of samples ``order[start:stop]`` and its gradient in ``grads``.

    Returns the batch loss (scikit-learn's definition, L2 term included); the
    squared gradient norm of each layer goes to ``layer_sq``. Workspaces have
    room for ``x_batch.shape[0]`` rows.
    """
    rows = x_batch.shape[0]
    n_layers = units.size - 1
    b = stop - start
    gather_rows(X, order, start, stop, x_batch)
    weight_sum = 0.0
    for r in range(b):
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
        np.dot(a_prev, W, A)
        add_bias_and_activate(A, params[w_lo + n_in * n_out:w_lo + (n_in + 1) * n_out],
                              out_code if layer == n_layers - 1 else hidden_code)
        a_prev = A
        a_off += rows * n_out
    # output delta and loss
    n_last = units[n_layers]
    a_off -= rows * n_last
    d_off = a_off
    delta = deltas[d_off:d_off + b * n_last].reshape(b, n_last)
    loss = output_delta(a_prev, y_batch[:b], sw_batch[:b], loss_kind, delta)
    loss = (loss + 0.5 * alpha * squared_weight_sum(params, units, offsets)) / weight_sum
    # backward: gW_l = A_{l-1}^T delta_l, delta_{l-1} = (delta_l W_l^T) * act'(A_{l-1})
    for layer in range(n_layers - 1, -1, -1):
        n_in = units[layer]
        n_out = units[layer + 1]
        w_lo = offsets[layer]
        W = params[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
        gW = grads[w_lo:w_lo + n_in * n_out].reshape(n_in, n_out)
        gb = grads[w_lo + n_in * n_out:w_lo + (n_in + 1) * n_out]
        if layer == 0:
            A_in = x_batch[:b]
        else:
            a_off -= rows * n_in
            A_in = activations[a_off:a_off + b * n_in].reshape(b, n_in)
        np.dot(A_in.T, delta, gW)
        layer_sq[layer] = finish_layer_gradient(gW, gb, W, delta, alpha, 1.0 / weight_sum)
        if layer > 0:
            d_off -= rows * n_in
            delta_in = deltas[d_off:d_off + b * n_in].reshape(b, n_in)
            np.dot(delta, W.T, delta_in)
            multiply_by_derivative(delta_in, A_in, hidden_code)
            delta = delta_in
    return loss


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
        ``SQUARED_ERROR``, ``LOG_LOSS`` or ``BINARY_LOG_LOSS``.
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
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        loss = batch_loss_and_gradient(X, Y, sample_weight, order, start, stop, params, grads, units, offsets,
                                       hidden_code, out_code, loss_kind, x_batch, y_batch, sw_batch, activations,
                                       deltas, alpha, layer_sq)
        loss_sum += loss * (stop - start)
        total_sq = 0.0
        for layer in range(layer_sq.size):
            total_sq += layer_sq[layer]
            norm_sums[layer] += math.sqrt(layer_sq[layer])
        norm = math.sqrt(total_sq)
        if not (math.isfinite(norm) and math.isfinite(loss_sum)):
            return np.nan, step
        scale = 1.0
        if norm > rule.clip_norm:
            scale = rule.clip_norm / (norm + 1e-6)
        step += 1
        lr = update_lr(rule, step)
        fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, rule.threaded)
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
