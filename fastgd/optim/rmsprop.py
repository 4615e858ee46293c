"""RMSprop, optionally centered and with momentum.

Stored values (parameters and moments) below the smallest normal number of
their dtype are stored as 0 (see :mod:`fastgd._config`): long runs with weight
decay otherwise leave them subnormal, and every later step slow.
"""

from __future__ import annotations

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, positive_like, scale_and_clip, tiny_like
from ._base import Optimizer, check_real


@jit(inlined=True)
def rmsprop_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused RMSprop step; ``hyper = (alpha, eps, weight_decay, momentum, centered)``."""
    alpha = cast_like(hyper[0], params)
    one_minus_alpha = cast_like(1.0 - hyper[0], params)
    from_end = 1.0 - hyper[0] >= 0.5
    lerp_keep = cast_like(1.0, params) - one_minus_alpha  # torch.lerp's 1 - weight, in the dtype
    zero = cast_like(0.0, params)
    eps = positive_like(hyper[1], params)
    weight_decay = cast_like(hyper[2], params)
    momentum = cast_like(hyper[3], params)
    use_momentum = hyper[3] > 0.0
    centered = hyper[4] != 0.0
    lr_ = cast_like(lr, params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    square_avg = slots[0]
    buf = slots[1 if use_momentum else 0]
    grad_avg = slots[2 if use_momentum else 1] if centered else slots[0]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = scale_and_clip(grads[i], scale, clip)
        g = g + weight_decay * params[i]
        sq = alpha * square_avg[i] + one_minus_alpha * g * g
        square_avg[i] = flush_subnormal(sq, tiny)
        if centered:
            if from_end:  # torch.lerp(grad_avg, g, 1 - alpha), as in adam_update
                ga = g - (g - grad_avg[i]) * lerp_keep
            else:
                ga = grad_avg[i] + one_minus_alpha * (g - grad_avg[i])
            grad_avg[i] = flush_subnormal(ga, tiny)
            avg = np.sqrt(max(sq - ga * ga, zero)) + eps  # rounding can push the variance below 0
        else:
            avg = np.sqrt(sq) + eps
        if use_momentum:
            b = momentum * buf[i] + g / avg
            buf[i] = flush_subnormal(b, tiny)
            params[i] = flush_subnormal(params[i] - lr_ * b, tiny)
        else:
            params[i] = flush_subnormal(params[i] - lr_ * (g / avg), tiny)


class RMSprop(Optimizer):
    r"""RMSprop: divide the gradient by a running root mean square.

    The rule is PyTorch's ``torch.optim.RMSprop``. With smoothing constant
    :math:`\alpha`:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \tilde v_t &\leftarrow v_t - \bar g_t^2,\quad
            \bar g_t \leftarrow \alpha \bar g_{t-1} + (1-\alpha) g_t
            \text{ (centered only, else } \tilde v_t = v_t) \\
        b_t &\leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),\quad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t \text{ (momentum)} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t / (\sqrt{\tilde v_t} + \epsilon)
            \text{ (no momentum)}

    State rows: ``v``, then ``b`` if ``momentum > 0``, then ``g_bar`` if centered.

    Parameters
    ----------
    lr : float, default=1e-2
        Learning rate :math:`\gamma`, >= 0.
    alpha : float, default=0.99
        Smoothing constant :math:`\alpha`, in [0, 1].
    eps : float, default=1e-8
        Term added to the denominator, > 0.
    weight_decay : float, default=0.0
        Coupled L2 penalty :math:`\lambda`, >= 0.
    momentum : float, default=0.0
        Momentum factor :math:`\mu`, in [0, 1].
    centered : bool, default=False
        Normalise by the estimated variance of the gradient instead of its
        second moment.
    """

    name = "rmsprop"
    update_kernel = rmsprop_update

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False) -> None:
        self.lr = check_real("lr", lr)
        self.alpha = check_real("alpha", alpha, high=1.0)
        self.eps = check_real("eps", eps, low_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.momentum = check_real("momentum", momentum, high=1.0)
        self.centered = bool(centered)

    def slot_names(self) -> tuple[str, ...]:
        """Square average, plus momentum buffer and gradient average when used."""
        return ("square_avg",) + ("momentum_buffer",) * (self.momentum > 0) + ("grad_avg",) * self.centered

    def hyperparameters(self) -> np.ndarray:
        """``(alpha, eps, weight_decay, momentum, centered)`` as float64."""
        return np.array([self.alpha, self.eps, self.weight_decay, self.momentum, float(self.centered)])
