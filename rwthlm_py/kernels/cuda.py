"""The CUDA kernels of rwthlm_py.kernels, compiled at first use and launched on cupy arrays.

`CudaKernels(cupy, dtype)` offers the same operations as `numpy_kernels()`, with the same
arguments. It is handed the cupy module by backend.py (the one module that imports cupy).
Each source is compiled once per float type with NVRTC (cupy.RawModule, which also keeps
the binary in cupy's kernel cache); a launch is one thread per element, 256 to a block.
Arguments are checked for the layout the kernels index (contiguous, one float type), since
a kernel given a strided view would read the wrong elements without a word.

The LSTM's time loops (`lstm_forward_loop`, `lstm_backward_loop`) are where the host's time
per call counts: two calls per step and direction. There every step's arguments are
prepared before the loop, a step's arrays being at fixed offsets from their buffers'
starts (base address + offset), and the loop calls the kernel function and cuBLAS's C
binding (cupy.cuda.cublas, column-major: `RowMajorGemm`) with those tuples and nothing else:
no views, checks or argument conversions of rwthlm_py's per step (cupy still packs each
launch's arguments).
"""

import numpy

from rwthlm_py.kernels import dropout, lstm, optimizer, softmax

THREADS_PER_BLOCK = 256
REAL_TYPES = {"float32": "float", "float64": "double"}
# What the kernels share: finding the row of a table that a thread's element belongs to.
COMMON_SOURCE = r"""
extern "C" {

// The last row whose value in `column` is at most `value` (the column is increasing; the
// table has `rows` rows of `width` entries).
__device__ __forceinline__ int last_row_at_most(const long long* table, int rows, int width, int column,
                                                long long value) {
    int low = 0, high = rows - 1;
    while (low < high) {
        int middle = (low + high + 1) / 2;
        if (table[middle * width + column] <= value) low = middle; else high = middle - 1;
    }
    return low;
}

}
"""
SOURCES = (COMMON_SOURCE, lstm.CUDA_SOURCE, softmax.CUDA_SOURCE, optimizer.CUDA_SOURCE, dropout.CUDA_SOURCE)
SUM_THREADS = 1 << 16  # threads of sum_of_squares_parts: enough to fill a GPU


def source_for(dtype):
    """The kernels' source with `real` defined as the C type of `dtype`."""
    return f"typedef {REAL_TYPES[numpy.dtype(dtype).name]} real;\n" + "".join(SOURCES)


def _grid(elements):
    """A launch's blocks for one thread per element."""
    return (max((int(elements) + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, 1),)


def _addresses(steps, *columns):
    """Rows of device addresses, one row per step t of a time loop: base + t * stride for
    each column (base, stride), as Python ints (what cupy passes as a kernel's pointer
    argument: 8 bytes, as it does `.data.ptr`)."""
    bases, strides = numpy.array(columns, dtype=numpy.int64).T
    return (numpy.arange(steps, dtype=numpy.int64)[:, None] * strides + bases).tolist()


class RowMajorGemm:
    """Row-major products out[M, N] = a[M, K] b[K, N] (+ out) through cuBLAS's C binding
    (cupy.cuda.cublas sgemm or dgemm, on the current device's handle) on device addresses
    of C-contiguous matrices. cuBLAS is column-major: a row-major X is the column-major X^T
    with the same leading dimension (its row length), so the call computes
    out^T[N, M] = b^T[N, K] a^T[K, M], with m = N, n = M, k = K, and b first. alpha and
    beta are read from host memory (CUBLAS_POINTER_MODE_HOST, set while the products run)."""

    def __init__(self, cupy, dtype):
        self._cublas = cupy.cuda.cublas
        self.function = self._cublas.sgemm if numpy.dtype(dtype) == numpy.float32 else self._cublas.dgemm
        self._handle = cupy.cuda.device.get_cublas_handle()
        self._scalars = numpy.array([0, 1], dtype=dtype)  # beta = 0, and alpha (and beta) = 1; kept alive here
        self._zero = self._scalars.ctypes.data
        self._one = self._zero + self._scalars.itemsize

    def arguments(self, out, a, b, M, N, K, accumulate=False):
        """The argument tuple of `function` for out = a b (+ out with accumulate), given
        the addresses of contiguous out [M, N], a [M, K] and b [K, N]."""
        op_n = self._cublas.CUBLAS_OP_N
        return (self._handle, op_n, op_n, N, M, K, self._one, b, N, a, K, self._one if accumulate else self._zero,
                out, N)

    def __enter__(self):
        self._mode = self._cublas.getPointerMode(self._handle)
        self._cublas.setPointerMode(self._handle, self._cublas.CUBLAS_POINTER_MODE_HOST)
        return self

    def __exit__(self, *exception):
        self._cublas.setPointerMode(self._handle, self._mode)


def _run_steps(gemm, products, function, grid, launches, products_first=True):
    """A time loop: for each step its product (None: none) and its kernel launch, the
    product first or after."""
    block = (THREADS_PER_BLOCK,)
    with gemm:
        if products_first:
            for product, arguments in zip(products, launches, strict=True):
                if product is not None:
                    gemm.function(*product)
                function(grid, block, arguments)
        else:
            for product, arguments in zip(products, launches, strict=True):
                function(grid, block, arguments)
                if product is not None:
                    gemm.function(*product)


class CudaKernels:
    def __init__(self, cupy, dtype):
        self._cupy, self._dtype = cupy, numpy.dtype(dtype)
        self._module = None
        self._functions = {}

    def for_dtype(self, dtype):
        return self if numpy.dtype(dtype) == self._dtype else CudaKernels(self._cupy, dtype)

    def _function(self, name):
        if self._module is None:
            self._module = self._cupy.RawModule(code=source_for(self._dtype), options=("--std=c++14",))
        function = self._functions.get(name)
        if function is None:
            function = self._functions[name] = self._module.get_function(name)
        return function

    def _launch(self, name, elements, *args):
        self._function(name)(_grid(elements), (THREADS_PER_BLOCK,), args)

    def _check(self, *arrays, dtype=None):
        dtype = self._dtype if dtype is None else dtype
        for array in arrays:
            if array is not None and (array.dtype != dtype or not array.flags.c_contiguous):
                raise ValueError(f"a CUDA kernel needs contiguous {dtype.name} arrays, "
                                 f"got {array.dtype} with strides {array.strides}")

    def _check_indices(self, *arrays):
        self._check(*arrays, dtype=numpy.dtype(numpy.int64))

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

    def lstm_forward_loop(self, R, W_x, h0, c0, peepholes, A, C, tanh_C, Hs):
        """The forward time loop of lstm.py: for each step t, A[t] = R h(t-1) by cuBLAS
        (h(t-1) = Hs[t-1], or h0 [H, B] at step 0; none at step 0 without h0), then
        lstm_forward_step (W_x: [4H, T*B], step t's columns t*B ... t*B+B-1; c0 [H, B] or
        None)."""
        self._check(R, h0, c0, peepholes, A, C, tanh_C, Hs, W_x)
        T, H, B = C.shape
        item = self._dtype.itemsize
        step, gates = H * B * item, 4 * H * B * item
        c, h = C.data.ptr, Hs.data.ptr
        # per step: a, w_x, c_prev, c, tanh_c, h and h_prev (step 0's c_prev and h_prev replaced below)
        rows = _addresses(T, (A.data.ptr, gates), (W_x.data.ptr, B * item), (c - step, step), (c, step),
                          (tanh_C.data.ptr, step), (h, step), (h - step, step))
        rows[0][2] = c0.data.ptr if c0 is not None else rows[0][0]  # no c(-1): the kernel reads none
        rows[0][6] = h0.data.ptr if h0 is not None else None
        gemm = RowMajorGemm(self._cupy, self._dtype)
        recurrence, half_p, stride = R.data.ptr, peepholes.data.ptr, numpy.int64(T * B)
        sizes, with_state = (numpy.int32(H), numpy.int32(B)), numpy.int32(1)
        first = (numpy.int32(h0 is not None), numpy.int32(c0 is not None))
        products = [None if h_prev is None else gemm.arguments(a, recurrence, h_prev, 4 * H, B, H)
                    for a, _, _, _, _, _, h_prev in rows]
        launches = [(a, w_x, stride, c_prev, half_p, c_t, tanh_c, h_t, *sizes, *(first if t == 0 else
                                                                               (with_state, with_state)))
                    for t, (a, w_x, c_prev, c_t, tanh_c, h_t, _) in enumerate(rows)]
        _run_steps(gemm, products, self._function("lstm_forward_step"), _grid(H * B), launches)

    def lstm_backward_loop(self, R_T, e_h, K_o, K_h, K_zif, G, dA, cell_error, has_c0):
        """The backward time loop of lstm.py, from step T-1 down to 0: lstm_backward_step
        (the cell error passed down in cell_error [H, B]; at step 0 only with c0), then for
        t > 0 e_h[t-1] += R^T dA[t] by cuBLAS (R_T: R^T stored, [H, 4H]). Returns the cell
        error toward c0 (cell_error, or None without c0)."""
        self._check(R_T, e_h, K_o, K_h, K_zif, G, dA, cell_error)
        T, H, B = e_h.shape
        item = self._dtype.itemsize
        step, gates = H * B * item, 4 * H * B * item
        # per step: dh, K_o, K_h, K_zif, G, da, and dh of the step before
        rows = _addresses(T, (e_h.data.ptr, step), (K_o.data.ptr, step), (K_h.data.ptr, step),
                          (K_zif.data.ptr, 3 * step), (G.data.ptr, step), (dA.data.ptr, gates),
                          (e_h.data.ptr - step, step))
        gemm = RowMajorGemm(self._cupy, self._dtype)
        transposed, dc, sizes = R_T.data.ptr, cell_error.data.ptr, (numpy.int32(H), numpy.int32(B))
        flags = {(has_dc, has_dc_out): (numpy.int32(has_dc), numpy.int32(has_dc_out))
                 for has_dc in (False, True) for has_dc_out in (False, True)}
        launches, products = [], []
        for t in range(T - 1, -1, -1):
            dh, k_o, k_h, k_zif, g, da, dh_before = rows[t]
            has_dc, has_dc_out = t < T - 1, t > 0 or has_c0
            launches.append((dh, dc if has_dc else dh, k_o, k_h, k_zif, g, da, dc if has_dc_out else da, *sizes,
                             *flags[has_dc, has_dc_out]))
            products.append(gemm.arguments(dh_before, transposed, da, H, B, 4 * H, accumulate=True) if t else None)
        _run_steps(gemm, products, self._function("lstm_backward_step"), _grid(H * B), launches, products_first=False)
        return cell_error if has_c0 else None

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

    def lstm_peephole_gradient(self, dA, C, c0):
        self._check(dA, C, c0)
        T, H, B = C.shape
        terms = self._cupy.empty((3, H, B), dtype=self._dtype)
        self._launch("lstm_peephole_terms", terms.size, dA, C, C if c0 is None else c0, terms, numpy.int32(T),
                     numpy.int32(H), numpy.int32(B), numpy.int32(c0 is not None))
        return terms.sum(axis=2).reshape(3 * H)

    def softmax_pick(self, logits, bias, target, logp, totals, sum_probs):
        """The row softmax, shifted by each row's maximum (cupy reductions, one kernel)."""
        self._check(logits, bias, logp, totals)
        self._check_indices(target)
        if bias is not None:
            logits += bias
        logits -= logits.max(axis=1)[:, None]
        N, K = logits.shape
        self._launch("softmax_pick_rows", N, logits, target, logp, numpy.int64(N), numpy.int64(K))
        self._cupy.exp(logits, out=logits)
        logits.sum(axis=1, out=totals)
        logp -= self._cupy.log(totals)
        return (1 / totals) @ logits if sum_probs else None

    def word_logits(self, weights, bias, h_columns, table, buffer):
        self._check(weights, bias, h_columns, buffer)
        self._check_indices(table)
        H, M = h_columns.shape
        self._launch("word_logits", buffer.size, weights, weights if bias is None else bias,
                     numpy.int32(bias is not None), h_columns, numpy.int64(M), numpy.int32(H), table,
                     numpy.int32(len(table)), buffer, numpy.int64(buffer.size))

    def word_softmax_pick(self, buffer, table, target_index, logp, totals):
        self._check(buffer, logp, totals)
        self._check_indices(table, target_index)
        self._launch("word_softmax_pick", len(logp), buffer, table, numpy.int32(len(table)), target_index,
                     logp, totals, numpy.int64(len(logp)))

    def word_logit_gradient(self, buffer, table, target_index, totals, g):
        self._check(buffer, totals, g)
        self._check_indices(table, target_index)
        self._launch("word_logit_gradient", len(totals), buffer, table, numpy.int32(len(table)), target_index,
                     totals, totals if g is None else g, numpy.int32(g is not None), numpy.int64(len(totals)))

    def word_input_gradient(self, buffer, weights, table, dh_sorted):
        self._check(buffer, weights, dh_sorted)
        self._check_indices(table)
        M, H = dh_sorted.shape
        self._launch("word_input_gradient", M * H, buffer, weights, table, numpy.int32(len(table)), dh_sorted,
                     numpy.int64(M), numpy.int32(H))

    def word_bias_gradient(self, buffer, table, db):
        self._check(buffer, db)
        self._check_indices(table)
        self._launch("word_bias_gradient", len(db), buffer, table, numpy.int32(len(table)), db,
                     numpy.int64(len(db)))

    def _word_weight_gradient(self, buffer, h_sorted, table, rows_used):
        self._check(buffer, h_sorted)
        self._check_indices(table)
        H = h_sorted.shape[1]
        stacked = self._cupy.empty((rows_used, H), dtype=self._dtype)
        self._launch("word_weight_gradient", rows_used * H, buffer, h_sorted, table, numpy.int32(len(table)),
                     stacked, numpy.int64(rows_used), numpy.int32(H))
        return stacked

    def word_weight_update(self, weights, scale, buffer, h_sorted, table, rows_used):
        """The used rows' gradient formed once (a GPU reads it back at full speed), scaled
        and added to W_word."""
        self._check(weights)
        stacked = self._word_weight_gradient(buffer, h_sorted, table, rows_used)
        stacked *= scale
        self._launch("add_stacked_rows", stacked.size, weights, stacked, table, numpy.int32(len(table)),
                     numpy.int64(rows_used), numpy.int32(weights.shape[1]))

    def word_weight_squared_norm(self, buffer, h_sorted, table, rows_used):
        stacked = self._word_weight_gradient(buffer, h_sorted, table, rows_used).reshape(-1)
        return stacked @ stacked

    def _address_table(self, *columns):
        """A table on the device with a row per array of columns[0]: its first element in a
        numbering of all their elements, its size, and the device address of it and of the
        arrays at the same place in the other columns (0 for None)."""
        sizes = numpy.array([array.size for array in columns[0]], dtype=numpy.int64)
        table = numpy.zeros((len(sizes), 2 + len(columns)), dtype=numpy.int64)
        table[:, 0] = numpy.cumsum(sizes) - sizes
        table[:, 1] = sizes
        for k, arrays in enumerate(columns):
            table[:, 2 + k] = [0 if array is None else array.data.ptr for array in arrays]
        return self._cupy.asarray(table), int(sizes.sum())

    def sgd_step(self, params, gradients, buffers, learning_rate, momentum):
        """One launch for all parameters, through a table of their device addresses."""
        self._check(*params, *gradients, *buffers)
        table, total = self._address_table(params, gradients, buffers)
        on_device = not isinstance(learning_rate, (int, float, numpy.floating))
        rate = learning_rate if on_device else params[0]
        self._check(rate)
        self._launch("sgd_step", total, table, numpy.int32(len(params)), numpy.int64(total),
                     self._dtype.type(0 if on_device else learning_rate), rate, numpy.int32(on_device),
                     self._dtype.type(momentum))

    def sum_of_squares(self, arrays):
        self._check(*arrays)
        table, total = self._address_table(arrays)
        threads = max(1, min(total, SUM_THREADS))
        parts = self._cupy.empty(threads, dtype=self._dtype)
        self._launch("sum_of_squares_parts", threads, table, numpy.int32(len(arrays)), numpy.int64(total),
                     numpy.int64(threads), parts)
        return parts.sum()

    def dropout_mask(self, mask, first_column, key, threshold, scale, x=None, dropped=None):
        """One launch, a thread per four units of a step (of x's steps, given x); the key
        and threshold are launch arguments, so nothing is copied to the device."""
        self._check(mask, x, dropped)
        steps, B, H = mask.shape if x is None else x.shape
        groups = (H + dropout.WORDS_PER_COUNTER - 1) // dropout.WORDS_PER_COUNTER
        self._launch("dropout_mask", steps * B * groups, mask, mask if x is None else x,
                     mask if dropped is None else dropped, numpy.int32(x is not None), numpy.int32(steps),
                     numpy.int32(B), numpy.int32(H), numpy.int32(mask.shape[0] != steps), numpy.int64(first_column),
                     numpy.int64(key[0]), numpy.int64(key[1]), numpy.int64(threshold), self._dtype.type(scale))
