"""The compiled epoch of linear models, for all three variants of gradient descent.

Parameters live in one flat vector: the ``(n_outputs, n_features)`` weights in
row-major order, then the ``n_outputs`` intercepts. An epoch walks the samples
in the given order; every ``batch_size`` samples (the last batch may be
shorter) it turns the summed gradient into the batch mean plus the L2 term,
clips it and hands it to the fused optimizer step. ``batch_size = 1`` is
per-sample SGD, ``batch_size = n_samples`` full-batch GD: the same loop.

A batch of one sample (per-sample SGD) writes its gradient ``dz * x + l2 * w``
in a single pass (:func:`fastgd.kernels.rows.sample_gradient`) instead of
accumulating and then finishing it. Row access, gradient passes and the
optimizer update are inlined by LLVM into the loop (``forceinline``), and a
serial update calls :func:`fastgd.optim._registry.update_range` directly
rather than the ``parallel=True`` :func:`~fastgd.optim._registry.fused_step`:
per-sample SGD then costs what its arithmetic and memory traffic cost, with no
function call per sample.
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


@jit(reduction=True, forceinline=True)
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


@jit(forceinline=True)
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


@jit(reduction=True)
def linear_epoch(X, Y, sample_weight, order, params, grads, slots, z, dz, rule, step,
                 loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size):
    """Train a linear model for one epoch.

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
    rule : UpdateRule
        Optimizer, schedule and clipping.
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
        NaN as soon as a loss or a gradient is not finite (the epoch stops there).
    step : int
        Updates made, including this epoch's.
    norm_sum : float
        Sum over this epoch's updates of the gradient's global norm before clipping.
    """
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    loss_sum = 0.0
    norm_sum = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        single = stop - start == 1
        for i in range(start, stop):
            prefetch_row(X, order, i)
            decision(X, order, i, params, n_features, n_outputs, fit_intercept, z)
            loss = output_loss(loss_code, z, Y[order[i]], dz, epsilon)
            weight = sample_weight[order[i]]
            loss_sum += weight * loss
            for k in range(n_outputs):
                dz[k] *= weight
            if not single:
                accumulate(X, order, i, dz, grads, n_features, n_outputs, fit_intercept, i == start)
        if single:
            sq = sample_gradient(X, order, start, dz, params, grads, n_features, n_outputs, fit_intercept, l2)
        else:
            sq = finish_gradient(params, grads, n_coefs, 1.0 / (stop - start), l2)
            if not fit_intercept:
                for k in range(n_outputs):
                    grads[n_coefs + k] = 0
        norm = math.sqrt(sq)
        if not (math.isfinite(norm) and math.isfinite(loss_sum)):
            return np.nan, step, norm_sum
        norm_sum += norm
        scale = 1.0
        if norm > rule.clip_norm:
            scale = rule.clip_norm / (norm + 1e-6)
        step += 1
        lr = update_lr(rule, step)
        if rule.threaded:
            fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, True)
        else:
            update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value,
                         0, params.size)
        if l1 > 0.0:
            l1_shrink(params, n_coefs, lr * l1)
    return loss_sum, step, norm_sum
