"""Adam and its AMSGrad variant, with coupled or decoupled weight decay."""

from __future__ import annotations

import math

import numpy as np

from .._config import jit
from ..kernels._cast import cast_like, positive_like
from ._base import Optimizer, check_betas, check_real


@jit(inlined=True)
def adam_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused Adam/AdamW step.

    ``hyper = (beta1, beta2, eps, weight_decay, amsgrad, decoupled)``; with
    ``decoupled`` the decay multiplies the parameters by ``1 - lr * weight_decay``
    (AdamW), otherwise it is added to the gradient (Adam).
    """
    beta1 = hyper[0]
    beta2 = hyper[1]
    amsgrad = hyper[4] != 0.0
    decoupled = hyper[5] != 0.0
    bias_correction1 = 1.0 - beta1**step
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
    step_size = cast_like(lr / bias_correction1, params)
    bc2_sqrt = cast_like(bias_correction2_sqrt, params)
    # torch.lerp(m, g, w) with w = 1 - beta1: m + w (g - m) below w = 0.5, g - (g - m)(1 - w) from 0.5 on
    weight = cast_like(1.0 - beta1, params)
    from_end = 1.0 - beta1 >= 0.5
    one_minus_weight = 1 - weight
    beta2_ = cast_like(beta2, params)
    one_minus_beta2 = cast_like(1.0 - beta2, params)
    eps = positive_like(hyper[2], params)
    coupled_decay = cast_like(0.0 if decoupled else hyper[3], params)
    shrink = cast_like(1.0 - lr * hyper[3] if decoupled else 1.0, params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    exp_avg = slots[0]
    exp_avg_sq = slots[1]
    max_exp_avg_sq = slots[2] if amsgrad else slots[1]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = grads[i] * scale
        if g > clip:
            g = clip
        elif g < -clip:
            g = -clip
        p = params[i] * shrink
        g = g + coupled_decay * p
        if from_end:
            m = g - (g - exp_avg[i]) * one_minus_weight
        else:
            m = exp_avg[i] + weight * (g - exp_avg[i])
        v = beta2_ * exp_avg_sq[i] + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if amsgrad:
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = v
        denom = np.sqrt(v) / bc2_sqrt + eps
        params[i] = p - step_size * (m / denom)


class Adam(Optimizer):
    r"""Adam: adaptive moment estimation.

    The rule is PyTorch's ``torch.optim.Adam`` (weight decay coupled, i.e.
    added to the gradient):

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &\leftarrow \max(\hat v_{t-1}, v_t) \text{ (amsgrad) or } v_t \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    State rows: ``m``, ``v`` and, with ``amsgrad``, ``v_max``.

    Parameters
    ----------
    lr : float, default=1e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates :math:`(\beta_1, \beta_2)` of the moment estimates, each in [0, 1).
    eps : float, default=1e-8
        Term added to the denominator, > 0.
    weight_decay : float, default=0.0
        L2 penalty :math:`\lambda`, >= 0.
    amsgrad : bool, default=False
        Use the maximum of past second moments (AMSGrad).
    """

    name = "adam"
    update_kernel = adam_update
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        self.lr = check_real("lr", lr)
        self.betas = check_betas(betas)
        self.eps = check_real("eps", eps, low_open=True)
        self.weight_decay = check_real("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)

    def n_slots(self) -> int:
        """First and second moments, plus the running maximum with ``amsgrad``."""
        return 3 if self.amsgrad else 2

    def hyperparameters(self) -> np.ndarray:
        """``(beta1, beta2, eps, weight_decay, amsgrad, decoupled)`` as float64."""
        return np.array([*self.betas, self.eps, self.weight_decay, float(self.amsgrad), float(self._decoupled)])
