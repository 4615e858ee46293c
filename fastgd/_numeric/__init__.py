"""Numeric primitives every compiled kernel uses, below the optimizers and the model kernels.

- :mod:`~fastgd._numeric.cast`: dtype casts inside kernels, the subnormal flush, bounds
  (``cast_like``, ``flush_subnormal``, ``tiny_like``, ``positive_like``, ``scale_and_clip``).
- :mod:`~fastgd._numeric.float_env`: the floating-point environment (x86 flush-to-zero and
  denormals-are-zero) set around each epoch.
- :mod:`~fastgd._numeric.prefetch`: software-prefetch intrinsics for rows read in shuffled order.

Subnormal numbers (below 1.2e-38 in float32, 2.2e-308 in float64) are handled in two ways, for two
reasons. Training drives some values towards zero and keeps them there (weights of a unit that no longer
fires, under weight decay; Adam's second moment of their gradients), and x86 CPUs take a slow path for
every operation on a subnormal number (``benchmarks/denormals.py``, ``benchmarks/subnormal_epochs.py``).

1. Every value an optimizer stores (parameters, moments) below the smallest normal number is stored as 0
   (:func:`~fastgd._numeric.cast.flush_subnormal`: a compare and a select, vectorised with the loop).
   This is the primary rule: it holds on every CPU, in :meth:`fastgd.optim.Optimizer.step` and in the
   CUDA kernels, so the stored results are the same everywhere; values above the threshold, NaN and
   infinities are untouched.
2. While an estimator trains on an x86 CPU, the epoch's threads also set the flush-to-zero and
   denormals-are-zero modes (:func:`~fastgd._numeric.float_env.subnormals_flushed`), so that
   intermediate results (activations, gradients) do not take the slow path either. This is speed only;
   elsewhere (ARM64, ``NUMBA_DISABLE_JIT``) those intermediates are computed exactly.

Nothing here imports another part of fastgd except :mod:`fastgd._config`.
"""
