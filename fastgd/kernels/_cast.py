"""Scalar casts that keep float32 kernels in float32."""

from __future__ import annotations

import numpy as np
from numba.extending import overload

from .._config import INLINE_OPTIONS


def cast_like(value, array):
    """Return ``value`` converted to the dtype of ``array``.

    Hyperparameters arrive as float64; multiplying a float32 array element by a
    float64 scalar would promote the whole loop to float64 and halve its vector
    width. Kernels cast their scalars once, before the loop. Compiled code
    uses the overload below; this body runs only with ``NUMBA_DISABLE_JIT=1``.
    """
    return array.dtype.type(value)


@overload(cast_like, jit_options={"cache": True, **INLINE_OPTIONS})
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


@overload(positive_like, jit_options={"cache": True, **INLINE_OPTIONS})
def _positive_like(value, array):
    dtype = array.dtype
    tiny = np.finfo(str(dtype)).tiny

    def impl(value, array):
        return max(dtype(value), dtype(tiny))

    return impl
