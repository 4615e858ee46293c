"""The CUDA backend: fastgd's kernels written with numba.cuda.

Nothing here is imported by ``import fastgd``: numba.cuda is loaded the first
time a model or an optimizer is asked to run on a GPU, so that the CPU path
keeps its import time and needs no CUDA package.

Install with ``pip install "fastgd[cuda]"`` (the numba-cuda package). Without a
GPU, ``NUMBA_ENABLE_CUDASIM=1`` runs every kernel in numba's CUDA simulator
(slowly, in Python): that is how the test-suite checks this backend on
machines without a GPU.
"""

from __future__ import annotations

import importlib
import os

DEVICES = ("cpu", "cuda", "auto")

#: A module that numba-cuda imports when it compiles its first kernel. numba-cuda 0.30.4 (the last release, in
#: maintenance) fails there under NumPy 2.5, which removed ``np.row_stack``: seen on an H200 as an AttributeError
#: at the first kernel launch of a fit. Importing it up front turns that into a reason that says what to do.
COMPILER_MODULE = "numba.cuda.np.arrayobj"


def simulated() -> bool:
    """Whether numba's CUDA simulator stands in for a GPU (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def unavailable_reason() -> str | None:
    """Why the CUDA backend cannot run here, or None when it can."""
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships numba.cuda or numba-cuda provides it
        return f"numba.cuda cannot be imported ({exc}); install the CUDA extra: pip install \"fastgd[cuda]\""
    try:
        available = cuda.is_available()
    except Exception as exc:  # a broken driver raises many kinds of errors
        return f"the CUDA driver reports an error ({exc})"
    if available:
        return _compiler_reason()
    return ("no usable CUDA GPU was found (numba.cuda.is_available() is False): check that the machine has an "
            "NVIDIA GPU, that its driver is installed (nvidia-smi), and that numba-cuda is installed "
            "(pip install \"fastgd[cuda]\")")


def _import_compiler() -> None:
    importlib.import_module(COMPILER_MODULE)


def _compiler_reason() -> str | None:
    """Why numba-cuda cannot compile kernels with the installed NumPy, or None when it can."""
    try:
        _import_compiler()
    except (AttributeError, ImportError) as exc:
        import numpy as np

        return (f"numba-cuda cannot compile kernels with NumPy {np.__version__} ({type(exc).__name__}: {exc}); "
                "numba-cuda 0.30 and earlier predate NumPy 2.5: install an older NumPy (pip install \"numpy<2.5\")")
    return None


def is_available() -> bool:
    """Whether models and optimizers can run on a CUDA GPU (or on numba's simulator)."""
    return unavailable_reason() is None


def resolve_device(device: str, *, verbose: int | bool = 0) -> str:
    """The backend a fit runs on: ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
        What the user asked for. ``"auto"`` is CUDA when a GPU is usable,
        otherwise the CPU.
    verbose : int or bool, default=0
        With ``"auto"``, say which backend was chosen and why.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    RuntimeError
        ``device="cuda"`` on a machine where CUDA cannot run; the message says
        why and how to fix it.
    """
    if device == "cpu":
        return "cpu"
    reason = unavailable_reason()
    if device == "cuda":
        if reason is not None:
            raise RuntimeError(f"device='cuda' was requested, but {reason}. Use device='cpu' (or 'auto', which "
                               "falls back to the CPU).")
        return "cuda"
    if device != "auto":
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}.")
    if reason is not None:
        if verbose:
            print(f"fastgd: device='auto' runs on the CPU: {reason}.")
        return "cpu"
    if verbose:
        print("fastgd: device='auto' runs on the CUDA GPU" + (" (numba's simulator)." if simulated() else "."))
    return "cuda"
