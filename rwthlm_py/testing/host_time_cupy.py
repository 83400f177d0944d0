"""The strict cupy double without arithmetic: what the host alone spends on a batch.

`ShapeOnlyCupy` is strict_cupy.StrictCupy with every operation that a GPU would run
returning at once: kernels launch nothing, products multiply nothing, element-wise
operations, reductions, gathers and fills compute nothing. Each still allocates what it
returns (an empty array of the shape and float type cupy would give, or the `out` it was
handed), so that the caller's Python, the views it takes and the allocations it makes are
all there is to time. Nothing is counted and no call site is looked up (`Uncounted`), so
that the double's own cost per call stays small. The arrays hold whatever memory held:
device results that come back to the host (`float()`, `.get()`) are meaningless, and a
gather takes the shape of its device indices, not their values.

Host-to-device copies (`asarray` of host data), views, and waits are real, as are the
CUDA kernels' launchers and cuBLAS's argument checks in rwthlm_py (the code a GPU would
run on the host). What cupy itself spends per call on a GPU (its Python and Cython, the
driver's launch) is not here: the double's own cost per call stands in for it and is
measured by benchmarks/device_counts.py beside the figure.
"""

import numpy

from rwthlm_py.kernels.cuda import CudaKernels
from rwthlm_py.runtime.backend import Backend, register_array_type
from rwthlm_py.testing.strict_cublas import LowLevelCublas
from rwthlm_py.testing.strict_cupy import (
    Counts,
    StrictArray,
    StrictCupy,
    StrictUfunc,
    _is_host_array,
    _unwrap,
    install_operators,
)


class Uncounted(Counts):
    """Counts that count nothing (no call site is looked up)."""

    def add(self, counter, number=1):
        pass


_NO_BYTES = numpy.dtype([])  # a dtype of zero bytes: arrays of it can be indexed without copying a byte
_RESULT_TYPES = {}  # (function, operand types, keyword arguments) -> the result's dtype


def _operands(values):
    for value in values:
        if _is_host_array(value) or isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)}")
    return [_unwrap(value) for value in values]


def _like_result(function, operands, **kwargs):
    """An empty array of the shape and float type of function(*operands) (a ufunc or
    operator applied element-wise), found from one element of each operand."""
    key = (function, *(value.dtype if isinstance(value, numpy.ndarray) else type(value) for value in operands),
           *kwargs.items())
    dtype = _RESULT_TYPES.get(key)
    if dtype is None:
        samples = [numpy.ones((), value.dtype) if isinstance(value, numpy.ndarray) else value for value in operands]
        with numpy.errstate(all="ignore"):
            dtype = _RESULT_TYPES[key] = numpy.asarray(function(*samples, **kwargs)).dtype
    shapes = {value.shape for value in operands if isinstance(value, numpy.ndarray)}
    shape = shapes.pop() if len(shapes) == 1 and all(isinstance(value, (numpy.ndarray, int, float))
                                                     for value in operands) else numpy.broadcast_shapes(
        *(numpy.shape(value) for value in operands))
    return numpy.empty(shape, dtype)


def _reduced_like(array, reduce, axis, keepdims, **kwargs):
    """An empty array shaped as reduce(array, axis, keepdims) (reduce: a callable taking
    the array, axis= and keepdims=), its dtype found from one element."""
    axes = range(array.ndim) if axis is None else [k % array.ndim for k in (axis if isinstance(axis, tuple) else
                                                                           (axis,))]
    key = (reduce, array.dtype, *kwargs.items())
    dtype = _RESULT_TYPES.get(key)
    if dtype is None:
        small = array[(slice(0, 1),) * array.ndim]
        dtype = _RESULT_TYPES[key] = numpy.asarray(reduce(small, axis=axis, keepdims=keepdims, **kwargs)).dtype
    shape = tuple(1 if k in axes else n for k, n in enumerate(array.shape) if keepdims or k not in axes)
    return numpy.empty(shape, dtype)


def _shaped(array, out, xp):
    if out is not None:
        return out
    return xp._wrap(array)


def _operator(function, inplace=False, reflected=False):
    def method(self, other):
        left, right = _operands([other, self] if reflected else [self, other])
        if inplace:
            return self
        return self._wrap(_like_result(function, [left, right]))
    return method


def _unary(function):
    def method(self):
        return self._wrap(_like_result(function, [self._a]))
    return method


def _reduction(name):
    def method(self, axis=None, dtype=None, out=None, keepdims=False):
        kwargs = {} if dtype is None else {"dtype": dtype}
        reduce = getattr(numpy.ndarray, name)
        return _shaped(_reduced_like(self._a, reduce, axis, keepdims, **kwargs), out, self._xp)
    method.__name__ = name
    return method


class ShapeOnlyArray(StrictArray):
    """A device array of the double without arithmetic: views are real, work is not."""

    __slots__ = ()

    def reshape(self, *shape, order="C"):
        return self._wrap(self._a.reshape(*shape, order=order))

    def copy(self, order="C"):
        return self._wrap(numpy.empty_like(self._a, order=order))

    def astype(self, dtype, copy=True, order="K"):
        if not copy and self._a.dtype == numpy.dtype(dtype):
            return self
        return self._wrap(numpy.empty_like(self._a, dtype=dtype, order=order))

    def fill(self, value):
        pass

    def __getitem__(self, key):
        parts = key if isinstance(key, tuple) else (key,)
        if not any(isinstance(part, (StrictArray, numpy.ndarray, list)) for part in parts):
            return self._wrap(self._a[key])
        # a gather: its shape from the indices' shapes (their values are whatever memory held)
        parts = [numpy.zeros(part.shape, numpy.intp) if isinstance(part, StrictArray) and part.dtype != numpy.bool_
                 else _unwrap(part) for part in parts]
        nothing = numpy.broadcast_to(numpy.empty((), _NO_BYTES), self._a.shape)  # indexed without copying
        return self._wrap(numpy.empty(nothing[tuple(parts)].shape, self._a.dtype))

    def __setitem__(self, key, value):
        if _is_host_array(value):
            raise TypeError(f"Unsupported type {type(value)} (a host array assigned into a device array)")


install_operators(ShapeOnlyArray, _operator, _unary, _reduction)


class ShapeOnlyUfunc(StrictUfunc):
    def __call__(self, *inputs, out=None, **kwargs):
        operands = _operands(inputs)
        if out is not None:
            return out[0] if isinstance(out, tuple) else out
        return self._xp._wrap(_like_result(self._ufunc, operands, **kwargs))

    def reduce(self, array, axis=0, dtype=None, out=None, keepdims=False):
        kwargs = {} if dtype is None else {"dtype": dtype}
        return _shaped(_reduced_like(_operands([array])[0], self._ufunc.reduce, axis, keepdims, **kwargs), out,
                       self._xp)

    def reduceat(self, array, indices, axis=0, dtype=None, out=None):
        data = _operands([array])[0]
        shape = list(data.shape)
        shape[axis] = len(indices)
        return _shaped(numpy.empty(shape, dtype or data.dtype), out, self._xp)

    def at(self, array, indices, values=None):
        pass


class _NoKernels:
    """cupy.RawModule whose kernels return at once."""

    def get_function(self, name):
        def kernel(grid, block, arguments):
            pass
        return kernel


class ShapeOnlyCublas(LowLevelCublas):
    """cupy.cuda.cublas whose products compute nothing."""

    def sgemm(self, *arguments):
        pass

    dgemm = sgemm


class ShapeOnlyCupy(StrictCupy):
    """StrictCupy without arithmetic and without counts."""

    ndarray = ShapeOnlyArray
    ufunc_type = ShapeOnlyUfunc
    cublas_type = ShapeOnlyCublas
    poison_new_memory = False  # filling is arithmetic the host's time would then include

    def __init__(self):
        super().__init__()
        self.counts = Uncounted()

    def matmul(self, a, b, out=None):
        a, b = self._device_arrays([a, b])
        if out is not None:
            return out
        shape = a.shape[:-1] + b.shape[1:] if b.ndim == 2 else a.shape[:-1]
        return self._wrap(numpy.empty(shape, numpy.result_type(a, b)))

    dot = matmul

    def _gemm(self, transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
        if out is not None:
            return out
        rows = a.shape[1] if transa == "T" else a.shape[0]
        columns = b.shape[0] if transb == "T" else b.shape[1]
        return self._wrap(numpy.empty((rows, columns), a.dtype))

    def RawModule(self, code, options=()):
        return _NoKernels()

    def emulate(self, body):
        raise TypeError("the double without arithmetic runs the CUDA kernels' launchers only (cuda_kernels=True)")

    def _filled(self, array):
        return self._wrap(array)

    def zeros(self, shape, dtype=float, order="C"):
        return self._wrap(numpy.empty(shape, dtype=dtype, order=order))

    def ones(self, shape, dtype=float):
        return self._wrap(numpy.empty(shape, dtype=dtype))

    def full(self, shape, value, dtype=None):
        return self._wrap(numpy.empty(shape, dtype=dtype or numpy.asarray(value).dtype))

    def zeros_like(self, array, dtype=None):
        return self._wrap(numpy.empty_like(array._a, dtype=dtype))

    ones_like = zeros_like

    def full_like(self, array, value, dtype=None):
        return self._wrap(numpy.empty_like(array._a, dtype=dtype))

    def concatenate(self, arrays, axis=0, out=None):
        data = self._device_arrays(arrays)
        shape = list(data[0].shape)
        shape[axis] = sum(array.shape[axis] for array in data)
        return _shaped(numpy.empty(shape, numpy.result_type(*data)), out, self)

    def stack(self, arrays, axis=0, out=None):
        data = self._device_arrays(arrays)
        shape = list(data[0].shape)
        shape.insert(axis, len(data))
        return _shaped(numpy.empty(shape, numpy.result_type(*data)), out, self)

    def repeat(self, array, repeats, axis=None):
        data = self._device_arrays([array])[0]
        shape = [data.size] if axis is None else list(data.shape)
        shape[0 if axis is None else axis] *= int(repeats)
        return self._wrap(numpy.empty(shape, data.dtype))

    def ascontiguousarray(self, array, dtype=None):
        data = self._device_arrays([array])[0]
        if data.flags.c_contiguous and (dtype is None or data.dtype == dtype):
            return array
        return self._wrap(numpy.empty(data.shape, dtype or data.dtype))

    def where(self, condition, x, y):
        return self._wrap(_like_result(numpy.where, _operands([condition, x, y])))

    def argsort(self, array, axis=-1, kind=None):
        return self._wrap(numpy.empty(array.shape, numpy.intp))

    def cumsum(self, array, axis=None, dtype=None):
        data = self._device_arrays([array])[0]
        return self._wrap(numpy.empty(data.shape if axis is not None else data.size, dtype or data.dtype))

    def count_nonzero(self, array, axis=None):
        return self._wrap(numpy.empty((), numpy.intp))


register_array_type(ShapeOnlyArray, lambda array: array._xp)


def shape_only_backend(dtype="float32"):
    """A Backend on a fresh ShapeOnlyCupy with the CUDA kernels' launchers (whose kernels
    return at once): the host's work of a batch and nothing else."""
    xp = ShapeOnlyCupy()
    return Backend("strict-cupy-shapes", xp, numpy.dtype(dtype), kernels=CudaKernels(xp, dtype))
