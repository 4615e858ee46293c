"""The lecture (``python -m fastgd``) end to end at its smallest settings: one epoch, four hidden units.

``tests/test_diagnostics.py`` runs it at two epochs; this one is small enough for the coverage run of
``.ci/run`` (``NUMBA_DISABLE_JIT=1``, a few seconds), and checks what each part must show whatever the
numbers: every table and row, finite trajectory values, and the figures as PNG files.
"""

import math
import re
import warnings

from fastgd.__main__ import PARTS, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_part_runs_at_the_smallest_settings(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["--epochs", "1", "--hidden", "4", "--batch-size", "512", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0
    for number in range(1, len(PARTS) + 1):
        assert re.search(rf"^{number}\. ", out, re.M), f"part {number} missing"
    for run in ("full batch (batch_size=None)", "per-sample (batch_size=1)", "mini-batch (batch_size=512)",
                "SGD", "Momentum 0.9", "Nesterov 0.9", "RMSprop", "Adam", "logistic", "relu"):
        assert re.search(rf"^{re.escape(run)}\s", out, re.M), f"row {run!r} missing"
    exploding = [line.split("  ")[0] for line in out.splitlines() if line.startswith(("linear units", "ReLU"))]
    assert exploding == ["linear units, lr=1.0, no clipping", "linear units, lr=1.0, clip_norm=0.5",
                         "ReLU units, lr=0.5, no clipping", "ReLU units, lr=0.5, clip_norm=0.5"]
    values = re.findall(r"f=(-?[0-9.e+-]+)", out)
    assert len(values) == 4 * 5, "4 surfaces x 5 optimizers"
    assert all(math.isfinite(float(v)) for v in values)
    pngs = sorted(tmp_path.glob("*.png"))
    assert {p.name for p in pngs} >= {"loss_curves.png", "trajectories.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC, png.name
