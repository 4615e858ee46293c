"""The penalty's value, and the L1 steps: cumulative (per-sample SGD) and proximal (soft thresholding)."""

from __future__ import annotations

import math

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like


@jit(inlined=True)
def soft_threshold(value, amount):
    """``value`` moved toward zero by ``amount`` (in its dtype), and 0 if that crosses zero."""
    if value > amount:
        return value - amount
    if value < -amount:
        return value + amount
    return amount - amount


@jit(inlined=True)
def cumulative_l1_value(value, scale, total, applied):
    """A weight after the cumulative L1 penalty of Tsuruoka, Tsujii and Ananiadou (2009), in float64.

    ``scale * value`` is the weight (``scale > 0``: the weight scale of CSR
    training, 1 on dense rows), ``total`` the L1 penalty every weight could
    have received so far (the sum of ``lr * l1`` over the updates) and
    ``applied`` what this weight has received (its entry of the record ``q``).
    The weight moves toward zero by the difference, and stops at zero: the
    rule of scikit-learn's ``SGDClassifier``. The caller adds
    ``scale * (new - value)`` to ``applied``. Only the weights a step touches
    are penalised, so a step on a CSR row costs its nonzeros.
    """
    if value > 0.0:
        return max(0.0, value - (total + applied) / scale)
    if value < 0.0:
        return min(0.0, value + (total - applied) / scale)
    return value + 0.0


@jit(inlined=True)
def cumulative_l1(params, n_coefs, total, applied):
    """:func:`cumulative_l1_value` on every weight ``params[:n_coefs]``, with the records ``applied``."""
    for j in range(n_coefs):
        old = params[j]
        new = cast_like(cumulative_l1_value(old, 1.0, total, applied[j]), params)
        params[j] = new
        applied[j] += new - old


@jit(inlined=True)
def l1_shrink(params, n_coefs, amount):
    """Soft-threshold the weights ``params[:n_coefs]`` toward zero by ``amount`` (the proximal step of L1)."""
    amount = cast_like(amount, params)
    for j in range(n_coefs):
        params[j] = soft_threshold(params[j], amount)


@jit(reduction=True)
def weight_sums(params, n_coefs):
    """``(sum w^2, sum |w|)`` over the weights ``params[:n_coefs]``, and whether every parameter is finite.

    One pass over the parameters, for the penalty in each epoch's loss and
    the check that training left no parameter NaN or infinite: on a
    hashed-text model (2**22 weights) numpy's ``square``, ``abs`` and
    ``isfinite`` took three passes and three temporary arrays. A NaN or an
    infinity among the weights makes both sums NaN or infinite (in any
    summation order), so the sums tell; so does a weight beyond about 1e154,
    whose square overflows: training that far has diverged.
    """
    squares = 0.0
    absolutes = 0.0
    for j in range(n_coefs):
        w = np.float64(params[j])  # summed in float64, as the float32 models' loss is
        squares += w * w
        absolutes += abs(w)
    finite = math.isfinite(squares) and math.isfinite(absolutes)
    for j in range(n_coefs, params.size):
        finite = finite and math.isfinite(params[j])
    return squares, absolutes, finite
