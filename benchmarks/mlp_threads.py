#!/usr/bin/env python
"""MLP epochs on one and two threads, measured round-robin: what the batch partition costs and gains.

The network and data of ``compare.py --mlp`` (100-256-128-10 ReLU, softmax, Adam, float32,
``make_classification(20000, 100, n_informative=50, n_classes=10)``): for each batch size, one
``MLPClassifier`` per thread count is warmed up (one epoch), then their epochs are timed in turns,
``--rounds`` times, so that both see the same moments of a shared machine. Prints samples/s as the
median and the range over the rounds, the 2-thread speed-up, and the 1-minute load average before and
after. Also checks that the two thread counts trained the same bits.

Run: ``python benchmarks/mlp_threads.py [--rounds 7] [--batches 32 128 200 1024]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 200, 1024])
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()

    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning

    from fastgd import MLPClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_classification(n_samples=args.samples, n_features=100, n_informative=50, n_classes=10,
                               random_state=0)
    X = X.astype(np.float32)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| batch | 1 thread [k samples/s] | 2 threads [k samples/s] | 2t / 1t | same bits |")
    print("|---|---|---|---|---|")
    for batch_size in args.batches:
        models = {}
        for threads in (1, 2):
            est = MLPClassifier((256, 128), solver="adam", batch_size=batch_size, max_iter=1, warm_start=True,
                                random_state=0, tol=0.0, n_iter_no_change=10**9, n_threads=threads)
            models[threads] = est.fit(X, y)  # warm-up epoch
        rates = {1: [], 2: []}
        for _ in range(args.rounds):
            for threads, est in models.items():
                t0 = time.perf_counter()
                est.fit(X, y)
                rates[threads].append(X.shape[0] / (time.perf_counter() - t0) / 1e3)
        same = all(np.array_equal(a, b) for a, b in zip(models[1].coefs_, models[2].coefs_, strict=True))
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(f"| {batch_size} | {one:.1f} ({min(rates[1]):.1f}-{max(rates[1]):.1f}) | "
              f"{two:.1f} ({min(rates[2]):.1f}-{max(rates[2]):.1f}) | {two / one:.2f}x | {same} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
