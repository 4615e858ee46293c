"""The first fit says that it compiles; ``python -m fastgd --warm-up`` compiles ahead of time."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba.core import event

from fastgd import LinearClassifier
from fastgd._compile_notice import compile_notice, set_compile_notice

#: Fits through the float32 dense routes of fastgd.warm_up under a recorder of Numba's compile events, and
#: prints how many compiles there were.
_COUNT_COMPILES = textwrap.dedent("""
    import warnings
    import numpy as np
    from numba.core import event
    from fastgd import warm_up
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 100)).astype(np.float32)
    y, Y = (X[:, 1] > 0).astype(int), X[:, :2].copy()
    recorder = event.RecordingListener()
    with event.install_listener("numba:compile", recorder):
        for estimator, features, target in warm_up._routes(X, y, Y):
            estimator.set_params(max_iter=2).fit(features, target).predict(features)
    print(len(recorder.buffer))
""")


def _run(code: str, cache, **env) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache), **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_warm_up_compiles_what_later_fits_use_and_says_so(tmp_path):
    cache = tmp_path / "cache"
    warm = _run("from fastgd.warm_up import warm_up; warm_up(dtypes=['float32'], sparse=[False])", cache)
    notices = [line for line in warm.stderr.splitlines() if line.startswith("fastgd: compiling the")]
    assert notices and notices[0].startswith("fastgd: compiling the float32 ")
    assert "first use on this machine, cached afterwards" in notices[0]
    assert "fastgd: float32 kernels for dense input ready in" in warm.stderr
    later = _run(_COUNT_COMPILES, cache)
    assert later.stdout.strip() == "0"  # everything came from the cache
    assert "fastgd: compiling" not in later.stderr


@pytest.mark.slow
def test_the_notice_can_be_silenced(tmp_path):
    script = ("import numpy as np\nfrom fastgd import LinearRegressor\n"
              "LinearRegressor(max_iter=1, batch_size=3).fit(np.ones((9, 2)), np.arange(9.0))")
    quiet = _run(script, tmp_path / "cache", FASTGD_COMPILE_NOTICE="0")
    assert "fastgd: compiling" not in quiet.stderr


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="no compiles without the JIT")
def test_compile_notice_prints_once_for_nested_blocks_and_only_when_compiling(capsys):
    import numba

    @numba.njit
    def add_one(x):
        return x + 1

    with compile_notice("test kernels"), compile_notice("inner kernels"):
        add_one(1)
        add_one(1.5)
    err = capsys.readouterr().err.splitlines()
    # one notice, from the outer block, naming what compiles by the innermost block
    assert err[0] == "fastgd: compiling the inner kernels (first use on this machine, cached afterwards)..."
    assert err[1].startswith("fastgd: compiled the inner kernels in ") and len(err) == 2
    with compile_notice("test kernels"):
        add_one(2)  # compiled already
    assert capsys.readouterr().err == ""
    previous = set_compile_notice(False)
    try:
        with compile_notice("test kernels"):
            add_one(np.float32(2))
        assert capsys.readouterr().err == ""
    finally:
        set_compile_notice(previous)


def test_a_fit_from_the_cache_says_nothing(capsys):
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    LinearClassifier(max_iter=1).fit(X, y)
    capsys.readouterr()
    recorder = event.RecordingListener()
    with event.install_listener("numba:compile", recorder):
        LinearClassifier(max_iter=1).fit(X, y)
    assert recorder.buffer == [] and capsys.readouterr().err == ""
