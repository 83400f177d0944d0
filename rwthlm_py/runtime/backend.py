"""The array backend: numpy on the CPU or cupy on a CUDA device, chosen once and handed down.

This is the only module that imports cupy. `get_backend` is called once by the command
line (and by test fixtures); every layer receives the `Backend` at construction and uses
`backend.xp` for arithmetic. Weights are always initialised on the host with numpy and then
moved with `asarray`, so a seed gives the same starting weights on either backend.

Where numpy and cupy differ, the backend decides: `to_numpy` (the explicit device-to-host
copy), `scatter_add`, `gemm` (a product written into, or added onto, an existing array:
cuBLAS's beta = 1, so that R h(t-1) lands on W x(t) without a temporary) and `kernels`,
the fused operations of rwthlm_py.kernels (numpy bodies, or CUDA kernels compiled at first
use). Any module with cupy's API can stand in for cupy (the test suite's strict double);
`register_array_type` tells `array_module` which module an array of its type belongs to,
and `register_out_of_memory_error` tells `device_memory_of` how large the device was on
which an allocation failed.
"""

import dataclasses
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeAlias

import numpy

try:  # cupy is optional; importing rwthlm_py must work without it.
    import cupy
    import cupy.cublas

    _CUPY_IMPORT_ERROR = None
except Exception as error:  # noqa: BLE001 - any import failure means "no cupy"
    cupy = None
    _CUPY_IMPORT_ERROR = f"{type(error).__name__}: {error}"

from rwthlm_py.errors import InputError
from rwthlm_py.kernels import numpy_kernels
from rwthlm_py.kernels.cuda import CudaKernels
from rwthlm_py.runtime import threads as process_threads
from rwthlm_py.runtime.parallel import for_row_blocks

BACKEND_NAMES = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")
# A numpy.ndarray or a cupy.ndarray (or the array of a stand-in for cupy). cupy is optional
# and has no type stubs, so the alias is Any: it documents, it does not check.
Array: TypeAlias = Any
_MODULE_OF_TYPE: dict[type, Callable[[Array], ModuleType]] = {}  # device array type -> its array module


def register_array_type(array_type: type, module_of: Callable[[Array], ModuleType]) -> None:
    """Makes array_module(x) return module_of(x) for arrays x of array_type."""
    _MODULE_OF_TYPE[array_type] = module_of


def array_module(array: Array) -> ModuleType:
    """numpy, cupy (or a stand-in registered for the array's type): the module of `array`."""
    module_of = _MODULE_OF_TYPE.get(type(array))
    return numpy if module_of is None else module_of(array)


_DEVICE_BYTES_OF_ERROR: dict[type, Callable[[BaseException], int]] = {}  # out-of-memory type -> device memory


def register_out_of_memory_error(error_type: type, device_bytes: Callable[[BaseException], int]) -> None:
    """Makes device_memory_of(e) return device_bytes(e) for errors e of error_type (a
    MemoryError of a device's allocator)."""
    _DEVICE_BYTES_OF_ERROR[error_type] = device_bytes


def device_memory_of(error: BaseException) -> int | None:
    """The memory of the device on which the allocation of `error` (a MemoryError) failed;
    None where it failed on the host."""
    for error_type, device_bytes in _DEVICE_BYTES_OF_ERROR.items():
        if isinstance(error, error_type):
            return device_bytes(error)
    return None


if cupy is not None:
    register_array_type(cupy.ndarray, lambda array: cupy)
    register_out_of_memory_error(cupy.cuda.memory.OutOfMemoryError, lambda error: cupy.cuda.Device().mem_info[1])


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where arrays live and which float type they use."""

    name: str
    xp: Any  # the array module: numpy, cupy, or a stand-in with cupy's API
    dtype: numpy.dtype
    device_id: int = 0
    threads: int = 1  # CPU threads for large element-wise work (numpy only; the BLAS's: runtime/threads.py)
    kernels: Any = dataclasses.field(default_factory=numpy_kernels, compare=False, repr=False)

    @property
    def on_host(self) -> bool:
        return self.xp is numpy

    def with_dtype(self, dtype: Any) -> "Backend":
        """The same backend computing in `dtype` (CUDA kernels are compiled per float type)."""
        kernels = self.kernels.for_dtype(dtype) if hasattr(self.kernels, "for_dtype") else self.kernels
        return dataclasses.replace(self, dtype=numpy.dtype(dtype), kernels=kernels)

    def asarray(self, array: Any, dtype: Any = None) -> Array:
        """Moves a host array to the backend, as `dtype` (default: the float type)."""
        return self.xp.asarray(array, dtype=self.dtype if dtype is None else dtype)

    def to_numpy(self, array: Array) -> numpy.ndarray:
        """Returns a host numpy copy (a view for numpy arrays)."""
        if self.on_host:
            return numpy.asarray(array)
        return self.xp.asnumpy(array)

    def zeros(self, shape: int | tuple[int, ...], dtype: Any = None) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def scatter_add(self, target: Array, indices: Array, values: Array) -> None:
        """target[indices] += values, adding up repeated indices (indices: 1-D). On a GPU
        the repeated indices' values are added atomically in no fixed order, so the sums
        may differ in their last bits from run to run (bitwise reproducible on the CPU)."""
        if not self.on_host:
            self.xp.add.at(target, indices, values)
            return
        # Summing the rows of each index first (sorted, then reduceat) is several times
        # faster than numpy.add.at, which adds one element at a time.
        order = numpy.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        firsts = numpy.flatnonzero(numpy.diff(sorted_indices, prepend=sorted_indices[:1] - 1))
        target[sorted_indices[firsts]] += numpy.add.reduceat(values[order], firsts, axis=0)

    def gemm(self, a: Array, b: Array, out: Array, accumulate: bool = False) -> Array:
        """out = a @ b, or out += a @ b with accumulate (2-D arrays; on a GPU one cuBLAS call
        with beta = 1, no temporary; operands should be C- or F-contiguous, or cupy copies)."""
        if self.on_host:
            if accumulate:
                out += a @ b
            else:
                numpy.matmul(a, b, out=out)
            return out
        return self.xp.cublas.gemm("N", "N", a, b, out=out, beta=1.0 if accumulate else 0.0)

    def for_row_blocks(self, function: Callable[[int, int], Any], num_rows: int, row_bytes: int) -> list:
        """Calls function(start, stop) over row blocks; on the CPU, blocks run on all cores."""
        if not self.on_host:
            return [function(0, num_rows)]
        return for_row_blocks(function, num_rows, row_bytes, self.threads)

    def memory_bytes(self) -> int:
        """The memory arrays can live in: the machine's physical memory, or the device's."""
        if self.on_host:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return self.xp.cuda.runtime.getDeviceProperties(self.device_id)["totalGlobalMem"]

    def describe(self) -> str:
        if self.on_host:
            return (f"numpy {numpy.__version__} on the CPU ({process_threads.describe(self.threads)}), "
                    f"{numpy.dtype(self.dtype).name}")
        properties = self.xp.cuda.runtime.getDeviceProperties(self.device_id)
        device = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
        memory = properties["totalGlobalMem"] / 2 ** 30
        return (f"{self.name} {self.xp.__version__} on CUDA device {self.device_id} ({device}, "
                f"{memory:.1f} GiB), {numpy.dtype(self.dtype).name}")


def cupy_device_count() -> int:
    """Number of usable CUDA devices (0 when cupy or a driver is missing)."""
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver, no device
        return 0


def nccl_module() -> ModuleType:
    """cupy's NCCL bindings, cupy.cuda.nccl (for summing device arrays over MPI ranks,
    runtime/distributed.py); ImportError where cupy or its NCCL is missing."""
    if cupy is None:
        raise ImportError(f"cupy is not importable ({_CUPY_IMPORT_ERROR})")
    from cupy.cuda import nccl

    return nccl


def get_backend(name: str = "auto", dtype: str = "float32", device_id: int = 0) -> Backend:
    """Returns the backend `name` ("auto": cupy when a CUDA device is present, else numpy)."""
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if dtype not in DTYPES:
        raise InputError(f"unknown float type '{dtype}' (choose from {', '.join(DTYPES)})")
    if name == "auto":
        name = "cupy" if cupy_device_count() > device_id else "numpy"
    if name == "numpy":
        return Backend("numpy", numpy, numpy.dtype(dtype), device_id, threads=process_threads.worker_count())
    if cupy is None:
        raise InputError(
            f"cupy backend requested but cupy is not importable ({_CUPY_IMPORT_ERROR}); "
            "install the cuda12 or cuda13 extra"
        )
    if cupy_device_count() <= device_id:
        raise InputError(f"cupy backend requested but there is no CUDA device {device_id}")
    cupy.cuda.Device(device_id).use()
    return Backend("cupy", cupy, numpy.dtype(dtype), device_id, kernels=CudaKernels(cupy, dtype))
