#!/usr/bin/env python
"""fastgd beside its peers, in one process, as markdown tables of ratios.

Sections (all by default; pick some with their flags):

``--sgd``
    Per-sample SGD: ``make_classification(200000, 100, random_state=0)`` as
    float32, 5 shuffled epochs, hinge and log loss. ``fastgd.LinearClassifier``
    against ``sklearn.linear_model.SGDClassifier`` with the same arguments:
    samples/s, speed-up and training accuracy of each. The target is a speed-up
    of at least 4x at the same accuracy (fastgd at most 0.5 point below).
``--optim``
    One optimizer step on 1e7 float32 parameters: SGD with momentum, RMSprop
    and Adam from ``fastgd.optim`` against scikit-learn's MLP optimizers
    (``sklearn.neural_network._stochastic_optimizers``) and, when installed,
    ``torch.optim`` on CPU (``fused=True`` where PyTorch has a fused CPU
    kernel). Throughput is the logical read-modify-write traffic of the update
    (e.g. Adam reads p, g, m, v and writes p, m, v: 7 x 4 bytes per float32
    parameter, whatever temporaries an implementation allocates), as GB/s and
    as a share of the bandwidth of a fused, threaded Numba ``a += s * b`` loop
    (reads a, b, writes a: 12 bytes per element) measured in the same run.

``--mlp``
    A 100-256-128-10 ReLU network on ``make_classification(50000, 100,
    n_informative=50, n_classes=10, random_state=0)`` as float32, trained with
    Adam (scikit-learn's rule, learning rate 1e-3) at batch sizes 1 (a
    5,000-sample subset), 32, 128 and 1024: ``fastgd.MLPClassifier`` against
    ``sklearn.neural_network.MLPClassifier`` (float64, its default, and
    float32) and, when installed, PyTorch on CPU (``nn.Sequential``,
    ``torch.optim.Adam(fused=True)``, with one thread and with its default
    number). scikit-learn and fastgd run with one BLAS thread. Samples/s over whole epochs after a
    warm-up epoch, the speed-ups against the targets (30x, 6x, 4x, 4x
    scikit-learn; 3x, 2x, 1.5x PyTorch at 32, 128, 1024), the share of the
    GEMM-bound rate at 1024 (the same matrix products timed alone with
    ``np.dot``, one BLAS thread) and the training accuracy of each after the
    same number of epochs; fastgd's and scikit-learn's also as the mean over
    ``MLP_ACCURACY_SEEDS`` values of ``random_state`` (the accuracy target's
    measure: one seed's trajectory is worth a point or two either way).

``--cuda``
    On a CUDA GPU (skipped, saying why, without one or under numba's
    simulator): fused Adam on 1e7 float32 parameters as a share of a
    device-to-device copy's bandwidth, and MLP epochs (the ``--mlp`` network,
    batch sizes 32, 128, 1024) with ``device="cuda"`` against PyTorch on the
    same GPU (``benchmarks/cuda_compare.py``).

``--stream``
    ``LinearClassifier(loss="log_loss")`` trained for 2 epochs by
    ``fastgd.stream.fit_chunks`` (chunks of ``--chunk-size`` rows, 200,000 by
    default) over a float32 memmap of ``--rows`` x 100 (10,000,000 rows, 4 GB,
    by default) written to a temporary folder or ``--path``; the row count
    shrinks to what the disk holds, and the data are deleted afterwards unless
    ``--path`` was given. Reports the file's size, the peak resident memory of
    the training alone (Linux ``VmHWM``, reset before it) against the 1 GB
    target, samples/s and accuracy on 100,000 rows. ``--cold`` drops the file
    from the page cache first, so the first epoch reads the disk.
``--threads``
    Mini-batch training of ``LinearClassifier`` on ``make_classification(200000,
    100)`` float32 at batch sizes 256 to the full set, with ``n_threads=1``
    and ``n_threads=2``, and with the serial one-pass gradient (the blocked
    path switched off): samples/s and the speed-up from 1 to 2 threads,
    measured round-robin; with the load average, which decides what a second
    thread can give on a shared machine.
``--partial-fit``
    The per-call time of ``partial_fit`` on a batch of 10 x 100 after
    warm-up (median of 2,000 calls) for ``LinearClassifier`` (per-sample SGD,
    Adam on mini-batches) and ``MLPClassifier((64,))``, and a profile of where
    it goes.

``--text``
    Hashed text as ``HashingVectorizer`` makes it, generated in
    ``bench_linear.hashed_text``: Zipfian tokens hashed to 2**20 columns, ~85
    nonzeros per row, l2-normalised float64 CSR, 125,000 rows (100,000 train,
    25,000 held out), labels from a hidden sparse linear model with label
    noise, binary and 20 classes. Hinge and log loss, 5 epochs:
    ``fastgd.LinearClassifier(batch_size=1)`` (and ``fastgd.SGDClassifier``
    when the commit has it) against ``sklearn.linear_model.SGDClassifier`` and,
    when ``vowpalwabbit`` is installed, Vowpal Wabbit (data written once in its
    text format, trained from its cache file with ``--passes 5 --holdout_off``
    through ``pyvw.Workspace(...).run_parser()``): samples/s, ratio to
    scikit-learn, held-out accuracy against the targets (1.5x scikit-learn,
    accuracy within 0.5 point, at least VW's samples/s). Then a width sweep:
    us per sample at 2**12 ... 2**22 columns (20,000 rows, hinge, 3 epochs),
    fastgd and scikit-learn, against the target (2**22 within 1.5x of 2**12).

``--defaults``
    Accuracy of the defaults: mean 5-fold accuracy (standardised features,
    ``StandardScaler`` in a pipeline, shuffled folds) over 10 seeds on every
    classification data set bundled with scikit-learn (iris, wine,
    breast_cancer, digits), ``sklearn.linear_model.SGDClassifier`` against
    ``fastgd.SGDClassifier`` and ``fastgd.LinearClassifier`` with default
    parameters (hinge) and with ``loss="log_loss"``; R^2 on diabetes for the
    regressors. Target: within 0.5 point of scikit-learn's.

``--quick`` shrinks the problems (20,000 samples, 1e6 parameters; for
``--mlp`` 1,000 and 5,000 samples; for ``--text`` 5,000 rows) for a smoke test. Times are medians of
several repetitions after warm-ups (Numba compiles before any timing),
measured with ``time.perf_counter``.

Run: ``python benchmarks/compare.py [--sgd] [--optim] [--mlp] [--stream [--rows N] [--path DIR] [--cold]]
[--threads] [--partial-fit] [--text] [--defaults] [--quick]``; with no section flag, ``--sgd --optim --mlp`` run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from functools import lru_cache

import numpy as np

SGD_TARGET_SPEEDUP = 4.0
SGD_ACCURACY_TOLERANCE = 0.005  # 0.5 percentage point

#: --text targets: speed-up over scikit-learn at 2**20 columns, and per-sample time at 2**22 over that at 2**12.
TEXT_TARGET_SPEEDUP = 1.5
TEXT_WIDTH_GROWTH_TARGET = 1.5
TEXT_EPOCHS = 5
TEXT_SWEEP_EPOCHS = 3

#: MLP targets by batch size: minimum speed-up over scikit-learn (float64) and over PyTorch.
MLP_SKLEARN_TARGETS = {1: 30.0, 32: 6.0, 128: 4.0, 1024: 4.0}
MLP_TORCH_TARGETS = {32: 3.0, 128: 2.0, 1024: 1.5}
MLP_GEMM_SHARE_TARGET = 0.70
MLP_HIDDEN = (256, 128)
#: Seeds (``random_state`` 0, 1, ...) over which --mlp compares accuracy: one trajectory of per-sample Adam in
#: float32 ends 84.5-87.4 % after 4 epochs depending on the seed (scikit-learn's 83.5-85.6 %), so one seed's
#: difference is mostly the seed's.
MLP_ACCURACY_SEEDS = 5

#: Logical traffic of one update, in arrays of n_params elements read + written.
ARRAYS_MOVED = {"SGD momentum": 3 + 2, "RMSprop": 3 + 2, "Adam": 4 + 3}


# -- measuring -------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _triad_kernel(parallel: bool = True):
    import numba

    @numba.njit(parallel=parallel, nogil=True)
    def scaled_add(a, b, s):
        for i in numba.prange(a.size):
            a[i] += s * b[i]

    return scaled_add


def triad_stepper(n: int, parallel: bool = True) -> Callable[[], None]:
    """A fused ``a += s * b`` on ``n`` float32 (12 bytes of traffic per element), threaded or not."""
    kernel = _triad_kernel(parallel)
    a = np.ones(n, dtype=np.float32)
    b = np.full(n, 0.5, dtype=np.float32)
    s = np.float32(1e-7)
    return lambda: kernel(a, b, s)


def interleaved_medians(steppers: dict, rounds: int, warmups: int = 3) -> tuple[dict, dict]:
    """Median (and best) seconds of each callable, timed round-robin so that drifting load hits all alike.

    In each round every callable runs twice in a row and only the second call
    is timed: the first wakes its library's worker threads (and lets the
    previous library's OpenMP threads stop spinning), as in a training loop
    that calls the same optimizer step after step.
    """
    for step in steppers.values():
        for _ in range(warmups):
            step()
    times: dict = {key: [] for key in steppers}
    for _ in range(rounds):
        for key, step in steppers.items():
            step()
            t0 = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(t) for key, t in times.items()}, {key: min(t) for key, t in times.items()}


# -- the machine -----------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines(with_torch: bool = True) -> list[str]:
    import numba
    import scipy
    import sklearn
    import threadpoolctl

    import fastgd

    _triad_kernel()(np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(0))  # starts Numba's threads
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = [f"fastgd {fastgd.__version__}", f"numpy {np.__version__}", f"numba {numba.__version__}",
                f"scikit-learn {sklearn.__version__}", f"scipy {scipy.__version__}"]
    torch = _torch() if with_torch else None
    versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch
                    else "torch not installed")
    lines = [
        # where fastgd was imported from: an installed copy shadows a checkout for `python benchmarks/compare.py`
        f"- fastgd from {os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores ({usable} usable by this process)",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        "- " + ", ".join(versions),
        f"- Numba: threading layer {numba.threading_layer()}, {numba.get_num_threads()} threads",
    ]
    pools = threadpoolctl.threadpool_info()
    for pool in pools:
        lines.append(f"- threadpoolctl: {pool.get('internal_api')} {pool.get('version')} "
                     f"({pool.get('user_api')}, {pool.get('num_threads')} threads, "
                     f"{os.path.basename(pool.get('filepath', ''))})")
    if not pools:
        lines.append("- threadpoolctl: no native thread pool loaded")
    if hasattr(os, "getloadavg"):
        lines.append("- load average at start (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return lines


@lru_cache(maxsize=1)
def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


# -- section 1: per-sample SGD -----------------------------------------------------------------
def section_sgd(quick: bool) -> None:
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    from fastgd import LinearClassifier

    n_samples = 20_000 if quick else 200_000
    repeats = 5
    X, y = make_classification(n_samples, 100, random_state=0)
    X = X.astype(np.float32)
    print(f"\n## Per-sample SGD: make_classification({n_samples}, 100, random_state=0), float32, "
          "5 shuffled epochs\n")
    print("fastgd.LinearClassifier(loss=..., max_iter=5, tol=None, random_state=0) vs "
          "sklearn.linear_model.SGDClassifier(loss=..., max_iter=5, tol=None, random_state=0); "
          f"median of {repeats} fits each (runs interleaved), accuracy on the training data.\n")
    rows, verdicts = [], []
    for loss in ("hinge", "log_loss"):
        def make(lib, loss=loss):
            cls = LinearClassifier if lib == "fastgd" else SGDClassifier
            return cls(loss=loss, max_iter=5, tol=None, random_state=0)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for lib in ("fastgd", "sklearn"):  # warm-up: compiles fastgd's kernels, loads sklearn's
                make(lib).fit(X[:500], y[:500])
            times = {"fastgd": [], "sklearn": []}
            fitted = {}
            for _ in range(repeats):
                for lib in ("fastgd", "sklearn"):
                    est = make(lib)
                    t0 = time.perf_counter()
                    est.fit(X, y)
                    times[lib].append(time.perf_counter() - t0)
                    fitted[lib] = est
        rate = {lib: n_samples * fitted[lib].n_iter_ / statistics.median(t) for lib, t in times.items()}
        acc = {lib: fitted[lib].score(X, y) for lib in fitted}
        speedup = rate["fastgd"] / rate["sklearn"]
        met = speedup >= SGD_TARGET_SPEEDUP and acc["fastgd"] >= acc["sklearn"] - SGD_ACCURACY_TOLERANCE
        verdicts.append((loss, speedup, acc["fastgd"] - acc["sklearn"], met))
        rows.append([loss, f"{rate['fastgd'] / 1e6:.2f} M", f"{rate['sklearn'] / 1e6:.2f} M", f"{speedup:.2f}x",
                     f"{100 * acc['fastgd']:.2f} %", f"{100 * acc['sklearn']:.2f} %",
                     f"{100 * (acc['fastgd'] - acc['sklearn']):+.2f}", "yes" if met else "no"])
    print(markdown_table(["loss", "fastgd samples/s", "sklearn samples/s", "speed-up", "fastgd acc",
                          "sklearn acc", "Δacc (points)", "target met"], rows))
    print()
    for loss, speedup, dacc, met in verdicts:
        print(f"- {loss}: target (>= {SGD_TARGET_SPEEDUP:.0f}x at accuracy within "
              f"{100 * SGD_ACCURACY_TOLERANCE:.1f} point) {'MET' if met else 'NOT MET'}: "
              f"{speedup:.2f}x, Δacc {100 * dacc:+.2f} points")


# -- section 2: optimizer steps ----------------------------------------------------------------
def _fastgd_steppers(n: int, rng: np.random.Generator) -> dict[str, Callable[[], None]]:
    from fastgd.optim import SGD, Adam, RMSprop

    out = {}
    for name, opt in (("SGD momentum", SGD(lr=1e-3, momentum=0.9)),
                      ("RMSprop", RMSprop(lr=1e-3, alpha=0.99)),
                      ("Adam", Adam(lr=1e-3))):
        params = rng.standard_normal(n, dtype=np.float32)
        grads = rng.standard_normal(n, dtype=np.float32)
        state = opt.init(params)
        out[name] = (lambda opt=opt, p=params, g=grads, s=state: opt.step(p, g, s))
    return out


def _one_numba_thread(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` run with Numba limited to one thread (``numba.set_num_threads(1)``)."""
    import numba

    def run() -> None:
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            step()
        finally:
            numba.set_num_threads(threads)

    return run


def _sklearn_steppers(n: int, rng: np.random.Generator) -> dict[str, Callable[[], None]]:
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    out = {}
    for name, make in (("SGD momentum", lambda p: SGDOptimizer(p, learning_rate_init=1e-3, momentum=0.9,
                                                               nesterov=False)),
                       ("Adam", lambda p: AdamOptimizer(p, learning_rate_init=1e-3))):
        params = [rng.standard_normal(n, dtype=np.float32)]
        grads = [rng.standard_normal(n, dtype=np.float32)]
        opt = make(params)
        out[name] = (lambda opt=opt, p=params, g=grads: opt.update_params(p, g))
    return out


def _torch_steppers(n: int, rng: np.random.Generator) -> tuple[dict[str, Callable[[], None]], dict[str, str]]:
    torch = _torch()
    out, labels = {}, {}
    for name, cls, kwargs in (("SGD momentum", torch.optim.SGD, {"lr": 1e-3, "momentum": 0.9}),
                              ("RMSprop", torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.99}),
                              ("Adam", torch.optim.Adam, {"lr": 1e-3})):
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n, dtype=np.float32)))
        p.grad = torch.from_numpy(rng.standard_normal(n, dtype=np.float32))
        variant = "fused"
        try:
            opt = cls([p], fused=True, **kwargs)
            opt.step()
        except (RuntimeError, TypeError, ValueError):  # no fused CPU kernel for this optimizer
            variant = "single-tensor"
            opt = cls([p], foreach=False, **kwargs)
        out[name] = opt.step
        labels[name] = f"torch.optim.{cls.__name__} ({variant})"
    return out, labels


def section_optim(quick: bool) -> None:
    n = 1_000_000 if quick else 10_000_000
    rounds = 25
    rng = np.random.default_rng(0)
    implementations: list[tuple[str, dict[str, Callable[[], None]], dict[str, str]]] = []
    fast = _fastgd_steppers(n, rng)
    implementations.append(("fastgd", fast, {k: f"fastgd.optim.{k.split()[0]}" for k in fast}))
    implementations.append(("fastgd-1", {k: _one_numba_thread(step) for k, step in fast.items()},
                            {k: f"fastgd.optim.{k.split()[0]}, 1 Numba thread" for k in fast}))
    skl = _sklearn_steppers(n, rng)
    implementations.append(("sklearn", skl, {"SGD momentum": "sklearn SGDOptimizer", "Adam": "sklearn AdamOptimizer"}))
    torch = _torch()
    if torch is not None:
        steppers, labels = _torch_steppers(n, rng)
        implementations.append(("torch", steppers, labels))
    all_steppers = {("triad", "numba"): triad_stepper(n), ("triad", "serial"): triad_stepper(n, parallel=False)}
    for lib, steppers, _ in implementations:
        all_steppers.update({(update, lib): step for update, step in steppers.items()})
    seconds, best = interleaved_medians(all_steppers, rounds)
    triad_s = seconds["triad", "numba"]
    bandwidth = 3 * 4 * n / triad_s
    serial_bandwidth = 3 * 4 * n / seconds["triad", "serial"]

    print(f"\n## Optimizer step on {n:.0e} float32 parameters\n")
    print(f"Reference bandwidth: fused Numba `a += s * b` (parallel, {n:.0e} float32, 12 bytes/element) "
          f"= {bandwidth / 1e9:.1f} GB/s ({1e3 * triad_s:.2f} ms; the same loop on one thread: "
          f"{serial_bandwidth / 1e9:.1f} GB/s). Traffic counted per update: SGD momentum "
          "and RMSprop read p, g, buf and write p, buf (20 B/param); Adam reads p, g, m, v and writes p, m, v "
          f"(28 B/param). Median of {rounds} steps per implementation, timed round-robin, each timed step right "
          "after an untimed one, after 3 warm-up steps; speed-up = peer time / fastgd time.\n")
    rows = []
    for update, n_arrays in ARRAYS_MOVED.items():
        nbytes = n_arrays * 4 * n
        for lib, _, labels in implementations:
            if (update, lib) not in seconds:
                continue
            t = seconds[update, lib]
            rows.append([update, labels[update], f"{1e3 * t:.2f}", f"{1e3 * best[update, lib]:.2f}",
                         f"{nbytes / t / 1e9:.1f}",
                         f"{100 * nbytes / t / bandwidth:.0f} %", f"{t / seconds[update, 'fastgd']:.2f}x"])
    print(markdown_table(["update", "implementation", "ms/step", "best ms", "GB/s", "% of triad bandwidth",
                          "fastgd speed-up"], rows))
    print()
    if torch is None:
        print("- torch not installed: PyTorch peers skipped (`pip install torch` to add them).")
    print("- scikit-learn has no RMSprop optimizer; its optimizers allocate temporaries (numpy expressions).")
    print("- The 1-thread rows run the same fastgd step with `numba.set_num_threads(1)`, for scale.")
    print("- GB/s, % and speed-up use the medians; `best ms` is the fastest of the timed steps.")
    print("- Over 100 % means the update moved its bytes faster than the reference loop did.")


# -- section 3: multi-layer perceptrons ------------------------------------------------------------
def _mlp_epochs(make_and_step: Callable[[], Callable[[], None]], repeats: int) -> tuple[list[float], Callable]:
    """Build a model (its first epoch is the warm-up), then time ``repeats`` further epochs."""
    step = make_and_step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times, step


def _sk_mlp_stepper(cls, X, y, batch_size: int, random_state: int = 0, **kwargs) -> tuple[Callable[[], None], object]:
    est = cls(hidden_layer_sizes=MLP_HIDDEN, solver="adam", batch_size=batch_size, max_iter=1, warm_start=True,
              random_state=random_state, tol=0.0, n_iter_no_change=10**9, **kwargs)
    est.fit(X, y)  # warm-up epoch (compiles fastgd's kernels)
    return lambda: est.fit(X, y), est


def _mlp_accuracies(cls, X, y, batch_size: int, epochs: int, seeds: range, **kwargs) -> list[float]:
    """Training accuracy after ``epochs`` epochs, one model per ``random_state`` in ``seeds`` (one BLAS thread)."""
    import threadpoolctl

    scores = []
    for seed in seeds:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            step, est = _sk_mlp_stepper(cls, X, y, batch_size, random_state=seed, **kwargs)  # the first epoch
            for _ in range(epochs - 1):
                step()
            scores.append(est.score(X, y))
    return scores


def torch_mlp(X, y, batch_size: int, device: str = "cpu"):
    """The PyTorch peer of the MLP sections: ``nn.Sequential`` ReLU network, fused Adam, cross-entropy.

    Returns ``(model, epoch)``; ``epoch()`` trains one shuffled epoch on ``device`` (the data are copied
    there once). Seeds are fixed, so two calls build the same model.
    """
    torch = _torch()
    torch.manual_seed(0)
    n_features, n_classes = X.shape[1], int(y.max()) + 1
    sizes = [n_features, *MLP_HIDDEN, n_classes]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    yt = torch.from_numpy(y.astype(np.int64)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def epoch() -> None:
        perm = torch.randperm(Xt.shape[0], generator=gen, device=device)
        for start in range(0, Xt.shape[0], batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()

    return model, epoch


def _torch_mlp_stepper(X, y, batch_size: int, threads: int):
    torch = _torch()
    torch.set_num_threads(threads)
    model, epoch = torch_mlp(X, y, batch_size)

    def accuracy(Xa, ya) -> float:
        with torch.no_grad():
            pred = model(torch.from_numpy(np.ascontiguousarray(Xa, dtype=np.float32))).argmax(1).numpy()
        return float((pred == ya).mean())

    epoch()  # warm-up
    return epoch, accuracy


def _gemm_rate(batch_size: int, sizes: list[int], repeats: int = 20) -> float:
    """Samples/s of the MLP's matrix products alone (forward, weight gradients, hidden deltas), float32."""
    import threadpoolctl

    rng = np.random.default_rng(0)
    acts = [rng.standard_normal((batch_size, n), dtype=np.float32) for n in sizes]
    weights = [rng.standard_normal((sizes[i], sizes[i + 1]), dtype=np.float32) for i in range(len(sizes) - 1)]
    grads = [np.empty_like(W) for W in weights]

    def products() -> None:
        for i, W in enumerate(weights):
            np.dot(acts[i], W, acts[i + 1])
        for i in range(len(weights) - 1, -1, -1):
            np.dot(acts[i].T, acts[i + 1], grads[i])
            if i > 0:
                np.dot(acts[i + 1], weights[i].T, acts[i])

    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        for _ in range(3):
            products()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            products()
            times.append(time.perf_counter() - t0)
    return batch_size / statistics.median(times)


def section_mlp(quick: bool) -> None:
    import threadpoolctl
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastgd import MLPClassifier
    from fastgd.backends.cpu import available_cpus
    from fastgd.backends.cpu_mlp import MIN_PART_ROWS

    n_full = 5_000 if quick else 50_000
    n_single = 1_000 if quick else 5_000
    repeats = 2 if quick else 3
    seeds = 2 if quick else MLP_ACCURACY_SEEDS
    X, y = make_classification(n_samples=n_full, n_features=100, n_informative=50, n_classes=10, random_state=0)
    X = X.astype(np.float32)
    torch = _torch()
    torch_threads = sorted({1, torch.get_num_threads()}) if torch else []
    print(f"\n## MLP {100}-{MLP_HIDDEN[0]}-{MLP_HIDDEN[1]}-10 (ReLU, softmax), Adam: "
          f"make_classification({n_full}, 100, n_informative=50, n_classes=10, random_state=0), float32\n")
    print(f"One warm-up epoch, then the median of {repeats} timed epochs, in samples/s; batch size 1 uses the "
          f"first {n_single} samples. scikit-learn's and fastgd's `MLPClassifier(hidden_layer_sizes={MLP_HIDDEN}, "
          "solver='adam', batch_size=..., max_iter=1, warm_start=True, random_state=0)`, one fit per epoch "
          "(scikit-learn on 1 BLAS thread; fastgd with n_threads=1, and with n_threads=2 -- each batch split "
          f"into two parts on two threads -- from batch {2 * MIN_PART_ROWS} on, credited with the faster, "
          "as PyTorch is); "
          "PyTorch: `nn.Sequential` + `torch.optim.Adam(lr=1e-3, fused=True)` + `CrossEntropyLoss` (no L2 term), "
          f"with {' and '.join(map(str, torch_threads)) or 'no'} thread(s). Accuracy on the training samples after "
          f"the same {1 + repeats} epochs: of the timed models (random_state=0), and the mean over random_state "
          f"0-{seeds - 1} of fastgd (one thread) and scikit-learn float64, which decides the accuracy target. "
          "Ratios are fastgd's speed-up; targets in brackets.\n")
    rows, notes = [], []
    torch_state = torch.get_num_threads() if torch else None
    for batch_size in (1, 32, 128, 1024):
        n = n_single if batch_size == 1 else n_full
        Xb, yb = X[:n], y[:n]
        rate, acc = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            candidates = {"fastgd 1t": (MLPClassifier, Xb, {"n_threads": 1}),
                          "sklearn f64": (SkMLP, Xb.astype(np.float64), {}), "sklearn f32": (SkMLP, Xb, {})}
            if available_cpus() >= 2 and batch_size >= 2 * MIN_PART_ROWS:
                candidates["fastgd 2t"] = (MLPClassifier, Xb, {"n_threads": 2})
            for name, (cls, Xc, kwargs) in candidates.items():
                # one BLAS thread for scikit-learn: on a few cores the spinning threads of several pools cost
                # it 2-10x; fastgd multiplies on one BLAS thread in any case (Numba's threads split its batches)
                # the accuracy too: BLAS threads woken by a prediction keep spinning into the next timing
                with threadpoolctl.threadpool_limits(1, user_api="blas"):
                    step, est = _sk_mlp_stepper(cls, Xc, yb, batch_size, **kwargs)
                    times, _ = _mlp_epochs(lambda step=step: step, repeats)
                    acc[name] = est.score(Xc, yb)
                rate[name] = n / statistics.median(times)
        # like PyTorch, fastgd is credited with the faster of 1 and 2 threads
        fastgd_best = max((k for k in rate if k.startswith("fastgd")), key=rate.get)
        rate["fastgd"], acc["fastgd"] = rate[fastgd_best], acc[fastgd_best]
        for threads in torch_threads:
            with threadpoolctl.threadpool_limits(1, user_api="blas"):
                step, accuracy = _torch_mlp_stepper(Xb, yb, batch_size, threads)
                times, _ = _mlp_epochs(lambda step=step: step, repeats)
                acc[f"torch {threads}t"] = accuracy(Xb, yb)
            rate[f"torch {threads}t"] = n / statistics.median(times)
        torch_best = max((k for k in rate if k.startswith("torch")), key=rate.get, default=None)
        # accuracy over several seeds (seed 0: the timed models above; fastgd on one thread for the others)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            more = range(1, seeds)
            fastgd_acc = [acc["fastgd"], *_mlp_accuracies(MLPClassifier, Xb, yb, batch_size, 1 + repeats, more,
                                                          n_threads=1)]
            sk_acc = [acc["sklearn f64"], *_mlp_accuracies(SkMLP, Xb.astype(np.float64), yb, batch_size,
                                                           1 + repeats, more)]
        dacc_seeds = float(np.mean(fastgd_acc) - np.mean(sk_acc))
        sk_ratio = rate["fastgd"] / rate["sklearn f64"]
        sk_target = MLP_SKLEARN_TARGETS[batch_size]
        torch_ratio = rate["fastgd"] / rate[torch_best] if torch_best else float("nan")
        torch_target = MLP_TORCH_TARGETS.get(batch_size)
        torch_cell = "n/a" if torch_best is None else (
            f"{torch_ratio:.2f}x" + (f" ({torch_target:g}x)" if torch_target else ""))
        dacc = acc["fastgd"] - acc["sklearn f64"]
        rows.append([str(batch_size), f"{rate['fastgd'] / 1e3:.1f} k ({fastgd_best.split()[1]})",
                     f"{rate['sklearn f64'] / 1e3:.1f} k",
                     f"{rate['sklearn f32'] / 1e3:.1f} k",
                     f"{rate[torch_best] / 1e3:.1f} k ({torch_best.split()[1]})" if torch_best else "n/a",
                     f"{sk_ratio:.2f}x ({sk_target:g}x)", f"{rate['fastgd'] / rate['sklearn f32']:.2f}x",
                     torch_cell, f"{100 * acc['fastgd']:.2f}", f"{100 * acc['sklearn f64']:.2f}",
                     f"{100 * acc[torch_best]:.2f}" if torch_best else "n/a", f"{100 * dacc:+.2f}",
                     f"{100 * np.mean(fastgd_acc):.2f} / {100 * np.mean(sk_acc):.2f} ({100 * dacc_seeds:+.2f})"])
        met_sk = sk_ratio >= sk_target
        met_torch = torch_target is None or torch_best is None or torch_ratio >= torch_target
        met_acc = dacc_seeds >= -SGD_ACCURACY_TOLERANCE  # at most 0.5 point below scikit-learn, as in --sgd
        notes.append(f"- batch {batch_size}: vs scikit-learn {sk_ratio:.2f}x (target {sk_target:g}x) "
                     f"{'MET' if met_sk else 'NOT MET'}"
                     + (f"; vs PyTorch {torch_ratio:.2f}x (target {torch_target:g}x) "
                        f"{'MET' if met_torch else 'NOT MET'}" if torch_target and torch_best else "")
                     + f"; accuracy over {seeds} seeds {100 * dacc_seeds:+.2f} points (fastgd "
                     + f"{100 * min(fastgd_acc):.2f}-{100 * max(fastgd_acc):.2f} %, scikit-learn "
                     + f"{100 * min(sk_acc):.2f}-{100 * max(sk_acc):.2f} %; seed 0 {100 * dacc:+.2f}) "
                     + f"{'MET' if met_acc else 'NOT MET'} ("
                     + ", ".join(f"{k} {v / 1e3:.1f} k" for k, v in rate.items()
                                 if k.startswith(("fastgd ", "torch ")))
                     + ")")
        if batch_size == 1024:
            gemm = _gemm_rate(batch_size, [100, *MLP_HIDDEN, 10])
            gemm_share = rate["fastgd 1t"] / gemm
            notes.append(f"- batch 1024: the same matrix products alone (np.dot, 1 BLAS thread) run at "
                         f"{gemm / 1e3:.1f} k samples/s; fastgd on 1 thread reaches {100 * gemm_share:.0f} % of "
                         "it (target "
                         f"{100 * MLP_GEMM_SHARE_TARGET:.0f} %) "
                         f"{'MET' if gemm_share >= MLP_GEMM_SHARE_TARGET else 'NOT MET'}")
    if torch:
        torch.set_num_threads(torch_state)
    print(markdown_table(["batch", "fastgd (threads)", "sklearn f64", "sklearn f32", "torch (threads)", "x sklearn f64",
                          "x sklearn f32", "x torch", "fastgd acc %", "sklearn f64 acc %", "torch acc %",
                          "Δacc vs sklearn", f"mean acc % over {seeds} seeds: fastgd / sklearn (Δ)"], rows))
    print()
    print("\n".join(notes))


# -- section 4: streaming from a memmap -------------------------------------------------------
def section_stream(rows: int, path: str | None, chunk_size: int, cold: bool) -> None:
    import tempfile

    try:
        import bench_stream
    except ImportError:  # imported as benchmarks.compare
        from benchmarks import bench_stream
    epochs = bench_stream.STREAM_EPOCHS

    folder = tempfile.TemporaryDirectory(prefix="fastgd-stream-") if path is None else None
    directory = path if path is not None else folder.name
    try:
        fitting = bench_stream.rows_that_fit(directory, rows)
        print(f"\n## Streaming: {epochs} epochs of LinearClassifier(loss='log_loss') over a float32 memmap "
              f"of {fitting:,} x 100, chunks of {chunk_size:,} rows\n")
        if fitting < rows:
            print(f"- the disk of {directory} holds only {fitting:,} of the {rows:,} rows asked for (2 GB kept free)")
        started = time.perf_counter()
        X_path, y_path = bench_stream.write_dataset(directory, fitting)
        size = os.path.getsize(X_path)
        print(f"- wrote {size / 1e9:.2f} GB ({X_path}) in {time.perf_counter() - started:.0f} s")
        if cold:
            print(f"- page cache dropped for the file: {bench_stream.evict_from_page_cache(X_path)}")
        X, y = bench_stream.open_dataset(X_path, y_path)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rss_before = bench_stream.current_rss()
        model, seconds, peak = bench_stream.train(X, y, chunk_size=chunk_size)
        load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        sample = slice(0, min(100_000, fitting))
        accuracy = model.score(np.asarray(X[sample]), np.asarray(y[sample]))
        rate = fitting * epochs / seconds
        met = peak.bytes < 1e9
        print(markdown_table(
            ["rows", "file GB", "epochs", "seconds", "samples/s", "peak RSS (training)", "RSS before", "accuracy",
             "1-min load"],
            [[f"{fitting:,}", f"{size / 1e9:.2f}", str(epochs), f"{seconds:.1f}", f"{rate / 1e6:.2f} M",
              f"{peak.bytes / 1e6:.0f} MB" + ("" if peak.exact else " (process lifetime)"),
              f"{rss_before / 1e6:.0f} MB", f"{100 * accuracy:.2f} %", f"{load_before:.2f} -> {load_after:.2f}"]]))
        print(f"\n- target (peak resident memory under 1 GB): {'MET' if met else 'NOT MET'}")
        del X, y
    finally:
        if folder is not None:
            folder.cleanup()
        else:
            for name in ("X.f32", "y.npy"):
                try:
                    os.remove(os.path.join(directory, name))
                except OSError:
                    pass


# -- section 5: threads ------------------------------------------------------------------------
def section_threads(quick: bool) -> None:
    from sklearn.datasets import make_classification

    import fastgd.backends.cpu as cpu
    from fastgd import LinearClassifier

    n_samples = 20_000 if quick else 200_000
    repeats = 3 if quick else 5
    X, y = make_classification(n_samples, 100, n_informative=20, random_state=0)
    X = X.astype(np.float32)
    default_min_work = cpu.THREADED_MIN_WORK
    print(f"\n## Threads: mini-batch LinearClassifier(loss='log_loss') on make_classification({n_samples}, 100), "
          "float32, 3 shuffled epochs\n")
    print("serial: one-pass gradient (blocked path off); 1 / 2 threads: the blocked gradient with n_threads=1 / 2 "
          f"(the default rule blocks batches of at least {default_min_work:,} rows x parameters). Minimum of "
          f"{repeats} fits each, run round-robin.\n")

    def fit(batch_size, n_threads, blocked):
        cpu.THREADED_MIN_WORK = 0 if blocked else 1 << 62
        est = LinearClassifier(loss="log_loss", learning_rate="constant", learning_rate_init=1e-2,
                               batch_size=batch_size, max_iter=3, tol=None, random_state=0, n_threads=n_threads)
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0

    variants = {"serial": (1, False), "1 thread": (1, True), "2 threads": (2, True)}
    rows = []
    try:
        for batch_size in (256, 1024, 4096, 16384, None):
            for args in variants.values():
                fit(batch_size, *args)
            times: dict[str, list[float]] = {name: [] for name in variants}
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            for _ in range(repeats):
                for name, args in variants.items():
                    times[name].append(fit(batch_size, *args))
            rate = {name: 3 * n_samples / min(t) for name, t in times.items()}
            blocks = cpu.block_partition(batch_size or n_samples, 101.0, 101)[1]
            rows.append([str(batch_size or "full"), str(blocks)] + [f"{rate[n] / 1e6:.2f} M" for n in variants]
                        + [f"{rate['2 threads'] / rate['1 thread']:.2f}x",
                           f"{rate['2 threads'] / rate['serial']:.2f}x", f"{load:.2f}"])
    finally:
        cpu.THREADED_MIN_WORK = default_min_work
    print(markdown_table(["batch", "blocks", "serial", "1 thread", "2 threads", "2 vs 1 thread", "2 threads vs serial",
                          "1-min load"], rows))


# -- section 6: partial_fit overhead -----------------------------------------------------------
def section_partial_fit() -> None:
    import cProfile
    import pstats

    from fastgd import LinearClassifier, MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 100))
    y = np.arange(10) % 2
    calls = 2000
    print(f"\n## partial_fit per call: a batch of 10 x 100 (float64), median of {calls} calls after warm-up\n")
    # (part of the file path, function name) of what each column sums
    groups = {
        "parameters": [("sklearn/base.py", "_validate_params")],
        "validate_data": [("sklearn/utils/validation.py", "validate_data")],
        "labels": [("fastgd/estimators", "_encode"), ("fastgd/estimators", "_encode_targets")],
        "sample weights": [("sklearn/utils/validation.py", "_check_sample_weight")],
        "random state": [("sklearn/utils/validation.py", "check_random_state")],
        "optimizer, schedule": [("fastgd/estimators", "make_optimizer"), ("fastgd/estimators", "_make_optimizer"),
                                ("fastgd/estimators", "make_schedule"), ("fastgd/backends", "make_update_rule")],
        "trainer": [("fastgd/backends", "__init__")],
        "thread limits": [("fastgd/backends", "one_blas_thread"), ("fastgd/backends", "numba_threads")],
        "compiled epoch": [("fastgd/backends", "run_epoch")],
        "engine": [("fastgd/engine.py", "run_epochs")],
    }
    rows = []
    for name, est in (("LinearClassifier, per-sample SGD", LinearClassifier(loss="log_loss", random_state=0)),
                      ("LinearClassifier, Adam, batch 32", LinearClassifier(loss="log_loss", solver="adam",
                                                                            batch_size=32, random_state=0)),
                      ("MLPClassifier((64,)), Adam", MLPClassifier((64,), random_state=0))):
        est.partial_fit(X, y, classes=[0, 1])
        for _ in range(100):
            est.partial_fit(X, y)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            est.partial_fit(X, y)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(300):
            est.partial_fit(X, y)
        profile.disable()
        stats = pstats.Stats(profile).stats
        total = max(v[3] for (file, line, func), v in stats.items() if func == "partial_fit")
        shares = []
        for parts in groups.values():
            cum = sum(v[3] for (file, line, func), v in stats.items()
                      if any(part in file.replace(os.sep, "/") and func == wanted for part, wanted in parts))
            shares.append(f"{100 * cum / total:.0f} %")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rows.append([name, f"{1e3 * median:.3f}", f"{1e3 * min(times):.3f}", *shares, f"{load:.2f}"])
    print(markdown_table(["estimator", "median ms", "best ms", *groups, "1-min load"], rows))
    print("\nShares are of the profiled time (cProfile inflates small calls), overlapping where one group calls "
          "another (the engine runs the compiled epoch).")


# -- section 7: hashed text ------------------------------------------------------------------------
def _bench_linear():
    try:
        import bench_linear
    except ImportError:  # imported as benchmarks.compare
        from benchmarks import bench_linear
    return bench_linear


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _range(values, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    lo, mid, hi = (scale * v for v in (min(values), statistics.median(values), max(values)))
    return f"{fmt.format(mid)} ({fmt.format(lo)}-{fmt.format(hi)})"


def _per_round(times: dict[str, list[float]], peer: str, name: str) -> list[float]:
    """``peer``'s time over ``name``'s in each round of an interleaved measurement (a speed-up of ``name``)."""
    return [a / b for a, b in zip(times[peer], times[name], strict=True)]


def _write_vw(path: str, X, labels) -> None:
    """Rows of CSR ``X`` in Vowpal Wabbit's text format, ``label | column:value ...``, one line each."""
    with open(path, "w") as f:
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            f.write(f"{labels[i]} | " + " ".join(map("{}:{:.9g}".format, X.indices[lo:hi].tolist(),
                                                     X.data[lo:hi].tolist())) + "\n")


class _VowpalWabbit:
    """Vowpal Wabbit on one task: the data written once in its text format, each fit read from its cache.

    ``fit(loss)`` trains ``--passes TEXT_EPOCHS --holdout_off`` from the cache file
    through ``pyvw.Workspace(...).run_parser()`` and saves the model; the first
    call of a task writes the cache (call it untimed, as a warm-up).
    ``accuracy(loss)`` predicts the held-out rows with the saved model.
    """

    LOSSES = {"hinge": "hinge", "log_loss": "logistic"}

    def __init__(self, folder: str, X_train, y_train, X_test, y_test, n_classes: int, epochs: int):
        self.folder, self.n_classes, self.epochs = folder, n_classes, epochs
        self.y_test = y_test
        self.bits = max(1, int(X_train.shape[1] - 1).bit_length())
        to_vw = (lambda y: np.where(y == 1, 1, -1)) if n_classes == 2 else (lambda y: y + 1)
        self.train, self.test = os.path.join(folder, "train.vw"), os.path.join(folder, "test.vw")
        self.cache = os.path.join(folder, "train.cache")
        _write_vw(self.train, X_train, to_vw(y_train))
        _write_vw(self.test, X_test, to_vw(y_test))

    def _model(self, loss: str) -> str:
        return os.path.join(self.folder, f"{loss}.model")

    def fit(self, loss: str) -> None:
        from vowpalwabbit import pyvw

        task = f"--oaa {self.n_classes} " if self.n_classes > 2 else ""
        ws = pyvw.Workspace(f"--quiet -b {self.bits} {task}--loss_function {self.LOSSES[loss]} -d {self.train} "
                            f"--cache_file {self.cache} --passes {self.epochs} --holdout_off -f {self._model(loss)}")
        ws.run_parser()
        ws.finish()

    def accuracy(self, loss: str) -> float:
        from vowpalwabbit import pyvw

        predictions = os.path.join(self.folder, f"{loss}.predictions")
        ws = pyvw.Workspace(f"--quiet -t -i {self._model(loss)} -d {self.test} -p {predictions}")
        ws.run_parser()
        ws.finish()
        with open(predictions) as f:
            pred = np.array([float(line.split()[0]) for line in f if line.strip()])
        labels = (pred > 0).astype(int) if self.n_classes == 2 else pred.astype(int) - 1
        return float(np.mean(labels == self.y_test))


def _vowpalwabbit_version() -> str | None:
    try:
        import vowpalwabbit
        from vowpalwabbit import pyvw  # noqa: F401
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vowpalwabbit")
    except PackageNotFoundError:
        return getattr(vowpalwabbit, "__version__", "?")


def section_text(quick: bool) -> None:
    import tempfile

    from sklearn.linear_model import SGDClassifier

    import fastgd

    bl = _bench_linear()
    n_rows = 5_000 if quick else 125_000
    n_features, epochs, repeats = 2**20, TEXT_EPOCHS, 3
    n_train = int(0.8 * n_rows)
    vw_version = _vowpalwabbit_version()
    has_drop_in = hasattr(fastgd, "SGDClassifier")
    print(f"\n## Hashed text: {n_rows:,} rows x 2**20 columns, float64 CSR, {epochs} epochs of per-sample SGD\n")
    print(f"Synthetic text (`benchmarks/bench_linear.py`, `hashed_text`): Zipfian tokens (exponent "
          f"{bl.TEXT_ZIPF}) over {bl.TEXT_VOCAB:,} token ids hashed to columns by a multiplicative hash, "
          "1 + log(count), l2-normalised rows; labels from a hidden sparse linear model over topic keywords, "
          f"{100 * bl.TEXT_LABEL_NOISE:.0f} % of them replaced at random. First {n_train:,} rows train, the rest "
          f"({n_rows - n_train:,}) are held out. fastgd.LinearClassifier(loss=..., batch_size=1, "
          "learning_rate='optimal', alpha=1e-4, max_iter=5, tol=None, random_state=0)"
          + (", fastgd.SGDClassifier(loss=..., max_iter=5, tol=None, random_state=0)" if has_drop_in else "")
          + " and sklearn SGDClassifier(loss=..., max_iter=5, tol=None, alpha=1e-4, random_state=0)"
          + (f" and Vowpal Wabbit {vw_version} (its default adaptive, normalised updates; `--passes {epochs} "
             "--holdout_off` from its cache file, `--loss_function hinge|logistic`, `--oaa 20` for 20 classes)"
             if vw_version else "")
          + f". samples/s = {n_train:,} x {epochs} / fit seconds: median (min-max) of {repeats} fits each, run "
          "round-robin after a warm-up fit (compilation); the ratio to sklearn is per round (median, min-max); "
          "accuracy on the held-out rows.\n")
    rows, verdicts = [], []
    for n_classes in (2, 20):
        X, y = bl.hashed_text(n_rows, n_features, n_classes)
        X_train, y_train, X_test, y_test = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
        folder = tempfile.TemporaryDirectory(prefix="fastgd-text-vw-") if vw_version else None
        try:
            vw = (_VowpalWabbit(folder.name, X_train, y_train, X_test, y_test, n_classes, epochs)
                  if folder else None)
            for loss in ("hinge", "log_loss"):
                makers: dict[str, Callable[[], object]] = {
                    "fastgd LinearClassifier": lambda loss=loss: fastgd.LinearClassifier(
                        loss=loss, batch_size=1, learning_rate="optimal", alpha=1e-4, max_iter=epochs, tol=None,
                        random_state=0)}
                if has_drop_in:
                    makers["fastgd SGDClassifier"] = lambda loss=loss: fastgd.SGDClassifier(
                        loss=loss, max_iter=epochs, tol=None, random_state=0)
                makers["sklearn SGDClassifier"] = lambda loss=loss: SGDClassifier(
                    loss=loss, max_iter=epochs, tol=None, alpha=1e-4, random_state=0)
                fits: dict[str, Callable[[], object]] = {
                    name: (lambda make=make, X=X_train, y=y_train: bl._fit_quietly(make(), X, y))
                    for name, make in makers.items()}
                if vw is not None:
                    fits["Vowpal Wabbit"] = lambda loss=loss, vw=vw: vw.fit(loss)
                load_before = _load()
                for name, fit in fits.items():  # warm-up: compiles fastgd's kernels, writes VW's cache
                    if name.startswith("fastgd"):
                        bl._fit_quietly(makers[name](), X_train[:1000], y_train[:1000])
                    else:
                        fit()
                times: dict[str, list[float]] = {name: [] for name in fits}
                fitted: dict[str, object] = {}
                for _ in range(repeats):
                    for name, fit in fits.items():
                        t0 = time.perf_counter()
                        fitted[name] = fit()
                        times[name].append(time.perf_counter() - t0)
                load = f"{load_before:.2f} -> {_load():.2f}"
                acc = {name: (vw.accuracy(loss) if name == "Vowpal Wabbit" else est.score(X_test, y_test))
                       for name, est in fitted.items()}
                sk = "sklearn SGDClassifier"
                for name in fits:
                    rows.append([f"{n_classes}", loss, name, _range([n_train * epochs / t for t in times[name]],
                                                                   1e-6, "{:.2f}") + " M",
                                 "1" if name == sk else _range(_per_round(times, sk, name), fmt="{:.2f}") + "x",
                                 f"{100 * acc[name]:.2f} %", f"{100 * (acc[name] - acc[sk]):+.2f}", load])
                for name in fits:
                    if name.startswith("fastgd"):
                        speedup = statistics.median(_per_round(times, sk, name))
                        dacc = acc[name] - acc[sk]
                        line = (f"- {n_classes} classes, {loss}, {name}: {speedup:.2f}x sklearn (target "
                                f">= {TEXT_TARGET_SPEEDUP:g}x), Δacc {100 * dacc:+.2f} points (target >= "
                                f"-{100 * SGD_ACCURACY_TOLERANCE:.1f})")
                        met = speedup >= TEXT_TARGET_SPEEDUP and dacc >= -SGD_ACCURACY_TOLERANCE
                        if vw is not None:
                            vs_vw = statistics.median(_per_round(times, "Vowpal Wabbit", name))
                            line += f"; {vs_vw:.2f}x Vowpal Wabbit (target >= 1x)"
                            met = met and vs_vw >= 1.0
                        verdicts.append(line + f": {'MET' if met else 'NOT MET'}")
        finally:
            if folder is not None:
                folder.cleanup()
    print(markdown_table(["classes", "loss", "implementation", "samples/s", "vs sklearn", "held-out acc",
                          "Δacc vs sklearn (points)", "1-min load"], rows))
    print()
    print("\n".join(verdicts))
    if not has_drop_in:
        print("- fastgd.SGDClassifier not in this commit: skipped")
    if vw_version is None:
        print("- vowpalwabbit not installed: skipped (`pip install vowpalwabbit` to add it)")
    _text_width_sweep(quick)


def section_defaults(quick: bool) -> None:
    from sklearn import datasets, linear_model
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import fastgd

    seeds = range(2 if quick else 10)
    print(f"\n## Accuracy of the defaults: mean 5-fold score over {len(seeds)} seeds, standardised features\n")
    print("Each estimator with its default parameters (`random_state=seed`), and with `loss=\"log_loss\"`; "
          "folds shuffled with the same seed for every estimator. Classifiers: accuracy in %; regressors: R^2. "
          f"Target: within {100 * SGD_ACCURACY_TOLERANCE:.1f} point of scikit-learn.\n")
    cases = [(name, loader, loss) for name, loader in (("iris", datasets.load_iris), ("wine", datasets.load_wine),
                                                       ("breast_cancer", datasets.load_breast_cancer),
                                                       ("digits", datasets.load_digits))
             for loss in ("hinge", "log_loss")]
    cases.append(("diabetes", datasets.load_diabetes, "squared_error"))
    rows, verdicts = [], []
    for name, loader, loss in cases:
        X, y = loader(return_X_y=True)
        regression = loss == "squared_error"
        if regression:
            makers = {"sklearn SGDRegressor": lambda s: linear_model.SGDRegressor(random_state=s),
                      "fastgd SGDRegressor": lambda s: fastgd.SGDRegressor(random_state=s),
                      "fastgd LinearRegressor": lambda s: fastgd.LinearRegressor(random_state=s)}
        else:
            kw = {} if loss == "hinge" else {"loss": loss}
            makers = {"sklearn SGDClassifier": lambda s, kw=kw: linear_model.SGDClassifier(random_state=s, **kw),
                      "fastgd SGDClassifier": lambda s, kw=kw: fastgd.SGDClassifier(random_state=s, **kw),
                      "fastgd LinearClassifier": lambda s, kw=kw: fastgd.LinearClassifier(random_state=s, **kw)}
        scores = {}
        for label, make in makers.items():
            per_seed = []
            for seed in seeds:
                folds = (KFold if regression else StratifiedKFold)(5, shuffle=True, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ConvergenceWarning of the default max_iter on some folds
                    per_seed.append(cross_val_score(make_pipeline(StandardScaler(), make(seed)), X, y, cv=folds).mean())
            scores[label] = float(np.mean(per_seed))
        peer = next(iter(makers))
        fmt = (lambda v: f"{v:.4f}") if regression else (lambda v: f"{100 * v:.2f}")
        rows.append([name, loss, *(fmt(scores[label]) for label in makers)])
        for label in list(makers)[1:]:
            gap = scores[label] - scores[peer]
            met = gap >= -SGD_ACCURACY_TOLERANCE
            shown = f"{gap:+.4f}" if regression else f"{100 * gap:+.2f} points"
            verdicts.append(f"- {name}, {loss}, {label}: {shown} vs scikit-learn: {'MET' if met else 'NOT MET'}")
    print(markdown_table(["data", "loss", "scikit-learn", "fastgd SGD drop-in", "fastgd Linear*"], rows))
    print()
    print("\n".join(verdicts))


def _text_width_sweep(quick: bool) -> None:
    bl = _bench_linear()
    n_rows = 5_000 if quick else bl.TEXT_ROWS
    epochs, repeats = TEXT_SWEEP_EPOCHS, 5
    libs = ("fastgd", "sklearn")
    print(f"\n### Width sweep: per-sample SGD, hinge, {n_rows:,} rows of the same tokens hashed to each width "
          f"(~85 nonzeros per row), {epochs} epochs\n")
    print("fastgd.LinearClassifier(batch_size=1) and sklearn SGDClassifier as above (alpha=1e-4, 'optimal'); "
          f"us per sample = fit seconds / ({n_rows:,} x {epochs}), median (min-max) of {repeats} fits each, run "
          "round-robin after a warm-up fit at each width; accuracy on the training rows.\n")
    rows, per_sample = [], {}
    for n_features in bl.TEXT_WIDTHS:
        X, y = bl.hashed_text(n_rows, n_features)
        bl._fit_quietly(bl.make_text_estimator("fastgd", max_iter=1), X[:200], y[:200])
        load_before = _load()
        times: dict[str, list[float]] = {lib: [] for lib in libs}
        fitted = {}
        for _ in range(repeats):
            for lib in libs:
                est = bl.make_text_estimator(lib, max_iter=epochs)
                t0 = time.perf_counter()
                fitted[lib] = bl._fit_quietly(est, X, y)
                times[lib].append(time.perf_counter() - t0)
        us = {lib: [1e6 * t / (n_rows * epochs) for t in times[lib]] for lib in libs}
        median = per_sample[n_features] = {lib: statistics.median(v) for lib, v in us.items()}
        rows.append([f"2**{n_features.bit_length() - 1}", f"{X.nnz / n_rows:.1f}", _range(us["fastgd"]),
                     _range(us["sklearn"]), f"{median['sklearn'] / median['fastgd']:.2f}x",
                     f"{100 * fitted['fastgd'].score(X, y):.2f} / {100 * fitted['sklearn'].score(X, y):.2f} %",
                     f"{load_before:.2f} -> {_load():.2f}"])
    print(markdown_table(["columns", "nonzeros/row", "fastgd us/sample", "sklearn us/sample", "speed-up",
                          "train acc fastgd / sklearn", "1-min load"], rows))
    narrow, wide = bl.TEXT_WIDTHS[0], bl.TEXT_WIDTHS[-1]
    growth = {lib: per_sample[wide][lib] / per_sample[narrow][lib] for lib in libs}
    print(f"\n- per-sample time at 2**{wide.bit_length() - 1} over 2**{narrow.bit_length() - 1} columns: fastgd "
          f"{growth['fastgd']:.2f}x, sklearn {growth['sklearn']:.2f}x (target for fastgd <= "
          f"{TEXT_WIDTH_GROWTH_TARGET:g}x): {'MET' if growth['fastgd'] <= TEXT_WIDTH_GROWTH_TARGET else 'NOT MET'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sgd", action="store_true", help="per-sample SGD vs sklearn SGDClassifier")
    parser.add_argument("--optim", action="store_true", help="optimizer steps vs sklearn (and torch)")
    parser.add_argument("--mlp", action="store_true", help="MLP training vs sklearn MLPClassifier (and torch)")
    parser.add_argument("--stream", action="store_true", help="2 epochs over a float32 memmap: peak RSS, samples/s")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the --stream file (100 features)")
    parser.add_argument("--path", default=None, help="folder for the --stream file (default: a temporary one)")
    parser.add_argument("--chunk-size", type=int, default=200_000, help="rows per chunk of --stream")
    parser.add_argument("--cold", action="store_true", help="--stream: drop the file from the page cache first")
    parser.add_argument("--threads", action="store_true", help="mini-batch training on 1 and 2 threads")
    parser.add_argument("--partial-fit", action="store_true", help="per-call time of partial_fit on 10 rows")
    parser.add_argument("--text", action="store_true", help="hashed text, 2**20 columns: vs SGDClassifier (and VW)")
    parser.add_argument("--defaults", action="store_true", help="accuracy of the default parameters vs sklearn")
    parser.add_argument("--cuda", action="store_true", help="GPU: fused Adam bandwidth, MLP epochs vs torch on CUDA")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    run_all = not (args.sgd or args.optim or args.mlp or args.stream or args.threads or args.partial_fit
                   or args.text or args.defaults or args.cuda)
    start = time.perf_counter()
    print("# fastgd vs peers" + (" (--quick sizes)" if args.quick else ""))
    print()
    # the --stream, --threads and --partial-fit sections leave PyTorch unimported: it would weigh on the peak RSS
    print("\n".join(machine_lines(with_torch=run_all or args.sgd or args.optim or args.mlp or args.cuda)))
    if run_all or args.sgd:
        section_sgd(args.quick)
    if run_all or args.optim:
        section_optim(args.quick)
    if run_all or args.mlp:
        section_mlp(args.quick)
    if args.stream:
        section_stream(args.rows, args.path, args.chunk_size, args.cold)
    if args.threads:
        section_threads(args.quick)
    if args.partial_fit:
        section_partial_fit()
    if args.text:
        section_text(args.quick)
    if args.defaults:
        section_defaults(args.quick)
    if run_all or args.cuda:
        from cuda_compare import section_cuda  # benchmarks/cuda_compare.py, next to this script

        section_cuda(args.quick, markdown_table)
    tail = f"\nTotal time {time.perf_counter() - start:.0f} s"
    if hasattr(os, "getloadavg"):
        tail += "; load average at end (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(tail + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
