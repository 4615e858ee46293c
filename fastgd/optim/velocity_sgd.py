"""SGD with momentum in the velocity form (the rule of scikit-learn's MLP)."""

from __future__ import annotations

import numpy as np

from .._config import jit
from .._numeric.cast import cast_like, flush_subnormal, scale_and_clip, tiny_like
from ._base import Optimizer, check_real


@jit(inlined=True)
def velocity_sgd_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Fused velocity-form SGD step; ``hyper = (momentum, nesterov)``."""
    momentum = cast_like(hyper[0], params)
    nesterov = hyper[1] != 0.0
    lr_ = cast_like(lr, params)
    scale = cast_like(grad_scale, params)
    clip = cast_like(clip_value, params)
    tiny = tiny_like(params)
    velocity = slots[0]
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no wraparound, so LLVM vectorises
        g = scale_and_clip(grads[i], scale, clip)
        v = momentum * velocity[i] - lr_ * g
        velocity[i] = flush_subnormal(v, tiny)
        if nesterov:
            params[i] = flush_subnormal(params[i] + (momentum * v - lr_ * g), tiny)
        else:
            params[i] = flush_subnormal(params[i] + v, tiny)


class VelocitySGD(Optimizer):
    r"""SGD with (Nesterov) momentum in the velocity form.

    The learning rate sits inside the velocity, as in scikit-learn's
    ``MLPClassifier(solver="sgd")`` and Sutskever et al. (2013):

    .. math::

        v_t &\leftarrow \mu v_{t-1} - \gamma_t g_t \\
        \theta_t &\leftarrow \theta_{t-1} + v_t
            \quad\text{or, Nesterov,}\quad
            \theta_t \leftarrow \theta_{t-1} + \mu v_t - \gamma_t g_t

    With a constant rate it takes the same steps as :class:`SGD`; when the
    rate changes (``invscaling``, ``adaptive``) the velocity keeps the steps
    already taken at their old rate. State row: the velocity ``v``.

    Parameters
    ----------
    lr : float, default=0.1
        Learning rate :math:`\gamma`, >= 0.
    momentum : float, default=0.9
        Momentum :math:`\mu`, in [0, 1].
    nesterov : bool, default=True
        Use Nesterov's momentum.
    """

    name = "velocity_sgd"
    update_kernel = velocity_sgd_update

    def __init__(self, lr: float = 0.1, momentum: float = 0.9, nesterov: bool = True) -> None:
        self.lr = check_real("lr", lr)
        self.momentum = check_real("momentum", momentum, high=1.0)
        self.nesterov = bool(nesterov)

    def slot_names(self) -> tuple[str, ...]:
        """One velocity row."""
        return ("velocity",)

    def hyperparameters(self) -> np.ndarray:
        """``(momentum, nesterov)`` as float64."""
        return np.array([self.momentum, float(self.nesterov)])
