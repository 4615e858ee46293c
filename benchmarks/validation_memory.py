#!/usr/bin/env python
"""Peak resident memory of a fit with and without ``early_stopping``, relative to the data's size.

``early_stopping=True`` holds out ``validation_fraction`` of the rows. Split
with ``train_test_split``, the training part was copied too: a fit held the
data about twice. Now the training rows are visited through the epochs'
order and only the validation rows are copied, so that a fit should stay
within about 1.1 times the data (plus the model's workspaces).

Each case runs in a fresh subprocess: it imports fastgd, loads the kernels
with a tiny fit of the same kind (compiled once, then from Numba's cache),
records its resident set (``VmRSS``), draws the data (float32,
``--rows`` x ``--features``, 200 MB by default), fits, and reads the peak
resident set (``VmHWM`` of ``/proc/self/status``). The printed ratio is
``(peak - resident set before the data) / data size``: 1.0 is the data alone.

Run: ``python benchmarks/validation_memory.py [--rows 500000] [--features 100] [--max-iter 2]``
(Linux only: it reads ``/proc/self/status``).

Measured on the shared 2-vCPU development machine, 500,000 x 100 float32 (200 MB), ratio to the data:

=================  ====================  ==========================  =========================
estimator          early_stopping=False  early_stopping=True, before  early_stopping=True, now
=================  ====================  ==========================  =========================
LinearClassifier   1.06                  2.07                        1.22
MLPClassifier      1.14                  2.09                        1.24
=================  ====================  ==========================  =========================

What early stopping still adds: the validation rows (0.10), and index arrays of 8 bytes a row (the split's
permutation, the epochs' order and the order shuffled ahead on a helper thread: about 0.02 each here, at
400 bytes a row of data).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

#: The estimators measured: (label, constructor expression).
ESTIMATORS = [
    ("LinearClassifier", "LinearClassifier(loss='log_loss', batch_size=32, learning_rate='constant', "
                         "learning_rate_init=0.01, tol=None, random_state=0"),
    ("MLPClassifier", "MLPClassifier((16,), batch_size=256, tol=0.0, random_state=0"),
]

_CHILD = r"""
import json, sys, warnings
import numpy as np
from fastgd import LinearClassifier, MLPClassifier

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

rows, features, max_iter, early = {rows}, {features}, {max_iter}, {early}
make = lambda **kw: {estimator}, early_stopping=early, **kw)
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
small = rng.standard_normal((400, features), dtype=np.float32)
make(max_iter=1).fit(small, (small[:, 0] > 0).astype(np.int64))  # kernels loaded before the baseline
del small
before = status("VmRSS")
X = rng.standard_normal((rows, features), dtype=np.float32)
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
est = make(max_iter=max_iter).fit(X, y)
print(json.dumps({{"before": before, "peak": status("VmHWM"), "data": X.nbytes + y.nbytes,
                  "n_iter": est.n_iter_}}))
"""


def measure(estimator: str, rows: int, features: int, max_iter: int, early: bool) -> dict:
    """Run one fit in a fresh interpreter; its resident set before the data, its peak and the data's size."""
    code = _CHILD.format(rows=rows, features=features, max_iter=max_iter, early=early, estimator=estimator)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the fit failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=2)
    args = parser.parse_args()
    mb = 1e6
    print(f"{args.rows} x {args.features} float32 ({args.rows * args.features * 4 / mb:.0f} MB), "
          f"{args.max_iter} epochs, one fresh process per fit")
    print(f"{'estimator':<18} {'early_stopping':<15} {'before data MB':>15} {'peak MB':>9} {'peak - before MB':>17} "
          f"{'/ data':>7}")
    for label, estimator in ESTIMATORS:
        for early in (False, True):
            result = measure(estimator, args.rows, args.features, args.max_iter, early)
            grown = result["peak"] - result["before"]
            print(f"{label:<18} {early!s:<15} {result['before'] / mb:>15.0f} {result['peak'] / mb:>9.0f} "
                  f"{grown / mb:>17.0f} {grown / result['data']:>7.2f}")


if __name__ == "__main__":
    main()
