"""The contract between the engine and the backends: what a trainer offers, what an epoch reports.

:mod:`fastgd.engine` drives any object that follows :class:`Trainer`; each
backend (:mod:`~fastgd.backends.cpu`, :mod:`~fastgd.backends.cpu_mlp`,
:mod:`~fastgd.backends.cuda`) implements it for a model family.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np


class EpochResult(NamedTuple):
    """What one compiled epoch reports back to the engine."""

    #: Mean training loss over the epoch's samples, penalty included; NaN if training diverged.
    loss: float
    #: Mean gradient norm of each layer (one value for linear models) over the epoch's updates.
    gradient_norms: np.ndarray
    #: Number of optimizer updates made in the epoch.
    n_updates: int


class Trainer(Protocol):
    """What the engine needs from a model family on a backend."""

    n_samples: int

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """Train one epoch visiting samples in ``order`` with base learning rate ``lr``."""

    def outputs_finite(self) -> bool:
        """Whether the model's outputs on a few training samples are finite.

        The epoch's loss is met before each update; this check after the last
        one catches parameters that stayed finite but make every prediction
        overflow (a huge learning rate on its last step).
        """

    def snapshot(self, reuse: Any = None) -> Any:
        """A copy of the parameters and optimizer state.

        ``reuse`` is an older snapshot that nothing needs any more: the copy
        may be written into it (the engine refreshes its fallback copy every
        epoch; for a wide model a fresh allocation costs as much as the copy).
        """

    def restore(self, snapshot: Any) -> None:
        """Put back a copy made by :meth:`snapshot`."""

    # A trainer may also define ``make_orders(random_state)`` returning an object with the methods
    # ``next()`` and ``prepare_next()`` of :class:`EpochOrders`: the CUDA trainers shuffle on the device.
