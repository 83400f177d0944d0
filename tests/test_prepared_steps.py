"""The LSTM's time loops with their arguments prepared once (kernels/cuda.py: device
addresses base + offset, cuBLAS's C binding, the kernel function called directly), checked
through the strict double's emulation of that interface: its cuBLAS is column-major with
leading dimensions, transposes, alpha and beta, and refuses an address outside a live
buffer; the prepared loops give bit for bit what the step-by-step path gives with the same
CUDA kernels, in every thread order, and numpy's results in float64."""

import dataclasses

import numpy
import pytest

from rwthlm_py.kernels.cuda import RowMajorGemm
from rwthlm_py.layers.lstm import Lstm
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cublas import LowLevelCublas
from rwthlm_py.testing.strict_cupy import StrictCupy, strict_backend

NEEDS_A_COMPILER = pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++)")
N, T_ = LowLevelCublas.CUBLAS_OP_N, LowLevelCublas.CUBLAS_OP_T


def column_major(xp, rng, rows, columns, leading):
    """A device buffer holding a rows x columns column-major matrix with leading dimension
    `leading` (the padding rows hold numbers too), and the matrix as a host array."""
    buffer = rng.normal(size=columns * leading)
    matrix = buffer.reshape(columns, leading).T[:rows].copy()
    return xp.asarray(buffer), matrix


@pytest.mark.parametrize("transa, transb", [(N, N), (T_, N), (N, T_), (T_, T_)])
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (1.0, 1.0), (0.5, -2.0)])
def test_the_doubles_cublas_computes_column_major_products(transa, transb, alpha, beta):
    """C = alpha op(A) op(B) + beta C on column-major matrices with padded leading
    dimensions; the padding of C is left alone, and beta = 0 does not read C (a NaN there
    does not come through)."""
    xp, rng = StrictCupy(), numpy.random.default_rng(0)
    m, n, k = 5, 7, 3
    a_shape, b_shape = ((m, k) if transa == N else (k, m)), ((k, n) if transb == N else (n, k))
    a, a_host = column_major(xp, rng, *a_shape, a_shape[0] + 2)
    b, b_host = column_major(xp, rng, *b_shape, b_shape[0] + 1)
    c, c_host = column_major(xp, rng, m, n, m + 3)
    if beta == 0:
        c[0:1] = xp.asarray(numpy.array([numpy.nan]))
        c_host[0, 0] = numpy.nan
    before = c.get()
    scalars = numpy.array([alpha, beta])  # host memory that cuBLAS reads alpha and beta from
    xp.cuda.cublas.dgemm(xp.cuda.device.get_cublas_handle(), transa, transb, m, n, k, scalars.ctypes.data,
                         a.data.ptr, a_shape[0] + 2, b.data.ptr, b_shape[0] + 1, scalars.ctypes.data + 8, c.data.ptr,
                         m + 3)
    op_a, op_b = (a_host if transa == N else a_host.T), (b_host if transb == N else b_host.T)
    expected = alpha * op_a @ op_b + (beta * c_host if beta else 0)
    got = c.get().reshape(n, m + 3).T
    numpy.testing.assert_allclose(got[:m], expected, rtol=1e-13, atol=1e-13)
    numpy.testing.assert_array_equal(got[m:], before.reshape(n, m + 3).T[m:])


def test_the_doubles_cublas_refuses_addresses_outside_live_buffers():
    xp, rng = StrictCupy(), numpy.random.default_rng(0)
    a, _ = column_major(xp, rng, 4, 4, 4)
    c, _ = column_major(xp, rng, 4, 4, 4)
    one = numpy.ones(1)
    handle, cublas = xp.cuda.device.get_cublas_handle(), xp.cuda.cublas
    arguments = dict(handle=handle, transa=N, transb=N, m=4, n=4, k=4, alpha=one.ctypes.data, a=a.data.ptr,
                     lda=4, b=a.data.ptr, ldb=4, beta=one.ctypes.data, c=c.data.ptr, ldc=4)
    cublas.dgemm(**arguments)
    for changes in (dict(c=c.data.ptr + 8),  # the last column runs past the end of c's buffer
                    dict(ldb=5),  # so does b's with a longer leading dimension
                    dict(a=a.data.ptr - 8),  # before its start
                    dict(lda=3)):  # a leading dimension below the rows: cuBLAS refuses it
        with pytest.raises(ValueError):
            cublas.dgemm(**dict(arguments, **changes))
    freed = xp.zeros(16).data.ptr  # the array is gone when the line ends
    with pytest.raises(ValueError, match="no live device buffer"):
        cublas.dgemm(**dict(arguments, a=freed))
    with pytest.raises(ValueError, match="no cuBLAS handle"):
        cublas.dgemm(**dict(arguments, handle=handle + 1))


@NEEDS_A_COMPILER
def test_a_kernel_is_refused_an_address_outside_live_buffers():
    backend = strict_backend("float64", cuda_kernels=True)
    kernels, xp = backend.kernels, backend.xp
    x = xp.zeros(64)
    twice = kernels._function("lstm_forward_step")
    outside = x.data.ptr + x.nbytes
    arguments = (x.data.ptr, x.data.ptr, numpy.int64(1), x.data.ptr, x.data.ptr, x.data.ptr, x.data.ptr,
                 outside, numpy.int32(1), numpy.int32(1), numpy.int32(0), numpy.int32(0))
    with pytest.raises(ValueError, match="no live device buffer"):
        twice((1,), (256,), arguments)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_row_major_products_on_prepared_arguments_equal_numpys_bit_for_bit(dtype, accumulate):
    """A 2x650 layer's recurrent product at B = 64 (R [4H, H] h [H, B] into a step's
    gates), through RowMajorGemm on device addresses, gives exactly numpy.matmul's bits
    (and out += a @ b's with beta = 1)."""
    xp, rng = StrictCupy(), numpy.random.default_rng(1)
    H, B = 650, 64
    R, h = rng.normal(size=(4 * H, H)).astype(dtype), rng.normal(size=(H, B)).astype(dtype)
    out = rng.normal(size=(3, 4 * H, B)).astype(dtype)  # the product goes into the middle one
    expected = out.copy()
    if accumulate:
        expected[1] += R @ h
    else:
        numpy.matmul(R, h, out=expected[1])
    device_R, device_h, device_out = xp.asarray(R), xp.asarray(h), xp.asarray(out)
    gemm = RowMajorGemm(xp, dtype)
    step = 4 * H * B * numpy.dtype(dtype).itemsize
    cublas, handle = xp.cuda.cublas, xp.cuda.device.get_cublas_handle()
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_DEVICE)  # as a library beside us may leave it
    with gemm:
        gemm.function(*gemm.arguments(device_out.data.ptr + step, device_R.data.ptr, device_h.data.ptr, 4 * H, B, H,
                                      accumulate))
    assert device_out.get().tobytes() == expected.tobytes()
    assert cublas.getPointerMode(handle) == cublas.CUBLAS_POINTER_MODE_DEVICE  # given back as it was found


class StepByStep:
    """The CUDA kernels without their prepared time loops: lstm.py then takes a step at a
    time through backend.gemm and the step kernels."""

    def __init__(self, kernels):
        self._kernels = kernels

    def __getattr__(self, name):
        if name in ("lstm_forward_loop", "lstm_backward_loop"):
            raise AttributeError(name)
        return getattr(self._kernels, name)


def lstm_run(backend, with_state, steps=7, batch=16, size=40, inputs=24, seed=3):
    """y, the final state, dx, the initial state's gradients and every parameter gradient
    of one LSTM layer (float arrays on the host), from one forward and backward pass."""
    rng = numpy.random.default_rng(seed)
    layer = Lstm(inputs, size, backend)
    layer.initialize(rng)
    x = backend.asarray(rng.normal(size=(steps, batch, inputs)))
    state = tuple(backend.asarray(rng.normal(size=(batch, size))) for _ in range(2)) if with_state else None
    lengths = backend.asarray(numpy.full(batch, steps), dtype=numpy.int64)
    dy = backend.asarray(rng.normal(size=(steps, batch, size)))
    layer.zero_grads()
    y, final, cache = layer.forward(x, state, lengths)
    dx, (dh0, dc0) = layer.backward(dy, cache)
    results = [y, *final, dx] + ([dh0, dc0] if with_state else []) + [layer.dense_grad(n) for n in sorted(layer.grads)]
    return [backend.to_numpy(value) for value in results]


@NEEDS_A_COMPILER
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_state", [False, True])
def test_the_prepared_time_loops_give_the_step_by_steps_bits(dtype, with_state):
    """H B = 640 (three blocks a launch), 7 steps, with and without an initial state: the
    prepared loops (taken, as the counted launches at cuda.py show) and the step-by-step
    path agree bit for bit."""
    prepared = strict_backend(dtype, cuda_kernels=True)
    step_by_step = strict_backend(dtype, cuda_kernels=True)
    step_by_step = dataclasses.replace(step_by_step, kernels=StepByStep(step_by_step.kernels))
    got, expected = lstm_run(prepared, with_state), lstm_run(step_by_step, with_state)
    in_lstm = [sum(n for site, n in backend.xp.counts.launches.items() if site.startswith("lstm.py"))
               for backend in (prepared, step_by_step)]
    assert in_lstm[0] + 2 * (7 - 1) <= in_lstm[1], in_lstm  # the loops' products left lstm.py for cuda.py
    sites = set(prepared.xp.counts.launches)
    assert any(site.startswith("cuda.py") for site in sites), sites  # named by the project's code that asked
    assert not any(site.startswith("strict_") for site in sites), sites
    for value, reference in zip(got, expected, strict=True):
        assert value.tobytes() == reference.tobytes()


@NEEDS_A_COMPILER
@pytest.mark.parametrize("with_state", [False, True])
def test_the_prepared_time_loops_equal_numpys_in_every_thread_order(with_state):
    """Every launch of the prepared loops run in ascending, descending and shuffled thread
    order gives the same bytes (the double checks), and the layer's results and gradients
    are numpy's to 1e-12 in float64."""
    got = lstm_run(strict_backend("float64", cuda_kernels=True, check_thread_orders=True), with_state, steps=4,
                   batch=30, size=20)
    expected = lstm_run(get_backend("numpy", "float64"), with_state, steps=4, batch=30, size=20)
    for value, reference in zip(got, expected, strict=True):
        numpy.testing.assert_allclose(value, reference, rtol=1e-12, atol=1e-12)

