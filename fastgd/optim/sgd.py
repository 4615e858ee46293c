"""Stochastic gradient descent with momentum and Nesterov momentum."""

from __future__ import annotations

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, scale_and_clip, tiny_like
from ._base import Optimizer, check_real


@jit(inlined=True)
def plain_sgd_value(param, grad, lr, weight_decay, grad_scale, clip, tiny):
    """One parameter after a plain SGD step (no momentum): the rule of :func:`sgd_update` for one element.

    ``param - lr * (g + weight_decay * param)`` with ``g`` the scaled and
    clipped ``grad``, flushed below ``tiny``; every scalar is in the
    parameters' dtype. The per-sample loop of
    :mod:`fastgd.kernels.linear` inlines it into the pass that also
    computes the next sample's decision value.
    """
    g = scale_and_clip(grad, grad_scale, clip)
    return flush_subnormal(param - lr * (g + weight_decay * param), tiny)


@jit(inlined=True)
def sgd_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused SGD step on ``params[lo:hi]``; ``hyper = (momentum, dampening, nesterov, weight_decay)``."""
    momentum = cast_like(hyper[0], params)
    keep = cast_like(1.0 - hyper[1], params)
    nesterov = hyper[2] != 0.0
    weight_decay = cast_like(hyper[3], params)
    lr_ = cast_like(lr, params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    first = step == 1
    if hyper[0] == 0.0:
        for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
            params[i] = plain_sgd_value(params[i], grads[i], lr_, weight_decay, scale, clip, tiny)
        return
    buf = slots[0]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = scale_and_clip(grads[i], scale, clip)
        g = g + weight_decay * params[i]
        if first:
            b = g
        else:
            b = momentum * buf[i] + keep * g
        buf[i] = flush_subnormal(b, tiny)
        if nesterov:
            g = g + momentum * b
        else:
            g = b
        params[i] = flush_subnormal(params[i] - lr_ * g, tiny)


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    The rule is PyTorch's ``torch.optim.SGD``. With gradient :math:`g_t`,
    momentum :math:`\mu`, dampening :math:`\tau`, weight decay :math:`\lambda`
    and learning rate :math:`\gamma`:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &\leftarrow g_t \text{ if } t = 1 \text{ else } \mu b_{t-1} + (1 - \tau) g_t \\
        g_t &\leftarrow g_t + \mu b_t \text{ (nesterov) or } b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    The momentum buffer ``b`` exists only when ``momentum > 0`` (state row 0).

    Parameters
    ----------
    lr : float, default=1e-3
        Learning rate :math:`\gamma`, >= 0.
    momentum : float, default=0.0
        Momentum factor :math:`\mu`, in [0, 1].
    dampening : float, default=0.0
        Dampening :math:`\tau` of the momentum, in [0, 1].
    weight_decay : float, default=0.0
        Coupled L2 penalty :math:`\lambda`, >= 0.
    nesterov : bool, default=False
        Use Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    """

    name = "sgd"
    update_kernel = sgd_update

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        self.lr = check_real("lr", lr)
        self.momentum = check_real("momentum", momentum, high=1.0)
        self.dampening = check_real("dampening", dampening, high=1.0)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening == 0, "
                             f"got momentum={self.momentum}, dampening={self.dampening}.")

    def slot_names(self) -> tuple[str, ...]:
        """One momentum buffer when ``momentum > 0``, else none."""
        return ("momentum_buffer",) if self.momentum > 0 else ()

    def zero_gradient_is_identity(self) -> bool:
        """True without momentum and weight decay: a zero gradient then moves nothing."""
        return self.momentum == 0 and self.weight_decay == 0

    def hyperparameters(self) -> np.ndarray:
        """``(momentum, dampening, nesterov, weight_decay)`` as float64."""
        return np.array([self.momentum, self.dampening, float(self.nesterov), self.weight_decay])
