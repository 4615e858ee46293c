#!/usr/bin/env python
"""MLP epochs with subnormal numbers flushed to zero (fastgd's training mode) and without, side by side.

fastgd trains with the x86 FTZ and DAZ modes set (``fastgd._numeric.float_env``).
This script measures what that buys: two copies of the same network (Adam,
float32, one thread) train epoch after epoch, alternating; in one the
flush is patched out of the MLP trainer, so its arithmetic meets subnormal
numbers as training produces them. Each line prints both epoch rates, their
ratio and the share of the weights below 1e-19 (whose squares and products are
subnormal in float32). Needs an x86 CPU to show anything.

Run: ``python benchmarks/subnormal_epochs.py [--batch-size 1 32] [--epochs 8] [--samples 5000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
import warnings
from unittest import mock

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification

from fastgd import MLPClassifier


def timed_epoch(est: MLPClassifier, X: np.ndarray, y: np.ndarray, flushed: bool) -> float:
    """Train ``est`` one more epoch; returns samples per second (the flush patched out unless ``flushed``)."""
    patch = (contextlib.nullcontext() if flushed
             else mock.patch("fastgd.backends.cpu_mlp.subnormals_flushed", contextlib.nullcontext))
    with patch:
        t0 = time.perf_counter()
        est.fit(X, y)
        return X.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--samples", type=int, default=5000, help="rows of the 50,000 x 100 problem used")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    X, y = make_classification(n_samples=50000, n_features=100, n_informative=50, n_classes=10, random_state=0)
    X, y = X.astype(np.float32)[:args.samples], y[:args.samples]
    print(f"{platform.machine()}; 100-256-128-10, Adam, float32, "
          f"{args.samples} samples, one thread")
    for batch_size in args.batch_size:
        network = MLPClassifier((256, 128), batch_size=batch_size, max_iter=1, warm_start=True, random_state=0,
                                tol=0.0, n_iter_no_change=10**9, n_threads=1)
        clone(network).fit(X[:64], y[:64])  # compiles (or loads) the epoch before anything is timed
        pair = {flushed: clone(network) for flushed in (True, False)}
        print(f"\nbatch {batch_size}: samples/s per epoch")
        print(f"{'epoch':>5} {'flushed':>10} {'kept':>10} {'ratio':>6} {'weights < 1e-19':>16}")
        for epoch in range(1, args.epochs + 1):
            rates = {flushed: timed_epoch(est, X, y, flushed) for flushed, est in pair.items()}
            weights = np.concatenate([c.ravel() for c in pair[False].coefs_])
            tiny_share = float(np.mean(np.abs(weights) < 1e-19))
            print(f"{epoch:5d} {rates[True]:10.0f} {rates[False]:10.0f} {rates[True] / rates[False]:6.2f} "
                  f"{100 * tiny_share:15.1f}%", flush=True)


if __name__ == "__main__":
    main()
