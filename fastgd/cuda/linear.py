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


@cuda.jit(cache=True)
def _cumulative_l1_kernel(params, n_coefs, total, applied):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, n_coefs, stride):
        old = params[j]
        w = 1.0 * old  # float64, as applied and total
        if w > 0.0:
            w = max(0.0, w - (total + applied[j]))
        elif w < 0.0:
            w = min(0.0, w + (total - applied[j]))
        params[j] = w
        applied[j] += 1.0 * params[j] - old


def cumulative_l1(params, n_coefs: int, total: float, applied, stream=0) -> None:
    """The cumulative L1 penalty on the first ``n_coefs`` entries of ``params``, on the device.

    :func:`fastgd.kernels.penalty.cumulative_l1_value` on every weight (a
    device update moves them all), as per-sample training applies it on the CPU.

    Parameters
    ----------
    params : numba device array of shape (n_params,)
        Flat parameters, weights first; updated in place.
    n_coefs : int
        Number of weights (the intercepts that follow are not penalised).
    total : float
        The penalty every weight could have received so far: the sum of
        ``learning rate * l1`` over the updates, this one included.
    applied : numba device array of float64, shape (n_coefs,)
        What each weight has received; updated in place.
    stream : numba stream or 0, default=0
        Stream to launch on.
    """
    if n_coefs <= 0:
        return
    blocks = int(min(MAX_BLOCKS, (n_coefs + THREADS - 1) // THREADS))
    _cumulative_l1_kernel[blocks, THREADS, stream](params, np.int64(n_coefs), np.float64(total), applied)
