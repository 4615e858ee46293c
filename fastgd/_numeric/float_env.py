"""Subnormal numbers flushed to zero while fastgd trains (the x86 FTZ and DAZ modes).

Training drives some values towards zero and keeps them there: under L2 the
weights of a ReLU unit that no longer fires decay, their gradients with them,
and Adam's second moment squares those gradients. Products fall below the
smallest normal number (1.2e-38 in float32, 2.2e-308 in float64), and x86 CPUs
take a slow path for every operation that reads or produces such a subnormal
number. Measured with ``benchmarks/subnormal_epochs.py`` (100-256-128-10 trained
one sample at a time with Adam, float32, 5,000 samples): 24.4-27.0 k samples/s
per epoch with the modes below set, 17-19 k without them from the second epoch
on, when 15-25 % of the weights had fallen below 1e-19.

While fastgd trains, the thread that runs an epoch sets two bits of its MXCSR
control register (:func:`subnormals_flushed`): flush-to-zero (FTZ, a subnormal
result becomes 0) and denormals-are-zero (DAZ, a subnormal input reads as 0).
fastgd's parallel kernels have Numba's threads adopt the mode of the thread
that launched them (:func:`adopt_float_control`). Each thread restores the
control word it had when its part is done, so code that runs after a fit, in
the same thread or on Numba's threads, sees the floating-point environment it
had. Normal numbers are computed as before; values below the smallest normal
number become zero, as the optimizer kernels already make every value they
store (:func:`fastgd._numeric.cast.flush_subnormal`). Outside the estimators'
epochs, :meth:`fastgd.optim.Optimizer.step` computes in its caller's mode.

Elsewhere than on x86 the functions do nothing (ARM64 has a flush-to-zero bit
of its own, in FPCR; fastgd does not set it), nor under ``NUMBA_DISABLE_JIT``
(coverage runs), where no compiled code runs.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit

#: MXCSR bits: flush-to-zero (bit 15) and denormals-are-zero (bit 6).
FLUSH_TO_ZERO = 0x8000
DENORMALS_ARE_ZERO = 0x0040

#: Whether this CPU has an MXCSR to set (x86 and x86-64).
HAS_MXCSR = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}


def _mxcsr_call(builder, name: str, slot) -> None:  # pragma: no cover - code generation, compiled only
    """Call ``llvm.x86.sse.<name>`` (``stmxcsr`` or ``ldmxcsr``) on the 32-bit stack slot ``slot``."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), f"llvm.x86.sse.{name}")
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def _read_mxcsr(typingctx):  # pragma: no cover - compiled only
    """The calling thread's MXCSR control and status word."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        _mxcsr_call(builder, "stmxcsr", slot)
        return builder.load(slot)
    return types.uint32(), codegen


@intrinsic
def _write_mxcsr(typingctx, word):  # pragma: no cover - compiled only
    """Load ``word`` into the calling thread's MXCSR."""
    if not isinstance(word, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(context.cast(builder, args[0], signature.args[0], types.uint32), slot)
        _mxcsr_call(builder, "ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(word), codegen


_MODE_BITS = np.uint32(FLUSH_TO_ZERO | DENORMALS_ARE_ZERO)

if HAS_MXCSR and not numba.config.DISABLE_JIT:  # pragma: no cover - compiled only (coverage runs without the JIT)
    @jit(inline="always", cache=False)
    def float_control():
        """The calling thread's floating-point control word (to give :func:`adopt_float_control`)."""
        return _read_mxcsr()

    @jit(inline="always", cache=False)
    def adopt_float_control(word):
        """Set the calling thread's FTZ and DAZ bits as they are in ``word``; returns its previous control word.

        A parallel kernel reads :func:`float_control` before its ``prange`` and
        each iteration adopts it, so Numba's threads compute as the thread that
        launched them: with subnormals flushed inside a fastgd epoch, with them
        kept in a threaded :meth:`fastgd.optim.Optimizer.step` called from user
        code. Each iteration ends with :func:`restore_float_control`.
        """
        previous = _read_mxcsr()
        _write_mxcsr((previous & ~_MODE_BITS) | (np.uint32(word) & _MODE_BITS))
        return previous

    @jit(inline="always", cache=False)
    def restore_float_control(previous):
        """Give the calling thread back the control word ``previous``."""
        _write_mxcsr(previous)
else:
    @jit(inline="always", cache=False)
    def float_control():
        """0: no control word on this CPU (or without the JIT)."""
        return np.uint32(0)

    @jit(inline="always", cache=False)
    def adopt_float_control(word):
        """Nothing to set on this CPU (or without the JIT); returns 0."""
        return np.uint32(0)

    @jit(inline="always", cache=False)
    def restore_float_control(previous):
        """Nothing to restore on this CPU (or without the JIT)."""
        return None


@jit()
def _flush_subnormals() -> int:
    """Set FTZ and DAZ on the calling thread; returns its previous control word (0 where there is none)."""
    return adopt_float_control(_MODE_BITS)


@jit()
def _restore(previous: int) -> None:
    """Give the calling thread back the control word ``previous``."""
    restore_float_control(previous)


@jit()
def _subnormals_are_flushed() -> bool:
    """Whether FTZ and DAZ are both set on the calling thread (False where there is no control word)."""
    return float_control() & _MODE_BITS == _MODE_BITS


@jit(parallel=True)
def _touch_threads(out):
    """Write ``out`` on Numba's threads (its only purpose: have them created)."""
    for i in numba.prange(out.size):
        out[i] = i


_threads_started = threading.local()


def _start_numba_threads() -> None:
    """Have Numba's threads exist before the calling thread first flushes subnormals.

    A new thread inherits the control word of the thread that creates it. The
    ``omp`` and ``tbb`` threading layers create their threads at the first
    parallel region (OpenMP: one team per calling thread); were that region in
    a fastgd epoch, they would be born with FTZ and DAZ set and keep them after
    the fit. So, once per calling thread, a parallel region with every thread
    of Numba's runs first, outside the flushed mode. ``workqueue`` starts its
    threads when Numba launches them.
    """
    if getattr(_threads_started, "done", False):
        return
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()
    if numba.threading_layer() != "workqueue":
        before = numba.get_num_threads()
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        try:
            _touch_threads(np.empty(64 * numba.config.NUMBA_NUM_THREADS))
        finally:
            numba.set_num_threads(before)
    _threads_started.done = True


@contextmanager
def subnormals_flushed() -> Iterator[None]:
    """Run the block with subnormal numbers flushed to zero on the calling thread, then restore its control word.

    The compiled code that the block calls from this thread computes with
    FTZ and DAZ set (see the module docstring), and so do Numba's threads
    that fastgd's parallel kernels launch from it (:func:`adopt_float_control`).
    Costs about a microsecond.
    """
    if HAS_MXCSR:
        _start_numba_threads()
    previous = _flush_subnormals()
    try:
        yield
    finally:
        _restore(previous)
