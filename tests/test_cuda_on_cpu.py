"""The CUDA kernels on the CPU (rwthlm_py/testing/cuda_on_cpu.py) run a launch's threads in
any order, and the strict double with check_thread_orders refuses a kernel whose threads
read what other threads of the launch write, directly or through a table of addresses."""

import numpy
import pytest

from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cupy import StrictCupy

pytestmark = pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++)")

SOURCE = r"""
typedef double real;
extern "C" {

// Each thread its own element: any order gives the same result.
__global__ void twice(real* x, long long n) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k < n) x[k] *= 2;
}

// Each thread adds its left neighbour, which that neighbour's thread may have changed first.
__global__ void add_left(real* x, long long n) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k > 0 && k < n) x[k] += x[k - 1];
}

// The same two, on an array reached through a table of addresses.
__global__ void twice_through_table(const long long* table, long long n) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    real* x = (real*)table[0];
    if (k < n) x[k] *= 2;
}

__global__ void add_left_through_table(const long long* table, long long n) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    real* x = (real*)table[0];
    if (k > 0 && k < n) x[k] += x[k - 1];
}

}
"""
N, BLOCKS, THREADS = 600, 3, 256


def run_alone(name, order):
    x = numpy.ones(N)
    cuda_on_cpu.launch(cuda_on_cpu.load(SOURCE), name, (BLOCKS,), (THREADS,), [x, numpy.int64(N)],
                       cuda_on_cpu.thread_order(order, BLOCKS * THREADS, numpy.random.default_rng(1)))
    return x


@pytest.mark.parametrize("order", cuda_on_cpu.ORDERS)
def test_every_thread_runs_once_in_every_order(order):
    numpy.testing.assert_array_equal(run_alone("twice", order), 2.0)


def test_a_kernel_that_reads_its_neighbours_output_depends_on_the_order():
    ascending, descending = run_alone("add_left", "ascending"), run_alone("add_left", "descending")
    numpy.testing.assert_array_equal(ascending, numpy.arange(1, N + 1))  # a running sum
    numpy.testing.assert_array_equal(descending[1:], 2.0)  # each added an unchanged 1


def test_thread_orders_are_permutations_of_every_thread():
    rng = numpy.random.default_rng(2)
    assert cuda_on_cpu.thread_order("ascending", 10, rng) is None
    numpy.testing.assert_array_equal(cuda_on_cpu.thread_order("descending", 4, rng), [3, 2, 1, 0])
    shuffled = cuda_on_cpu.thread_order("shuffled", 1000, rng)
    assert shuffled.dtype == numpy.uint64 and sorted(shuffled.tolist()) == list(range(1000))
    assert shuffled.tolist() != list(range(1000))
    with pytest.raises(ValueError, match="thread order"):
        cuda_on_cpu.thread_order("sideways", 4, rng)


def launch_checked(name, through_table=False):
    xp = StrictCupy(check_thread_orders=True)
    function = xp.RawModule(code=SOURCE).get_function(name)
    x = xp.asarray(numpy.ones(N))
    first = xp.asarray(numpy.array([x.data.ptr], dtype=numpy.int64)) if through_table else x
    function((BLOCKS,), (THREADS,), (first, numpy.int64(N)))
    return x.get()


@pytest.mark.parametrize("name, through_table", [("twice", False), ("twice_through_table", True)])
def test_the_strict_double_runs_each_launch_in_every_order_from_the_same_memory(name, through_table):
    numpy.testing.assert_array_equal(launch_checked(name, through_table), 2.0)  # doubled once, not three times


@pytest.mark.parametrize("name, through_table", [("add_left", False), ("add_left_through_table", True)])
def test_the_strict_double_refuses_a_kernel_whose_threads_race(name, through_table):
    with pytest.raises(AssertionError, match=f"kernel {name} leaves other values with its threads in descending"):
        launch_checked(name, through_table)
