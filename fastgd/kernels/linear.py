"""The compiled epoch of linear models, for all three variants of gradient descent.

Parameters live in one flat vector: the ``(n_outputs, n_features)`` weights in
row-major order, then the ``n_outputs`` intercepts. An epoch walks the samples
in the given order; every ``batch_size`` samples (the last batch may be
shorter) it turns the summed gradient into the batch mean plus the L2 term,
clips it and hands it to the fused optimizer step. ``batch_size = 1`` is
per-sample SGD, ``batch_size = n_samples`` full-batch GD: the same loop.

Per-sample SGD (a batch of one sample) has its own short path. The decision
pass also sums ``||x||^2``, ``x . w`` and ``||w||^2``, which give the norm of
the sample's gradient ``dz * x + l2 * w`` in closed form (:func:`sample_norm2`)
without a reduction over the gradient; the gradient is written in one pass
(:func:`fastgd.kernels.rows.sample_gradient`) instead of being accumulated and
then finished. Its arithmetic is that of a batch of one: the same bits in
float64.

No function is called per sample: row access, losses, gradient passes and the
optimizer update are inlined by LLVM into the loop and compiled without
reference counting (:data:`fastgd._config.INLINE_OPTIONS`), each with its own
fast-math flags (the optimizers' strict arithmetic stays strict). A call left
anywhere in the loop, even on a branch never taken, was measured to cost about
25 ns per sample, so the threaded optimizer update
(:func:`fastgd.optim._registry.fused_step`, for very large models) has its own
entry point, :func:`linear_epoch_threaded`. Both entry points inline the same
loop, :func:`epoch_loop`, at Numba's level (``inline="always"``: compiled once
per entry point, and only for the entry point used), with ``threaded`` a
constant.
"""

from __future__ import annotations

import math

import numpy as np

from .._config import jit
from ..optim._registry import fused_step, update_range
from ..optim.schedules import update_lr
from ._cast import cast_like
from .losses import output_loss
from .rows import accumulate, decision, prefetch_row, sample_gradient


@jit(reduction=True, inlined=True)
def finish_gradient(params, grads, n_coefs, inv_batch, l2):
    """``grads = grads * inv_batch + l2 * coef`` (intercepts unpenalised); returns the squared norm.

    Scalars are cast to the parameters' dtype first: a float64 factor would
    turn a float32 loop into a float64 one at half the vector width.
    """
    inv = cast_like(inv_batch, params)
    l2_ = cast_like(l2, params)
    sq = cast_like(0.0, params)
    for j in range(n_coefs):
        g = grads[j] * inv + l2_ * params[j]
        grads[j] = g
        sq += g * g
    for j in range(n_coefs, params.size):
        g = grads[j] * inv
        grads[j] = g
        sq += g * g
    return sq


@jit(inlined=True)
def l1_shrink(params, n_coefs, amount):
    """Soft-threshold the weights toward zero by ``amount`` (the proximal step of L1)."""
    amount = cast_like(amount, params)
    for j in range(n_coefs):
        w = params[j]
        if w > amount:
            params[j] = w - amount
        elif w < -amount:
            params[j] = w + amount
        else:
            params[j] = 0


@jit(inlined=True)
def sample_norm2(xx, norms, dz, l2, fit_intercept):
    """Squared norm of one sample's gradient, from the pieces summed by :func:`~fastgd.kernels.rows.decision`.

    Output ``k``'s gradient is ``dz[k] * x + l2 * w_k`` and ``dz[k]`` (its
    intercept), so its squared norm is ``dz[k]^2 (||x||^2 + 1) + 2 dz[k] l2
    (x . w_k) + l2^2 ||w_k||^2`` (``+ 1`` only with ``fit_intercept``), summed
    over the outputs in the parameters' dtype: it overflows where the sum of
    the squared components would. Not finite when a piece is not.
    """
    one = cast_like(1.0 if fit_intercept else 0.0, norms)
    two = cast_like(2.0, norms)
    l2_ = cast_like(l2, norms)
    sq = cast_like(0.0, norms)
    for k in range(dz.size):
        d = dz[k]
        sq += d * d * (xx + one) + two * d * l2_ * norms[0, k] + l2_ * l2_ * norms[1, k]
    if sq < 0:  # round-off when d * x nearly cancels l2 * w (NaN stays NaN)
        sq = cast_like(0.0, norms)
    return sq


@jit(reduction=True, refcount=False, inline="always")
def epoch_loop(threaded, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, rule, step,
               loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size):
    """The epoch of :func:`linear_epoch`; ``threaded`` is a constant of each entry point.

    ``threaded`` runs the optimizer update on Numba's threads
    (:func:`~fastgd.optim._registry.fused_step`), otherwise it is inlined
    (:func:`~fastgd.optim._registry.update_range`). The other parameters
    and the returns are those of :func:`linear_epoch`.
    """
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    clip_norm2 = rule.clip_norm * rule.clip_norm
    loss_sum = 0.0
    norm_sum = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        if stop - start == 1:
            prefetch_row(X, order, start)
            xx = decision(X, order, start, params, n_features, n_outputs, fit_intercept, z, norms)
            loss = output_loss(loss_code, z, Y[order[start]], dz, epsilon)
            weight = sample_weight[order[start]]
            loss_sum += weight * loss
            for k in range(n_outputs):
                dz[k] *= weight
            sample_gradient(X, order, start, dz, params, grads, n_features, n_outputs, fit_intercept, l2)
            sq = sample_norm2(xx, norms, dz, l2, fit_intercept)
        else:
            for i in range(start, stop):
                prefetch_row(X, order, i)
                decision(X, order, i, params, n_features, n_outputs, fit_intercept, z, None)
                loss = output_loss(loss_code, z, Y[order[i]], dz, epsilon)
                weight = sample_weight[order[i]]
                loss_sum += weight * loss
                for k in range(n_outputs):
                    dz[k] *= weight
                accumulate(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, i == start)
            sq = finish_gradient(params, grads, n_coefs, 1.0 / (stop - start), l2)
            if not fit_intercept:
                for k in range(n_outputs):
                    grads[n_coefs + k] = 0
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            return np.nan, step, norm_sum
        norm = math.sqrt(sq)
        norm_sum += norm
        scale = 1.0
        if sq > clip_norm2:  # norm > clip_norm, decided without waiting for the square root
            scale = rule.clip_norm / (norm + 1e-6)
        step += 1
        lr = update_lr(rule, step)
        if threaded:
            fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, True)
        else:
            update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value,
                         0, params.size)
        if l1 > 0.0:
            l1_shrink(params, n_coefs, lr * l1)
    return loss_sum, step, norm_sum


@jit(reduction=True, refcount=False)
def linear_epoch(X, Y, sample_weight, order, params, grads, slots, z, dz, norms, rule, step,
                 loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size):
    """Train a linear model for one epoch, with serial optimizer updates.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or tuple (data, indices, indptr)
        Dense (C-contiguous) or CSR samples.
    Y : ndarray of shape (n_samples, n_targets)
        Targets coded for the loss (see :mod:`fastgd.kernels.losses`).
    sample_weight : ndarray of shape (n_samples,)
        Weight of each sample's loss.
    order : ndarray of int64
        Order in which the samples are visited.
    params, grads : ndarray of shape (n_outputs * (n_features + 1),)
        Flat parameters (updated) and gradient workspace.
    slots : ndarray
        Optimizer state rows.
    z, dz : ndarray of shape (n_outputs,)
        Workspaces for decision values and their loss derivatives.
    norms : ndarray of shape (2, n_outputs)
        Workspace for the pieces of a sample's gradient norm (see :func:`sample_norm2`).
    rule : UpdateRule
        Optimizer, schedule and clipping (``rule.threaded`` is ignored: see
        :func:`linear_epoch_threaded`).
    step : int
        Updates made before this epoch.
    loss_code, epsilon : int, float
        The loss and its ``epsilon`` (huber, epsilon_insensitive).
    n_outputs : int
        Number of outputs (weight rows).
    fit_intercept : bool
        Whether the intercepts are trained.
    l2, l1 : float
        Penalty strengths (``alpha * (1 - l1_ratio)`` and ``alpha * l1_ratio``).
    batch_size : int
        Samples per update.

    Returns
    -------
    loss_sum : float
        Sum of the weighted sample losses, each taken before its update;
        NaN as soon as a loss or a gradient is not finite (the epoch stops there,
        before that update).
    step : int
        Updates made, including this epoch's.
    norm_sum : float
        Sum over this epoch's updates of the gradient's global norm before clipping.
    """
    return epoch_loop(False, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, rule, step,
                      loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size)


@jit(reduction=True, refcount=False)
def linear_epoch_threaded(X, Y, sample_weight, order, params, grads, slots, z, dz, norms, rule, step,
                          loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size):
    """:func:`linear_epoch` with the optimizer update on Numba's threads (``rule.threaded``, large models)."""
    return epoch_loop(True, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, rule, step,
                      loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size)


@jit(reduction=True)
def linear_gradient_sum(X, Y, sample_weight, params, grads, z, dz, loss_code, epsilon, n_outputs, fit_intercept):
    """Sum over every sample of its weighted loss, and of its loss gradient into ``grads``.

    No penalty and no mean: the sums of several chunks add up to those of
    their union, which is how :func:`fastgd.stream.fit_full_batch` makes
    exact full-batch GD out of data read chunk by chunk.

    Returns
    -------
    float
        ``sum(sample_weight * loss)``.
    """
    n_samples = Y.shape[0]
    n_features = params.size // n_outputs - 1
    order = np.arange(n_samples)
    loss_sum = 0.0
    for i in range(n_samples):
        decision(X, order, i, params, n_features, n_outputs, fit_intercept, z, None)
        loss = output_loss(loss_code, z, Y[i], dz, epsilon)
        weight = sample_weight[i]
        loss_sum += weight * loss
        for k in range(n_outputs):
            dz[k] *= weight
        accumulate(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, i == 0)
    return loss_sum
