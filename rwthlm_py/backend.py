"""The array backend: numpy on the CPU or cupy on a CUDA device, chosen once and handed down.

This is the only module that imports cupy. `get_backend` is called once by the command
line (and by test fixtures); every layer receives the `Backend` at construction and uses
`backend.xp` for arithmetic. Weights are always initialised on the host with numpy and then
moved with `asarray`, so a seed gives the same starting weights on either backend.
"""

import dataclasses

import numpy

try:  # cupy is optional; importing rwthlm_py must work without it.
    import cupy
    import cupyx

    _CUPY_IMPORT_ERROR = None
except Exception as error:  # noqa: BLE001 - any import failure means "no cupy"
    cupy = None
    cupyx = None
    _CUPY_IMPORT_ERROR = f"{type(error).__name__}: {error}"

from rwthlm_py.errors import InputError
from rwthlm_py.parallel import available_cores, for_row_blocks

BACKEND_NAMES = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where arrays live and which float type they use."""

    name: str
    xp: object
    dtype: object
    device_id: int = 0
    threads: int = 1  # CPU threads for large element-wise work (numpy only)

    def asarray(self, array, dtype=None):
        """Moves a host array to the backend, as `dtype` (default: the float type)."""
        return self.xp.asarray(array, dtype=self.dtype if dtype is None else dtype)

    def to_numpy(self, array):
        """Returns a host numpy copy (a view for numpy arrays)."""
        if self.xp is numpy:
            return numpy.asarray(array)
        return cupy.asnumpy(array)

    def zeros(self, shape, dtype=None):
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def scatter_add(self, target, indices, values):
        """target[indices] += values, adding up repeated indices (indices: 1-D)."""
        if self.xp is not numpy:
            cupyx.scatter_add(target, indices, values)
            return
        # Summing the rows of each index first (sorted, then reduceat) is several times
        # faster than numpy.add.at, which adds one element at a time.
        order = numpy.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        firsts = numpy.flatnonzero(numpy.diff(sorted_indices, prepend=sorted_indices[:1] - 1))
        target[sorted_indices[firsts]] += numpy.add.reduceat(values[order], firsts, axis=0)

    def for_row_blocks(self, function, num_rows, row_bytes):
        """Calls function(start, stop) over row blocks; on the CPU, blocks run on all cores."""
        if self.xp is not numpy:
            return [function(0, num_rows)]
        return for_row_blocks(function, num_rows, row_bytes, self.threads)

    def describe(self):
        if self.xp is numpy:
            return (f"numpy {numpy.__version__} on the CPU ({self.threads} threads), "
                f"{numpy.dtype(self.dtype).name}")
        properties = cupy.cuda.runtime.getDeviceProperties(self.device_id)
        device = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
        return f"cupy {cupy.__version__} on CUDA device {self.device_id} ({device}), {numpy.dtype(self.dtype).name}"


def cupy_device_count():
    """Number of usable CUDA devices (0 when cupy or a driver is missing)."""
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # noqa: BLE001 - no driver, no device
        return 0


def get_backend(name="auto", dtype="float32", device_id=0):
    """Returns the backend `name` ("auto": cupy when a CUDA device is present, else numpy)."""
    if name not in BACKEND_NAMES:
        raise InputError(f"unknown backend '{name}' (choose from {', '.join(BACKEND_NAMES)})")
    if dtype not in DTYPES:
        raise InputError(f"unknown float type '{dtype}' (choose from {', '.join(DTYPES)})")
    if name == "auto":
        name = "cupy" if cupy_device_count() > device_id else "numpy"
    if name == "numpy":
        return Backend("numpy", numpy, numpy.dtype(dtype), device_id, threads=available_cores())
    if cupy is None:
        raise InputError(
            f"cupy backend requested but cupy is not importable ({_CUPY_IMPORT_ERROR}); "
            "install the cuda12 or cuda13 extra"
        )
    if cupy_device_count() <= device_id:
        raise InputError(f"cupy backend requested but there is no CUDA device {device_id}")
    cupy.cuda.Device(device_id).use()
    return Backend("cupy", cupy, numpy.dtype(dtype), device_id)
