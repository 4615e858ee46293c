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

:meth:`Optimizer.init` and :meth:`Optimizer.step` also accept CUDA device
arrays (numba device arrays, or any object with ``__cuda_array_interface__``
such as CuPy arrays and PyTorch CUDA tensors): the state then lives on the
device and the fused CUDA kernel of the same rule runs there. This package
imports no CUDA code: :mod:`fastgd.cuda.optim` registers that device path
(:func:`register_device_path`) when it is imported, and ``fastgd/__init__.py``
names the loader that imports it when the first device array arrives
(:func:`set_device_path_loader`), so numba.cuda is loaded only then.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._config import PARALLEL_MIN_SIZE

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device_array(x: Any) -> bool:
    """Whether ``x`` is a CUDA device array (numba's, the simulator's, or any ``__cuda_array_interface__``).

    Decided without importing numba.cuda.
    """
    if isinstance(x, np.ndarray):
        return False
    return bool(getattr(x, "__cuda_ndarray__", False)) or hasattr(x, "__cuda_array_interface__")


class DevicePath(NamedTuple):
    """How :class:`Optimizer` works on CUDA device arrays; :mod:`fastgd.cuda.optim` provides one.

    Attributes
    ----------
    init_state : callable
        ``init_state(optimizer, params) -> OptimizerState``: state rows on the
        device, filled with ``optimizer.initial_slot_value()``.
    step : callable
        ``step(optimizer, params, grads, state, *, lr, grad_scale, clip_value,
        clip_norm) -> None``: :meth:`Optimizer.step` on the device.
    state_belongs : callable
        ``state_belongs(slots, n_slots, params) -> bool``: whether ``slots`` are
        device state rows of ``params``.
    """

    init_state: Callable[..., OptimizerState]
    step: Callable[..., None]
    state_belongs: Callable[[Any, int, Any], bool]


_device_path: DevicePath | None = None
_device_path_loader: Callable[[], None] | None = None


def register_device_path(path: DevicePath) -> None:
    """Make ``path`` the way optimizers handle CUDA device arrays (called by :mod:`fastgd.cuda.optim`)."""
    global _device_path
    _device_path = path


def set_device_path_loader(loader: Callable[[], None] | None) -> None:
    """Name the function that registers a device path on first need (``fastgd/__init__.py`` names one)."""
    global _device_path_loader
    _device_path_loader = loader


def device_path() -> DevicePath:
    """The registered :class:`DevicePath`, loading it on first use.

    Raises
    ------
    RuntimeError
        No device path is registered and none could be loaded.
    """
    if _device_path is None and _device_path_loader is not None:
        _device_path_loader()
    if _device_path is None:
        raise RuntimeError("CUDA device arrays need fastgd's CUDA optimizer kernels: import fastgd.cuda.optim "
                           "(pip install \"fastgd[cuda]\") before passing device arrays to an optimizer.")
    return _device_path


@dataclass(frozen=True)
class StateMaker:
    """Which optimizer made an :class:`OptimizerState`: recorded by :meth:`Optimizer.init`.

    Attributes
    ----------
    optimizer : str
        The optimizer's class name, e.g. ``"Adam"``.
    hyperparameters : tuple of (str, object) pairs
        Its constructor arguments, as :meth:`Optimizer.get_params` gives them.
    rows : tuple of str
        What each state row holds (:meth:`Optimizer.slot_names`), e.g. ``("exp_avg", "exp_avg_sq")``.
    """

    optimizer: str
    hyperparameters: tuple[tuple[str, Any], ...]
    rows: tuple[str, ...]

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters)
        rows = ", ".join(self.rows) if self.rows else "none"
        return f"{self.optimizer}({args}) (state rows: {rows})"


@dataclass
class OptimizerState:
    """The mutable state of one optimizer on one parameter vector.

    Attributes
    ----------
    slots : ndarray or device array of shape (n_slots, n_params)
        The optimizer's moment buffers (momentum, squared averages, ...), in the
        dtype of the parameters, on the device when the parameters are. The
        meaning of each row is documented by the optimizer.
    step : int
        Number of updates applied so far.
    made_by : StateMaker or None
        The optimizer (class, hyperparameters, meaning of the rows) whose
        :meth:`Optimizer.init` made the state. :meth:`Optimizer.step` refuses a
        state made by another optimizer class, or by a configuration of the
        same class whose rows mean other things (RMSprop with momentum vs
        centered RMSprop); hyperparameters that leave the rows' meaning alone
        (``lr``, ``betas``, ``weight_decay``, ...) may differ, as when a
        training run is continued with a changed learning rate. ``None`` (a
        state built directly, or unpickled from before this field existed)
        means "maker unknown" and is accepted.
    """

    slots: Any
    step: int = 0
    made_by: StateMaker | None = None
    #: Device scratch of the clip-by-norm of device steps (squared norm, coefficient); made on first use.
    _device_scratch: Any = field(default=None, repr=False, compare=False)


def _bound(value: float) -> str:
    """A bound of an interval for an error message: ``0``, ``1``, ``1e-08``, ``inf``."""
    return f"{value:g}"


def check_real(name: str, value: Any, *, low: float = 0.0, high: float = math.inf,
               low_open: bool = False, high_open: bool = False, allow_inf: bool = False) -> float:
    """Validate that ``value`` is a finite real number within bounds and return it as float.

    The one check of every optimizer hyperparameter (and of :meth:`Optimizer.step`'s options).

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    value : object
        The value to check.
    low, high : float
        Bounds of the admissible interval (``-inf``/``inf``: unbounded on that side).
    low_open, high_open : bool
        Whether the bound itself is excluded.
    allow_inf : bool, default=False
        Accept ``+inf`` and ``-inf`` where the bounds admit them (``clip_value=inf``: no clipping).
        Otherwise only finite values pass: an infinite learning rate or decay turns the
        parameters into ``-inf`` or NaN at the first step.

    Returns
    -------
    float
        ``value`` as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN, infinite (unless ``allow_inf``), or outside the interval; the
        message names the parameter and the allowed range.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    infinite = math.isinf(value) and not allow_inf
    if math.isnan(value) or infinite or too_low or too_high:
        left = "(" if low_open or (math.isinf(low) and not allow_inf) else "["
        right = ")" if high_open or (math.isinf(high) and not allow_inf) else "]"
        kind = "a real number" if allow_inf else "a finite real number"
        raise ValueError(f"{name} must be {kind} in {left}{_bound(low)}, {_bound(high)}{right}, got {value!r}.")
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

    Subclasses declare their hyperparameters in ``__init__`` (validated there
    with :func:`check_real`: finite, within their range), what each state row
    holds (:meth:`slot_names`, which gives :meth:`n_slots`), how the
    hyperparameters are packed for the kernel (:meth:`hyperparameters`) and the
    kernel itself (``update_kernel``). Registering the class in
    :mod:`fastgd.optim._registry` makes it available to the estimators and to
    the test-suite.
    """

    #: Name used by the estimators' ``solver`` parameter.
    name: ClassVar[str]
    #: The compiled update kernel (see the module docstring for its signature).
    update_kernel: ClassVar[Any]

    lr: float

    def slot_names(self) -> tuple[str, ...]:
        """What each state row holds, in row order (PyTorch's state names where it has them)."""
        raise NotImplementedError

    def n_slots(self) -> int:
        """Number of state rows this configuration needs: ``len(self.slot_names())``."""
        return len(self.slot_names())

    def state_maker(self) -> StateMaker:
        """The record of this optimizer that :meth:`init` stores in ``state.made_by``."""
        return StateMaker(type(self).__name__, tuple(self.get_params().items()), tuple(self.slot_names()))

    def hyperparameters(self) -> np.ndarray:
        """The hyperparameters as the float64 vector the kernel reads."""
        raise NotImplementedError

    def initial_slot_value(self) -> float:
        """Value the state rows start from (zero except for Adagrad)."""
        return 0.0

    def zero_gradient_is_identity(self) -> bool:
        """Whether a step on a zero gradient leaves a coordinate's parameter and state rows as they were.

        Then a step that updates only the coordinates where a sparse gradient
        is nonzero is the exact rule (SGD without momentum or weight decay,
        Adagrad without weight decay); moments that decay (momentum, Adam,
        RMSprop) or weight decay move every coordinate at every step.
        """
        return False

    def init(self, params: Any) -> OptimizerState:
        """Create the optimizer state for ``params``.

        Parameters
        ----------
        params : ndarray or device array of shape (n_params,)
            1-D C-contiguous float32 or float64 parameters: a NumPy array, or a
            CUDA device array (numba device array, CuPy array, PyTorch CUDA
            tensor: anything with ``__cuda_array_interface__``).

        Returns
        -------
        OptimizerState
            Moments in the dtype of ``params`` (zero, or the optimizer's
            :meth:`initial_slot_value`), on the device when ``params`` is a
            device array, a step count of 0, and ``made_by``: this optimizer
            (:meth:`state_maker`), which :meth:`step` checks.

        Raises
        ------
        TypeError
            ``params`` is not an array, or not float32/float64.
        ValueError
            ``params`` is not 1-D, not C-contiguous, or read-only.
        """
        if is_device_array(params):
            return device_path().init_state(self, params)
        params = check_params(params)
        shape = (self.n_slots(), params.size)
        value = self.initial_slot_value()
        # np.zeros maps fresh zero pages, which cost nothing until written: the steps of a wide sparse model
        # write few of them, where np.full writes them all (6 ms for Adagrad's state of 2**22 weights)
        slots = np.zeros(shape, dtype=params.dtype) if value == 0 else np.full(shape, value, dtype=params.dtype)
        return OptimizerState(slots=slots, made_by=self.state_maker())

    def step(self, params: Any, grads: Any, state: OptimizerState, *,
             lr: float | None = None, grad_scale: float = 1.0,
             clip_value: float | None = None, clip_norm: float | None = None) -> None:
        """Apply one update to ``params`` and ``state``, in place.

        With device arrays the fused CUDA kernel runs asynchronously on the
        default stream (the registered :class:`DevicePath`, from
        :mod:`fastgd.cuda.optim`); ``clip_norm`` is then computed on the device
        too, without a host synchronisation.

        Parameters
        ----------
        params : ndarray or device array of shape (n_params,)
            1-D C-contiguous float32 or float64 parameters, updated in place:
            a NumPy array, or a CUDA device array (numba device array, CuPy
            array, PyTorch CUDA tensor: anything with ``__cuda_array_interface__``).
        grads : ndarray or device array of shape (n_params,)
            Gradient of the objective at ``params``, same dtype and the same
            kind of array (host or device); not modified.
        state : OptimizerState
            State from this optimizer's :meth:`init` for this parameter vector
            (on the device for device parameters). A state made by another
            optimizer class, or by a configuration whose state rows mean other
            things, is refused (see :attr:`OptimizerState.made_by`).
        lr : float, optional
            Learning rate for this step, finite and >= 0; defaults to the
            optimizer's ``lr`` (pass a scheduled value here).
        grad_scale : float, default=1.0
            Factor applied to ``grads`` before anything else; finite.
        clip_value : float, optional
            Clip each scaled gradient component to ``[-clip_value, clip_value]``
            (> 0; ``inf`` clips nothing).
        clip_norm : float, optional
            Rescale the gradient so that its global L2 norm is at most
            ``clip_norm`` (``torch.nn.utils.clip_grad_norm_``'s rule, applied
            before ``clip_value``; > 0, ``inf`` clips nothing).

        Raises
        ------
        TypeError
            Arrays of the wrong type or dtype, host and device arrays mixed, a
            state that is not an :class:`OptimizerState`.
        ValueError
            Shapes that do not match, a state made for other parameters or by
            another optimizer, invalid step options.
        """
        from ._registry import optimizer_step  # the registry imports every optimizer

        on_device = is_device_array(params)
        if on_device != is_device_array(grads):
            where = ("params is a device array and grads is not" if on_device
                     else "grads is a device array and params is not")
            raise TypeError(f"params and grads must both be NumPy arrays or both CUDA device arrays: {where}.")
        if on_device:
            device_path().step(self, params, grads, state, lr=lr, grad_scale=grad_scale, clip_value=clip_value,
                               clip_norm=clip_norm)
            return
        params = check_params(params)
        grads = check_params(grads, "grads")
        lr, grad_scale, clip, clip_norm = self.check_step_options(params, grads, state, lr, grad_scale, clip_value,
                                                           clip_norm)
        if clip_norm is not None:
            norm = abs(grad_scale) * float(np.linalg.norm(grads))
            grad_scale *= clip_coefficient(norm, clip_norm)
        state.step += 1
        optimizer_step(self.kernel_id, params, grads, state.slots, self.hyperparameters(), state.step,
                   lr, grad_scale, clip, params.size >= PARALLEL_MIN_SIZE)

    def check_step_options(self, params: Any, grads: Any, state: OptimizerState, lr: float | None,
                           grad_scale: float, clip_value: float | None,
                           clip_norm: float | None) -> tuple[float, float, float, float | None]:
        """Validate :meth:`step`'s arguments (host or device arrays alike).

        Parameters
        ----------
        params, grads, state, lr, grad_scale, clip_value, clip_norm
            As for :meth:`step`; ``params`` and ``grads`` already checked to be
            1-D float vectors of their kind (host or device).

        Returns
        -------
        tuple of (float, float, float, float or None)
            ``(lr, grad_scale, clip, clip_norm)``: ``lr`` defaulted to the
            optimizer's, ``clip`` the value bound (``inf``: none), ``clip_norm``
            None when not clipping by norm.
        """
        if grads.shape != params.shape or grads.dtype != params.dtype:
            raise ValueError(f"grads must match params in shape and dtype: got {grads.shape} {grads.dtype}, "
                             f"expected {params.shape} {params.dtype}.")
        check_state(state, self.n_slots(), params, optimizer=self)
        lr = self.lr if lr is None else check_real("lr", lr)
        grad_scale = check_real("grad_scale", grad_scale, low=-math.inf)
        clip = math.inf if clip_value is None else check_real("clip_value", clip_value, low_open=True,
                                                                  allow_inf=True)
        if clip_norm is not None:
            clip_norm = check_real("clip_norm", clip_norm, low_open=True, allow_inf=True)
        return lr, grad_scale, clip, clip_norm

    @property
    def kernel_id(self) -> int:
        """Index of this optimizer's kernel in the compiled dispatch (:data:`fastgd.optim._registry.KERNELS`).

        Raises
        ------
        NotImplementedError
            The class's ``update_kernel`` is not registered: the compiled
            dispatch would not know it.
        """
        from ._registry import KERNELS

        kernel = type(self).update_kernel
        if kernel not in KERNELS:
            name = getattr(kernel, "__name__", repr(kernel))
            raise NotImplementedError(f"{type(self).__name__}.update_kernel ({name}) is not registered in "
                                      "fastgd.optim._registry.KERNELS, so no compiled epoch can run it: add it to "
                                      "KERNELS and its branch to update_range.")
        return KERNELS.index(kernel)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters by name, as given to the constructor."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def check_state(state: Any, n_slots: int, params: Any, *, optimizer: Optimizer | None = None) -> OptimizerState:
    """Check that ``state`` is an :class:`OptimizerState` made by ``init`` for ``params`` (``n_slots`` rows).

    For device ``params`` the state rows must be a device array too. With
    ``optimizer`` (the one about to step), a state whose ``made_by`` names
    another optimizer class or other state rows is refused; ``made_by=None``
    (maker unknown) is accepted.
    """
    if not isinstance(state, OptimizerState):
        raise TypeError(f"state must be an OptimizerState from optimizer.init(params), got {type(state).__name__}.")
    made_by = getattr(state, "made_by", None)
    if optimizer is not None and made_by is not None and (
            not isinstance(made_by, StateMaker) or made_by.optimizer != type(optimizer).__name__
            or made_by.rows != tuple(optimizer.slot_names())):
        raise ValueError(f"state does not belong to this optimizer: it was made by {made_by}, but this optimizer "
                         f"is {optimizer.state_maker()}; stepping would read the other optimizer's rows as this "
                         "one's. Make a state for this optimizer with its init: state = opt.init(params).")
    slots = state.slots
    if isinstance(params, np.ndarray):
        belongs = (isinstance(slots, np.ndarray) and slots.shape == (n_slots, params.size)
                   and slots.dtype == params.dtype and slots.flags.c_contiguous and slots.flags.writeable)
    else:
        belongs = device_path().state_belongs(slots, n_slots, params)
    if not belongs:
        where = "" if is_device_array(params) == is_device_array(slots) else (
            " (the state is on the host and the params on the device, or the reverse)")
        raise ValueError(f"state does not belong to these params{where}: create it with optimizer.init(params).")
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
