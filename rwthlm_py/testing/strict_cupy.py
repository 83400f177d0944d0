"""A strict test double for cupy: numpy underneath, cupy's rules on top, and a count of
what a GPU would be asked to do.

`StrictCupy` offers only the cupy functions, ufunc methods and ndarray methods that the
project uses, with cupy's signatures, and raises where cupy raises:

- a device array never turns into a numpy array implicitly (`numpy.asarray(x)`, a host
  array as an operand of device arithmetic, a host array assigned into a device array);
- a 0-d device array is no index (cupy has no `__index__`: it would be a hidden wait).

It counts, by call site (file:line of the project's code that asked):

- launches: one per element-wise operation, reduction, gather or scatter, copy, fill and
  matrix product, plus one per operand that cupy copies before a GEMM (a 2-D operand that
  is neither C- nor F-contiguous);
- waits: every device-to-host transfer or size that must come back before the host goes
  on (`float()`, `bool()`, `.item()`, `.get()`, `asnumpy`, `flatnonzero`, boolean masks);
- copies: host-to-device transfers (`asarray` of host data, host index arrays).

Its `cuda.cublas` is cuBLAS's C binding on device addresses (strict_cublas.py): every
address must lie, with the whole matrix it starts, in a live buffer. New float memory
(`empty`, `empty_like`) holds NaN, so that a read before the first write shows.

Allocation (`empty`) launches nothing, and views (slices, transposes, reshapes that need
no copy, `broadcast_to`) launch nothing, as on cupy.

With a `memory_limit`, the double's device has that many bytes (its properties and
memGetInfo say so), and an array that would take the live arrays past it raises
`cuda.memory.OutOfMemoryError`, a MemoryError with cupy's message.

With the CUDA kernels run on the CPU (cuda_on_cpu.py), `check_thread_orders` runs every
launch three times from the same device memory (all it can reach: its array arguments and
every array whose address was handed out, as in a table of addresses), its threads in
ascending, descending and shuffled order, and raises where the memory it leaves differs in
a byte: a thread read what another thread of the launch wrote, which a GPU, running threads
in no fixed order, would race on.
"""

import collections
import os
import pathlib
import sys
import types
import weakref

import numpy

from rwthlm_py.kernels import KERNEL_NAMES, numpy_kernels
from rwthlm_py.kernels.cuda import CudaKernels
from rwthlm_py.runtime import backend as backend_module
from rwthlm_py.runtime.backend import Backend, register_array_type, register_out_of_memory_error
from rwthlm_py.testing.strict_cublas import LowLevelCublas

_HERE = str(pathlib.Path(__file__).resolve())
_DOUBLE = (_HERE, str(pathlib.Path(__file__).resolve().with_name("strict_cublas.py")))  # the double's own files
_NUMPY_DIR = str(pathlib.Path(numpy.__file__).resolve().parent)
_BACKEND = str(pathlib.Path(backend_module.__file__).resolve())
HOST_MEMORY = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")  # the double's "device" is the host

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")


def _call_site():
    """file:line of the first frame outside the double, numpy and the backend's wrappers."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name not in _DOUBLE and name != _BACKEND and not name.startswith(_NUMPY_DIR):
            return f"{pathlib.Path(name).name}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class Counts:
    """Launches, waits and host-to-device copies, each a Counter by call site."""

    def __init__(self):
        self.launches = collections.Counter()
        self.waits = collections.Counter()
        self.copies = collections.Counter()
        self.operand_copies = collections.Counter()

    def clear(self):
        for counter in (self.launches, self.waits, self.copies, self.operand_copies):
            counter.clear()

    def add(self, counter, number=1):
        if number:
            getattr(self, counter)[_call_site()] += number

    def total(self, counter):
        return sum(getattr(self, counter).values())

    def summary(self):
        return (f"{self.total('launches')} launches ({self.total('operand_copies')} operand copies), "
                f"{self.total('waits')} waits, {self.total('copies')} host-to-device copies")


def _is_host_array(value):
    return isinstance(value, numpy.ndarray) and value.ndim > 0


class StrictArray:
    """A device array: a numpy array that only cupy's operations may touch."""

    __slots__ = ("_a", "_xp")
    __array_priority__ = 100

    def __init__(self, array, xp):
        self._a, self._xp = array, xp

    # -- what cupy refuses -------------------------------------------------------------------

    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        device_ufunc = getattr(self._xp, ufunc.__name__, None)
        if not isinstance(device_ufunc, StrictUfunc):
            raise TypeError(f"cupy has no ufunc {ufunc.__name__}")
        return getattr(device_ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, function, types_, args, kwargs):
        device_function = getattr(self._xp, function.__name__, None)
        if device_function is None:
            raise TypeError(f"the strict cupy double has no {function.__name__}")
        return device_function(*args, **kwargs)

    def __index__(self):
        raise TypeError("a cupy array is no index (that would be an implicit device-to-host wait)")

    # -- attributes and views ----------------------------------------------------------------

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: self._wrap(self._a.T))
    base = property(lambda self: None if self._a.base is None else self._wrap(self._a.base))
    @property
    def data(self):
        """cupy's MemoryPointer: the address a kernel or cuBLAS is given (here in host
        memory, which the CUDA kernels run on the CPU read). The allocation becomes
        addressable: a pointer into it is accepted while it lives."""
        root = _root(self._a)
        self._xp.addressed[id(root)] = root
        return types.SimpleNamespace(ptr=self._a.ctypes.data)

    def _wrap(self, array):
        return self._xp._wrap(array)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self._wrap(row) for row in self._a)

    def __repr__(self):
        return f"StrictArray(shape={self.shape}, dtype={self.dtype})"

    def transpose(self, *axes):
        return self._wrap(self._a.transpose(*axes))

    def reshape(self, *shape, order="C"):
        result = self._a.reshape(*shape, order=order)
        if not numpy.shares_memory(result, self._a):
            self._xp.counts.add("launches")
        return self._wrap(result)

    def ravel(self):
        return self.reshape(-1)

    def view(self, dtype=None):
        return self._wrap(self._a.view() if dtype is None else self._a.view(dtype))

    # -- work on the device ------------------------------------------------------------------

    def copy(self, order="C"):
        self._xp.counts.add("launches")
        return self._wrap(self._a.copy(order=order))

    def astype(self, dtype, copy=True, order="K"):
        if not copy and self._a.dtype == numpy.dtype(dtype):
            return self
        self._xp.counts.add("launches")
        return self._wrap(self._a.astype(dtype, order=order))

    def fill(self, value):
        self._xp.counts.add("launches")
        self._a.fill(_scalar(value))


    def dot(self, other, out=None):
        return self._xp.matmul(self, other, out=out)

    def __matmul__(self, other):
        return self._xp.matmul(self, other)

    def __rmatmul__(self, other):
        return self._xp.matmul(other, self)

    # -- waits -------------------------------------------------------------------------------

    def get(self, stream=None):
        self._xp.counts.add("waits")
        return self._a.copy()

    def item(self):
        self._xp.counts.add("waits")
        return self._a.item()

    def tolist(self):
        self._xp.counts.add("waits")
        return self._a.tolist()

    def __float__(self):
        self._xp.counts.add("waits")
        return float(self._a)

    def __int__(self):
        self._xp.counts.add("waits")
        return int(self._a)

    def __bool__(self):
        self._xp.counts.add("waits")
        return bool(self._a)

    # -- indexing ----------------------------------------------------------------------------

    def __getitem__(self, key):
        key, gathers, waits = self._xp._device_key(key)
        self._xp.counts.add("launches", gathers)
        self._xp.counts.add("waits", waits)
        return self._wrap(self._a[key])

    def __setitem__(self, key, value):
        key, _, _ = self._xp._device_key(key)
        if _is_host_array(value):
            raise TypeError(f"Unsupported type {type(value)} (a host array assigned into a device array)")
        self._xp.counts.add("launches")
        self._a[key] = _unwrap(value)


def _reduction(name):
    def method(self, axis=None, dtype=None, out=None, keepdims=False):
        self._xp.counts.add("launches")
        kwargs = {"axis": axis, "keepdims": keepdims}
        if dtype is not None:
            kwargs["dtype"] = dtype
        return self._xp._result(numpy.asarray(getattr(self._a, name)(**kwargs)), out)
    method.__name__ = name
    return method


def _scalar(value):
    if isinstance(value, StrictArray):
        raise TypeError("expected a scalar, got a device array")
    return value


def _unwrap(value):
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    return value._a if isinstance(value, StrictArray) else value


def _operator(function, reflected=False, inplace=False):
    def method(self, other):
        if _is_host_array(other):
            raise TypeError(f"Unsupported type {type(other)}")
        if isinstance(other, (list, tuple)):
            raise TypeError(f"Unsupported type {type(other)}")
        self._xp.counts.add("launches")
        left, right = (_unwrap(other), self._a) if reflected else (self._a, _unwrap(other))
        if inplace:
            function(left, right, out=left, casting="same_kind")
            return self
        return self._wrap(numpy.asarray(function(left, right)))
    return method


def _unary(function):
    def method(self):
        self._xp.counts.add("launches")
        return self._wrap(numpy.asarray(function(self._a)))
    return method


ARITHMETIC = (("add", numpy.add), ("sub", numpy.subtract), ("mul", numpy.multiply), ("truediv", numpy.true_divide),
              ("floordiv", numpy.floor_divide), ("mod", numpy.remainder), ("pow", numpy.power),
              ("and", numpy.bitwise_and), ("or", numpy.bitwise_or), ("xor", numpy.bitwise_xor))
COMPARISONS = (("lt", numpy.less), ("le", numpy.less_equal), ("gt", numpy.greater), ("ge", numpy.greater_equal),
               ("eq", numpy.equal), ("ne", numpy.not_equal))
REDUCTIONS = ("sum", "max", "min", "any", "all", "mean", "argmax")
UNARY = (("neg", numpy.negative), ("invert", numpy.invert), ("abs", numpy.absolute))


def install_operators(array_type, operator, unary, reduction):
    """Gives a double's array type Python's operators (plain, reflected and in place) and
    its reduction methods, each made by the double's own factory from the numpy function."""
    for name, function in ARITHMETIC:
        setattr(array_type, f"__{name}__", operator(function))
        setattr(array_type, f"__r{name}__", operator(function, reflected=True))
        setattr(array_type, f"__i{name}__", operator(function, inplace=True))
    for name, function in COMPARISONS:
        setattr(array_type, f"__{name}__", operator(function))
    array_type.__hash__ = None
    for name in REDUCTIONS:
        setattr(array_type, name, reduction(name))
    for name, function in UNARY:
        setattr(array_type, f"__{name}__", unary(function))


install_operators(StrictArray, _operator, _unary, _reduction)


class StrictUfunc:
    """A cupy ufunc: device arrays and scalars in, one launch (host arrays are refused)."""

    def __init__(self, xp, ufunc):
        self._xp, self._ufunc = xp, ufunc
        self.__name__ = ufunc.__name__

    def _inputs(self, inputs):
        for value in inputs:
            if _is_host_array(value) or isinstance(value, (list, tuple)):
                raise TypeError(f"Unsupported type {type(value)}")
        return [_unwrap(value) for value in inputs]

    def __call__(self, *inputs, out=None, **kwargs):
        self._xp.counts.add("launches")
        if out is not None:
            out = out[0] if isinstance(out, tuple) else out
            self._ufunc(*self._inputs(inputs), out=_unwrap(out), **kwargs)
            return out
        return self._xp._wrap(numpy.asarray(self._ufunc(*self._inputs(inputs), **kwargs)))

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        self._xp.counts.add("launches")
        result = self._ufunc.reduce(*self._inputs([array]), axis=axis, dtype=dtype, keepdims=keepdims)
        return self._xp._result(numpy.asarray(result), out)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        self._xp.counts.add("launches")
        result = self._ufunc.reduceat(*self._inputs([array, indices]), axis=axis, dtype=dtype)
        return self._xp._result(result, out)

    def at(self, array, indices, values=None):
        self._xp.counts.add("launches")
        indices, _, _ = self._xp._device_key(indices)
        self._ufunc.at(_unwrap(array), indices, *self._inputs([values]))


class StrictCupy(types.SimpleNamespace):
    """The module: cupy's functions on StrictArrays, with a shared Counts."""

    __version__ = "(strict test double)"
    ndarray = StrictArray
    ufunc_type = StrictUfunc
    cublas_type = LowLevelCublas
    poison_new_memory = True  # empty() and empty_like() give NaN floats (see _unwritten)
    float32, float64, int32, int64, bool_ = numpy.float32, numpy.float64, numpy.int32, numpy.int64, numpy.bool_
    newaxis = None

    def __init__(self, check_thread_orders=False, memory_limit=None):
        super().__init__()
        self.counts = Counts()
        self.memory_limit, self.allocated = memory_limit, 0
        self._allocations = weakref.WeakValueDictionary()  # the live arrays counted in `allocated`
        self.check_thread_orders = check_thread_orders
        # the live allocations whose addresses were handed out (`.data.ptr`): pointers into
        # them are valid, and kernels can reach them (through tables of addresses, or
        # addresses passed as arguments)
        self.addressed = weakref.WeakValueDictionary()
        self.random = numpy.random.default_rng(0)  # the shuffled thread orders
        for name in ("add", "subtract", "multiply", "divide", "true_divide", "negative", "exp", "log",
                     "tanh", "sqrt", "maximum", "minimum", "equal", "not_equal", "less", "greater",
                     "less_equal", "greater_equal", "logical_and", "logical_or", "logical_not",
                     "isfinite", "isnan", "absolute", "square", "reciprocal", "power"):
            setattr(self, name, self.ufunc_type(self, getattr(numpy, name)))
        self.abs = self.absolute
        self.cuda = _FakeCuda(self)
        self.cublas = types.SimpleNamespace(gemm=self._gemm)

    def _wrap(self, array):
        if self.memory_limit is not None and isinstance(array, numpy.ndarray):
            self._allocate(_root(array))
        return self.ndarray(array, self)

    def _allocate(self, root):
        """Counts a new array against the memory limit (once, until it is freed)."""
        if id(root) in self._allocations:
            return
        if self.allocated + root.nbytes > self.memory_limit:
            raise OutOfMemoryError(root.nbytes, self.allocated, self.memory_limit)
        self.allocated += root.nbytes
        self._allocations[id(root)] = root
        weakref.finalize(root, self._free, root.nbytes)

    def _free(self, nbytes):
        self.allocated -= nbytes

    def root_at(self, pointer, nbytes=1):
        """The live addressable allocation (see `StrictArray.data`) that holds the `nbytes`
        bytes from address `pointer`; a pointer anywhere else is refused, as a GPU would
        fault (or corrupt another array) on it."""
        for root in list(self.addressed.values()):
            start = root.ctypes.data
            if start <= pointer and pointer + nbytes <= start + root.nbytes:
                return root
        raise ValueError(f"device address {pointer:#x} (+{nbytes} bytes) lies in no live device buffer")

    def matrix_at(self, pointer, rows, columns, leading, dtype):
        """The column-major rows x columns matrix of `dtype` at `pointer` with leading
        dimension `leading` (cuBLAS's layout), as a numpy view of the buffer holding it."""
        dtype = numpy.dtype(dtype)
        if leading < max(1, rows):
            raise ValueError(f"leading dimension {leading} is below the {rows} rows (CUBLAS_STATUS_INVALID_VALUE)")
        extent = ((columns - 1) * leading + rows) * dtype.itemsize if rows and columns else 0
        root = self.root_at(pointer, max(extent, 1))
        memory = root.reshape(-1, order="A").view(numpy.uint8)
        return numpy.ndarray((rows, columns), dtype, buffer=memory, offset=pointer - root.ctypes.data,
                             strides=(dtype.itemsize, leading * dtype.itemsize))

    def _result(self, result, out):
        if out is not None:
            out._a[...] = result
            return out
        return self._wrap(numpy.asarray(result))

    def _device_key(self, key):
        """The numpy index for a device index; (key, gathers, waits): one gather launch for
        an advanced index, a wait for a boolean mask, a copy for a host index array."""
        parts = key if isinstance(key, tuple) else (key,)
        result, advanced, waits = [], False, 0
        for part in parts:
            if isinstance(part, StrictArray):
                if part.ndim == 0 and part.dtype.kind in "iu":
                    raise TypeError("a cupy array is no index (that would be an implicit device-to-host wait)")
                if part.dtype == numpy.bool_:
                    waits += 1
                advanced = True
                result.append(part._a)
            elif isinstance(part, (numpy.ndarray, list)):
                self.counts.add("copies")
                advanced = True
                result.append(numpy.asarray(part))
            elif isinstance(part, slice):
                for bound in (part.start, part.stop, part.step):
                    if isinstance(bound, StrictArray):
                        raise TypeError("a cupy array is no slice bound (an implicit wait)")
                result.append(part)
            else:
                result.append(part)
        key = tuple(result) if isinstance(key, tuple) else result[0]
        return key, int(advanced), waits

    # -- creation ---------------------------------------------------------------------------

    def asarray(self, value, dtype=None, order=None):
        if isinstance(value, StrictArray):
            return value.astype(dtype, copy=False) if dtype is not None else value
        if isinstance(value, (numpy.ndarray, list, tuple)) or numpy.isscalar(value):
            self.counts.add("copies")
            return self._wrap(numpy.array(value, dtype=dtype, order=order or "K"))
        raise TypeError(f"Unsupported type {type(value)}")

    array = asarray

    def asnumpy(self, value, stream=None):
        if isinstance(value, StrictArray):
            return value.get()
        return numpy.asarray(value)

    def empty(self, shape, dtype=float, order="C"):
        return self._wrap(self._unwritten(numpy.empty(shape, dtype=dtype, order=order)))

    def empty_like(self, array, dtype=None, shape=None):
        return self._wrap(self._unwritten(numpy.empty_like(array._a, dtype=dtype, shape=shape)))

    def _unwritten(self, array):
        """New memory as a GPU may hand it out: float memory holds NaN (numpy's often holds
        zeros, which would let a read before the first write pass), unless poisoning is off."""
        if self.poison_new_memory and array.dtype.kind == "f":
            array.fill(numpy.nan)
        return array

    def _filled(self, array):
        self.counts.add("launches")
        return self._wrap(array)

    def zeros(self, shape, dtype=float, order="C"):
        return self._filled(numpy.zeros(shape, dtype=dtype, order=order))

    def ones(self, shape, dtype=float):
        return self._filled(numpy.ones(shape, dtype=dtype))

    def full(self, shape, value, dtype=None):
        return self._filled(numpy.full(shape, _scalar(value), dtype=dtype))

    def zeros_like(self, array, dtype=None):
        return self._filled(numpy.zeros_like(array._a, dtype=dtype))

    def ones_like(self, array, dtype=None):
        return self._filled(numpy.ones_like(array._a, dtype=dtype))

    def full_like(self, array, value, dtype=None):
        return self._filled(numpy.full_like(array._a, _scalar(value), dtype=dtype))

    def arange(self, *args, dtype=None):
        if any(isinstance(arg, StrictArray) for arg in args):
            raise TypeError("arange takes host scalars")
        return self._filled(numpy.arange(*args, dtype=dtype))

    # -- shape and joining --------------------------------------------------------------------

    def _device_arrays(self, arrays):
        for array in arrays:
            if not isinstance(array, StrictArray):
                raise TypeError(f"Unsupported type {type(array)}")
        return [array._a for array in arrays]

    def concatenate(self, arrays, axis=0, out=None):
        self.counts.add("launches")
        return self._result(numpy.concatenate(self._device_arrays(arrays), axis=axis), out)

    def stack(self, arrays, axis=0, out=None):
        self.counts.add("launches")
        return self._result(numpy.stack(self._device_arrays(arrays), axis=axis), out)

    def repeat(self, array, repeats, axis=None):
        self.counts.add("launches")
        return self._wrap(numpy.repeat(self._device_arrays([array])[0], repeats, axis=axis))

    def broadcast_to(self, array, shape):
        return self._wrap(numpy.broadcast_to(self._device_arrays([array])[0], shape))

    def ascontiguousarray(self, array, dtype=None):
        data = self._device_arrays([array])[0]
        if data.flags.c_contiguous and (dtype is None or data.dtype == dtype):
            return array
        self.counts.add("launches")
        return self._wrap(numpy.ascontiguousarray(data, dtype=dtype))

    def where(self, condition, x, y):
        self.counts.add("launches")
        return self._wrap(numpy.where(*[_unwrap(v) for v in self._checked([condition, x, y])]))

    def _checked(self, values):
        for value in values:
            if _is_host_array(value):
                raise TypeError(f"Unsupported type {type(value)}")
        return values

    # -- reductions, sorting, searching ------------------------------------------------------

    def sum(self, array, axis=None, dtype=None, out=None, keepdims=False):
        return array.sum(axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def argsort(self, array, axis=-1, kind=None):
        self.counts.add("launches")
        return self._wrap(numpy.argsort(self._device_arrays([array])[0], axis=axis, kind="stable"))

    def cumsum(self, array, axis=None, dtype=None):
        self.counts.add("launches")
        return self._wrap(numpy.cumsum(self._device_arrays([array])[0], axis=axis, dtype=dtype))

    def flatnonzero(self, array):
        self.counts.add("launches")
        self.counts.add("waits")  # the number of results comes back to size the output
        return self._wrap(numpy.flatnonzero(self._device_arrays([array])[0]))

    def count_nonzero(self, array, axis=None):
        self.counts.add("launches")
        return self._wrap(numpy.asarray(numpy.count_nonzero(self._device_arrays([array])[0], axis=axis)))

    # -- products -----------------------------------------------------------------------------

    def _count_operand_copy(self, data):
        """cupy copies a 2-D GEMM operand that is neither C- nor F-contiguous."""
        if data.ndim == 2 and not (data.flags.c_contiguous or data.flags.f_contiguous):
            self.counts.add("operand_copies")
            self.counts.add("launches")

    def matmul(self, a, b, out=None):
        a, b = self._device_arrays([a, b])
        if a.ndim > 2 or b.ndim > 2:
            raise TypeError("the strict cupy double has only 1-D and 2-D products")
        self.counts.add("launches")
        for data in (a, b):
            self._count_operand_copy(data)
        if out is not None:
            numpy.matmul(a, b, out=out._a)
            return out
        return self._wrap(numpy.asarray(numpy.matmul(a, b)))

    dot = matmul

    def _gemm(self, transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
        """cupy.cublas.gemm: out = alpha op(a) op(b) + beta out, 2-D arrays of one dtype."""
        if a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype:
            raise AssertionError("cupy.cublas.gemm needs 2-D operands of one dtype")
        self.counts.add("launches")
        for array in (a, b):
            self._count_operand_copy(array._a)
        product = (a._a.T if transa == "T" else a._a) @ (b._a.T if transb == "T" else b._a)
        if out is None:
            return self._wrap(alpha * product)
        if not (out._a.flags.c_contiguous or out._a.flags.f_contiguous):
            self.counts.add("operand_copies", 2)
            self.counts.add("launches", 2)
        out._a[...] = alpha * product + (beta * out._a if beta else 0)
        return out

    # -- fused kernels ------------------------------------------------------------------------

    def RawModule(self, code, options=()):
        """cupy.RawModule: here the CUDA source runs on the CPU (cuda_on_cpu.py)."""
        return _RawModule(self, code)

    def emulate(self, body):
        """A compiled kernel's stand-in: the numpy body on the arrays underneath, one launch."""
        def kernel(*args, **kwargs):
            self.counts.add("launches")
            result = body(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kwargs.items()})
            return _wrap_results(self, result)
        kernel.__name__ = body.__name__
        return kernel


def _wrap_results(xp, result):
    if isinstance(result, numpy.ndarray):
        return xp._wrap(result)
    if isinstance(result, tuple):
        return tuple(_wrap_results(xp, part) for part in result)
    return result


class _RawModule:
    def __init__(self, xp, code):
        from rwthlm_py.testing import cuda_on_cpu

        self._xp, self._library, self._cuda_on_cpu = xp, cuda_on_cpu.load(code), cuda_on_cpu

    def get_function(self, name):
        def kernel(grid, block, arguments):
            for value in arguments:
                if _is_host_array(value):
                    raise TypeError(f"a kernel argument is a host array ({value.shape})")
                if type(value) is int:  # a device address (cupy passes a Python int as 8 bytes)
                    self._xp.root_at(value)
            self._xp.counts.add("launches")
            arguments = [_unwrap(value) for value in arguments]
            if not self._xp.check_thread_orders:
                self._cuda_on_cpu.launch(self._library, name, grid, block, arguments)
            else:
                self._launch_in_every_order(name, grid, block, arguments)
        return kernel

    def _launch_in_every_order(self, name, grid, block, arguments):
        """The launch run from the same device memory with its threads in each order of
        cuda_on_cpu.ORDERS; the memory must come out the same to the byte each time."""
        memory = [array for array in self._reachable(arguments) if array.flags.writeable]
        before = [array.copy() for array in memory]
        after = None
        for kind in self._cuda_on_cpu.ORDERS:
            if after is not None:
                for array, saved in zip(memory, before, strict=True):
                    numpy.copyto(array, saved)
            order = self._cuda_on_cpu.thread_order(kind, grid[0] * block[0], self._xp.random)
            self._cuda_on_cpu.launch(self._library, name, grid, block, arguments, order)
            if after is None:
                after = [array.copy() for array in memory]
                continue
            for array, expected in zip(memory, after, strict=True):
                if array.tobytes(order="A") != expected.tobytes(order="A"):
                    raise AssertionError(f"kernel {name} leaves other values with its threads in {kind} order "
                                         f"than in ascending order: a thread reads what another thread writes")

    def _reachable(self, arguments):
        """The device memory a launch can reach: its array arguments' allocations, and those
        whose addresses were handed out."""
        roots = {id(root): root for root in self._xp.addressed.values()}
        for argument in arguments:
            if isinstance(argument, numpy.ndarray):
                root = _root(argument)
                roots[id(root)] = root
        return list(roots.values())


def _root(array):
    """The array that owns the memory of `array` (a view's base, its base's base, ...)."""
    while isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError: an allocation past the device's memory (of
    `device_bytes`)."""

    def __init__(self, size, total, device_bytes):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes).")
        self.device_bytes = device_bytes


class _FakeCuda:
    """cupy.cuda's device facts (Backend.describe, memory_bytes), its OutOfMemoryError,
    the cuBLAS binding (`cublas`) and the current device's handle (`device`)."""

    memory = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)

    def __init__(self, xp):
        self.cublas = xp.cublas_type(xp)
        self.device = types.SimpleNamespace(get_cublas_handle=lambda: LowLevelCublas.HANDLE)
        total = HOST_MEMORY if xp.memory_limit is None else xp.memory_limit
        self.runtime = types.SimpleNamespace(
            getDeviceProperties=lambda device_id: {"name": b"strict cupy test double", "totalGlobalMem": total},
            getDeviceCount=lambda: 1,
            memGetInfo=lambda: (total - xp.allocated, total))


register_array_type(StrictArray, lambda array: array._xp)
register_out_of_memory_error(OutOfMemoryError, lambda error: error.device_bytes)


def strict_backend(dtype="float32", cuda_kernels=False, check_thread_orders=False, memory_limit=None):
    """A Backend on a fresh StrictCupy (its counts are backend.xp.counts). Its fused kernels
    are the numpy bodies, each counted as one launch, or with cuda_kernels the CUDA kernels
    through their real launcher, run on the CPU (cuda_on_cpu.py); check_thread_orders runs
    each of their launches in every thread order and requires the same results (it copies
    all device memory three times a launch: for tests of moderate size); with memory_limit
    the device has that many bytes."""
    if check_thread_orders and not cuda_kernels:
        raise ValueError("thread orders are checked on the CUDA kernels (cuda_kernels=True)")
    xp = StrictCupy(check_thread_orders, memory_limit)
    if cuda_kernels:
        kernels = CudaKernels(xp, dtype)
    else:
        bodies = numpy_kernels()
        kernels = types.SimpleNamespace(**{name: xp.emulate(getattr(bodies, name)) for name in KERNEL_NAMES})
    return Backend("strict-cupy", xp, numpy.dtype(dtype), kernels=kernels)
