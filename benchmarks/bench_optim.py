"""asv suite: throughput of one fused optimizer step (``fastgd.optim``).

Parametrised by optimizer x number of parameters x dtype. The Numba kernels are
compiled (or loaded from Numba's cache) once per process in ``setup``, on both
the serial and the threaded path, so the timings exclude compilation.
"""

from __future__ import annotations

import time

import numpy as np

try:
    from fastgd import optim as _optim
except ImportError:  # a commit without fastgd.optim: every benchmark is skipped
    _optim = None

#: Optimizer configurations by benchmark name: (class name, constructor arguments).
OPTIMIZERS = {
    "sgd_momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3}),
    "adagrad": ("Adagrad", {"lr": 1e-3}),
}

SIZES = [1_000_000, 10_000_000]
DTYPES = ["float32", "float64"]

_WARMED: set[tuple[str, str]] = set()


def make_optimizer(name: str):
    """The fastgd optimizer benchmarked as ``name``; raises NotImplementedError when absent."""
    cls_name, kwargs = OPTIMIZERS[name]
    cls = getattr(_optim, cls_name, None) if _optim is not None else None
    if cls is None:
        raise NotImplementedError(f"fastgd.optim.{cls_name} is not available in this commit")
    return cls(**kwargs)


def warm_up(name: str, dtype: str) -> None:
    """Compile (or load) the step kernel for ``dtype``, serial and threaded, once per process."""
    if (name, dtype) in _WARMED:
        return
    opt = make_optimizer(name)
    threshold = int(getattr(getattr(_optim, "_base", None), "PARALLEL_MIN_SIZE", 1 << 17))
    for n in (16, max(threshold, 16)):  # below and at the threading threshold
        params = np.zeros(n, dtype=dtype)
        grads = np.ones(n, dtype=dtype)
        state = opt.init(params)
        for _ in range(2):
            opt.step(params, grads, state)
    _WARMED.add((name, dtype))


def make_problem(name: str, n_params: int, dtype: str):
    """Optimizer, parameters, gradients and state for one benchmark; every page touched once."""
    warm_up(name, dtype)
    rng = np.random.default_rng(0)
    opt = make_optimizer(name)
    params = rng.random(n_params, dtype=dtype) - 0.5
    grads = rng.random(n_params, dtype=dtype) - 0.5
    state = opt.init(params)
    opt.step(params, grads, state)
    return opt, params, grads, state


class OptimizerStep:
    """One in-place ``opt.step(params, grads, state)`` on a large parameter vector."""

    params = (list(OPTIMIZERS), SIZES, DTYPES)
    param_names = ["optimizer", "n_params", "dtype"]
    timeout = 180

    def setup(self, name, n_params, dtype):
        self.opt, self.params_, self.grads, self.state = make_problem(name, n_params, dtype)

    def time_step(self, name, n_params, dtype):
        self.opt.step(self.params_, self.grads, self.state)


class OptimizerThroughput:
    """Parameters updated per second by one step on 1e7 parameters."""

    params = (list(OPTIMIZERS), DTYPES)
    param_names = ["optimizer", "dtype"]
    timeout = 180
    n_params = SIZES[-1]

    def setup(self, name, dtype):
        self.opt, self.params_, self.grads, self.state = make_problem(name, self.n_params, dtype)

    def track_params_per_s(self, name, dtype):
        """n_params / median time of 7 steps."""
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            self.opt.step(self.params_, self.grads, self.state)
            times.append(time.perf_counter() - t0)
        return self.n_params / float(np.median(times))

    track_params_per_s.unit = "params/s"
