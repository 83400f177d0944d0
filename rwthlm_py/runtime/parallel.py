"""Splitting large row-wise element-wise work over the CPU's cores.

numpy runs one ufunc on one core, but releases the interpreter lock inside it, so row blocks
of a large array (the N x C logits of a softmax) can be processed by several threads at
once. Each thread walks its rows in blocks of about BLOCK_BYTES, so that the several passes
of a softmax (max, subtract, exp, sum, scale) over a block stay in the core's cache.
BLAS already uses every core for matrix products; this is for everything else.
"""

import concurrent.futures
import os

BLOCK_BYTES = 1 << 20
MIN_PARALLEL_ELEMENTS = 1 << 18
_pools = {}


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _pool(threads):
    if threads not in _pools:
        _pools[threads] = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="rwthlm-rows")
    return _pools[threads]


def for_row_blocks(function, num_rows, row_bytes, threads):
    """Calls function(start, stop) over blocks covering rows [0, num_rows); returns the results.

    Blocks hold about BLOCK_BYTES; with threads > 1 and enough work, contiguous ranges of
    blocks run in parallel. Results come in row order.
    """
    block = max(1, BLOCK_BYTES // max(row_bytes, 1))
    starts = list(range(0, num_rows, block))
    ranges = [(start, min(start + block, num_rows)) for start in starts]
    if threads <= 1 or len(ranges) < 2 or num_rows * row_bytes < 4 * MIN_PARALLEL_ELEMENTS:
        return [function(start, stop) for start, stop in ranges]
    groups = [ranges[k::threads] for k in range(threads)]
    futures = [_pool(threads).submit(_run_all, function, group) for group in groups if group]
    by_start = {}
    for future in futures:
        by_start.update(future.result())
    return [by_start[start] for start, _ in ranges]


def _run_all(function, ranges):
    return {start: function(start, stop) for start, stop in ranges}
