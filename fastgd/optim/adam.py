"""Adam and its AMSGrad variant, with coupled or decoupled weight decay.

Stored values (parameters and moments) below the smallest normal number of
their dtype are stored as 0 (see :mod:`fastgd._config`): long runs with weight
decay otherwise leave them subnormal, and every later step slow.
"""

from __future__ import annotations

import math

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, positive_like, scale_and_clip, tiny_like
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
    one_minus_weight = cast_like(1.0, params) - weight  # in the dtype, as torch.lerp computes it
    beta2_ = cast_like(beta2, params)
    one_minus_beta2 = cast_like(1.0 - beta2, params)
    eps = positive_like(hyper[2], params)
    coupled_decay = cast_like(0.0 if decoupled else hyper[3], params)
    shrink = cast_like(1.0 - lr * hyper[3] if decoupled else 1.0, params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    exp_avg = slots[0]
    exp_avg_sq = slots[1]
    moments = (from_end, weight, one_minus_weight, beta2_, one_minus_beta2)
    # Two loops rather than one with ``if amsgrad`` around the third row: without amsgrad that row would be
    # exp_avg_sq itself, and the overlap makes LLVM's runtime alias check send the loop down its scalar path.
    decay = (scale, clip, shrink, coupled_decay)
    rate = (step_size, bc2_sqrt, eps, tiny)
    if amsgrad:
        max_exp_avg_sq = slots[2]
        for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
            p, m, v = adam_element(grads[i], params[i], exp_avg, exp_avg_sq, i, decay, moments, tiny)
            v = max(max_exp_avg_sq[i], v)
            max_exp_avg_sq[i] = flush_subnormal(v, tiny)
            params[i] = adam_parameter(p, m, v, rate)
    else:
        for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
            p, m, v = adam_element(grads[i], params[i], exp_avg, exp_avg_sq, i, decay, moments, tiny)
            params[i] = adam_parameter(p, m, v, rate)


@jit(inlined=True)
def adam_element(grad, param, exp_avg, exp_avg_sq, i, decay, moments, tiny):
    """Element ``i`` of an Adam step up to the moments: stores the new moments, returns ``(p, m, v)``.

    ``p`` is the parameter after decoupled decay, ``m``, ``v`` the new moments
    (before amsgrad's maximum); ``decay = (grad_scale, clip, shrink, coupled_decay)``.
    """
    scale, clip, shrink, coupled_decay = decay
    p = param * shrink
    g = scale_and_clip(grad, scale, clip) + coupled_decay * p
    m, v = adam_moments(g, exp_avg[i], exp_avg_sq[i], moments)
    exp_avg[i] = flush_subnormal(m, tiny)
    exp_avg_sq[i] = flush_subnormal(v, tiny)
    return p, m, v


@jit(inlined=True)
def adam_parameter(p, m, v, rate):
    """The new parameter from ``p`` and the moments; ``rate = (step_size, bc2_sqrt, eps, tiny)``."""
    step_size, bc2_sqrt, eps, tiny = rate
    return flush_subnormal(p - step_size * (m / (np.sqrt(v) / bc2_sqrt + eps)), tiny)


@jit(inlined=True)
def adam_moments(g, m, v, moments):
    """Adam's new first and second moments from gradient ``g`` and the old ``m``, ``v``.

    ``moments = (from_end, weight, one_minus_weight, beta2, one_minus_beta2)``
    in the dtype of the parameters; the first moment follows ``torch.lerp(m,
    g, weight)``'s two-sided formula (``from_end`` when ``weight >= 0.5``).
    """
    from_end, weight, one_minus_weight, beta2, one_minus_beta2 = moments
    if from_end:
        m_new = g - (g - m) * one_minus_weight
    else:
        m_new = m + weight * (g - m)
    return m_new, beta2 * v + one_minus_beta2 * g * g


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

    def slot_names(self) -> tuple[str, ...]:
        """First and second moments, plus the running maximum with ``amsgrad``."""
        return ("exp_avg", "exp_avg_sq") + ("max_exp_avg_sq",) * self.amsgrad

    def hyperparameters(self) -> np.ndarray:
        """``(beta1, beta2, eps, weight_decay, amsgrad, decoupled)`` as float64."""
        return np.array([*self.betas, self.eps, self.weight_decay, float(self.amsgrad), float(self._decoupled)])
