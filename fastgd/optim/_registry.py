"""The one place where optimizers are registered.

Adding an optimizer: write ``fastgd/optim/<name>.py`` with its class and its
``<name>_update`` kernel, add the class to :data:`OPTIMIZERS`, its kernel to
:data:`KERNELS`, and one branch to :func:`update_range`. The test-suite reads
:data:`OPTIMIZERS`; the estimators offer the names in :data:`SOLVERS`.

Numba cannot cache a kernel that receives another compiled function as an
argument, so the engines select the update through the integer ``kernel_id``
in :func:`update_range` instead.

The update kernels and :func:`update_range` are compiled with
``inlined=True`` (:data:`fastgd._config.INLINE_OPTIONS`): LLVM inlines them
into the epoch loops, without reference counting, so a per-sample update
costs no call, no argument marshalling and no atomic reference counts (about
60 ns per update otherwise, more than the update of a 100-feature model).
Inlining happens in LLVM, after each function was compiled with its own
flags, so the optimizers keep their strict (no fast-math) arithmetic inside
fast-math epoch loops. A kernel registered without ``inlined=True`` still
works, as a call. The kernels loop over unsigned indices: Numba then emits no
negative-index wraparound, which would keep LLVM from vectorising the loop
when ``lo`` is not a constant (the threaded chunks, :meth:`Optimizer.step`).
"""

from __future__ import annotations

import numba

from .._config import INNER_OPTIONS, PARALLEL_CHUNK, jit
from .._numeric.float_env import adopt_float_control, float_control, restore_float_control
from ._base import Optimizer
from .adagrad import Adagrad, adagrad_update
from .adam import Adam, adam_update
from .adamw import AdamW
from .folded_adam import FoldedAdam, folded_adam_update
from .rmsprop import RMSprop, rmsprop_update
from .sgd import SGD, sgd_update
from .velocity_sgd import VelocitySGD, velocity_sgd_update

#: Every optimizer, by name.
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": Adagrad,
    "velocity_sgd": VelocitySGD,
    "folded_adam": FoldedAdam,
}

#: Names accepted by the estimators' ``solver`` parameter. The MLP estimators
#: run ``"sgd"`` and ``"adam"`` with scikit-learn's rules (:class:`VelocitySGD`,
#: :class:`FoldedAdam`); the linear ones with PyTorch's (:class:`SGD`, :class:`Adam`).
SOLVERS = ("sgd", "adam", "rmsprop", "adamw", "adagrad")

#: Compiled update kernels; an optimizer's ``kernel_id`` is its kernel's index.
KERNELS = (sgd_update, rmsprop_update, adam_update, adagrad_update, velocity_sgd_update, folded_adam_update)

#: ``kernel_id`` of :class:`SGD`: without momentum, per-sample linear training fuses its update
#: with the next sample's decision (:func:`fastgd.kernels.rows.sgd_step_and_decide`).
SGD_KERNEL_ID = KERNELS.index(sgd_update)


@jit(inlined=True)
def update_range(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi):
    """Run kernel number ``kernel_id`` of :data:`KERNELS` on ``params[lo:hi]``.

    The branches follow :data:`KERNELS`' order (``tests/test_optim.py`` checks each against its kernel).
    ``kernel_id`` comes from :attr:`Optimizer.kernel_id <fastgd.optim.Optimizer.kernel_id>`, which refuses
    a kernel that is not registered, so no id outside the branches reaches this compiled code.
    """
    if kernel_id == 0:
        sgd_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)
    elif kernel_id == 1:
        rmsprop_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)
    elif kernel_id == 2:
        adam_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)
    elif kernel_id == 3:
        adagrad_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)
    elif kernel_id == 4:
        velocity_sgd_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)
    elif kernel_id == 5:
        folded_adam_update(params, grads, slots, hyper, step, lr, grad_scale, clip_value, lo, hi)


@jit(parallel=True, **INNER_OPTIONS)
def fused_step(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value, threaded):
    """One optimizer step over all of ``params``: serial, or in chunks on Numba's threads.

    The update is elementwise, so the threaded and serial variants give
    bitwise-identical results whatever the number of threads. Calling this
    ``parallel=True`` function costs about 40 ns even on its serial branch:
    per-sample loops call :func:`update_range` directly when ``threaded`` is
    False.
    """
    n = params.size
    if threaded:
        n_chunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
        mode = float_control()  # Numba's threads compute in the calling thread's mode (_numeric.float_env)
        for c in numba.prange(n_chunks):
            previous = adopt_float_control(mode)
            lo = c * PARALLEL_CHUNK
            update_range(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value,
                         lo, min(n, lo + PARALLEL_CHUNK))
            restore_float_control(previous)
    else:
        update_range(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value, 0, n)


@jit()
def optimizer_step(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value, threaded):
    """:func:`fused_step` called from Python (:meth:`fastgd.optim.Optimizer.step`): the cached entry point.

    The compiled epochs call :func:`fused_step` itself, which is not cached on its own
    (:data:`fastgd._config.INNER_OPTIONS` says why).
    """
    fused_step(kernel_id, params, grads, slots, hyper, step, lr, grad_scale, clip_value, threaded)
