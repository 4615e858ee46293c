"""The one place for Numba options.

Every compiled kernel in fastgd is built through :func:`jit`, so caching, the
error model and the thread rules are decided here and nowhere else.

* ``cache=True``: kernels compile once per machine and load from Numba's cache
  afterwards (milliseconds instead of seconds).
* ``error_model="numpy"``: division by zero gives ``inf``/``nan`` as in NumPy
  instead of raising; the Python error checks otherwise stop LLVM from
  vectorising the fused loops.
* ``fastmath`` stays off in the optimizer updates: they must match the
  documented rules to round-off. Kernels that *reduce* over data (dot
  products, gradient sums and norms) are compiled with :data:`REDUCTION_FASTMATH`
  instead: without reassociation LLVM cannot vectorise a sum, and a dot product
  of 100 float32 values runs 6x slower. The result is still deterministic for a
  given machine and thread count; it may differ in the last bits between CPUs
  of different vector widths.
* ``nogil=True``: estimators fitted in several Python threads run concurrently.
* Subnormal numbers: :mod:`fastgd._numeric` says in one place how they are
  handled and why.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba

JIT_OPTIONS: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "error_model": "numpy",
    "fastmath": False,
}

#: Fast-math flags of the data kernels: reassociation for vectorised sums,
#: contraction for fused multiply-add; no approximate division or infinities.
REDUCTION_FASTMATH = frozenset({"reassoc", "contract", "nsz"})

#: Parameter vectors with at least this many elements are updated with Numba's
#: threads; below it a serial loop is faster than waking the thread pool.
PARALLEL_MIN_SIZE = 1 << 17

#: Elements per chunk of a threaded update: large enough to amortise the
#: scheduling, small enough to balance the threads.
PARALLEL_CHUNK = 1 << 14


#: Options of the small kernels called inside per-sample loops (row access, losses, optimizer
#: updates): inlined by LLVM into the loop (``forceinline``: no call, no argument marshalling) and
#: compiled without Numba's reference counting (``_nrt=False``). Such a kernel must not allocate:
#: its arrays belong to its caller, and the atomic increments and decrements Numba would otherwise
#: wrap around each inlined call (its pruning pass cannot remove them across loops) cost more per
#: sample than the update of a 100-feature model. Inlining happens in LLVM, after each function was
#: compiled with its own flags, so a strict kernel keeps its strict (no fast-math) arithmetic inside
#: a fast-math loop.
INLINE_OPTIONS: dict[str, Any] = {"forceinline": True, "_nrt": False}

#: Options of a compiled function that other compiled functions call (pass as ``**INNER_OPTIONS``; implied
#: by ``inlined=True``). Such a function is never cached on its own, only inside the entry points that call
#: it. Numba links a cached callee into a new caller as object code without its LLVM IR, and then caches the
#: caller with a reference to the callee's symbol instead of its code: a later process that loads the caller
#: from the cache without having loaded the callee first jumps to an unresolved address and crashes
#: (reproduced: one process used ``fastgd.optim`` alone, the next fitted an MLP, the third segfaulted).
#: Functions called both from Python and from other kernels therefore come in two: an uncached inner one,
#: and a cached entry point that calls it.
INNER_OPTIONS = {"cache": False}


def jit(fn: Callable | None = None, *, parallel: bool = False, reduction: bool = False, inlined: bool = False,
        refcount: bool = True, **options: Any):
    """Compile ``fn`` with fastgd's Numba options.

    Parameters
    ----------
    fn : callable, optional
        The function to compile. When omitted, a decorator is returned.
    parallel : bool, default=False
        Compile with ``parallel=True`` so that ``numba.prange`` loops run on
        Numba's threads.
    reduction : bool, default=False
        Compile with :data:`REDUCTION_FASTMATH` (for kernels that sum over data).
    inlined : bool, default=False
        Compile with :data:`INLINE_OPTIONS`, for a kernel called inside a
        per-sample loop. It must not allocate arrays. Such a kernel is not
        cached on its own (see :data:`INNER_OPTIONS`).
    refcount : bool, default=True
        False compiles without Numba's reference counting (``_nrt=False``),
        for an epoch kernel that allocates no array. The option is always
        set explicitly: Numba lets a function that leaves it unset inherit
        it from whichever caller compiles it first.
    **options
        Further options passed to :func:`numba.njit`, overriding the defaults.

    Returns
    -------
    dispatcher or decorator
        A Numba dispatcher; nothing is compiled until the first call.
    """
    opts = {**JIT_OPTIONS, "parallel": parallel, "_nrt": refcount}
    if inlined:
        opts.update(INLINE_OPTIONS)
        opts["cache"] = False  # an inner kernel: see INNER_OPTIONS
    opts.update(options)
    if reduction:
        opts["fastmath"] = set(REDUCTION_FASTMATH)
    if fn is None:
        return lambda f: _locked_cache(numba.njit(**opts)(f))
    return _locked_cache(numba.njit(**opts)(fn))


#: Name of the lock file beside the cached kernels (:func:`_locked_cache`).
CACHE_LOCK_NAME = "fastgd-cache.lock"


@contextmanager
def cache_lock(folder: str, exclusive: bool) -> Iterator[None]:
    """Hold the lock of the kernel cache in ``folder``: exclusive to write it, shared to read it.

    A POSIX advisory lock (``fcntl.flock``) on :data:`CACHE_LOCK_NAME`, which serialises processes (and
    threads) that write the folder's cache index. Where no lock can be had (no ``fcntl``, a folder that
    cannot be written), the block runs without one: a read-only cache cannot be corrupted.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        os.makedirs(folder, exist_ok=True)
        handle = open(os.path.join(folder, CACHE_LOCK_NAME), "a+b")
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _locked_cache(dispatcher):
    """Make the reads and writes of ``dispatcher``'s cache entries hold the cache's file lock.

    Numba's cache has no lock. Saving an entry reads the kernel's index file (signature -> data file),
    picks the first free data file name, and writes the index and then the data. Two processes that
    compile different signatures of one kernel at once (a float32 and a float64 fit, workers of a grid
    search or a cluster starting on an empty cache) both read the same index, pick the same name, and
    each writes its machine code to it: the index the last one wrote then maps a signature to the other's
    code, and a later process that loads it crashes or computes garbage. Under :func:`cache_lock` the read,
    the choice and the two writes are one step for every process, and a reader never sees an index entry
    whose data are not written yet. Compiling itself is not serialised: only the milliseconds of the save.
    """
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    folder = getattr(cache_file, "_cache_path", None)
    if cache_file is None or folder is None:  # not cached, or NUMBA_DISABLE_JIT: a plain function
        return dispatcher
    save, load = cache_file.save, cache_file.load

    def locked_save(key, data):
        with cache_lock(folder, exclusive=True):
            save(key, data)

    def locked_load(key):
        with cache_lock(folder, exclusive=False):
            return load(key)

    cache_file.save, cache_file.load = locked_save, locked_load
    return dispatcher


def _cache_dirs(source_dirs: list[Path]) -> list[Path]:
    """Every folder where Numba may keep the cache of kernels defined in ``source_dirs``.

    Asked of Numba's own cache locators: the package tree, ``NUMBA_CACHE_DIR``
    when set, and the per-user cache used when the tree is read-only.
    """
    from numba.core import caching

    def probe():  # a function for the locators to read a line number from
        return None

    found: set[Path] = set()
    for source_dir in source_dirs:
        for locator_class in caching.CacheImpl._locator_classes:
            try:
                locator = locator_class.from_function(probe, str(source_dir / "__init__.py"))
            except Exception:  # a locator that does not apply to this tree
                continue
            if locator is not None:
                found.add(Path(locator.get_cache_path()))
    return sorted(found)


def _clear_stale_kernel_cache() -> None:
    """Drop Numba's cached kernels when a source file of compiled code changed.

    Numba re-validates a cached kernel against its own source file only. A
    kernel that inlines code from another module (losses, row access, the
    optimizer dispatch) would keep stale machine code after that module
    changed, and a stale call signature can crash the interpreter. A digest of
    all sources, kept beside each cache, catches that; it costs about a
    millisecond at import and nothing when unchanged.
    """
    package = Path(__file__).resolve().parent
    source_dirs = [package, package / "_numeric", package / "kernels", package / "optim"]
    sources = sorted(path for folder in source_dirs for path in folder.glob("*.py"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    stamp = digest.hexdigest()
    for cache_dir in _cache_dirs(source_dirs):
        stamp_file = cache_dir / "fastgd-kernels.sha256"
        try:
            if stamp_file.read_text() == stamp:
                continue
        except OSError:
            pass
        with cache_lock(str(cache_dir), exclusive=True):  # no other process saves or loads meanwhile
            for cached in [*cache_dir.glob("*.nbi"), *cache_dir.glob("*.nbc")]:
                try:
                    cached.unlink()
                except OSError:  # another process removed it, or the folder is read-only
                    pass
            try:
                stamp_file.write_text(stamp)
            except OSError:
                pass


_clear_stale_kernel_cache()
