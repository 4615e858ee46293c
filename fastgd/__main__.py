"""``python -m fastgd``: gradient descent, seen on real data.

Trains a softmax (multinomial logistic) model on scikit-learn's bundled
``load_digits`` images (1797 samples, 64 pixels, 10 classes; no download) and
prints two tables:

1. the three variants of gradient descent -- full-batch, per-sample and
   mini-batch -- with the same epochs: updates made, wall time, samples/s and
   test accuracy;
2. the optimizers of :mod:`fastgd.optim` on the same mini-batch problem.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from . import LinearClassifier

PARTS = ("variants", "optimizers")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastgd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS, action="append",
                        help="run only this part (repeatable); default: all parts")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (default: 30)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default: 32)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="floating-point type of the training (default: float32)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


def _table(rows: list[dict[str, object]]) -> str:
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def _run(label: str, data, **params) -> dict[str, object]:
    X_train, X_test, y_train, y_test = data
    clf = LinearClassifier(loss="log_loss", tol=None, **params)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    elapsed = time.perf_counter() - started
    return {
        "run": label,
        "epochs": clf.n_iter_,
        "updates": clf.t_,
        "time [s]": f"{elapsed:.3f}",
        "samples/s": f"{clf.n_iter_ * X_train.shape[0] / elapsed:,.0f}",
        "final loss": f"{clf.loss_curve_[-1]:.4f}",
        "test accuracy": f"{clf.score(X_test, y_test):.3f}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demonstration; returns the exit status."""
    args = _parser().parse_args(argv)
    parts = args.part or list(PARTS)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(args.dtype)
    data = train_test_split(X, y, test_size=0.25, random_state=args.seed, stratify=y)
    common = {"max_iter": args.epochs, "random_state": args.seed, "learning_rate": "constant"}
    print(f"fastgd on load_digits: {data[0].shape[0]} training and {data[1].shape[0]} test images, "
          f"{X.shape[1]} pixels, 10 classes, {args.dtype}, {args.epochs} epochs each.")
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        LinearClassifier(loss="log_loss", max_iter=1).fit(data[0][:40], data[2][:40])
    print(f"Compiled or loaded the kernels in {time.perf_counter() - started:.2f} s "
          "(compiled once, then loaded from Numba's cache).\n")

    if "variants" in parts:
        print("1. Variants of gradient descent (solver=sgd)")
        rows = [
            _run("full batch (batch_size=None)", data, batch_size=None, learning_rate_init=0.5, **common),
            _run("per-sample (batch_size=1)", data, batch_size=1, learning_rate_init=0.01, **common),
            _run(f"mini-batch (batch_size={args.batch_size})", data, batch_size=args.batch_size,
                 learning_rate_init=0.1, **common),
        ]
        print(_table(rows), end="\n\n")

    if "optimizers" in parts:
        print(f"2. Optimizers (mini-batch of {args.batch_size})")
        rows = [
            _run("SGD", data, solver="sgd", learning_rate_init=0.1, batch_size=args.batch_size, **common),
            _run("Momentum 0.9", data, solver="sgd", momentum=0.9, nesterovs_momentum=False,
                 learning_rate_init=0.01, batch_size=args.batch_size, **common),
            _run("Nesterov 0.9", data, solver="sgd", momentum=0.9, learning_rate_init=0.01,
                 batch_size=args.batch_size, **common),
            _run("RMSprop", data, solver="rmsprop", learning_rate_init=0.001, batch_size=args.batch_size, **common),
            _run("Adam", data, solver="adam", learning_rate_init=0.001, batch_size=args.batch_size, **common),
            _run("AdamW", data, solver="adamw", learning_rate_init=0.001, batch_size=args.batch_size, **common),
            _run("Adagrad", data, solver="adagrad", learning_rate_init=0.05, batch_size=args.batch_size, **common),
        ]
        print(_table(rows), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
