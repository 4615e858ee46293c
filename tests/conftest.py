"""Shared test configuration: a Numba cache per test worker, and the Hypothesis profiles.

Profiles apply to every ``@given`` test that does not set ``max_examples``
itself (``tests/test_fuzz.py``; ``tests/test_optim.py`` sets its own):

* ``default`` (also used under ``CI``, derandomized there): 60 examples per
  test, more than 2,000 over the fuzz suite; a few minutes under
  ``python -m pytest -n 2``.
* ``long``: 300 examples per test, more than 10,000 over the fuzz suite::

      python -m pytest tests/test_fuzz.py -n 2 --hypothesis-profile=long

* ``nojit``: loaded automatically under ``NUMBA_DISABLE_JIT=1``, the coverage
  run of ``.ci/run``, where every kernel runs as plain Python (100 to 1000
  times slower): 5 examples per test (``FASTGD_NOJIT_EXAMPLES``), derandomized.

Registering ``default`` and ``ci`` replaces Hypothesis' built-in profiles of
those names, and the active one takes effect at once.
"""

import os
import sys
import tempfile

# Numba's cache has no lock: two processes compiling the same kernel at once can each write an entry
# under the same file name, and a later process then loads the wrong machine code. Each pytest-xdist
# worker therefore keeps its own cache (set before any test module imports numba).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    _base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "fastgd-test-numba-cache")
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(_base, _WORKER)

# Without a GPU, the CUDA backend's tests run in numba's CUDA simulator (``-m cuda`` selects them; on a
# machine with an NVIDIA GPU they run on the hardware). Decided before numba.cuda is first imported.
if not (os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")):
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=_SUPPRESSED,
                          print_blob=True)
settings.register_profile("ci", settings.get_profile("default"), derandomize=True, database=None)
settings.register_profile("long", settings.get_profile("default"), max_examples=300)

#: True in the coverage run (``NUMBA_DISABLE_JIT=1``): kernels run as plain Python.
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0").strip() not in ("", "0")
NO_JIT_EXAMPLES = int(os.environ.get("FASTGD_NOJIT_EXAMPLES", "5"))
settings.register_profile("nojit", settings.get_profile("ci"), max_examples=NO_JIT_EXAMPLES)
if NO_JIT:
    settings.load_profile("nojit")

#: Tests left out of the coverage run: each took more than about 3 s with plain-Python kernels (a whole training
#: run on real data, a fresh process, or many estimator checks), 20 to 60 s for most. They run, compiled, in the
#: other CI runs; the coverage report lists the lines that the remaining tests leave unexercised.
TOO_SLOW_WITHOUT_JIT = (
    "tests/test_sklearn_checks.py::",  # scikit-learn's checks fit every estimator dozens of times
    "tests/test_linear.py::test_full_batch_gd_reaches_ridge_closed_form",
    "tests/test_linear.py::test_log_loss_l2_matches_logistic_regression",
    "tests/test_linear.py::test_every_solver_and_variant_learns_digits",
    "tests/test_linear.py::test_multi_output_regression_matches_separate_fits",
    "tests/test_linear.py::test_l1_gives_sparse_coefficients",
    "tests/test_linear.py::test_predict_proba_is_a_distribution",
    "tests/test_linear.py::test_same_random_state_gives_identical_parameters",
    "tests/test_linear.py::test_partial_fit_streams_and_checks_labels",
    "tests/test_linear.py::test_early_stopping_keeps_best_validation_score",
    "tests/test_mlp.py::test_added_solvers_and_variants_learn",
    "tests/test_mlp.py::test_one_epoch_agrees_with_scikit_learn",
    "tests/test_mlp.py::test_float32_trains_in_float32",
    "tests/test_mlp.py::test_pipeline_grid_search_and_pickle",
    "tests/test_mlp.py::test_multilabel_and_multi_output",
    "tests/test_diagnostics.py::test_the_lecture_runs_end_to_end",
    "tests/test_diagnostics.py::test_deep_sigmoid_gradients_vanish_toward_the_input_and_relu_ones_do_not",
    "tests/test_diagnostics.py::test_callbacks_see_records_and_can_stop",
    "tests/test_reproducibility.py::test_pickle_and_joblib_round_trips_in_a_fresh_process",
    "tests/test_reproducibility.py::test_grid_search_with_two_jobs",
    "tests/test_stream.py::test_fit_chunks_keeps_resident_memory_bounded_on_a_memmap",
    # one of the four (float64, sgd) stays: it is the only test of full-batch GD over chunks
    "tests/test_stream.py::test_full_batch_over_chunks_equals_in_memory_full_batch[float32-",
    "tests/test_stream.py::test_full_batch_over_chunks_equals_in_memory_full_batch[float64-adam]",
    "tests/test_threads.py::test_blocked_full_batch_matches_numpy_and_is_bitwise_equal_across_thread_counts",
    "tests/test_linear.py::test_dtype_is_kept",
    "tests/test_readme.py::",  # README's examples train on real data: minutes each as plain Python
    "tests/test_compile_notice.py::",  # nothing compiles without the JIT
    "tests/test_cache_lock.py::",  # fresh processes, cold compiles
    "tests/test_input_safety.py::test_early_stopping_copies_the_validation_rows_only",  # 30-70 s each
)


def pytest_collection_modifyitems(config, items):
    """In the coverage run (``NUMBA_DISABLE_JIT=1``), skip the tests of :data:`TOO_SLOW_WITHOUT_JIT`."""
    if not NO_JIT:
        return
    import pytest

    skip = pytest.mark.skip(reason="too slow with NUMBA_DISABLE_JIT=1 (tests/conftest.py::TOO_SLOW_WITHOUT_JIT)")
    for item in items:
        if item.nodeid.startswith(TOO_SLOW_WITHOUT_JIT):
            item.add_marker(skip)


#: GIL switch interval for tests of the CUDA backend in numba's simulator. The simulator runs each CUDA
#: thread as a Python thread and its launcher polls them in a loop: at Python's default interval (5 ms) the
#: threads mostly wait for the GIL, and a fit took 3.5x as long as at 10 us (measured: 14 s against 3.9 s).
#: Frequent switches exposed a race in the simulator itself, fixed below (:func:`_lock_simulator_shared_arrays`).
SIMULATOR_SWITCH_INTERVAL = 1e-5


def _simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _lock_simulator_shared_arrays() -> None:
    """Make the simulator's ``cuda.shared.array`` safe under thread switches.

    numba-cuda's simulator finds a block's shared array by the calling line, with a look-up then an insertion
    that are not atomic: when the GIL switches between the two, two threads of a block each create an array
    and one of them writes its partial sums where no other thread looks (seen as wrong reductions, more often
    the shorter the switch interval). This replacement does the same look-up under a lock.
    """
    import threading
    import traceback

    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    original = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory has no look-up; errors as before
            return original(self, shape, dtype, alignment)
        frame = traceback.extract_stack(sys._getframe(1), limit=1)[-1]
        caller = (frame.filename, frame.lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    kernelapi.FakeCUDAShared.array = array


def _check_launch_dimensions_as_a_gpu_does() -> None:
    """Make the simulator refuse grid and block sizes that are not Python ints, as numba-cuda does on a GPU.

    On hardware, ``kernel[np.int64(9), 128]`` raises ``ValueError: LaunchConfig.grid must be an int, or a tuple
    with up to 3 ints``; the simulator took any integer, so a NumPy batch bound reached the launcher unnoticed
    until the first run on a GPU (19 of the CUDA tests failed there). With this check the simulator fails the same way.
    """
    from numba.cuda.simulator.kernel import FakeCUDAKernel

    original = FakeCUDAKernel.__getitem__

    def configure(self, configuration):
        for name, dims in zip(("grid", "block"), configuration[:2], strict=True):
            for dim in dims if isinstance(dims, tuple) else (dims,):
                if type(dim) is not int:
                    raise ValueError(f"LaunchConfig.{name} must be an int, or a tuple with up to 3 ints "
                                     f"(got {dims!r}): numba-cuda on a GPU takes Python ints only")
        return original(self, configuration)

    FakeCUDAKernel.__getitem__ = configure


if _simulated():
    _lock_simulator_shared_arrays()
    _check_launch_dimensions_as_a_gpu_does()

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fast_cuda_simulator(request):
    """Shorten the GIL switch interval around each ``cuda``-marked test that runs in the simulator."""
    if not (_simulated() and request.node.get_closest_marker("cuda")):
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SIMULATOR_SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
