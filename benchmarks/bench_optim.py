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


# --- CUDA ------------------------------------------------------------------------------------------------------


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA benchmarks are skipped here (no fastgd.cuda, no GPU, or numba's simulator), or None."""
    try:
        import fastgd.cuda as fastgd_cuda
        import fastgd.cuda.optim  # noqa: F401 - absent before the CUDA optimizers
    except ImportError as exc:
        return f"fastgd.cuda.optim is not available ({exc})"
    if fastgd_cuda.simulated():
        return "numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM): no GPU timing means anything"
    return fastgd_cuda.unavailable_reason()


def cuda_median_ms(run, repeats: int = 7, inner: int = 10) -> float:
    """Median over ``repeats`` of the GPU time of ``inner`` back-to-back ``run()`` calls, per call, in ms.

    Timed with CUDA events on the default stream: the launches are asynchronous, so
    the host queues them faster than the GPU runs them and the GPU never waits.
    """
    from numba import cuda

    times = []
    for _ in range(repeats):
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(inner):
            run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return float(np.median(times))


class CudaAdamBandwidth:
    """Fused Adam on the GPU: memory bandwidth of one step as a share of a device-to-device copy's.

    One step of ``fastgd.optim.Adam`` on device arrays reads parameters, gradients
    and both moments and writes parameters and moments: 7 arrays of ``n_params``
    elements. A copy reads one and writes one. Both bandwidths are measured in the
    same run, on the same card; issue 7's goal is a share of at least 80 %.
    Skipped without a GPU and under numba's simulator.
    """

    params = (DTYPES,)
    param_names = ["dtype"]
    timeout = 300
    n_params = 1 << 25

    def setup(self, dtype):
        reason = cuda_unavailable_reason()
        if reason is not None:
            raise NotImplementedError(reason)
        from numba import cuda

        rng = np.random.default_rng(0)
        self.opt = _optim.Adam(lr=1e-3)
        self.d_params = cuda.to_device(rng.random(self.n_params, dtype=dtype) - 0.5)
        self.d_grads = cuda.to_device(rng.random(self.n_params, dtype=dtype) - 0.5)
        self.state = self.opt.init(self.d_params)
        self.d_copy = cuda.device_array_like(self.d_params)
        for _ in range(3):  # compiles the kernel; touches every page
            self.opt.step(self.d_params, self.d_grads, self.state)
            self.d_copy.copy_to_device(self.d_params)
        cuda.synchronize()
        self.itemsize = np.dtype(dtype).itemsize

    def _adam_bytes_per_s(self) -> float:
        ms = cuda_median_ms(lambda: self.opt.step(self.d_params, self.d_grads, self.state))
        return 7 * self.n_params * self.itemsize / (ms * 1e-3)

    def _copy_bytes_per_s(self) -> float:
        ms = cuda_median_ms(lambda: self.d_copy.copy_to_device(self.d_params))
        return 2 * self.n_params * self.itemsize / (ms * 1e-3)

    def track_adam_share_of_copy_bandwidth(self, dtype):
        """Adam's bytes/s over the copy's bytes/s, in percent (goal: >= 80)."""
        return 100.0 * self._adam_bytes_per_s() / self._copy_bytes_per_s()

    track_adam_share_of_copy_bandwidth.unit = "%"

    def track_adam_bandwidth(self, dtype):
        """Bytes moved per second by fused Adam steps."""
        return self._adam_bytes_per_s()

    track_adam_bandwidth.unit = "bytes/s"

    def track_copy_bandwidth(self, dtype):
        """Bytes moved per second by a device-to-device copy of the parameters."""
        return self._copy_bytes_per_s()

    track_copy_bandwidth.unit = "bytes/s"


#: Long-run cases: float32 parameters that stop receiving gradient while weight decay and the moment averages
#: keep shrinking them (see benchmarks/denormals.py). Without a flush of subnormal numbers these reach the
#: subnormal range and stay there; the "decayed" phase times steps at that point.
LONG_RUN_OPTIMIZERS = {
    "rmsprop_weight_decay": ("RMSprop", {"lr": 1e-2, "weight_decay": 1e-2}),
    "adamw": ("AdamW", {"lr": 1e-2, "weight_decay": 1e-1}),
    "adam_weight_decay": ("Adam", {"lr": 1e-2, "weight_decay": 1e-2}),
}
LONG_RUN_PARAMS = 100_000
LONG_RUN_LIVE_STEPS = 500
LONG_RUN_DECAY_STEPS = 3000


class OptimizerLongRun:
    """One step on 1e5 float32 parameters, fresh ("normal") or after 3,000 steps without gradient ("decayed").

    The ratio decayed / normal of one optimizer is the slowdown from subnormal numbers (1.0 when they are
    flushed to zero).
    """

    params = (list(LONG_RUN_OPTIMIZERS), ["normal", "decayed"])
    param_names = ["optimizer", "phase"]
    timeout = 300

    def setup(self, name, phase):
        if _optim is None:
            raise NotImplementedError("fastgd.optim is not available in this commit")
        cls_name, kwargs = LONG_RUN_OPTIMIZERS[name]
        self.opt = getattr(_optim, cls_name)(**kwargs)
        rng = np.random.default_rng(0)
        self.params_ = rng.standard_normal(LONG_RUN_PARAMS).astype(np.float32)
        self.state = self.opt.init(self.params_)
        live = rng.standard_normal((8, LONG_RUN_PARAMS)).astype(np.float32)
        for t in range(LONG_RUN_LIVE_STEPS):
            self.opt.step(self.params_, live[t % 8], self.state)
        self.grads = np.zeros(LONG_RUN_PARAMS, dtype=np.float32)
        if phase == "decayed":
            for _ in range(LONG_RUN_DECAY_STEPS):
                self.opt.step(self.params_, self.grads, self.state)

    def time_step(self, name, phase):
        self.opt.step(self.params_, self.grads, self.state)

    def track_subnormal_share(self, name, phase):
        """Share of subnormal values among the parameters and state rows after setup."""
        values = np.concatenate([self.params_, self.state.slots.ravel()])
        magnitude = np.abs(values)
        return float(np.mean((magnitude > 0) & (magnitude < np.finfo(values.dtype).tiny)))

    track_subnormal_share.unit = "share"
