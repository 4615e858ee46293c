"""The proximal step of the L1 penalty (soft thresholding), elementwise and over the weights."""

from __future__ import annotations

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
