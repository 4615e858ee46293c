"""Scalar helpers of the compiled kernels: casts that keep float32 kernels in float32, the optimizers'
gradient pre-processing and their flush of subnormal numbers."""

from __future__ import annotations

import numpy as np
from numba.extending import overload

from .._config import INLINE_OPTIONS, jit


def cast_like(value, array):
    """Return ``value`` converted to the dtype of ``array``.

    Hyperparameters arrive as float64; multiplying a float32 array element by a
    float64 scalar would promote the whole loop to float64 and halve its vector
    width. Kernels cast their scalars once, before the loop. Compiled code
    uses the overload below; this body runs only with ``NUMBA_DISABLE_JIT=1``.
    """
    return array.dtype.type(value)


@overload(cast_like, jit_options={"cache": False, **INLINE_OPTIONS})
def _cast_like(value, array):
    dtype = array.dtype

    def impl(value, array):
        return dtype(value)

    return impl


def positive_like(value, array):
    """``value`` in the dtype of ``array``, at least that dtype's smallest normal number.

    A denominator term such as ``eps = 1e-300`` is a valid float64 but 0 in
    float32, where it would turn a zero gradient into 0 / 0.
    """
    return max(array.dtype.type(value), np.finfo(array.dtype).tiny)


@overload(positive_like, jit_options={"cache": False, **INLINE_OPTIONS})
def _positive_like(value, array):
    dtype = array.dtype
    tiny = np.finfo(str(dtype)).tiny

    def impl(value, array):
        return max(dtype(value), dtype(tiny))

    return impl


def tiny_like(array):
    """The smallest normal number of the dtype of ``array``, in that dtype (1.2e-38 in float32, 2.2e-308 in float64)."""
    return array.dtype.type(np.finfo(array.dtype).tiny)


@overload(tiny_like, jit_options={"cache": False, **INLINE_OPTIONS})
def _tiny_like(array):
    dtype = array.dtype
    tiny = np.finfo(str(dtype)).tiny

    def impl(array):
        return dtype(tiny)

    return impl


@jit(inlined=True)
def scale_and_clip(grad, scale, clip):
    """``grad * scale`` clamped to ``[-clip, clip]``: the gradient an optimizer kernel sees.

    ``scale`` and ``clip`` are in the dtype of ``grad`` (see :func:`cast_like`);
    ``clip = inf`` leaves the scaled gradient as it is, and NaN stays NaN (it
    fails both comparisons) so that the non-finite guard sees it. LLVM turns
    the branches into selects, so the loops that inline this stay vectorised.
    """
    g = grad * scale
    if g > clip:
        g = clip
    elif g < -clip:
        g = -clip
    return g


@jit(inlined=True)
def flush_subnormal(value, tiny):
    """``value``, or 0 when its magnitude is below ``tiny``, the smallest normal number (see :func:`tiny_like`).

    The optimizer kernels pass every value they store through this. A
    parameter that no longer receives gradient decays under weight decay and
    the moment averages into the subnormal range, where the rounded update
    often leaves the value unchanged, so it stays there; arithmetic on
    subnormal numbers is several times slower on many CPUs. Only values below
    ``tiny`` (1.2e-38 in float32, 2.2e-308 in float64) change; NaN and
    infinities pass unchanged (NaN fails the comparison). The comparison and
    select vectorise: the flush costs no measurable time in the fused loops.
    """
    if abs(value) < tiny:
        return tiny - tiny
    return value
