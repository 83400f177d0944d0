"""Keeping freed memory in the process, so that numpy's large temporaries cost no page faults.

numpy takes every array above a few hundred bytes from the C library's malloc. glibc serves
large requests (above M_MMAP_THRESHOLD, adjusted dynamically between 128 kB and 32 MB) with
fresh pages from the kernel and gives freed memory at the top of the heap back (above
M_TRIM_THRESHOLD). A training or scoring loop allocates and frees the same large
temporaries (gates, logits, gradients) at every step, so every step pays page faults for
memory it has just given back: measured, a third of the time of a 1x200 training step.

`keep_freed_memory()` sets both thresholds once (mallopt), so that large arrays come from
the heap and freed memory stays there for the next step; the process's resident memory
then stays at its peak instead of shrinking between steps. It is called by the command
lines and the benchmarks; library users may call it themselves. Elsewhere than on glibc
it does nothing.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory():
    """Sets glibc's malloc thresholds; returns True when they were set."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
