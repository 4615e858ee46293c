"""``python -m fastgd``: the lecture on gradient descent, run on real data.

Uses scikit-learn's bundled ``load_digits`` images (1797 samples, 64 pixels,
10 classes; no download) and fastgd's own estimators and optimizers:

1. variants: full-batch GD vs per-sample SGD vs mini-batch SGD
2. optimizers: SGD, Momentum, Nesterov, RMSprop, Adam on the same network
3. vanishing gradients: a deep sigmoid network vs the same with ReLU
4. exploding gradients: a too-large learning rate, without and with clip_norm
5. optimizer trajectories on 2-D surfaces

Tables go to the terminal, figures (PNG) to ``--out`` when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from numba.core import event
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from . import MLPClassifier, NonFiniteTrainingError, NonFiniteTrainingWarning

PARTS = ("variants", "optimizers", "vanishing", "exploding", "trajectories")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastgd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS, action="append",
                        help="run only this part (repeatable); default: all five")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of each training run (default: 30)")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default: 32)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the hidden layers (default: 64)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="floating-point type of the training (default: float32)")
    parser.add_argument("--out", type=Path, default=Path("fastgd-out"),
                        help="folder for the figures (default: ./fastgd-out)")
    parser.add_argument("--no-plots", action="store_true", help="print the tables only")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--warm-up", action="store_true",
                        help="compile every kernel (float32 and float64, dense and CSR input) into Numba's cache "
                             "and exit: for container images and cluster workers, so that no fit compiles later")
    return parser


def _table(rows: list[dict[str, object]]) -> str:
    headers = list(rows[0])
    cells = [[str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


class Lecture:
    """The five parts, sharing the data, the options and the figure folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(args.dtype)
        self.X_train, self.X_test, self.y_train, self.y_test = train_test_split(
            X, y, test_size=0.25, random_state=args.seed, stratify=y)
        self.plot = None
        if not args.no_plots:
            try:
                from . import plot
            except ImportError:
                pass
            else:
                try:
                    plot._pyplot()
                    self.plot = plot
                    args.out.mkdir(parents=True, exist_ok=True)
                except ImportError:
                    print('(matplotlib is not installed: tables only. pip install "fastgd[plot]" for figures.)\n')
        self.figures: list[Path] = []

    def fit(self, **params: Any) -> tuple[MLPClassifier, float, list[str]]:
        """Fit an MLP on the training images; returns it, the seconds taken and the warnings raised."""
        base = {"hidden_layer_sizes": (self.args.hidden,), "max_iter": self.args.epochs, "tol": 0.0,
                "n_iter_no_change": self.args.epochs + 1, "random_state": self.args.seed}
        clf = MLPClassifier(**{**base, **params})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            clf.fit(self.X_train, self.y_train)
            elapsed = time.perf_counter() - started
        return clf, elapsed, [str(w.message) for w in caught if issubclass(w.category, NonFiniteTrainingWarning)]

    def row(self, label: str, clf: MLPClassifier, elapsed: float) -> dict[str, object]:
        return {
            "run": label,
            "epochs": clf.n_iter_,
            "updates": clf.n_updates_,
            "time [s]": f"{elapsed:.3f}",
            "samples/s": f"{clf.t_ / max(elapsed, 1e-9):,.0f}",
            "final loss": f"{clf.loss_curve_[-1]:.4f}" if clf.loss_curve_ else "-",
            "test accuracy": f"{clf.score(self.X_test, self.y_test):.3f}",
        }

    def save(self, name: str, draw: Callable[[Path], Any]) -> None:
        if self.plot is None:
            return
        path = self.args.out / name
        fig = draw(path)[0]
        self.plot._pyplot().close(fig)
        self.figures.append(path)
        print(f"figure: {path}")

    def variants(self) -> None:
        print("1. Full-batch GD, per-sample SGD and mini-batch SGD: the same network and epochs, one knob")
        b = self.args.batch_size
        runs = {"full batch (batch_size=None)": {"batch_size": None, "learning_rate_init": 0.5},
                "per-sample (batch_size=1)": {"batch_size": 1, "learning_rate_init": 0.005},
                f"mini-batch (batch_size={b})": {"batch_size": b, "learning_rate_init": 0.05}}
        rows = []
        for label, params in runs.items():
            clf, elapsed, _ = self.fit(solver="sgd", momentum=0.9, **params)
            rows.append(self.row(label, clf, elapsed))
        print(_table(rows))
        print("Full batch makes one update per epoch; per-sample SGD one per image. Mini-batches take the\n"
              "noise of SGD down while keeping many updates per epoch, and each update is a matrix product.\n")

    def optimizers(self) -> None:
        print(f"2. Optimizers on the same network (mini-batch of {self.args.batch_size})")
        runs = {"SGD": {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.05},
                "Momentum 0.9": {"solver": "sgd", "momentum": 0.9, "nesterovs_momentum": False,
                                 "learning_rate_init": 0.05},
                "Nesterov 0.9": {"solver": "sgd", "momentum": 0.9, "learning_rate_init": 0.05},
                "RMSprop": {"solver": "rmsprop", "learning_rate_init": 0.001},
                "Adam": {"solver": "adam", "learning_rate_init": 0.001}}
        rows, fitted = [], {}
        for label, params in runs.items():
            clf, elapsed, _ = self.fit(batch_size=self.args.batch_size, **params)
            rows.append(self.row(label, clf, elapsed))
            fitted[label] = clf
        print(_table(rows))
        self.save("loss_curves.png", lambda path: self.plot.plot_loss_curves(fitted, path=path))
        print()

    def vanishing(self) -> None:
        print("3. Vanishing gradients: 8 hidden layers of sigmoid units vs the same net with ReLU")
        deep = (32,) * 8
        fitted = {}
        for act in ("logistic", "relu"):
            # lr 0.01: at 0.05 the ReLU net's test accuracy ranged 0.41-0.74 over seeds and thread counts
            clf, _, _ = self.fit(hidden_layer_sizes=deep, activation=act, solver="sgd", momentum=0.9,
                                 learning_rate_init=0.01, batch_size=self.args.batch_size,
                                 max_iter=min(self.args.epochs, 10))
            fitted[act] = clf
        layers = [f"layer {i + 1}" for i in range(9)]
        rows = [{"activation": act, **{name: f"{v:.1e}" for name, v in zip(layers, clf.gradient_norms_[0],
                                                                             strict=True)},
                 "test accuracy": f"{clf.score(self.X_test, self.y_test):.3f}"} for act, clf in fitted.items()]
        print("Mean gradient norm per layer in the first epoch (layer 1 is next to the input):")
        print(_table(rows))
        ratio = fitted["logistic"].gradient_norms_[0, -1] / fitted["logistic"].gradient_norms_[0, 0]
        print(f"With sigmoids the gradient shrinks {ratio:,.0f}-fold from the output to the input layer: the\n"
              "first layers barely learn. ReLU's derivative is 1 where active, so the gradient keeps its size.")
        for act, clf in fitted.items():
            self.save(f"gradient_norms_{act}.png", lambda path, c=clf, a=act: self.plot.plot_gradient_norms(
                c, title=f"8 hidden layers, {a}", path=path))
        print()

    def exploding(self) -> None:
        print("4. Exploding gradients: too large a learning rate, without and with clip_norm=0.5 (2 hidden layers)")
        runs = {"linear units, lr=1.0": {"activation": "identity", "learning_rate_init": 1.0},
                "ReLU units, lr=0.5": {"activation": "relu", "learning_rate_init": 0.5}}
        rows = []
        for label, params in runs.items():
            for clip in (None, 0.5):
                name = f"{label}, " + ("no clipping" if clip is None else f"clip_norm={clip}")
                try:
                    clf, elapsed, caught = self.fit(hidden_layer_sizes=(self.args.hidden,) * 2, solver="sgd",
                                                    momentum=0.9, clip_norm=clip, batch_size=self.args.batch_size,
                                                    **params)
                except NonFiniteTrainingError as error:  # no epoch finished: no model to give back
                    reason = str(error).split(". ")[2].split(",")[0]  # "The training loss became NaN ... epoch N"
                    rows.append({"run": name, "epochs": 0, "updates": "-", "time [s]": "-", "samples/s": "-",
                                 "final loss": "-", "test accuracy": "-", "NaN guard": f"raised: {reason}"})
                    continue
                row = self.row(name, clf, elapsed)
                row["NaN guard"] = "fired: " + caught[0].split(";")[0] if caught else "-"
                rows.append(row)
        print(_table(rows))
        print("Linear units overflow within the first epoch: with no finite epoch there is no model to give\n"
              "back, and fit raises NonFiniteTrainingError (a ValueError, as scikit-learn's). ReLU units fail\n"
              "silently instead: the huge first steps kill most of them and the network learns little.\n"
              "Clipping the gradient's norm tames the same rate in both.\n")

    def trajectories(self) -> None:
        print("5. Optimizer trajectories on Rosenbrock, Beale, a saddle point and an ill-conditioned ravine")
        from .plot import default_trajectory_optimizers
        from .surfaces import SURFACES, trajectory

        rows = []
        for surface in SURFACES.values():
            row: dict[str, object] = {"surface": surface.name}
            for label, optimizer in default_trajectory_optimizers().items():
                end = trajectory(optimizer, surface, steps=300)[-1]
                row[label] = f"f={surface.value_and_gradient(end)[0]:.3g}"
            rows.append(row)
        print("Value reached after 300 steps:")
        print(_table(rows))
        self.save("trajectories.png", lambda path: self.plot.plot_trajectories(path=path))
        print()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lecture; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.warm_up:
        from .warm_up import warm_up

        print(f"Kernels ready in {warm_up():.1f} s: later fits load them from Numba's cache.")
        return 0
    parts = args.part or list(PARTS)
    lecture = Lecture(args)
    print(f"fastgd on load_digits: {lecture.X_train.shape[0]} training and {lecture.X_test.shape[0]} test images, "
          f"64 pixels, 10 classes, {args.dtype}, one hidden layer of {args.hidden} unless said otherwise.")
    started = time.perf_counter()
    # compile the kernels (or load them from Numba's cache) before timing anything: the serial epoch
    # (per-sample) and the split one (mini-batches and the full batch are split into parts of rows)
    compiling = event.TimingListener()
    with event.install_listener("numba:compile", compiling):
        lecture.fit(max_iter=1, batch_size=1)
        lecture.fit(max_iter=1)
        lecture.fit(max_iter=1, batch_size=None)
    elapsed = time.perf_counter() - started
    if compiling.done:
        print(f"Kernels compiled in {elapsed:.1f} s (first use on this machine; later runs load them from "
              "Numba's cache).\n")
    else:
        print(f"Kernels loaded from Numba's cache in {elapsed:.2f} s.\n")
    for part in PARTS:
        if part in parts:
            getattr(lecture, part)()
    total = time.perf_counter() - started
    print(f"Done in {total:.1f} s." + (f" Figures in {args.out}/." if lecture.figures else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
