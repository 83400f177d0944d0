"""CUDA kernels run on the CPU: a kernel source compiled as C++ with a few definitions
(`__global__`, `blockIdx`, `threadIdx`, ...) and a launcher per kernel that runs its
threads one by one.

rwthlm_py's kernels give each thread its own outputs and share nothing between threads (no
shared memory, no synchronisation, no atomics), so running the threads of a launch one
after another computes exactly what the GPU computes, up to the rounding of the math
library's tanh. That lets the test suite run the CUDA kernels, and the code that launches
them (rwthlm_py.kernels.cuda), against the numpy bodies on a machine without a GPU.

A GPU runs a launch's threads in no fixed order, so a kernel whose thread reads what another
thread writes gives one result here and another there. `launch` therefore takes the order
of the threads: ascending (the default), descending or a shuffle (`thread_order`); a
kernel that shares nothing leaves the same bytes in every order (the strict cupy double
checks that on request: strict_cupy.strict_backend(check_thread_orders=True)).
Needs a C++ compiler (g++ or c++); `compiler()` is None without one.
"""

import ctypes
import hashlib
import pathlib
import re
import shutil
import subprocess
import tempfile

import numpy

SHIM = r"""
#include <cmath>
struct rwthlm_dim3 { unsigned int x, y, z; };
static rwthlm_dim3 blockIdx, threadIdx, blockDim, gridDim;
extern "C" void rwthlm_set_thread(unsigned int block, unsigned int thread, unsigned int threads,
                                  unsigned int blocks) {
    blockIdx.x = block; threadIdx.x = thread; blockDim.x = threads; gridDim.x = blocks;
    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
    blockDim.y = blockDim.z = gridDim.y = gridDim.z = 1;
}
#define __global__
#define __device__
#define __forceinline__ inline
using std::tanh; using std::exp; using std::log;
"""
KERNEL = re.compile(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)")

_BUILD_DIR = pathlib.Path(tempfile.mkdtemp(prefix="rwthlm-cuda-on-cpu-"))
_LIBRARIES = {}


def compiler():
    return shutil.which("g++") or shutil.which("c++")


def load(source):
    """The source compiled into a shared library (cached by content)."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    if key not in _LIBRARIES:
        cpp, library = _BUILD_DIR / f"{key}.cpp", _BUILD_DIR / f"{key}.so"
        cpp.write_text(SHIM + source + _launchers(source))
        built = subprocess.run([compiler(), "-O1", "-shared", "-fPIC", "-std=c++14", "-o", str(library), str(cpp)],
                               capture_output=True, text=True)
        if built.returncode:
            raise RuntimeError(f"{cpp} does not compile as C++:\n{built.stderr}")
        _LIBRARIES[key] = ctypes.CDLL(str(library))
    return _LIBRARIES[key]


def _launchers(source):
    """For every kernel, `rwthlm_launch_<name>(blocks, threads, order, ...)`, which runs the
    launch's threads one after another: thread order[n] n-th, or in ascending order where
    order is NULL (a loop in C: a call per thread from Python would make large launches take
    minutes)."""
    launchers = []
    for name, parameters in KERNEL.findall(source):
        names = [parameter.split()[-1].lstrip("*") for parameter in parameters.split(",")]
        launchers.append(
            f'extern "C" void rwthlm_launch_{name}(unsigned int rwthlm_blocks, unsigned int rwthlm_threads, '
            f"const unsigned long long* rwthlm_order, {parameters}) {{\n"
            f"    unsigned long long rwthlm_total = (unsigned long long)rwthlm_blocks * rwthlm_threads;\n"
            f"    for (unsigned long long rwthlm_n = 0; rwthlm_n < rwthlm_total; ++rwthlm_n) {{\n"
            f"        unsigned long long rwthlm_id = rwthlm_order ? rwthlm_order[rwthlm_n] : rwthlm_n;\n"
            f"        rwthlm_set_thread((unsigned int)(rwthlm_id / rwthlm_threads), "
            f"(unsigned int)(rwthlm_id % rwthlm_threads), rwthlm_threads, rwthlm_blocks);\n"
            f"        {name}({', '.join(names)});\n"
            f"    }}\n}}\n")
    return "\n".join(launchers)


def _c_argument(value):
    if isinstance(value, numpy.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, numpy.int32):
        return ctypes.c_int32(int(value))
    if isinstance(value, numpy.int64):
        return ctypes.c_int64(int(value))
    if type(value) is int:  # a device address (a pointer argument, 8 bytes as cupy passes it)
        return ctypes.c_void_p(value)
    if isinstance(value, numpy.float32):
        return ctypes.c_float(float(value))
    if isinstance(value, numpy.float64):
        return ctypes.c_double(float(value))
    raise TypeError(f"a kernel argument must be an array, a numpy scalar or an address (int), "
                    f"not {type(value).__name__}")


ORDERS = ("ascending", "descending", "shuffled")


def thread_order(kind, count, rng=None):
    """The order in which a launch of `count` threads runs them: None (ascending, the
    launcher's own loop), or the thread numbers descending or shuffled by `rng`."""
    if kind == "ascending":
        return None
    if kind == "descending":
        return numpy.arange(count - 1, -1, -1, dtype=numpy.uint64)
    if kind == "shuffled":
        return (rng or numpy.random.default_rng(0)).permutation(count).astype(numpy.uint64)
    raise ValueError(f"unknown thread order {kind!r} (choose from {', '.join(ORDERS)})")


def launch(library, name, grid, block, arguments, order=None):
    """Runs every thread of a one-dimensional launch of kernel `name`, in ascending order or
    in `order` (a uint64 array of all blocks * threads thread numbers, from thread_order)."""
    (blocks,), (threads,) = grid, block
    if order is not None and (order.dtype != numpy.uint64 or len(order) != blocks * threads):
        raise ValueError(f"a thread order must hold the {blocks * threads} thread numbers as uint64")
    function = getattr(library, f"rwthlm_launch_{name}")
    function.restype = None
    function(ctypes.c_uint(blocks), ctypes.c_uint(threads),
             ctypes.c_void_p(None if order is None else order.ctypes.data),
             *[_c_argument(value) for value in arguments])
