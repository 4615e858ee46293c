"""Shared test configuration: a Numba cache per test worker, and the Hypothesis profiles.

Profiles apply to every ``@given`` test that does not set ``max_examples``
itself (``tests/test_fuzz.py``; ``tests/test_optim.py`` sets its own):

* ``default`` (also used under ``CI``, derandomized there): 60 examples per
  test, more than 2,000 over the fuzz suite; a few minutes under
  ``python -m pytest -n 2``.
* ``long``: 300 examples per test, more than 10,000 over the fuzz suite::

      python -m pytest tests/test_fuzz.py -n 2 --hypothesis-profile=long

Registering ``default`` and ``ci`` replaces Hypothesis' built-in profiles of
those names, and the active one takes effect at once.
"""

import os
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
