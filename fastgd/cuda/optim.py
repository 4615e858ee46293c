"""Fused optimizer steps on a CUDA device, written with numba.cuda.

One kernel per CPU update kernel of :data:`fastgd.optim._registry.KERNELS`:
each thread updates one element of the parameters and the same column of every
state row in one pass over memory (a grid-stride loop, so any size runs with a
capped grid), with the element rule of the CPU kernel: the same hyperparameter
layout, gradient scaling and clipping, ``torch.lerp`` formulas, ``eps``
handling, AMSGrad, Nesterov, dampening and centering.

Everything that depends only on the step (bias corrections, step sizes, cast
hyperparameters) is computed once per step on the host and passed to the
kernel as scalars of the parameters' dtype, so float32 parameters are updated
in float32 arithmetic on the device. Only device arrays and scalars are passed
to the kernels: a step makes no host-device transfer.

The gradient-scaling factor may also live on the device (``scale_ref``): the
trainers write ``1 / sum(sample_weight)`` times the clip-by-norm coefficient
there with :func:`squared_norm` and :func:`clip_norm_scale`, without a host
synchronisation.

Differences from the CPU results are round-off only: NVVM contracts
multiply-adds into fused multiply-adds, and the gradient norm of ``clip_norm``
is summed in another order (in float64 here, also for float32 gradients).

This module imports numba.cuda; ``import fastgd`` does not import it. Kernels
are compiled on first use, once per dtype.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

from ..optim._base import DevicePath, Optimizer, OptimizerState, register_device_path
from ..optim._registry import KERNELS
from ..optim.adagrad import adagrad_update
from ..optim.adam import adam_update
from ..optim.folded_adam import folded_adam_update
from ..optim.rmsprop import rmsprop_update
from ..optim.sgd import sgd_update
from ..optim.velocity_sgd import velocity_sgd_update
from . import simulated
from ._reduce import block_sum_add

__all__ = ["THREADS_PER_BLOCK", "clip_norm_scale", "device_step", "fill", "launch_blocks", "squared_norm"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Threads per block of every kernel here. The simulator runs each thread as a Python thread, so it gets
#: small blocks and few of them (the grid-stride loops then cover the rest).
THREADS_PER_BLOCK = 8 if simulated() else 256

#: Most blocks of one launch per multiprocessor (the grid-stride loops cover larger vectors).
BLOCKS_PER_SM = 32

#: Most blocks of one launch in the simulator.
SIMULATOR_MAX_BLOCKS = 2

#: Square root of the kernels. On the device, ``math.sqrt`` of a float32 is the float32 square root (numba-cuda
#: has no ``np.sqrt`` in kernels); in the simulator ``math.sqrt`` would return a Python float, so ``np.sqrt``
#: keeps the NumPy scalar type there, as the device keeps the dtype.
device_sqrt = np.sqrt if simulated() else math.sqrt

_max_blocks_cache: dict[int, int] = {}


def max_blocks() -> int:
    """Most blocks one launch uses on the current device: ``BLOCKS_PER_SM`` per multiprocessor."""
    if simulated():
        return SIMULATOR_MAX_BLOCKS
    device = cuda.get_current_device()
    key = int(device.id)
    if key not in _max_blocks_cache:
        _max_blocks_cache[key] = BLOCKS_PER_SM * int(device.MULTIPROCESSOR_COUNT)
    return _max_blocks_cache[key]


def launch_blocks(n: int) -> int:
    """Blocks of :data:`THREADS_PER_BLOCK` threads for ``n`` elements: one element per thread, capped.

    Parameters
    ----------
    n : int
        Number of elements a grid-stride kernel covers.

    Returns
    -------
    int
        ``ceil(n / THREADS_PER_BLOCK)``, at least 1 and at most :func:`max_blocks`.
    """
    return int(max(1, min((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, max_blocks())))


_launchers: dict[tuple, Any] = {}


def launcher(kernel: Any, blocks: int, threads: int, stream: Any = 0) -> Any:
    """``kernel[blocks, threads, stream]``, configured once and kept.

    numba warns about every launch of fewer than 128 blocks (a parameter vector
    below 32,768 elements, the one-thread clipping kernels): small vectors are
    normal here, so the warning is silenced where the launch is configured, once
    per kernel, grid and stream rather than on every step.
    """
    key = (kernel, blocks, threads, stream)
    try:
        configured = _launchers.get(key)
    except TypeError:  # a stream object that cannot be a dictionary key: configure every time
        key, configured = None, None
    if configured is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Grid size .* low occupancy")
            configured = kernel[blocks, threads, stream]
        if key is None:
            return configured
        if len(_launchers) >= 1024:  # many streams or sizes: start over rather than grow
            _launchers.clear()
        _launchers[key] = configured
    return configured


# --- kernels -------------------------------------------------------------------------------------------------
#
# Kernels are built per dtype by ``_build_update_kernels`` so that the gradient-scaling factor, computed in
# float64 as on the CPU (``grad_scale * scale_ref[0]``), is cast to the parameters' dtype with a constant
# cast (``to_dtype``). Every other scalar arrives already in the right dtype. No Python number literal takes
# part in the arithmetic: in the simulator a literal is a weakly typed Python number, on the device an int64
# or float64 that would promote float32 arithmetic to float64.


@cuda.jit(device=True)
def clamp(g, clip):
    """``g`` clipped to ``[-clip, clip]`` (the CPU kernels' branch order)."""
    if g > clip:
        return clip
    if g < -clip:
        return -clip
    return g


@cuda.jit(device=True)
def flush_subnormal_cuda(value, tiny):
    """``value``, or 0 below ``tiny`` in magnitude: :func:`fastgd._numeric.cast.flush_subnormal` on the device.

    GPUs compute on subnormal numbers at full speed; the flush is there so that
    the device stores exactly what the CPU kernels store.
    """
    if abs(value) < tiny:
        return tiny - tiny
    return value


def _build_update_kernels(dtype: np.dtype) -> dict[Any, Callable]:
    """Compile-on-first-call CUDA update kernels for parameters of ``dtype``, keyed by CPU kernel."""
    to_dtype = np.float32 if dtype == np.float32 else np.float64
    smallest_normal = to_dtype(np.finfo(dtype).tiny)  # stored values below it are flushed, as on the CPU

    @cuda.jit
    def sgd_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, lr, momentum, keep, weight_decay,
                        use_momentum, nesterov, first):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            if not use_momentum:
                params[i] = flush_subnormal_cuda(params[i] - lr * (g + weight_decay * params[i]), tiny)
                continue
            g = g + weight_decay * params[i]
            if first:
                b = g
            else:
                b = momentum * slots[0, i] + keep * g
            slots[0, i] = flush_subnormal_cuda(b, tiny)
            if nesterov:
                g = g + momentum * b
            else:
                g = b
            params[i] = flush_subnormal_cuda(params[i] - lr * g, tiny)

    @cuda.jit
    def rmsprop_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, lr, alpha, one_minus_alpha,
                            alpha_from_end, eps, weight_decay, momentum, use_momentum, centered, from_end, zero):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        buf_row = 1 if use_momentum else 0
        grad_avg_row = 2 if use_momentum else 1
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            g = g + weight_decay * params[i]
            sq = alpha * slots[0, i] + one_minus_alpha * g * g
            slots[0, i] = flush_subnormal_cuda(sq, tiny)
            if centered:
                ga_old = slots[grad_avg_row, i]
                if from_end:  # torch.lerp(grad_avg, g, 1 - alpha) from the end; alpha_from_end = 1 - (1 - alpha)
                    ga = g - (g - ga_old) * alpha_from_end
                else:
                    ga = ga_old + one_minus_alpha * (g - ga_old)
                slots[grad_avg_row, i] = flush_subnormal_cuda(ga, tiny)
                avg = device_sqrt(max(sq - ga * ga, zero)) + eps  # rounding can push the variance below 0
            else:
                avg = device_sqrt(sq) + eps
            if use_momentum:
                b = momentum * slots[buf_row, i] + g / avg
                slots[buf_row, i] = flush_subnormal_cuda(b, tiny)
                params[i] = flush_subnormal_cuda(params[i] - lr * b, tiny)
            else:
                params[i] = flush_subnormal_cuda(params[i] - lr * (g / avg), tiny)

    @cuda.jit
    def adam_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, step_size, bc2_sqrt, weight,
                         one_minus_weight, from_end, beta2, one_minus_beta2, eps, coupled_decay, shrink, amsgrad):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            p = params[i] * shrink
            g = g + coupled_decay * p
            m_old = slots[0, i]
            if from_end:  # torch.lerp(m, g, 1 - beta1): from the end when 1 - beta1 >= 0.5
                m = g - (g - m_old) * one_minus_weight
            else:
                m = m_old + weight * (g - m_old)
            v = beta2 * slots[1, i] + one_minus_beta2 * g * g
            slots[0, i] = flush_subnormal_cuda(m, tiny)
            slots[1, i] = flush_subnormal_cuda(v, tiny)
            if amsgrad:
                v = max(slots[2, i], v)
                slots[2, i] = flush_subnormal_cuda(v, tiny)
            denom = device_sqrt(v) / bc2_sqrt + eps
            params[i] = flush_subnormal_cuda(p - step_size * (m / denom), tiny)

    @cuda.jit
    def adagrad_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, clr, weight_decay, eps):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            g = g + weight_decay * params[i]
            s = slots[0, i] + g * g
            slots[0, i] = flush_subnormal_cuda(s, tiny)
            params[i] = flush_subnormal_cuda(params[i] - clr * (g / (device_sqrt(s) + eps)), tiny)

    @cuda.jit
    def velocity_sgd_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, lr, momentum, nesterov):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            v = momentum * slots[0, i] - lr * g
            slots[0, i] = flush_subnormal_cuda(v, tiny)
            if nesterov:
                params[i] = flush_subnormal_cuda(params[i] + (momentum * v - lr * g), tiny)
            else:
                params[i] = flush_subnormal_cuda(params[i] + v, tiny)

    @cuda.jit
    def folded_adam_update_cuda(params, grads, slots, scale_ref, grad_scale, clip, neg_step_size, beta1,
                                one_minus_beta1, beta2, one_minus_beta2, eps):
        scale = to_dtype(grad_scale * scale_ref[0])
        tiny = smallest_normal
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, params.size, stride):
            g = clamp(grads[i] * scale, clip)
            m = beta1 * slots[0, i] + one_minus_beta1 * g
            v = beta2 * slots[1, i] + one_minus_beta2 * (g * g)
            slots[0, i] = flush_subnormal_cuda(m, tiny)
            slots[1, i] = flush_subnormal_cuda(v, tiny)
            params[i] = flush_subnormal_cuda(params[i] + neg_step_size * m / (device_sqrt(v) + eps), tiny)

    return {
        sgd_update: sgd_update_cuda,
        rmsprop_update: rmsprop_update_cuda,
        adam_update: adam_update_cuda,
        adagrad_update: adagrad_update_cuda,
        velocity_sgd_update: velocity_sgd_update_cuda,
        folded_adam_update: folded_adam_update_cuda,
    }


@cuda.jit
def squared_norm_cuda(x, out, index):
    """``out[index] += sum(x**2)``: float64 per thread, a shared-memory tree per block, one atomic per block."""
    partial = cuda.shared.array(THREADS_PER_BLOCK, np.float64)
    acc = np.float64(0.0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        value = np.float64(x[i])
        acc += value * value
    block_sum_add(partial, acc, out, index)


@cuda.jit(device=True)
def clip_coefficient_cuda(norm, clip_norm):
    """``fastgd.optim._base.clip_coefficient`` on the device: ``min(1, clip_norm / (norm + 1e-6))``, 1 if not finite."""
    if not math.isfinite(norm):
        return np.float64(1.0)
    return min(np.float64(1.0), clip_norm / (norm + np.float64(1e-6)))


@cuda.jit
def clip_norm_scale_cuda(sq_norm, index, weight_sum, clip_norm, out):
    """One thread: ``out[0] = s * clip_coefficient(sqrt(sq_norm[index]) * |s|)`` with ``s = 1 / weight_sum[0]``."""
    if cuda.grid(1) == 0:
        s = np.float64(1.0) / np.float64(weight_sum[0])
        out[0] = s * clip_coefficient_cuda(math.sqrt(sq_norm[index]) * abs(s), clip_norm)


@cuda.jit
def step_clip_coefficient_cuda(scratch, abs_grad_scale, clip_norm):
    """One thread, for :meth:`Optimizer.step`: ``scratch[1] = clip_coefficient(|grad_scale| sqrt(scratch[0]))``.

    Then zeroes ``scratch[0]`` (the squared norm) for the next step.
    """
    if cuda.grid(1) == 0:
        scratch[1] = clip_coefficient_cuda(abs_grad_scale * math.sqrt(scratch[0]), clip_norm)
        scratch[0] = np.float64(0.0)


@cuda.jit
def fill_cuda(x, value):
    """``x[:] = value`` for a 1-D device array."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        x[i] = value


# --- host side -----------------------------------------------------------------------------------------------

_update_kernels: dict[np.dtype, dict[Any, Callable]] = {}
_ones: dict[int, Any] = {}


def update_kernels(dtype: Any) -> dict[Any, Callable]:
    """The CUDA update kernels for parameters of ``dtype``, keyed by the CPU kernel they implement."""
    dtype = np.dtype(dtype)
    if dtype not in _update_kernels:
        _update_kernels[dtype] = _build_update_kernels(dtype)
    return _update_kernels[dtype]


def _one_on_device() -> Any:
    """A 1-element float64 device array holding 1.0 (the ``scale_ref`` of a step without one), per context."""
    key = id(cuda.current_context())
    if key not in _ones:
        _ones[key] = cuda.to_device(np.ones(1))
    return _ones[key]


def _positive_like(value: float, dtype: np.dtype) -> np.floating:
    """``fastgd._numeric.cast.positive_like``: ``value`` in ``dtype``, at least its smallest normal number."""
    return max(dtype.type(value), dtype.type(np.finfo(dtype).tiny))


def sgd_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.sgd.sgd_update`, ``hyper = (momentum, dampening, nesterov, weight_decay)``."""
    cast = dtype.type
    return (cast(lr), cast(hyper[0]), cast(1.0 - hyper[1]), cast(hyper[3]), bool(hyper[0] != 0.0),
            bool(hyper[2] != 0.0), step == 1)


def rmsprop_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.rmsprop.rmsprop_update`.

    ``hyper = (alpha, eps, weight_decay, momentum, centered)``.
    """
    cast = dtype.type
    one_minus_alpha = cast(1.0 - hyper[0])
    return (cast(lr), cast(hyper[0]), one_minus_alpha, cast(1) - one_minus_alpha, _positive_like(hyper[1], dtype),
            cast(hyper[2]), cast(hyper[3]), bool(hyper[3] > 0.0), bool(hyper[4] != 0.0),
            bool(1.0 - hyper[0] >= 0.5), cast(0.0))


def adam_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.adam.adam_update`.

    ``hyper = (beta1, beta2, eps, weight_decay, amsgrad, decoupled)``.
    """
    cast = dtype.type
    beta1, beta2 = float(hyper[0]), float(hyper[1])
    decoupled = hyper[5] != 0.0
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    weight = cast(1.0 - beta1)
    return (cast(lr / bias_correction1), cast(bias_correction2_sqrt), weight, cast(1) - weight,
            bool(1.0 - beta1 >= 0.5), cast(beta2), cast(1.0 - beta2), _positive_like(hyper[2], dtype),
            cast(0.0 if decoupled else hyper[3]), cast(1.0 - lr * hyper[3] if decoupled else 1.0),
            bool(hyper[4] != 0.0))


def adagrad_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.adagrad.adagrad_update`, ``hyper = (lr_decay, weight_decay, eps)``."""
    cast = dtype.type
    return (cast(lr / (1.0 + (step - 1) * hyper[0])), cast(hyper[1]), _positive_like(hyper[2], dtype))


def velocity_sgd_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.velocity_sgd.velocity_sgd_update`, ``hyper = (momentum, nesterov)``."""
    cast = dtype.type
    return (cast(lr), cast(hyper[0]), bool(hyper[1] != 0.0))


def folded_adam_scalars(hyper: np.ndarray, step: int, lr: float, dtype: np.dtype) -> tuple:
    """Scalars of :func:`fastgd.optim.folded_adam.folded_adam_update`, ``hyper = (beta1, beta2, eps)``."""
    cast = dtype.type
    beta1, beta2 = float(hyper[0]), float(hyper[1])
    step_size = cast(lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step))
    return (-step_size, cast(beta1), cast(1.0 - beta1), cast(beta2), cast(1.0 - beta2),
            _positive_like(hyper[2], dtype))


#: Host-side scalar preparation of each CPU kernel's CUDA counterpart.
SCALARS: dict[Any, Callable[[np.ndarray, int, float, np.dtype], tuple]] = {
    sgd_update: sgd_scalars,
    rmsprop_update: rmsprop_scalars,
    adam_update: adam_scalars,
    adagrad_update: adagrad_scalars,
    velocity_sgd_update: velocity_sgd_scalars,
    folded_adam_update: folded_adam_scalars,
}


def has_cuda_kernel(kernel_id: int) -> bool:
    """Whether CPU kernel number ``kernel_id`` of the registry has a CUDA counterpart here.

    Parameters
    ----------
    kernel_id : int
        Index in :data:`fastgd.optim._registry.KERNELS` (:attr:`fastgd.optim.Optimizer.kernel_id`).

    Returns
    -------
    bool
        True when :func:`device_step` can run it.
    """
    return 0 <= kernel_id < len(KERNELS) and KERNELS[kernel_id] in SCALARS


def device_step(kernel_id: int, params: Any, grads: Any, slots: Any, hyper: np.ndarray, step: int, lr: float,
                grad_scale: float, clip_value: float, scale_ref: Any = None, stream: Any = 0) -> None:
    """One fused optimizer step on the device, in place (asynchronous on ``stream``).

    Parameters
    ----------
    kernel_id : int
        Index of the optimizer's CPU kernel in :data:`fastgd.optim._registry.KERNELS`
        (:attr:`fastgd.optim.Optimizer.kernel_id`).
    params : device array of shape (n_params,)
        float32 or float64 parameters, updated in place; may be a slice of a larger device array.
    grads : device array of shape (n_params,)
        Gradient, same dtype; not modified.
    slots : device array of shape (n_slots, n_params)
        The optimizer's state rows, same dtype (0 rows for plain SGD).
    hyper : ndarray of float64
        The optimizer's hyperparameters (:meth:`fastgd.optim.Optimizer.hyperparameters`), read on the host.
    step : int
        1-based number of this update (bias corrections, the first momentum step).
    lr : float
        Learning rate of this step.
    grad_scale : float
        Factor applied to ``grads`` before clipping.
    clip_value : float
        Clip each scaled gradient component to ``[-clip_value, clip_value]`` (``math.inf``: no clipping).
    scale_ref : device array of shape (1,), optional
        A factor on the device that multiplies ``grad_scale`` (in float64, as on the CPU, before the cast to
        the parameters' dtype), e.g. written by :func:`clip_norm_scale`.
    stream : numba CUDA stream or 0, default=0
        Stream the kernel is launched on (0: the default stream).

    Raises
    ------
    NotImplementedError
        If the CPU kernel ``kernel_id`` has no CUDA counterpart.
    TypeError
        If ``params`` has a dtype other than float32 or float64.
    """
    if not has_cuda_kernel(kernel_id):
        raise NotImplementedError(f"optimizer kernel {kernel_id} has no CUDA implementation in fastgd.cuda.optim.")
    cpu_kernel = KERNELS[kernel_id]
    dtype = np.dtype(params.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"params must have dtype float32 or float64, got {dtype}.")
    n = params.shape[0]
    if n == 0:
        return
    scalars = SCALARS[cpu_kernel](hyper, int(step), float(lr), dtype)
    kernel = update_kernels(dtype)[cpu_kernel]
    ref = _one_on_device() if scale_ref is None else scale_ref
    launcher(kernel, launch_blocks(n), THREADS_PER_BLOCK, stream)(params, grads, slots, ref, np.float64(grad_scale),
                                                                  dtype.type(clip_value), *scalars)


def squared_norm(x: Any, out: Any, index: int, stream: Any = 0) -> None:
    """Add ``sum(x**2)`` to ``out[index]`` on the device (asynchronous on ``stream``).

    Each thread sums its grid-stride elements in float64, each block reduces its
    threads' sums in shared memory and adds the result to ``out[index]`` with one
    atomic addition; ``out`` is not zeroed first.

    Parameters
    ----------
    x : device array of shape (n,)
        float32 or float64 values.
    out : device array of float64
        Accumulator; ``out[index]`` grows by ``sum(x**2)``.
    index : int
        Entry of ``out`` to add to.
    stream : numba CUDA stream or 0, default=0
        Stream of the launch.
    """
    n = x.shape[0]
    if n == 0:
        return
    launcher(squared_norm_cuda, launch_blocks(n), THREADS_PER_BLOCK, stream)(x, out, np.int64(index))


def clip_norm_scale(sq_norm: Any, index: int, weight_sum: Any, clip_norm: float, out: Any, stream: Any = 0) -> None:
    """Write the gradient factor of a clip-by-norm step to ``out[0]`` on the device (one thread).

    With ``s = 1 / weight_sum[0]``::

        out[0] = s * min(1, clip_norm / (sqrt(sq_norm[index]) * |s| + 1e-6))

    that is ``s`` times :func:`fastgd.optim._base.clip_coefficient` of the gradient
    scaled by ``s`` (``torch.nn.utils.clip_grad_norm_``'s rule); the coefficient is 1
    when the norm is not finite, so that NaN/Inf reach the non-finite guard.
    ``out`` is meant as the ``scale_ref`` of :func:`device_step`.

    Parameters
    ----------
    sq_norm : device array of float64
        Squared gradient norms (:func:`squared_norm`); entry ``index`` is used.
    index : int
        Entry of ``sq_norm``.
    weight_sum : device array of shape (1,)
        Sum of the sample weights of the batch.
    clip_norm : float
        Largest admitted norm of the scaled gradient, > 0.
    out : device array of float64, shape (1,) or more
        Receives the factor in ``out[0]``.
    stream : numba CUDA stream or 0, default=0
        Stream of the launch.
    """
    launcher(clip_norm_scale_cuda, 1, 1, stream)(sq_norm, np.int64(index), weight_sum, np.float64(clip_norm), out)


def fill(x: Any, value: float, stream: Any = 0) -> None:
    """Set every element of the C-contiguous device array ``x`` to ``value`` (cast to its dtype).

    Parameters
    ----------
    x : device array
        C-contiguous, any shape; updated in place.
    value : float
        The value.
    stream : numba CUDA stream or 0, default=0
        Stream of the launch.
    """
    if x.size == 0:
        return
    flat = x.reshape(x.size)
    launcher(fill_cuda, launch_blocks(x.size), THREADS_PER_BLOCK, stream)(flat, np.dtype(x.dtype).type(value))


# --- what fastgd.optim.Optimizer uses for device arrays ------------------------------------------------------


def as_numba_device_array(x: Any) -> Any:
    """``x`` if it is a numba device array, a numba view of it if it has ``__cuda_array_interface__``, else None.

    In the simulator only numba's (simulated) device arrays are device arrays.
    """
    if isinstance(x, np.ndarray):
        return None
    if getattr(x, "__cuda_ndarray__", False):  # numba's device arrays, the simulator's too
        return x
    if hasattr(x, "__cuda_array_interface__") and not simulated():
        return cuda.as_cuda_array(x)
    return None


def as_device_vector(x: Any, name: str = "params") -> Any:
    """``x`` as a numba device array, checked to be 1-D, C-contiguous, writeable, float32 or float64.

    Parameters
    ----------
    x : object
        A numba device array or any object with ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors).
    name : str, default="params"
        Name used in error messages.

    Returns
    -------
    numba.cuda.cudadrv.devicearray.DeviceNDArray
        A view of the same memory.

    Raises
    ------
    TypeError
        Wrong dtype, or an object that is not a CUDA array.
    ValueError
        Not 1-D, not C-contiguous, or read-only.
    """
    d = as_numba_device_array(x)
    if d is None:
        if simulated():
            raise TypeError(f"{name} must be a numba device array (numba.cuda.to_device) under numba's CUDA "
                            f"simulator, got {type(x).__name__}.")
        raise TypeError(f"{name} must be a device array with __cuda_array_interface__, got {type(x).__name__}.")
    interface = getattr(x, "__cuda_array_interface__", None)
    data = interface.get("data") if isinstance(interface, dict) else None
    readonly = bool(data[1]) if isinstance(data, tuple) and len(data) > 1 else False
    dtype = np.dtype(d.dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {dtype}; convert it on the device "
                        "(e.g. x.astype(cupy.float32) or tensor.float()).")
    if d.ndim != 1 or not d.is_c_contiguous():
        raise ValueError(f"{name} must be a 1-D C-contiguous device array, got shape {d.shape} "
                         f"(C-contiguous: {d.is_c_contiguous()}); make a contiguous flat copy on the device.")
    if readonly:
        raise ValueError(f"{name} must be writeable: the optimizer updates it in place.")
    return d


def zeros_like_state(n_slots: int, params: Any, value: float) -> Any:
    """Device state rows ``(n_slots, params.size)`` of ``params``' dtype, every element ``value``."""
    slots = cuda.device_array((n_slots, params.shape[0]), dtype=params.dtype)
    fill(slots, value)
    return slots


def check_device_state(slots: Any, n_slots: int, params: Any) -> bool:
    """Whether ``slots`` is a C-contiguous device array ``(n_slots, params.size)`` in ``params``' dtype."""
    d = as_numba_device_array(slots)
    if d is None:
        return False
    return (tuple(d.shape) == (n_slots, params.shape[0]) and np.dtype(d.dtype) == np.dtype(params.dtype)
            and d.is_c_contiguous())


def new_step_scratch() -> Any:
    """Two zeroed float64 device entries for :meth:`Optimizer.step`'s clip-by-norm: squared norm, coefficient."""
    return cuda.to_device(np.zeros(2))


def clipped_device_step(kernel_id: int, params: Any, grads: Any, slots: Any, hyper: np.ndarray, step: int,
                        lr: float, grad_scale: float, clip_value: float, clip_norm: float, scratch: Any,
                        stream: Any = 0) -> None:
    """:func:`device_step` with clip-by-norm: the norm and its coefficient stay on the device (no host sync).

    Three launches on ``stream``: :func:`squared_norm` of ``grads`` into
    ``scratch[0]``, the coefficient ``clip_coefficient(|grad_scale| *
    sqrt(scratch[0]), clip_norm)`` into ``scratch[1]`` (which also zeroes
    ``scratch[0]`` again), then :func:`device_step` with ``scale_ref=scratch[1:]``.

    Parameters
    ----------
    kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value
        As for :func:`device_step`.
    clip_norm : float
        Largest admitted norm of ``grad_scale * grads``, > 0.
    scratch : device array of 2 float64
        From :func:`new_step_scratch`; not to be shared by steps running concurrently.
    stream : numba CUDA stream or 0, default=0
        Stream of the launches.
    """
    squared_norm(grads, scratch, 0, stream)
    launcher(step_clip_coefficient_cuda, 1, 1, stream)(scratch, np.float64(abs(grad_scale)), np.float64(clip_norm))
    device_step(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value,
                scale_ref=scratch[1:], stream=stream)


def init_state_on_device(optimizer: Optimizer, params: Any) -> OptimizerState:
    """:meth:`Optimizer.init <fastgd.optim.Optimizer.init>` for device ``params``: state rows on the device."""
    params = as_device_vector(params)
    return OptimizerState(slots=zeros_like_state(optimizer.n_slots(), params, optimizer.initial_slot_value()),
                          made_by=optimizer.state_maker())


def step_on_device(optimizer: Optimizer, params: Any, grads: Any, state: OptimizerState, *, lr: float | None,
                   grad_scale: float, clip_value: float | None, clip_norm: float | None) -> None:
    """:meth:`Optimizer.step <fastgd.optim.Optimizer.step>` on device arrays: checked here, run by the fused kernel.

    Raises
    ------
    NotImplementedError
        The optimizer's update kernel has no CUDA twin here.
    """
    params = as_device_vector(params)
    grads = as_device_vector(grads, "grads")
    lr, grad_scale, clip, clip_norm = optimizer.check_step_options(params, grads, state, lr, grad_scale,
                                                                   clip_value, clip_norm)
    if not has_cuda_kernel(optimizer.kernel_id):
        raise NotImplementedError(f"{type(optimizer).__name__} has no CUDA kernel in fastgd.cuda.optim; "
                                  "use NumPy arrays.")
    slots = as_numba_device_array(state.slots)
    state.step += 1
    if clip_norm is None:
        device_step(optimizer.kernel_id, params, grads, slots, optimizer.hyperparameters(), state.step, lr,
                    grad_scale, clip)
        return
    if state._device_scratch is None:
        state._device_scratch = new_step_scratch()
    clipped_device_step(optimizer.kernel_id, params, grads, slots, optimizer.hyperparameters(), state.step, lr,
                        grad_scale, clip, clip_norm, state._device_scratch)


register_device_path(DevicePath(init_state=init_state_on_device, step=step_on_device,
                                state_belongs=check_device_state))
