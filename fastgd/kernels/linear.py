"""The compiled epoch of linear models, for all three variants of gradient descent.

Parameters live in one flat vector: the ``(n_outputs, n_features)`` weights in
row-major order, then the ``n_outputs`` intercepts. An epoch walks the samples
in the given order; every ``batch_size`` samples (the last batch may be
shorter) it turns the summed gradient into the batch mean plus the L2 term,
clips it and hands it to the fused optimizer step. ``batch_size = 1`` is
per-sample SGD, ``batch_size = n_samples`` full-batch GD: the same loop.

Per-sample SGD (``batch_size = 1``) has a loop of its own, :func:`sample_loop`.
Its speed is set by a chain: each sample's decision value needs the weights
that the previous sample's update wrote. Each sample's decision is therefore
computed at the end of the step before, and with plain SGD (no momentum, the
algorithm of scikit-learn's ``SGDClassifier``) in the same pass over the
weights as that update (:func:`fastgd.kernels.rows.sgd_step_and_decide`): one
pass per sample instead of three (decision, gradient, update). The same pass
sums ``||x||^2``, ``x . w`` and ``||w||^2`` of the next sample, which give the
norm of its gradient ``dz * x + l2 * w`` in closed form (:func:`sample_norm2`)
without a reduction over the gradient. Rows, targets and sample weights are
prefetched (:mod:`fastgd._numeric.prefetch`): shuffled, each is a cache miss.
On 200,000 x 100 float32 samples, shuffled, this took an epoch of hinge-loss
SGD from 110 to 60 ns per sample (log_loss: 144 to 78).

No function is called per sample: row access, losses, gradient passes and the
optimizer update are inlined by LLVM into the loop and compiled without
reference counting (:data:`fastgd._config.INLINE_OPTIONS`), each with its own
fast-math flags (the optimizers' strict arithmetic stays strict). A call left
anywhere in the loop, even on a branch never taken, was measured to cost about
25 ns per sample, so the threaded optimizer update
(:func:`fastgd.optim._registry.fused_step`, for very large models) has its own
entry point, :func:`linear_epoch_threaded`. Large mini-batches have a third,
:func:`linear_epoch_blocked`: each batch's gradient is computed in fixed blocks
of rows on Numba's threads (:func:`block_gradients`), one buffer per block,
then the blocks are added in block order. The partition depends on the batch
and the model only, so the result is bitwise the same on any number of
threads. All entry points inline the same loop, :func:`epoch_loop`, at
Numba's level (``inline="always"``: compiled once per entry point, and only
for the entry point used), with ``threaded`` and ``blocked`` constants.
Mini-batches of plain SGD on wide CSR rows have a loop of their own,
:func:`linear_epoch_csr_batches`: a batch costs its nonzeros, where the
general loop passes over every weight for every batch. The other optimizers
(and clipping by value) have :func:`linear_epoch_csr_sparse_updates` on CSR
rows: each step gathers the coordinates of the batch's nonzero features,
runs the optimizer's fused update on them and scatters them back, exact
where a zero gradient moves nothing, PyTorch's lazy ``SparseAdam`` rule
otherwise.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .._config import INNER_OPTIONS, jit
from .._numeric.cast import cast_like, tiny_like
from .._numeric.float_env import adopt_float_control, float_control, restore_float_control
from ..optim._registry import SGD_KERNEL_ID, fused_step, update_range
from ..optim.schedules import update_lr
from ..optim.sgd import plain_sgd_value
from .losses import output_loss
from .penalty import cumulative_l1, cumulative_l1_value, l1_shrink
from .rows import (
    accumulate,
    average_step,
    decision,
    fold_weight_scale,
    one_pass_sgd_applies,
    prefetch_row,
    prefetch_targets,
    prefetch_weights,
    sample_gradient,
    sgd_step_and_decide,
    sparse_dot,
    unsigned,
)


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
def decay_intercept_gradients(grads, n_coefs, intercept_decay):
    """Multiply the intercepts' gradient ``grads[n_coefs:]`` by ``intercept_decay`` (nothing when it is 1)."""
    if intercept_decay != 1.0:
        decay = cast_like(intercept_decay, grads)
        for j in range(n_coefs, grads.size):
            grads[j] *= decay


@jit(inlined=True)
def one_pass_step_serves(X, rule, l1):
    """Whether per-sample training on ``X`` takes the one-pass step (:func:`~fastgd.kernels.rows.sgd_step_and_decide`).

    It serves plain SGD (no momentum), on dense rows always and on CSR rows
    without clipping by value. On CSR rows it then costs the row's
    nonzeros per sample (the L2 decay lives in a weight scale, L1 is the
    cumulative penalty on the weights the step moved), so the
    trainers never send such an epoch to the threaded dense update
    (:class:`fastgd.backends.cpu.LinearTrainer`, which calls this in Python).
    """
    return rule.kernel_id == SGD_KERNEL_ID and rule.hyper[0] == 0.0 and one_pass_sgd_applies(X, l1, rule.clip_value)


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


@jit(parallel=True, reduction=True, **INNER_OPTIONS)
def block_gradients(X, Y, sample_weight, order, start, stop, params, block_grads, block_loss, block_z, block_dz,
                    loss_code, epsilon, n_outputs, fit_intercept, block_rows):
    """Loss and gradient sums of the samples ``order[start:stop]``, per block of ``block_rows``, on Numba's threads.

    Block ``b`` holds the samples ``order[start + b * block_rows:][:block_rows]``;
    its summed weighted loss goes to ``block_loss[b]`` and its summed loss
    gradient (no penalty, no mean) to ``block_grads[b]``, with the workspaces
    ``block_z[b]`` and ``block_dz[b]`` (rows may be longer than needed: padded
    so that two threads never write to the same cache line). Blocks are
    independent, so the thread that computes one does not change its bits.

    Returns
    -------
    int
        The number of blocks.
    """
    n_features = params.size // n_outputs - 1
    n_blocks = (stop - start + block_rows - 1) // block_rows
    mode = float_control()  # Numba's threads compute in the calling thread's mode (float_env)
    for b in numba.prange(n_blocks):
        previous = adopt_float_control(mode)
        lo = start + b * block_rows
        hi = min(stop, lo + block_rows)
        g = block_grads[b, :params.size]
        z = block_z[b, :n_outputs]
        dz = block_dz[b, :n_outputs]
        block_sum = 0.0
        for i in range(lo, hi):
            prefetch_row(X, order, i)
            prefetch_targets(Y, sample_weight, order, i)
            decision(X, order, i, params, n_features, n_outputs, fit_intercept, z, None)
            loss = output_loss(loss_code, z, Y[order[i]], dz, epsilon)
            weight = sample_weight[order[i]]
            block_sum += weight * loss
            for k in range(n_outputs):
                dz[k] *= weight
            accumulate(X, order, i, dz, g, n_features, n_outputs, fit_intercept, i == lo)
        block_loss[b] = block_sum
        restore_float_control(previous)
    return n_blocks


@jit(inlined=True)
def norm_and_clip_scale(sq, clip_norm):
    """The gradient's norm ``sqrt(sq)`` and the factor that rescales it to norm ``clip_norm`` (1 within it)."""
    norm = math.sqrt(sq)
    if sq > clip_norm * clip_norm:  # norm > clip_norm, decided without waiting for the square root
        return norm, clip_norm / (norm + 1e-6)
    return norm, 1.0


@jit(refcount=False, inline="always")
def optimizer_update(threaded, blocked, params, grads, slots, rule, step, lr, scale, l1, n_coefs):
    """The optimizer step on ``grads``, then the L1 proximal step (``threaded``, ``blocked``: see :func:`epoch_loop`).

    ``blocked`` runs the step on Numba's threads when ``rule.threaded``,
    ``threaded`` always; otherwise it is inlined into the loop.
    """
    if blocked:
        fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value,
                   rule.threaded)
    elif threaded:
        fused_step(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value, True)
    else:
        update_range(rule.kernel_id, params, grads, slots, rule.hyper, step, lr, scale, rule.clip_value,
                     0, params.size)
    if l1 > 0.0:
        l1_shrink(params, n_coefs, lr * l1)


@jit(reduction=True, refcount=False, inline="always")
def sample_loop(threaded, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1):
    """The epoch of :func:`linear_epoch` with ``batch_size = 1``: one update per sample.

    L1 is the cumulative penalty of scikit-learn's ``SGDClassifier``
    (:func:`~fastgd.kernels.penalty.cumulative_l1_value`) on every route:
    after each update, on the weights it moved.

    Each sample's decision values are computed at the end of the step
    before (the first one's before the loop), together with the pieces of
    its gradient norm (:func:`sample_norm2`). Plain SGD (no momentum, serial)
    makes the update and the next decision in one pass over the weights
    (:func:`~fastgd.kernels.rows.sgd_step_and_decide`); the other optimizers
    write the gradient (:func:`~fastgd.kernels.rows.sample_gradient`),
    update, and then compute the next decision. Parameters and returns are
    those of :func:`linear_epoch`.
    """
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    plain_sgd = not threaded and one_pass_step_serves(X, rule, l1)
    loss_sum = 0.0
    norm_sum = 0.0
    xx = cast_like(0.0, params)
    if n_samples > 0:
        xx = decision(X, order, 0, params, n_features, n_outputs, fit_intercept, z, norms)
    lazy[0, 0] = 1.0  # the weights are params themselves (see sgd_step_and_decide)
    for k in range(n_outputs):
        lazy[1, k] = norms[1, k]
        lazy[2, k] = norms[0, k]
    for i in range(n_samples):
        prefetch_row(X, order, i)
        prefetch_weights(X, order, i, params, n_features, n_outputs)
        prefetch_targets(Y, sample_weight, order, i)
        loss = output_loss(loss_code, z, Y[order[i]], dz, epsilon)
        weight = sample_weight[order[i]]
        loss_sum += weight * loss
        for k in range(n_outputs):
            dz[k] *= weight
        sq = sample_norm2(xx, norms, dz, l2, fit_intercept)
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            fold_weight_scale(X, params, n_coefs, lazy, averaged)
            return np.nan, step, norm_sum
        norm, scale = norm_and_clip_scale(sq, rule.clip_norm)
        norm_sum += norm
        step += 1
        lr = update_lr(rule, step)
        if plain_sgd:
            xx = sgd_step_and_decide(X, order, i, dz, xx, params, n_features, n_outputs, fit_intercept, l2,
                                     lr * l1, rule.hyper[3], lr, scale, rule.clip_value, rule.intercept_decay,
                                     z, norms, lazy, l1_applied, averaged)
            if 0 < rule.average_from <= step:
                average_step(X, params, averaged, lazy, n_coefs, step - rule.average_from + 1)
            continue
        sample_gradient(X, order, i, dz, params, grads, n_features, n_outputs, fit_intercept, l2)
        decay_intercept_gradients(grads, n_coefs, rule.intercept_decay)
        optimizer_update(threaded, False, params, grads, slots, rule, step, lr, scale, 0.0, n_coefs)
        if l1 > 0.0:  # this update moved every weight: the cumulative penalty on all of them
            lazy[3, 0] += lr * l1
            cumulative_l1(params, n_coefs, lazy[3, 0], l1_applied)
        xx = decision(X, order, min(i + 1, n_samples - 1), params, n_features, n_outputs, fit_intercept, z, norms)
    fold_weight_scale(X, params, n_coefs, lazy, averaged)
    return loss_sum, step, norm_sum


@jit(reduction=True, refcount=False, inline="always")
def epoch_loop(threaded, blocked, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                      averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size,
                      block_grads, block_loss, block_z, block_dz, block_rows):
    """The epoch of :func:`linear_epoch`; ``threaded`` and ``blocked`` are constants of each entry point.

    ``threaded`` runs the optimizer update on Numba's threads
    (:func:`~fastgd.optim._registry.fused_step`), otherwise it is inlined
    (:func:`~fastgd.optim._registry.update_range`). ``blocked`` computes
    the gradient of every batch of two samples or more with
    :func:`block_gradients` and adds the blocks in order; its update runs on
    the threads when ``rule.threaded``. The other parameters and the returns
    are those of :func:`linear_epoch`.
    """
    if batch_size == 1 and not blocked:
        return sample_loop(threaded, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                           averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1)
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    loss_sum = 0.0
    norm_sum = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        if blocked and stop - start > 1:
            n_blocks = block_gradients(X, Y, sample_weight, order, start, stop, params, block_grads, block_loss,
                                       block_z, block_dz, loss_code, epsilon, n_outputs, fit_intercept, block_rows)
            for b in range(n_blocks):
                loss_sum += block_loss[b]
            for j in range(params.size):
                grads[j] = block_grads[0, j]
            for b in range(1, n_blocks):
                for j in range(params.size):
                    grads[j] += block_grads[b, j]
            sq = finish_gradient(params, grads, n_coefs, 1.0 / (stop - start), l2)
            if not fit_intercept:
                for k in range(n_outputs):
                    grads[n_coefs + k] = 0
            decay_intercept_gradients(grads, n_coefs, rule.intercept_decay)
        else:
            for i in range(start, stop):
                prefetch_row(X, order, i)
                prefetch_targets(Y, sample_weight, order, i)
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
            decay_intercept_gradients(grads, n_coefs, rule.intercept_decay)
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            return np.nan, step, norm_sum
        norm, scale = norm_and_clip_scale(sq, rule.clip_norm)
        norm_sum += norm
        step += 1
        lr = update_lr(rule, step)
        optimizer_update(threaded, blocked, params, grads, slots, rule, step, lr, scale, l1, n_coefs)
    return loss_sum, step, norm_sum


@jit(reduction=True, refcount=False)
def linear_epoch(X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied, averaged,
                 rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size, block_grads,
                 block_loss, block_z, block_dz, block_rows):
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
    lazy : ndarray of shape (7, n_outputs), float64
        Workspace of per-sample SGD: the weight scale of CSR rows and its
        norms, ``lazy[3, 0]``, the running total of the cumulative L1
        penalty, kept over the epochs of a fit (see
        :func:`fastgd.kernels.rows.sgd_step_and_decide`), and ``lazy[4, 0]``,
        ``lazy[5, 0]``, the scalars of a lazily kept average (0 and 1 between
        epochs; :func:`fastgd.kernels.rows.average_step`). After an epoch on
        CSR rows ``lazy[1]`` and ``lazy[6]`` hold the weight rows' sums of
        squares and of absolute values (:func:`fastgd.kernels.rows.fold_weight_scale`).
    l1_applied : ndarray of float64
        Per-sample training with L1: the cumulative penalty each weight has
        received (``n_outputs * n_features``, zeros at the start of a fit);
        unused otherwise (it may then be empty). Mini-batches apply L1 as a
        soft threshold after each update (:func:`~fastgd.kernels.penalty.l1_shrink`).
    averaged : ndarray
        Averaged SGD (``rule.average_from > 0``; per-sample plain SGD only):
        the running average of the parameters, kept over the epochs of a fit
        (see :func:`~fastgd.kernels.rows.average_step`); empty otherwise.
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
    block_grads, block_loss, block_z, block_dz, block_rows : ndarray, ndarray, ndarray, ndarray, int
        Per-block workspaces and rows per block of :func:`linear_epoch_blocked`
        (unused here; shapes ``(n_blocks, n_params)``, ``(n_blocks,)``,
        ``(n_blocks, n_outputs)`` twice).

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
    return epoch_loop(False, False, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                      averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size,
                      block_grads, block_loss, block_z, block_dz, block_rows)


@jit(reduction=True, refcount=False)
def linear_epoch_threaded(X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied, averaged,
                          rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size, block_grads,
                          block_loss, block_z, block_dz, block_rows):
    """:func:`linear_epoch` with the optimizer update on Numba's threads (``rule.threaded``, large models)."""
    return epoch_loop(True, False, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                      averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size,
                      block_grads, block_loss, block_z, block_dz, block_rows)


@jit(reduction=True, refcount=False)
def linear_epoch_blocked(X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied, averaged,
                         rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size, block_grads,
                         block_loss, block_z, block_dz, block_rows):
    """:func:`linear_epoch` with each mini-batch's gradient computed in blocks of rows on Numba's threads.

    Batches are split into blocks of ``block_rows`` samples
    (:func:`block_gradients`; ``block_grads`` has a row per block of a full
    batch), summed per block, then the blocks are added in block order: the
    same bits on any number of threads. The optimizer update runs on the
    threads too when ``rule.threaded``.
    """
    return epoch_loop(False, True, X, Y, sample_weight, order, params, grads, slots, z, dz, norms, lazy, l1_applied,
                      averaged, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, l1, batch_size,
                      block_grads, block_loss, block_z, block_dz, block_rows)


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


@jit(reduction=True, refcount=False)
def linear_epoch_csr_batches(X, Y, sample_weight, order, params, grads, touched, touched_grads, z, dz, lazy, rule,
                             step, loss_code, epsilon, n_outputs, fit_intercept, l2, batch_size):
    """Mini-batch plain SGD on CSR rows at the cost of the batch's nonzeros, not of the model's width.

    The update of :func:`linear_epoch` for plain SGD (no momentum, no
    clipping by value, no L1), written so that a batch touches only the
    weights of its rows' nonzero features. The weights are kept as ``s *
    params`` (the weight scale of :func:`~fastgd.kernels.rows.sgd_step_and_decide`,
    ``s = lazy[0, 0]``): the L2 term and weight decay of a step multiply
    ``s``, and the batch's mean loss gradient moves the weights it touches.
    For each batch:

    1. each row's decision values at the batch's starting weights, its loss,
       and its weighted loss gradient added into ``grads`` (zeros outside the
       batch's columns);
    2. each touched weight once: its gradient moved to the list ``touched``
       / ``touched_grads`` and ``grads`` back to zeros, with the sums that
       give the gradient's norm in closed form, ``||a / B||^2 + 2 l2 s (a / B)
       . params + l2^2 s^2 ||params||^2`` (plus the intercepts'), for
       ``clip_norm`` and the recorded norms;
    3. the step: ``s`` times ``1 - lr (c l2 + weight_decay)`` (``c`` the
       clip-by-norm factor), each touched weight moved by ``lr c a_j / (B s)``,
       the intercepts by the plain SGD rule.

    ``||params||^2`` is kept up to date from the moved weights; the scale is
    folded back into the weights below 1e-9 and at the end of the epoch
    (:func:`~fastgd.kernels.rows.fold_weight_scale`). The O(n_features)
    work is two passes per epoch: ``||params||^2`` (``grads`` zeroed on the
    way) at the start, and the fold. Values equal those of :func:`linear_epoch`
    to round-off (the norm's pieces are summed in another order).

    Parameters
    ----------
    X : tuple (data, indices, indptr)
        CSR samples (canonical: sorted, no duplicate columns).
    touched, touched_grads : ndarray of int64, ndarray
        Workspaces of at least ``n_outputs`` times the most nonzeros a batch
        can hold (the largest ``batch_size`` rows).
    lazy : ndarray of shape (7, n_outputs), float64
        ``lazy[0, 0]`` holds the weight scale (1 between epochs); a fold
        writes the weight rows' sums (see :func:`linear_epoch`).
    Y, sample_weight, order, params, grads, z, dz, rule, step, loss_code, epsilon, n_outputs, fit_intercept, l2, \
batch_size
        As in :func:`linear_epoch`.

    Returns
    -------
    loss_sum, step, norm_sum : float, int, float
        As in :func:`linear_epoch`.
    """
    data, indices, indptr = X
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    weight_decay = rule.hyper[3]
    tiny = tiny_like(params)
    lazy[0, 0] = 1.0
    squares = 0.0  # ||params||^2 over the weights, in the pass that zeroes the gradient's workspace
    for j in range(n_coefs):
        w = np.float64(params[j])
        squares += w * w
        grads[j] = 0
    grads[n_coefs:] = 0
    loss_sum = 0.0
    norm_sum = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        s = lazy[0, 0]
        for i in range(start, stop):
            prefetch_row(X, order, i)
            prefetch_weights(X, order, i, params, n_features, n_outputs)
            prefetch_targets(Y, sample_weight, order, i)
            row = order[i]
            lo = indptr[row]
            hi = indptr[row + 1]
            for k in range(n_outputs):
                zk = s * sparse_dot(data, indices, lo, hi, params, k * n_features)
                z[k] = zk + params[n_coefs + k] if fit_intercept else zk
            loss = output_loss(loss_code, z, Y[row], dz, epsilon)
            weight = sample_weight[row]
            loss_sum += weight * loss
            for k in range(n_outputs):
                d = dz[k] * weight
                offset = k * n_features
                for p in range(lo, hi):
                    q = unsigned(p)
                    grads[unsigned(offset + indices[q])] += d * data[q]
                grads[n_coefs + k] += d
        n_touched = 0
        aa = 0.0  # ||a||^2 and a . params over the touched weights (a: the summed loss gradient)
        ap = 0.0
        for i in range(start, stop):
            row = order[i]
            for k in range(n_outputs):
                offset = k * n_features
                for p in range(indptr[row], indptr[row + 1]):
                    j = unsigned(offset + indices[unsigned(p)])
                    g = grads[j]
                    grads[j] = 0
                    # kept on its first visit only: a repeat finds 0 (and a gradient that summed to 0 leaves its
                    # weight to the scale); written always and counted conditionally, without a branch
                    touched[n_touched] = j
                    touched_grads[n_touched] = g
                    n_touched += g != 0
                    aa += np.float64(g) * np.float64(g)
                    ap += np.float64(g) * np.float64(params[j])
        inv = 1.0 / (stop - start)
        sq = inv * inv * aa + 2.0 * l2 * inv * s * ap + l2 * l2 * s * s * squares
        if fit_intercept:
            for k in range(n_outputs):
                b = grads[n_coefs + k] * inv
                sq += b * b
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            grads[n_coefs:] = 0
            fold_weight_scale(X, params, n_coefs, lazy, grads[:0])
            return np.nan, step, norm_sum
        norm, clip = norm_and_clip_scale(sq, rule.clip_norm)
        norm_sum += norm
        step += 1
        lr = update_lr(rule, step)
        s_new = s * (1.0 - lr * (clip * l2 + weight_decay))
        if not s_new >= 1e-9:  # fold the scale into the weights (also when a huge rate made it 0 or negative)
            lazy[0, 0] = s_new
            fold_weight_scale(X, params, n_coefs, lazy, grads[:0])
            squares = 0.0
            for k in range(n_outputs):
                squares += lazy[1, k]
            s_new = 1.0
        lazy[0, 0] = s_new
        move = lr * clip * inv / s_new  # params_j -= move * a_j keeps s * params_j on the rule
        for t in range(n_touched):
            j = touched[t]
            old = params[j]
            new = old - cast_like(move * touched_grads[t], params)
            params[j] = new
            squares += np.float64(new) * np.float64(new) - np.float64(old) * np.float64(old)
        lr_ = cast_like(lr, params)
        wd = cast_like(weight_decay, params)
        clip_ = cast_like(clip, params)
        decay = cast_like(rule.intercept_decay * inv, params)
        for k in range(n_outputs):
            b = n_coefs + k
            g = grads[b] * decay if fit_intercept else cast_like(0.0, params)
            params[b] = plain_sgd_value(params[b], g, lr_, wd, clip_, cast_like(math.inf, params), tiny)
            grads[b] = 0
    fold_weight_scale(X, params, n_coefs, lazy, grads[:0])
    return loss_sum, step, norm_sum


@jit(reduction=True, refcount=False)
def linear_epoch_csr_sparse_updates(X, Y, sample_weight, order, params, grads, slots, seen, touched, touched_params,
                                    touched_grads, touched_slots, z, dz, lazy, l1_applied, rule, step, loss_code,
                                    epsilon, n_outputs, fit_intercept, l2, l1, batch_size):
    """Any optimizer on CSR rows, stepping only the coordinates of each batch's nonzero features.

    A batch's coordinates are the weights of the features its rows store
    (for every output) and the intercepts. For each batch:

    1. each row's decision values at the batch's starting weights, its loss,
       and its weighted loss gradient added into ``grads`` (zeros outside
       the batch's columns);
    2. each coordinate once (``seen`` marks it in batches of several rows):
       its index, parameter,
       gradient ``a_j / B + l2 * w_j`` (``a`` the summed loss gradient, ``B``
       the batch's rows) and state rows gathered into the compact buffers,
       ``grads`` and ``seen`` back to zeros; then the intercepts, ``a_k / B``.
       The gradient's norm (``clip_norm``, the recorded norms) is the compact
       gradient's;
    3. the optimizer's own fused update
       (:func:`~fastgd.optim._registry.update_range`) on the compact buffers,
       at the fit's update count (Adam's bias corrections, Adagrad's decay);
    4. parameters and state rows scattered back; with ``l1 > 0`` the
       cumulative L1 penalty (:func:`~fastgd.kernels.penalty.cumulative_l1_value`)
       on the weights just stepped.

    A step costs the batch's nonzeros times the optimizer's state rows; no
    pass over the model. Where a zero gradient leaves a coordinate as it was
    (:meth:`fastgd.optim.Optimizer.zero_gradient_is_identity`) and ``l1 =
    l2 = 0``, this is the update of :func:`linear_epoch`: the same gradient
    values, the same rule (the norm's squares are summed in another order).
    Otherwise it is the *lazy* rule, PyTorch's ``SparseAdam`` semantics: the
    coordinates a batch does not touch keep their parameters and moments,
    and the L2 term reaches a weight only when a batch touches it.

    Parameters
    ----------
    X : tuple (data, indices, indptr)
        CSR samples (canonical: sorted, no duplicate columns).
    slots : ndarray of shape (n_slots, n_params)
        The optimizer's state rows.
    seen : ndarray of uint8, shape (n_outputs * n_features,)
        Zeros; marks the coordinates gathered for the current batch.
    touched, touched_params, touched_grads : ndarray of int64, ndarray, ndarray
        Compact workspaces of at least ``n_outputs`` times the most nonzeros
        a batch can hold, plus ``n_outputs``.
    touched_slots : ndarray of shape (n_slots, len(touched_params))
        Compact state rows.
    lazy : ndarray of shape (7, n_outputs), float64
        ``lazy[3, 0]`` is the running total of the cumulative L1 penalty (see
        :func:`linear_epoch`).
    Y, sample_weight, order, params, grads, z, dz, l1_applied, rule, step, loss_code, epsilon, n_outputs, \
fit_intercept, l2, l1, batch_size
        As in :func:`linear_epoch` (``grads`` all zeros on entry and on return).

    Returns
    -------
    loss_sum, step, norm_sum : float, int, float
        As in :func:`linear_epoch`.
    """
    data, indices, indptr = X
    n_samples = order.shape[0]
    n_features = params.size // n_outputs - 1
    n_coefs = n_outputs * n_features
    n_slots = slots.shape[0]
    l2_ = cast_like(l2, params)
    zero = cast_like(0.0, params)
    loss_sum = 0.0
    norm_sum = 0.0
    for start in range(0, n_samples, batch_size):
        stop = min(n_samples, start + batch_size)
        single = stop - start == 1  # one row: its columns are distinct (canonical CSR), its gradient d * x
        for i in range(start, stop):
            prefetch_row(X, order, i)
            prefetch_weights(X, order, i, params, n_features, n_outputs)
            for r in range(n_slots):  # each state row is read and written where the parameters are
                prefetch_weights(X, order, i, slots[r], n_features, n_outputs)
            prefetch_targets(Y, sample_weight, order, i)
            row = order[i]
            lo = indptr[row]
            hi = indptr[row + 1]
            for k in range(n_outputs):
                zk = cast_like(sparse_dot(data, indices, lo, hi, params, k * n_features), params)
                z[k] = zk + params[n_coefs + k] if fit_intercept else zk
            loss = output_loss(loss_code, z, Y[row], dz, epsilon)
            weight = sample_weight[row]
            loss_sum += weight * loss
            for k in range(n_outputs):
                d = dz[k] * weight
                dz[k] = d
                grads[n_coefs + k] += d
                if not single:
                    offset = k * n_features
                    for p in range(lo, hi):
                        q = unsigned(p)
                        grads[unsigned(offset + indices[q])] += d * data[q]
        inv = cast_like(1.0 / (stop - start), params)
        n_touched = 0
        sq = 0.0
        for i in range(start, stop):
            row = order[i]
            for k in range(n_outputs):
                offset = k * n_features
                d = dz[k]
                for p in range(indptr[row], indptr[row + 1]):
                    q = unsigned(p)
                    j = unsigned(offset + indices[q])
                    if single:
                        g = d * data[q] * inv + l2_ * params[j]
                    elif seen[j] == 0:
                        seen[j] = 1
                        g = grads[j] * inv + l2_ * params[j]
                        grads[j] = 0
                    else:
                        continue
                    touched[n_touched] = j
                    touched_params[n_touched] = params[j]
                    touched_grads[n_touched] = g
                    for r in range(n_slots):
                        touched_slots[r, n_touched] = slots[r, j]
                    sq += np.float64(g) * np.float64(g)
                    n_touched += 1
        n_stepped = n_touched + n_outputs
        for k in range(n_outputs):
            b = n_coefs + k
            t = n_touched + k
            g = grads[b] * inv if fit_intercept else zero
            grads[b] = 0
            touched_params[t] = params[b]
            touched_grads[t] = g
            for r in range(n_slots):
                touched_slots[r, t] = slots[r, b]
            sq += np.float64(g) * np.float64(g)
        if not (math.isfinite(sq) and math.isfinite(loss_sum)):
            for t in range(n_touched if not single else 0):
                seen[touched[t]] = 0
            return np.nan, step, norm_sum
        norm, clip = norm_and_clip_scale(sq, rule.clip_norm)
        norm_sum += norm
        decay = cast_like(rule.intercept_decay, params)
        for t in range(n_touched, n_stepped):
            touched_grads[t] *= decay
        step += 1
        lr = update_lr(rule, step)
        update_range(rule.kernel_id, touched_params, touched_grads, touched_slots, rule.hyper, step, lr, clip,
                     rule.clip_value, 0, n_stepped)
        for t in range(n_touched):
            j = touched[t]
            params[j] = touched_params[t]
            for r in range(n_slots):
                slots[r, j] = touched_slots[r, t]
            if not single:
                seen[j] = 0
        for k in range(n_outputs):
            b = n_coefs + k
            params[b] = touched_params[n_touched + k]
            for r in range(n_slots):
                slots[r, b] = touched_slots[r, n_touched + k]
        if l1 > 0.0:  # the cumulative penalty on the weights this step moved
            lazy[3, 0] += lr * l1
            total = lazy[3, 0]
            for t in range(n_touched):
                j = touched[t]
                old = params[j]
                new = cast_like(cumulative_l1_value(old, 1.0, total, l1_applied[j]), params)
                params[j] = new
                l1_applied[j] += new - old
    return loss_sum, step, norm_sum
