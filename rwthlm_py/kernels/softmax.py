"""The fused pieces of the class-factored softmax (layers/class_softmax.py, word_groups.py).

Row softmax (the class part, or a full softmax): N rows of K logits, one row per position,

    softmax_pick: logits <- e = exp(logits + b - m),  totals s = sum_k e,
                  log p = logits[target] + b[target] - m - log s,
                  and, for training, sum_n e_n / s_n (the bias gradient's softmax part)

Word groups (the within-class softmaxes): the positions of a batch sorted by target class,
each group's logits a [K_g, n_g] block (K_g words of its class, n_g positions, one column
per position) in one flat buffer. `table` [G, 6] (int64) holds per group its block's
offset in the buffer, its first position, n_g, its class's first row of W_word, K_g, and
its first row among the stacked rows of all groups (the gradient of W_word's used rows):

    word_logits:          block = W_word[rows] h^T (+ b_word[rows])
    word_softmax_pick:    block <- e = exp(block - m) per column, totals s, log p
    word_logit_gradient:  E = e * r + onehot(target) * g,  r = -g / s  (g = -1 when None)
    word_input_gradient:  dh[positions] = E^T W_word[rows]
    word_bias_gradient:   db[stacked rows] = E 1
    word_weight_update:   W_word[rows] += scale * E h;  word_weight_squared_norm: |E h|^2

where m is a shift of each softmax by a constant, which leaves p unchanged. The numpy
bodies shift only softmaxes whose maximum logit could overflow exp or underflow the sum
(outside safe_max_range; a pass over the maxima is cheaper than shifting every row on a CPU);
the CUDA kernels always shift by the maximum. Both give the same log p, E and gradients.
The numpy bodies do the products per group with BLAS; the CUDA kernels give each thread
one output element, which finds its group in the table by binary search.
"""

import math

import numpy

from rwthlm_py.kernels.matmul import blas_matmul

OFFSET, FIRST, COUNT, ROW, WIDTH, STACKED = range(6)
TABLE_COLUMNS = 6
# The sum of K exponentials is at least exp(max) and at most K exp(max). Inside these
# bounds on log s no term overflowed and the terms that underflowed are below 1e-14 of the
# largest, so no shift is needed.
SAFE_LOG_TOTALS = {"float32": (math.log(1e-20), math.log(1e30)), "float64": (math.log(1e-200), math.log(1e200))}


def safe_max_range(dtype, width):
    """(lowest, highest) maximum logit of a softmax over `width` logits that needs no shift."""
    lowest, highest = SAFE_LOG_TOTALS[numpy.dtype(dtype).name]
    return lowest, highest - math.log(width)


def _needed_shift(maxima, dtype, width):
    """The shift of each softmax: its maximum where it is outside the safe range, else 0
    (None when no softmax needs one)."""
    lowest, highest = safe_max_range(dtype, width)
    risky = (maxima < lowest) | (maxima > highest)
    return numpy.where(risky, maxima, 0).astype(dtype) if risky.any() else None


def softmax_pick(logits, bias, target, logp, totals, sum_probs):
    """The row softmax in place (logits [N,K] become e); writes log p [N] and totals [N];
    returns sum_n e_n / s_n [K] when sum_probs, else None."""
    if bias is not None:
        logits += bias
    shift = _needed_shift(logits.max(axis=1), logits.dtype, logits.shape[1])
    if shift is not None:
        logits -= shift[:, None]
    picked = logits[numpy.arange(len(target)), target]
    numpy.exp(logits, out=logits)
    total = logits @ numpy.ones(logits.shape[1], dtype=logits.dtype)
    totals[...] = total
    logp[...] = picked - numpy.log(total)
    return (1 / total) @ logits if sum_probs else None


def _groups(table):
    return table.tolist()


def _block(buffer, group):
    """The [K_g, n_g] block of one group in the buffer."""
    count, width = group[COUNT], group[WIDTH]
    return buffer[group[OFFSET]:group[OFFSET] + count * width].reshape(width, count)


def _rows(group):
    return slice(group[ROW], group[ROW] + group[WIDTH])


def _columns(group):
    return slice(group[FIRST], group[FIRST] + group[COUNT])


def word_logits(weights, bias, h_columns, table, buffer):
    """Every group's block = W_word[rows] h^T (+ b_word[rows]); h_columns [H, M]."""
    for group in _groups(table):
        logits = blas_matmul(weights[_rows(group)], h_columns[:, _columns(group)], out=_block(buffer, group))
        if bias is not None:
            logits += bias[_rows(group), None]


def word_softmax_pick(buffer, table, target_index, logp, totals):
    """The groups' column softmaxes in place (the blocks become e); writes log p and the
    totals [M]. target_index [M]: where each position's target logit is in the buffer."""
    lowest, highest = safe_max_range(buffer.dtype, int(table[:, WIDTH].max()))
    if not lowest <= buffer.min() <= buffer.max() <= highest:  # else no column needs a shift
        for group in _groups(table):
            block = _block(buffer, group)
            shift = _needed_shift(block.max(axis=0), buffer.dtype, group[WIDTH])
            if shift is not None:
                block -= shift
    picked = buffer[target_index]
    numpy.exp(buffer, out=buffer)
    for group in _groups(table):
        ones = numpy.ones((1, group[WIDTH]), dtype=buffer.dtype)
        blas_matmul(ones, _block(buffer, group), out=totals[None, _columns(group)])
    logp[...] = picked - numpy.log(totals)


def word_logit_gradient(buffer, table, target_index, totals, g):
    """The blocks' exponentials become the logits' gradient E; g [M] or None (-1)."""
    g = -numpy.ones_like(totals) if g is None else g
    r = -g / totals
    for group in _groups(table):
        _block(buffer, group)[...] *= r[_columns(group)]
    buffer[target_index] += g  # one target per column: no index repeats


def word_input_gradient(buffer, weights, table, dh_sorted):
    """dh_sorted [M,H]: each group's positions get E^T W_word[rows]."""
    for group in _groups(table):
        blas_matmul(_block(buffer, group).T, weights[_rows(group)], out=dh_sorted[_columns(group)])


def word_bias_gradient(buffer, table, db):
    """db [R] (the stacked rows): each group's rows get the row sums of E."""
    db_column = db.reshape(-1, 1)
    for group in _groups(table):
        ones = numpy.ones((group[COUNT], 1), dtype=buffer.dtype)
        stacked = slice(group[STACKED], group[STACKED] + group[WIDTH])
        blas_matmul(_block(buffer, group), ones, out=db_column[stacked])


def word_weight_update(weights, scale, buffer, h_sorted, table, rows_used):
    """W_word[rows] += scale * E h for every group (rows_used: R, the stacked rows), through
    one reused product buffer: never forming the gradient of all used rows at once keeps
    each product in cache."""
    groups = _groups(table)
    widest = max(group[WIDTH] for group in groups)
    scratch = numpy.empty(widest * h_sorted.shape[1], dtype=h_sorted.dtype)
    for group in groups:
        product = scratch[:group[WIDTH] * h_sorted.shape[1]].reshape(group[WIDTH], h_sorted.shape[1])
        blas_matmul(_block(buffer, group), scale * h_sorted[_columns(group)], out=product)
        weights[_rows(group)] += product


def word_weight_squared_norm(buffer, h_sorted, table, rows_used):
    """|E h|^2 summed over the groups, as sum((E^T E) * (h h^T)): n_g^2 (K_g + H) work
    instead of K_g H per group."""
    total = numpy.zeros((), dtype=h_sorted.dtype)
    for group in _groups(table):
        E, h = _block(buffer, group), h_sorted[_columns(group)]
        total += ((E.T @ E) * (h @ h.T)).sum()
    return total


CUDA_SOURCE = r"""
extern "C" {

// The table's columns, as in rwthlm_py.kernels.softmax.
enum { OFFSET, FIRST, COUNT, ROW, WIDTH, STACKED, TABLE_COLUMNS };

__device__ __forceinline__ int group_of(const long long* table, int groups, int column, long long value) {
    return last_row_at_most(table, groups, TABLE_COLUMNS, column, value);
}

// One thread per row n: log p's shifted target logit, before the exponentials replace it.
__global__ void softmax_pick_rows(const real* shifted, const long long* target, real* logp,
                                  long long N, long long K) {
    long long n = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    logp[n] = shifted[n * K + target[n]];
}

// One thread per buffer element: logit (k, j) of its group's block.
__global__ void word_logits(const real* weights, const real* bias, int has_bias, const real* h_columns,
                            long long M, int H, const long long* table, int groups, real* buffer,
                            long long size) {
    long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= size) return;
    const long long* group = table + group_of(table, groups, OFFSET, e) * TABLE_COLUMNS;
    long long local = e - group[OFFSET], count = group[COUNT];
    long long row = group[ROW] + local / count, m = group[FIRST] + local % count;
    real sum = has_bias ? bias[row] : (real)0;
    for (int i = 0; i < H; ++i) sum += weights[row * H + i] * h_columns[i * M + m];
    buffer[e] = sum;
}

// One thread per position m (a column): shift by the column's maximum, exponentials, sum, log p.
__global__ void word_softmax_pick(real* buffer, const long long* table, int groups,
                                  const long long* target_index, real* logp, real* totals, long long M) {
    long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M) return;
    const long long* group = table + group_of(table, groups, FIRST, m) * TABLE_COLUMNS;
    long long count = group[COUNT], width = group[WIDTH];
    real* column = buffer + group[OFFSET] + (m - group[FIRST]);
    real highest = column[0];
    for (long long k = 1; k < width; ++k) highest = column[k * count] > highest ? column[k * count] : highest;
    real picked = buffer[target_index[m]] - highest;
    real total = 0;
    for (long long k = 0; k < width; ++k) {
        real e = exp(column[k * count] - highest);
        column[k * count] = e;
        total += e;
    }
    totals[m] = total;
    logp[m] = picked - log(total);
}

// One thread per position m: its column of exponentials becomes E = e r + onehot g.
__global__ void word_logit_gradient(real* buffer, const long long* table, int groups,
                                    const long long* target_index, const real* totals, const real* g,
                                    int has_g, long long M) {
    long long m = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M) return;
    const long long* group = table + group_of(table, groups, FIRST, m) * TABLE_COLUMNS;
    long long count = group[COUNT], width = group[WIDTH];
    real* column = buffer + group[OFFSET] + (m - group[FIRST]);
    real g_m = has_g ? g[m] : (real)-1;
    real r = -g_m / totals[m];
    for (long long k = 0; k < width; ++k) column[k * count] *= r;
    buffer[target_index[m]] += g_m;
}

// One thread per element (m, i) of dh_sorted [M, H]: sum_k E[k, m] W_word[row + k, i].
__global__ void word_input_gradient(const real* buffer, const real* weights, const long long* table,
                                    int groups, real* dh_sorted, long long M, int H) {
    long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= M * H) return;
    long long m = q / H, i = q % H;
    const long long* group = table + group_of(table, groups, FIRST, m) * TABLE_COLUMNS;
    long long count = group[COUNT], width = group[WIDTH];
    const real* column = buffer + group[OFFSET] + (m - group[FIRST]);
    const real* w = weights + group[ROW] * H + i;
    real sum = 0;
    for (long long k = 0; k < width; ++k) sum += column[k * count] * w[k * H];
    dh_sorted[q] = sum;
}

// One thread per stacked row s: the sum of row k of its group's E.
__global__ void word_bias_gradient(const real* buffer, const long long* table, int groups, real* db,
                                   long long R) {
    long long s = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= R) return;
    const long long* group = table + group_of(table, groups, STACKED, s) * TABLE_COLUMNS;
    long long count = group[COUNT];
    const real* row = buffer + group[OFFSET] + (s - group[STACKED]) * count;
    real sum = 0;
    for (long long j = 0; j < count; ++j) sum += row[j];
    db[s] = sum;
}

// One thread per element (s, i) of the stacked rows' gradient [R, H]: sum_j E[k, j] h[first + j, i].
__global__ void word_weight_gradient(const real* buffer, const real* h_sorted, const long long* table,
                                     int groups, real* stacked, long long R, int H) {
    long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= R * H) return;
    long long s = q / H, i = q % H;
    const long long* group = table + group_of(table, groups, STACKED, s) * TABLE_COLUMNS;
    long long count = group[COUNT];
    const real* row = buffer + group[OFFSET] + (s - group[STACKED]) * count;
    const real* h = h_sorted + group[FIRST] * H + i;
    real sum = 0;
    for (long long j = 0; j < count; ++j) sum += row[j] * h[j * H];
    stacked[q] = sum;
}

// One thread per element (s, i): W_word[row + k, i] += stacked[s, i] (the rows are distinct).
__global__ void add_stacked_rows(real* weights, const real* stacked, const long long* table, int groups,
                                 long long R, int H) {
    long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= R * H) return;
    long long s = q / H, i = q % H;
    const long long* group = table + group_of(table, groups, STACKED, s) * TABLE_COLUMNS;
    weights[(group[ROW] + s - group[STACKED]) * H + i] += stacked[q];
}

}
"""
