"""The CUDA section of the comparison script (``python benchmarks/compare.py --cuda``).

Two measurements, both on the machine's first GPU, each against a peer
measured in the same run:

* fused Adam on 100 million float32 parameters (10 million with ``--quick``):
  the bandwidth its one pass moves (parameters, gradients and both moments
  read, three of them written: 28 bytes per parameter) as a share of the
  bandwidth of a plain copy kernel over the same length, launched alike
  (issue goal: at least 80 %);
* training throughput of the 100-256-128-10 ReLU network with Adam on float32
  data, in samples/s over whole epochs after a warm-up, for fastgd's
  ``device="cuda"`` and PyTorch on the same GPU (``nn.Sequential``, fused
  Adam; skipped when PyTorch has no CUDA).

Without a usable GPU (or under numba's simulator) the section says so and
measures nothing.
"""

from __future__ import annotations

import time
import warnings

import numpy as np


def _median_seconds(run, repeats: int, synchronize, inner: int = 1) -> float:
    """Median wall time of one ``run()``, over ``repeats`` timings of ``inner`` calls each.

    The device is synchronised around each timing; ``inner`` calls queued back to back keep the host's launch
    overhead out of the time of short kernels.
    """
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        for _ in range(inner):
            run()
        synchronize()
        times.append((time.perf_counter() - start) / inner)
    return float(np.median(times))


def _copy_kernel():
    """A plain grid-stride copy kernel ``dst[i] = src[i]``: the bandwidth reference of the Adam step."""
    from numba import cuda

    @cuda.jit
    def copy(src, dst):
        for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
            dst[i] = src[i]

    return copy


def adam_bandwidth(n: int = 100_000_000, repeats: int = 10, inner: int = 20) -> dict[str, float]:
    """Fused Adam's effective bandwidth on the device and that of a plain copy kernel, in GB/s.

    Both are launched with the same grid (:func:`fastgd.cuda.optim.launch_blocks`) and timed as ``inner``
    launches queued back to back, so that the host's launch overhead stays out of the time; ``n`` should make
    the vectors many times larger than the GPU's L2 cache.
    """
    from numba import cuda

    from fastgd.cuda.optim import THREADS_PER_BLOCK, launch_blocks
    from fastgd.optim import Adam

    rng = np.random.default_rng(0)
    params = cuda.to_device(rng.standard_normal(n, dtype=np.float32))
    grads = cuda.to_device(rng.standard_normal(n, dtype=np.float32))
    optimizer = Adam(lr=1e-3)
    state = optimizer.init(params)
    copy_target = cuda.device_array_like(params)
    copy_kernel = _copy_kernel()[launch_blocks(n), THREADS_PER_BLOCK]

    def step() -> None:
        optimizer.step(params, grads, state)

    def copy() -> None:
        copy_kernel(grads, copy_target)

    for _ in range(3):
        step()
        copy()
    adam_s = _median_seconds(step, repeats, cuda.synchronize, inner)
    copy_s = _median_seconds(copy, repeats, cuda.synchronize, inner)
    adam_gbs = 28 * n / adam_s / 1e9
    copy_gbs = 8 * n / copy_s / 1e9
    return {"adam_ms": adam_s * 1e3, "adam_gbs": adam_gbs, "copy_gbs": copy_gbs, "share": adam_gbs / copy_gbs}


def _torch_cuda_epoch(X: np.ndarray, y: np.ndarray, batch_size: int):
    """One epoch of the ``--mlp`` PyTorch peer on the GPU (:func:`compare.torch_mlp`) and the device's sync."""
    import torch
    from compare import torch_mlp  # benchmarks/compare.py, next to this script

    return torch_mlp(X, y, batch_size, device="cuda")[1], torch.cuda.synchronize


def mlp_throughput(batch_sizes=(32, 128, 1024), n_samples: int = 50_000, repeats: int = 3) -> list[list[str]]:
    """Rows ``[batch size, fastgd samples/s, us per batch, torch samples/s, us per batch, ratio]`` on the GPU."""
    from numba import cuda
    from sklearn.datasets import make_classification

    from fastgd import MLPClassifier

    X, y = make_classification(n_samples=n_samples, n_features=100, n_informative=50, n_classes=10, random_state=0)
    X = X.astype(np.float32)
    try:
        import torch

        has_torch = torch.cuda.is_available()
    except ImportError:
        has_torch = False
    rows = []
    for batch_size in batch_sizes:
        model = MLPClassifier((256, 128), batch_size=batch_size, max_iter=1, warm_start=True, random_state=0,
                              device="cuda", tol=0.0)

        def fastgd_epoch(model=model) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)

        fastgd_epoch()  # compiles the kernels
        ours = n_samples / _median_seconds(fastgd_epoch, repeats, cuda.synchronize)
        theirs = float("nan")
        if has_torch:
            torch_epoch, torch_sync = _torch_cuda_epoch(X, y, batch_size)
            torch_epoch()
            theirs = n_samples / _median_seconds(torch_epoch, repeats, torch_sync)
        n_batches = -(-n_samples // batch_size)
        rows.append([str(batch_size), f"{ours:,.0f}", f"{1e6 * n_samples / ours / n_batches:.0f}",
                     f"{theirs:,.0f}" if has_torch else "no torch CUDA",
                     f"{1e6 * n_samples / theirs / n_batches:.0f}" if has_torch else "-",
                     f"{ours / theirs:.2f}x" if has_torch else "-"])
    return rows


def section_cuda(quick: bool, markdown_table) -> None:
    """Print the CUDA section: Adam bandwidth and MLP throughput against PyTorch on the same GPU."""
    from fastgd.cuda import simulated, unavailable_reason

    print("\n## CUDA\n")
    reason = unavailable_reason()
    if reason is not None or simulated():
        print(f"- skipped: {reason or 'numba simulator active (NUMBA_ENABLE_CUDASIM=1)'}; GPU speed not measured.")
        return
    from numba import cuda

    name = cuda.get_current_device().name
    print(f"- device: {name.decode() if isinstance(name, bytes) else name}")
    bw = adam_bandwidth(n=10_000_000 if quick else 100_000_000)
    print(markdown_table(["fused Adam step", "Adam GB/s (28 B/param)", "copy kernel GB/s", "share of copy"],
                         [[f"{bw['adam_ms']:.3f} ms", f"{bw['adam_gbs']:.0f}", f"{bw['copy_gbs']:.0f}",
                           f"{100 * bw['share']:.0f} %"]]))
    print()
    rows = mlp_throughput(n_samples=10_000 if quick else 50_000)
    print(markdown_table(["batch", "fastgd cuda samples/s", "us/batch", "torch cuda samples/s", "us/batch",
                          "fastgd / torch"], rows))
