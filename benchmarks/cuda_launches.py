#!/usr/bin/env python
"""Host cost of each kernel launch of one CUDA MLP batch, where the time of a small batch goes.

A batch of ``fastgd``'s CUDA MLP trainer (``fastgd/backends/cuda.py``) is a fixed sequence of numba-cuda
launches: gather, one matrix product per layer forward, the output step, weight gradients and back-propagated
deltas, the squared norms, the clip factor and the optimizer step. This script makes each of them on the
100-256-128-10 network (float32, 50,000 rows on the device) and prints two times per launch, medians over
``--repeats``:

* ``launch+sync``: the launch followed by ``cuda.synchronize()``;
* ``queued``: ``--repeats`` launches queued back to back, then one synchronisation, per launch.

When ``queued`` is about ``launch+sync``, the launch is bound by the host (Python and the driver), not the GPU:
measured on an H200, every launch of a batch of 32 to 1024 rows was (30-120 us each, README "On a GPU").
Without a GPU it runs in numba's simulator on a tiny network, which only checks that the script runs.

Run: ``python benchmarks/cuda_launches.py [--batches 32 128 1024] [--repeats 40]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np


def _median_us(launch: Callable[[], None], repeats: int, synchronize: Callable[[], None]) -> tuple[float, float]:
    """``(launch+sync, queued)`` in microseconds per launch (see the module docstring)."""
    launch()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        launch()
        synchronize()
        times.append(time.perf_counter() - start)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        launch()
    synchronize()
    return float(np.median(times)) * 1e6, (time.perf_counter() - start) / repeats * 1e6


def batch_launches(batch: int, units: np.ndarray, n_samples: int, dtype=np.float32) -> dict[str, Callable[[], None]]:
    """The launches of one MLP batch (two hidden ReLU layers, softmax output, Adam), by name, on fresh device data."""
    from numba import cuda

    from fastgd.backends.cpu_mlp import layer_offsets
    from fastgd.cuda import dense
    from fastgd.cuda.optim import clip_norm_scale
    from fastgd.kernels.activations import Activation
    from fastgd.kernels.losses import OutputLoss
    from fastgd.optim import Adam

    rng = np.random.default_rng(0)
    offsets = layer_offsets(units)
    n_layers = units.size - 1
    n_params = int(sum((units[i] + 1) * units[i + 1] for i in range(n_layers)))
    X = cuda.to_device(rng.standard_normal((n_samples, units[0])).astype(dtype))
    Y = cuda.to_device(np.eye(units[-1], dtype=dtype)[rng.integers(0, units[-1], n_samples)])
    sw = cuda.to_device(np.ones(n_samples, dtype))
    order = cuda.to_device(rng.permutation(n_samples).astype(np.int64))
    params = cuda.to_device((rng.standard_normal(n_params) * 0.05).astype(dtype))
    grads = cuda.to_device(np.zeros(n_params, dtype))
    optimizer = Adam(lr=1e-3)
    state = optimizer.init(params)
    bounds = dense.layer_bounds(offsets, units)
    loss_sums, weight_sums, weight_sq, layer_sq, total_sq = (cuda.to_device(np.zeros(4 * n_layers))
                                                             for _ in range(5))
    weight_sum = weight_sums[0:1]
    scale = cuda.device_array(1, np.float64)

    def layer(array, i):
        lo, n_in, n_out = int(offsets[i]), int(units[i]), int(units[i + 1])
        return array[lo:lo + n_in * n_out].reshape(n_in, n_out), array[lo + n_in * n_out:lo + (n_in + 1) * n_out]

    x, y, w = (cuda.device_array((batch, int(units[0])), dtype), cuda.device_array((batch, int(units[-1])), dtype),
               cuda.device_array(batch, dtype))
    A = [x] + [cuda.device_array((batch, int(u)), dtype) for u in units[1:]]
    D = [None] + [cuda.device_array((batch, int(u)), dtype) for u in units[1:]]
    P = [layer(params, i) for i in range(n_layers)]
    G = [layer(grads, i) for i in range(n_layers)]
    launches = {"gather": lambda: dense.gather_batch(X, Y, sw, order, 0, batch, x, y, w, weight_sums, 0)}
    for i in range(n_layers):
        code = Activation.RELU if i < n_layers - 1 else Activation.IDENTITY
        launches[f"forward {i}"] = lambda i=i, code=code: dense.dense_forward(A[i], P[i][0], P[i][1], code, A[i + 1])
    launches["output step"] = lambda: dense.mlp_output_delta(A[-1], y, w, Activation.SOFTMAX, OutputLoss.LOG_LOSS,
                                                            D[-1], loss_sums, 0)
    for i in range(n_layers - 1, -1, -1):
        launches[f"weight gradient {i}"] = lambda i=i: dense.weight_gradient(A[i], D[i + 1], P[i][0], 1e-4,
                                                                             G[i][0], gb=G[i][1])
        if i > 0:
            launches[f"backprop delta {i}"] = lambda i=i: dense.backprop_delta(D[i + 1], P[i][0], A[i],
                                                                               Activation.RELU, D[i])
    launches["squared norms"] = lambda: dense.layer_squared_norms(params, grads, bounds, weight_sq, layer_sq,
                                                                  total_sq, 0)
    launches["clip factor"] = lambda: clip_norm_scale(total_sq, 0, weight_sum, np.inf, scale)
    launches["adam step"] = lambda: optimizer.step(params, grads, state)
    return launches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="batch sizes (default 32 128 1024)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    from numba import cuda

    from fastgd.cuda import simulated, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cuda_launches: {reason}")
    if simulated():  # a smoke test: tiny shapes, two repeats
        units, n_samples, batches, repeats = np.array([5, 7, 6, 3]), 64, args.batches or [16], 2
        print("numba's CUDA simulator: tiny network, times mean nothing")
    else:
        units, n_samples, batches, repeats = np.array([100, 256, 128, 10]), 50_000, args.batches or [32, 128, 1024], \
            args.repeats
        print(f"device: {cuda.get_current_device().name}")
    for batch in batches:
        print(f"\nbatch {batch}: network {'-'.join(map(str, units))}, float32, medians over {repeats}")
        print("| launch | launch+sync us | queued us |\n| --- | ---: | ---: |")
        total = [0.0, 0.0]
        launches = batch_launches(batch, units, n_samples)
        for name, launch in launches.items():
            with_sync, queued = _median_us(launch, repeats, cuda.synchronize)
            total[0] += with_sync
            total[1] += queued
            print(f"| {name} | {with_sync:.1f} | {queued:.1f} |")
        print(f"| all {len(launches)} launches | {total[0]:.1f} | {total[1]:.1f} |")


if __name__ == "__main__":
    main()
