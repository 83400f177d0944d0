"""cuBLAS's C binding (cupy.cuda.cublas) for the strict cupy double (strict_cupy.py): the
products the project calls on device addresses, computed on the numpy buffers behind them,
with every address checked against the double's live buffers."""

import ctypes

import numpy


class LowLevelCublas:
    """cupy.cuda.cublas, the binding of cuBLAS's C API, as far as the project calls it:
    sgemm and dgemm on device addresses with host scalars alpha and beta, and the pointer
    mode. The matrices are column-major, as cuBLAS has them:

        C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C     (beta = 0: C is not read)

    where op(X) is X (CUBLAS_OP_N) or its transpose (CUBLAS_OP_T), A is stored as m x k
    (N) or k x m (T) with leading dimension lda, and so on. Every address must lie, with
    the whole matrix it starts, in a live device buffer. A row-major C = A B is the
    column-major C^T = B^T A^T: the product is computed that way round, on the row-major
    views, so that numpy computes exactly what numpy.matmul computes on the numpy backend.
    """

    CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
    CUBLAS_POINTER_MODE_HOST, CUBLAS_POINTER_MODE_DEVICE = 0, 1
    HANDLE = 0x5EED  # the one handle of the double's device

    def __init__(self, xp):
        self._xp = xp
        self._pointer_mode = self.CUBLAS_POINTER_MODE_HOST

    def getPointerMode(self, handle):
        self._check_handle(handle)
        return self._pointer_mode

    def setPointerMode(self, handle, mode):
        self._check_handle(handle)
        self._pointer_mode = mode

    def sgemm(self, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        self._gemm(numpy.float32, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def dgemm(self, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        self._gemm(numpy.float64, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def _check_handle(self, handle):
        if handle != self.HANDLE:
            raise ValueError(f"{handle!r} is no cuBLAS handle of this device")

    def _gemm(self, dtype, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        self._check_handle(handle)
        if self._pointer_mode != self.CUBLAS_POINTER_MODE_HOST:
            raise ValueError("alpha and beta are host addresses only in CUBLAS_POINTER_MODE_HOST")
        if transa not in (self.CUBLAS_OP_N, self.CUBLAS_OP_T) or transb not in (self.CUBLAS_OP_N, self.CUBLAS_OP_T):
            raise ValueError(f"unknown operation {transa}, {transb}")
        self._xp.counts.add("launches")
        alpha, beta = (_host_scalar(pointer, dtype) for pointer in (alpha, beta))
        a_view = self._xp.matrix_at(a, *((m, k) if transa == self.CUBLAS_OP_N else (k, m)), lda, dtype)
        b_view = self._xp.matrix_at(b, *((k, n) if transb == self.CUBLAS_OP_N else (n, k)), ldb, dtype)
        c_view = self._xp.matrix_at(c, m, n, ldc, dtype)
        op_a = a_view if transa == self.CUBLAS_OP_N else a_view.T
        op_b = b_view if transb == self.CUBLAS_OP_N else b_view.T
        product = op_b.T @ op_a.T  # C^T, from the row-major views
        if alpha != 1:
            product *= alpha
        if beta == 0:
            c_view.T[...] = product
        elif beta == 1:
            c_view.T[...] += product
        else:
            c_view.T[...] *= beta
            c_view.T[...] += product


def _host_scalar(pointer, dtype):
    """The number of `dtype` at host address `pointer` (cuBLAS's alpha and beta)."""
    ctype = ctypes.c_float if numpy.dtype(dtype) == numpy.float32 else ctypes.c_double
    return ctype.from_address(pointer).value
