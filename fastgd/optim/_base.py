"""What every optimizer shares: hyperparameter checks, state layout, the step call.

An optimizer is a small pair, as in optax: :meth:`Optimizer.init` makes the
state for a parameter vector and :meth:`Optimizer.step` applies one fused
update. The arithmetic lives in one ``@jit`` kernel per optimizer file with the
signature::

    <name>_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)

which updates ``params[lo:hi]`` and the matching columns of every state row in
one pass over memory. ``grads`` are first multiplied by ``grad_scale`` (the
batch mean and clip-by-norm factor folded together) and clipped to
``[-clip_value, clip_value]``; then the optimizer's own rule is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from .._config import PARALLEL_MIN_SIZE

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class OptimizerState:
    """The mutable state of one optimizer on one parameter vector.

    Attributes
    ----------
    slots : ndarray of shape (n_slots, n_params)
        The optimizer's moment buffers (momentum, squared averages, ...), in the
        dtype of the parameters. The meaning of each row is documented by the
        optimizer.
    step : int
        Number of updates applied so far.
    """

    slots: np.ndarray
    step: int = 0


def check_real(name: str, value: Any, *, low: float = 0.0, high: float = math.inf,
               low_open: bool = False, high_open: bool = False) -> float:
    """Validate that ``value`` is a real number within bounds and return it as float.

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    value : object
        The value to check.
    low, high : float
        Bounds of the admissible interval.
    low_open, high_open : bool
        Whether the bound itself is excluded.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN or outside the interval.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}.")
    return value


def check_betas(betas: Any) -> tuple[float, float]:
    """Validate Adam-style ``betas``: a pair of reals, each in [0, 1)."""
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}.") from None
    return (check_real("betas[0]", beta1, high=1.0, high_open=True),
            check_real("betas[1]", beta2, high=1.0, high_open=True))


def check_params(params: Any, name: str = "params") -> np.ndarray:
    """Check that ``params`` is a 1-D C-contiguous float32 or float64 ndarray."""
    if not isinstance(params, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(params).__name__}.")
    if params.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {params.dtype}; "
                        "convert with .astype(np.float32) or .astype(np.float64).")
    if params.ndim != 1 or not params.flags.c_contiguous:
        raise ValueError(f"{name} must be a 1-D C-contiguous array, got shape {params.shape} "
                         f"(C-contiguous: {params.flags.c_contiguous}); use np.ascontiguousarray(x.ravel()).")
    if not params.flags.writeable:
        raise ValueError(f"{name} must be writeable: the optimizer updates it in place.")
    return params


class Optimizer:
    """Base class of fastgd's optimizers.

    Subclasses declare their hyperparameters in ``__init__`` (validated there),
    how many state rows they need (:meth:`n_slots`), how the hyperparameters
    are packed for the kernel (:meth:`hyperparameters`) and the kernel itself
    (``update_kernel``). Registering the class in :mod:`fastgd.optim._registry`
    makes it available to the estimators and to the test-suite.
    """

    #: Name used by the estimators' ``solver`` parameter.
    name: ClassVar[str]
    #: The compiled update kernel (see the module docstring for its signature).
    update_kernel: ClassVar[Any]

    lr: float

    def n_slots(self) -> int:
        """Number of state rows this configuration needs."""
        raise NotImplementedError

    def hyperparameters(self) -> np.ndarray:
        """The hyperparameters as the float64 vector the kernel reads."""
        raise NotImplementedError

    def initial_slot_value(self) -> float:
        """Value the state rows start from (zero except for Adagrad)."""
        return 0.0

    def init(self, params: np.ndarray) -> OptimizerState:
        """Create the optimizer state for ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            1-D C-contiguous float32 or float64 parameters.

        Returns
        -------
        OptimizerState
            Zeroed moments in the dtype of ``params`` and a step count of 0.
        """
        params = check_params(params)
        slots = np.full((self.n_slots(), params.size), self.initial_slot_value(), dtype=params.dtype)
        return OptimizerState(slots=slots)

    def step(self, params: np.ndarray, grads: np.ndarray, state: OptimizerState, *,
             lr: float | None = None, grad_scale: float = 1.0,
             clip_value: float | None = None, clip_norm: float | None = None) -> None:
        """Apply one update to ``params`` and ``state``, in place.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            1-D C-contiguous float32 or float64 parameters, updated in place.
        grads : ndarray of shape (n_params,)
            Gradient of the objective at ``params``, same dtype; not modified.
        state : OptimizerState
            State from :meth:`init` for this parameter vector.
        lr : float, optional
            Learning rate for this step; defaults to the optimizer's ``lr``
            (pass a scheduled value here).
        grad_scale : float, default=1.0
            Factor applied to ``grads`` before anything else.
        clip_value : float, optional
            Clip each scaled gradient component to ``[-clip_value, clip_value]``.
        clip_norm : float, optional
            Rescale the gradient so that its global L2 norm is at most
            ``clip_norm`` (``torch.nn.utils.clip_grad_norm_``'s rule, applied
            before ``clip_value``).
        """
        from ._registry import fused_step  # the registry imports every optimizer

        params = check_params(params)
        grads = check_params(grads, "grads")
        if grads.shape != params.shape or grads.dtype != params.dtype:
            raise ValueError(f"grads must match params in shape and dtype: got {grads.shape} {grads.dtype}, "
                             f"expected {params.shape} {params.dtype}.")
        check_state(state, self.n_slots(), params)
        lr = self.lr if lr is None else check_real("lr", lr)
        grad_scale = check_real("grad_scale", grad_scale, low=-math.inf)
        clip = math.inf if clip_value is None else check_real("clip_value", clip_value, low_open=True)
        if clip_norm is not None:
            clip_norm = check_real("clip_norm", clip_norm, low_open=True)
            norm = abs(grad_scale) * float(np.linalg.norm(grads))
            grad_scale *= clip_coefficient(norm, clip_norm)
        state.step += 1
        fused_step(self.kernel_id, params, grads, state.slots, self.hyperparameters(), state.step,
                   lr, grad_scale, clip, params.size >= PARALLEL_MIN_SIZE)

    @property
    def kernel_id(self) -> int:
        """Index of this optimizer's kernel in the compiled dispatch."""
        from ._registry import KERNELS

        return KERNELS.index(type(self).update_kernel)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters by name, as given to the constructor."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def check_state(state: Any, n_slots: int, params: np.ndarray) -> OptimizerState:
    """Check that ``state`` is an :class:`OptimizerState` made by ``init`` for ``params`` (``n_slots`` rows)."""
    if not isinstance(state, OptimizerState):
        raise TypeError(f"state must be an OptimizerState from optimizer.init(params), got {type(state).__name__}.")
    slots = state.slots
    if (not isinstance(slots, np.ndarray) or slots.shape != (n_slots, params.size) or slots.dtype != params.dtype
            or not slots.flags.c_contiguous or not slots.flags.writeable):
        raise ValueError("state does not belong to these params: create it with optimizer.init(params).")
    step = state.step
    if isinstance(step, bool) or not isinstance(step, Integral):
        raise TypeError(f"state.step must be an integer, got {step!r} of type {type(step).__name__}.")
    if not 0 <= step < np.iinfo(np.int64).max:
        raise ValueError(f"state.step must be a non-negative int64 count of updates, got {step}.")
    return state


def clip_coefficient(norm: float, clip_norm: float) -> float:
    """Factor that brings a gradient of global norm ``norm`` to at most ``clip_norm``.

    Follows ``torch.nn.utils.clip_grad_norm_``: ``min(1, clip_norm / (norm + 1e-6))``.
    A non-finite norm gives 1 so that NaN/Inf reach the non-finite guard.
    """
    if not math.isfinite(norm):
        return 1.0
    return min(1.0, clip_norm / (norm + 1e-6))
