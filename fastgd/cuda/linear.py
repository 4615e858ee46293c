"""CUDA kernels of the linear models that the dense kernels do not cover."""

from __future__ import annotations

import numpy as np
from numba import cuda

THREADS = 256
MAX_BLOCKS = 1024


@cuda.jit(cache=True)
def _l1_shrink_kernel(params, n_coefs, amount):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, n_coefs, stride):
        w = params[j]
        if w > amount:
            params[j] = w - amount
        elif w < -amount:
            params[j] = w + amount
        else:
            params[j] = 0


def l1_shrink(params, n_coefs: int, amount: float, stream=0) -> None:
    """Soft-threshold the first ``n_coefs`` entries of ``params`` toward zero by ``amount``, on the device.

    The proximal step of the L1 penalty, as :func:`fastgd.kernels.penalty.l1_shrink` does it on the CPU.

    Parameters
    ----------
    params : numba device array of shape (n_params,)
        Flat parameters, weights first; updated in place.
    n_coefs : int
        Number of weights (the intercepts that follow are not shrunk).
    amount : float
        Threshold, ``learning rate * l1``.
    stream : numba stream or 0, default=0
        Stream to launch on.
    """
    if n_coefs <= 0:
        return
    blocks = int(min(MAX_BLOCKS, (n_coefs + THREADS - 1) // THREADS))  # numba-cuda on a GPU takes Python ints only
    _l1_shrink_kernel[blocks, THREADS, stream](params, np.int64(n_coefs), params.dtype.type(amount))
