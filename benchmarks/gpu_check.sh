#!/usr/bin/env bash
# Everything to run on a machine with an NVIDIA GPU, in one go (about 3 minutes on an H200 with 16 CPU cores,
# most of it compiling kernels): the CUDA tests on the hardware, the GPU comparison (fused Adam bandwidth, MLP
# epochs against PyTorch on the same GPU) and the host cost of each launch of an MLP batch. Logs go to
# $OUT (default: gpu-check/). Needs the test extra (pytest-xdist) and, for the PyTorch peer, torch with CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python -m pytest -m cuda tests/test_cuda_dense.py tests/test_cuda_optim.py tests/test_cuda_estimators.py -n 8 -q \
    -p no:cacheprovider -rfEs 2>&1 | tee "$out/pytest.log" | tail -5
python benchmarks/compare.py --cuda 2>&1 | tee "$out/compare.log" | tail -14
python benchmarks/cuda_launches.py 2>&1 | tee "$out/launches.log"
