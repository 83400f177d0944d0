"""The CUDA kernels of rwthlm_py.kernels, compiled at first use and launched on cupy arrays.

`CudaKernels(cupy, dtype)` offers the same operations as `numpy_kernels()`, with the same
arguments. It is handed the cupy module by backend.py (the one module that imports cupy).
Each source is compiled once per float type with NVRTC (cupy.RawModule, which also keeps
the binary in cupy's kernel cache); a launch is one thread per element, 256 to a block.
Arguments are checked for the layout the kernels index (contiguous, one float type), since
a kernel given a strided view would read the wrong elements without a word.
"""

import numpy

from rwthlm_py.kernels import lstm

THREADS_PER_BLOCK = 256
REAL_TYPES = {"float32": "float", "float64": "double"}


def source_for(dtype, source=lstm.CUDA_SOURCE):
    """A kernel source with `real` defined as the C type of `dtype`."""
    return f"typedef {REAL_TYPES[numpy.dtype(dtype).name]} real;\n{source}"


class CudaKernels:
    def __init__(self, cupy, dtype):
        self._cupy, self._dtype = cupy, numpy.dtype(dtype)
        self._module = None
        self._functions = {}

    def _launch(self, name, elements, *args):
        if self._module is None:
            self._module = self._cupy.RawModule(code=source_for(self._dtype), options=("--std=c++14",))
        function = self._functions.get(name)
        if function is None:
            function = self._functions[name] = self._module.get_function(name)
        blocks = (int(elements) + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        function((max(blocks, 1),), (THREADS_PER_BLOCK,), args)

    def _check(self, *arrays):
        for array in arrays:
            if array is not None and (array.dtype != self._dtype or not array.flags.c_contiguous):
                raise ValueError(f"a CUDA kernel needs contiguous {self._dtype.name} arrays, "
                                 f"got {array.dtype} with strides {array.strides}")

    def lstm_peepholes(self, p, batch_size, steps):
        """0.5 p as [3H] (the kernels index it by cell)."""
        return 0.5 * p

    def lstm_forward_step(self, a, w_x, c_prev, peepholes, c, tanh_c, h, has_recurrence):
        self._check(a, c_prev, peepholes, c, tanh_c, h)
        if w_x.dtype != self._dtype or w_x.strides[1] != w_x.itemsize:
            raise ValueError("w_x must be rows of contiguous columns")
        H, B = c.shape
        self._launch("lstm_forward_step", H * B, a, w_x, numpy.int64(w_x.strides[0] // w_x.itemsize),
                     a if c_prev is None else c_prev, peepholes, c, tanh_c, h, numpy.int32(H),
                     numpy.int32(B), numpy.int32(bool(has_recurrence)), numpy.int32(c_prev is not None))

    def lstm_backward_factors(self, A, C, tanh_C, c0, p):
        self._check(A, C, tanh_C, c0, p)
        T, H, B = C.shape
        empty = self._cupy.empty
        K_o, K_h, G = (empty((T, H, B), dtype=self._dtype) for _ in range(3))
        K_zif = empty((T, 3, H, B), dtype=self._dtype)
        self._launch("lstm_backward_factors", T * H * B, A, C, tanh_C, C if c0 is None else c0, p,
                     K_o, K_h, K_zif, G, numpy.int32(T), numpy.int32(H), numpy.int32(B),
                     numpy.int32(c0 is not None))
        return K_o, K_h, K_zif, G

    def lstm_backward_step(self, dh, dc, K_o, K_h, K_zif, G, da, dc_out):
        self._check(dh, dc, K_o, K_h, K_zif, G, da, dc_out)
        H, B = dh.shape
        self._launch("lstm_backward_step", H * B, dh, dh if dc is None else dc, K_o, K_h, K_zif, G, da,
                     da if dc_out is None else dc_out, numpy.int32(H), numpy.int32(B),
                     numpy.int32(dc is not None), numpy.int32(dc_out is not None))
