"""Block reductions shared by the CUDA kernels."""

from __future__ import annotations

from numba import cuda


@cuda.jit(device=True)
def block_sum_add(partial, value, sums, index):
    """Add ``value`` of every thread of the block into ``sums[index]``: a shared-memory tree, one atomic add.

    Every thread of the block must call it (it synchronises the block); ``partial`` is a shared float64 array
    with one element per thread of the block (a power of two).
    """
    tid = cuda.threadIdx.x
    partial[tid] = value
    cuda.syncthreads()
    width = partial.shape[0] // 2
    while width > 0:
        if tid < width:
            partial[tid] += partial[tid + width]
        cuda.syncthreads()
        width //= 2
    if tid == 0:
        cuda.atomic.add(sums, index, partial[0])
