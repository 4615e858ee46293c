"""Learning-rate schedules.

A schedule has two halves. The Python half (:class:`Schedule`) is asked at the
start of every epoch for the epoch's base rate and may react to the epoch's
loss (``adaptive``). Schedules that change the rate at every update
(``invscaling`` and ``optimal``, as scikit-learn's ``SGDClassifier`` defines
them) hand a per-update formula to the compiled half, :func:`update_lr`, so
that per-sample SGD keeps its whole epoch in one compiled loop.

==============  ==============================================================
name            learning rate
==============  ==============================================================
``constant``    ``eta0``
``invscaling``  ``eta0 / t ** power_t`` with ``t`` the 1-based update count;
                with ``per_update=False`` (the MLPs, as scikit-learn's),
                ``eta0 / (samples_seen + 1) ** power_t`` set at each epoch
``optimal``     ``1 / (alpha * (t0 + t - 1))``, ``t0`` from Bottou's heuristic
``adaptive``    ``eta0``, divided by 5 whenever ``n_iter_no_change`` epochs in
                a row fail to improve by ``tol`` (scikit-learn's rule; the
                engine asks :meth:`Schedule.on_plateau`)
``step``        ``eta0 * gamma ** (epoch // step_size)``
``cosine``      ``eta_min + (eta0 - eta_min) (1 + cos(pi epoch / max_iter)) / 2``
==============  ==============================================================
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._config import jit

PER_EPOCH = 0
INVSCALING = 1
OPTIMAL = 2

SCHEDULES = ("constant", "invscaling", "optimal", "adaptive", "step", "cosine")


class UpdateRule(NamedTuple):
    """Everything a compiled epoch needs to make one optimizer update.

    Attributes
    ----------
    kernel_id : int
        Optimizer kernel (see :mod:`fastgd.optim._registry`).
    hyper : ndarray of float64
        The optimizer's packed hyperparameters.
    lr_kind : int
        ``PER_EPOCH``, ``INVSCALING`` or ``OPTIMAL``.
    lr : float
        This epoch's base learning rate.
    power_t : float
        Exponent of ``invscaling``.
    optimal_t0 : float
        Offset ``t0`` of ``optimal``.
    optimal_alpha : float
        Regularisation strength in ``optimal``.
    clip_value : float
        Clip each gradient component to ``[-clip_value, clip_value]`` (``inf``: off).
    clip_norm : float
        Rescale each gradient to global norm at most ``clip_norm`` (``inf``: off).
    threaded : bool
        Run the optimizer update on Numba's threads.
    intercept_decay : float
        Factor on the intercepts' gradient (1: none). scikit-learn's SGD
        estimators move intercepts at a hundredth of the rate on sparse input
        (``intercept_decay = 0.01``), which :class:`fastgd.SGDClassifier` and
        :class:`fastgd.SGDRegressor` follow; the gradient norm is taken before it.
    average_from : int
        Averaged SGD: the update from which the weights are averaged (1-based,
        as scikit-learn's ``average``); 0: no averaging (see
        :func:`fastgd.kernels.rows.average_step`).
    """

    kernel_id: int
    hyper: np.ndarray
    lr_kind: int
    lr: float
    power_t: float
    optimal_t0: float
    optimal_alpha: float
    clip_value: float
    clip_norm: float
    threaded: bool
    intercept_decay: float = 1.0
    average_from: int = 0


@jit(inline="always")
def update_lr(rule, step):
    """Learning rate of update number ``step`` (1-based) under ``rule``."""
    if rule.lr_kind == INVSCALING:
        return rule.lr / step**rule.power_t
    if rule.lr_kind == OPTIMAL:
        return 1.0 / (rule.optimal_alpha * (rule.optimal_t0 + step - 1.0))
    return rule.lr


class Schedule:
    """Per-epoch learning rates of one training run.

    Parameters
    ----------
    name : str
        One of :data:`SCHEDULES`.
    eta0 : float
        Initial learning rate.
    max_iter : int
        Planned number of epochs (``cosine`` decays over it).
    power_t : float, default=0.5
        Exponent of ``invscaling``.
    alpha : float, default=1e-4
        Regularisation strength (``optimal``).
    optimal_t0 : float, default=1.0
        Offset of ``optimal`` (the estimator computes scikit-learn's heuristic).
    step_size : int, default=10
        Epochs between decays of ``step``.
    gamma : float, default=0.1
        Decay factor of ``step``.
    eta_min : float, default=0.0
        Final rate of ``cosine``.
    per_update : bool, default=True
        Whether ``invscaling`` decays at every update or once per epoch by the
        number of samples seen.
    fresh_epoch : int or None, default=None
        With ``per_update=False``: the epoch at which a new optimizer starts
        and ``invscaling`` uses ``eta0`` itself (scikit-learn's MLP resets the
        rate with its optimizer; ``partial_fit`` keeps both).
    """

    def __init__(self, name: str, eta0: float, max_iter: int, *, power_t: float = 0.5, alpha: float = 1e-4,
                 optimal_t0: float = 1.0, step_size: int = 10, gamma: float = 0.1,
                 eta_min: float = 0.0, per_update: bool = True, fresh_epoch: int | None = None) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"learning_rate must be one of {SCHEDULES}, got {name!r}.")
        self.name = name
        self.eta = float(eta0)
        self.eta0 = float(eta0)
        self.max_iter = max(1, int(max_iter))
        self.power_t = float(power_t)
        self.alpha = float(alpha)
        self.optimal_t0 = float(optimal_t0)
        self.step_size = max(1, int(step_size))
        self.gamma = float(gamma)
        self.eta_min = float(eta_min)
        self.per_update = bool(per_update)
        self.fresh_epoch = fresh_epoch

    @property
    def lr_kind(self) -> int:
        """How the compiled loop varies the rate within an epoch."""
        if self.name == "invscaling" and not self.per_update:
            return PER_EPOCH
        return {"invscaling": INVSCALING, "optimal": OPTIMAL}.get(self.name, PER_EPOCH)

    def epoch_lr(self, epoch: int, samples_seen: int = 0) -> float:
        """Base learning rate of epoch ``epoch`` (0-based) after ``samples_seen`` training samples."""
        if self.name == "invscaling" and not self.per_update:
            if epoch == self.fresh_epoch:
                return self.eta0
            try:
                return self.eta0 / (samples_seen + 1) ** self.power_t
            except OverflowError:  # (samples_seen + 1) ** power_t beyond float's range: the rate is 0
                return 0.0
        if self.name == "step":
            return self.eta0 * self.gamma ** (epoch // self.step_size)
        if self.name == "cosine":
            progress = min(epoch, self.max_iter) / self.max_iter
            return self.eta_min + (self.eta0 - self.eta_min) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.eta

    def on_plateau(self) -> bool:
        """The loss stopped improving: ``adaptive`` divides its rate by 5 and returns True.

        Every other schedule returns False (training then stops), as does
        ``adaptive`` once its rate has fallen below ``1e-6``.
        """
        if self.name != "adaptive" or self.eta <= 1e-6:
            return False
        self.eta /= 5.0
        return True
