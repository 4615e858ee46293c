"""The penalty's value, and the proximal step of L1 (soft thresholding), elementwise and over the weights."""

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
