"""The optimizer's fused operations over all dense parameters at once: the SGD step with
momentum (rwthlm_py.training.optim) and the squared norm of the gradients (for clipping).

For each parameter w with gradient g and momentum buffer m (or none), learning rate eta
(a number, or a 0-d array on the device: the clipped rate) and momentum mu:

    with m:     m <- m - eta g;   w <- w + m;   m <- mu m
    without m:  w <- w - eta g

and sum_of_squares(g_1, ..., g_n) = sum_k |g_k|^2, a 0-d array on the device.

The numpy bodies run parameter by parameter; each CUDA kernel is one launch for all of
them, each thread finding its elements' parameter in a table of device addresses.
"""

import numpy


def sgd_step(params, gradients, buffers, learning_rate, momentum):
    """One step for every (w, g, m) of the three lists (m may be None), in place."""
    largest = max(gradient.size for gradient in gradients)
    scratch = numpy.empty(largest, dtype=gradients[0].dtype)  # eta g, without a temporary per parameter
    for param, gradient, buffer in zip(params, gradients, buffers, strict=True):
        step = numpy.multiply(gradient, learning_rate, out=scratch[:gradient.size].reshape(gradient.shape))
        if buffer is None:
            param -= step
        else:
            buffer -= step
            param += buffer
            buffer *= momentum


def sum_of_squares(arrays):
    """sum_k |a_k|^2 as a 0-d array."""
    total = numpy.zeros((), dtype=arrays[0].dtype)
    for array in arrays:
        flat = array.reshape(-1)
        total += flat @ flat
    return total


CUDA_SOURCE = r"""
extern "C" {

// The table has a row per parameter: its first element in the thread numbering, its size,
// and the device addresses of w, g and m (0: no momentum buffer).
enum { FIRST_ELEMENT, SIZE, W_ADDRESS, G_ADDRESS, M_ADDRESS, SGD_COLUMNS };

__global__ void sgd_step(const long long* table, int params, long long total, real learning_rate,
                         const real* rate_on_device, int rate_is_on_device, real momentum) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= total) return;
    const long long* row = table + last_row_at_most(table, params, SGD_COLUMNS, FIRST_ELEMENT, k) * SGD_COLUMNS;
    long long e = k - row[FIRST_ELEMENT];
    real* w = (real*)row[W_ADDRESS];
    const real* g = (const real*)row[G_ADDRESS];
    real* m = (real*)row[M_ADDRESS];
    real step = (rate_is_on_device ? *rate_on_device : learning_rate) * g[e];
    if (m) {
        real v = m[e] - step;
        w[e] += v;
        m[e] = v * momentum;
    } else {
        w[e] -= step;
    }
}

// Thread q of `threads` sums the squares of elements q, q + threads, q + 2 threads, ... of
// all arrays numbered one after another (table rows: first element, size, address), so
// that neighbouring threads read neighbouring elements; `parts` [threads] is summed after.
__global__ void sum_of_squares_parts(const long long* table, int arrays, long long total, long long threads,
                                     real* parts) {
    long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= threads) return;
    real sum = 0;
    for (long long k = q; k < total; k += threads) {
        const long long* row = table + last_row_at_most(table, arrays, 3, FIRST_ELEMENT, k) * 3;
        real x = ((const real*)row[2])[k - row[FIRST_ELEMENT]];
        sum += x * x;
    }
    parts[q] = sum;
}

}
"""
