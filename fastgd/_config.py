"""The one place for Numba options.

Every compiled kernel in fastgd is built through :func:`jit`, so caching, the
error model and the thread rules are decided here and nowhere else.

* ``cache=True``: kernels compile once per machine and load from Numba's cache
  afterwards (milliseconds instead of seconds).
* ``error_model="numpy"``: division by zero gives ``inf``/``nan`` as in NumPy
  instead of raising; the Python error checks otherwise stop LLVM from
  vectorising the fused loops.
* ``fastmath`` stays off: results must match the documented update rules to
  round-off, and reassociation would make them depend on vector width.
* ``nogil=True``: estimators fitted in several Python threads run concurrently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "fastmath": False,
}

#: Parameter vectors with at least this many elements are updated with Numba's
#: threads; below it a serial loop is faster than waking the thread pool.
PARALLEL_MIN_SIZE = 1 << 17

#: Elements per chunk of a threaded update: large enough to amortise the
#: scheduling, small enough to balance the threads.
PARALLEL_CHUNK = 1 << 14


def jit(fn: Callable | None = None, *, parallel: bool = False, **options: Any):
    """Compile ``fn`` with fastgd's Numba options.

    Parameters
    ----------
    fn : callable, optional
        The function to compile. When omitted, a decorator is returned.
    parallel : bool, default=False
        Compile with ``parallel=True`` so that ``numba.prange`` loops run on
        Numba's threads.
    **options
        Further options passed to :func:`numba.njit`, overriding the defaults.

    Returns
    -------
    dispatcher or decorator
        A Numba dispatcher; nothing is compiled until the first call.
    """
    opts = {**JIT_OPTIONS, "parallel": parallel, **options}
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)
