"""One line on stderr while Numba compiles fastgd's kernels, so that a first fit does not look like a hang.

Kernels compile on their first use on a machine (tens of seconds on two cores) and load from Numba's cache
afterwards (a fraction of a second). Within :func:`compile_notice`, the first real compile -- Numba's
``numba:compile`` event, which a load from the cache does not raise -- prints::

    fastgd: compiling the float32 MLP kernels (first use on this machine, cached afterwards)...

and the end of the block prints the time it took. Nothing is printed when everything comes from the cache.
Silence it with the environment variable ``FASTGD_COMPILE_NOTICE=0`` or :func:`set_compile_notice`;
``python -m fastgd --warm-up`` compiles every kernel ahead of time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from numba.core import event

_enabled = os.environ.get("FASTGD_COMPILE_NOTICE", "1").strip().lower() not in ("0", "false", "no", "off")
_active = threading.local()


def set_compile_notice(enabled: bool) -> bool:
    """Turn the line printed while kernels compile on or off, for this process.

    Parameters
    ----------
    enabled : bool
        Whether fastgd says on stderr when it compiles kernels (the default,
        unless the environment variable ``FASTGD_COMPILE_NOTICE`` is ``0``).

    Returns
    -------
    bool
        The previous setting.
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


class _FirstCompile(event.Listener):
    """Notes the first compile started on the thread that installed it, and says so on stderr."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.started: float | None = None
        self.what = ""

    def on_start(self, ev: event.Event) -> None:
        if self.started is not None or threading.get_ident() != self.thread:
            return
        self.started = time.perf_counter()
        self.what = _active.labels[-1]  # the innermost block says best what compiles
        print(f"fastgd: compiling the {self.what} (first use on this machine, cached afterwards)...",
              file=sys.stderr, flush=True)

    def on_end(self, ev: event.Event) -> None:
        pass


@contextmanager
def compile_notice(what: str) -> Iterator[None]:
    """Say on stderr if kernels compile within the block, and how long it took.

    Parameters
    ----------
    what : str
        What compiles, as it reads after "compiling the", e.g. ``"float32 MLP kernels"``.

    Blocks nest: the outermost one on a thread (a whole ``fit``) prints at most one line when the first
    compile starts, naming it by the innermost block open at that moment, and one when it ends.
    """
    labels = getattr(_active, "labels", None)
    if labels is None:
        labels = _active.labels = []
    if not _enabled or labels:  # off, or nested: name what compiles, the outer block speaks
        labels.append(what)
        try:
            yield
        finally:
            labels.pop()
        return
    listener = _FirstCompile()
    labels.append(what)
    try:
        with event.install_listener("numba:compile", listener):
            yield
    finally:
        labels.pop()
        if listener.started is not None:
            print(f"fastgd: compiled the {listener.what} in {time.perf_counter() - listener.started:.1f} s",
                  file=sys.stderr, flush=True)
