"""The epoch loop shared by every estimator and backend.

The engine knows nothing of losses, layers or devices. It drives a
:class:`Trainer` (one per model family and backend) through epochs: it draws
the visiting order, asks the schedule for the learning rate, runs one compiled
epoch, records the history, checks convergence and early stopping, and guards
against non-finite training by restoring the last good epoch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .optim.schedules import Schedule


class NonFiniteTrainingWarning(RuntimeWarning):
    """Training produced a NaN or infinite loss and was stopped."""


class NonFiniteTrainingError(FloatingPointError):
    """Training produced a NaN or infinite loss (``on_nonfinite="raise"``)."""


class EpochResult(NamedTuple):
    """What one compiled epoch reports back to the engine."""

    #: Mean training loss over the epoch's samples, penalty included; NaN if training diverged.
    loss: float
    #: Mean gradient norm of each layer (one value for linear models) over the epoch's updates.
    gradient_norms: np.ndarray
    #: Number of optimizer updates made in the epoch.
    n_updates: int


class EpochRecord(NamedTuple):
    """The read-only record a callback receives at the end of each epoch.

    Attributes
    ----------
    epoch : int
        Epochs completed so far in this fit (1-based).
    loss : float
        Mean training loss of the epoch.
    validation_score : float or None
        Score on the validation split (``early_stopping=True``), else None.
    gradient_norms : ndarray
        Mean gradient norm of each layer over the epoch's updates.
    learning_rate : float
        Base learning rate of the epoch.
    """

    epoch: int
    loss: float
    validation_score: float | None
    gradient_norms: np.ndarray
    learning_rate: float


class Trainer(Protocol):
    """What the engine needs from a model family on a backend."""

    n_samples: int

    def run_epoch(self, order: np.ndarray, lr: float) -> EpochResult:
        """Train one epoch visiting samples in ``order`` with base learning rate ``lr``."""

    def snapshot(self) -> Any:
        """A copy of the parameters and optimizer state."""

    def restore(self, snapshot: Any) -> None:
        """Put back a copy made by :meth:`snapshot`."""


@dataclass
class LoopConfig:
    """Options of the epoch loop (the estimators' parameters of the same names)."""

    max_iter: int
    schedule: Schedule
    random_state: np.random.RandomState
    shuffle: bool = True
    tol: float | None = 1e-4
    n_iter_no_change: int = 5
    validation_score: Callable[[], float] | None = None
    verbose: int = 0
    progress: bool = False
    on_nonfinite: str = "warn"
    callbacks: Sequence[Callable[[EpochRecord], Any]] = ()
    epoch_offset: int = 0
    check_convergence: bool = True


@dataclass
class History:
    """What a run of the loop leaves behind (appended to across warm starts)."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    gradient_norms: list[np.ndarray] = field(default_factory=list)
    n_updates: int = 0
    n_samples_seen: int = 0
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    n_epochs: int = 0
    converged: bool = False
    diverged_at: int | None = None


def run_epochs(trainer: Trainer, config: LoopConfig, history: History | None = None) -> History:
    """Train ``trainer`` for up to ``config.max_iter`` epochs.

    Parameters
    ----------
    trainer : Trainer
        The model on its backend.
    config : LoopConfig
        Loop options.
    history : History, optional
        History of earlier fits to extend (warm start, ``partial_fit``).

    Returns
    -------
    History
        Losses, validation scores, gradient norms and counters; the trainer
        holds the final (or, with early stopping, the best) parameters.
    """
    history = History() if history is None else history
    bar = _progress_bar(config.max_iter) if config.progress else None
    try:
        _loop(trainer, config, history, bar)
    finally:
        if bar is not None:
            bar.close()
    return history


def _progress_bar(total: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError('progress=True needs tqdm: pip install "fastgd[progress]" (or pip install tqdm).') from None
    return tqdm(total=total, unit="epoch", desc="fastgd")


def _loop(trainer: Trainer, config: LoopConfig, history: History, bar) -> None:
    order = np.arange(trainer.n_samples, dtype=np.int64)
    no_improvement = 0
    best_snapshot = None
    last_good = trainer.snapshot()
    history.converged = False
    for epoch in range(config.max_iter):
        global_epoch = config.epoch_offset + epoch
        if config.shuffle:
            config.random_state.shuffle(order)
        lr = config.schedule.epoch_lr(global_epoch, history.n_samples_seen)
        started = time.perf_counter()
        result = trainer.run_epoch(order, lr)
        elapsed = time.perf_counter() - started
        if not math.isfinite(result.loss):
            trainer.restore(last_good)
            history.diverged_at = global_epoch + 1
            _report_nonfinite(global_epoch + 1, config.on_nonfinite)
            break
        last_good = trainer.snapshot()
        history.n_updates += result.n_updates
        history.n_samples_seen += trainer.n_samples
        history.n_epochs += 1
        history.loss_curve.append(result.loss)
        history.gradient_norms.append(result.gradient_norms)
        score = None
        if config.validation_score is not None:
            score = float(config.validation_score())
            history.validation_scores.append(score)
        if config.verbose:
            _print_epoch(global_epoch + 1, result.loss, score, lr, trainer.n_samples / max(elapsed, 1e-12))
        if bar is not None:
            bar.set_postfix(loss=f"{result.loss:.4g}", refresh=False)
            bar.update()

        improved = False
        if score is not None:
            improved = config.tol is None or score > history.best_validation_score + config.tol
            if score > history.best_validation_score:
                history.best_validation_score = score
                best_snapshot = trainer.snapshot()
        else:
            improved = config.tol is None or result.loss < history.best_loss - config.tol
        history.best_loss = min(history.best_loss, result.loss)
        no_improvement = 0 if improved else no_improvement + 1

        record = EpochRecord(global_epoch + 1, result.loss, score, result.gradient_norms.copy(), lr)
        if any(callback(record) is True for callback in config.callbacks):
            break
        if config.tol is not None and config.check_convergence and no_improvement >= config.n_iter_no_change:
            if config.schedule.on_plateau():
                no_improvement = 0
                if config.verbose:
                    print(f"Learning rate divided by 5: {config.schedule.eta:.3g}")
                continue
            history.converged = True
            if config.verbose:
                print(f"Converged: no improvement of {config.tol} for {config.n_iter_no_change} epochs.")
            break
    else:
        if config.check_convergence and config.tol is not None and config.max_iter > 0:
            warnings.warn(f"Stochastic optimizer: maximum iterations ({config.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
    if best_snapshot is not None:
        trainer.restore(best_snapshot)


def _report_nonfinite(epoch: int, on_nonfinite: str) -> None:
    message = (f"The training loss became NaN or infinite in epoch {epoch}; training stopped and the parameters "
               "were restored to the end of the last finite epoch. Cures: lower learning_rate_init, set clip_norm "
               "(gradient clipping), raise alpha (L2), or use a ReLU-family activation.")
    if on_nonfinite == "raise":
        raise NonFiniteTrainingError(message)
    warnings.warn(message, NonFiniteTrainingWarning, stacklevel=4)


def _print_epoch(epoch: int, loss: float, score: float | None, lr: float, samples_per_s: float) -> None:
    parts = [f"Epoch {epoch}", f"loss = {loss:.8f}"]
    if score is not None:
        parts.append(f"validation score = {score:.6f}")
    parts += [f"lr = {lr:.3g}", f"{samples_per_s:,.0f} samples/s"]
    print(", ".join(parts))
