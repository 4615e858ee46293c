#!/usr/bin/env python
"""Time per optimizer step before and after the parameters and moments turn subnormal.

A parameter that stops receiving gradient (a dead unit, a feature absent from
the rest of the data) keeps being decayed by weight decay and by the moment
averages. In float32 its parameter and moments reach the subnormal range
(below 1.2e-38) after a few thousand steps, and stay there: the rounded
update of a subnormal value is often the value itself. Arithmetic on
subnormal numbers takes a slow path on many CPUs.

Each case runs ``--steps`` updates of ``--n-params`` parameters with
``fastgd.optim``: the first ``--live`` steps with random gradients, the rest
with zero gradients. Every ``--window`` steps it prints the median time of one
``opt.step`` and the share of subnormal values in the parameters and in each
state row. The summary compares the first window after the gradients stop
(values still normal) with the last window (values subnormal, unless they are
flushed to zero), as a ratio measured in the same process.

Run: ``python benchmarks/denormals.py [--steps 6000] [--n-params 100000] [--dtype float32]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from fastgd import optim

#: Benchmarked configurations: (label, class name, constructor arguments).
CASES = [
    ("RMSprop, weight_decay=1e-2", "RMSprop", {"lr": 1e-2, "weight_decay": 1e-2}),
    ("Adam, weight_decay=1e-2", "Adam", {"lr": 1e-2, "weight_decay": 1e-2}),
    ("AdamW, weight_decay=1e-1", "AdamW", {"lr": 1e-2, "weight_decay": 1e-1}),
]


def subnormal_share(values: np.ndarray) -> float:
    """Share of the entries of ``values`` that are subnormal (non-zero and below the smallest normal)."""
    magnitude = np.abs(values)
    return float(np.mean((magnitude > 0) & (magnitude < np.finfo(values.dtype).tiny)))


def run_case(cls_name: str, kwargs: dict, n_params: int, dtype: str, steps: int, live: int, window: int):
    """Train one optimizer; return one row per window: (last step, median seconds per step, shares)."""
    rng = np.random.default_rng(0)
    opt = getattr(optim, cls_name)(**kwargs)
    params = rng.standard_normal(n_params).astype(dtype)
    state = opt.init(params)
    live_grads = rng.standard_normal((8, n_params)).astype(dtype)
    zero_grads = np.zeros(n_params, dtype=dtype)
    rows, times = [], []
    for t in range(1, steps + 1):
        grads = live_grads[t % 8] if t <= live else zero_grads
        t0 = time.perf_counter()
        opt.step(params, grads, state)
        times.append(time.perf_counter() - t0)
        if t % window == 0:
            shares = [subnormal_share(params)] + [subnormal_share(row) for row in state.slots]
            rows.append((t, statistics.median(times), shares))
            times = []
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--live", type=int, default=500, help="steps with random gradients before they stop")
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--n-params", type=int, default=100_000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    print(f"fastgd.optim, {args.n_params:,} {args.dtype} parameters, {args.steps} steps (zero gradients after "
          f"step {args.live}); {platform.processor() or platform.machine()}, load average "
          f"{os.getloadavg()[0]:.2f} at start")
    summary = []
    for label, cls_name, kwargs in CASES:
        run_case(cls_name, kwargs, 1000, args.dtype, 3, 1, 1)  # compile (or load) the kernel first
        rows = run_case(cls_name, kwargs, args.n_params, args.dtype, args.steps, args.live, args.window)
        print(f"\n{label}\n  step   us/step  subnormal share: params, state rows")
        for t, seconds, shares in rows:
            print(f"  {t:5d}  {seconds * 1e6:7.1f}  " + "  ".join(f"{s:5.2f}" for s in shares))
        before = next(r for r in rows if r[0] > args.live)
        after = rows[-1]
        summary.append((label, before[1], after[1], max(after[2])))
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")
    print("\n| optimizer | us/step, normal values | us/step, at the end | ratio | largest subnormal share at the end |")
    print("|---|---|---|---|---|")
    for label, before, after, share in summary:
        print(f"| {label} | {before * 1e6:.1f} | {after * 1e6:.1f} | {after / before:.2f} | {share:.2f} |")


if __name__ == "__main__":
    main()
