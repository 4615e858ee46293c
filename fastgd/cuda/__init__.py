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

import os

DEVICES = ("cpu", "cuda", "auto")


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
        if cuda.is_available():
            return None
    except Exception as exc:  # a broken driver raises many kinds of errors
        return f"the CUDA driver reports an error ({exc})"
    return ("no usable CUDA GPU was found (numba.cuda.is_available() is False): check that the machine has an "
            "NVIDIA GPU, that its driver is installed (nvidia-smi), and that numba-cuda is installed "
            "(pip install \"fastgd[cuda]\")")


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
