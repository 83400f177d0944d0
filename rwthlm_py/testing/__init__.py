"""The GPU code path without a GPU, for the test suite and the benchmarks (as numpy.testing
is for numpy's users); the library itself never imports it.

    strict_cupy   a strict cupy double: numpy underneath, cupy's rules on top, a count of
                  the launches, waits and copies a GPU would be asked for, and on request
                  a device memory limit and a check that no launch depends on the order
                  of its threads
    strict_cublas cuBLAS's C binding for the double, on device addresses it checks
    host_time_cupy the double without arithmetic, for the host's time per batch
    cuda_on_cpu   the CUDA kernels compiled as C++ and run on the CPU, thread by thread,
                  in ascending, descending or shuffled order

Importing them needs neither cupy nor pytest; cuda_on_cpu compiles with g++ (or c++).
"""
