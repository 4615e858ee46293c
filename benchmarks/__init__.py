"""Benchmarks of fastgd.

``bench_optim`` and ``bench_linear`` are airspeed velocity (asv) suites, see
``asv.conf.json`` at the repository root. ``compare.py`` is a stand-alone
script that runs fastgd beside scikit-learn (and PyTorch when installed) and
prints a markdown table of ratios; asv imports it during discovery but finds
no benchmarks in it.
"""
