"""CUDA kernels run on the CPU: a kernel source compiled as C++ with a few definitions
(`__global__`, `blockIdx`, `threadIdx`, ...) and a launcher per kernel that runs its
threads one by one.

rwthlm_py's kernels give each thread its own outputs and share nothing between threads (no
shared memory, no synchronisation, no atomics), so running the threads of a launch one
after another computes exactly what the GPU computes, up to the rounding of the math
library's tanh. That lets the test suite run the CUDA kernels, and the code that launches
them (rwthlm_py.kernels.cuda), against the numpy bodies on a machine without a GPU.
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
    """For every kernel, `rwthlm_launch_<name>(blocks, threads, ...)`, which runs the
    launch's threads one after another (a loop in C: a call per thread from Python would
    make large launches take minutes)."""
    launchers = []
    for name, parameters in KERNEL.findall(source):
        names = [parameter.split()[-1].lstrip("*") for parameter in parameters.split(",")]
        launchers.append(
            f'extern "C" void rwthlm_launch_{name}(unsigned int rwthlm_blocks, unsigned int rwthlm_threads, '
            f"{parameters}) {{\n"
            f"    for (unsigned int rwthlm_block = 0; rwthlm_block < rwthlm_blocks; ++rwthlm_block)\n"
            f"        for (unsigned int rwthlm_thread = 0; rwthlm_thread < rwthlm_threads; ++rwthlm_thread) {{\n"
            f"            rwthlm_set_thread(rwthlm_block, rwthlm_thread, rwthlm_threads, rwthlm_blocks);\n"
            f"            {name}({', '.join(names)});\n"
            f"        }}\n}}\n")
    return "\n".join(launchers)


def _c_argument(value):
    if isinstance(value, numpy.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    if isinstance(value, numpy.int32):
        return ctypes.c_int32(int(value))
    if isinstance(value, numpy.int64):
        return ctypes.c_int64(int(value))
    if isinstance(value, numpy.float32):
        return ctypes.c_float(float(value))
    if isinstance(value, numpy.float64):
        return ctypes.c_double(float(value))
    raise TypeError(f"a kernel argument must be an array or a numpy scalar, not {type(value).__name__}")


def launch(library, name, grid, block, arguments):
    """Runs every thread of a one-dimensional launch of kernel `name` in turn."""
    (blocks,), (threads,) = grid, block
    function = getattr(library, f"rwthlm_launch_{name}")
    function.restype = None
    function(ctypes.c_uint(blocks), ctypes.c_uint(threads), *[_c_argument(value) for value in arguments])
