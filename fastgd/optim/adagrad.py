"""Adagrad: per-coordinate learning rates from accumulated squared gradients."""

from __future__ import annotations

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, positive_like, scale_and_clip, tiny_like
from ._base import Optimizer, check_real


@jit(inlined=True)
def adagrad_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused Adagrad step; ``hyper = (lr_decay, weight_decay, eps)``."""
    clr = cast_like(lr / (1.0 + (step - 1) * hyper[0]), params)
    weight_decay = cast_like(hyper[1], params)
    eps = positive_like(hyper[2], params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    state_sum = slots[0]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = scale_and_clip(grads[i], scale, clip)
        g = g + weight_decay * params[i]
        s = state_sum[i] + g * g
        state_sum[i] = flush_subnormal(s, tiny)
        params[i] = flush_subnormal(params[i] - clr * (g / (np.sqrt(s) + eps)), tiny)


class Adagrad(Optimizer):
    r"""Adagrad.

    The rule is PyTorch's ``torch.optim.Adagrad``:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        \tilde\gamma &\leftarrow \gamma / (1 + (t - 1) \eta) \\
        s_t &\leftarrow s_{t-1} + g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\gamma\, g_t / (\sqrt{s_t} + \epsilon)

    State row: the sum ``s``, starting at ``initial_accumulator_value``.

    Parameters
    ----------
    lr : float, default=1e-2
        Learning rate :math:`\gamma`, >= 0.
    lr_decay : float, default=0.0
        Learning-rate decay :math:`\eta`, >= 0.
    weight_decay : float, default=0.0
        Coupled L2 penalty :math:`\lambda`, >= 0.
    initial_accumulator_value : float, default=0.0
        Starting value of ``s``, >= 0.
    eps : float, default=1e-10
        Term added to the denominator, > 0.
    """

    name = "adagrad"
    update_kernel = adagrad_update

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        self.lr = check_real("lr", lr)
        self.lr_decay = check_real("lr_decay", lr_decay)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.initial_accumulator_value = check_real("initial_accumulator_value", initial_accumulator_value)
        self.eps = check_real("eps", eps, low_open=True)

    def slot_names(self) -> tuple[str, ...]:
        """One accumulator of squared gradients."""
        return ("sum",)

    def initial_slot_value(self) -> float:
        """``initial_accumulator_value``."""
        return self.initial_accumulator_value

    def zero_gradient_is_identity(self) -> bool:
        """True without weight decay: a zero gradient adds nothing to the sum and moves nothing."""
        return self.weight_decay == 0

    def hyperparameters(self) -> np.ndarray:
        """``(lr_decay, weight_decay, eps)`` as float64."""
        return np.array([self.lr_decay, self.weight_decay, self.eps])
