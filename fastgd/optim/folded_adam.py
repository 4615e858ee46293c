"""Adam with the bias correction folded into the step size (the rule of scikit-learn's MLP)."""

from __future__ import annotations

import math

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, positive_like, scale_and_clip, tiny_like
from ._base import Optimizer, check_betas, check_real


@jit(inlined=True)
def folded_adam_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused Adam step of Kingma & Ba's efficient form; ``hyper = (beta1, beta2, eps)``."""
    beta1 = hyper[0]
    beta2 = hyper[1]
    step_size = cast_like(lr * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step), params)
    beta1_ = cast_like(beta1, params)
    one_minus_beta1 = cast_like(1.0 - beta1, params)
    beta2_ = cast_like(beta2, params)
    one_minus_beta2 = cast_like(1.0 - beta2, params)
    eps = positive_like(hyper[2], params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    exp_avg = slots[0]
    exp_avg_sq = slots[1]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = scale_and_clip(grads[i], scale, clip)
        m = beta1_ * exp_avg[i] + one_minus_beta1 * g
        v = beta2_ * exp_avg_sq[i] + one_minus_beta2 * (g * g)
        exp_avg[i] = flush_subnormal(m, tiny)
        exp_avg_sq[i] = flush_subnormal(v, tiny)
        params[i] = flush_subnormal(params[i] + -step_size * m / (np.sqrt(v) + eps), tiny)


class FoldedAdam(Optimizer):
    r"""Adam with the bias correction folded into the step size.

    Kingma & Ba's efficient form (Section 2 of the paper), used by
    scikit-learn's ``MLPClassifier(solver="adam")``:

    .. math::

        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
            \frac{m_t}{\sqrt{v_t} + \epsilon}

    It differs from :class:`Adam` only in where :math:`\epsilon` enters.
    State rows: ``m`` and ``v``.

    Parameters
    ----------
    lr : float, default=1e-3
        Learning rate :math:`\gamma`, >= 0.
    betas : tuple of (float, float), default=(0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float, default=1e-8
        Term added to the denominator, > 0.
    """

    name = "folded_adam"
    update_kernel = folded_adam_update

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr = check_real("lr", lr)
        self.betas = check_betas(betas)
        self.eps = check_real("eps", eps, low_open=True)

    def slot_names(self) -> tuple[str, ...]:
        """First and second moments."""
        return ("exp_avg", "exp_avg_sq")

    def hyperparameters(self) -> np.ndarray:
        """``(beta1, beta2, eps)`` as float64."""
        return np.array([*self.betas, self.eps])
