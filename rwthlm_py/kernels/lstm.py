"""The fused steps of the peephole LSTM (layers/lstm.py has the equations and their names).

A step's values are [H, B] (a column per sequence) and its four gates a [4, H, B] block in
the order z, i, f, o. The forward step halves the pre-activations of i, f, o, so that
sigmoid(x) = 0.5 tanh(x/2) + 0.5 needs one tanh (halving is exact in binary floating
point, so it does not matter whether it comes before or after the products):

    forward step t, with a = R h(t-1) (when has_recurrence) + w_x = W x(t) + b:
        z = tanh(a_z)
        i = 0.5 tanh(0.5 a_i + 0.5 p_i c(t-1)) + 0.5      f likewise with p_f
        c = i z + f c(t-1)
        o = 0.5 tanh(0.5 a_o + 0.5 p_o c) + 0.5
        h = o tanh(c)                  a is overwritten by z, i, f, o

    backward factors, every step at once (c(-1) = c0, or 0 for the zero state):
        K_o = tanh(c) o (1-o),   K_h = o (1 - tanh(c)^2) + p_o K_o
        K_zif = [i (1-z^2), z i (1-i), c(t-1) f (1-f)],   G = f + p_i K_zif[1] + p_f K_zif[2]

    backward step t, with dh = e_h(t) and dc = e_c(t+1) G(t+1) (None at the last step):
        da_o = dh K_o,   e_c = dh K_h + dc,   [da_z, da_i, da_f] = e_c K_zif,
        dc_out = e_c G(t)              (what reaches c(t-1); skipped when dc_out is None)

    peephole gradient, every step at once:
        dp_i = sum_t,b da_i c(t-1),   dp_f = sum_t,b da_f c(t-1),   dp_o = sum_t,b da_o c(t)

The numpy bodies below are the reference; CUDA_SOURCE holds the same operations as CUDA
kernels over one thread per (cell, column), with `real` float or double.
"""

import numpy

Z, I, F, O = range(4)


def lstm_peepholes(p, batch_size, steps):
    """0.5 p as [3, H, B]. numpy's products with a broadcast along the short last axis are
    slow, so for more than one step the peepholes are spread over the B columns once."""
    half = numpy.broadcast_to(0.5 * p.reshape(3, -1, 1), (3, len(p) // 3, batch_size))
    return numpy.ascontiguousarray(half) if steps > 1 else half


def lstm_forward_step(a, w_x, c_prev, peepholes, c, tanh_c, h, has_recurrence):
    """One forward step in place: a[4,H,B] holds R h(t-1) if has_recurrence (else nothing
    yet), w_x[4H,B] the input part; c_prev is None for the zero state. Writes the gate
    activations into a, and c, tanh(c), h ([H,B] each)."""
    a_rows = a.reshape(w_x.shape)
    if has_recurrence:
        a_rows += w_x
    else:
        a_rows[...] = w_x
    a[I:] *= 0.5
    if c_prev is not None:
        a[I:O] += peepholes[:2] * c_prev
    zif = a[Z:O]
    numpy.tanh(zif, out=zif)
    a[I:O] *= 0.5
    a[I:O] += 0.5
    numpy.multiply(a[I], a[Z], out=c)
    if c_prev is not None:
        c += a[F] * c_prev
    o = a[O]
    o += peepholes[2] * c
    numpy.tanh(o, out=o)
    o *= 0.5
    o += 0.5
    numpy.tanh(c, out=tanh_c)
    numpy.multiply(o, tanh_c, out=h)


def lstm_backward_factors(A, C, tanh_C, c0, p):
    """K_o, K_h [T,H,B], K_zif [T,3,H,B] and G [T,H,B] from the cached activations A
    [T,4,H,B] (z, i, f, o), cells C and tanh_C [T,H,B]; c0 [H,B] or None, p [3H]."""
    p = p.reshape(3, -1, 1)
    z, i, f, o = A[:, Z], A[:, I], A[:, F], A[:, O]
    K_o = tanh_C * o * (1 - o)
    K_h = o * (1 - tanh_C * tanh_C) + p[2] * K_o
    K_zif = numpy.empty((A.shape[0], 3) + A.shape[2:], dtype=A.dtype)
    numpy.multiply(i, 1 - z * z, out=K_zif[:, 0])
    numpy.multiply(z, i * (1 - i), out=K_zif[:, 1])
    f_slope = f * (1 - f)
    K_zif[1:, 2] = C[:-1] * f_slope[1:]
    if c0 is not None:
        K_zif[0, 2] = c0 * f_slope[0]
    else:
        K_zif[0, 2] = 0
    G = f + p[0] * K_zif[:, 1] + p[1] * K_zif[:, 2]
    return K_o, K_h, K_zif, G


def lstm_backward_step(dh, dc, K_o, K_h, K_zif, G, da, dc_out):
    """One backward step: writes da [4,H,B] and, unless dc_out is None, dc_out = e_c G
    (dc_out may be dc: each element of dc is read before its own is written)."""
    numpy.multiply(dh, K_o, out=da[O])
    e_c = dh * K_h
    if dc is not None:
        e_c += dc
    numpy.multiply(e_c, K_zif, out=da[Z:O])
    if dc_out is not None:
        numpy.multiply(e_c, G, out=dc_out)


def lstm_peephole_gradient(dA, C, c0):
    """dp [3H] from dA [T,4,H,B], the cells C [T,H,B] and c0 [H,B] (None: the zero state).
    Summed over the steps first: a sum along the short last axis (B) is slow."""
    H = C.shape[1]
    dp = numpy.empty((3, H, C.shape[2]), dtype=dA.dtype)
    dp[:2] = (dA[1:, I:O] * C[:-1, None]).sum(axis=0)
    if c0 is not None:
        dp[:2] += dA[0, I:O] * c0
    dp[2] = (dA[:, O] * C).sum(axis=0)
    return dp.sum(axis=2).reshape(3 * H)


CUDA_SOURCE = r"""
extern "C" {

__device__ __forceinline__ real half_sigmoid(real x) { return (real)0.5 * tanh(x) + (real)0.5; }

// One thread per element k = j * B + b of the [H, B] step values (j: cell, b: column).
__global__ void lstm_forward_step(real* a, const real* w_x, long long w_x_stride, const real* c_prev,
                                  const real* peepholes, real* c, real* tanh_c, real* h,
                                  int H, int B, int has_recurrence, int has_state) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long HB = (long long)H * B;
    if (k >= HB) return;
    int j = (int)(k / B), b = (int)(k % B);
    real pre[4];
    for (int g = 0; g < 4; ++g) {
        real x = w_x[((long long)g * H + j) * w_x_stride + b];
        pre[g] = has_recurrence ? a[g * HB + k] + x : x;
        if (g > 0) pre[g] *= (real)0.5;
    }
    real cp = has_state ? c_prev[k] : (real)0;
    real z = tanh(pre[0]);
    real i = half_sigmoid(has_state ? pre[1] + peepholes[j] * cp : pre[1]);
    real f = half_sigmoid(has_state ? pre[2] + peepholes[H + j] * cp : pre[2]);
    real cell = has_state ? i * z + f * cp : i * z;
    real o = half_sigmoid(pre[3] + peepholes[2 * H + j] * cell);
    real t = tanh(cell);
    a[k] = z; a[HB + k] = i; a[2 * HB + k] = f; a[3 * HB + k] = o;
    c[k] = cell; tanh_c[k] = t; h[k] = o * t;
}

// One thread per element of the T steps' [H, B] values; p is the unscaled [3H] peepholes.
__global__ void lstm_backward_factors(const real* A, const real* C, const real* tanh_C, const real* c0,
                                      const real* p, real* K_o, real* K_h, real* K_zif, real* G,
                                      int T, int H, int B, int has_state) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long HB = (long long)H * B;
    if (k >= (long long)T * HB) return;
    long long t = k / HB, e = k % HB;
    int j = (int)(e / B);
    const real* a = A + t * 4 * HB;
    real z = a[e], i = a[HB + e], f = a[2 * HB + e], o = a[3 * HB + e];
    real tc = tanh_C[k];
    real cp = t > 0 ? C[k - HB] : (has_state ? c0[e] : (real)0);
    real ko = tc * o * (1 - o);
    K_o[k] = ko;
    K_h[k] = o * (1 - tc * tc) + p[2 * H + j] * ko;
    real k_z = i * (1 - z * z), k_i = z * (i * (1 - i)), k_f = cp * (f * (1 - f));
    real* kzif = K_zif + t * 3 * HB;
    kzif[e] = k_z; kzif[HB + e] = k_i; kzif[2 * HB + e] = k_f;
    G[k] = f + p[j] * k_i + p[H + j] * k_f;
}

__global__ void lstm_backward_step(const real* dh, const real* dc, const real* K_o, const real* K_h,
                                   const real* K_zif, const real* G, real* da, real* dc_out,
                                   int H, int B, int has_dc, int want_dc_out) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long HB = (long long)H * B;
    if (k >= HB) return;
    real e_h = dh[k];
    da[3 * HB + k] = e_h * K_o[k];
    real e_c = e_h * K_h[k];
    if (has_dc) e_c += dc[k];
    da[k] = e_c * K_zif[k];
    da[HB + k] = e_c * K_zif[HB + k];
    da[2 * HB + k] = e_c * K_zif[2 * HB + k];
    if (want_dc_out) dc_out[k] = e_c * G[k];
}

// One thread per element (q, j, b) of the [3, H, B] sums over the steps of the peephole
// gradient's terms (q: i, f, o).
__global__ void lstm_peephole_terms(const real* dA, const real* C, const real* c0, real* terms,
                                    int T, int H, int B, int has_state) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long HB = (long long)H * B;
    if (k >= 3 * HB) return;
    int q = (int)(k / HB);
    long long e = k % HB;
    real sum = 0;
    if (q < 2) {
        if (has_state) sum = dA[(1 + q) * HB + e] * c0[e];
        for (int t = 1; t < T; ++t) sum += dA[(t * 4 + 1 + q) * HB + e] * C[(t - 1) * HB + e];
    } else {
        for (int t = 0; t < T; ++t) sum += dA[(t * 4 + 3) * HB + e] * C[t * HB + e];
    }
    terms[k] = sum;
}

}
"""
