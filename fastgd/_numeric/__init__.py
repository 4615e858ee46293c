"""Numeric primitives every compiled kernel uses, below the optimizers and the model kernels.

- :mod:`~fastgd._numeric.cast`: dtype casts inside kernels, the subnormal flush, bounds
  (``cast_like``, ``flush_subnormal``, ``tiny_like``, ``positive_like``, ``scale_and_clip``).
- :mod:`~fastgd._numeric.float_env`: the floating-point environment (x86 flush-to-zero and
  denormals-are-zero) set around each epoch.
- :mod:`~fastgd._numeric.prefetch`: software-prefetch intrinsics for rows read in shuffled order.

Nothing here imports another part of fastgd except :mod:`fastgd._config`.
"""
